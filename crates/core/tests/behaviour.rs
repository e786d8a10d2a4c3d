//! Behaviour of the data path beyond single frames: connection accounting, expiry,
//! persistence templates, a full table, worker ownership, batching.

mod support;

use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;

use rvs_core::conn::state::TcpState;
use rvs_core::model::RealId;
use rvs_core::{Director, DirectorConfig, DropReason, Frame, VecFrame, Verdict};
use support::*;

const VIP: [u8; 4] = [10, 0, 0, 100];
const RS2: [u8; 4] = [192, 168, 1, 2];

fn run(d: &mut Director, t: &rvs_core::Tables, port: u16, frame: Vec<u8>, now: u64) -> (Verdict, Vec<u8>) {
    d.advance(t, now);
    let mut f = VecFrame::new(&frame);
    let v = d.process(t, port, &mut f, now);
    (v, f.data().to_vec())
}

fn counts(t: &rvs_core::Tables, id: u32) -> (u32, u32, u32) {
    let s = t.reals.get(RealId(id));
    (s.active(), s.inactive(), s.persistent.load(Ordering::Relaxed))
}

#[test]
fn nat_connection_moves_between_inactive_and_active_and_expires() {
    let t = tables();
    let mut d = director();
    run(&mut d, &t, 0, tcp4(IN0, CLIENT, VIP, 64, 40000, 80, SYN, b""), 0);
    assert_eq!(counts(&t, 0), (0, 1, 0), "SYN_RECV is inactive");
    run(
        &mut d,
        &t,
        1,
        tcp4(from_rs(ip4(RS2)), RS2, CLIENT, 64, 8080, 40000, SYNACK, b""),
        1,
    );
    run(&mut d, &t, 0, tcp4(IN0, CLIENT, VIP, 64, 40000, 80, ACK, b""), 2);
    assert_eq!(counts(&t, 0), (1, 0, 0), "ESTABLISHED is active");
    let (_, c) = d.conns_v4().iter().next().unwrap();
    assert_eq!(TcpState::from_u8(c.state), TcpState::Established);
    assert!(c.expires >= 900_000, "established timeout is 900 s");

    run(
        &mut d,
        &t,
        0,
        tcp4(IN0, CLIENT, VIP, 64, 40000, 80, FINACK, b""),
        3,
    );
    assert_eq!(counts(&t, 0), (0, 1, 0), "CLOSE_WAIT is inactive again");
    run(
        &mut d,
        &t,
        1,
        tcp4(from_rs(ip4(RS2)), RS2, CLIENT, 64, 8080, 40000, FINACK, b""),
        4,
    );
    let (_, c) = d.conns_v4().iter().next().unwrap();
    assert_eq!(TcpState::from_u8(c.state), TcpState::TimeWait);
    let traffic = d.real_traffic(RealId(0));
    assert_eq!(
        (traffic.in_packets, traffic.in_bytes),
        (3, 120),
        "SYN, ACK, FIN: 40-byte IP packets"
    );
    assert_eq!((traffic.out_packets, traffic.out_bytes), (2, 80));

    d.advance(&t, 4 + 119_000);
    assert_eq!(d.conns_v4().len(), 1, "TIME_WAIT lasts 120 s");
    d.advance(&t, 4 + 120_200);
    assert_eq!(d.conns_v4().len(), 0);
    assert_eq!(counts(&t, 0), (0, 0, 0), "expiry releases the count");
    assert_eq!(d.stats.conns_created, 1);
    assert_eq!(d.stats.conns_expired, 1);
}

