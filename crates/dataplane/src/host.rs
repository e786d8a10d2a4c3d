//! The host path: each data port may have a kernel twin (a `net_tap` port), so the director's
//! own traffic and the standard daemons (sshd, keepalived, BIRD, health probes) work over the
//! data ports.
//!
//! - **Up** (port -> kernel): a worker whose core says [`rvs_core::Verdict::ToHost`] takes a
//!   token from its own bucket (its share of `[host_path] rate`) and pushes the frame on the
//!   `up` ring; without a token the frame is a counted drop, `host_path_limited`. Workers never
//!   make a system call for the host path.
//! - **Down** (kernel -> port): the host thread reads each twin and hands the frames to the
//!   worker that transmits for that port (port index modulo workers) over that worker's `down`
//!   ring; the worker sends them on its own tx queue of the port, so every tx queue keeps its
//!   one owner.
//! - The **host thread** is the only one that touches the twins' queues (each read or write of
//!   a tap is a system call). It polls while there is work and sleeps when there is none, so it
//!   costs nothing on an idle host path.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use dpdk::{Burst, Mbuf, RxQueue, TxQueue, BURST_SIZE};

/// Frames waiting to go up (all workers) or down (per worker).
const RING: usize = 1024;

/// What the workers and the host thread share.
#[derive(Debug)]
pub struct HostRings {
    /// Port position and frame, from any worker to the host thread.
    pub up: ArrayQueue<(u16, Mbuf)>,
    /// Per worker: port position and frame, from the host thread to that worker.
    pub down: Vec<ArrayQueue<(u16, Mbuf)>>,
    /// Which port positions have a twin.
    pub twins: Vec<bool>,
    /// Each worker's token bucket: packets per second and burst (its share of the config's).
    pub share: (u32, u32),
    pub counters: HostCounters,
}

/// The host thread's counters (the workers count `to_host` and the limited drops themselves).
#[derive(Debug, Default)]
pub struct HostCounters {
    /// Frames written to a twin (received by the kernel).
    pub up: AtomicU64,
    /// Frames a twin would not take (the kernel's queue was full).
    pub up_failed: AtomicU64,
    /// Frames the kernel sent on a twin, handed to a worker to transmit.
    pub down: AtomicU64,
    /// Frames from the kernel dropped because the worker's down ring was full.
    pub down_ring_full: AtomicU64,
}

/// A snapshot of [`HostCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostStats {
    pub up: u64,
    pub up_failed: u64,
    pub down: u64,
    pub down_ring_full: u64,
}

impl HostRings {
    /// Rings for `workers` workers and the ports marked in `twins`; `rate` packets per second
    /// (at most `burst` at once) may go up, split evenly between the workers.
    pub fn new(workers: usize, twins: Vec<bool>, rate: u32, burst: u32) -> HostRings {
        let w = workers.max(1) as u32;
        HostRings {
            up: ArrayQueue::new(RING),
            down: (0..w).map(|_| ArrayQueue::new(RING)).collect(),
            twins,
            share: ((rate / w).max(1), (burst / w).max(1)),
            counters: HostCounters::default(),
        }
    }

    /// The worker that transmits what the kernel sends on `port`'s twin.
    pub fn down_worker(&self, port: u16) -> usize {
        port as usize % self.down.len()
    }

    /// Queues a frame the director originates (a gratuitous ARP, say) for transmission on
    /// `port`, as if the kernel had sent it. False if the ring was full (the frame is dropped).
    pub fn send_down(&self, port: u16, m: Mbuf) -> bool {
        let ok = self.down[self.down_worker(port)].push((port, m)).is_ok();
        let c = if ok {
            &self.counters.down
        } else {
            &self.counters.down_ring_full
        };
        c.fetch_add(1, Ordering::Relaxed);
        ok
    }

    /// Frees whatever is still queued (at stop, once no thread uses the rings).
    pub fn drain(&self) {
        while self.up.pop().is_some() {}
        for d in &self.down {
            while d.pop().is_some() {}
        }
    }

    pub fn stats(&self) -> HostStats {
        let c = &self.counters;
        HostStats {
            up: c.up.load(Ordering::Relaxed),
            up_failed: c.up_failed.load(Ordering::Relaxed),
            down: c.down.load(Ordering::Relaxed),
            down_ring_full: c.down_ring_full.load(Ordering::Relaxed),
        }
    }
}

