//! Overflow (IPVS `ip_vs_ovf.c`): the highest-weight server whose active connections do not
//! exceed its weight; when it fills up, the next highest takes the overflow.

use super::available;
use crate::real::{RealRegistry, RealServer};

pub fn pick(reals: &[RealServer], reg: &RealRegistry) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, r) in reals.iter().enumerate() {
        if !available(r, reg) || reg.get(r.id).active() > r.weight {
            continue;
        }
        if best.is_none_or(|b| r.weight > reals[b].weight) {
            best = Some(i);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{reals, set_conns};

    #[test]
    fn fills_the_heaviest_then_overflows() {
        let r = reals(&[2, 5]);
        let reg = RealRegistry::new(4);
        assert_eq!(pick(&r, &reg), Some(1));
        set_conns(&reg, 1, 5, 0);
        assert_eq!(
            pick(&r, &reg),
            Some(1),
            "at its weight it still takes one more (IPVS: > weight)"
        );
        set_conns(&reg, 1, 6, 0);
        assert_eq!(pick(&r, &reg), Some(0), "overflow to the next");
        set_conns(&reg, 0, 3, 0);
        assert_eq!(pick(&r, &reg), None);
    }
}
