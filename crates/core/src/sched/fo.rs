//! Weighted failover (IPVS `ip_vs_fo.c`): the available server with the highest weight; ties
//! go to the first in list order.

use super::available;
use crate::real::{RealRegistry, RealServer};

pub fn pick(reals: &[RealServer], reg: &RealRegistry) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, r) in reals.iter().enumerate() {
        if available(r, reg) && best.is_none_or(|b| r.weight > reals[b].weight) {
            best = Some(i);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::reals;

    #[test]
    fn highest_weight_then_the_next_when_it_goes() {
        let reg = RealRegistry::new(4);
        assert_eq!(pick(&reals(&[1, 3, 2]), &reg), Some(1));
        assert_eq!(
            pick(&reals(&[1, 0, 2]), &reg),
            Some(2),
            "quiesced primary: fail over"
        );
        assert_eq!(pick(&reals(&[2, 2]), &reg), Some(0));
    }
}
