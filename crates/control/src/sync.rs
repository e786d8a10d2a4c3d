//! The IPVS sync daemon: a master thread that sends the workers' connection records, and a
//! backup thread that receives a peer's and hands them to the workers that own the flows. Both
//! speak the kernel's protocol (version 1) through kernel UDP sockets bound to a port's twin,
//! so the messages travel the host path like the director's other traffic.
//!
//! - Master: records come from every worker's bounded queue; they are packed into messages of
//!   at most `maxlen` bytes, sent when full, and any partial message at most 50 ms after its
//!   first record (the kernel waits up to 2 s; a takeover wants fresh copies).
//! - Backup: a message is decoded whole or refused whole (counted by reason); each record goes
//!   to the queue of the worker that owns its flow, templates to every worker. A full queue
//!   is a counted loss: the thread never waits on a worker and a worker never on it.
//! - Our own messages do not come back: the master's socket has multicast loop off.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rvs_api::ha::{SyncDaemonConfig, SyncRole};
use rvs_core::path::owner_of;
use rvs_core::sync::{decode, MessageBuilder, SyncError};
use rvs_core::SyncRefusal;
use rvs_dataplane::Shared;
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};

/// How long a partial message may wait for more records.
const FLUSH_AFTER: Duration = Duration::from_millis(50);
/// The threads look at their stop flag at least this often.
const POLL: Duration = Duration::from_millis(100);

/// Counters of the two threads (each written by one thread only).
#[derive(Debug, Default)]
pub struct SyncCounters {
    pub messages_sent: AtomicU64,
    pub conns_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub send_errors: AtomicU64,
    pub messages_received: AtomicU64,
    pub conns_received: AtomicU64,
    pub bytes_received: AtomicU64,
    /// Records skipped alone (unknown protocol or state, persistence-engine data).
    pub conns_skipped: AtomicU64,
    /// Records the owner worker's queue had no room for.
    pub queue_full: AtomicU64,
    /// Messages refused whole, by reason.
    pub refused: [AtomicU64; SyncError::ALL.len()],
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

struct Running {
    cfg: SyncDaemonConfig,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Running {
    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The master and backup daemons (either, both or none), started and stopped at run time.
pub struct SyncDaemons {
    shared: Arc<Shared>,
    workers: u16,
    master: Option<Running>,
    backup: Option<Running>,
    pub counters: Arc<SyncCounters>,
}

impl std::fmt::Debug for SyncDaemons {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncDaemons")
            .field("running", &self.running())
            .finish()
    }
}

fn ifindex(name: &str) -> Result<u32, String> {
    rvs_twin::Netlink::new()
        .and_then(|mut nl| nl.link_index(name))
        .map_err(|e| {
            format!("no interface {name:?} in rvsd's network namespace (the sync daemon runs on a port's twin, host_interface): {e}")
        })
}

fn socket_for(cfg: &SyncDaemonConfig) -> io::Result<Socket> {
    let domain = if cfg.group.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    s.bind_device(Some(cfg.mcast_interface.as_bytes()))?;
    Ok(s)
}

fn master_socket(cfg: &SyncDaemonConfig, index: u32) -> io::Result<Socket> {
    let s = socket_for(cfg)?;
    match cfg.group {
        IpAddr::V4(_) => {
            s.set_multicast_loop_v4(false)?;
            s.set_multicast_ttl_v4(cfg.ttl as u32)?;
        }
        IpAddr::V6(_) => {
            s.set_multicast_if_v6(index)?;
            s.set_multicast_loop_v6(false)?;
            s.set_multicast_hops_v6(cfg.ttl as u32)?;
        }
    }
    s.connect(&SockAddr::from(SocketAddr::new(cfg.group, cfg.port)))?;
    Ok(s)
}

fn backup_socket(cfg: &SyncDaemonConfig, index: u32) -> io::Result<std::net::UdpSocket> {
    let s = socket_for(cfg)?;
    s.set_reuse_address(true)?;
    s.bind(&SockAddr::from(SocketAddr::new(cfg.group, cfg.port)))?;
    match cfg.group {
        IpAddr::V4(g) => s.join_multicast_v4_n(&g, &InterfaceIndexOrAddress::Index(index))?,
        IpAddr::V6(g) => s.join_multicast_v6(&g, index)?,
    }
    s.set_read_timeout(Some(POLL))?;
    Ok(s.into())
}

impl SyncDaemons {
    pub fn new(shared: Arc<Shared>, workers: u16) -> SyncDaemons {
        SyncDaemons {
            shared,
            workers,
            master: None,
            backup: None,
            counters: Arc::new(SyncCounters::default()),
        }
    }

