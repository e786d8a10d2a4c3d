//! The poll loop of one worker.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use crossbeam_queue::ArrayQueue;
use dpdk::{Burst, Mbuf, Mempool, RxQueue, TxQueue, BURST_SIZE};
use rvs_core::conn::persist::PersistTable;
use rvs_core::sync::SyncConn;
use rvs_core::{Director, DirectorConfig, Tables, Verdict};

use crate::counters::{DpDrop, WorkerCounters};
use crate::host::{HostRings, TokenBucket};
use crate::neighbor::{self, NeighborMap, Neighbors};

/// What the control thread and the workers share.
#[derive(Debug)]
pub struct Shared {
    pub tables: ArcSwap<Tables>,
    pub neighbors: Neighbors,
    pub stop: AtomicBool,
    pub counters: Vec<WorkerCounters>,
    /// Per worker: requests from the control thread, polled once per loop.
    pub commands: Vec<ArrayQueue<Command>>,
    /// Bumped by the control thread at each publication of `tables`.
    pub generation: AtomicU64,
    /// Per worker: the generation it loaded at the start of its last loop.
    pub seen: Vec<AtomicU64>,
    /// The host path's rings, when some port has a kernel twin.
    pub host: Option<HostRings>,
    /// Connection sync between the workers and the sync daemon.
    pub sync: SyncQueues,
    /// Persistence templates, one table for every worker.
    pub templates: Arc<PersistTable>,
}

/// Records a worker hands to the sync daemon, or the daemon to a worker, per worker.
const SYNC_QUEUE: usize = 16384;
/// Received records a worker installs per loop, so a sync flood cannot take its time.
const SYNC_INSTALL_PER_LOOP: usize = 256;

/// The queues of connection sync: bounded both ways, so neither side ever waits on the other.
#[derive(Debug)]
pub struct SyncQueues {
    /// Whether a master sync daemon runs (workers produce records only then).
    pub master: AtomicBool,
    /// Per worker: records for the master daemon to send.
    pub out: Vec<ArrayQueue<SyncConn>>,
    /// Per worker: records the backup daemon received, for the worker that owns the flow.
    pub inbound: Vec<ArrayQueue<SyncConn>>,
}

impl SyncQueues {
    fn new(workers: usize) -> SyncQueues {
        SyncQueues {
            master: AtomicBool::new(false),
            out: (0..workers).map(|_| ArrayQueue::new(SYNC_QUEUE)).collect(),
            inbound: (0..workers).map(|_| ArrayQueue::new(SYNC_QUEUE)).collect(),
        }
    }
}

/// A request from the control thread to one worker (for what only the worker can see).
#[derive(Debug)]
pub enum Command {
    /// Send a copy of the connection table.
    DumpConns(std::sync::mpsc::Sender<Vec<ConnEntry>>),
    /// Hand every syncable connection and template to the sync daemon again, in steps (a
    /// peer director (re)joined).
    Resync,
}

/// One connection as `ipvsadm -Lc` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnEntry {
    pub protocol: u8,
    pub state: String,
    pub expires_ms: u64,
    pub client: (IpAddr, u16),
    pub virtual_: (IpAddr, u16),
    pub real: (IpAddr, u16),
    pub template: bool,
}

impl Shared {
    pub fn new(tables: Tables, neighbors: Neighbors, workers: usize, real_capacity: usize) -> Shared {
        Shared {
            tables: ArcSwap::from_pointee(tables),
            neighbors,
            stop: AtomicBool::new(false),
            counters: (0..workers).map(|_| WorkerCounters::new(real_capacity)).collect(),
            commands: (0..workers).map(|_| ArrayQueue::new(16)).collect(),
            generation: AtomicU64::new(0),
            seen: (0..workers).map(|_| AtomicU64::new(0)).collect(),
            host: None,
            sync: SyncQueues::new(workers),
            templates: Arc::new(PersistTable::new(1024, 0x5eed)),
        }
    }

    /// The same, with room for `capacity` persistence templates hashed with `seed` (random
    /// in production, so clients cannot aim at one probe run).
    pub fn with_templates(mut self, capacity: usize, seed: u64) -> Shared {
        self.templates = Arc::new(PersistTable::new(capacity, seed));
        self
    }

