//! Round robin (IPVS `ip_vs_rr.c`): the next available server after the one picked last.
//!
//! The position is shared by all workers and advanced with compare-and-swap, so the rotation
//! is one sequence however many workers schedule: each server gets every n-th new connection,
//! and a skipped (quiesced or overloaded) server does not give its turn to its neighbour twice.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::available;
use crate::real::{RealRegistry, RealServer};

#[derive(Debug)]
pub struct RoundRobin {
    /// Index of the server picked last (usize::MAX before the first pick).
    last: AtomicUsize,
}

impl Default for RoundRobin {
    fn default() -> Self {
        RoundRobin::new()
    }
}

impl RoundRobin {
    pub fn new() -> RoundRobin {
        RoundRobin {
            last: AtomicUsize::new(usize::MAX),
        }
    }

    pub fn pick(&self, reals: &[RealServer], reg: &RealRegistry) -> Option<usize> {
        let n = reals.len();
        if n == 0 {
            return None;
        }
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let start = if last >= n { 0 } else { last + 1 };
            let pick = (0..n)
                .map(|i| (start + i) % n)
                .find(|&i| available(&reals[i], reg))?;
            match self
                .last
                .compare_exchange_weak(last, pick, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Some(pick),
                Err(now) => last = now,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::reals;

    #[test]
    fn rotates_and_skips_quiesced_servers_fairly() {
        let reg = RealRegistry::new(8);
        let rr = RoundRobin::new();
        let r = reals(&[1, 1, 1]);
        let seq: Vec<_> = (0..6).map(|_| rr.pick(&r, &reg).unwrap()).collect();
        assert_eq!(seq, [0, 1, 2, 0, 1, 2]);
        let rr = RoundRobin::new();
        let r = reals(&[1, 0, 1]);
        let seq: Vec<_> = (0..4).map(|_| rr.pick(&r, &reg).unwrap()).collect();
        assert_eq!(
            seq,
            [0, 2, 0, 2],
            "the quiesced server's turn is not given twice to one neighbour"
        );
    }

    #[test]
    fn no_available_server_is_none() {
        let reg = RealRegistry::new(8);
        assert_eq!(RoundRobin::new().pick(&reals(&[0, 0]), &reg), None);
        assert_eq!(RoundRobin::new().pick(&[], &reg), None);
    }
}
