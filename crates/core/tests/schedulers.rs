//! Schedulers as a whole: distribution over 100,000 new flows, thresholds for every scheduler,
//! and correctness when workers schedule concurrently.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rvs_core::model::{Forward, RealId, RealRegistry, RealServer};
use rvs_core::sched::{FlowInfo, SchedFlags, Scheduler, NAMES};

fn reals(weights: &[u32]) -> Vec<RealServer> {
    weights
        .iter()
        .enumerate()
        .map(|(i, &w)| RealServer {
            id: RealId(i as u32),
            addr: IpAddr::V4(Ipv4Addr::new(192, 168, 1, 10 + i as u8)),
            port: 80,
            forward: Forward::Nat,
            weight: w,
            upper: 0,
            lower: 0,
        })
        .collect()
}

fn flow(i: u32) -> FlowInfo {
    // Distinct clients spread over the address space, as new connections from the Internet.
    let x = i.wrapping_mul(0x9e37_79b9) ^ (i >> 7);
    FlowInfo {
        client: IpAddr::V4(Ipv4Addr::from(x)),
        client_port: 1024 + (i % 60000) as u16,
        vip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 100)),
        vport: 80,
        now: 0,
    }
}

/// Picks `n` new flows; each becomes an active connection of its server (which is what the
/// load-aware schedulers respond to). Returns each server's share.
fn shares(name: &str, weights: &[u32], n: u32) -> Vec<f64> {
    let r = reals(weights);
    let reg = RealRegistry::new(64);
    let s = Scheduler::new(name, SchedFlags::default(), &r).unwrap();
    let mut count = vec![0u32; r.len()];
    for i in 0..n {
        let k = s
            .pick(&r, &reg, &flow(i))
            .unwrap_or_else(|| panic!("{name}: no server for flow {i}"));
        count[k] += 1;
        reg.get(r[k].id).active.fetch_add(1, Ordering::Relaxed);
    }
    count.iter().map(|&c| c as f64 / n as f64).collect()
}

#[test]
fn weighted_schedulers_distribute_100k_flows_in_proportion_within_1_percent() {
    let weights = [1, 2, 3, 4];
    let total: u32 = weights.iter().sum();
    for name in ["wrr", "wlc", "sed", "nq", "sh", "mh", "twos"] {
        let got = shares(name, &weights, 100_000);
        for (i, &w) in weights.iter().enumerate() {
            let want = w as f64 / total as f64;
            assert!(
                (got[i] - want).abs() <= 0.01,
                "{name}: server {i} got {:.4}, want {want:.4}",
                got[i]
            );
        }
    }
    // The unweighted ones spread evenly.
    for name in ["rr", "lc"] {
        let got = shares(name, &weights, 100_000);
        assert!(got.iter().all(|&s| (s - 0.25).abs() <= 0.01), "{name}: {got:?}");
    }
}

#[test]
fn every_scheduler_respects_weight_0_and_the_upper_threshold() {
    // Destinations vary too, for dh and the locality schedulers.
    let flow = |i: u32| FlowInfo {
        vip: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i * 7919)),
        ..flow(i)
    };
    for name in NAMES {
        for flags in [
            SchedFlags::default(),
            SchedFlags {
                fallback: true,
                port: false,
            },
        ] {
            // Server 0 quiesced.
            let mut r = reals(&[0, 1, 1]);
            let reg = RealRegistry::new(64);
            let s = Scheduler::new(name, flags, &r).unwrap();
            for i in 0..2000 {
                assert_ne!(
                    s.pick(&r, &reg, &flow(i)),
                    Some(0),
                    "{name}: weight 0 got a new flow"
                );
            }
            // Server 1 over its upper threshold (-x 10): overloaded until below -y 5.
            r[0].weight = 1;
            r[1].upper = 10;
            r[1].lower = 5;
            let s = Scheduler::new(name, flags, &r).unwrap();
            let shared = reg.get(RealId(1));
            shared.set_thresholds(10, 5);
            shared.inactive.store(10, Ordering::Relaxed);
            shared.update_overload();
            assert!(shared.is_overloaded());
            for i in 0..2000 {
                assert_ne!(
                    s.pick(&r, &reg, &flow(i)),
                    Some(1),
                    "{name}: an overloaded server got a new flow"
                );
            }
            shared.inactive.store(6, Ordering::Relaxed);
            shared.update_overload();
            assert!(
                shared.is_overloaded(),
                "{name}: between -y and -x it stays overloaded"
            );
            shared.inactive.store(4, Ordering::Relaxed);
            shared.update_overload();
            assert!(!shared.is_overloaded(), "{name}: below -y it is available again");
            // The others now busier, so every load-aware scheduler prefers server 1 again.
            for other in [0, 2] {
                reg.get(RealId(other)).active.store(5, Ordering::Relaxed);
                reg.get(RealId(other)).inactive.store(100, Ordering::Relaxed);
            }
            let back = (0..2000).any(|i| s.pick(&r, &reg, &flow(i)) == Some(1));
            // fo always takes the first of the equally weighted available servers.
            assert!(back || *name == "fo", "{name}: the server never came back");
        }
    }
}

#[test]
fn no_server_available_means_none() {
    for name in NAMES {
        let r = reals(&[0, 0]);
        let reg = RealRegistry::new(8);
        let s = Scheduler::new(
            name,
            SchedFlags {
                fallback: true,
                port: false,
            },
            &r,
        )
        .unwrap();
        assert_eq!(s.pick(&r, &reg, &flow(1)), None, "{name}");
        let s = Scheduler::new(name, SchedFlags::default(), &[]).unwrap();
        assert_eq!(s.pick(&[], &reg, &flow(1)), None, "{name} with no servers");
    }
}

/// rr and wrr keep one sequence however many workers pick at once: four threads taking
/// whole periods between them give every server exactly its share.
#[test]
fn concurrent_workers_share_one_rr_and_wrr_sequence() {
    for (name, weights, per_period) in [("rr", vec![1, 1, 1, 1, 1], 5u32), ("wrr", vec![4, 3, 2], 9)] {
        let r = Arc::new(reals(&weights));
        let reg = Arc::new(RealRegistry::new(16));
        let s = Arc::new(Scheduler::new(name, SchedFlags::default(), &r).unwrap());
        let periods = 4000u32;
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let (r, reg, s) = (r.clone(), reg.clone(), s.clone());
                std::thread::spawn(move || {
                    let mut c: HashMap<usize, u32> = HashMap::new();
                    for i in 0..periods * per_period / 4 {
                        *c.entry(s.pick(&r, &reg, &flow(t * 1_000_000 + i)).unwrap())
                            .or_default() += 1;
                    }
                    c
                })
            })
            .collect();
        let mut total: HashMap<usize, u32> = HashMap::new();
        for t in threads {
            for (k, v) in t.join().unwrap() {
                *total.entry(k).or_default() += v;
            }
        }
        for (i, &w) in weights.iter().enumerate() {
            assert_eq!(total[&i], w * periods, "{name}: server {i}");
        }
    }
}