    /// The same, with the host path's rings.
    pub fn with_host(mut self, host: HostRings) -> Shared {
        self.host = Some(host);
        self
    }

    /// Publishes new tables; returns their generation.
    pub fn publish(&self, tables: Tables) -> u64 {
        // Tables first, then the number: a worker that reads the new number loads the tables
        // after it, so it gets these tables (or later ones).
        self.tables.store(Arc::new(tables));
        self.generation.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Whether every worker has started a loop with generation `g` or later.
    pub fn all_seen(&self, g: u64) -> bool {
        self.seen.iter().all(|s| s.load(Ordering::Acquire) >= g)
    }
}

fn dump<A: rvs_core::conn::Addr>(t: &rvs_core::conn::ConnTable<A>, now: u64, out: &mut Vec<ConnEntry>) {
    use rvs_core::conn::state::{SctpState, TcpState};
    for (_, c) in t.iter() {
        let state = match c.proto {
            6 => TcpState::from_u8(c.state).name().to_string(),
            132 => SctpState::from_u8(c.state).name().to_string(),
            _ => "UDP".to_string(),
        };
        out.push(ConnEntry {
            protocol: c.proto,
            state,
            expires_ms: c.expires.saturating_sub(now),
            client: (c.client.ip(), c.cport),
            virtual_: (c.vaddr.ip(), c.vport),
            real: (c.raddr.ip(), c.rport),
            template: false,
        });
    }
}

fn dump_templates(t: &PersistTable, tables: &Tables, now: u64, out: &mut Vec<ConnEntry>) {
    for v in t.live(now) {
        let real = tables
            .template_service(v.key.proto, v.key.vaddr, v.key.vport)
            .and_then(|s| s.real_by_id(v.real));
        let Some(r) = real else { continue };
        // As IPVS lists them: an address service's template under its protocol, a mark's as
        // IP (protocol 0) with the mark as its virtual address.
        out.push(ConnEntry {
            protocol: v.key.proto,
            state: "NONE".to_string(),
            expires_ms: v.expires.saturating_sub(now),
            client: (v.key.client, 0),
            virtual_: (v.key.vaddr, v.key.vport),
            real: (r.addr, r.port),
            template: true,
        });
    }
}

/// A worker's queues: index i is the port at position i of the config (and of `Tables.net`).
#[derive(Debug)]
pub struct WorkerPorts {
    pub rx: Vec<RxQueue>,
    pub tx: Vec<TxQueue>,
}

/// Frames waiting for a next hop's MAC, bounded; asked again every second, dropped after 3 s.
const PENDING_MAX: usize = 256;
const ASK_EVERY_MS: u64 = 1000;
const GIVE_UP_MS: u64 = 3000;
/// How often counters are published (in poll loops).
const PUBLISH_EVERY: u32 = 1024;

#[derive(Debug)]
struct Pending {
    hop: IpAddr,
    port: u16,
    frame: Mbuf,
    since: u64,
}

#[derive(Debug)]
pub struct Worker {
    id: u16,
    director: Director,
    ports: WorkerPorts,
    tx_bursts: Vec<Burst>,
    /// Port position by DPDK port id, for frames that arrive through a redirect ring.
    position: Vec<u16>,
    /// The next hops resolved in this loop, and their MACs (from this loop's neighbor
    /// snapshot: forgotten when the loop takes a new one).
    hops: crate::neighbor::HopCache,
    rings_in: Vec<Arc<ArrayQueue<Mbuf>>>,
    /// Indexed by worker id; None for this worker itself.
    rings_out: Vec<Option<Arc<ArrayQueue<Mbuf>>>>,
    pending: Vec<Pending>,
    asked: Vec<(IpAddr, u64)>,
    pool: Mempool,
    shared: Arc<Shared>,
    dp_drops: [u64; DpDrop::COUNT],
    /// This worker's share of the host path's rate.
    host_bucket: TokenBucket,
    redirected_in: u64,
    /// TSC cycles of poll loops that handled a frame (the busy share of the loop).
    busy_tsc: u64,
    tx: u64,
    tsc_start: u64,
    tsc_per_ms: u64,
    tsc_hz: u64,
    /// Nanoseconds per TSC tick, for the per-burst latency (a multiply, not a 128-bit
    /// division, every burst).
    ns_per_tsc: f64,
    /// Nanoseconds to process and transmit each non-empty burst.
    latency: hdrhistogram::Histogram<u64>,
}

/// What a worker leaves when it stops.
#[derive(Debug)]
pub struct WorkerResult {
    pub director: Director,
    /// Per-burst processing time in nanoseconds (receive to transmit, non-empty bursts).
    pub latency: hdrhistogram::Histogram<u64>,
}

impl Worker {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: DirectorConfig,
        ports: WorkerPorts,
        rings_in: Vec<Arc<ArrayQueue<Mbuf>>>,
        rings_out: Vec<Option<Arc<ArrayQueue<Mbuf>>>>,
        pool: Mempool,
        shared: Arc<Shared>,
        tsc_hz: u64,
    ) -> Worker {
        let max_id = ports.rx.iter().map(|q| q.port_id()).max().unwrap_or(0) as usize;
        let mut position = vec![u16::MAX; max_id + 1];
        for (i, q) in ports.rx.iter().enumerate() {
            position[q.port_id() as usize] = i as u16;
        }
        Worker {
            id: cfg.worker,
            director: Director::new(cfg).with_templates(shared.templates.clone()),
            tx_bursts: ports.tx.iter().map(|_| Burst::new()).collect(),
            ports,
            position,
            rings_in,
            rings_out,
            pending: Vec::with_capacity(PENDING_MAX),
            asked: Vec::with_capacity(PENDING_MAX),
            pool,
            host_bucket: shared
                .host
                .as_ref()
                .map_or(TokenBucket::new(1, 1), |h| TokenBucket::new(h.share.0, h.share.1)),
            shared,
            dp_drops: [0; DpDrop::COUNT],
            redirected_in: 0,
            hops: crate::neighbor::HopCache::default(),
            busy_tsc: 0,
            tx: 0,
            tsc_start: dpdk::tsc(),
            tsc_per_ms: (tsc_hz / 1000).max(1),
            tsc_hz: tsc_hz.max(1),
            ns_per_tsc: 1e9 / tsc_hz.max(1) as f64,
            latency: hdrhistogram::Histogram::new_with_bounds(1, 10_000_000_000, 3)
                .expect("valid histogram bounds"),
        }
    }