#[test]
fn dr_uses_the_input_only_table() {
    let t = tables();
    let mut d = director();
    let vip = [10, 0, 0, 101];
    run(&mut d, &t, 0, tcp4(IN0, CLIENT, vip, 64, 40000, 80, SYN, b""), 0);
    run(&mut d, &t, 0, tcp4(IN0, CLIENT, vip, 64, 40000, 80, ACK, b""), 1);
    assert_eq!(counts(&t, 3), (1, 0, 0));
    run(
        &mut d,
        &t,
        0,
        tcp4(IN0, CLIENT, vip, 64, 40000, 80, FINACK, b""),
        2,
    );
    let (_, c) = d.conns_v4().iter().next().unwrap();
    assert_eq!(
        TcpState::from_u8(c.state),
        TcpState::FinWait,
        "input-only: the client's FIN is FIN_WAIT"
    );
    assert_eq!(counts(&t, 3), (0, 1, 0));
}

#[test]
fn udp_flows_are_inactive_and_expire_after_the_udp_timeout() {
    let t = tables();
    let mut d = director();
    run(&mut d, &t, 0, udp4(IN0, CLIENT, VIP, 64, 44000, 53, b"q"), 0);
    assert_eq!(counts(&t, 2), (0, 1, 0));
    d.advance(&t, 299_000);
    assert_eq!(d.conns_v4().len(), 1);
    d.advance(&t, 300_200);
    assert_eq!(d.conns_v4().len(), 0);
    assert_eq!(counts(&t, 2), (0, 0, 0));
}

#[test]
fn set_timeouts_change_when_connections_expire() {
    let mut t = tables();
    t.timeouts.set(0, 0, 30);
    assert_eq!(t.timeouts.shown(), (900, 120, 30));
    let mut d = director();
    run(&mut d, &t, 0, udp4(IN0, CLIENT, VIP, 64, 44000, 53, b"q"), 0);
    d.advance(&t, 30_200);
    assert_eq!(d.conns_v4().len(), 0, "the udp timeout set to 30 s applies");
}

#[test]
fn persistence_template_outlives_its_connections_then_expires() {
    let t = tables();
    let mut d = director();
    let vip = [10, 0, 0, 103];
    run(&mut d, &t, 0, tcp4(IN0, CLIENT, vip, 64, 41000, 443, SYN, b""), 0);
    assert_eq!(counts(&t, 5), (0, 1, 1), "one connection, one template");
    assert_eq!((d.conns_v4().len(), d.templates().len(0)), (1, 1));
    // The connection (SYN_RECV, 60 s) expires; the template (300 s) stays.
    d.advance(&t, 61_000);
    assert_eq!(d.conns_v4().len(), 0);
    assert_eq!(counts(&t, 5), (0, 0, 1));
    // A new connection of the client within the template's life goes to the same server.
    let (v, _) = run(
        &mut d,
        &t,
        0,
        tcp4(IN0, CLIENT, vip, 64, 41001, 443, SYN, b""),
        100_000,
    );
    assert_eq!(
        v,
        Verdict::Forward {
            port: 1,
            next_hop: ip4([192, 168, 1, 6])
        }
    );
    // A connection's packets keep its template alive: the persistence timeout from then.
    d.advance(&t, 300_500);
    assert_eq!(counts(&t, 5).2, 1);
    assert_eq!(d.templates().len(300_500), 1);
    // Once idle past its timeout, it goes (the sweep frees it a stretch at a time).
    for k in 0..4 {
        d.advance(&t, 2_000_000 + k * 100);
    }
    assert_eq!((d.conns_v4().len(), d.templates().len(2_000_000)), (0, 0));
    assert_eq!(counts(&t, 5), (0, 0, 0));
}

