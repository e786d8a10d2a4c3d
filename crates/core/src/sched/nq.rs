//! Never queue (IPVS `ip_vs_nq.c`): the first idle server (no active connection) if there is
//! one, else shortest expected delay.

use super::{available, least_weighted};
use crate::real::{RealRegistry, RealServer};

pub fn pick(reals: &[RealServer], reg: &RealRegistry) -> Option<usize> {
    if let Some(i) = reals
        .iter()
        .position(|r| available(r, reg) && reg.get(r.id).active() == 0)
    {
        return Some(i);
    }
    least_weighted(reals, reg, |r| reg.get(r.id).active() as u64 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{reals, set_conns};

    #[test]
    fn idle_first_then_sed() {
        let r = reals(&[10, 1, 1]);
        let reg = RealRegistry::new(4);
        set_conns(&reg, 0, 1, 0);
        set_conns(&reg, 1, 0, 50);
        assert_eq!(
            pick(&r, &reg),
            Some(1),
            "an idle server wins over a heavier weight"
        );
        set_conns(&reg, 1, 1, 0);
        set_conns(&reg, 2, 1, 0);
        // sed: 2/10 vs 2/1 vs 2/1
        assert_eq!(pick(&r, &reg), Some(0));
    }
}
