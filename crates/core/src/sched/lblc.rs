//! Locality-based least connections (IPVS `ip_vs_lblc.c`): a destination address keeps going
//! to the server it was last scheduled to, unless that server is unavailable or overloaded in
//! lblc's sense (more active connections than its weight while some server is below half its
//! weight); then wlc picks a server and the destination moves to it.
//!
//! The destination -> server map is a direct-mapped cache of atomics shared by all workers: a
//! slot holds a 16-bit tag of the address and the server's index. Reads and updates are single
//! atomic operations; a collision replaces the slot (IPVS evicts old entries too, by age).

use std::sync::atomic::{AtomicU32, Ordering};

use super::{available, hash_addr, wlc, FlowInfo};
use crate::real::{RealRegistry, RealServer};

pub(crate) const SLOTS: usize = 16384;

#[derive(Debug)]
pub struct Lblc {
    cache: Box<[AtomicU32]>,
}

impl Default for Lblc {
    fn default() -> Self {
        Lblc::new()
    }
}

/// lblc's overload rule: more active connections than the weight, while some server of the
/// service is below half its weight.
pub(crate) fn locality_overloaded(r: &RealServer, reals: &[RealServer], reg: &RealRegistry) -> bool {
    reg.get(r.id).active() > r.weight && reals.iter().any(|d| reg.get(d.id).active() * 2 < d.weight)
}

/// Cache slot and tag of a destination address.
pub(crate) fn slot_tag(flow: &FlowInfo) -> (usize, u32) {
    let h = hash_addr(flow.vip, 0, 7);
    ((h as usize) % SLOTS, ((h >> 48) as u32) | 1)
}

impl Lblc {
    /// Bytes of its tables.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.cache)
    }

    pub fn new() -> Lblc {
        Lblc {
            cache: (0..SLOTS).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    pub fn pick(&self, reals: &[RealServer], reg: &RealRegistry, flow: &FlowInfo) -> Option<usize> {
        let (slot, tag) = slot_tag(flow);
        let v = self.cache[slot].load(Ordering::Relaxed);
        if v >> 16 == tag & 0xffff && v & 0xffff != 0 {
            let i = (v & 0xffff) as usize - 1;
            if i < reals.len() && available(&reals[i], reg) && !locality_overloaded(&reals[i], reals, reg) {
                return Some(i);
            }
        }
        let i = wlc::pick(reals, reg)?;
        if i < 0xffff {
            self.cache[slot].store(((tag & 0xffff) << 16) | (i as u32 + 1), Ordering::Relaxed);
        }
        Some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{flow_to, reals, set_conns};

    #[test]
    fn keeps_locality_until_overloaded() {
        let r = reals(&[4, 4]);
        let reg = RealRegistry::new(8);
        let s = Lblc::new();
        let d = 0x0808_0808;
        let first = s.pick(&r, &reg, &flow_to(d)).unwrap();
        assert_eq!(first, 0, "wlc picks the first of equals");
        // Make the other server look better by wlc: locality still wins.
        set_conns(&reg, 0, 3, 0);
        assert_eq!(s.pick(&r, &reg, &flow_to(d)), Some(0));
        // Over its weight, with the other below half its weight: move.
        set_conns(&reg, 0, 5, 0);
        set_conns(&reg, 1, 1, 0);
        assert_eq!(s.pick(&r, &reg, &flow_to(d)), Some(1));
        // The move sticks.
        set_conns(&reg, 0, 0, 0);
        assert_eq!(s.pick(&r, &reg, &flow_to(d)), Some(1));
    }

    #[test]
    fn over_weight_alone_is_not_overload_when_no_one_is_at_half() {
        let r = reals(&[2, 2]);
        let reg = RealRegistry::new(8);
        let s = Lblc::new();
        assert_eq!(s.pick(&r, &reg, &flow_to(1)), Some(0));
        set_conns(&reg, 0, 3, 0);
        set_conns(&reg, 1, 1, 0); // 1*2 < 2 is false: not below half
        assert_eq!(s.pick(&r, &reg, &flow_to(1)), Some(0));
    }

    #[test]
    fn a_quiesced_server_loses_its_destinations() {
        let r = reals(&[1, 1]);
        let reg = RealRegistry::new(8);
        let s = Lblc::new();
        assert_eq!(s.pick(&r, &reg, &flow_to(5)), Some(0));
        assert_eq!(s.pick(&reals(&[0, 1]), &reg, &flow_to(5)), Some(1));
    }
}
