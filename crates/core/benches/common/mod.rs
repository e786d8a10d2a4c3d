//! Fixtures shared by the core's criterion benches and the callgrind example: a director with
//! a NAT and a DR service, and 64-byte TCP frames.

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use rvs_core::conn::state::Timeouts;
use rvs_core::model::{
    Forward, FullNatConfig, Protocol, ProxyProtocol, RealId, RealRegistry, RealServer, Service, ServiceKey,
};
use rvs_core::net::{Network, PortNet};
use rvs_core::sched::SchedFlags;
use rvs_core::{checksum, Director, DirectorConfig, Tables, VecFrame};

pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
pub const VIP_DR: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 101);
/// FullNAT, without and with the PROXY protocol (v2), from one local address.
pub const VIP_FN: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 102);
pub const VIP_FN_PP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 103);
pub const LADDR: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 250);
/// TUN (IPIP to 192.168.1.5).
pub const VIP_TUN: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 104);
/// NAT over IPv6 (port 80 to 2001:db8:1::2 and ::3, port 8080).
pub const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);

pub fn tables() -> Tables {
    let mut p0 = PortNet::new([2, 0, 0, 0, 0, 0xa0]);
    p0.v4.push(("203.0.113.1".parse().unwrap(), 24));
    p0.gateway4 = Some("203.0.113.254".parse().unwrap());
    p0.v6.push(("2001:db8:ff::1".parse().unwrap(), 64));
    p0.gateway6 = Some("2001:db8:ff::fe".parse().unwrap());
    let mut p1 = PortNet::new([2, 0, 0, 0, 0, 0xb0]);
    p1.v4.push(("192.168.1.1".parse().unwrap(), 24));
    p1.v6.push(("2001:db8:1::1".parse().unwrap(), 64));
    let real = |id, last, fwd, port| RealServer {
        id: RealId(id),
        addr: IpAddr::V4(Ipv4Addr::new(192, 168, 1, last)),
        port,
        forward: fwd,
        weight: 1,
        upper: 0,
        lower: 0,
    };
    let svc_at = |vip: IpAddr, reals, proxy| {
        let key = ServiceKey::Addr {
            protocol: Protocol::Tcp,
            vip,
            port: 80,
        };
        let fullnat = FullNatConfig {
            laddrs: vec![IpAddr::V4(LADDR)],
            proxy,
            toa: false,
        };
        Arc::new(
            Service::new(key, "rr", SchedFlags::default(), None, reals)
                .unwrap()
                .with_fullnat(fullnat),
        )
    };
    let svc = |vip: Ipv4Addr, reals, proxy| svc_at(IpAddr::V4(vip), reals, proxy);
    let off = ProxyProtocol::Off;
    let real6 = |id, last| RealServer {
        addr: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, last)),
        ..real(id, 0, Forward::Nat, 8080)
    };
    let services = vec![
        svc_at(IpAddr::V6(VIP6), vec![real6(7, 2), real6(8, 3)], off),
        svc(
            VIP,
            vec![real(0, 2, Forward::Nat, 8080), real(1, 3, Forward::Nat, 8080)],
            off,
        ),
        svc(VIP_DR, vec![real(2, 4, Forward::Dr, 80)], off),
        svc(
            VIP_FN,
            vec![
                real(3, 2, Forward::FullNat, 8080),
                real(4, 3, Forward::FullNat, 8080),
            ],
            off,
        ),
        svc(
            VIP_FN_PP,
            vec![
                real(5, 2, Forward::FullNat, 8080),
                real(6, 3, Forward::FullNat, 8080),
            ],
            ProxyProtocol::V2,
        ),
        svc(VIP_TUN, vec![real(9, 5, Forward::Tun, 80)], off),
    ];
    Tables::new(
        Network { ports: vec![p0, p1] },
        services,
        Timeouts::default(),
        Arc::new(RealRegistry::new(16)),
    )
}

