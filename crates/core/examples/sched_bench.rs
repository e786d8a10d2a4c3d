//! Scheduler costs, for the record (benchmarks report, they do not assert):
//!
//!   sched_bench              ns per pick for every scheduler at 10, 100 and 1,000 servers
//!                            (median of 5 runs), Maglev build time (M = 65537, 1,000 servers)
//!                            and the share of slots that move when one of N servers goes
//!   sched_bench count NAME SERVERS N
//!                            N picks in `measure`, for callgrind (benches/callgrind.sh)
//!
//! Load-aware schedulers see live counts: each pick adds an active connection to its server,
//! and every 64 picks one connection is retired, so the counts move as in service.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::Ordering;
use std::time::Instant;

use rvs_core::model::{Forward, RealId, RealRegistry, RealServer};
use rvs_core::sched::{FlowInfo, Maglev, SchedFlags, Scheduler, NAMES};

fn reals(n: usize) -> Vec<RealServer> {
    (0..n)
        .map(|i| RealServer {
            id: RealId(i as u32),
            addr: IpAddr::V4(Ipv4Addr::from(0x0a80_0000 + i as u32)),
            port: 80,
            forward: Forward::Nat,
            weight: 1 + (i % 4) as u32,
            upper: 0,
            lower: 0,
        })
        .collect()
}

fn flow(i: u32) -> FlowInfo {
    FlowInfo {
        client: IpAddr::V4(Ipv4Addr::from(i.wrapping_mul(0x9e37_79b9))),
        client_port: 1024 + (i % 60000) as u16,
        vip: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + (i % 4096))),
        vport: 80,
        now: i as u64,
    }
}

#[inline(never)]
fn measure(s: &Scheduler, r: &[RealServer], reg: &RealRegistry, n: u32) -> u64 {
    let mut acc = 0u64;
    for i in 0..n {
        if let Some(k) = s.pick(r, reg, &flow(i)) {
            acc += k as u64;
            let c = reg.get(r[k].id);
            c.active.fetch_add(1, Ordering::Relaxed);
            if i % 64 == 0 && c.active() > 0 {
                c.active.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
    acc
}

fn ns_per_pick(name: &str, servers: usize, n: u32) -> f64 {
    let mut runs: Vec<f64> = (0..5)
        .map(|_| {
            let r = reals(servers);
            let reg = RealRegistry::new(servers);
            let s = Scheduler::new(name, SchedFlags::default(), &r).unwrap();
            let t = Instant::now();
            black_box(measure(&s, &r, &reg, n));
            t.elapsed().as_nanos() as f64 / n as f64
        })
        .collect();
    runs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    runs[2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("count") {
        let name = &args[2];
        let servers: usize = args[3].parse().unwrap();
        let n: u32 = args[4].parse().unwrap();
        let r = reals(servers);
        let reg = RealRegistry::new(servers);
        let s = Scheduler::new(name, SchedFlags::default(), &r).unwrap();
        println!("{}", measure(&s, &r, &reg, n));
        return;
    }
    println!("ns per pick (median of 5 runs; this VM is noisy: compare ratios)");
    println!("{:<6} {:>9} {:>9} {:>9}", "sched", "10", "100", "1000");
    for name in NAMES {
        let cells: Vec<String> = [10, 100, 1000]
            .iter()
            .map(|&n| {
                format!(
                    "{:9.1}",
                    ns_per_pick(name, n, if n == 1000 { 20_000 } else { 200_000 })
                )
            })
            .collect();
        println!("{:<6} {}", name, cells.join(" "));
    }
    let r = reals(1000);
    let mut builds: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            black_box(Maglev::new(&r, SchedFlags::default(), 65537));
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    builds.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "maglev build, M=65537, 1000 servers (weights 1-4): {:.2} ms (median of 5)",
        builds[2]
    );
    for n in [10, 100, 1000] {
        let mut r = reals(n);
        r.iter_mut().for_each(|x| x.weight = 1);
        let before = Maglev::new(&r, SchedFlags::default(), 65537);
        let gone = n / 3;
        let rest: Vec<RealServer> = r.iter().filter(|x| x.id.0 as usize != gone).cloned().collect();
        let after = Maglev::new(&rest, SchedFlags::default(), 65537);
        let (mut own, mut others) = (0, 0);
        for (&b, &a) in before.slots().iter().zip(after.slots()) {
            if b as usize == gone {
                own += 1;
            } else if r[b as usize].id != rest[a as usize].id {
                others += 1;
            }
        }
        println!(
            "maglev disruption, remove 1 of {n}: its own {own} slots ({:.2}%) move, plus {others} others ({:.3}% of the table)",
            own as f64 * 100.0 / 65537.0,
            others as f64 * 100.0 / 65537.0
        );
    }
}
