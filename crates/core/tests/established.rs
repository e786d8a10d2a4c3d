//! The established path (`path/fast.rs`) is an exact shortcut of the general path: two
//! directors, one with it and one without, are given the same bursts of frames (handshakes,
//! data both ways, FIN, RST, retransmitted SYNs, TTLs running out, UDP with and without a
//! checksum, NAT, DR, TUN, FullNAT plain, with the PROXY protocol and with TOA, a persistent
//! service, VLAN tags and IP options, time passing, sync on or off) and must agree on every
//! output byte, verdict, counter, sync record and connection-table entry, and on the real
//! servers' counts.

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use proptest::prelude::*;
use rvs_core::conn::state::Timeouts;
use rvs_core::model::{
    Forward, FullNatConfig, Persistence, Protocol, ProxyProtocol, RealId, RealRegistry, RealServer, Service,
    ServiceKey,
};
use rvs_core::net::{Network, PortNet};
use rvs_core::sched::SchedFlags;
use rvs_core::{Director, Frame, Tables, VecFrame, Verdict, WorkerStats};
use support::*;

/// FullNAT's local address.
const LADDR: [u8; 4] = [192, 168, 1, 250];

/// How a service of the ops forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum F {
    Nat,
    Persistent,
    Dr,
    Tun,
    Full,
    FullProxy,
    FullToa,
}

/// The services the ops address (`SERVICES`, in that order), on `support`'s two ports.
fn tables() -> Tables {
    let mut p0 = PortNet::new(P0_MAC);
    p0.v4.push(("203.0.113.1".parse().unwrap(), 24));
    p0.gateway4 = Some(Ipv4Addr::from(GW4));
    let mut p1 = PortNet::new(P1_MAC);
    p1.v4.push(("192.168.1.1".parse().unwrap(), 24));
    let mut id = 0;
    let services = SERVICES
        .iter()
        .map(|&(vip, port, udp, reals, forward)| {
            let key = ServiceKey::Addr {
                protocol: if udp { Protocol::Udp } else { Protocol::Tcp },
                vip: IpAddr::from(vip),
                port,
            };
            let reals = reals
                .iter()
                .map(|&(addr, port)| {
                    id += 1;
                    RealServer {
                        id: RealId(id - 1),
                        addr: IpAddr::from(addr),
                        port,
                        forward: match forward {
                            F::Nat | F::Persistent => Forward::Nat,
                            F::Dr => Forward::Dr,
                            F::Tun => Forward::Tun,
                            F::Full | F::FullProxy | F::FullToa => Forward::FullNat,
                        },
                        weight: 1,
                        upper: 0,
                        lower: 0,
                    }
                })
                .collect();
            let persistence = (forward == F::Persistent).then_some(Persistence {
                timeout_s: 300,
                prefix_len: 24,
            });
            let fullnat = FullNatConfig {
                laddrs: vec![IpAddr::from(LADDR)],
                proxy: if forward == F::FullProxy {
                    ProxyProtocol::V1
                } else {
                    ProxyProtocol::Off
                },
                toa: forward == F::FullToa,
            };
            Arc::new(
                Service::new(key, "rr", SchedFlags::default(), persistence, reals)
                    .unwrap()
                    .with_fullnat(fullnat),
            )
        })
        .collect();
    Tables::new(
        Network { ports: vec![p0, p1] },
        services,
        Timeouts::default(),
        Arc::new(RealRegistry::new(64)),
    )
}