    pub fn id(&self) -> u16 {
        self.id
    }

    fn now_ms(&self) -> u64 {
        (dpdk::tsc() - self.tsc_start) / self.tsc_per_ms
    }

    /// Gratuitous ARP for every IPv4 VIP answered on a port, out of that port if it has an
    /// IPv4 address, so that routers and switches learn where the VIPs are now (after a start
    /// or a failover). Follow-host VIPs are announced when their twin takes them.
    fn announce(&mut self, t: &Tables) {
        for port in 0..t.net.ports.len() {
            let p = &t.net.ports[port];
            if p.v4.is_empty() {
                continue;
            }
            let mac = p.mac;
            let mut vips: Vec<std::net::Ipv4Addr> = t
                .vips_on(port as u16)
                .filter_map(|a| match a {
                    IpAddr::V4(v) => Some(v),
                    IpAddr::V6(_) => None,
                })
                .collect();
            vips.sort();
            for &vip in &vips {
                let Some(mut m) = self.pool.alloc() else { return };
                let frame = neighbor::arp_request(mac, vip, vip);
                if let Ok(buf) = m.append(frame.len()) {
                    buf.copy_from_slice(&frame);
                    self.send(port as u16, m);
                }
            }
        }
        self.flush();
    }

    /// Polls until `shared.stop` is set; then flushes and publishes the final counters.
    pub fn run(mut self) -> WorkerResult {
        if self.id == 0 {
            let t = self.shared.tables.load_full();
            self.announce(&t);
        }
        let mut loops = 0u32;
        let mut burst = Burst::new();
        let mut verdicts = [Verdict::Neighbor; BURST_SIZE];
        // The tables and the neighbor map are read through arc-swap guards, not cloned Arcs:
        // a clone per loop is a write to a reference count every worker shares.
        let shared = self.shared.clone();
        while !shared.stop.load(Ordering::Relaxed) {
            let loop_start = dpdk::tsc();
            let (rx_before, tx_before) = (self.director.stats.rx, self.tx);
            let now = self.now_ms();
            let generation = shared.generation.load(Ordering::SeqCst);
            let tables = shared.tables.load();
            shared.seen[self.id as usize].store(generation, Ordering::Release);
            let neigh = shared.neighbors.current();
            self.hops.new_loop();
            for p in 0..self.ports.rx.len() {
                let n = self.ports.rx[p].rx_burst(&mut burst);
                if n == 0 {
                    continue;
                }
                let t0 = dpdk::tsc();
                self.director
                    .process_burst(&tables, p as u16, burst.as_mut_slice(), now, &mut verdicts[..n]);
                // Each verdict read where the core wrote it (a copy made to pass it would be
                // read back from stores still in flight: a store-forwarding stall a frame).
                for (m, v) in burst.drain().zip(&verdicts[..n]) {
                    self.act(&tables, &neigh, m, v, now);
                }
                self.flush();
                let ns = (dpdk::tsc() - t0) as f64 * self.ns_per_tsc;
                self.latency.saturating_record(ns as u64);
            }
            self.drain_redirects(&tables, &neigh, now);
            self.drain_host();
            self.sync(&tables, now);
            if let Some(cmd) = self
                .shared
                .commands
                .get(self.id as usize)
                .and_then(ArrayQueue::pop)
            {
                self.command(cmd, now);
            }
            if !self.pending.is_empty() {
                self.resolve_pending(&tables, &neigh, now);
            }
            self.flush();
            self.director.advance(&tables, now);
            if self.director.stats.rx != rx_before || self.tx != tx_before {
                self.busy_tsc += dpdk::tsc() - loop_start;
            }
            loops = loops.wrapping_add(1);
            if loops.is_multiple_of(PUBLISH_EVERY) {
                self.publish(&tables);
            }
        }
        self.flush();
        let tables = self.shared.tables.load_full();
        self.pending.clear();
        self.director.drop_held();
        self.publish(&tables);
        WorkerResult {
            director: self.director,
            latency: self.latency,
        }
    }

