//! Rates like IPVS's estimator (`ip_vs_est.c`): every 2 seconds the counters are sampled and
//! each rate moves a quarter of the way toward the last sample's rate, so a burst shows at
//! once but a single spike does not dominate.

use std::collections::HashMap;
use std::time::Instant;

use rvs_api::proto::Stats;

/// The counters rates are made of.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub conns: u64,
    pub in_packets: u64,
    pub out_packets: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Est {
    last: Totals,
    /// Rates per second, scaled by 1024 for precision between samples.
    rates: [u64; 5],
}

/// Keyed by anything that names a counter set (a real server id, a service).
#[derive(Debug)]
pub struct Estimator<K> {
    est: HashMap<K, Est>,
    at: Option<Instant>,
}

impl<K: std::hash::Hash + Eq + Copy> Default for Estimator<K> {
    fn default() -> Self {
        Estimator {
            est: HashMap::new(),
            at: None,
        }
    }
}

impl<K: std::hash::Hash + Eq + Copy> Estimator<K> {
    /// Takes a sample of every counter set; `keys` lists those that still exist.
    pub fn sample(&mut self, now: Instant, totals: impl IntoIterator<Item = (K, Totals)>) {
        let secs = self
            .at
            .map(|a| now.duration_since(a).as_secs_f64())
            .unwrap_or(0.0);
        self.at = Some(now);
        let mut seen = HashMap::new();
        for (k, t) in totals {
            let e = self.est.entry(k).or_insert(Est {
                last: t,
                rates: [0; 5],
            });
            if secs > 0.0 {
                let d = [
                    t.conns.saturating_sub(e.last.conns),
                    t.in_packets.saturating_sub(e.last.in_packets),
                    t.out_packets.saturating_sub(e.last.out_packets),
                    t.in_bytes.saturating_sub(e.last.in_bytes),
                    t.out_bytes.saturating_sub(e.last.out_bytes),
                ];
                for (r, d) in e.rates.iter_mut().zip(d) {
                    let sample = (d as f64 * 1024.0 / secs) as i64;
                    *r = (*r as i64 + ((sample - *r as i64) >> 2)).max(0) as u64;
                }
            }
            e.last = t;
            seen.insert(k, ());
        }
        self.est.retain(|k, _| seen.contains_key(k));
    }

    /// Counters and rates of `k` (rates zero before two samples).
    pub fn stats(&self, k: K, t: Totals) -> Stats {
        let r = self.est.get(&k).map_or([0; 5], |e| e.rates);
        Stats {
            conns: t.conns,
            in_packets: t.in_packets,
            out_packets: t.out_packets,
            in_bytes: t.in_bytes,
            out_bytes: t.out_bytes,
            cps: r[0] / 1024,
            in_pps: r[1] / 1024,
            out_pps: r[2] / 1024,
            in_bps: r[3] / 1024,
            out_bps: r[4] / 1024,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rates_approach_the_sampled_rate_by_quarters() {
        let mut e = Estimator::default();
        let t0 = Instant::now();
        let at = |n: u64| Totals {
            conns: n,
            in_packets: 10 * n,
            ..Default::default()
        };
        e.sample(t0, [(1u32, at(0))]);
        e.sample(t0 + Duration::from_secs(2), [(1, at(2000))]); // 1000 conns/s
        assert_eq!(e.stats(1, at(2000)).cps, 250);
        e.sample(t0 + Duration::from_secs(4), [(1, at(4000))]);
        assert_eq!(e.stats(1, at(4000)).cps, 437);
        for k in 3..40 {
            e.sample(t0 + Duration::from_secs(2 * k), [(1, at(2000 * k))]);
        }
        let s = e.stats(1, at(0));
        assert!((995..=1000).contains(&s.cps), "{}", s.cps);
        assert!((9950..=10000).contains(&s.in_pps));
        e.sample(t0 + Duration::from_secs(100), []);
        assert_eq!(e.stats(1, at(0)).cps, 0, "a removed key is forgotten");
    }
}
