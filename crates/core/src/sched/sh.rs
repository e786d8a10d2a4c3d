//! Source hashing (IPVS `ip_vs_sh.c`): a static table of 256 buckets, each server taking
//! `weight` consecutive buckets in turn; the client's address (and port, with `sh-port`) picks
//! the bucket. With `sh-fallback`, an unavailable server's clients are rehashed to the next
//! available bucket; without it they get no connection, as in IPVS.

use super::{available, dh::fold, SchedFlags};
use crate::real::{RealRegistry, RealServer};

const BITS: u32 = 8;
const BUCKETS: usize = 1 << BITS;

#[derive(Debug)]
pub struct SourceHash {
    buckets: Vec<u32>,
    flags: SchedFlags,
}

/// IPVS's `hash_32(port + addr, 8)` plus a rehash offset.
fn bucket(addr: u32, port: u16, offset: usize) -> usize {
    let h = (port as u32).wrapping_add(addr).wrapping_mul(0x61c8_8647) >> (32 - BITS);
    (offset + h as usize) & (BUCKETS - 1)
}

impl SourceHash {
    /// Bytes of its tables.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.buckets)
    }

    pub fn new(reals: &[RealServer], flags: SchedFlags) -> SourceHash {
        let mut buckets = Vec::with_capacity(BUCKETS);
        if !reals.is_empty() {
            let (mut p, mut count) = (0usize, 0u32);
            for _ in 0..BUCKETS {
                buckets.push(p as u32);
                count += 1;
                if count >= reals[p].weight {
                    p = (p + 1) % reals.len();
                    count = 0;
                }
            }
        }
        SourceHash { buckets, flags }
    }

    pub fn pick(&self, reals: &[RealServer], reg: &RealRegistry, flow: &super::FlowInfo) -> Option<usize> {
        if self.buckets.is_empty() {
            return None;
        }
        let addr = fold(flow.client);
        let port = if self.flags.port { flow.client_port } else { 0 };
        let tries = if self.flags.fallback { BUCKETS } else { 1 };
        (0..tries)
            .map(|off| self.buckets[bucket(addr, port, off)] as usize)
            .find(|&i| i < reals.len() && available(&reals[i], reg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{flow, reals};

    #[test]
    fn buckets_follow_weights() {
        let s = SourceHash::new(&reals(&[3, 1]), SchedFlags::default());
        assert_eq!(&s.buckets[..8], &[0, 0, 0, 1, 0, 0, 0, 1]);
        assert_eq!(s.buckets.iter().filter(|&&b| b == 0).count(), 192);
    }

    #[test]
    fn stable_per_client_and_fallback_only_with_the_flag() {
        let r = reals(&[1, 1, 1]);
        let reg = RealRegistry::new(8);
        let plain = SourceHash::new(&r, SchedFlags::default());
        let fb = SourceHash::new(
            &r,
            SchedFlags {
                fallback: true,
                port: false,
            },
        );
        let client = (0..1000u32)
            .find(|&c| plain.pick(&r, &reg, &flow(0x0a01_0000 + c, 1)) == Some(1))
            .unwrap()
            + 0x0a01_0000;
        assert_eq!(
            plain.pick(&r, &reg, &flow(client, 2)),
            Some(1),
            "the port is ignored without sh-port"
        );
        let quiesced = reals(&[1, 0, 1]);
        assert_eq!(
            plain.pick(&quiesced, &reg, &flow(client, 1)),
            None,
            "no fallback without the flag"
        );
        let other = fb.pick(&quiesced, &reg, &flow(client, 1)).unwrap();
        assert_ne!(other, 1);
        assert_eq!(
            fb.pick(&quiesced, &reg, &flow(client, 1)),
            Some(other),
            "the fallback is stable"
        );
    }

    #[test]
    fn sh_port_spreads_one_client_over_servers() {
        let r = reals(&[1, 1, 1, 1]);
        let reg = RealRegistry::new(8);
        let s = SourceHash::new(
            &r,
            SchedFlags {
                fallback: false,
                port: true,
            },
        );
        let mut seen = std::collections::BTreeSet::new();
        for port in 1000..1100 {
            seen.insert(s.pick(&r, &reg, &flow(0x0a01_0001, port)).unwrap());
            assert_eq!(
                s.pick(&r, &reg, &flow(0x0a01_0001, port)),
                s.pick(&r, &reg, &flow(0x0a01_0001, port))
            );
        }
        assert_eq!(seen.len(), 4);
    }
}