/// IPVS's promise, across workers: the connections of one client land on several workers
/// (flows are owned by client address and port), yet they all reach one real server.
#[test]
fn persistence_holds_across_workers_sharing_one_template_table() {
    let t = tables();
    let shared = std::sync::Arc::new(rvs_core::conn::persist::PersistTable::new(1024, 3));
    let mut workers: Vec<Director> = (0..4u16)
        .map(|w| {
            Director::new(DirectorConfig {
                worker: w,
                workers: 4,
                conn_capacity_v4: 1024,
                conn_capacity_v6: 16,
                seed: 7 + w as u64,
                real_capacity: 64,
                evict_half_open: true,
            })
            .with_templates(shared.clone())
        })
        .collect();
    let vip = [10, 0, 0, 103];
    // 40 clients of one /24 (the service's -M), 30 ports each, on whichever worker owns each.
    let mut seen = std::collections::BTreeSet::new();
    let mut owners = std::collections::BTreeSet::new();
    for c in 0..40u8 {
        for port in 0..30u16 {
            let client = [198, 51, 100, 10 + c];
            for (w, d) in workers.iter_mut().enumerate() {
                let (v, _) = run(
                    d,
                    &t,
                    0,
                    tcp4(IN0, client, vip, 64, 42000 + port, 443, SYN, b""),
                    5,
                );
                if let Verdict::Forward { next_hop, .. } = v {
                    seen.insert(next_hop);
                    owners.insert(w);
                }
            }
        }
    }
    assert!(owners.len() > 1, "the flows spread over workers: {owners:?}");
    assert_eq!(seen.len(), 1, "one real server for the whole /24: {seen:?}");
    assert_eq!(shared.len(5), 1);
}

#[test]
fn a_full_table_refuses_new_flows_and_keeps_forwarding_old_ones() {
    let t = tables();
    let mut d = Director::new(DirectorConfig {
        worker: 0,
        workers: 1,
        conn_capacity_v4: 4,
        conn_capacity_v6: 4,
        seed: 1,
        real_capacity: 64,
        evict_half_open: false,
    });
    for i in 0..4u16 {
        let (v, _) = run(
            &mut d,
            &t,
            0,
            tcp4(IN0, CLIENT, VIP, 64, 1000 + i, 80, SYN, b""),
            0,
        );
        assert!(matches!(v, Verdict::Forward { .. }));
    }
    let (v, _) = run(&mut d, &t, 0, tcp4(IN0, CLIENT, VIP, 64, 2000, 80, SYN, b""), 1);
    assert_eq!(v, Verdict::Drop(DropReason::ConnTableFull));
    assert_eq!(d.drops.get(DropReason::ConnTableFull), 1);
    for i in 0..4u16 {
        let (v, _) = run(
            &mut d,
            &t,
            0,
            tcp4(IN0, CLIENT, VIP, 64, 1000 + i, 80, ACK, b""),
            2,
        );
        assert!(
            matches!(v, Verdict::Forward { .. }),
            "existing flow {i} still forwarded"
        );
    }
}

#[test]
fn a_ttl_1_probe_creates_no_connection() {
    let t = tables();
    let mut d = director();
    let (v, _) = run(&mut d, &t, 0, tcp4(IN0, CLIENT, VIP, 1, 40000, 80, SYN, b""), 0);
    assert_eq!(v, Verdict::Drop(DropReason::TtlExceeded));
    assert!(d.conns_v4().is_empty());
}

