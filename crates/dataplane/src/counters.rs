//! Per-worker counters, published for the control thread. Only the worker writes its own;
//! readers load with relaxed ordering and sum.

use std::sync::atomic::{AtomicU64, Ordering};

use rvs_core::{DropCounters, DropReason, RealTraffic, SyncRefusal, SyncStats, WorkerStats};

/// Drops the data plane adds to the core's reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum DpDrop {
    /// No MAC for the next hop after the ARP/ND retries, or too many frames waiting for one.
    NeighborUnresolved,
    /// The owner worker's redirect ring was full.
    RedirectRingFull,
    /// The transmit queue would not take the frame.
    TxFull,
    /// For the host, but over the host path's rate (`[host_path]`): a flood at the director's
    /// addresses cannot starve the workers.
    HostPathLimited,
    /// For the host, but the ring to the host thread was full.
    HostRingFull,
    /// No mbuf for a held fragment replayed after its first fragment came.
    NoMbuf,
    /// A frame for a port this worker has no queue of: steered here from one, or to be sent
    /// on one (never expected; a bug if counted).
    BadPort,
    /// A frame for a worker without a ring to it (never expected; a bug if counted).
    NoRing,
}

impl DpDrop {
    pub const COUNT: usize = 8;
    pub const ALL: [DpDrop; DpDrop::COUNT] = [
        DpDrop::NeighborUnresolved,
        DpDrop::RedirectRingFull,
        DpDrop::TxFull,
        DpDrop::HostPathLimited,
        DpDrop::HostRingFull,
        DpDrop::NoMbuf,
        DpDrop::BadPort,
        DpDrop::NoRing,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DpDrop::NeighborUnresolved => "neighbor_unresolved",
            DpDrop::RedirectRingFull => "redirect_ring_full",
            DpDrop::TxFull => "tx_full",
            DpDrop::HostPathLimited => "host_path_limited",
            DpDrop::HostRingFull => "host_ring_full",
            DpDrop::NoMbuf => "no_mbuf",
            DpDrop::BadPort => "bad_port",
            DpDrop::NoRing => "no_ring",
        }
    }
}

#[derive(Debug, Default)]
struct Cell(AtomicU64);

impl Cell {
    fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One worker's published counters.
#[derive(Debug)]
pub struct WorkerCounters {
    stats: [Cell; WorkerStats::COUNT],
    drops: Vec<Cell>,
    dp_drops: [Cell; DpDrop::COUNT],
    redirected_in: Cell,
    tx: Cell,
    busy_ns: Cell,
    real: Vec<[Cell; 4]>,
    sync: [Cell; 4 + SyncRefusal::COUNT],
}

impl WorkerCounters {
    pub fn new(real_capacity: usize) -> WorkerCounters {
        WorkerCounters {
            stats: std::array::from_fn(|_| Cell::default()),
            drops: (0..DropReason::COUNT).map(|_| Cell::default()).collect(),
            dp_drops: Default::default(),
            redirected_in: Cell::default(),
            tx: Cell::default(),
            busy_ns: Cell::default(),
            real: (0..real_capacity).map(|_| Default::default()).collect(),
            sync: Default::default(),
        }
    }

    /// Publishes the worker's current totals (called by the worker only).
    pub(crate) fn publish(
        &self,
        s: &WorkerStats,
        d: &DropCounters,
        dp: &[u64; DpDrop::COUNT],
        redirected_in: u64,
        tx: u64,
    ) {
        let v = s.values();
        for (c, v) in self.stats.iter().zip(v) {
            c.set(v);
        }
        for (c, r) in self.drops.iter().zip(DropReason::ALL) {
            c.set(d.get(*r));
        }
        for (c, v) in self.dp_drops.iter().zip(dp) {
            c.set(*v);
        }
        self.redirected_in.set(redirected_in);
        self.tx.set(tx);
    }

    pub(crate) fn publish_busy_ns(&self, ns: u64) {
        self.busy_ns.set(ns);
    }

    /// Nanoseconds the worker spent in poll loops that handled a frame.
    pub fn busy_ns(&self) -> u64 {
        self.busy_ns.get()
    }

    pub(crate) fn publish_sync(&self, s: &SyncStats) {
        let head = [s.emitted, s.lost, s.installed, s.updated];
        for (c, v) in self.sync.iter().zip(head.iter().chain(s.refused.iter())) {
            c.set(*v);
        }
    }

    pub fn sync_stats(&self) -> SyncStats {
        let g = |i: usize| self.sync[i].get();
        let mut refused = [0; SyncRefusal::COUNT];
        for (i, r) in refused.iter_mut().enumerate() {
            *r = g(4 + i);
        }
        SyncStats {
            emitted: g(0),
            lost: g(1),
            installed: g(2),
            updated: g(3),
            refused,
        }
    }

    pub(crate) fn publish_real(&self, id: usize, t: RealTraffic) {
        if let Some(c) = self.real.get(id) {
            c[0].set(t.in_packets);
            c[1].set(t.in_bytes);
            c[2].set(t.out_packets);
            c[3].set(t.out_bytes);
        }
    }

    pub fn stats(&self) -> WorkerStats {
        WorkerStats::from_values(std::array::from_fn(|i| self.stats[i].get()))
    }

    pub fn drop_count(&self, r: DropReason) -> u64 {
        self.drops[r as usize].get()
    }

    pub fn dp_drop_count(&self, r: DpDrop) -> u64 {
        self.dp_drops[r as usize].get()
    }

    pub fn redirected_in(&self) -> u64 {
        self.redirected_in.get()
    }

    pub fn tx(&self) -> u64 {
        self.tx.get()
    }

    pub fn real(&self, id: usize) -> RealTraffic {
        self.real
            .get(id)
            .map_or_else(RealTraffic::default, |c| RealTraffic {
                in_packets: c[0].get(),
                in_bytes: c[1].get(),
                out_packets: c[2].get(),
                out_bytes: c[3].get(),
            })
    }
}
