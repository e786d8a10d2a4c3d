//! The packet path under arbitrary input: the harness the cargo-fuzz target (`fuzz/`) and the
//! corpus replay test share. Each input meets a director with established flows (NAT TCP and
//! UDP with replies seen, DR, TUN, IPv6 NAT), so that reply, ICMP-error and tunnel paths are
//! reachable from a single frame, and every output is checked: a forwarded or answered frame
//! has an Ethernet header, a bounded length, and, if IPv4, a valid header checksum.

use std::net::Ipv4Addr;
use std::sync::Arc;

use crate::checksum;
use crate::conn::state::Timeouts;
use crate::model::{
    Forward, MarkRule, Persistence, Protocol, RealId, RealRegistry, RealServer, Service, ServiceKey,
};
use crate::net::{Network, PortNet};
use crate::sched::SchedFlags;
use crate::{Director, DirectorConfig, Frame, Tables, VecFrame, Verdict};

const P0: [u8; 6] = [2, 0, 0, 0, 0, 0xa0];
const P1: [u8; 6] = [2, 0, 0, 0, 0, 0xb0];
const GW: [u8; 6] = [2, 0, 0, 0, 0, 1];

fn service(p: Protocol, vip: &str, port: u16, reals: &[(u32, &str, u16, Forward)]) -> Arc<Service> {
    let key = ServiceKey::Addr {
        protocol: p,
        vip: vip.parse().expect("literal"),
        port,
    };
    let reals = reals
        .iter()
        .map(|&(id, a, p, forward)| RealServer {
            id: RealId(id),
            addr: a.parse().expect("literal"),
            port: p,
            forward,
            weight: 1,
            upper: 0,
            lower: 0,
        })
        .collect();
    Arc::new(Service::new(key, "rr", SchedFlags::default(), None, reals).expect("rr builds"))
}

/// The harness's tables: port 0 toward the clients (a gateway, a twin), port 1 toward the
/// real servers; NAT, DR and TUN services over IPv4 and IPv6.
pub fn tables() -> Tables {
    let mut p0 = PortNet::new(P0);
    p0.v4.push(("203.0.113.1".parse().expect("literal"), 24));
    p0.v6.push(("2001:db8:ff::1".parse().expect("literal"), 64));
    p0.gateway4 = Some("203.0.113.254".parse().expect("literal"));
    p0.gateway6 = Some("2001:db8:ff::fe".parse().expect("literal"));
    p0.twin = true;
    p0.host = vec!["203.0.113.1".parse().expect("literal")];
    let mut p1 = PortNet::new(P1);
    p1.v4.push(("192.168.1.1".parse().expect("literal"), 24));
    p1.v6.push(("2001:db8:1::1".parse().expect("literal"), 64));
    use Forward::*;
    let services = vec![
        service(Protocol::Tcp, "10.0.0.100", 80, &[(0, "192.168.1.2", 8080, Nat)]),
        service(Protocol::Udp, "10.0.0.100", 53, &[(1, "192.168.1.2", 5353, Nat)]),
        service(Protocol::Tcp, "10.0.0.101", 80, &[(2, "192.168.1.4", 80, Dr)]),
        service(Protocol::Tcp, "10.0.0.102", 80, &[(3, "192.168.1.5", 80, Tun)]),
        service(
            Protocol::Tcp,
            "2001:db8::100",
            80,
            &[(4, "2001:db8:1::2", 8080, Nat)],
        ),
        service(
            Protocol::Sctp,
            "10.0.0.100",
            3868,
            &[(5, "192.168.1.2", 3869, Nat)],
        ),
        // A persistent firewall-mark service over TCP 10.0.0.110:80-81 and all of
        // 10.0.1.0/24 (DR).
        Arc::new(
            Service::new(
                ServiceKey::Fwmark { mark: 1, v6: false },
                "rr",
                SchedFlags::default(),
                Some(Persistence {
                    timeout_s: 60,
                    prefix_len: 24,
                }),
                vec![RealServer {
                    id: RealId(6),
                    addr: "192.168.1.6".parse().expect("literal"),
                    port: 0,
                    forward: Nat,
                    weight: 1,
                    upper: 0,
                    lower: 0,
                }],
            )
            .expect("rr builds"),
        ),
        // FullNAT with the PROXY protocol (v1) and TOA, from one local address.
        Arc::new(
            Arc::try_unwrap(service(
                Protocol::Tcp,
                "10.0.0.103",
                80,
                &[(7, "192.168.1.7", 8080, FullNat)],
            ))
            .expect("just made")
            .with_fullnat(crate::model::FullNatConfig {
                laddrs: vec!["192.168.1.250".parse().expect("literal")],
                proxy: crate::model::ProxyProtocol::V1,
                toa: true,
            }),
        ),
    ];
    let rule = |protocol, dst: &str, prefix_len, ports| MarkRule {
        mark: 1,
        protocol,
        dst: dst.parse().expect("literal"),
        prefix_len,
        ports,
    };
    Tables::new(
        Network { ports: vec![p0, p1] },
        services,
        Timeouts::default(),
        Arc::new(RealRegistry::new(16)),
    )
    .with_marks(vec![
        rule(Some(Protocol::Tcp), "10.0.0.110", 32, (80, 81)),
        rule(None, "10.0.1.0", 24, (0, u16::MAX)),
    ])
}

