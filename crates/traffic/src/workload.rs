//! The bench's workloads: what each replays, and its frames from a fixed seed (the harness
//! runs them through the data plane; tests replay them too).

use std::net::{Ipv4Addr, Ipv6Addr};

use serde::Serialize;

use crate::{tcp_v4, tcp_v6, udp_v4, Rng, TCP_ACK, TCP_PSH, TCP_SYN};

/// What a workload replays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// NAT TCP: each flow's SYN, then data segments (one per flow per pass for 1M flows).
    Established,
    /// A distinct SYN per client: every packet makes a connection.
    NewConnections,
    /// NAT requests and the real server's replies, interleaved.
    NatMixed,
    Udp,
    Dr,
    Tun,
    Ipv6,
    /// FullNAT TCP with the PROXY protocol (v2): each flow's SYN, then data after the
    /// client's first bytes, every segment's sequence number shifted by the header.
    FullNat,
    /// A user's capture (`rvs-bench --pcap`), with the services of a user's config.
    Capture,
}

#[derive(Debug, Clone, Serialize)]
pub struct Workload {
    pub name: String,
    pub kind: Kind,
    pub flows: u32,
    /// 64-byte frames, or the simple IMIX (7:4:1 of 64, 594, 1518 bytes).
    pub imix: bool,
}

impl Workload {
    pub fn new(name: &str, kind: Kind, flows: u32, imix: bool) -> Workload {
        Workload {
            name: name.into(),
            kind,
            flows,
            imix,
        }
    }
}

/// The full set, or the seconds-long smoke set CI runs.
pub fn workloads(smoke: bool) -> Vec<Workload> {
    use Kind::*;
    if smoke {
        return vec![
            Workload::new("established-1k", Established, 1000, false),
            Workload::new("new-connections", NewConnections, 20_000, false),
            Workload::new("nat-mixed-1k", NatMixed, 1000, false),
        ];
    }
    vec![
        Workload::new("established-1k", Established, 1000, false),
        Workload::new("established-1k-imix", Established, 1000, true),
        Workload::new("established-100k", Established, 100_000, false),
        Workload::new("established-1m", Established, 1_000_000, false),
        Workload::new("new-connections", NewConnections, 1_000_000, false),
        Workload::new("nat-mixed-1k", NatMixed, 1000, false),
        Workload::new("udp-1k", Udp, 1000, false),
        Workload::new("dr-1k", Dr, 1000, false),
        Workload::new("tun-1k", Tun, 1000, false),
        Workload::new("ipv6-1k", Ipv6, 1000, false),
        Workload::new("fullnat-1k", FullNat, 1000, false),
    ]
}

pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
pub const VIP_ONE: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 101);
pub const VIP_DR: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 102);
pub const VIP_TUN: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 103);
pub const VIP6: &str = "2001:db8::100";
pub const VIP_FULLNAT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 104);

fn client(i: u32) -> (Ipv4Addr, u16) {
    (
        Ipv4Addr::from(0xc000_0000 | (i / 50_000) << 8 | (i % 250 + 1)),
        1024 + (i % 50_000) as u16,
    )
}

fn client6(i: u32) -> (Ipv6Addr, u16) {
    (
        Ipv6Addr::from(0x2001_0db8_00c0_0000_0000_0000_0000_0000u128 | i as u128),
        1024 + (i % 50_000) as u16,
    )
}

/// Payload so that the frame has `len` bytes (60 = the 64-byte minimum without FCS).
fn pad(len: usize, header: usize) -> Vec<u8> {
    vec![0x5a; len.saturating_sub(header)]
}

fn frame_len(rng: &mut Rng, imix: bool) -> usize {
    if !imix {
        return 60;
    }
    match rng.below(12) {
        0..=6 => 60,
        7..=10 => 590,
        _ => 1514,
    }
}

/// The workload's frames, from a fixed seed.
pub fn frames(w: &Workload) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(0x5eed ^ w.flows as u64);
    let n = w.flows;
    let mut out = Vec::new();
    match w.kind {
        Kind::Capture => {}
        Kind::Established => {
            // Every flow opens; then data, several segments a flow while that stays small.
            let rounds = if n <= 1000 {
                7
            } else if n <= 100_000 {
                1
            } else {
                0
            };
            for i in 0..n {
                let (c, p) = client(i);
                out.push(tcp_v4(c, VIP, p, 80, TCP_SYN, &pad(60, 54)));
            }
            for _ in 0..rounds {
                for i in 0..n {
                    let (c, p) = client(i);
                    let len = frame_len(&mut rng, w.imix);
                    out.push(tcp_v4(c, VIP, p, 80, TCP_ACK | TCP_PSH, &pad(len, 54)));
                }
            }
        }
        Kind::NewConnections => {
            for i in 0..n {
                let (c, p) = client(i);
                out.push(tcp_v4(c, VIP, p, 80, TCP_SYN, &pad(60, 54)));
            }
        }
        Kind::NatMixed => {
            // One real server, so the replies' source is known.
            let rs = Ipv4Addr::new(192, 168, 1, 2);
            for i in 0..n {
                let (c, p) = client(i);
                out.push(tcp_v4(c, VIP_ONE, p, 80, TCP_SYN, &pad(60, 54)));
            }
            for i in 0..n {
                let (c, p) = client(i);
                out.push(crate::with_macs(
                    tcp_v4(rs, c, 8080, p, TCP_SYN | TCP_ACK, &pad(60, 54)),
                    crate::server_mac(rs),
                    crate::INSIDE_MAC,
                ));
            }
            for _ in 0..3 {
                for i in 0..n {
                    let (c, p) = client(i);
                    out.push(tcp_v4(c, VIP_ONE, p, 80, TCP_ACK | TCP_PSH, &pad(60, 54)));
                    out.push(crate::with_macs(
                        tcp_v4(rs, c, 8080, p, TCP_ACK | TCP_PSH, &pad(60, 54)),
                        crate::server_mac(rs),
                        crate::INSIDE_MAC,
                    ));
                }
            }
        }
        Kind::Udp => {
            for _ in 0..8 {
                for i in 0..n {
                    let (c, p) = client(i);
                    out.push(udp_v4(c, VIP, p, 53, &pad(60, 42)));
                }
            }
        }
        Kind::FullNat => {
            for r in 0..8 {
                for i in 0..n {
                    let (c, p) = client(i);
                    // The SYN's sequence number is 1000: data from 1101 on is shifted.
                    let (flags, seq) = if r == 0 {
                        (TCP_SYN, 1000)
                    } else {
                        (TCP_ACK | TCP_PSH, 1101)
                    };
                    out.push(crate::tcp_v4_seq(c, VIP_FULLNAT, p, 80, flags, seq, &pad(60, 54)));
                }
            }
        }
        Kind::Dr | Kind::Tun => {
            let vip = if w.kind == Kind::Dr { VIP_DR } else { VIP_TUN };
            for r in 0..8 {
                for i in 0..n {
                    let (c, p) = client(i);
                    let flags = if r == 0 { TCP_SYN } else { TCP_ACK | TCP_PSH };
                    out.push(tcp_v4(c, vip, p, 80, flags, &pad(60, 54)));
                }
            }
        }
        Kind::Ipv6 => {
            let vip: Ipv6Addr = VIP6.parse().unwrap();
            for r in 0..8 {
                for i in 0..n {
                    let (c, p) = client6(i);
                    let flags = if r == 0 { TCP_SYN } else { TCP_ACK | TCP_PSH };
                    out.push(tcp_v6(c, vip, p, 80, flags, &pad(78, 74)));
                }
            }
        }
    }
    out
}
