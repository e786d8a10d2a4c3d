//! Drives one data-path case through `Director::process_burst` in bursts of 32, for counting
//! instructions with callgrind (see benches/callgrind.sh at the top of the repository):
//!
//!   callgrind_paths CASE N        CASE: nat-in | nat-reply | syn | dr-in
//!   callgrind_paths memory        size of the connection table at 1M and 10M entries
//!
//! Frames are built before the measured function, `measure`, which callgrind is told to count
//! alone (`--toggle-collect=*measure*`), so the figure is the path's own cost per packet.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use rvs_core::conn::state::Timeouts;
use rvs_core::conn::ConnTable;
use rvs_core::model::{Forward, Protocol, RealId, RealRegistry, RealServer, Service, ServiceKey};
use rvs_core::net::{Network, PortNet};
use rvs_core::sched::SchedFlags;
use rvs_core::{checksum, Director, DirectorConfig, Tables, VecFrame, Verdict};

const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
const VIP_DR: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 101);

fn tables() -> Tables {
    let mut p0 = PortNet::new([2, 0, 0, 0, 0, 0xa0]);
    p0.v4.push(("203.0.113.1".parse().unwrap(), 24));
    p0.gateway4 = Some("203.0.113.254".parse().unwrap());
    let mut p1 = PortNet::new([2, 0, 0, 0, 0, 0xb0]);
    p1.v4.push(("192.168.1.1".parse().unwrap(), 24));
    let real = |id, last, fwd, port| RealServer {
        id: RealId(id),
        addr: IpAddr::V4(Ipv4Addr::new(192, 168, 1, last)),
        port,
        forward: fwd,
        weight: 1,
        upper: 0,
        lower: 0,
    };
    let svc = |vip, reals| {
        let key = ServiceKey {
            protocol: Protocol::Tcp,
            vip: IpAddr::V4(vip),
            port: 80,
        };
        Arc::new(Service::new(key, "rr", SchedFlags::default(), None, reals).unwrap())
    };
    let services = vec![
        svc(
            VIP,
            vec![real(0, 2, Forward::Nat, 8080), real(1, 3, Forward::Nat, 8080)],
        ),
        svc(VIP_DR, vec![real(2, 4, Forward::Dr, 80)]),
    ];
    Tables::new(
        Network { ports: vec![p0, p1] },
        services,
        Timeouts::default(),
        Arc::new(RealRegistry::new(16)),
    )
}

/// Ethernet/IPv4/TCP, 64 bytes on the wire without FCS (6 bytes of payload).
fn tcp(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 0xa0]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&46u16.to_be_bytes());
    f[22] = 64;
    f[23] = 6;
    f[26..30].copy_from_slice(&src.octets());
    f[30..34].copy_from_slice(&dst.octets());
    let c = checksum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f[34..36].copy_from_slice(&sport.to_be_bytes());
    f[36..38].copy_from_slice(&dport.to_be_bytes());
    f[46] = 5 << 4;
    f[47] = flags;
    f[54..60].copy_from_slice(b"abcdef");
    let pseudo = checksum::pseudo_v4(src, dst, 6, 26);
    let c = !checksum::fold(checksum::sum(&f[34..60], pseudo));
    f[50..52].copy_from_slice(&c.to_be_bytes());
    f
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const SYNACK: u8 = 0x12;

fn client(i: u32) -> (Ipv4Addr, u16) {
    (
        Ipv4Addr::from(0xc633_0000 + i / 50_000),
        1024 + (i % 50_000) as u16,
    )
}

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
    let t = tables();
    let flows = 1024u32.min(n);
    let mut d = Director::new(DirectorConfig {
        worker: 0,
        workers: 1,
        conn_capacity_v4: (n + flows) as usize * 2,
        conn_capacity_v6: 16,
        seed: 42,
        real_capacity: 64,
    });
    let rs = [Ipv4Addr::new(192, 168, 1, 2), Ipv4Addr::new(192, 168, 1, 3)];
    // Established flows first (handshake done), outside the measurement.
    let vip = if case == "dr-in" { VIP_DR } else { VIP };
    if case != "syn" {
        for i in 0..flows {
            let (c, p) = client(i);
            let setup = [
                (0, tcp(c, vip, p, 80, SYN)),
                (1, tcp(rs[(i % 2) as usize], c, 8080, p, SYNACK)),
                (0, tcp(c, vip, p, 80, ACK)),
            ];
            for (port, f) in setup {
                d.process(&t, port, &mut VecFrame::new(&f), 0);
            }
        }
    }
    let (port, mut frames): (u16, Vec<VecFrame>) = match case {
        "nat-in" | "dr-in" => (
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
        "syn" => (
            0,
            (0..n)
                .map(|i| {
                    let (c, p) = client(i);
                    VecFrame::new(&tcp(c, VIP, p, 80, SYN))
                })
                .collect(),
        ),
        other => {
            eprintln!("unknown case {other:?}: nat-in | nat-reply | syn | dr-in | memory");
            std::process::exit(2);
        }
    };
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
