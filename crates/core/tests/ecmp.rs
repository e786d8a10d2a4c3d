//! Directors behind ECMP: each builds its own tables (its own real-server ids, servers added in
//! its own order), yet a flow that a router moves from one to another mid-stream reaches the
//! same real server, because Maglev is built from addresses alone and the service is sloppy.

mod support;

use std::net::IpAddr;
use std::sync::Arc;

use rvs_core::conn::state::TcpState;
use rvs_core::model::{Forward, Protocol, RealId, RealRegistry, RealServer, Service, ServiceKey};
use rvs_core::net::{Network, PortNet};
use rvs_core::sched::SchedFlags;
use rvs_core::{Director, DropReason, Frame, Tables, VecFrame, Verdict};
use support::*;

const VIP: [u8; 4] = [10, 0, 0, 100];

/// A director's tables: one port, a DR mh service over `addrs` (in that order, ids from
/// `first_id`), sloppy or not.
fn tables_of(addrs: &[&str], first_id: u32, sloppy: bool) -> Tables {
    let mut p0 = PortNet::new(P0_MAC);
    p0.v4.push(("10.0.0.1".parse().unwrap(), 24));
    p0.gateway4 = Some(std::net::Ipv4Addr::from(GW4));
    let mut p1 = PortNet::new(P1_MAC);
    p1.v4.push(("192.168.1.1".parse().unwrap(), 24));
    let reals = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| RealServer {
            id: RealId(first_id + i as u32),
            addr: a.parse().unwrap(),
            port: 80,
            forward: Forward::Dr,
            weight: 1,
            upper: 0,
            lower: 0,
        })
        .collect();
    let key = ServiceKey::Addr {
        protocol: Protocol::Tcp,
        vip: IpAddr::from(VIP),
        port: 80,
    };
    let svc = Service::new(key, "mh", SchedFlags::default(), None, reals)
        .unwrap()
        .with_sloppy(sloppy);
    Tables::new(
        Network { ports: vec![p0, p1] },
        vec![Arc::new(svc)],
        Default::default(),
        Arc::new(RealRegistry::new(64)),
    )
}

fn send(d: &mut Director, t: &Tables, client: [u8; 4], port: u16, flags: Flags) -> Verdict {
    let mut f = VecFrame::new(&tcp4(IN0, client, VIP, 64, port, 80, flags, b"x"));
    d.process(t, 0, &mut f, 1)
}

fn client(i: u32) -> [u8; 4] {
    [198, 51, (i >> 8) as u8, i as u8]
}

#[test]
fn a_flow_moved_to_another_director_mid_stream_keeps_its_real_server() {
    let servers = ["192.168.1.2", "192.168.1.3", "192.168.1.4", "192.168.1.5"];
    let reversed: Vec<&str> = servers.iter().rev().copied().collect();
    let t1 = tables_of(&servers, 0, true);
    let t2 = tables_of(&reversed, 40, true);
    let (mut d1, mut d2) = (director(), director());
    let mut moved = 0;
    for i in 0..500 {
        let (c, p) = (client(i), 20000 + i as u16);
        let first = send(&mut d1, &t1, c, p, SYN);
        send(&mut d1, &t1, c, p, ACK);
        // The router moves the flow: director 2 sees only its middle.
        let later = send(&mut d2, &t2, c, p, PSHACK);
        assert_eq!(first, later, "flow {i}: both directors pick the same real server");
        assert!(matches!(later, Verdict::Forward { .. }));
        moved += 1;
    }
    assert_eq!(d2.stats.sloppy_created, moved);
    let (_, c) = d2.conns_v4().iter().next().unwrap();
    assert_eq!(
        TcpState::from_u8(c.state),
        TcpState::Established,
        "a flow taken over mid-stream is established at once (INPUT-ONLY: ack from NONE)"
    );
}

