//! The host path in the core: which frames go up to a port's kernel twin
//! ([`Verdict::ToHost`]), which rvs still answers itself, and `follow-host` VIPs answered only
//! while the twin holds them. Port 0 (the clients' side) has a twin here; port 1 does not, and
//! keeps today's behaviour.

mod support;

use std::net::IpAddr;
use std::sync::Arc;

use etherparse::{IpNumber, PacketBuilder};
use rvs_core::model::{Announce, Forward, Protocol, RealId, RealServer, Service, ServiceKey};
use rvs_core::sched::SchedFlags;
use rvs_core::{DropReason as D, Frame, Tables, VecFrame, Verdict};
use support::*;

const DIR0: [u8; 4] = [203, 0, 113, 1];
const DIR1: [u8; 4] = [192, 168, 1, 1];
const VIP: [u8; 4] = [10, 0, 0, 100];
const FOLLOWED: [u8; 4] = [10, 0, 0, 200];
const LINK_LOCAL: &str = "fe80::a0";

const UP0: Verdict = Verdict::ToHost {
    port: 0,
    learn: false,
};
const LEARN0: Verdict = Verdict::ToHost { port: 0, learn: true };

/// The shared test tables, with a twin on port 0 holding the port's addresses, a link-local
/// and `extra`, and a follow-host NAT service on 10.0.0.200:80.
fn twin_tables(extra: &[IpAddr]) -> Tables {
    let base = tables();
    let mut net = base.net.clone();
    net.ports[0].twin = true;
    net.ports[0].host = vec![ip4(DIR0), ip6("2001:db8:ff::1"), ip6(LINK_LOCAL)];
    net.ports[0].host.extend_from_slice(extra);
    let mut services = base.services.clone();
    let key = ServiceKey::Addr {
        protocol: Protocol::Tcp,
        vip: ip4(FOLLOWED),
        port: 80,
    };
    let real = RealServer {
        id: RealId(20),
        addr: "192.168.1.2".parse().unwrap(),
        port: 8080,
        forward: Forward::Nat,
        weight: 1,
        upper: 0,
        lower: 0,
    };
    let svc = Service::new(key, "rr", SchedFlags::default(), None, vec![real])
        .unwrap()
        .with_announce(Announce::FollowHost);
    services.push(Arc::new(svc));
    Tables::new(net, services, base.timeouts, base.reals.clone())
}

fn arp(op: u16, sender: [u8; 4], target: [u8; 4], port_mac: [u8; 6]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(if op == 1 { &[0xff; 6] } else { &port_mac });
    f.extend_from_slice(&GW_MAC);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&GW_MAC);
    f.extend_from_slice(&sender);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target);
    f
}

/// A frame of IP protocol `proto` (VRRP is 112) with a small payload.
fn ip_proto(dst: [u8; 4], proto: u8) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(GW_MAC, P0_MAC)
        .ipv4([203, 0, 113, 2], dst, 255)
        .write(&mut out, IpNumber(proto), &[0x21, 7, 100, 1, 0, 1, 0, 0])
        .unwrap();
    out
}

/// One frame through a fresh director; the verdict, and whether the frame was left unchanged
/// (what goes up to the kernel must be exactly what came in).
fn run(t: &Tables, port: u16, frame: Vec<u8>) -> (Verdict, bool) {
    let mut d = director();
    let mut f = VecFrame::new(&frame);
    let v = d.process(t, port, &mut f, 1);
    (v, f.data() == frame.as_slice())
}

fn up_unchanged(t: &Tables, port: u16, frame: Vec<u8>, want: Verdict, desc: &str) {
    let (v, same) = run(t, port, frame);
    assert_eq!(v, want, "{desc}");
    if matches!(v, Verdict::ToHost { .. }) {
        assert!(same, "{desc}: a frame for the host goes up unchanged");
    }
}

#[test]
fn the_directors_own_traffic_goes_up_to_the_twin() {
    let t = twin_tables(&[]);
    let ssh = tcp4(IN0, [198, 51, 100, 7], DIR0, 64, 40000, 22, SYN, b"");
    up_unchanged(&t, 0, ssh.clone(), UP0, "ssh to the director's address");
    let bgp = tcp4(IN0, [203, 0, 113, 254], DIR0, 1, 179, 50000, PSHACK, b"open");
    up_unchanged(
        &t,
        0,
        bgp,
        UP0,
        "BGP from the router (TTL 1: not forwarded, delivered)",
    );
    let probe_reply = tcp4(IN0, [203, 0, 113, 9], DIR0, 64, 80, 41000, SYNACK, b"");
    up_unchanged(&t, 0, probe_reply, UP0, "the reply to a kernel connection");
    let v6 = tcp6(IN0, "2001:db8:c::7", "2001:db8:ff::1", 64, 40000, 22, SYN, b"");
    up_unchanged(&t, 0, v6, UP0, "IPv6 to the director's address");
    let to_ll = udp6(IN0, "fe80::1", LINK_LOCAL, 64, 546, 547, b"x");
    up_unchanged(&t, 0, to_ll, UP0, "to the twin's link-local address");
    // Port 1 has no twin: what it got before, it gets now.
    let inside = tcp4(
        from_rs(ip4([192, 168, 1, 2])),
        [192, 168, 1, 2],
        DIR1,
        64,
        40000,
        22,
        SYN,
        b"",
    );
    assert_eq!(run(&t, 1, inside).0, Verdict::Drop(D::NotForUs));
    assert_eq!(run(&t, 0, ssh).0, UP0);
    let stranger = tcp4(IN0, [198, 51, 100, 7], [203, 0, 113, 77], 64, 40000, 22, SYN, b"");
    assert_eq!(
        run(&t, 0, stranger).0,
        Verdict::Drop(D::NotForUs),
        "not an address of the host"
    );
}

