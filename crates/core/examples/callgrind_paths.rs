//! Drives one data-path case through `Director::process_burst` in bursts of 32, for counting
//! instructions with callgrind (see benches/callgrind.sh at the top of the repository):
//!
//!   callgrind_paths CASE N        CASE: nat-in | nat-reply | syn | dr-in | fnat-in |
//!                                 fnat-reply | fnat-pp-in | fnat-pp-reply (FullNAT, and
//!                                 FullNAT with the PROXY protocol's sequence shift) |
//!                                 nat6-in (IPv6 NAT) | tun-in (IPIP); any CASE-offload: with a NIC's
//!                                 checksums-good flags
//!   callgrind_paths memory        size of the connection table at 1M and 10M entries
//!
//! Frames are built before the measured function, `measure`, which callgrind is told to count
//! alone (`--toggle-collect=*measure*`), so the figure is the path's own cost per packet.

use std::net::Ipv4Addr;

use rvs_core::conn::ConnTable;
use rvs_core::{Director, Tables, VecFrame, Verdict};

#[path = "../benches/common/mod.rs"]
mod common;
use common::*;

#[inline(never)]
fn measure(d: &mut Director, t: &Tables, port: u16, frames: &mut [VecFrame], now: u64) -> u64 {
    let mut verdicts = [Verdict::Neighbor; 32];
    let mut forwarded = 0;
    for chunk in frames.chunks_mut(32) {
        let v = &mut verdicts[..chunk.len()];
        d.process_burst(t, port, chunk, now, v);
        forwarded += v.iter().filter(|v| matches!(v, Verdict::Forward { .. })).count() as u64;
    }
    forwarded
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let case = args.get(1).map(String::as_str).unwrap_or("nat-in");
    if case == "memory" {
        for n in [1_000_000usize, 10_000_000] {
            let t = ConnTable::<Ipv4Addr>::new(n, 1);
            println!(
                "{n} IPv4 entries: {:.1} MiB ({} bytes per connection)",
                t.memory_bytes() as f64 / (1 << 20) as f64,
                t.memory_bytes() / n
            );
            let t6 = ConnTable::<std::net::Ipv6Addr>::new(n, 1);
            println!(
                "{n} IPv6 entries: {:.1} MiB ({} bytes per connection)",
                t6.memory_bytes() as f64 / (1 << 20) as f64,
                t6.memory_bytes() / n
            );
        }
        return;
    }
    let n: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    // `-offload`: the frames come with a NIC's "checksums good" flags (a device that checks).
    let (case, offload) = match case.strip_suffix("-offload") {
        Some(c) => (c, true),
        None => (case, false),
    };
    let t = tables();
    let flows = 1024u32.min(n);
    // Established flows first (handshake done), outside the measurement.
    let vip = match case {
        "dr-in" => VIP_DR,
        "tun-in" => VIP_TUN,
        "fnat-in" | "fnat-reply" => VIP_FN,
        "fnat-pp-in" | "fnat-pp-reply" => VIP_FN_PP,
        _ => VIP,
    };
    let setup_flows = if matches!(case, "syn" | "nat6-in") {
        0
    } else {
        flows
    };
    let mut d = director_with_flows(&t, setup_flows, (n + flows) as usize * 2, vip);
    let rs = [Ipv4Addr::new(192, 168, 1, 2), Ipv4Addr::new(192, 168, 1, 3)];
    let (port, mut frames): (u16, Vec<VecFrame>) = match case {
        "nat-in" | "dr-in" | "tun-in" => (
            0,
            (0..n)
                .map(|i| {
                    let (c, p) = client(i % flows);
                    VecFrame::new(&tcp(c, vip, p, 80, ACK))
                })
                .collect(),
        ),
        "nat-reply" => (
            1,
            (0..n)
                .map(|i| {
                    let (c, p) = client(i % flows);
                    VecFrame::new(&tcp(rs[(i % flows % 2) as usize], c, 8080, p, ACK))
                })
                .collect(),
        ),
        // The client's data after its first bytes (shifted when the PROXY header is on).
        "fnat-in" | "fnat-pp-in" => (
            0,
            (0..n)
                .map(|i| {
                    let (c, p) = client(i % flows);
                    VecFrame::new(&tcp_seq(c, vip, p, 80, ACK, 101, 1))
                })
                .collect(),
        ),
        // The server's acknowledgement of them (moved back over the header).
        "fnat-reply" | "fnat-pp-reply" => (
            1,
            (0..n)
                .map(|i| {
                    let k = i % flows;
                    let f = tcp_seq(rs[(k % 2) as usize], LADDR, 8080, fullnat_port(k), ACK, 1, 200);
                    VecFrame::new(&f)
                })
                .collect(),
        ),
        "syn" => (
            0,
            (0..n)
                .map(|i| {
                    let (c, p) = client(i);
                    VecFrame::new(&tcp(c, VIP, p, 80, SYN))
                })
                .collect(),
        ),
        // IPv6 NAT, a client's established flow (the IPv6 general path).
        "nat6-in" => {
            establish6(&mut d, &t, flows);
            (
                0,
                (0..n)
                    .map(|i| {
                        let (c, p) = client6(i % flows);
                        VecFrame::new(&tcp6(c, VIP6, p, 80, ACK))
                    })
                    .collect(),
            )
        }
        other => {
            eprintln!("unknown case {other:?}: nat-in | nat-reply | syn | dr-in | fnat-in | fnat-reply | fnat-pp-in | fnat-pp-reply | nat6-in | tun-in | memory");
            std::process::exit(2);
        }
    };
    if offload {
        let good = rvs_core::RxChecksums {
            ip: rvs_core::RxCheck::Good,
            l4: rvs_core::RxCheck::Good,
        };
        frames = frames.into_iter().map(|f| f.with_rx_checksums(good)).collect();
    }
    let forwarded = measure(&mut d, &t, port, &mut frames, 1);
    if forwarded != n as u64 {
        eprintln!(
            "only {forwarded} of {n} frames were forwarded; drops: {:?}",
            d.drops.nonzero().collect::<Vec<_>>()
        );
        std::process::exit(1);
    }
    println!("{case}: {n} frames forwarded, {} connections", d.conns_v4().len());
}