#[test]
fn flows_are_owned_by_one_worker_and_replies_are_redirected_to_it() {
    let t = tables();
    let mk = |w| {
        Director::new(DirectorConfig {
            worker: w,
            workers: 2,
            conn_capacity_v4: 64,
            conn_capacity_v6: 16,
            seed: w as u64,
            real_capacity: 64,
            evict_half_open: true,
        })
    };
    let mut ws = [mk(0), mk(1)];
    let mut redirected = 0;
    for cport in 30000..30040u16 {
        let syn = tcp4(IN0, CLIENT, VIP, 64, cport, 80, SYN, b"");
        // Arrives on worker 0 (as RSS might choose); followed to whichever owns it.
        let (mut v, mut out) = run(&mut ws[0], &t, 0, syn.clone(), 0);
        let mut owner = 0;
        if let Verdict::Redirect { worker } = v {
            assert_eq!(worker, 1);
            redirected += 1;
            owner = 1;
            (v, out) = run(&mut ws[1], &t, 0, syn, 0);
        }
        let Verdict::Forward { next_hop, .. } = v else {
            panic!("{v:?}")
        };
        let std::net::IpAddr::V4(rs) = next_hop else {
            unreachable!()
        };
        let rs = rs.octets();
        assert_eq!(&out[30..34], &rs, "DNATed to the scheduled server");
        // The server's reply lands on the other worker's queue: it is steered to the owner.
        let reply = tcp4(from_rs(next_hop), rs, CLIENT, 64, 8080, cport, SYNACK, b"");
        let other = 1 - owner;
        let (v, _) = run(&mut ws[other], &t, 1, reply.clone(), 0);
        assert_eq!(
            v,
            Verdict::Redirect { worker: owner as u16 },
            "reply steered to the owner"
        );
        let (v, out) = run(&mut ws[owner], &t, 1, reply, 0);
        assert_eq!(
            v,
            Verdict::Forward {
                port: 0,
                next_hop: ip4(GW4)
            }
        );
        assert_eq!(
            Ipv4Addr::from(<[u8; 4]>::try_from(&out[26..30]).unwrap()),
            Ipv4Addr::from(VIP)
        );
    }
    assert!(
        redirected > 5 && redirected < 35,
        "both workers own flows ({redirected} of 40 redirected)"
    );
    assert_eq!(
        ws[0].stats.redirects + ws[1].stats.redirects,
        40 + redirected,
        "one redirect per steered reply and SYN"
    );
}

#[test]
fn a_burst_gives_the_same_verdicts_and_frames_as_one_by_one() {
    let t = tables();
    let frames: Vec<Vec<u8>> = (0..70u16)
        .map(|i| match i % 5 {
            0 => tcp4(IN0, CLIENT, VIP, 64, 10000 + i, 80, SYN, b""),
            1 => udp4(IN0, CLIENT, VIP, 64, 10000 + i, 53, b"x"),
            2 => echo4(IN0, CLIENT, VIP, 64, false),
            3 => tcp4(IN0, CLIENT, VIP, 64, 10000 + i - 3, 80, ACK, b"data"),
            _ => vec![0u8; 20],
        })
        .collect();
    let mut one = director();
    let singles: Vec<(Verdict, Vec<u8>)> = frames
        .iter()
        .map(|f| {
            let mut vf = VecFrame::new(f);
            (one.process(&t, 0, &mut vf, 5), vf.data().to_vec())
        })
        .collect();
    let mut batch = director();
    let mut vfs: Vec<VecFrame> = frames.iter().map(|f| VecFrame::new(f)).collect();
    let mut verdicts = vec![Verdict::Neighbor; vfs.len()];
    batch.process_burst(&t, 0, &mut vfs, 5, &mut verdicts);
    for (i, ((v, f), (sv, sf))) in verdicts.iter().zip(&vfs).zip(&singles).enumerate() {
        assert_eq!(v, sv, "frame {i}");
        assert_eq!(f.data(), &sf[..], "frame {i}");
    }
    assert_eq!(batch.stats, one.stats);
    assert_eq!(batch.drops.get(DropReason::UnknownEthertype), 14);
}