#[test]
fn without_sloppy_a_moved_flow_is_a_stray_and_a_reset_never_makes_a_connection() {
    let servers = ["192.168.1.2", "192.168.1.3"];
    let t = tables_of(&servers, 0, false);
    let mut d = director();
    assert_eq!(
        send(&mut d, &t, client(1), 3000, ACK),
        Verdict::Drop(DropReason::NoConnNotInitial)
    );
    let ts = tables_of(&servers, 0, true);
    let mut ds = director();
    assert_eq!(
        send(&mut ds, &ts, client(1), 3000, RST),
        Verdict::Drop(DropReason::NoConnNotInitial),
        "a reset for a flow nobody knows makes nothing"
    );
    assert_eq!(ds.conns_v4().len(), 0);
    assert_eq!(ds.stats.sloppy_created, 0);
}

#[test]
fn when_a_server_leaves_only_its_flows_move_on_every_director() {
    let five = [
        "192.168.1.2",
        "192.168.1.3",
        "192.168.1.4",
        "192.168.1.5",
        "192.168.1.6",
    ];
    let four: Vec<&str> = five.iter().copied().filter(|a| *a != "192.168.1.4").collect();
    let (before, after) = (tables_of(&five, 0, true), tables_of(&four, 9, true));
    let mut changed = 0;
    let n = 5000;
    for i in 0..n {
        let (mut d1, mut d2) = (director(), director());
        let a = send(&mut d1, &before, client(i), 1000, SYN);
        let b = send(&mut d2, &after, client(i), 1000, SYN);
        let gone = Verdict::Forward {
            port: 1,
            next_hop: "192.168.1.4".parse().unwrap(),
        };
        if a != gone && a != b {
            changed += 1;
        }
    }
    // Maglev's minimal disruption: flows of the servers that stay keep them (the paper's
    // bound is a few percent with a 65,537-slot table).
    assert!(
        changed * 100 < n * 2,
        "{changed} of {n} flows of staying servers moved"
    );
}

/// ipvsadm's `-o` for UDP: every datagram scheduled on its own, nothing kept; a NAT server's
/// replies leave from the VIP all the same.
#[test]
fn one_packet_scheduling_keeps_no_connection_and_translates_nat_replies() {
    let mut p0 = PortNet::new(P0_MAC);
    p0.v4.push(("10.0.0.1".parse().unwrap(), 24));
    p0.gateway4 = Some(std::net::Ipv4Addr::from(GW4));
    let mut p1 = PortNet::new(P1_MAC);
    p1.v4.push(("192.168.1.1".parse().unwrap(), 24));
    let reals = ["192.168.1.2", "192.168.1.3"]
        .iter()
        .enumerate()
        .map(|(i, a)| RealServer {
            id: RealId(i as u32),
            addr: a.parse().unwrap(),
            port: 5353,
            forward: Forward::Nat,
            weight: 1,
            upper: 0,
            lower: 0,
        })
        .collect();
    let key = ServiceKey::Addr {
        protocol: Protocol::Udp,
        vip: IpAddr::from(VIP),
        port: 53,
    };
    let svc = Service::new(key, "rr", SchedFlags::default(), None, reals)
        .unwrap()
        .with_one_packet(true);
    let t = Tables::new(
        Network { ports: vec![p0, p1] },
        vec![Arc::new(svc)],
        Default::default(),
        Arc::new(RealRegistry::new(8)),
    );
    let mut d = director();
    let mut hops = Vec::new();
    for _ in 0..4 {
        let mut f = VecFrame::new(&udp4(IN0, client(5), VIP, 64, 40000, 53, b"q"));
        match d.process(&t, 0, &mut f, 1) {
            Verdict::Forward { next_hop, .. } => hops.push(next_hop),
            v => panic!("{v:?}"),
        }
    }
    assert_eq!(hops[0], hops[2]);
    assert_ne!(
        hops[0], hops[1],
        "one flow, yet each datagram is scheduled: rr alternates"
    );
    assert_eq!(d.conns_v4().len(), 0, "no connection is kept");
    assert_eq!(t.reals.get(RealId(0)).inactive(), 0);
    assert_eq!(d.stats.conns_created, 4);
    // The answer from 192.168.1.3:5353 to the client leaves from the VIP.
    let rs = [192, 168, 1, 3];
    let mut f = VecFrame::new(&udp4(from_rs(ip4(rs)), rs, client(5), 64, 5353, 40000, b"a"));
    let v = d.process(&t, 1, &mut f, 2);
    assert!(matches!(v, Verdict::Forward { port: 0, .. }), "{v:?}");
    let out = f.data();
    assert_eq!(&out[26..30], &VIP, "from the VIP");
    assert_eq!(
        u16::from_be_bytes([out[34], out[35]]),
        53,
        "from the service port"
    );
    verify(out);
}