/// A token bucket in milli-packets, refilled from a millisecond clock: `rate` packets per
/// second, at most `burst` at once. One per worker, so taking a token is a few arithmetic
/// instructions and no shared write.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: u64,
    cap: u64,
    tokens: u64,
    last_ms: u64,
}

impl TokenBucket {
    pub fn new(rate_per_s: u32, burst: u32) -> TokenBucket {
        let cap = burst.max(1) as u64 * 1000;
        TokenBucket {
            rate: rate_per_s.max(1) as u64,
            cap,
            tokens: cap,
            last_ms: 0,
        }
    }

    /// Takes one packet's token at `now_ms`, if there is one.
    pub fn take(&mut self, now_ms: u64) -> bool {
        if now_ms > self.last_ms {
            let add = (now_ms - self.last_ms).saturating_mul(self.rate);
            self.tokens = self.tokens.saturating_add(add).min(self.cap);
            self.last_ms = now_ms;
        }
        if self.tokens >= 1000 {
            self.tokens -= 1000;
            true
        } else {
            false
        }
    }
}

/// One twin's queues, owned by the host thread.
#[derive(Debug)]
pub struct TwinQueues {
    /// The data port's position (its index in the tables).
    pub port: u16,
    pub rx: RxQueue,
    pub tx: TxQueue,
}

/// The host thread: moves frames between the rings and the twins until `stop`.
pub fn run(rings: &HostRings, mut twins: Vec<TwinQueues>, stop: &AtomicBool) {
    let mut bursts: Vec<Burst> = twins.iter().map(|_| Burst::new()).collect();
    let mut rx = Burst::new();
    let mut idle = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let mut work = up(rings, &mut twins, &mut bursts);
        for t in &mut twins {
            let n = t.rx.rx_burst(&mut rx);
            work += n;
            for m in rx.drain() {
                rings.send_down(t.port, m);
            }
        }
        if work > 0 {
            idle = 0;
        } else {
            // Poll briefly after traffic (a ping's reply, a TCP exchange), then doze: an idle
            // host path costs a wake-up every quarter millisecond.
            idle = idle.saturating_add(1);
            let pause = if idle < 200 { 20 } else { 250 };
            std::thread::sleep(Duration::from_micros(pause));
        }
    }
    // What is still queued is freed with the rings.
}

/// Writes what the workers queued to the twins; returns how many frames it took off the ring.
fn up(rings: &HostRings, twins: &mut [TwinQueues], bursts: &mut [Burst]) -> usize {
    let mut n = 0;
    while n < BURST_SIZE * 4 {
        let Some((port, m)) = rings.up.pop() else { break };
        n += 1;
        let Some(i) = twins.iter().position(|t| t.port == port) else {
            rings.counters.up_failed.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        if let Err(m) = bursts[i].push(m) {
            flush(rings, &mut twins[i], &mut bursts[i]);
            let _ = bursts[i].push(m);
        }
    }
    for (t, b) in twins.iter_mut().zip(bursts.iter_mut()) {
        flush(rings, t, b);
    }
    n
}

fn flush(rings: &HostRings, t: &mut TwinQueues, b: &mut Burst) {
    if b.is_empty() {
        return;
    }
    let sent = t.tx.tx_burst(b) as u64;
    rings.counters.up.fetch_add(sent, Ordering::Relaxed);
    rings
        .counters
        .up_failed
        .fetch_add(b.len() as u64, Ordering::Relaxed);
    b.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_gives_its_burst_then_its_rate() {
        let mut b = TokenBucket::new(1000, 10);
        let first: usize = (0..100).filter(|_| b.take(0)).count();
        assert_eq!(first, 10, "a full bucket gives its burst at once");
        assert!(!b.take(0));
        // 1000 per second is one per millisecond.
        let next: usize = (1..=50).filter(|&ms| b.take(ms)).count();
        assert_eq!(next, 50);
        // A quiet spell refills up to the burst, no more.
        let after: usize = (0..100).filter(|_| b.take(10_000)).count();
        assert_eq!(after, 10);
    }

    #[test]
    fn slow_rates_accumulate_across_milliseconds() {
        let mut b = TokenBucket::new(10, 1);
        assert!(b.take(0));
        let got: Vec<u64> = (1..=1000).filter(|&ms| b.take(ms)).collect();
        assert_eq!(got, vec![100, 200, 300, 400, 500, 600, 700, 800, 900, 1000]);
    }
}
