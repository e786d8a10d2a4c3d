//! Firewall-mark services (`ipvsadm -f`): the classifier's rules mark new flows, the mark's
//! service takes them before any service of the address, and a persistent mark keeps a client
//! on one real server across every port of the mark (the classic HTTP+HTTPS sticky set-up),
//! through sync too.

mod support;

use std::net::IpAddr;
use std::sync::Arc;

use rvs_core::model::{
    Forward, MarkRule, Persistence, Protocol, RealId, RealRegistry, RealServer, Service, ServiceKey,
};
use rvs_core::net::{Network, PortNet};
use rvs_core::sched::SchedFlags;
use rvs_core::sync::{self, MessageBuilder, SyncConn};
use rvs_core::{Director, DropReason, Frame, Tables, VecFrame, Verdict};
use support::*;

const VIP: [u8; 4] = [10, 0, 0, 100];
const NET6: &str = "2001:db8:100::";

fn real(id: u32, a: &str, forward: Forward) -> RealServer {
    RealServer {
        id: RealId(id),
        addr: a.parse().unwrap(),
        port: 0,
        forward,
        weight: 1,
        upper: 0,
        lower: 0,
    }
}

fn rule(mark: u32, protocol: Option<Protocol>, dst: &str, len: u8, ports: (u16, u16)) -> MarkRule {
    MarkRule {
        mark,
        protocol,
        dst: dst.parse().unwrap(),
        prefix_len: len,
        ports,
    }
}

/// Mark 1: TCP 10.0.0.100 ports 80 and 443, persistent, three NAT servers; mark 2: every
/// protocol and port of 10.1.0.0/24, DR; mark 1 for IPv6: 2001:db8:100::/64, its own service.
/// An address service on 10.0.0.100:80 too, which the mark's rule shadows.
fn tables() -> Tables {
    let mut p0 = PortNet::new(P0_MAC);
    p0.v4.push(("203.0.113.1".parse().unwrap(), 24));
    p0.v6.push(("2001:db8:ff::1".parse().unwrap(), 64));
    p0.gateway4 = Some(std::net::Ipv4Addr::from(GW4));
    p0.gateway6 = Some(GW6.parse().unwrap());
    let mut p1 = PortNet::new(P1_MAC);
    p1.v4.push(("192.168.1.1".parse().unwrap(), 24));
    p1.v6.push(("2001:db8:1::1".parse().unwrap(), 64));
    let persist = Some(Persistence {
        timeout_s: 360,
        prefix_len: 32,
    });
    let web = Service::new(
        ServiceKey::Fwmark { mark: 1, v6: false },
        "rr",
        SchedFlags::default(),
        persist,
        vec![
            real(0, "192.168.1.2", Forward::Nat),
            real(1, "192.168.1.3", Forward::Nat),
            real(2, "192.168.1.4", Forward::Nat),
        ],
    )
    .unwrap();
    let wide = Service::new(
        ServiceKey::Fwmark { mark: 2, v6: false },
        "rr",
        SchedFlags::default(),
        None,
        vec![real(3, "192.168.1.9", Forward::Dr)],
    )
    .unwrap();
    let web6 = Service::new(
        ServiceKey::Fwmark { mark: 1, v6: true },
        "rr",
        SchedFlags::default(),
        None,
        vec![real(4, "2001:db8:1::9", Forward::Nat)],
    )
    .unwrap();
    let shadowed = Service::new(
        ServiceKey::Addr {
            protocol: Protocol::Tcp,
            vip: IpAddr::from(VIP),
            port: 80,
        },
        "rr",
        SchedFlags::default(),
        None,
        vec![RealServer {
            port: 8080,
            ..real(5, "192.168.1.50", Forward::Nat)
        }],
    )
    .unwrap();
    Tables::new(
        Network { ports: vec![p0, p1] },
        vec![Arc::new(web), Arc::new(wide), Arc::new(web6), Arc::new(shadowed)],
        Default::default(),
        Arc::new(RealRegistry::new(16)),
    )
    .with_marks(vec![
        rule(1, Some(Protocol::Tcp), "10.0.0.100", 32, (80, 80)),
        rule(1, Some(Protocol::Tcp), "10.0.0.100", 32, (443, 443)),
        rule(2, None, "10.1.0.0", 24, (0, u16::MAX)),
        rule(1, None, NET6, 64, (0, u16::MAX)),
        // A mark with no service: its flows are left to the address's services.
        rule(9, None, "10.0.0.100", 32, (8080, 8080)),
    ])
}

fn client(i: u32) -> [u8; 4] {
    [198, 51, (i >> 8) as u8, i as u8]
}

fn syn(
    d: &mut Director,
    t: &Tables,
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
) -> (Verdict, Vec<u8>) {
    let mut f = VecFrame::new(&tcp4(IN0, src, dst, 64, sport, dport, SYN, b""));
    let v = d.process(t, 0, &mut f, 1);
    (v, f.data().to_vec())
}

fn server(v: Verdict) -> IpAddr {
    match v {
        Verdict::Forward { next_hop, .. } => next_hop,
        v => panic!("{v:?}"),
    }
}