#[test]
fn the_daemons_multicast_goes_up() {
    let t = twin_tables(&[]);
    up_unchanged(&t, 0, ip_proto([224, 0, 0, 18], 112), UP0, "VRRP advertisement");
    up_unchanged(&t, 0, ip_proto([224, 0, 0, 5], 89), UP0, "OSPF hello");
    let sync = udp4(IN0, [203, 0, 113, 2], [224, 0, 0, 81], 1, 8848, 8848, &[0; 24]);
    up_unchanged(&t, 0, sync, UP0, "IPVS connection sync");
    let vrrp6 = {
        let mut out = Vec::new();
        PacketBuilder::ethernet2(GW_MAC, P0_MAC)
            .ipv6(v6("fe80::2"), v6("ff02::12"), 255)
            .write(&mut out, IpNumber(112), &[0x31, 7, 100, 1, 0, 1, 0, 0])
            .unwrap();
        out
    };
    up_unchanged(&t, 0, vrrp6, UP0, "VRRPv3 over IPv6");
    assert_eq!(
        run(&t, 0, ip_proto([224, 0, 1, 1], 112)).0,
        Verdict::Drop(D::UnsupportedProtocol),
        "multicast beyond the link's scope is not the host's"
    );
    assert_eq!(
        run(&t, 0, ip_proto(DIR0, 47)).0,
        UP0,
        "any protocol to the director's address (GRE here) is the kernel's to take or refuse"
    );
    assert_eq!(
        run(&t, 1, ip_proto([224, 0, 0, 18], 112)).0,
        Verdict::Drop(D::UnsupportedProtocol),
        "no twin on port 1"
    );
}

#[test]
fn arp_and_nd_for_director_addresses_go_up_rvs_answers_for_vips() {
    let t = twin_tables(&[]);
    up_unchanged(
        &t,
        0,
        arp(1, [203, 0, 113, 254], DIR0, P0_MAC),
        LEARN0,
        "ARP request for the director",
    );
    up_unchanged(
        &t,
        0,
        arp(2, [203, 0, 113, 254], DIR0, P0_MAC),
        LEARN0,
        "ARP reply to the kernel's request",
    );
    up_unchanged(
        &t,
        0,
        arp(1, [203, 0, 113, 254], [203, 0, 113, 254], P0_MAC),
        LEARN0,
        "gratuitous ARP",
    );
    assert_eq!(
        run(&t, 0, arp(2, [203, 0, 113, 254], [203, 0, 113, 50], P0_MAC)).0,
        Verdict::Neighbor,
        "a reply to someone else only teaches rvs's table"
    );
    assert_eq!(
        run(&t, 0, arp(1, [203, 0, 113, 254], VIP, P0_MAC)).0,
        Verdict::Reply { port: 0 },
        "rvs answers for its VIPs"
    );
    assert_eq!(
        run(&t, 1, arp(1, [192, 168, 1, 2], DIR1, P1_MAC)).0,
        Verdict::Reply { port: 1 },
        "without a twin rvs answers for the director too"
    );
    let (ns, body) = nd(135, 0, LINK_LOCAL, GW_MAC, 1);
    up_unchanged(
        &t,
        0,
        icmp6(IN0, "fe80::1", LINK_LOCAL, 255, ns, &body),
        UP0,
        "NS for the twin's address",
    );
    let (ns_vip, body) = nd(135, 0, "2001:db8::100", GW_MAC, 1);
    assert_eq!(
        run(&t, 0, icmp6(IN0, "fe80::1", "2001:db8::100", 255, ns_vip, &body)).0,
        Verdict::Reply { port: 0 },
        "rvs answers NS for a VIP"
    );
    let (na, body) = nd(136, 0x60, "fe80::1", GW_MAC, 2);
    up_unchanged(
        &t,
        0,
        icmp6(IN0, "fe80::1", LINK_LOCAL, 255, na, &body),
        LEARN0,
        "NA to the twin",
    );
}

