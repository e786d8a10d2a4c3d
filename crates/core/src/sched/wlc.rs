//! Weighted least connections (IPVS `ip_vs_wlc.c`, ipvsadm's default): minimise
//! `overhead / weight` with overhead `active * 256 + inactive`, compared as
//! `h1 * w2 > h2 * w1` so that no division is needed. Ties go to the first in list order.

use super::{least_weighted, overhead};
use crate::real::{RealRegistry, RealServer};

pub fn pick(reals: &[RealServer], reg: &RealRegistry) -> Option<usize> {
    least_weighted(reals, reg, |r| overhead(r, reg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{reals, set_conns};

    #[test]
    fn overhead_over_weight() {
        let r = reals(&[1, 3, 2]);
        let reg = RealRegistry::new(4);
        set_conns(&reg, 0, 1, 0); // 256/1
        set_conns(&reg, 1, 2, 0); // 512/3 = 170.7
        set_conns(&reg, 2, 1, 100); // 356/2 = 178
        assert_eq!(pick(&r, &reg), Some(1));
        set_conns(&reg, 2, 1, 85); // 341/2 = 170.5
        assert_eq!(pick(&r, &reg), Some(2));
        set_conns(&reg, 2, 1, 85 + 2); // 343/2 = 171.5
        assert_eq!(pick(&r, &reg), Some(1));
    }

    #[test]
    fn ties_keep_the_first() {
        let r = reals(&[2, 1]);
        let reg = RealRegistry::new(4);
        set_conns(&reg, 0, 2, 0); // 512/2
        set_conns(&reg, 1, 1, 0); // 256/1
        assert_eq!(pick(&r, &reg), Some(0));
    }
}