#[test]
fn http_and_https_of_a_persistent_mark_reach_one_server_per_client() {
    let t = tables();
    let mut d = director();
    let mut spread = std::collections::BTreeMap::new();
    for i in 0..30 {
        let (v80, f80) = syn(&mut d, &t, client(i), VIP, 40000 + i as u16, 80);
        let (v443, f443) = syn(&mut d, &t, client(i), VIP, 41000 + i as u16, 443);
        let (a, b) = (server(v80), server(v443));
        assert_eq!(a, b, "client {i}: HTTP and HTTPS on one server");
        // NAT to the port the client asked for (the real servers' port is 0).
        verify(&f80);
        assert_eq!(u16::from_be_bytes([f80[36], f80[37]]), 80);
        assert_eq!(u16::from_be_bytes([f443[36], f443[37]]), 443);
        *spread.entry(a).or_insert(0) += 1;
    }
    assert_eq!(spread.len(), 3, "rr spreads clients: {spread:?}");
    assert!(!spread.contains_key(&"192.168.1.50".parse::<IpAddr>().unwrap()));
    assert_eq!(
        d.templates().len(1),
        30,
        "one template per client, for both ports"
    );

    // A NAT reply goes back from the VIP's port.
    let (v, _) = syn(&mut d, &t, client(0), VIP, 40000, 80);
    let rs = server(v);
    let IpAddr::V4(rs4) = rs else { unreachable!() };
    let mut f = VecFrame::new(&tcp4(
        from_rs(rs),
        rs4.octets(),
        client(0),
        64,
        80,
        40000,
        SYNACK,
        b"",
    ));
    assert!(matches!(
        d.process(&t, 1, &mut f, 2),
        Verdict::Forward { port: 0, .. }
    ));
    let out = f.data();
    verify(out);
    assert_eq!(&out[26..30], &VIP, "from the VIP");
}

#[test]
fn what_no_rule_marks_goes_to_the_address_services_or_nowhere() {
    let t = tables();
    let mut d = director();
    // UDP to port 80: the rule is TCP's; no UDP service either.
    let mut f = VecFrame::new(&udp4(IN0, client(1), VIP, 64, 5000, 80, b"x"));
    assert_eq!(d.process(&t, 0, &mut f, 1), Verdict::Drop(DropReason::NoService));
    // 8080 is marked 9, which has no service; no address service either.
    assert_eq!(
        syn(&mut d, &t, client(1), VIP, 5001, 8080).0,
        Verdict::Drop(DropReason::NoService)
    );
    // 22 is not marked.
    assert_eq!(
        syn(&mut d, &t, client(1), VIP, 5002, 22).0,
        Verdict::Drop(DropReason::NoService)
    );
}

#[test]
fn a_prefix_mark_takes_any_address_of_it_without_answering_arp_for_them() {
    let t = tables();
    let mut d = director();
    for (i, (dst, port)) in [([10, 1, 0, 77], 22), ([10, 1, 0, 200], 5060)]
        .into_iter()
        .enumerate()
    {
        let (v, out) = syn(&mut d, &t, client(i as u32), dst, 6000, port);
        assert_eq!(
            v,
            Verdict::Forward {
                port: 1,
                next_hop: "192.168.1.9".parse().unwrap()
            }
        );
        assert_eq!(&out[30..34], &dst, "DR leaves the destination alone");
    }
    assert!(
        !t.is_vip_on(0, "10.1.0.77".parse().unwrap()),
        "a prefix is routed here, not ARPed"
    );
    assert!(
        t.is_vip_on(0, IpAddr::from(VIP)),
        "a host rule's address is a VIP"
    );
    assert!(t.is_own(IpAddr::from(VIP)));
    let (v, _) = syn(&mut d, &t, client(9), [10, 1, 1, 1], 6000, 22);
    assert_eq!(v, Verdict::Drop(DropReason::NotForUs), "outside the prefix");
}

#[test]
fn a_mark_has_a_service_per_family() {
    let t = tables();
    let mut d = director();
    let mut f = VecFrame::new(&tcp6(IN0, CLIENT6, "2001:db8:100::5", 64, 7000, 443, SYN, b""));
    assert_eq!(
        d.process(&t, 0, &mut f, 1),
        Verdict::Forward {
            port: 1,
            next_hop: "2001:db8:1::9".parse().unwrap()
        }
    );
    verify(f.data());
    assert!(t.fwmark_service(1, true).is_some() && t.fwmark_service(3, true).is_none());
}

/// What the master produced, through the wire format and back.
fn over_the_wire(d: &mut Director) -> Vec<SyncConn> {
    let mut b = MessageBuilder::new(3, sync::DEFAULT_MAXLEN);
    let mut msgs = Vec::new();
    for r in d.sync_out().drain(..) {
        msgs.extend(b.push(&r));
    }
    msgs.extend(b.finish());
    msgs.iter()
        .flat_map(|m| sync::decode(m, 3).unwrap().conns)
        .collect()
}

#[test]
fn a_marks_template_syncs_as_ipvs_sends_it_and_binds_the_backup() {
    let t = tables();
    let mut m = director();
    m.set_sync(true);
    let c = client(42);
    let rs = server(syn(&mut m, &t, c, VIP, 40000, 443).0);
    let mut f = VecFrame::new(&tcp4(IN0, c, VIP, 64, 40000, 443, ACK, b""));
    m.process(&t, 0, &mut f, 2);
    let recs = over_the_wire(&mut m);
    let tpl = recs
        .iter()
        .find(|r| r.is_template())
        .expect("the template is sent");
    assert_eq!(
        (tpl.protocol, tpl.fwmark, tpl.vaddr, tpl.vport, tpl.daddr),
        (0, 1, "0.0.0.1".parse().unwrap(), 0, rs),
        "IPVS's fwmark template: protocol 0, the mark as the address and in the record"
    );
    let conn = recs
        .iter()
        .find(|r| !r.is_template())
        .expect("the connection too");
    let tb = tables();
    let mut b = director();
    for r in &recs {
        b.install(&tb, r, 10).unwrap();
    }
    assert_eq!(b.sync.installed, 2, "{conn:?}");
    // On the backup, the client's HTTP goes where its HTTPS went.
    assert_eq!(server(syn(&mut b, &tb, c, VIP, 40001, 80).0), rs);
}