#[test]
fn a_full_table_under_a_syn_flood_gives_half_open_places_to_new_clients_never_established_ones() {
    let t = tables();
    let mut d = Director::new(DirectorConfig {
        worker: 0,
        workers: 1,
        conn_capacity_v4: 4,
        conn_capacity_v6: 4,
        seed: 1,
        real_capacity: 64,
        evict_half_open: true,
    });
    let syn = |port: u16| tcp4(IN0, CLIENT, VIP, 64, port, 80, SYN, b"");
    let ack = |port: u16| tcp4(IN0, CLIENT, VIP, 64, port, 80, ACK, b"");
    // Two established (NAT: the server's SYN-ACK, then the client's ACK), two half-open.
    for p in 1000..1004u16 {
        assert!(matches!(run(&mut d, &t, 0, syn(p), 0).0, Verdict::Forward { .. }));
    }
    for p in [1000u16, 1001] {
        let synack = tcp4(
            from_rs(ip4([192, 168, 1, 2])),
            [192, 168, 1, 2],
            CLIENT,
            64,
            8080,
            p,
            SYNACK,
            b"",
        );
        let _ = run(&mut d, &t, 1, synack.clone(), 1);
        let synack3 = tcp4(
            from_rs(ip4([192, 168, 1, 3])),
            [192, 168, 1, 3],
            CLIENT,
            64,
            8080,
            p,
            SYNACK,
            b"",
        );
        let _ = run(&mut d, &t, 1, synack3, 1);
        assert!(matches!(run(&mut d, &t, 0, ack(p), 2).0, Verdict::Forward { .. }));
    }
    // Two more clients: each takes a half-open place; the established flows keep theirs.
    for p in [2000u16, 2001] {
        assert!(
            matches!(run(&mut d, &t, 0, syn(p), 3).0, Verdict::Forward { .. }),
            "{p}"
        );
    }
    assert_eq!(d.stats.half_open_evicted, 2);
    assert_eq!(d.drops.get(DropReason::ConnTableFull), 0);
    for p in [1000u16, 1001, 2000, 2001] {
        assert!(
            matches!(run(&mut d, &t, 0, ack(p), 4).0, Verdict::Forward { .. }),
            "{p} kept"
        );
    }
    // All four are established now: a fifth client is refused, and nothing is evicted.
    assert_eq!(
        run(&mut d, &t, 0, syn(3000), 5).0,
        Verdict::Drop(DropReason::ConnTableFull)
    );
    assert_eq!(d.stats.half_open_evicted, 2);
}

#[test]
fn a_syn_on_a_tuple_in_time_wait_is_a_new_connection_scheduled_again() {
    // IPVS's conn_reuse_mode 1: a client reusing its port within TIME_WAIT's two minutes gets
    // a new connection, to the server the scheduler picks now, not the old one's.
    let t = tables();
    let mut d = director();
    let rs3 = [192, 168, 1, 3];
    run(&mut d, &t, 0, tcp4(IN0, CLIENT, VIP, 64, 40000, 80, SYN, b""), 0);
    run(
        &mut d,
        &t,
        1,
        tcp4(from_rs(ip4(RS2)), RS2, CLIENT, 64, 8080, 40000, SYNACK, b""),
        1,
    );
    run(&mut d, &t, 0, tcp4(IN0, CLIENT, VIP, 64, 40000, 80, ACK, b""), 2);
    run(
        &mut d,
        &t,
        0,
        tcp4(IN0, CLIENT, VIP, 64, 40000, 80, FINACK, b""),
        3,
    );
    run(
        &mut d,
        &t,
        1,
        tcp4(from_rs(ip4(RS2)), RS2, CLIENT, 64, 8080, 40000, FINACK, b""),
        4,
    );
    let (_, c) = d.conns_v4().iter().next().unwrap();
    assert_eq!(TcpState::from_u8(c.state), TcpState::TimeWait);
    assert_eq!((counts(&t, 0), counts(&t, 1)), ((0, 1, 0), (0, 0, 0)));

    // The same port again, 10 s later: rr's next server.
    let (v, out) = run(
        &mut d,
        &t,
        0,
        tcp4(IN0, CLIENT, VIP, 64, 40000, 80, SYN, b""),
        10_000,
    );
    assert_eq!(
        v,
        Verdict::Forward {
            port: 1,
            next_hop: ip4(rs3)
        }
    );
    assert_eq!(&out[30..34], &rs3);
    verify(&out);
    assert_eq!(d.conns_v4().len(), 1, "the entry is reused");
    assert_eq!(
        (counts(&t, 0), counts(&t, 1)),
        ((0, 0, 0), (0, 1, 0)),
        "the old server's count released, the new one's taken"
    );
    let (_, c) = d.conns_v4().iter().next().unwrap();
    assert_eq!(TcpState::from_u8(c.state), TcpState::SynRecv);
    // Its reply finds it, from the new server.
    let (v, _) = run(
        &mut d,
        &t,
        1,
        tcp4(from_rs(ip4(rs3)), rs3, CLIENT, 64, 8080, 40000, SYNACK, b""),
        10_001,
    );
    assert!(matches!(v, Verdict::Forward { port: 0, .. }), "{v:?}");
    assert_eq!((d.stats.conns_created, d.stats.conns_expired), (2, 1));
    // A retransmitted SYN of a connection that is not in TIME_WAIT stays on its server.
    let (v, _) = run(
        &mut d,
        &t,
        0,
        tcp4(IN0, CLIENT, VIP, 64, 40000, 80, SYN, b""),
        10_002,
    );
    assert_eq!(
        v,
        Verdict::Forward {
            port: 1,
            next_hop: ip4(rs3)
        }
    );
    assert_eq!(d.stats.conns_created, 2);
    d.advance(&t, 10_000_000);
    assert_eq!(
        (counts(&t, 0), counts(&t, 1)),
        ((0, 0, 0), (0, 0, 0)),
        "expiry releases all"
    );
}

