//! The control socket: a Unix stream socket, one JSON request per line, one JSON answer per
//! line. A thread per client, so a slow client stalls only itself; ops are applied one at a
//! time under the state's lock, which the data plane never takes.
//!
//! What a careless or hostile local client cannot do:
//! - hold a line open: a request must be complete `request_timeout` after its first byte,
//!   however slowly it drips;
//! - hold a slot for ever: a client that sends nothing for `idle_timeout` is closed, and when
//!   every slot is taken the longest-idle client makes room, so an administrator always gets
//!   through;
//! - take the socket's path: its directory must belong to rvsd's user and be writable by no one
//!   else (rvsd creates it 0750); `[control] group` grants a group access.
//!
//! Every op that changes something is logged with the peer's uid and pid (SO_PEERCRED).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rvs_api::config::{group_id, ControlConfig};
use rvs_api::proto::{Op, Request, Response, MAX_LINE};

use super::state::ControlState;

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

/// A connected client, as the accept loop sees it.
struct Slot {
    id: u64,
    stream: UnixStream,
    /// Milliseconds since the server started, at the client's last request.
    last_active: Arc<AtomicU64>,
    /// In the middle of a request (never evicted then).
    busy: Arc<AtomicBool>,
}

/// The socket's directory: created 0750 (with `group`), or, if it exists, owned by this user
/// and writable by no one else.
fn prepare_dir(dir: &Path, gid: Option<u32>) -> Result<()> {
    let me = rustix::process::geteuid().as_raw();
    if !dir.exists() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750))?;
    }
    let m = std::fs::metadata(dir).with_context(|| format!("reading {}", dir.display()))?;
    if m.uid() != me {
        bail!(
            "{}: the control socket's directory belongs to uid {}, not to rvsd's user (uid {me}): another user could replace the socket; use a directory of rvsd's own ([control] socket)",
            dir.display(),
            m.uid()
        );
    }
    if m.mode() & 0o022 != 0 {
        bail!(
            "{}: the control socket's directory is writable by others (mode {:o}): another user could replace the socket; chmod go-w it or use another directory",
            dir.display(),
            m.mode() & 0o7777
        );
    }
    if let Some(g) = gid {
        std::os::unix::fs::chown(dir, None, Some(g))
            .with_context(|| format!("giving {} to group {g}", dir.display()))?;
    }
    Ok(())
}

