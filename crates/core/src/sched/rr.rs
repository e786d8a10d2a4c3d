//! Round robin (IPVS `ip_vs_rr.c`): the next available server after the one picked last.
//!
//! The position is shared by all workers and advanced with compare-and-swap, so the rotation
//! is one sequence however many workers schedule: each server gets every n-th new connection,
//! and a skipped (quiesced or overloaded) server does not give its turn to its neighbour twice.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::{available, FlowInfo};
use crate::model::{RealRegistry, RealServer};

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

    pub fn pick(&self, reals: &[RealServer], reg: &RealRegistry, _flow: &FlowInfo) -> Option<usize> {
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
    use crate::model::{Forward, RealId};

    fn reals(weights: &[u32]) -> Vec<RealServer> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| RealServer {
                id: RealId(i as u32),
                addr: format!("192.168.1.{}", i + 1).parse().unwrap(),
                port: 80,
                forward: Forward::Nat,
                weight: w,
                upper: 0,
                lower: 0,
            })
            .collect()
    }

    fn flow() -> FlowInfo {
        FlowInfo {
            client: "10.1.0.1".parse().unwrap(),
            client_port: 1000,
            vip: "10.0.0.100".parse().unwrap(),
            vport: 80,
        }
    }

    #[test]
    fn rotates_and_skips_quiesced_servers_fairly() {
        let reg = RealRegistry::new(8);
        let rr = RoundRobin::new();
        let r = reals(&[1, 1, 1]);
        let seq: Vec<_> = (0..6).map(|_| rr.pick(&r, &reg, &flow()).unwrap()).collect();
        assert_eq!(seq, [0, 1, 2, 0, 1, 2]);
        let r = reals(&[1, 0, 1]);
        let seq: Vec<_> = (0..4).map(|_| rr.pick(&r, &reg, &flow()).unwrap()).collect();
        assert_eq!(
            seq,
            [0, 2, 0, 2],
            "the quiesced server's turn is not given twice to one neighbour"
        );
    }

    #[test]
    fn no_available_server_is_none() {
        let reg = RealRegistry::new(8);
        assert_eq!(RoundRobin::new().pick(&reals(&[0, 0]), &reg, &flow()), None);
        assert_eq!(RoundRobin::new().pick(&[], &reg, &flow()), None);
    }
}
