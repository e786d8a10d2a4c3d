//! The simplest real data path: every frame received on one queue is transmitted on another,
//! unchanged. It is what the demo runs until the load balancer's path replaces it, and the
//! reference the bench compares rvs against.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dpdk::{Burst, RxQueue, TxQueue};

/// What a pass-through run moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Moved {
    pub rx: u64,
    pub tx: u64,
    pub rx_bytes: u64,
    /// Frames the tx queue would not take after retries: freed and counted, never leaked.
    pub tx_dropped: u64,
}

/// When to stop: after `limit` frames, after `idle` without any, or when `stop` is set.
#[derive(Debug)]
pub struct Until<'a> {
    pub limit: Option<u64>,
    pub idle: Duration,
    pub stop: &'a AtomicBool,
}

/// Tx retries before the rest of a burst is dropped: a full ring usually drains in a few polls.
const TX_RETRIES: u32 = 8;

pub fn run(rx: &mut RxQueue, tx: &mut TxQueue, until: Until<'_>) -> Moved {
    let mut moved = Moved::default();
    let mut burst = Burst::new();
    let mut last_rx = Instant::now();
    loop {
        if until.stop.load(Ordering::Relaxed) || until.limit.is_some_and(|l| moved.rx >= l) {
            break;
        }
        let n = rx.rx_burst(&mut burst);
        if n == 0 {
            if last_rx.elapsed() >= until.idle {
                break;
            }
            std::hint::spin_loop();
            continue;
        }
        last_rx = Instant::now();
        moved.rx += n as u64;
        moved.rx_bytes += burst.as_slice().iter().map(|m| m.pkt_len() as u64).sum::<u64>();
        let mut tries = 0;
        while !burst.is_empty() && tries < TX_RETRIES {
            moved.tx += tx.tx_burst(&mut burst) as u64;
            tries += 1;
        }
        moved.tx_dropped += burst.len() as u64;
        burst.clear();
    }
    moved
}
