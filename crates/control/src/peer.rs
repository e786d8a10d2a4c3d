//! Configuration kept in step with the peer director (`[peer]`).
//!
//! Each director sends its table (services with their real servers and checks, and the
//! timeouts) to the peer's `listen` address, and takes the peer's on its own. Two TCP
//! connections, one each way, through the twins like any of the host's traffic.
//!
//! - **Authentication**: the listener sends a random 32-byte nonce; the dialer answers with
//!   HMAC-SHA256(key, "rvs-peer-1" || nonce). Every message after that is a length, a JSON
//!   table, and HMAC-SHA256(key, nonce || sequence || table): a message from anyone without
//!   the key, or replayed, or altered, is refused (counted) and the connection closed.
//! - **What is sent**: the whole table, on connect (so a director that (re)joins gets it
//!   first) and after each change (checked every 50 ms, so a change reaches the peer well
//!   within a second).
//! - **Which side wins**: each table carries the wall-clock time of its last change made by an
//!   operator (rvsadm or the socket) and the director that made it. A table is taken only if
//!   it is newer; a table loaded from the config file has time 0 and never replaces anything.
//!   So after a partition the director changed last wins, whole: the other's changes made
//!   while apart are replaced, not merged (logged on the losing side).
//! - The dialer's connecting is also the sign that the peer (re)joined: this director's
//!   workers then send their whole connection table to the sync daemon again.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use rvs_api::config::RawService;
use rvs_api::ha::PeerConfig;
use serde::{Deserialize, Serialize};

use crate::control::ControlState;

const HELLO: &[u8] = b"rvs-peer-1";
const NONCE: usize = 32;
const TAG: usize = 32;
/// The largest table accepted (16 MiB of JSON: tens of thousands of services).
const MAX_TABLE: usize = 16 << 20;
const CHECK_EVERY: Duration = Duration::from_millis(50);
const RETRY_AFTER: Duration = Duration::from_millis(500);
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// An empty message every second keeps the link checked both ways: the dialer's writes fail
/// within TCP_USER_TIMEOUT of the peer's death, and the listener drops a link silent for
/// IO_TIMEOUT (a dead peer's, or one that never authenticates).
const HEARTBEAT: Duration = Duration::from_secs(1);
const USER_TIMEOUT: Duration = Duration::from_secs(3);
/// Connections from the peer served at once (it needs one; the rest are strays or stale).
const MAX_INBOUND: usize = 4;

/// When a table was last changed by an operator, and on which director: tables are ordered
/// by it (time first).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Stamp {
    pub time_ms: u64,
    pub origin: u64,
}

/// What one director sends the other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerTable {
    pub stamp: Stamp,
    /// tcp, tcpfin, udp.
    pub timeouts: (u32, u32, u32),
    pub services: Vec<RawService>,
    /// The classifier's rules (`-f` services need them).
    #[serde(default)]
    pub marks: Vec<rvs_api::mark::RawMark>,
}

#[derive(Debug, Default)]
pub struct PeerCounters {
    pub connects: AtomicU64,
    pub tables_sent: AtomicU64,
    pub tables_applied: AtomicU64,
    /// Tables not newer than this director's.
    pub tables_older: AtomicU64,
    /// Tables that did not validate here (changed nothing).
    pub tables_invalid: AtomicU64,
    pub auth_failed: AtomicU64,
    pub bad_messages: AtomicU64,
}

impl PeerCounters {
    pub fn list(&self) -> Vec<(String, u64)> {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        [
            ("peer_connects", g(&self.connects)),
            ("peer_tables_sent", g(&self.tables_sent)),
            ("peer_tables_applied", g(&self.tables_applied)),
            ("peer_tables_older", g(&self.tables_older)),
            ("peer_tables_invalid", g(&self.tables_invalid)),
            ("peer_auth_failed", g(&self.auth_failed)),
            ("peer_bad_messages", g(&self.bad_messages)),
        ]
        .into_iter()
        .map(|(n, v)| (n.to_string(), v))
        .collect()
    }
}

