//! Destination hashing (IPVS `ip_vs_dh.c`): a static table of 256 buckets filled with the
//! servers in turn; the destination address picks the bucket. A server that is unavailable
//! (quiesced or overloaded) gets no connection: dh has no fallback, as in IPVS.

use std::net::IpAddr;

use super::available;
use crate::real::{RealRegistry, RealServer};

const BUCKETS: usize = 256;

#[derive(Debug)]
pub struct DestinationHash {
    buckets: Vec<u32>,
}

/// IPVS's dh key: the address folded to 32 bits, times the golden ratio prime, low 8 bits.
pub(crate) fn fold(a: IpAddr) -> u32 {
    match a {
        IpAddr::V4(a) => u32::from(a),
        IpAddr::V6(a) => {
            let o = a.octets();
            (0..4)
                .map(|i| u32::from_be_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]]))
                .fold(0, |x, w| x ^ w)
        }
    }
}

impl DestinationHash {
    /// Bytes of its tables.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.buckets)
    }

    pub fn new(reals: &[RealServer]) -> DestinationHash {
        let buckets = if reals.is_empty() {
            Vec::new()
        } else {
            (0..BUCKETS).map(|i| (i % reals.len()) as u32).collect()
        };
        DestinationHash { buckets }
    }

    pub fn pick(&self, reals: &[RealServer], reg: &RealRegistry, flow: &super::FlowInfo) -> Option<usize> {
        if self.buckets.is_empty() {
            return None;
        }
        let h = (fold(flow.vip).wrapping_mul(2_654_435_761) as usize) & (BUCKETS - 1);
        let i = self.buckets[h] as usize;
        (i < reals.len() && available(&reals[i], reg)).then_some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{flow_to, reals};

    #[test]
    fn the_same_destination_always_maps_to_the_same_server() {
        let r = reals(&[1, 1, 1, 1]);
        let reg = RealRegistry::new(8);
        let s = DestinationHash::new(&r);
        let mut seen = [0; 4];
        for d in 0..1000u32 {
            let a = s.pick(&r, &reg, &flow_to(0x0a00_0000 + d)).unwrap();
            assert_eq!(s.pick(&r, &reg, &flow_to(0x0a00_0000 + d)), Some(a));
            seen[a] += 1;
        }
        assert!(seen.iter().all(|&n| n > 150), "{seen:?}");
    }

    #[test]
    fn an_unavailable_server_is_not_replaced() {
        let r = reals(&[1, 1]);
        let s = DestinationHash::new(&r);
        let reg = RealRegistry::new(8);
        let d = (0..100u32)
            .find(|&d| s.pick(&r, &reg, &flow_to(d)) == Some(1))
            .unwrap();
        let quiesced = reals(&[1, 0]);
        assert_eq!(s.pick(&quiesced, &reg, &flow_to(d)), None, "dh has no fallback");
    }
}