/// A later fragment (offset `offset` x 8 bytes, last or not) of a UDP datagram from a client
/// (through the gateway) of identification `id`, carrying `payload`.
pub fn fragment4(src: Ipv4Addr, dst: Ipv4Addr, id: u16, offset: u16, more: bool, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 34];
    f[0..6].copy_from_slice(&P0);
    f[6..12].copy_from_slice(&GW);
    f[12..14].copy_from_slice(&[8, 0]);
    crate::wire::ipv4::emit(
        &mut f[14..34],
        src,
        dst,
        crate::wire::proto::UDP,
        64,
        0,
        (20 + payload.len()) as u16,
        false,
        id,
    );
    let flags = offset | if more { 0x2000 } else { 0 };
    f[20..22].copy_from_slice(&flags.to_be_bytes());
    crate::wire::ipv4::Ipv4Packet::new_unchecked(&mut f[14..34]).fill_checksum();
    f.extend_from_slice(payload);
    f
}

/// An Ethernet + IPv4 + TCP (`flags`) or UDP (`flags` None) frame with valid checksums.
pub fn frame4(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    flags: Option<u8>,
    payload: &[u8],
    macs: ([u8; 6], [u8; 6]),
) -> Vec<u8> {
    let l4_len = if flags.is_some() { 20 } else { 8 } + payload.len();
    let mut f = vec![0u8; 34 + l4_len];
    f[0..6].copy_from_slice(&macs.1);
    f[6..12].copy_from_slice(&macs.0);
    f[12..14].copy_from_slice(&[8, 0]);
    let proto = if flags.is_some() { 6 } else { 17 };
    crate::wire::ipv4::emit(
        &mut f[14..34],
        src,
        dst,
        proto,
        64,
        0,
        (20 + l4_len) as u16,
        true,
        1,
    );
    let l4 = &mut f[34..];
    l4[0..2].copy_from_slice(&sport.to_be_bytes());
    l4[2..4].copy_from_slice(&dport.to_be_bytes());
    match flags {
        Some(fl) => {
            l4[4..8].copy_from_slice(&1000u32.to_be_bytes());
            l4[12] = 0x50;
            l4[13] = fl;
            l4[14..16].copy_from_slice(&65535u16.to_be_bytes());
            l4[20..].copy_from_slice(payload);
        }
        None => {
            l4[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
            l4[8..].copy_from_slice(payload);
        }
    }
    let at = if flags.is_some() { 16 } else { 6 };
    let c = checksum::fold(checksum::sum(
        l4,
        checksum::pseudo_v4(src, dst, proto, l4_len as u16),
    ));
    l4[at..at + 2].copy_from_slice(&(!c).to_be_bytes());
    f
}

/// A director with established flows of every kind.
pub fn world() -> (Tables, Director) {
    let t = tables();
    let mut d = Director::new(DirectorConfig {
        worker: 0,
        workers: 1,
        conn_capacity_v4: 64,
        conn_capacity_v6: 16,
        seed: 7,
        real_capacity: 16,
        evict_half_open: true,
    });
    let client: Ipv4Addr = "198.51.100.7".parse().expect("literal");
    let ip = |s: &str| s.parse::<Ipv4Addr>().expect("literal");
    let rs = ([2, 0x11, 192, 168, 1, 2], P1);
    let opening = [
        (
            0,
            frame4(client, ip("10.0.0.100"), 40000, 80, Some(0x02), b"", (GW, P0)),
        ),
        (
            1,
            frame4(ip("192.168.1.2"), client, 8080, 40000, Some(0x12), b"", rs),
        ),
        (
            0,
            frame4(client, ip("10.0.0.100"), 40000, 80, Some(0x10), b"", (GW, P0)),
        ),
        (
            0,
            frame4(client, ip("10.0.0.100"), 40001, 53, None, b"q", (GW, P0)),
        ),
        (1, frame4(ip("192.168.1.2"), client, 5353, 40001, None, b"a", rs)),
        (
            0,
            frame4(client, ip("10.0.0.101"), 40002, 80, Some(0x02), b"", (GW, P0)),
        ),
        (
            0,
            frame4(client, ip("10.0.0.102"), 40003, 80, Some(0x02), b"", (GW, P0)),
        ),
        // FullNAT: the first local port of one worker is 1025.
        (
            0,
            frame4(client, ip("10.0.0.103"), 40004, 80, Some(0x02), b"", (GW, P0)),
        ),
        (
            1,
            frame4(
                ip("192.168.1.7"),
                ip("192.168.1.250"),
                8080,
                crate::path::lport::LPORT_MIN,
                Some(0x12),
                b"",
                ([2, 0x11, 192, 168, 1, 7], P1),
            ),
        ),
    ];
    for (port, f) in opening {
        let mut fr = VecFrame::new(&f);
        d.process(&t, port, &mut fr, 1);
    }
    // A later fragment waiting for its first (UDP to 10.0.0.100:53, id 0x4242): an input
    // that is that first fragment releases it.
    let held = fragment4(client, ip("10.0.0.100"), 0x4242, 2, false, &[7; 24]);
    let v = d.process(&t, 0, &mut VecFrame::new(&held), 1);
    assert_eq!(v, Verdict::Held, "the harness holds a fragment");
    (t, d)
}

/// One input: its first byte picks the port, the rest is a frame, processed twice in one
/// burst (the first may change state the second sees), then every timer runs out.
pub fn packet(data: &[u8]) {
    let Some((&first, frame)) = data.split_first() else {
        return;
    };
    let (t, mut d) = world();
    let port = (first & 1) as u16;
    let mut frames = [VecFrame::new(frame), VecFrame::new(frame)];
    let mut out = [Verdict::Neighbor; 2];
    d.process_burst(&t, port, &mut frames, 1000, &mut out);
    for (f, v) in frames.iter().zip(out) {
        check(f.data(), v, frame.len());
    }
    for (port, held) in d.take_released() {
        let mut f = VecFrame::new(&held);
        let v = d.process_steered(&t, port, &mut f, 1000);
        check(f.data(), v, held.len());
    }
    d.advance(&t, 10_000_000);
}

/// What any output of the path must be.
fn check(out: &[u8], v: Verdict, in_len: usize) {
    if !matches!(v, Verdict::Forward { .. } | Verdict::Reply { .. }) {
        return;
    }
    assert!(out.len() >= 14, "{v:?}: an output frame has an Ethernet header");
    // A tunnel adds at most 40 bytes, FullNAT at most a PROXY header and a TOA option; an
    // ICMP error the director makes is at most 1280 bytes of IPv6 behind Ethernet and a tag.
    let grown = crate::wire::proxy::MAX_LEN + crate::wire::proxy::TOA_LEN_V6;
    assert!(
        out.len() <= (in_len + grown).max(18 + 1280),
        "{v:?}: {} bytes out of {in_len}",
        out.len()
    );
    let (l2, ethertype) = match [out[12], out[13]] {
        [0x81, 0x00] if out.len() >= 18 => (18, [out[16], out[17]]),
        t => (14, t),
    };
    if ethertype == [0x08, 0x00] {
        let ip = crate::wire::ipv4::Ipv4Packet::new_checked(&out[l2..])
            .unwrap_or_else(|e| panic!("{v:?}: the IPv4 header sent does not parse: {e:?}"));
        assert!(
            ip.verify_checksum(),
            "{v:?}: the IPv4 header checksum sent is wrong"
        );
    }
}

/// One input as a received sync message: decoded (refused whole, or each record checked),
/// re-encoded to the same records, and installed in a director with live flows; then every
/// timer runs out, which checks the accounting the installs left.
pub fn sync(data: &[u8]) {
    use crate::sync::{decode, MessageBuilder};
    for syncid in [0, 7] {
        let Ok(m) = decode(data, syncid) else { continue };
        assert!(syncid == 0 || m.syncid == syncid, "the syncid filter held");
        assert!(m.conns.len() + m.skipped <= 255);
        let mut b = MessageBuilder::new(m.syncid, 65535);
        let mut again = Vec::new();
        for c in &m.conns {
            assert_eq!(c.client.is_ipv4(), c.vaddr.is_ipv4(), "one family per record");
            assert_eq!(c.client.is_ipv4(), c.daddr.is_ipv4(), "one family per record");
            again.extend(b.push(c));
        }
        again.extend(b.finish());
        let back: Vec<_> = again
            .iter()
            .flat_map(|x| decode(x, 0).expect("what rvs encodes decodes").conns)
            .collect();
        assert_eq!(back, m.conns, "records survive a re-encoding");
        let (t, mut d) = world();
        for c in &m.conns {
            let _ = d.install(&t, c, 5000);
        }
        d.advance(&t, 1 << 40);
        for s in &t.services {
            for r in &s.reals {
                let shared = t.reals.get(r.id);
                assert_eq!(
                    (shared.active(), shared.inactive()),
                    (0, 0),
                    "expiry released every count"
                );
            }
        }
    }
}