fn bump(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

/// The two threads of the peer link.
pub struct Peer {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

type State = Arc<Mutex<ControlState>>;

fn lock(s: &State) -> std::sync::MutexGuard<'_, ControlState> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

impl Peer {
    /// Binds the listener (an error if the address is not this host's) and starts both
    /// threads.
    pub fn start(cfg: PeerConfig, state: State, counters: Arc<PeerCounters>) -> anyhow::Result<Peer> {
        let listener = TcpListener::bind(cfg.listen)
            .map_err(|e| anyhow::anyhow!("[peer] listen = {}: {e} (an address of a twin?)", cfg.listen))?;
        listener.set_nonblocking(true)?;
        let key = hmac::Key::new(hmac::HMAC_SHA256, &cfg.key);
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        {
            let (key, state, stop, c) = (key.clone(), state.clone(), stop.clone(), counters.clone());
            threads.push(
                std::thread::Builder::new()
                    .name("rvs-peer-in".into())
                    .spawn(move || accept_loop(listener, &key, &state, &stop, &c))?,
            );
        }
        {
            let (stop, c) = (stop.clone(), counters);
            let to = cfg.address;
            threads.push(
                std::thread::Builder::new()
                    .name("rvs-peer-out".into())
                    .spawn(move || dial_loop(to, &key, &state, &stop, &c))?,
            );
        }
        Ok(Peer { stop, threads })
    }

    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn tag(key: &hmac::Key, nonce: &[u8], seq: u64, body: &[u8]) -> hmac::Tag {
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(nonce);
    ctx.update(&seq.to_be_bytes());
    ctx.update(body);
    ctx.sign()
}

fn hello_tag(key: &hmac::Key, nonce: &[u8]) -> hmac::Tag {
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(HELLO);
    ctx.update(nonce);
    ctx.sign()
}

/// Reads exactly `buf.len()` bytes within IO_TIMEOUT, giving up when `stop` is set (the
/// socket has a short read timeout).
fn read_full(s: &mut TcpStream, buf: &mut [u8], stop: &AtomicBool) -> std::io::Result<()> {
    let mut at = 0;
    let start = Instant::now();
    while at < buf.len() {
        match s.read(&mut buf[at..]) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => at += n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if stop.load(Ordering::Relaxed) || start.elapsed() > IO_TIMEOUT {
                    return Err(e);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn accept_loop(
    l: TcpListener,
    key: &hmac::Key,
    state: &State,
    stop: &Arc<AtomicBool>,
    c: &Arc<PeerCounters>,
) {
    let active = Arc::new(AtomicU64::new(0));
    while !stop.load(Ordering::Relaxed) {
        match l.accept() {
            Ok((s, from)) => {
                if active.load(Ordering::Relaxed) as usize >= MAX_INBOUND {
                    continue; // dropped: the peer's own link gets a place when a stale one goes
                }
                active.fetch_add(1, Ordering::Relaxed);
                let (key, state, stop, c, mine) = (
                    key.clone(),
                    state.clone(),
                    stop.clone(),
                    c.clone(),
                    active.clone(),
                );
                let spawned = std::thread::Builder::new()
                    .name("rvs-peer-conn".into())
                    .spawn(move || {
                        if let Err(why) = serve(s, &key, &state, &stop, &c) {
                            eprintln!("rvsd: peer: {from}: {why}");
                        }
                        mine.fetch_sub(1, Ordering::Relaxed);
                    });
                if spawned.is_err() {
                    active.fetch_sub(1, Ordering::Relaxed);
                }
            }
            Err(_) => std::thread::sleep(CHECK_EVERY),
        }
    }
}

/// One connection from the peer: authenticate it, then apply its tables.
fn serve(
    mut s: TcpStream,
    key: &hmac::Key,
    state: &State,
    stop: &AtomicBool,
    c: &PeerCounters,
) -> Result<(), String> {
    s.set_nonblocking(false).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(IO_TIMEOUT)).map_err(|e| e.to_string())?;
    let mut nonce = [0u8; NONCE];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| "no randomness".to_string())?;
    s.write_all(&nonce).map_err(|e| e.to_string())?;
    let mut answer = [0u8; TAG];
    read_full(&mut s, &mut answer, stop).map_err(|e| e.to_string())?;
    if hmac::verify(key, &[HELLO, &nonce[..]].concat(), &answer).is_err() {
        bump(&c.auth_failed);
        return Err("refused: it does not hold the pair's key".into());
    }
    let mut seq = 0u64;
    loop {
        let mut len = [0u8; 4];
        if let Err(e) = read_full(&mut s, &mut len, stop) {
            // Closed, stopping, or silent past the heartbeat: a dead peer's link goes.
            return match e.kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    if !stop.load(Ordering::Relaxed) =>
                {
                    Err("silent: the link is dropped".into())
                }
                _ => Ok(()),
            };
        }
        let n = u32::from_be_bytes(len) as usize;
        if n > MAX_TABLE {
            bump(&c.bad_messages);
            return Err(format!("refused: a {n}-byte message"));
        }
        let mut body = vec![0u8; n + TAG];
        read_full(&mut s, &mut body, stop).map_err(|e| {
            bump(&c.bad_messages);
            format!("truncated message: {e}")
        })?;
        let (table, t) = body.split_at(n);
        let mut signed = Vec::with_capacity(NONCE + 8 + n);
        signed.extend_from_slice(&nonce);
        signed.extend_from_slice(&seq.to_be_bytes());
        signed.extend_from_slice(table);
        if hmac::verify(key, &signed, t).is_err() {
            bump(&c.bad_messages);
            return Err("refused: a message without a valid signature".into());
        }
        seq += 1;
        if n == 0 {
            continue; // a heartbeat
        }
        let table: PeerTable = match serde_json::from_slice(table) {
            Ok(t) => t,
            Err(e) => {
                bump(&c.bad_messages);
                return Err(format!("refused: {e}"));
            }
        };
        match lock(state).apply_peer(table) {
            Ok(true) => bump(&c.tables_applied),
            Ok(false) => bump(&c.tables_older),
            Err(m) => {
                bump(&c.tables_invalid);
                eprintln!("rvsd: peer: its table does not validate here, nothing changed: {m}");
            }
        }
    }
}

fn dial_loop(to: SocketAddr, key: &hmac::Key, state: &State, stop: &AtomicBool, c: &PeerCounters) {
    while !stop.load(Ordering::Relaxed) {
        if let Ok(s) = TcpStream::connect_timeout(&to, Duration::from_secs(1)) {
            bump(&c.connects);
            // The peer is (back) up: it gets our connections too.
            lock(state).resync_peer();
            let _ = push(s, key, state, stop, c);
        }
        let until = Instant::now() + RETRY_AFTER;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(CHECK_EVERY);
        }
    }
}

/// Sends our table on connect and after each change, until the connection fails.
fn push(
    mut s: TcpStream,
    key: &hmac::Key,
    state: &State,
    stop: &AtomicBool,
    c: &PeerCounters,
) -> std::io::Result<()> {
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    s.set_nodelay(true)?;
    // Written data unacknowledged this long closes the link: a dead peer is noticed within
    // a few seconds, not after TCP's quarter of an hour of retransmissions.
    socket2::SockRef::from(&s).set_tcp_user_timeout(Some(USER_TIMEOUT))?;
    let mut nonce = [0u8; NONCE];
    s.read_exact(&mut nonce)?;
    s.write_all(hello_tag(key, &nonce).as_ref())?;
    let mut sent: Option<Stamp> = None;
    let mut seq = 0u64;
    let mut last_write = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let table = {
            let st = lock(state);
            (sent != Some(st.stamp())).then(|| st.peer_table())
        };
        let body = match &table {
            Some(t) => serde_json::to_vec(t).map_err(std::io::Error::other)?,
            None if last_write.elapsed() >= HEARTBEAT => Vec::new(),
            None => {
                std::thread::sleep(CHECK_EVERY);
                continue;
            }
        };
        {
            let mut frame = Vec::with_capacity(4 + body.len() + TAG);
            frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
            frame.extend_from_slice(&body);
            frame.extend_from_slice(tag(key, &nonce, seq, &body).as_ref());
            s.write_all(&frame)?;
            seq += 1;
            last_write = Instant::now();
            if let Some(t) = table {
                sent = Some(t.stamp);
                bump(&c.tables_sent);
            }
        }
        std::thread::sleep(CHECK_EVERY);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_order_by_time_then_origin() {
        let a = Stamp {
            time_ms: 5,
            origin: 9,
        };
        let b = Stamp {
            time_ms: 6,
            origin: 1,
        };
        assert!(b > a);
        assert!(
            Stamp {
                time_ms: 5,
                origin: 10
            } > a
        );
        assert!(Stamp::default() < a);
    }

    #[test]
    fn a_tag_binds_the_nonce_the_sequence_and_the_body() {
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"0123456789abcdef");
        let t = tag(&key, b"n1", 0, b"{}");
        assert_ne!(t.as_ref(), tag(&key, b"n2", 0, b"{}").as_ref());
        assert_ne!(t.as_ref(), tag(&key, b"n1", 1, b"{}").as_ref());
        assert_ne!(t.as_ref(), tag(&key, b"n1", 0, b"{ }").as_ref());
        let other = hmac::Key::new(hmac::HMAC_SHA256, b"fedcba9876543210");
        assert_ne!(t.as_ref(), tag(&other, b"n1", 0, b"{}").as_ref());
    }
}