/// Binds `path` (its directory checked or created; mode 0660; a stale socket from a dead rvsd
/// replaced, a live one refused) and serves `state` until the handle is stopped. Also samples
/// the rates every 2 seconds.
pub fn serve(path: &Path, state: Arc<Mutex<ControlState>>, opts: &ControlConfig) -> Result<ServerHandle> {
    let gid = match &opts.group {
        Some(g) => Some(group_id(g).with_context(|| format!("control.group: no group {g:?}"))?),
        None => None,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        prepare_dir(dir, gid)?;
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
    if let Some(g) = gid {
        std::os::unix::fs::chown(path, None, Some(g))?;
    }
    listener.set_nonblocking(true)?;
    let stop = Arc::new(AtomicBool::new(false));
    let slots: Arc<Mutex<Vec<Slot>>> = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let opts = opts.clone();

    let accept = {
        let (stop, state, slots) = (stop.clone(), state.clone(), slots.clone());
        std::thread::Builder::new()
            .name("rvs-control".into())
            .spawn(move || {
                let mut next_id = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            if !make_room(&slots, opts.max_clients) {
                                let mut s = stream;
                                let _ = writeln!(
                                    s,
                                    "{}",
                                    line(&Response::err(
                                        0,
                                        "busy",
                                        "every control client is mid-request; try again"
                                    ))
                                );
                                continue;
                            }
                            next_id += 1;
                            let slot = Slot {
                                id: next_id,
                                stream: match stream.try_clone() {
                                    Ok(s) => s,
                                    Err(_) => continue,
                                },
                                last_active: Arc::new(AtomicU64::new(started.elapsed().as_millis() as u64)),
                                busy: Arc::new(AtomicBool::new(false)),
                            };
                            let (id, last, busy) = (slot.id, slot.last_active.clone(), slot.busy.clone());
                            slots.lock().unwrap_or_else(|p| p.into_inner()).push(slot);
                            let (state, slots, stop, opts) =
                                (state.clone(), slots.clone(), stop.clone(), opts.clone());
                            let _ = std::thread::Builder::new()
                                .name("rvs-client".into())
                                .spawn(move || {
                                    let activity = Activity { started, last, busy };
                                    client(stream, &state, &stop, &opts, &activity);
                                    slots
                                        .lock()
                                        .unwrap_or_else(|p| p.into_inner())
                                        .retain(|s| s.id != id);
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

/// Below `max` clients, or the longest-idle one closed to make room; false if every client
/// is mid-request.
fn make_room(slots: &Mutex<Vec<Slot>>, max: usize) -> bool {
    let mut s = slots.lock().unwrap_or_else(|p| p.into_inner());
    if s.len() < max {
        return true;
    }
    let idle = s
        .iter()
        .enumerate()
        .filter(|(_, c)| !c.busy.load(Ordering::Relaxed))
        .min_by_key(|(_, c)| c.last_active.load(Ordering::Relaxed))
        .map(|(i, _)| i);
    match idle {
        Some(i) => {
            let evicted = s.swap_remove(i);
            let mut w = &evicted.stream;
            let _ = writeln!(
                w,
                "{}",
                line(&Response::err(
                    0,
                    "evicted",
                    "closed to make room for another client (the longest idle)"
                ))
            );
            let _ = evicted.stream.shutdown(std::net::Shutdown::Both);
            true
        }
        None => false,
    }
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
    Idle,
    NotUtf8,
}

/// A client's activity, shared with the accept loop (which evicts the longest idle).
struct Activity {
    started: Instant,
    last: Arc<AtomicU64>,
    busy: Arc<AtomicBool>,
}

/// Reads one line. The request deadline runs from the line's first byte (so an idle client
/// that then sends half a line has the whole deadline, and a client that drips bytes is cut off
/// anyway); with no byte, the idle deadline runs from the last request.
fn read_line(r: &mut BufReader<UnixStream>, opts: &ControlConfig, a: &Activity) -> Read1 {
    let mut buf = Vec::new();
    let mut first: Option<Instant> = None;
    let idle_from = Instant::now();
    loop {
        match r.fill_buf() {
            Ok([]) => return Read1::Closed,
            Ok(avail) => {
                if first.is_none() {
                    first = Some(Instant::now());
                    a.busy.store(true, Ordering::Relaxed);
                }
                let (take, done) = match avail.iter().position(|&b| b == b'\n') {
                    Some(i) => (i, true),
                    None => (avail.len(), false),
                };
                buf.extend_from_slice(&avail[..take]);
                r.consume(take + usize::from(done));
                if buf.len() > MAX_LINE {
                    return Read1::TooLong;
                }
                if done {
                    return match String::from_utf8(buf) {
                        Ok(s) => Read1::Line(s),
                        Err(_) => Read1::NotUtf8,
                    };
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Read1::Closed,
        }
        match first {
            Some(f) if f.elapsed() >= opts.request_timeout => return Read1::TimedOut,
            None if idle_from.elapsed() >= opts.idle_timeout => return Read1::Idle,
            _ => {}
        }
    }
}

/// The most real servers a restore in parts may gather before its last part.
const RESTORE_MAX_REALS: usize = 1 << 20;

/// Adds one part of a restore to what came before: an entry with only a protocol, an address
/// and real servers continues a service given earlier.
fn gather(
    pending: &mut Vec<rvs_api::config::RawService>,
    part: Vec<rvs_api::config::RawService>,
) -> Result<(), String> {
    for s in part {
        let continuation = rvs_api::config::RawService {
            protocol: s.protocol.clone(),
            address: s.address.clone(),
            real: s.real.clone(),
            ..Default::default()
        } == s;
        let earlier = pending
            .iter_mut()
            .find(|p| p.protocol == s.protocol && p.address == s.address);
        match (continuation, earlier) {
            (true, Some(p)) => p.real.extend(s.real),
            _ => pending.push(s),
        }
    }
    let reals: usize = pending.iter().map(|s| s.real.len()).sum();
    if reals > RESTORE_MAX_REALS || pending.len() > RESTORE_MAX_REALS {
        return Err(format!("a restore of more than {RESTORE_MAX_REALS} real servers"));
    }
    Ok(())
}

/// Ops that change nothing, and are not logged.
pub(crate) fn read_only(op: &Op) -> bool {
    matches!(
        op,
        Op::List { .. }
            | Op::Connections {}
            | Op::GetTimeouts {}
            | Op::Status {}
            | Op::Health {}
            | Op::Daemons {}
            | Op::Marks {}
            | Op::Routes {}
    )
}

fn client(
    stream: UnixStream,
    state: &Mutex<ControlState>,
    stop: &AtomicBool,
    opts: &ControlConfig,
    a: &Activity,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
    let peer = rustix::net::sockopt::socket_peercred(&stream)
        .map(|c| format!("uid {} pid {}", c.uid.as_raw(), c.pid.as_raw_nonzero()))
        .unwrap_or_else(|_| "an unknown peer".into());
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    // The parts of a restore too large for one line, until its last part.
    let mut pending: Vec<rvs_api::config::RawService> = Vec::new();
    let fatal = |w: &mut UnixStream, code: &str, msg: String| {
        let _ = writeln!(w, "{}", line(&Response::err(0, code, msg)));
    };
    while !stop.load(Ordering::Relaxed) {
        let resp = match read_line(&mut reader, opts, a) {
            Read1::Line(l) if l.trim().is_empty() => continue,
            Read1::Line(l) => match Request::parse(&l) {
                Err(bad) => Response::err(bad.id, "bad_request", bad.message),
                Ok(Request {
                    id,
                    op: Op::Restore { services, more },
                }) if more || !pending.is_empty() => match gather(&mut pending, services) {
                    Err(msg) => {
                        pending.clear();
                        Response::err(id, "invalid", msg)
                    }
                    Ok(()) if more => Response::ok(id, None),
                    Ok(()) => {
                        let services = std::mem::take(&mut pending);
                        let n = services.len();
                        let r = state
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .apply(Op::Restore {
                                services,
                                more: false,
                            });
                        eprintln!(
                            "rvsd: control: {peer}: {}: restore of {n} services in parts",
                            if r.is_ok() { "applied" } else { "refused" }
                        );
                        match r {
                            Ok(result) => Response::ok(id, result),
                            Err((code, msg)) => Response::err(id, code, msg),
                        }
                    }
                },
                Ok(req) => {
                    let logged =
                        (!read_only(&req.op)).then(|| serde_json::to_string(&req.op).unwrap_or_default());
                    let r = state.lock().unwrap_or_else(|p| p.into_inner()).apply(req.op);
                    if let Some(op) = logged {
                        let outcome = match &r {
                            Ok(_) => "applied".to_string(),
                            Err((code, _)) => format!("refused ({code})"),
                        };
                        let op: String = op.chars().take(300).collect();
                        eprintln!("rvsd: control: {peer}: {outcome}: {op}");
                    }
                    match r {
                        Ok(result) => Response::ok(req.id, result),
                        Err((code, msg)) => Response::err(req.id, code, msg),
                    }
                }
            },
            Read1::TooLong => {
                fatal(
                    &mut writer,
                    "too_long",
                    format!("request longer than {MAX_LINE} bytes; closing"),
                );
                return;
            }
            Read1::NotUtf8 => Response::err(0, "bad_request", "the request is not UTF-8"),
            Read1::TimedOut => {
                fatal(
                    &mut writer,
                    "timeout",
                    format!(
                        "request line not complete within {:?} of its first byte; closing",
                        opts.request_timeout
                    ),
                );
                return;
            }
            Read1::Idle => {
                fatal(
                    &mut writer,
                    "idle",
                    format!("no request for {:?}; closing", opts.idle_timeout),
                );
                return;
            }
            Read1::Closed => return,
        };
        if writeln!(writer, "{}", line(&resp)).is_err() {
            return;
        }
        a.busy.store(false, Ordering::Relaxed);
        a.last
            .store(a.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}
