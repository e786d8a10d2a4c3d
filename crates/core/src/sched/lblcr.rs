//! Locality-based least connections with replication (IPVS `ip_vs_lblcr.c`): a destination
//! maps to a set of servers. The least loaded member (by wlc's measure) takes the connection
//! unless it is overloaded in lblc's sense; then wlc picks a server, which joins the set. A set
//! of more than one server that has not changed for `expiration` loses its most loaded member.
//!
//! Sets live in a direct-mapped cache of atomics shared by all workers: four 16-bit server
//! slots packed in one `AtomicU64`, updated by compare-and-swap, beside a tag and the time of
//! the last change. A set holds at most four servers (IPVS's is unbounded; four replicas of a
//! destination is already generous); a fifth replaces the most loaded.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::lblc::{locality_overloaded, slot_tag, SLOTS};
use super::{available, overhead, wlc, FlowInfo};
use crate::real::{RealRegistry, RealServer};

const EMPTY: u16 = 0xffff;
const ALL_EMPTY: u64 = u64::MAX;
/// IPVS's default (`lblcr_expiration`): 24 hours.
pub const DEFAULT_EXPIRATION_MS: u64 = 24 * 3600 * 1000;

#[derive(Debug)]
pub struct Lblcr {
    sets: Box<[AtomicU64]>,
    tags: Box<[AtomicU32]>,
    /// Seconds (of `FlowInfo::now`) of the last change of each set.
    changed: Box<[AtomicU32]>,
    expiration_ms: u64,
}

impl Default for Lblcr {
    fn default() -> Self {
        Lblcr::new()
    }
}

fn members(set: u64) -> impl Iterator<Item = usize> {
    (0..4)
        .map(move |k| ((set >> (16 * k)) & 0xffff) as u16)
        .filter(|&m| m != EMPTY)
        .map(|m| m as usize)
}

fn with(set: u64, k: usize, v: u16) -> u64 {
    (set & !(0xffff << (16 * k))) | ((v as u64) << (16 * k))
}

/// Compares load as `overhead / weight` without dividing: is `a` more loaded than `b`?
fn heavier(a: &RealServer, b: &RealServer, reg: &RealRegistry) -> bool {
    overhead(a, reg) * b.weight as u64 > overhead(b, reg) * a.weight as u64
}