    fn slot(&mut self, role: SyncRole) -> &mut Option<Running> {
        match role {
            SyncRole::Master => &mut self.master,
            SyncRole::Backup => &mut self.backup,
        }
    }

    /// Starts a daemon; a role already running is refused (as the kernel refuses it).
    pub fn start(&mut self, cfg: SyncDaemonConfig) -> Result<(), String> {
        let role = cfg.state;
        if self.slot(role).is_some() {
            return Err(format!(
                "a {} sync daemon is already running (rvsadm --stop-daemon {} first)",
                role.name(),
                role.name()
            ));
        }
        let index = ifindex(&cfg.mcast_interface)?;
        let stop = Arc::new(AtomicBool::new(false));
        let counters = self.counters.clone();
        let shared = self.shared.clone();
        let what = |e: io::Error| format!("{} sync daemon on {}: {e}", role.name(), cfg.mcast_interface);
        let handle = match role {
            SyncRole::Master => {
                let sock = master_socket(&cfg, index).map_err(what)?;
                let (stop2, cfg2) = (stop.clone(), cfg.clone());
                // Workers make records only from now on, and stop before the thread does.
                shared.sync.master.store(true, Ordering::Relaxed);
                std::thread::Builder::new()
                    .name("rvs-sync-master".into())
                    .spawn(move || master(sock, &cfg2, &shared, &counters, &stop2))
            }
            SyncRole::Backup => {
                let sock = backup_socket(&cfg, index).map_err(what)?;
                let (stop2, cfg2, workers) = (stop.clone(), cfg.clone(), self.workers);
                std::thread::Builder::new()
                    .name("rvs-sync-backup".into())
                    .spawn(move || backup(sock, &cfg2, &shared, workers, &counters, &stop2))
            }
        }
        .map_err(|e| format!("cannot start the {} sync thread: {e}", role.name()))?;
        *self.slot(role) = Some(Running {
            cfg,
            stop,
            handle: Some(handle),
        });
        // A master that starts sends what the workers already hold, as a peer would want.
        if role == SyncRole::Master {
            self.resync();
        }
        Ok(())
    }

    /// Asks every worker to send its whole table again (when a master daemon runs).
    pub fn resync(&self) {
        if self.master.is_none() {
            return;
        }
        for q in &self.shared.commands {
            let _ = q.push(rvs_dataplane::Command::Resync);
        }
    }

    pub fn stop(&mut self, role: SyncRole) -> Result<(), String> {
        let Some(mut r) = self.slot(role).take() else {
            return Err(format!("no {} sync daemon is running", role.name()));
        };
        if role == SyncRole::Master {
            self.shared.sync.master.store(false, Ordering::Relaxed);
        }
        r.halt();
        Ok(())
    }

    /// The daemons running, master first (`ipvsadm -L --daemon`'s order).
    pub fn running(&self) -> Vec<SyncDaemonConfig> {
        [&self.master, &self.backup]
            .into_iter()
            .flatten()
            .map(|r| r.cfg.clone())
            .collect()
    }

