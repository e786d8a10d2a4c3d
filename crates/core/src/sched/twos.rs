//! Weighted random two choices (IPVS `ip_vs_twos.c`): draw two servers at random in proportion
//! to their weights, keep the one with the lower overhead per weight.
//!
//! The random numbers come from a shared splitmix64 counter (one `fetch_add` per pick), so
//! workers never share a lock and the draws are reproducible in tests.

use std::sync::atomic::{AtomicU64, Ordering};

use super::{available, mix, overhead};
use crate::real::{RealRegistry, RealServer};

#[derive(Debug)]
pub struct TwoChoices {
    state: AtomicU64,
}

impl Default for TwoChoices {
    fn default() -> Self {
        TwoChoices::new()
    }
}

impl TwoChoices {
    pub fn new() -> TwoChoices {
        TwoChoices {
            state: AtomicU64::new(0x2545_f491_4f6c_dd1d),
        }
    }

    fn random(&self) -> u64 {
        mix(self.state.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed))
    }

    pub fn pick(&self, reals: &[RealServer], reg: &RealRegistry) -> Option<usize> {
        let total: u64 = reals
            .iter()
            .filter(|r| available(r, reg))
            .map(|r| r.weight as u64)
            .sum();
        if total == 0 {
            return None;
        }
        let (mut r1, mut r2) = (self.random() % total, self.random() % total);
        let (mut c1, mut c2) = (None, None);
        for (i, r) in reals.iter().enumerate() {
            if !available(r, reg) {
                continue;
            }
            let w = r.weight as u64;
            if c1.is_none() {
                if r1 < w {
                    c1 = Some(i);
                } else {
                    r1 -= w;
                }
            }
            if c2.is_none() {
                if r2 < w {
                    c2 = Some(i);
                } else {
                    r2 -= w;
                }
            }
        }
        let (a, b) = (c1?, c2?);
        let (oa, ob) = (overhead(&reals[a], reg), overhead(&reals[b], reg));
        let (wa, wb) = (reals[a].weight as u64, reals[b].weight as u64);
        Some(if ob * wa < oa * wb { b } else { a })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{reals, set_conns};

    #[test]
    fn draws_follow_weights_when_idle() {
        let r = reals(&[1, 3]);
        let reg = RealRegistry::new(4);
        let s = TwoChoices::new();
        let mut n = [0u32; 2];
        for _ in 0..40_000 {
            n[s.pick(&r, &reg).unwrap()] += 1;
        }
        // With equal (zero) load the first draw wins: shares follow the weights, 1:3.
        let share = n[1] as f64 / 40_000.0;
        assert!((share - 0.75).abs() < 0.01, "share {share}");
    }

    #[test]
    fn the_less_loaded_of_the_two_wins() {
        let r = reals(&[1, 1]);
        let reg = RealRegistry::new(4);
        set_conns(&reg, 0, 10, 0);
        let s = TwoChoices::new();
        let picks: Vec<_> = (0..1000).map(|_| s.pick(&r, &reg).unwrap()).collect();
        let to_loaded = picks.iter().filter(|&&i| i == 0).count();
        // Server 0 wins only when both draws are server 0: a quarter of the time.
        assert!((200..300).contains(&to_loaded), "{to_loaded}");
        assert_eq!(s.pick(&reals(&[0, 0]), &reg), None);
    }
}