impl Lblcr {
    /// Bytes of its tables.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.sets)
            + std::mem::size_of_val(&*self.tags)
            + std::mem::size_of_val(&*self.changed)
    }

    pub fn new() -> Lblcr {
        Lblcr::with_expiration(DEFAULT_EXPIRATION_MS)
    }

    pub fn with_expiration(expiration_ms: u64) -> Lblcr {
        Lblcr {
            sets: (0..SLOTS).map(|_| AtomicU64::new(ALL_EMPTY)).collect(),
            tags: (0..SLOTS).map(|_| AtomicU32::new(0)).collect(),
            changed: (0..SLOTS).map(|_| AtomicU32::new(0)).collect(),
            expiration_ms,
        }
    }

    /// The members of the set for `flow`'s destination (for tests and listings).
    pub fn set_of(&self, flow: &FlowInfo) -> Vec<usize> {
        let (slot, tag) = slot_tag(flow);
        if self.tags[slot].load(Ordering::Relaxed) != tag {
            return Vec::new();
        }
        members(self.sets[slot].load(Ordering::Relaxed)).collect()
    }

    fn store(&self, slot: usize, old: u64, new: u64, now_s: u32) {
        // Losing the race to another worker's update is fine: theirs is as good.
        if self.sets[slot]
            .compare_exchange(old, new, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            self.changed[slot].store(now_s, Ordering::Relaxed);
        }
    }

    pub fn pick(&self, reals: &[RealServer], reg: &RealRegistry, flow: &FlowInfo) -> Option<usize> {
        let (slot, tag) = slot_tag(flow);
        let now_s = (flow.now / 1000) as u32;
        if self.tags[slot].load(Ordering::Relaxed) != tag {
            let i = wlc::pick(reals, reg)?;
            self.tags[slot].store(tag, Ordering::Relaxed);
            self.sets[slot].store(with(ALL_EMPTY, 0, i as u16), Ordering::Relaxed);
            self.changed[slot].store(now_s, Ordering::Relaxed);
            return Some(i);
        }
        let mut set = self.sets[slot].load(Ordering::Relaxed);
        let valid = |m: &usize| *m < reals.len();
        // The least loaded available member.
        let min = members(set)
            .filter(valid)
            .filter(|&m| available(&reals[m], reg))
            .reduce(|a, b| if heavier(&reals[a], &reals[b], reg) { b } else { a });
        // A set that has not changed for a while sheds its most loaded member.
        let age_ms = (now_s.saturating_sub(self.changed[slot].load(Ordering::Relaxed)) as u64) * 1000;
        if members(set).count() > 1 && age_ms > self.expiration_ms {
            let k = (0..4)
                .filter(|&k| ((set >> (16 * k)) & 0xffff) as u16 != EMPTY)
                .reduce(|a, b| {
                    let (ma, mb) = (
                        ((set >> (16 * a)) & 0xffff) as usize,
                        ((set >> (16 * b)) & 0xffff) as usize,
                    );
                    if ma < reals.len() && mb < reals.len() && heavier(&reals[mb], &reals[ma], reg) {
                        b
                    } else {
                        a
                    }
                })
                .expect("set has members");
            let shrunk = with(set, k, EMPTY);
            self.store(slot, set, shrunk, now_s);
            set = shrunk;
        }
        if let Some(m) = min {
            if members(set).any(|x| x == m) && !locality_overloaded(&reals[m], reals, reg) {
                return Some(m);
            }
        }
        // Replicate: wlc's choice joins the set (in a free place, else instead of the heaviest).
        let i = wlc::pick(reals, reg)?;
        if i < EMPTY as usize && !members(set).any(|x| x == i) {
            let k = (0..4)
                .find(|&k| ((set >> (16 * k)) & 0xffff) as u16 == EMPTY)
                .unwrap_or_else(|| {
                    (0..4)
                        .reduce(|a, b| {
                            let (ma, mb) = (
                                ((set >> (16 * a)) & 0xffff) as usize,
                                ((set >> (16 * b)) & 0xffff) as usize,
                            );
                            if ma < reals.len() && mb < reals.len() && heavier(&reals[mb], &reals[ma], reg) {
                                b
                            } else {
                                a
                            }
                        })
                        .expect("four members")
                });
            self.store(slot, set, with(set, k, i as u16), now_s);
        }
        Some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{flow_to, reals, set_conns};

    fn at(dst: u32, now: u64) -> FlowInfo {
        FlowInfo { now, ..flow_to(dst) }
    }

    #[test]
    fn grows_when_overloaded_and_shrinks_when_stable() {
        let r = reals(&[4, 4, 4]);
        let reg = RealRegistry::new(8);
        let s = Lblcr::with_expiration(60_000);
        let d = 0x0808_0404;
        assert_eq!(s.pick(&r, &reg, &at(d, 0)), Some(0));
        assert_eq!(s.set_of(&at(d, 0)), vec![0]);
        // Locality holds while the member is not overloaded.
        set_conns(&reg, 0, 3, 0);
        assert_eq!(s.pick(&r, &reg, &at(d, 1000)), Some(0));
        // Overloaded (5 > 4) while server 1 is idle (0 < 2): wlc's pick joins the set.
        set_conns(&reg, 0, 5, 0);
        assert_eq!(s.pick(&r, &reg, &at(d, 2000)), Some(1));
        assert_eq!(s.set_of(&at(d, 2000)), vec![0, 1]);
        // Now the least loaded member (server 1) takes the destination's connections.
        set_conns(&reg, 1, 1, 0);
        assert_eq!(s.pick(&r, &reg, &at(d, 3000)), Some(1));
        // After the set has not changed for longer than the expiration, the heaviest goes.
        assert_eq!(s.pick(&r, &reg, &at(d, 2000 + 61_000 + 1000)), Some(1));
        assert_eq!(s.set_of(&at(d, 64_000)), vec![1]);
    }

    #[test]
    fn no_available_server_is_none() {
        let reg = RealRegistry::new(8);
        assert_eq!(Lblcr::new().pick(&reals(&[0, 0]), &reg, &at(1, 0)), None);
    }
}