/// ipvsadm's `-A -t VIP:0 -p`: every port of the VIP, one template for all of them, the real
/// server's port 0 meaning the port the client asked for; a port with a service of its own
/// keeps it.
#[test]
fn a_port_zero_service_takes_every_port_with_one_template() {
    let mut p0 = PortNet::new(P0_MAC);
    p0.v4.push(("10.0.0.1".parse().unwrap(), 24));
    p0.gateway4 = Some(std::net::Ipv4Addr::from(GW4));
    let mut p1 = PortNet::new(P1_MAC);
    p1.v4.push(("192.168.1.1".parse().unwrap(), 24));
    let real = |id: u32, a: &str, port: u16| RealServer {
        id: RealId(id),
        addr: a.parse().unwrap(),
        port,
        forward: Forward::Nat,
        weight: 1,
        upper: 0,
        lower: 0,
    };
    let key = |port| ServiceKey::Addr {
        protocol: Protocol::Tcp,
        vip: IpAddr::from(VIP),
        port,
    };
    let persistence = Some(rvs_core::model::Persistence {
        timeout_s: 360,
        prefix_len: 32,
    });
    let every = Service::new(
        key(0),
        "rr",
        SchedFlags::default(),
        persistence,
        vec![
            real(0, "192.168.1.2", 0),
            real(1, "192.168.1.3", 0),
            real(2, "192.168.1.4", 0),
        ],
    )
    .unwrap();
    let own = Service::new(
        key(22),
        "rr",
        SchedFlags::default(),
        None,
        vec![real(3, "192.168.1.9", 22)],
    )
    .unwrap();
    let t = Tables::new(
        Network { ports: vec![p0, p1] },
        vec![Arc::new(every), Arc::new(own)],
        Default::default(),
        Arc::new(RealRegistry::new(8)),
    );
    let mut d = director();
    let mut servers = std::collections::BTreeSet::new();
    for (i, port) in [80u16, 443, 8080, 25].into_iter().enumerate() {
        let mut f = VecFrame::new(&tcp4(IN0, client(9), VIP, 64, 40000 + i as u16, port, SYN, b""));
        let v = d.process(&t, 0, &mut f, 1);
        let Verdict::Forward { next_hop, .. } = v else {
            panic!("{v:?}")
        };
        servers.insert(next_hop);
        let out = f.data();
        assert_eq!(
            u16::from_be_bytes([out[36], out[37]]),
            port,
            "to the port the client asked for"
        );
    }
    assert_eq!(servers.len(), 1, "one template for every port: {servers:?}");
    assert_eq!(d.templates().len(1), 1);
    let mut f = VecFrame::new(&tcp4(IN0, client(9), VIP, 64, 41000, 22, SYN, b""));
    assert_eq!(
        d.process(&t, 0, &mut f, 1),
        Verdict::Forward {
            port: 1,
            next_hop: "192.168.1.9".parse().unwrap()
        },
        "port 22 has a service of its own"
    );
}
