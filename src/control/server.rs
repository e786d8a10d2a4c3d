//! The control socket: a Unix stream socket, one JSON request per line, one JSON answer per
//! line. A thread per client (up to `MAX_CLIENTS`), so a slow client stalls only itself; ops
//! are applied one at a time under the state's lock, which the data plane never takes.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rvs_api::proto::{Request, Response, MAX_LINE};

use super::state::ControlState;

const MAX_CLIENTS: usize = 64;
/// A client that starts a line and does not finish it within this time is cut off.
const LINE_TIMEOUT: Duration = Duration::from_secs(10);

pub struct ServerHandle {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    path: PathBuf,
}

impl ServerHandle {
    /// Stops accepting, removes the socket file.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds `path` (its directory created, mode 0660; a stale socket from a dead rvsd replaced, a
/// live one refused) and serves `state` until the handle is stopped. Also samples the rates
/// every 2 seconds.
pub fn serve(path: &Path, state: Arc<Mutex<ControlState>>) -> Result<ServerHandle> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            bail!("{}: another rvsd is serving this control socket (stop it, or set [control] socket elsewhere)", path.display());
        }
        std::fs::remove_file(path)
            .with_context(|| format!("removing the stale socket {}", path.display()))?;
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("binding the control socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    listener.set_nonblocking(true)?;
    let stop = Arc::new(AtomicBool::new(false));
    let clients = Arc::new(AtomicUsize::new(0));

    let accept = {
        let (stop, state, clients) = (stop.clone(), state.clone(), clients.clone());
        std::thread::Builder::new()
            .name("rvs-control".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            if clients.load(Ordering::Relaxed) >= MAX_CLIENTS {
                                let mut s = stream;
                                let _ = writeln!(
                                    s,
                                    "{}",
                                    line(&Response::err(0, "busy", "too many control clients; try again"))
                                );
                                continue;
                            }
                            clients.fetch_add(1, Ordering::Relaxed);
                            let (state, clients, stop) = (state.clone(), clients.clone(), stop.clone());
                            let _ = std::thread::Builder::new()
                                .name("rvs-client".into())
                                .spawn(move || {
                                    client(stream, &state, &stop);
                                    clients.fetch_sub(1, Ordering::Relaxed);
                                });
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(20))
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })?
    };
    let estimator = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("rvs-estimator".into())
            .spawn(move || {
                let mut next = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    if Instant::now() >= next {
                        state
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .sample_rates(Instant::now());
                        next += Duration::from_secs(2);
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            })?
    };
    Ok(ServerHandle {
        stop,
        threads: vec![accept, estimator],
        path: path.to_path_buf(),
    })
}

fn line(r: &Response) -> String {
    serde_json::to_string(r).expect("responses serialize")
}

/// What reading one request line gave.
enum Read1 {
    Line(String),
    TooLong,
    Closed,
    TimedOut,
    NotUtf8,
}

fn read_line(r: &mut BufReader<UnixStream>) -> Read1 {
    let mut buf = Vec::new();
    let started = Instant::now();
    loop {
        let mut limited = r.by_ref().take((MAX_LINE + 1 - buf.len()) as u64);
        match limited.read_until(b'\n', &mut buf) {
            Ok(0) => return Read1::Closed,
            Ok(_) if buf.last() == Some(&b'\n') => {
                buf.pop();
                return match String::from_utf8(buf) {
                    Ok(s) => Read1::Line(s),
                    Err(_) => Read1::NotUtf8,
                };
            }
            Ok(_) if buf.len() > MAX_LINE => return Read1::TooLong,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                // Nothing started: keep waiting (an idle client may stay). Half a line: give up
                // after LINE_TIMEOUT.
                if !buf.is_empty() && started.elapsed() >= LINE_TIMEOUT {
                    return Read1::TimedOut;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Read1::Closed,
        }
    }
}

fn client(stream: UnixStream, state: &Mutex<ControlState>, stop: &AtomicBool) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    while !stop.load(Ordering::Relaxed) {
        let resp = match read_line(&mut reader) {
            Read1::Line(l) if l.trim().is_empty() => continue,
            Read1::Line(l) => match Request::parse(&l) {
                Err(bad) => Response::err(bad.id, "bad_request", bad.message),
                Ok(req) => {
                    let r = state.lock().unwrap_or_else(|p| p.into_inner()).apply(req.op);
                    match r {
                        Ok(result) => Response::ok(req.id, result),
                        Err((code, msg)) => Response::err(req.id, code, msg),
                    }
                }
            },
            Read1::TooLong => {
                let _ = writeln!(
                    writer,
                    "{}",
                    line(&Response::err(
                        0,
                        "too_long",
                        format!("request longer than {MAX_LINE} bytes; closing")
                    ))
                );
                return;
            }
            Read1::NotUtf8 => Response::err(0, "bad_request", "the request is not UTF-8"),
            Read1::TimedOut => {
                let _ = writeln!(
                    writer,
                    "{}",
                    line(&Response::err(0, "timeout", "incomplete request line; closing"))
                );
                return;
            }
            Read1::Closed => return,
        };
        if writeln!(writer, "{}", line(&resp)).is_err() {
            return;
        }
    }
}
