//! Shared by the core's integration tests: the test director's tables, frame builders (made
//! with etherparse, an independent implementation), and an etherparse re-parse that checks
//! every output frame's lengths and checksums.

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use etherparse::{
    EtherType, Ethernet2Header, IpHeaders, IpNumber, Ipv4Header, Ipv6Header, NetSlice, PacketBuilder,
    SlicedPacket, TransportSlice,
};
use rvs_core::conn::state::Timeouts;
use rvs_core::model::{
    Forward, Persistence, Protocol, RealId, RealRegistry, RealServer, Service, ServiceKey,
};
use rvs_core::net::{Network, PortNet};
use rvs_core::sched::SchedFlags;
use rvs_core::{Director, DirectorConfig, Tables};

pub const GW_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const P0_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xa0];
pub const P1_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xb0];
pub const CLIENT: [u8; 4] = [198, 51, 100, 7];
pub const CLIENT6: &str = "2001:db8:c::7";
pub const GW4: [u8; 4] = [203, 0, 113, 254];
pub const GW6: &str = "2001:db8:ff::fe";

pub fn v6(s: &str) -> [u8; 16] {
    s.parse::<Ipv6Addr>().unwrap().octets()
}

pub fn ip4(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

pub fn ip6(s: &str) -> IpAddr {
    IpAddr::V6(s.parse().unwrap())
}

/// The MAC the harness "resolves" a next hop to.
pub fn neigh(ip: IpAddr) -> [u8; 6] {
    let o = match ip {
        IpAddr::V4(a) => a.octets(),
        IpAddr::V6(a) => {
            let o = a.octets();
            [o[12], o[13], o[14], o[15]]
        }
    };
    [0x02, 0x11, o[0], o[1], o[2], o[3]]
}

fn real(id: u32, addr: &str, port: u16, forward: Forward, weight: u32) -> RealServer {
    RealServer {
        id: RealId(id),
        addr: addr.parse().unwrap(),
        port,
        forward,
        weight,
        upper: 0,
        lower: 0,
    }
}

fn svc(
    p: Protocol,
    vip: &str,
    port: u16,
    reals: Vec<RealServer>,
    persistence: Option<Persistence>,
) -> Arc<Service> {
    let key = ServiceKey::Addr {
        protocol: p,
        vip: vip.parse().unwrap(),
        port,
    };
    Arc::new(Service::new(key, "rr", SchedFlags::default(), persistence, reals).unwrap())
}

/// Port 0 faces the clients (routers behind 203.0.113.254), port 1 the real servers.
pub fn tables() -> Tables {
    let mut p0 = PortNet::new(P0_MAC);
    p0.v4.push(("203.0.113.1".parse().unwrap(), 24));
    p0.v6.push(("2001:db8:ff::1".parse().unwrap(), 64));
    p0.gateway4 = Some(Ipv4Addr::from(GW4));
    p0.gateway6 = Some(GW6.parse().unwrap());
    let mut p1 = PortNet::new(P1_MAC);
    p1.v4.push(("192.168.1.1".parse().unwrap(), 24));
    p1.v6.push(("2001:db8:1::1".parse().unwrap(), 64));
    let net = Network { ports: vec![p0, p1] };
    use Forward::*;
    use Protocol::*;
    let services = vec![
        svc(
            Tcp,
            "10.0.0.100",
            80,
            vec![
                real(0, "192.168.1.2", 8080, Nat, 1),
                real(1, "192.168.1.3", 8080, Nat, 1),
            ],
            None,
        ),
        svc(
            Udp,
            "10.0.0.100",
            53,
            vec![real(2, "192.168.1.2", 5353, Nat, 1)],
            None,
        ),
        svc(
            Tcp,
            "10.0.0.101",
            80,
            vec![real(3, "192.168.1.4", 80, Dr, 1)],
            None,
        ),
        svc(
            Tcp,
            "10.0.0.102",
            80,
            vec![real(4, "192.168.1.5", 80, Tun, 1)],
            None,
        ),
        svc(
            Tcp,
            "10.0.0.103",
            443,
            vec![
                real(5, "192.168.1.6", 443, Nat, 1),
                real(6, "192.168.1.7", 443, Nat, 1),
            ],
            Some(Persistence {
                timeout_s: 300,
                prefix_len: 24,
            }),
        ),
        svc(
            Tcp,
            "2001:db8::100",
            80,
            vec![real(7, "2001:db8:1::2", 8080, Nat, 1)],
            None,
        ),
        svc(
            Udp,
            "2001:db8::100",
            53,
            vec![real(8, "2001:db8:1::4", 53, Dr, 1)],
            None,
        ),
        svc(
            Tcp,
            "2001:db8::102",
            80,
            vec![real(9, "2001:db8:1::5", 80, Tun, 1)],
            None,
        ),
        svc(
            Sctp,
            "10.0.0.100",
            3868,
            vec![real(10, "192.168.1.2", 3869, Nat, 1)],
            None,
        ),
        svc(
            Udp,
            "10.0.0.104",
            53,
            vec![real(11, "192.168.1.8", 53, Nat, 0)],
            None,
        ),
    ];
    Tables::new(
        net,
        services,
        Timeouts::default(),
        Arc::new(RealRegistry::new(64)),
    )
}

pub fn director() -> Director {
    Director::new(DirectorConfig {
        worker: 0,
        workers: 1,
        conn_capacity_v4: 1024,
        conn_capacity_v6: 256,
        seed: 0x5eed,
        real_capacity: 64,
        evict_half_open: true,
    })
}

/// TCP flags for the builders.
#[derive(Clone, Copy, Default)]
pub struct Flags {
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
    pub psh: bool,
}

pub const SYN: Flags = Flags {
    syn: true,
    ack: false,
    fin: false,
    rst: false,
    psh: false,
};
pub const SYNACK: Flags = Flags {
    syn: true,
    ack: true,
    fin: false,
    rst: false,
    psh: false,
};
pub const ACK: Flags = Flags {
    syn: false,
    ack: true,
    fin: false,
    rst: false,
    psh: false,
};
pub const PSHACK: Flags = Flags {
    syn: false,
    ack: true,
    fin: false,
    rst: false,
    psh: true,
};
pub const FINACK: Flags = Flags {
    syn: false,
    ack: true,
    fin: true,
    rst: false,
    psh: false,
};
pub const RST: Flags = Flags {
    syn: false,
    ack: false,
    fin: false,
    rst: true,
    psh: false,
};

/// Ethernet addresses and optional VLAN of a frame.
#[derive(Clone, Copy)]
pub struct L2 {
    pub src: [u8; 6],
    pub dst: [u8; 6],
    pub vlan: Option<u16>,
}

/// From the clients' router to the director's port 0.
pub const IN0: L2 = L2 {
    src: GW_MAC,
    dst: P0_MAC,
    vlan: None,
};

/// From a real server (by address) to the director's port 1.
pub fn from_rs(rs: IpAddr) -> L2 {
    L2 {
        src: neigh(rs),
        dst: P1_MAC,
        vlan: None,
    }
}

/// What the director sends out of `port` toward `next_hop`.
pub fn out(port: u16, next_hop: IpAddr) -> L2 {
    L2 {
        src: if port == 0 { P0_MAC } else { P1_MAC },
        dst: neigh(next_hop),
        vlan: None,
    }
}

fn tcp_flags(
    mut b: etherparse::PacketBuilderStep<etherparse::TcpHeader>,
    f: Flags,
) -> etherparse::PacketBuilderStep<etherparse::TcpHeader> {
    if f.syn {
        b = b.syn();
    }
    if f.ack {
        b = b.ack(2000);
    }
    if f.fin {
        b = b.fin();
    }
    if f.rst {
        b = b.rst();
    }
    if f.psh {
        b = b.psh();
    }
    b
}

/// Ethernet (+VLAN) / IPv4 / TCP with valid checksums.
#[allow(clippy::too_many_arguments)]
pub fn tcp4(
    l2: L2,
    src: [u8; 4],
    dst: [u8; 4],
    ttl: u8,
    sport: u16,
    dport: u16,
    f: Flags,
    payload: &[u8],
) -> Vec<u8> {
    let mut out = Vec::new();
    let b = PacketBuilder::ethernet2(l2.src, l2.dst);
    match l2.vlan {
        None => tcp_flags(b.ipv4(src, dst, ttl).tcp(sport, dport, 1000, 64240), f)
            .write(&mut out, payload)
            .unwrap(),
        Some(v) => tcp_flags(
            b.single_vlan(etherparse::VlanId::try_new(v).unwrap())
                .ipv4(src, dst, ttl)
                .tcp(sport, dport, 1000, 64240),
            f,
        )
        .write(&mut out, payload)
        .unwrap(),
    }
    out
}

pub fn udp4(l2: L2, src: [u8; 4], dst: [u8; 4], ttl: u8, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(l2.src, l2.dst)
        .ipv4(src, dst, ttl)
        .udp(sport, dport)
        .write(&mut out, payload)
        .unwrap();
    out
}

#[allow(clippy::too_many_arguments)]
pub fn tcp6(
    l2: L2,
    src: &str,
    dst: &str,
    hop: u8,
    sport: u16,
    dport: u16,
    f: Flags,
    payload: &[u8],
) -> Vec<u8> {
    let mut out = Vec::new();
    let b = PacketBuilder::ethernet2(l2.src, l2.dst)
        .ipv6(v6(src), v6(dst), hop)
        .tcp(sport, dport, 1000, 64240);
    tcp_flags(b, f).write(&mut out, payload).unwrap();
    out
}

pub fn udp6(l2: L2, src: &str, dst: &str, hop: u8, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(l2.src, l2.dst)
        .ipv6(v6(src), v6(dst), hop)
        .udp(sport, dport)
        .write(&mut out, payload)
        .unwrap();
    out
}

pub fn echo4(l2: L2, src: [u8; 4], dst: [u8; 4], ttl: u8, reply: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let b = PacketBuilder::ethernet2(l2.src, l2.dst).ipv4(src, dst, ttl);
    if reply {
        b.icmpv4_echo_reply(7, 1)
            .write(&mut out, b"ping-payload")
            .unwrap();
    } else {
        b.icmpv4_echo_request(7, 1)
            .write(&mut out, b"ping-payload")
            .unwrap();
    }
    out
}

pub fn echo6(l2: L2, src: &str, dst: &str, hop: u8, reply: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let b = PacketBuilder::ethernet2(l2.src, l2.dst).ipv6(v6(src), v6(dst), hop);
    if reply {
        b.icmpv6_echo_reply(7, 1)
            .write(&mut out, b"ping-payload")
            .unwrap();
    } else {
        b.icmpv6_echo_request(7, 1)
            .write(&mut out, b"ping-payload")
            .unwrap();
    }
    out
}

/// An IPv4 ICMP message with `icmp` (type, code, rest-of-header) quoting `quoted`.
pub fn icmp4(
    l2: L2,
    src: [u8; 4],
    dst: [u8; 4],
    ttl: u8,
    icmp: etherparse::Icmpv4Type,
    quoted: &[u8],
    df: bool,
) -> Vec<u8> {
    let mut h = Ipv4Header::new(0, ttl, IpNumber::ICMP, src, dst).unwrap();
    h.dont_fragment = df;
    let mut out = Vec::new();
    PacketBuilder::ethernet2(l2.src, l2.dst)
        .ip(IpHeaders::Ipv4(h, Default::default()))
        .icmpv4(icmp)
        .write(&mut out, quoted)
        .unwrap();
    out
}

pub fn icmp6(l2: L2, src: &str, dst: &str, hop: u8, icmp: etherparse::Icmpv6Type, quoted: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(l2.src, l2.dst)
        .ipv6(v6(src), v6(dst), hop)
        .icmpv6(icmp)
        .write(&mut out, quoted)
        .unwrap();
    out
}

/// The IP packet of a frame (Ethernet header, and VLAN tag, cut off).
pub fn ip_of(frame: &[u8]) -> Vec<u8> {
    let l2 = if frame[12..14] == [0x81, 0x00] { 18 } else { 14 };
    frame[l2..].to_vec()
}

/// Ethernet header + outer IPv4 (protocol 4) + the inner IP packet: what TUN sends.
pub fn ipip4(l2: L2, src: [u8; 4], dst: [u8; 4], inner: &[u8], df: bool, ident: u16) -> Vec<u8> {
    let mut h = Ipv4Header::new(inner.len() as u16, 64, IpNumber::IPV4, src, dst).unwrap();
    h.dont_fragment = df;
    h.identification = ident;
    h.dscp = etherparse::Ipv4Dscp::try_new(inner[1] >> 2).unwrap();
    h.ecn = etherparse::Ipv4Ecn::try_new(inner[1] & 3).unwrap();
    h.header_checksum = h.calc_header_checksum();
    let mut out = Ethernet2Header {
        source: l2.src,
        destination: l2.dst,
        ether_type: EtherType::IPV4,
    }
    .to_bytes()
    .to_vec();
    out.extend_from_slice(&h.to_bytes());
    out.extend_from_slice(inner);
    out
}

/// Ethernet header + outer IPv6 (next header 41) + the inner IPv6 packet.
pub fn ip6ip6(l2: L2, src: &str, dst: &str, inner: &[u8]) -> Vec<u8> {
    let h = Ipv6Header {
        traffic_class: 0,
        flow_label: Default::default(),
        payload_length: inner.len() as u16,
        next_header: IpNumber(41),
        hop_limit: 64,
        source: v6(src),
        destination: v6(dst),
    };
    let mut out = Ethernet2Header {
        source: l2.src,
        destination: l2.dst,
        ether_type: EtherType::IPV6,
    }
    .to_bytes()
    .to_vec();
    out.extend_from_slice(&h.to_bytes());
    out.extend_from_slice(inner);
    out
}

/// Re-parses an output frame with etherparse and checks every length and checksum it can:
/// the IPv4 header checksum, TCP/UDP checksums with their pseudo-header, ICMP/ICMPv6
/// checksums, and for a tunnel the inner packet the same way.
pub fn verify(frame: &[u8]) {
    let p =
        SlicedPacket::from_ethernet(frame).unwrap_or_else(|e| panic!("etherparse rejects the output: {e:?}"));
    verify_sliced(&p);
}

fn verify_sliced(p: &SlicedPacket) {
    let (src4, dst4, src6, dst6);
    match &p.net {
        Some(NetSlice::Ipv4(ip)) => {
            let h = ip.header().to_header();
            assert_eq!(
                h.calc_header_checksum(),
                h.header_checksum,
                "IPv4 header checksum"
            );
            src4 = h.source;
            dst4 = h.destination;
            src6 = [0; 16];
            dst6 = [0; 16];
            if h.protocol == IpNumber::IPV4 || h.protocol.0 == 41 {
                let inner = SlicedPacket::from_ip(ip.payload().payload).expect("inner packet parses");
                return verify_sliced(&inner);
            }
        }
        Some(NetSlice::Ipv6(ip)) => {
            let h = ip.header().to_header();
            src6 = h.source;
            dst6 = h.destination;
            src4 = [0; 4];
            dst4 = [0; 4];
            if h.next_header.0 == 41 {
                let inner = SlicedPacket::from_ip(ip.payload().payload).expect("inner packet parses");
                return verify_sliced(&inner);
            }
        }
        None => return,
    }
    let v4 = matches!(p.net, Some(NetSlice::Ipv4(_)));
    match &p.transport {
        Some(TransportSlice::Tcp(t)) => {
            let c = if v4 {
                t.calc_checksum_ipv4(src4, dst4)
            } else {
                t.calc_checksum_ipv6(src6, dst6)
            }
            .unwrap();
            assert_eq!(c, t.checksum(), "TCP checksum");
        }
        Some(TransportSlice::Udp(u)) if u.checksum() != 0 || !v4 => {
            let h = u.to_header();
            let c = if v4 {
                h.calc_checksum_ipv4_raw(src4, dst4, u.payload())
            } else {
                h.calc_checksum_ipv6_raw(src6, dst6, u.payload())
            }
            .unwrap();
            assert_eq!(c, u.checksum(), "UDP checksum");
        }
        Some(TransportSlice::Udp(_)) => {} // IPv4 UDP without a checksum
        Some(TransportSlice::Icmpv4(i)) => {
            assert_eq!(
                i.header().icmp_type.calc_checksum(i.payload()),
                i.checksum(),
                "ICMP checksum"
            );
        }
        Some(TransportSlice::Icmpv6(i)) => {
            assert!(i.is_checksum_valid(src6, dst6), "ICMPv6 checksum")
        }
        None => {}
    }
}

/// A neighbor discovery message of type `t` (135 solicitation, 136 advertisement) with its
/// flags byte, target and one link-layer address option (`opt` 1 source, 2 target) of `mac`:
/// the ICMPv6 type and body for [`icmp6`].
pub fn nd(t: u8, flags: u8, target: &str, mac: [u8; 6], opt: u8) -> (etherparse::Icmpv6Type, Vec<u8>) {
    let mut body = v6(target).to_vec();
    body.extend_from_slice(&[opt, 1]);
    body.extend_from_slice(&mac);
    (
        etherparse::Icmpv6Type::Unknown {
            type_u8: t,
            code_u8: 0,
            bytes5to8: [flags, 0, 0, 0],
        },
        body,
    )
}