    /// Hands this loop's sync records to the daemon (a full queue loses them, counted) and
    /// installs a bounded number of received ones; then follows the daemon's role.
    fn sync(&mut self, t: &Tables, now: u64) {
        let id = self.id as usize;
        let q = &self.shared.sync;
        let mut lost = 0;
        for r in self.director.sync_out().drain(..) {
            if q.out[id].push(r).is_err() {
                lost += 1;
            }
        }
        self.director.sync.lost += lost;
        // A resend goes at the pace the daemon takes it: only while the queue is half empty.
        if self.director.resyncing() && q.out[id].len() < SYNC_QUEUE / 2 {
            self.director.resync_step(t, now, 1024);
        }
        for _ in 0..SYNC_INSTALL_PER_LOOP {
            let Some(r) = q.inbound[id].pop() else { break };
            let _ = self.director.install(t, &r, now); // refusals are counted by reason
        }
        self.director.set_sync(q.master.load(Ordering::Relaxed));
    }

    fn command(&mut self, cmd: Command, now: u64) {
        match cmd {
            Command::DumpConns(reply) => {
                let mut out =
                    Vec::with_capacity(self.director.conns_v4().len() + self.director.conns_v6().len());
                dump(self.director.conns_v4(), now, &mut out);
                dump(self.director.conns_v6(), now, &mut out);
                if self.id == 0 {
                    // Templates are shared: listed once.
                    dump_templates(
                        self.director.templates(),
                        &self.shared.tables.load(),
                        now,
                        &mut out,
                    );
                }
                let _ = reply.send(out);
            }
            Command::Resync => self.director.start_resync(),
        }
    }

