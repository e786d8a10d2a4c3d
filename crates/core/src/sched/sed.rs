//! Shortest expected delay (IPVS `ip_vs_sed.c`): minimise `(active + 1) / weight`, compared
//! without division. Inactive connections do not count. Ties go to the first in list order.

use super::least_weighted;
use crate::real::{RealRegistry, RealServer};

pub fn pick(reals: &[RealServer], reg: &RealRegistry) -> Option<usize> {
    least_weighted(reals, reg, |r| reg.get(r.id).active() as u64 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{reals, set_conns};

    #[test]
    fn expected_delay() {
        let r = reals(&[1, 2]);
        let reg = RealRegistry::new(4);
        // (0+1)/1 = 1 vs (1+1)/2 = 1: tie, first wins.
        set_conns(&reg, 1, 1, 1000);
        assert_eq!(pick(&r, &reg), Some(0), "inactive connections do not count");
        set_conns(&reg, 0, 1, 0); // 2/1 vs 2/2
        assert_eq!(pick(&r, &reg), Some(1));
    }
}