    /// Every sync counter by name: the threads' and the workers' summed.
    pub fn counter_list(&self) -> Vec<(String, u64)> {
        let c = &self.counters;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut v: Vec<(String, u64)> = [
            ("messages_sent", g(&c.messages_sent)),
            ("conns_sent", g(&c.conns_sent)),
            ("bytes_sent", g(&c.bytes_sent)),
            ("send_errors", g(&c.send_errors)),
            ("messages_received", g(&c.messages_received)),
            ("conns_received", g(&c.conns_received)),
            ("bytes_received", g(&c.bytes_received)),
            ("conns_skipped", g(&c.conns_skipped)),
            ("queue_full", g(&c.queue_full)),
        ]
        .into_iter()
        .map(|(n, x)| (n.to_string(), x))
        .collect();
        for (e, a) in SyncError::ALL.iter().zip(&c.refused) {
            v.push((format!("refused_{}", e.name()), g(a)));
        }
        let mut w = rvs_core::SyncStats::default();
        for wc in &self.shared.counters {
            let s = wc.sync_stats();
            w.emitted += s.emitted;
            w.lost += s.lost;
            w.installed += s.installed;
            w.updated += s.updated;
            for (a, b) in w.refused.iter_mut().zip(s.refused) {
                *a += b;
            }
        }
        v.push(("records_emitted".into(), w.emitted));
        v.push(("records_lost".into(), w.lost));
        v.push(("installed".into(), w.installed));
        v.push(("updated".into(), w.updated));
        for (r, n) in SyncRefusal::ALL.iter().zip(w.refused) {
            v.push((format!("refused_{}", r.name()), n));
        }
        v
    }
}

impl Drop for SyncDaemons {
    fn drop(&mut self) {
        self.shared.sync.master.store(false, Ordering::Relaxed);
        for r in [&mut self.master, &mut self.backup].into_iter().flatten() {
            r.halt();
        }
    }
}

fn send(sock: &Socket, msg: &[u8], c: &SyncCounters) {
    match sock.send(msg) {
        Ok(n) => {
            add(&c.messages_sent, 1);
            add(&c.bytes_sent, n as u64);
            add(&c.conns_sent, msg.get(4).copied().unwrap_or(0) as u64);
        }
        Err(_) => add(&c.send_errors, 1),
    }
}

fn master(sock: Socket, cfg: &SyncDaemonConfig, shared: &Shared, c: &SyncCounters, stop: &AtomicBool) {
    let mut b = MessageBuilder::new(cfg.syncid, cfg.maxlen);
    let mut first: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        let mut got = 0;
        for q in &shared.sync.out {
            while let Some(r) = q.pop() {
                got += 1;
                first.get_or_insert_with(Instant::now);
                if let Some(m) = b.push(&r) {
                    send(&sock, &m, c);
                    first = Some(Instant::now());
                }
            }
        }
        if first.is_some_and(|t| t.elapsed() >= FLUSH_AFTER) {
            if let Some(m) = b.finish() {
                send(&sock, &m, c);
            }
            first = None;
        }
        if got == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    // What the workers handed over before the stop still goes out.
    for q in &shared.sync.out {
        while let Some(r) = q.pop() {
            if let Some(m) = b.push(&r) {
                send(&sock, &m, c);
            }
        }
    }
    if let Some(m) = b.finish() {
        send(&sock, &m, c);
    }
}

fn backup(
    sock: std::net::UdpSocket,
    cfg: &SyncDaemonConfig,
    shared: &Shared,
    workers: u16,
    c: &SyncCounters,
    stop: &AtomicBool,
) {
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        let n = match sock.recv(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(_) => {
                std::thread::sleep(POLL);
                continue;
            }
        };
        let data = &buf[..n];
        add(&c.bytes_received, n as u64);
        let msg = match decode(data, cfg.syncid) {
            Ok(m) => m,
            Err(e) => {
                add(&c.refused[e as usize], 1);
                continue;
            }
        };
        add(&c.messages_received, 1);
        add(&c.conns_received, msg.conns.len() as u64);
        add(&c.conns_skipped, msg.skipped as u64);
        for r in msg.conns {
            if r.is_template() {
                // Templates are shared by the workers: any one installs it.
                if shared.sync.inbound[0].push(r).is_err() {
                    add(&c.queue_full, 1);
                }
                continue;
            }
            // A FullNAT connection belongs to the worker that owns its local port.
            let w = match &r.fullnat {
                Some(f) => owner_of(r.protocol, f.laddr, f.lport, workers.max(1)),
                None => owner_of(r.protocol, r.client, r.cport, workers.max(1)),
            };
            if shared.sync.inbound[w as usize].push(r).is_err() {
                add(&c.queue_full, 1);
            }
        }
    }
}