    fn act(&mut self, t: &Tables, neigh: &NeighborMap, mut m: Mbuf, v: &Verdict, now: u64) {
        match *v {
            Verdict::Forward { port, next_hop } => {
                // A burst mostly goes to a few next hops (the real servers, the clients'
                // gateway): the loop's cache of them answers before the neighbor map.
                let mac = match self.hops.get(&next_hop) {
                    Some(mac) => Some(mac),
                    None => neigh.get(&next_hop).map(|e| {
                        self.hops.put(next_hop, e.mac);
                        e.mac
                    }),
                };
                match mac {
                    Some(mac) => {
                        m.data_mut()[0..6].copy_from_slice(&mac);
                        self.send(port, m);
                    }
                    None => self.wait_for(t, next_hop, port, m, now),
                }
            }
            Verdict::Reply { port } => self.send(port, m),
            Verdict::Redirect { worker } => {
                match self.rings_out.get(worker as usize).and_then(Option::as_ref) {
                    Some(ring) => {
                        if ring.push(m).is_err() {
                            self.dp_drops[DpDrop::RedirectRingFull as usize] += 1;
                        }
                    }
                    None => self.dp_drops[DpDrop::NoRing as usize] += 1,
                }
            }
            Verdict::Neighbor => self.learn(&m),
            Verdict::ToHost { port, learn } => {
                if learn {
                    self.learn(&m);
                }
                self.send_up(port, m, now);
            }
            // Counted by the core (a held fragment was copied there); the mbuf is freed here.
            Verdict::Drop(_) | Verdict::Held => {}
        }
    }

    /// Teaches the neighbor table the binding an ARP packet or neighbor advertisement carries.
    fn learn(&self, m: &Mbuf) {
        if let Some((ip, mac)) = neighbor::arp_sender(m.data()).or_else(|| neighbor::na_target(m.data())) {
            self.shared.neighbors.learn(ip, mac);
        }
    }

    /// Up to the kernel twin of `port`, within this worker's share of the host path's rate.
    fn send_up(&mut self, port: u16, m: Mbuf, now: u64) {
        let Some(h) = &self.shared.host else {
            self.dp_drops[DpDrop::HostRingFull as usize] += 1;
            return;
        };
        if !self.host_bucket.take(now) {
            self.dp_drops[DpDrop::HostPathLimited as usize] += 1;
        } else if h.up.push((port, m)).is_err() {
            self.dp_drops[DpDrop::HostRingFull as usize] += 1;
        }
    }

    /// Transmits what the kernel sent on the twins of the ports this worker sends for.
    fn drain_host(&mut self) {
        let id = self.id as usize;
        for _ in 0..BURST_SIZE {
            let Some((port, m)) = self
                .shared
                .host
                .as_ref()
                .and_then(|h| h.down.get(id))
                .and_then(ArrayQueue::pop)
            else {
                break;
            };
            self.send(port, m);
        }
    }

    /// Frames other workers steered here: processed as if received on their port.
    fn drain_redirects(&mut self, t: &Tables, neigh: &NeighborMap, now: u64) {
        for r in 0..self.rings_in.len() {
            for _ in 0..BURST_SIZE {
                let Some(mut m) = self.rings_in[r].pop() else {
                    break;
                };
                self.redirected_in += 1;
                let port = self.position.get(m.port() as usize).copied().unwrap_or(u16::MAX);
                if port == u16::MAX {
                    self.dp_drops[DpDrop::BadPort as usize] += 1;
                    continue;
                }
                let v = self.director.process_steered(t, port, &mut m, now);
                self.act(t, neigh, m, &v, now);
            }
        }
        self.replay_fragments(t, neigh, now);
    }

    /// Fragments the core held for their first fragment, which has come: copied back into
    /// mbufs and processed (in their order of arrival) as if they arrived now.
    fn replay_fragments(&mut self, t: &Tables, neigh: &NeighborMap, now: u64) {
        if !self.director.has_released() {
            return;
        }
        for (port, frame) in self.director.take_released() {
            let Some(mut m) = self.pool.alloc() else {
                self.dp_drops[DpDrop::NoMbuf as usize] += 1;
                continue;
            };
            let Ok(buf) = m.append(frame.len()) else {
                self.dp_drops[DpDrop::NoMbuf as usize] += 1;
                continue;
            };
            buf.copy_from_slice(&frame);
            // Where it came in: a worker it is steered to finds its port by this.
            if let Some(q) = self.ports.rx.get(port as usize) {
                m.set_port(q.port_id());
            }
            let v = self.director.process_steered(t, port, &mut m, now);
            self.act(t, neigh, m, &v, now);
        }
    }