/// Ethernet/IPv6/TCP, 6 bytes of payload.
pub fn tcp6(src: Ipv6Addr, dst: Ipv6Addr, sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut f = vec![0u8; 80];
    f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 0xa0]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    f[14] = 0x60;
    f[18..20].copy_from_slice(&26u16.to_be_bytes());
    f[20] = 6;
    f[21] = 64;
    f[22..38].copy_from_slice(&src.octets());
    f[38..54].copy_from_slice(&dst.octets());
    f[54..56].copy_from_slice(&sport.to_be_bytes());
    f[56..58].copy_from_slice(&dport.to_be_bytes());
    f[66] = 5 << 4;
    f[67] = flags;
    f[74..80].copy_from_slice(b"abcdef");
    let pseudo = checksum::pseudo_v6(src, dst, 6, 26);
    let c = !checksum::fold(checksum::sum(&f[54..80], pseudo));
    f[70..72].copy_from_slice(&c.to_be_bytes());
    f
}

/// An IPv6 client (by number).
pub fn client6(i: u32) -> (Ipv6Addr, u16) {
    (
        Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, (i / 50_000) as u16 + 1),
        1024 + (i % 50_000) as u16,
    )
}

/// `flows` IPv6 NAT flows to [`VIP6`] established on `d`.
pub fn establish6(d: &mut Director, t: &Tables, flows: u32) {
    let rs = [
        Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2),
        Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 3),
    ];
    for i in 0..flows {
        let (c, p) = client6(i);
        let setup = [
            (0, tcp6(c, VIP6, p, 80, SYN)),
            (1, tcp6(rs[(i % 2) as usize], c, 8080, p, SYNACK)),
            (0, tcp6(c, VIP6, p, 80, ACK)),
        ];
        for (port, f) in setup {
            d.process(t, port, &mut VecFrame::new(&f), 0);
        }
    }
}

/// Ethernet/IPv4/TCP, 64 bytes on the wire without FCS (6 bytes of payload).
pub fn tcp(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    tcp_seq(src, dst, sport, dport, flags, 0, 0)
}

/// The same with sequence and acknowledgement numbers.
pub fn tcp_seq(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    flags: u8,
    seq: u32,
    ack: u32,
) -> Vec<u8> {
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
    f[38..42].copy_from_slice(&seq.to_be_bytes());
    f[42..46].copy_from_slice(&ack.to_be_bytes());
    f[46] = 5 << 4;
    f[47] = flags;
    f[54..60].copy_from_slice(b"abcdef");
    let pseudo = checksum::pseudo_v4(src, dst, 6, 26);
    let c = !checksum::fold(checksum::sum(&f[34..60], pseudo));
    f[50..52].copy_from_slice(&c.to_be_bytes());
    f
}

pub const SYN: u8 = 0x02;
pub const ACK: u8 = 0x10;
pub const SYNACK: u8 = 0x12;

pub fn client(i: u32) -> (Ipv4Addr, u16) {
    (
        Ipv4Addr::from(0xc633_0000 + i / 50_000),
        1024 + (i % 50_000) as u16,
    )
}

/// A director (capacity for `capacity` connections) with `flows` NAT flows established.
pub fn director_with_flows(t: &Tables, flows: u32, capacity: usize, vip: Ipv4Addr) -> Director {
    let mut d = Director::new(DirectorConfig {
        worker: 0,
        workers: 1,
        conn_capacity_v4: capacity,
        conn_capacity_v6: capacity,
        seed: 42,
        real_capacity: 64,
        evict_half_open: true,
    });
    let rs = [Ipv4Addr::new(192, 168, 1, 2), Ipv4Addr::new(192, 168, 1, 3)];
    let fullnat = vip == VIP_FN || vip == VIP_FN_PP;
    for i in 0..flows {
        let (c, p) = client(i);
        // FullNAT: the server answers the local address and port (one worker hands the
        // ports out in order from 1025).
        let (to, dport) = if fullnat { (LADDR, fullnat_port(i)) } else { (c, p) };
        let setup = [
            (0, tcp(c, vip, p, 80, SYN)),
            (1, tcp_seq(rs[(i % 2) as usize], to, 8080, dport, SYNACK, 0, 1)),
            (0, tcp_seq(c, vip, p, 80, ACK, 1, 1)),
        ];
        for (port, f) in setup {
            d.process(t, port, &mut VecFrame::new(&f), 0);
        }
    }
    d
}

/// The local port of the `i`th FullNAT connection of a one-worker director.
pub fn fullnat_port(i: u32) -> u16 {
    1025 + i as u16
}
