//! The baseline forwarder the bench measures rvs against: receive a burst, swap the MAC
//! addresses, transmit it back out of the same port. No parsing, no tables: the most a worker
//! can move on these devices, so every rvs figure can be given as a ratio to it.

use std::sync::atomic::{AtomicBool, Ordering};

use dpdk::{Burst, RxQueue, TxQueue};

/// Forwards until `stop`; returns (packets received, packets sent).
pub fn run(rx: &mut RxQueue, tx: &mut TxQueue, stop: &AtomicBool) -> (u64, u64) {
    let mut burst = Burst::new();
    let (mut received, mut sent) = (0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        let n = rx.rx_burst(&mut burst);
        if n == 0 {
            continue;
        }
        received += n as u64;
        for m in burst.as_mut_slice() {
            let d = m.data_mut();
            if d.len() >= 12 {
                let (dst, src) = d.split_at_mut(6);
                dst.swap_with_slice(&mut src[..6]);
            }
        }
        sent += tx.tx_burst(&mut burst) as u64;
        burst.clear();
    }
    (received, sent)
}