    #[inline]
    fn send(&mut self, port: u16, m: Mbuf) {
        let Some(b) = self.tx_bursts.get_mut(port as usize) else {
            self.dp_drops[DpDrop::BadPort as usize] += 1;
            return;
        };
        if let Err(m) = b.push(m) {
            // Full burst: flush it, then queue.
            self.tx += self.ports.tx[port as usize].tx_burst(b) as u64;
            self.dp_drops[DpDrop::TxFull as usize] += b.len() as u64;
            b.clear();
            let _ = b.push(m);
        }
    }

    fn flush(&mut self) {
        for (p, b) in self.tx_bursts.iter_mut().enumerate() {
            let mut tries = 0;
            while !b.is_empty() && tries < 4 {
                self.tx += self.ports.tx[p].tx_burst(b) as u64;
                tries += 1;
            }
            self.dp_drops[DpDrop::TxFull as usize] += b.len() as u64;
            b.clear();
        }
    }

    fn wait_for(&mut self, t: &Tables, hop: IpAddr, port: u16, frame: Mbuf, now: u64) {
        if self.pending.len() >= PENDING_MAX {
            self.dp_drops[DpDrop::NeighborUnresolved as usize] += 1;
            return;
        }
        self.pending.push(Pending {
            hop,
            port,
            frame,
            since: now,
        });
        if !self.asked.iter().any(|&(h, _)| h == hop) {
            self.asked.push((hop, now));
            self.ask(t, hop, port);
        }
    }

    /// Sends an ARP request or neighbor solicitation for `hop` out of `port`.
    fn ask(&mut self, t: &Tables, hop: IpAddr, port: u16) {
        let Some(p) = t.net.port(port) else { return };
        let frame = match hop {
            IpAddr::V4(h) => match t.net.source4(port) {
                Some(src) => neighbor::arp_request(p.mac, src, h),
                None => return,
            },
            IpAddr::V6(h) => match t.net.source6(port) {
                Some(src) => neighbor::neighbor_solicitation(p.mac, src, h),
                None => return,
            },
        };
        let Some(mut m) = self.pool.alloc() else { return };
        if let Ok(buf) = m.append(frame.len()) {
            buf.copy_from_slice(&frame);
            self.send(port, m);
        }
    }

    fn resolve_pending(&mut self, t: &Tables, neigh: &NeighborMap, now: u64) {
        let mut i = 0;
        while i < self.pending.len() {
            let p = &self.pending[i];
            if let Some(e) = neigh.get(&p.hop) {
                let mut w = self.pending.swap_remove(i);
                w.frame.data_mut()[0..6].copy_from_slice(&e.mac);
                self.send(w.port, w.frame);
            } else if now - p.since >= GIVE_UP_MS {
                self.pending.swap_remove(i);
                self.dp_drops[DpDrop::NeighborUnresolved as usize] += 1;
            } else {
                i += 1;
            }
        }
        let pending = &self.pending;
        self.asked.retain(|&(h, _)| pending.iter().any(|p| p.hop == h));
        let mut again = Vec::new();
        for (h, last) in &mut self.asked {
            if now - *last >= ASK_EVERY_MS {
                *last = now;
                if let Some(p) = self.pending.iter().find(|p| p.hop == *h) {
                    again.push((*h, p.port));
                }
            }
        }
        for (h, port) in again {
            self.ask(t, h, port);
        }
    }

    fn publish(&self, t: &Tables) {
        let c = &self.shared.counters[self.id as usize];
        c.publish(
            &self.director.stats,
            &self.director.drops,
            &self.dp_drops,
            self.redirected_in,
            self.tx,
        );
        c.publish_busy_ns((self.busy_tsc as u128 * 1_000_000_000 / self.tsc_hz as u128) as u64);
        c.publish_sync(&self.director.sync);
        for s in &t.services {
            for r in &s.reals {
                c.publish_real(r.id.0 as usize, self.director.real_traffic(r.id));
            }
        }
    }
}
