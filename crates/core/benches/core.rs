//! Criterion micro-benchmarks of the pure data path (opt-in: `cargo bench -p rvs-core`).
//! For numbers that compare between commits on a noisy machine use benches/callgrind.sh.

mod common;

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use common::*;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rvs_core::model::{Forward, RealId, RealRegistry, RealServer};
use rvs_core::sched::{FlowInfo, SchedFlags, Scheduler};
use rvs_core::{checksum, VecFrame, Verdict};

fn bursts(c: &mut Criterion) {
    let t = tables();
    let rs = [Ipv4Addr::new(192, 168, 1, 2), Ipv4Addr::new(192, 168, 1, 3)];
    let mut g = c.benchmark_group("process_burst_32");
    g.throughput(Throughput::Elements(32));
    let mut d = director_with_flows(&t, 1024, 4096, VIP);
    let inbound: Vec<VecFrame> = (0..32)
        .map(|i| {
            let (cl, p) = client(i * 31);
            VecFrame::new(&tcp(cl, VIP, p, 80, ACK))
        })
        .collect();
    let reply: Vec<VecFrame> = (0..32)
        .map(|i| {
            let (cl, p) = client(i * 31);
            VecFrame::new(&tcp(rs[(i * 31 % 2) as usize], cl, 8080, p, ACK))
        })
        .collect();
    let mut v = [Verdict::Neighbor; 32];
    g.bench_function("nat_inbound_established", |b| {
        b.iter_batched_ref(
            || inbound.clone(),
            |f| d.process_burst(&t, 0, f, 1, &mut v),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("nat_reply", |b| {
        b.iter_batched_ref(
            || reply.clone(),
            |f| d.process_burst(&t, 1, f, 1, &mut v),
            BatchSize::SmallInput,
        )
    });
    let mut next = 0u32;
    let mut fresh = director_with_flows(&t, 0, 1 << 22, VIP);
    g.bench_function("new_connection_syn", |b| {
        b.iter_batched_ref(
            || {
                next += 32;
                (0..32)
                    .map(|i| {
                        let (cl, p) = client(next + i);
                        VecFrame::new(&tcp(cl, VIP, p, 80, SYN))
                    })
                    .collect::<Vec<_>>()
            },
            |f| fresh.process_burst(&t, 0, f, 1, &mut v),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn checksums(c: &mut Criterion) {
    c.bench_function("checksum_update32", |b| {
        b.iter(|| checksum::update32(black_box(0x1234), black_box(0x0a000064), black_box(0xc0a80102)))
    });
    let data = vec![0x5au8; 1500];
    c.bench_function("checksum_full_1500", |b| {
        b.iter(|| checksum::checksum(black_box(&data)))
    });
}

fn schedulers(c: &mut Criterion) {
    let reals: Vec<RealServer> = (0..100)
        .map(|i| RealServer {
            id: RealId(i),
            addr: IpAddr::V4(Ipv4Addr::from(0x0a80_0000 + i)),
            port: 80,
            forward: Forward::Nat,
            weight: 1 + i % 4,
            upper: 0,
            lower: 0,
        })
        .collect();
    let reg = RealRegistry::new(128);
    let mut g = c.benchmark_group("pick_100_servers");
    for name in ["rr", "wrr", "wlc", "sh", "mh"] {
        let s = Scheduler::new(name, SchedFlags::default(), &reals).unwrap();
        let mut i = 0u32;
        g.bench_function(name, |b| {
            b.iter(|| {
                i = i.wrapping_add(1);
                let f = FlowInfo {
                    client: IpAddr::V4(Ipv4Addr::from(i.wrapping_mul(0x9e37_79b9))),
                    client_port: i as u16,
                    vip: IpAddr::V4(VIP),
                    vport: 80,
                    now: 0,
                };
                black_box(s.pick(&reals, &reg, &f))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bursts, checksums, schedulers);
criterion_main!(benches);