#[test]
fn ping_and_icmp_errors_for_the_host_go_up() {
    let t = twin_tables(&[]);
    up_unchanged(
        &t,
        0,
        echo4(IN0, [198, 51, 100, 7], DIR0, 64, false),
        UP0,
        "ping the director",
    );
    up_unchanged(
        &t,
        0,
        echo4(IN0, [198, 51, 100, 7], DIR0, 64, true),
        UP0,
        "the reply to the kernel's ping",
    );
    up_unchanged(
        &t,
        0,
        echo6(IN0, "2001:db8:c::7", "2001:db8:ff::1", 64, false),
        UP0,
        "ping6 the director",
    );
    assert_eq!(
        run(&t, 0, echo4(IN0, [198, 51, 100, 7], VIP, 64, false)).0,
        Verdict::Reply { port: 0 },
        "rvs answers pings to VIPs"
    );
    assert_eq!(
        run(
            &t,
            1,
            echo4(from_rs(ip4([192, 168, 1, 2])), [192, 168, 1, 2], DIR1, 64, false)
        )
        .0,
        Verdict::Reply { port: 1 },
        "without a twin rvs answers pings to the director"
    );
    // A real server refuses the kernel's UDP health probe.
    let probe = udp4(IN0, DIR0, [203, 0, 113, 9], 64, 41000, 53, b"q");
    let unreachable = icmp4(
        IN0,
        [203, 0, 113, 9],
        DIR0,
        64,
        etherparse::Icmpv4Type::DestinationUnreachable(etherparse::icmpv4::DestUnreachableHeader::Port),
        &ip_of(&probe),
        false,
    );
    up_unchanged(
        &t,
        0,
        unreachable,
        UP0,
        "port unreachable about the kernel's probe",
    );
}

#[test]
fn a_follow_host_vip_is_answered_only_while_the_twin_holds_it() {
    let without = twin_tables(&[]);
    let with = twin_tables(&[ip4(FOLLOWED)]);
    let who_has = arp(1, [203, 0, 113, 254], FOLLOWED, P0_MAC);
    assert_eq!(
        run(&without, 0, who_has.clone()).0,
        Verdict::Drop(D::ArpNotForUs),
        "silent"
    );
    assert_eq!(run(&with, 0, who_has).0, Verdict::Reply { port: 0 });
    let syn = tcp4(IN0, [198, 51, 100, 7], FOLLOWED, 64, 40000, 80, SYN, b"");
    assert_eq!(run(&without, 0, syn.clone()).0, Verdict::Drop(D::NotForUs));
    assert_eq!(
        run(&with, 0, syn.clone()).0,
        Verdict::Forward {
            port: 1,
            next_hop: ip4([192, 168, 1, 2])
        }
    );
    assert_eq!(
        run(&without, 0, echo4(IN0, [198, 51, 100, 7], FOLLOWED, 64, false)).0,
        Verdict::Drop(D::NotForUs)
    );
    // What no service claims on a VIP the kernel holds is the kernel's (ssh to the VIP).
    let ssh = tcp4(IN0, [198, 51, 100, 7], FOLLOWED, 64, 40000, 22, SYN, b"");
    assert_eq!(run(&with, 0, ssh).0, UP0);
    // An always-VIP on a port without that address in the kernel: no service, no host.
    let closed = tcp4(IN0, [198, 51, 100, 7], VIP, 64, 40000, 22, SYN, b"");
    assert_eq!(run(&with, 0, closed).0, Verdict::Drop(D::NoService));

    // A connection made while the VIP was held keeps going after the address moves away.
    let mut d = director();
    let mut f = VecFrame::new(&syn);
    assert!(matches!(d.process(&with, 0, &mut f, 1), Verdict::Forward { .. }));
    let ack = tcp4(IN0, [198, 51, 100, 7], FOLLOWED, 64, 40000, 80, ACK, b"GET /");
    let mut f = VecFrame::new(&ack);
    assert!(matches!(
        d.process(&without, 0, &mut f, 2),
        Verdict::Forward { .. }
    ));
}

#[test]
fn host_verdicts_are_counted() {
    let t = twin_tables(&[]);
    let mut d = director();
    let frames = [
        tcp4(IN0, [198, 51, 100, 7], DIR0, 64, 40000, 22, SYN, b""),
        ip_proto([224, 0, 0, 18], 112),
        arp(1, [203, 0, 113, 254], DIR0, P0_MAC),
    ];
    let mut fs: Vec<VecFrame> = frames.iter().map(|f| VecFrame::new(f)).collect();
    let mut out = vec![Verdict::Neighbor; fs.len()];
    d.process_burst(&t, 0, &mut fs, 1, &mut out);
    assert_eq!(out, vec![UP0, UP0, LEARN0]);
    assert_eq!(d.stats.to_host, 3);
    assert_eq!(d.drops.total(), 0);
}
