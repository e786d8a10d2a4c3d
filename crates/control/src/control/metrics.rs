//! `/metrics` in Prometheus's text format (version 0.0.4), served by a thread of its own on
//! `[metrics] listen`. A scrape reads the counters the workers publish (relaxed atomics) and
//! the control state under its lock, the same way `rvsadm -L` does: it never touches a
//! worker's hot path. Counters are since rvsd started (`-Z` does not reset them: Prometheus
//! counters only go up).

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};

use super::state::ControlState;

/// One metric family: its help and type written, then its samples.
pub struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl Family<'_> {
    pub fn sample<V: std::fmt::Display>(&mut self, labels: &[(&str, &str)], value: V) {
        let _ = write!(self.out, "{}", self.name);
        if !labels.is_empty() {
            let l: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            let _ = write!(self.out, "{{{}}}", l.join(","));
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// Starts family `name` in `out`.
pub fn family<'a>(out: &'a mut String, name: &'static str, kind: &str, help: &str) -> Family<'a> {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    Family { out, name }
}

/// A label value as the text format wants it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

pub struct MetricsServer {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
    pub addr: SocketAddr,
}

impl MetricsServer {
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
    }
}

/// Serves `GET /metrics` on `addr` until stopped.
pub fn serve(addr: SocketAddr, state: Arc<Mutex<ControlState>>) -> Result<MetricsServer> {
    let listener = TcpListener::bind(addr).with_context(|| format!("metrics.listen: binding {addr}"))?;
    let addr = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("rvs-metrics".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((s, _)) => answer(s, &state),
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })?
    };
    Ok(MetricsServer { stop, thread, addr })
}

/// One request: `GET /metrics` gets the exposition, anything else a 404 or 400.
fn answer(mut s: TcpStream, state: &Mutex<ControlState>) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 8192 {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf);
    let mut words = head.split_whitespace();
    let (status, body, kind) = match (words.next(), words.next()) {
        (Some("GET"), Some("/metrics")) => (
            "200 OK",
            state.lock().unwrap_or_else(|p| p.into_inner()).metrics(),
            "text/plain; version=0.0.4; charset=utf-8",
        ),
        (Some("GET"), Some(_)) => ("404 Not Found", "try /metrics\n".to_string(), "text/plain"),
        _ => ("400 Bad Request", "GET /metrics\n".to_string(), "text/plain"),
    };
    let _ = write!(
        s,
        "HTTP/1.0 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}
