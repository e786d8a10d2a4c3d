//! Weighted round robin (IPVS `ip_vs_wrr.c`).
//!
//! IPVS walks the server list with a current weight `cw` that starts at the maximum weight and
//! steps down by the gcd of the weights; each pass yields, in list order, the servers whose
//! weight is at least `cw`. For weights 4,3,2 one period is A | A B | A B C | A B C.
//!
//! Here the period is laid out once, when the servers change, as bands: a range of `cw` values
//! over which the eligible set is the same, and that set in list order. A shared counter
//! numbers the picks (one `fetch_add`), and pick number p maps to its server with a binary
//! search over the bands (their count is the number of distinct weights, so at most about ten
//! steps at 1,000 servers) and an index. All workers share the counter, so together they walk
//! exactly IPVS's sequence. Overloaded servers are skipped as IPVS skips them.

use std::sync::atomic::{AtomicU64, Ordering};

use super::available;
use crate::real::{RealRegistry, RealServer};

#[derive(Debug)]
struct Band {
    /// First sequence position of the band.
    start: u64,
    /// Eligible servers in list order.
    members: Vec<u32>,
}

#[derive(Debug)]
pub struct WeightedRoundRobin {
    bands: Vec<Band>,
    period: u64,
    next: AtomicU64,
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl WeightedRoundRobin {
    /// Bytes of its tables.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.bands)
    }

    pub fn new(reals: &[RealServer]) -> WeightedRoundRobin {
        let weights: Vec<u64> = reals.iter().map(|r| r.weight as u64).collect();
        let di = weights.iter().copied().filter(|&w| w > 0).fold(0, gcd);
        let max = weights.iter().copied().max().unwrap_or(0);
        let mut bands = Vec::new();
        let mut period = 0;
        if di > 0 {
            // cw runs mw, mw - di, ... > 0 with mw = max - (di - 1), as IPVS sets it up.
            let mw = max - (di - 1);
            let mut levels: Vec<u64> = weights.iter().copied().filter(|&w| w > 0).collect();
            levels.sort_unstable_by(|a, b| b.cmp(a));
            levels.dedup();
            let mut cw = mw;
            while cw > 0 {
                let members: Vec<u32> = weights
                    .iter()
                    .enumerate()
                    .filter(|&(_, &w)| w >= cw)
                    .map(|(i, _)| i as u32)
                    .collect();
                // The set stays the same until cw drops to or below the next lower weight.
                let next_level = levels.iter().copied().find(|&l| l < cw).unwrap_or(0);
                let rounds = (cw - next_level).div_ceil(di);
                bands.push(Band {
                    start: period,
                    members,
                });
                period += rounds * bands.last().unwrap().members.len() as u64;
                cw = cw.saturating_sub(rounds * di);
            }
        }
        WeightedRoundRobin {
            bands,
            period,
            next: AtomicU64::new(0),
        }
    }

    /// The server at position `p` of the period.
    fn at(&self, p: u64) -> usize {
        let b = match self.bands.binary_search_by(|b| b.start.cmp(&p)) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let band = &self.bands[b];
        band.members[((p - band.start) % band.members.len() as u64) as usize] as usize
    }

    pub fn pick(&self, reals: &[RealServer], reg: &RealRegistry) -> Option<usize> {
        if self.period == 0 || reals.is_empty() {
            return None;
        }
        // Skip overloaded servers along the sequence; a full period of them means none is free.
        for _ in 0..self.period.min(reals.len() as u64 * 2 + 1) {
            let p = self.next.fetch_add(1, Ordering::Relaxed) % self.period;
            let i = self.at(p);
            if available(&reals[i], reg) {
                return Some(i);
            }
        }
        reals.iter().position(|r| available(r, reg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::reals;

    fn seq(weights: &[u32], n: usize) -> String {
        let r = reals(weights);
        let reg = RealRegistry::new(16);
        let s = WeightedRoundRobin::new(&r);
        (0..n)
            .map(|_| (b'A' + s.pick(&r, &reg).unwrap() as u8) as char)
            .collect()
    }

    #[test]
    fn ipvs_sequence_for_4_3_2() {
        assert_eq!(seq(&[4, 3, 2], 27), "AABABCABC".repeat(3));
    }

    #[test]
    fn ipvs_sequence_with_a_common_divisor_and_a_quiesced_server() {
        // gcd 2: mw = 4 - 1 = 3, cw = 3, 1.
        assert_eq!(seq(&[4, 2], 6), "AABAAB");
        assert_eq!(seq(&[2, 0, 1], 6), "AACAAC");
        assert_eq!(seq(&[1, 1, 1], 6), "ABCABC");
        assert_eq!(seq(&[0, 0], 0), "");
        assert_eq!(
            WeightedRoundRobin::new(&reals(&[0, 0])).pick(&reals(&[0, 0]), &RealRegistry::new(4)),
            None
        );
    }

    #[test]
    fn large_weights_need_no_large_table() {
        let s = WeightedRoundRobin::new(&reals(&[65535, 1, 40000]));
        assert_eq!(s.period, 65535 + 1 + 40000);
        assert!(s.bands.len() <= 3);
    }
}