/// A real server's route is the one resolved when the tables were built, found by its id;
/// a server the tables do not know by that id and address is routed as any address is.
#[test]
fn a_real_servers_cached_route_is_its_route() {
    let t = tables();
    let mut n = 0;
    for r in t.services.iter().flat_map(|s| s.reals.iter()) {
        assert_eq!(t.real_route(r), t.net.route(r.addr), "{:?}", r.addr);
        assert!(t.real_route(r).is_some());
        n += 1;
    }
    assert!(n >= 3, "the tables have real servers");
    let known = t.services[0].reals[0].clone();
    // The same id with another address (a table built before the server moved).
    let mut moved = known.clone();
    moved.addr = "203.0.113.77".parse().unwrap();
    assert_eq!(t.real_route(&moved), t.net.route(moved.addr));
    assert_ne!(t.real_route(&moved), t.real_route(&known));
    // An id the tables never saw.
    let mut unknown = known.clone();
    unknown.id = RealId(10_000);
    assert_eq!(t.real_route(&unknown), t.net.route(unknown.addr));
    unknown.addr = "198.51.100.9".parse().unwrap();
    assert_eq!(t.real_route(&unknown), t.net.route(unknown.addr));
}

/// IPVS's `is_new_conn_expected`: a connection the server refused (its reset leaves the entry
/// in CLOSE for ten seconds) is no place for a new SYN on the same port either: rescheduled,
/// as after TIME_WAIT (a server that was down and refused the first try does not get the
/// client's next connection just because the port came back).
#[test]
fn a_syn_on_a_tuple_in_close_after_a_reset_is_scheduled_again() {
    let t = tables();
    let mut d = director();
    let rs3 = [192, 168, 1, 3];
    run(&mut d, &t, 0, tcp4(IN0, CLIENT, VIP, 64, 40001, 80, SYN, b""), 0);
    run(
        &mut d,
        &t,
        1,
        tcp4(from_rs(ip4(RS2)), RS2, CLIENT, 64, 8080, 40001, RST, b""),
        1,
    );
    let (_, c) = d.conns_v4().iter().next().unwrap();
    assert_eq!(TcpState::from_u8(c.state), TcpState::Close);
    assert_eq!(counts(&t, 0), (0, 1, 0));

    let (v, out) = run(
        &mut d,
        &t,
        0,
        tcp4(IN0, CLIENT, VIP, 64, 40001, 80, SYN, b""),
        2_000,
    );
    assert_eq!(
        v,
        Verdict::Forward {
            port: 1,
            next_hop: ip4(rs3)
        },
        "rr's next server, not the one that refused"
    );
    verify(&out);
    assert_eq!(d.conns_v4().len(), 1, "the entry is reused");
    assert_eq!((counts(&t, 0), counts(&t, 1)), ((0, 0, 0), (0, 1, 0)));
    let (_, c) = d.conns_v4().iter().next().unwrap();
    assert_eq!(TcpState::from_u8(c.state), TcpState::SynRecv);
}