/// A service the ops address: VIP, port, UDP?, its real servers with their ports, how it
/// forwards.
type Svc = ([u8; 4], u16, bool, &'static [([u8; 4], u16)], F);

const SERVICES: [Svc; 9] = [
    (
        [10, 0, 0, 100],
        80,
        false,
        &[([192, 168, 1, 2], 8080), ([192, 168, 1, 3], 8080)],
        F::Nat,
    ),
    ([10, 0, 0, 100], 53, true, &[([192, 168, 1, 2], 5353)], F::Nat),
    ([10, 0, 0, 101], 80, false, &[([192, 168, 1, 4], 80)], F::Dr),
    ([10, 0, 0, 102], 80, false, &[([192, 168, 1, 5], 80)], F::Tun),
    (
        [10, 0, 0, 103],
        443,
        false,
        &[([192, 168, 1, 6], 443), ([192, 168, 1, 7], 443)],
        F::Persistent,
    ),
    (
        [10, 0, 0, 104],
        80,
        false,
        &[([192, 168, 1, 2], 8080), ([192, 168, 1, 3], 8080)],
        F::Full,
    ),
    ([10, 0, 0, 104], 53, true, &[([192, 168, 1, 2], 5353)], F::Full),
    (
        [10, 0, 0, 105],
        80,
        false,
        &[([192, 168, 1, 2], 8080)],
        F::FullProxy,
    ),
    (
        [10, 0, 0, 106],
        80,
        false,
        &[([192, 168, 1, 3], 8080)],
        F::FullToa,
    ),
];

const FLAGS: [Flags; 6] = [ACK, PSHACK, ACK, SYN, FINACK, RST];

#[derive(Debug, Clone)]
struct Op {
    client: u8,
    cport: u8,
    svc: usize,
    /// From the real server (number `rs` of the service's) rather than the client.
    reply: bool,
    rs: usize,
    flags: usize,
    ttl: u8,
    payload: usize,
    /// UDP sent without a checksum; a VLAN tag; an IP option (both: the general path's).
    no_udp_sum: bool,
    vlan: bool,
    option: bool,
}

/// Milliseconds between bursts: mostly a few, sometimes long enough for a sync refresh of an
/// established UDP (150 s) or TCP (450 s) connection, which expiry (300 s, 900 s) follows.
fn pause() -> impl Strategy<Value = u64> {
    prop_oneof![
        12 => 0u64..3000,
        1 => 150_000u64..300_000,
        1 => 450_000u64..900_000,
    ]
}

fn op() -> impl Strategy<Value = Op> {
    (
        (
            0u8..2,
            0u8..2,
            0usize..SERVICES.len(),
            any::<bool>(),
            0usize..2,
            0usize..6,
        ),
        (
            prop_oneof![6 => Just(64u8), 1 => Just(2u8), 1 => Just(1u8), 1 => Just(0u8)],
            0usize..40,
            any::<bool>(),
            prop::bool::weighted(0.1),
            prop::bool::weighted(0.1),
        ),
    )
        .prop_map(
            |((client, cport, svc, reply, rs, flags), (ttl, payload, no_udp_sum, vlan, option))| Op {
                client,
                cport,
                svc,
                reply,
                rs,
                flags,
                ttl,
                payload,
                no_udp_sum,
                vlan,
                option,
            },
        )
}

/// The op's frame and the port it arrives on. A FullNAT reply goes to the local port `d`
/// gave the op's connection (or, with none, to one no connection has).
fn frame(o: &Op, d: &Director) -> (u16, Vec<u8>) {
    let (vip, vport, udp, reals, forward) = SERVICES[o.svc];
    let client = [198, 51, 100, 1 + o.client];
    let cport = 40000 + o.cport as u16;
    let (rs, rport) = reals[o.rs % reals.len()];
    let full = matches!(forward, F::Full | F::FullProxy | F::FullToa);
    let (port, mut l2, src, dst, sport, dport) = if o.reply && full {
        let lport = d
            .conns_v4()
            .iter()
            .find(|(_, c)| {
                (c.client, c.cport, c.vaddr, c.vport)
                    == (Ipv4Addr::from(client), cport, Ipv4Addr::from(vip), vport)
            })
            .map_or(999, |(_, c)| c.lport);
        (1, from_rs(ip4(rs)), rs, LADDR, rport, lport)
    } else if o.reply {
        (1, from_rs(ip4(rs)), rs, client, rport, cport)
    } else {
        (0, IN0, client, vip, cport, vport)
    };
    // (The UDP builder writes no tag.)
    let vlan = o.vlan && !udp;
    if vlan {
        l2.vlan = Some(7);
    }
    let payload = vec![0x61; o.payload];
    let mut f = if udp {
        udp4(l2, src, dst, o.ttl, sport, dport, &payload)
    } else {
        tcp4(l2, src, dst, o.ttl, sport, dport, FLAGS[o.flags], &payload)
    };
    let ip = if vlan { 18 } else { 14 };
    if udp && o.no_udp_sum {
        f[ip + 26..ip + 28].copy_from_slice(&[0, 0]);
    }
    if o.option {
        // A 4-byte IP option (NOP x4): IHL 6, lengths and the header checksum made good.
        f.splice(ip + 20..ip + 20, [1, 1, 1, 1]);
        f[ip] = 0x46;
        let total = u16::from_be_bytes([f[ip + 2], f[ip + 3]]) + 4;
        f[ip + 2..ip + 4].copy_from_slice(&total.to_be_bytes());
        f[ip + 10..ip + 12].copy_from_slice(&[0, 0]);
        let c = rvs_core::checksum::checksum(&f[ip..ip + 24]);
        f[ip + 10..ip + 12].copy_from_slice(&c.to_be_bytes());
    }
    (port, f)
}

/// Everything the two directors must agree on besides the frames and verdicts.
fn state(d: &mut Director, t: &Tables) -> String {
    let mut stats = d.stats;
    stats.established_path = 0;
    let conns: Vec<_> = d.conns_v4().iter().map(|(i, c)| (i, *c)).collect();
    let reals: Vec<_> = (0..12)
        .map(|i| {
            let r = t.reals.get(RealId(i));
            let traffic = d.real_traffic(RealId(i));
            (
                r.active.load(Ordering::Relaxed),
                r.inactive.load(Ordering::Relaxed),
                r.conns.load(Ordering::Relaxed),
                traffic,
            )
        })
        .collect();
    let sync = std::mem::take(d.sync_out());
    format!("{stats:?}\n{:?}\n{conns:?}\n{reals:?}\n{sync:?}", d.drops)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_established_path_does_what_the_general_path_does(
        ops in prop::collection::vec((op(), 1usize..5, pause()), 1..80),
        sync in any::<bool>(),
    ) {
        let (t_fast, t_general) = (tables(), tables());
        let (mut fast, mut general) = (director(), director());
        general.set_established_path(false);
        fast.set_sync(sync);
        general.set_sync(sync);
        let mut now = 1_000;
        let mut k = 0;
        while k < ops.len() {
            // A burst of the next few ops that arrive on one port.
            let (_, size, dt) = ops[k];
            now += dt;
            let (port, _) = frame(&ops[k].0, &fast);
            let burst: Vec<Vec<u8>> = ops[k..]
                .iter()
                .take(size)
                .map(|o| frame(&o.0, &fast))
                .take_while(|(p, _)| *p == port)
                .map(|(_, f)| f)
                .collect();
            k += burst.len();
            let mut outs = Vec::new();
            for (d, t) in [(&mut fast, &t_fast), (&mut general, &t_general)] {
                d.advance(t, now);
                let mut frames: Vec<VecFrame> = burst.iter().map(|f| VecFrame::new(f)).collect();
                let mut verdicts = vec![Verdict::Neighbor; frames.len()];
                d.process_burst(t, port, &mut frames, now, &mut verdicts);
                let bytes: Vec<Vec<u8>> = frames.iter().map(|f| f.data().to_vec()).collect();
                outs.push((verdicts, bytes));
            }
            prop_assert_eq!(&outs[0], &outs[1]);
            prop_assert_eq!(state(&mut fast, &t_fast), state(&mut general, &t_general));
        }
        prop_assert_eq!(general.stats.established_path, 0);
    }
}

/// The property above is not vacuous: an established NAT flow's data, both ways, and a DR,
/// FullNAT (plain, TOA, PROXY) and TUN flow's take the established path; a FIN and a
/// template's service do not.
#[test]
fn established_flows_take_the_established_path() {
    let t = tables();
    let mut d = director();
    let client = [198, 51, 100, 9];
    let rs = [192, 168, 1, 2];
    let send = |d: &mut Director, port, f: Vec<u8>| d.process(&t, port, &mut VecFrame::new(&f), 1_000);
    let vip = [10, 0, 0, 100];
    send(&mut d, 0, tcp4(IN0, client, vip, 64, 40000, 80, SYN, &[]));
    send(
        &mut d,
        1,
        tcp4(from_rs(ip4(rs)), rs, client, 64, 8080, 40000, SYNACK, &[]),
    );
    send(&mut d, 0, tcp4(IN0, client, vip, 64, 40000, 80, ACK, &[]));
    let before: WorkerStats = d.stats;
    for _ in 0..10 {
        let v = send(&mut d, 0, tcp4(IN0, client, vip, 64, 40000, 80, PSHACK, b"GET /"));
        assert!(matches!(v, Verdict::Forward { port: 1, .. }), "{v:?}");
        let v = send(
            &mut d,
            1,
            tcp4(from_rs(ip4(rs)), rs, client, 64, 8080, 40000, PSHACK, b"200"),
        );
        assert!(matches!(v, Verdict::Forward { port: 0, .. }), "{v:?}");
    }
    assert_eq!(d.stats.established_path - before.established_path, 20);
    // DR: the handshake's last ACK establishes it (input only); its data then goes the
    // short way.
    let dr = [10, 0, 0, 101];
    send(&mut d, 0, tcp4(IN0, client, dr, 64, 40001, 80, SYN, &[]));
    send(&mut d, 0, tcp4(IN0, client, dr, 64, 40001, 80, ACK, &[]));
    let n = d.stats.established_path;
    send(&mut d, 0, tcp4(IN0, client, dr, 64, 40001, 80, PSHACK, b"x"));
    assert_eq!(d.stats.established_path, n + 1);
    // FullNAT without PROXY or TOA: its data too; with TOA, the general path's.
    let full = [10, 0, 0, 104];
    send(&mut d, 0, tcp4(IN0, client, full, 64, 40003, 80, SYN, &[]));
    send(&mut d, 0, tcp4(IN0, client, full, 64, 40003, 80, ACK, &[]));
    let n = d.stats.established_path;
    let v = send(&mut d, 0, tcp4(IN0, client, full, 64, 40003, 80, PSHACK, b"x"));
    assert!(matches!(v, Verdict::Forward { port: 1, .. }), "{v:?}");
    assert_eq!(d.stats.established_path, n + 1);
    // With TOA and with the PROXY protocol (their methods' own code inserts what is due), and
    // TUN's (encapsulated by its method).
    for (vip, port) in [
        ([10, 0, 0, 106], 40004),
        ([10, 0, 0, 105], 40005),
        ([10, 0, 0, 102], 40006),
    ] {
        send(&mut d, 0, tcp4(IN0, client, vip, 64, port, 80, SYN, &[]));
        send(&mut d, 0, tcp4(IN0, client, vip, 64, port, 80, ACK, &[]));
        let n = d.stats.established_path;
        let v = send(&mut d, 0, tcp4(IN0, client, vip, 64, port, 80, PSHACK, b"x"));
        assert!(matches!(v, Verdict::Forward { port: 1, .. }), "{vip:?} {v:?}");
        assert_eq!(d.stats.established_path, n + 1, "{vip:?}");
    }
    // A FIN changes the state: the general path's.
    let n = d.stats.established_path;
    send(&mut d, 0, tcp4(IN0, client, vip, 64, 40000, 80, FINACK, &[]));
    assert_eq!(d.stats.established_path, n);
    // A persistent service's connections keep their template alive: the general path's.
    let p = [10, 0, 0, 103];
    send(&mut d, 0, tcp4(IN0, client, p, 64, 40002, 443, SYN, &[]));
    send(&mut d, 0, tcp4(IN0, client, p, 64, 40002, 443, ACK, &[]));
    send(&mut d, 0, tcp4(IN0, client, p, 64, 40002, 443, PSHACK, b"x"));
    assert_eq!(d.stats.established_path, n);
}
