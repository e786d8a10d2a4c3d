//! Least connections (IPVS `ip_vs_lc.c`): the available server with the smallest overhead
//! `active * 256 + inactive`, weights ignored (beyond weight 0 meaning quiesced). Ties go to
//! the first in list order.

use super::{available, overhead};
use crate::real::{RealRegistry, RealServer};

pub fn pick(reals: &[RealServer], reg: &RealRegistry) -> Option<usize> {
    let mut least: Option<(usize, u64)> = None;
    for (i, r) in reals.iter().enumerate() {
        if !available(r, reg) {
            continue;
        }
        let o = overhead(r, reg);
        if o == 0 {
            return Some(i); // nothing after it can be strictly less
        }
        if least.is_none_or(|(_, lo)| o < lo) {
            least = Some((i, o));
        }
    }
    least.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{reals, set_conns};

    #[test]
    fn fewest_by_overhead_ties_to_the_first() {
        let r = reals(&[1, 5, 1]);
        let reg = RealRegistry::new(4);
        set_conns(&reg, 0, 1, 0); // 256
        set_conns(&reg, 1, 0, 300); // 300
        set_conns(&reg, 2, 0, 255); // 255
        assert_eq!(pick(&r, &reg), Some(2));
        set_conns(&reg, 2, 1, 0); // 256: tie with server 0
        assert_eq!(pick(&r, &reg), Some(0));
        let r = reals(&[0, 1, 1]);
        set_conns(&reg, 0, 0, 0);
        assert_eq!(pick(&r, &reg), Some(2), "weight 0 is skipped even when idle");
    }
}
