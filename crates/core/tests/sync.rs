//! Connection sync through the data path: what a master director hands out, how a backup
//! installs it, and that the backup then forwards the flow mid-stream to the same real server
//! without scheduling it again.

mod support;

use std::sync::atomic::Ordering;

use rvs_core::conn::state::TcpState;
use rvs_core::model::RealId;
use rvs_core::sync::{self, flags, MessageBuilder, SyncConn};
use rvs_core::{Director, DropReason, Frame, SyncRefusal, Tables, VecFrame, Verdict};
use support::*;

fn run(d: &mut Director, t: &Tables, port: u16, frame: Vec<u8>, now: u64) -> (Verdict, Vec<u8>) {
    d.advance(t, now);
    let mut f = VecFrame::new(&frame);
    let v = d.process(t, port, &mut f, now);
    (v, f.data().to_vec())
}

fn master() -> Director {
    let mut d = director();
    d.set_sync(true);
    d
}

/// What the master produced, through the wire format and back (as the backup gets it).
fn over_the_wire(d: &mut Director) -> Vec<SyncConn> {
    let mut b = MessageBuilder::new(9, sync::DEFAULT_MAXLEN);
    let mut msgs = Vec::new();
    for r in d.sync_out().drain(..) {
        msgs.extend(b.push(&r));
    }
    msgs.extend(b.finish());
    msgs.iter()
        .flat_map(|m| sync::decode(m, 9).unwrap().conns)
        .collect()
}

const DR_VIP: [u8; 4] = [10, 0, 0, 101];

/// A segment from NAT real server `rs`:8080 back to the client's port `cport`.
fn reply(rs: [u8; 4], cport: u16, flags: Flags, payload: &[u8]) -> Vec<u8> {
    tcp4(from_rs(ip4(rs)), rs, CLIENT, 64, 8080, cport, flags, payload)
}

/// A director with room for `v4` IPv4 entries.
fn big_director(v4: usize) -> Director {
    Director::new(rvs_core::DirectorConfig {
        worker: 0,
        workers: 1,
        conn_capacity_v4: v4,
        conn_capacity_v6: 16,
        seed: 1,
        real_capacity: 64,
        evict_half_open: true,
    })
}

#[test]
fn a_dr_connection_is_sent_once_established_and_the_backup_forwards_it_mid_flow() {
    let t = tables();
    let mut m = master();
    run(
        &mut m,
        &t,
        0,
        tcp4(IN0, CLIENT, DR_VIP, 64, 40000, 80, SYN, b""),
        0,
    );
    assert!(m.sync_out().is_empty(), "a half-open connection is not sent");
    run(
        &mut m,
        &t,
        0,
        tcp4(IN0, CLIENT, DR_VIP, 64, 40000, 80, ACK, b""),
        10,
    );
    let recs = over_the_wire(&mut m);
    assert_eq!(recs.len(), 1);
    let r = recs[0];
    assert_eq!(r.state, TcpState::Established as u16);
    assert_eq!(r.flags & flags::FWD_MASK, flags::DROUTE);
    assert_ne!(r.flags & flags::NOOUTPUT, 0);
    assert_eq!(r.flags & flags::INACTIVE, 0, "established is active");
    assert_eq!((r.cport, r.vport, r.dport), (40000, 80, 80));
    assert_eq!(r.daddr, ip4([192, 168, 1, 4]));
    assert_eq!(r.timeout_s, 900);
    // More packets of the same state send nothing until half the timeout has passed.
    run(
        &mut m,
        &t,
        0,
        tcp4(IN0, CLIENT, DR_VIP, 64, 40000, 80, ACK, b"x"),
        20,
    );
    assert!(m.sync_out().is_empty());
    run(
        &mut m,
        &t,
        0,
        tcp4(IN0, CLIENT, DR_VIP, 64, 40000, 80, ACK, b"x"),
        451_000,
    );
    assert_eq!(
        over_the_wire(&mut m).len(),
        1,
        "a refresh before the peer would expire it"
    );
    run(
        &mut m,
        &t,
        0,
        tcp4(IN0, CLIENT, DR_VIP, 64, 40000, 80, FINACK, b""),
        451_100,
    );
    let fin = over_the_wire(&mut m);
    assert_eq!(
        fin[0].state,
        TcpState::FinWait as u16,
        "a state change is sent at once"
    );
    assert_ne!(fin[0].flags & flags::INACTIVE, 0);

    let tb = tables();
    let mut b = director();
    b.install(&tb, &r, 1000).unwrap();
    assert_eq!(b.sync.installed, 1);
    assert_eq!(
        tb.reals.get(RealId(3)).active(),
        1,
        "installed with its state: active"
    );
    let (_, c) = b.conns_v4().iter().next().unwrap();
    assert_eq!(TcpState::from_u8(c.state), TcpState::Established);
    assert_eq!(c.expires, 1000 + 900_000);
    // A mid-flow segment (no SYN) is forwarded, not dropped as a stray.
    let (v, _) = run(
        &mut b,
        &tb,
        0,
        tcp4(IN0, CLIENT, DR_VIP, 64, 40000, 80, ACK, b"y"),
        2000,
    );
    assert_eq!(
        v,
        Verdict::Forward {
            port: 1,
            next_hop: ip4([192, 168, 1, 4])
        }
    );
    // The same record again updates, it does not duplicate.
    b.install(&tb, &r, 3000).unwrap();
    assert_eq!((b.sync.installed, b.sync.updated, b.conns_v4().len()), (1, 1, 1));
    assert_eq!(b.stats.conns_created, 1);
}

#[test]
fn a_nat_connection_installed_on_the_backup_takes_replies() {
    let t = tables();
    let mut m = master();
    let vip = [10, 0, 0, 100];
    run(&mut m, &t, 0, tcp4(IN0, CLIENT, vip, 64, 40001, 80, SYN, b""), 0);
    run(&mut m, &t, 1, reply([192, 168, 1, 2], 40001, SYNACK, b""), 1);
    run(&mut m, &t, 0, tcp4(IN0, CLIENT, vip, 64, 40001, 80, ACK, b""), 2);
    let recs = over_the_wire(&mut m);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].flags & flags::FWD_MASK, flags::MASQ);
    let tb = tables();
    let mut b = director();
    b.install(&tb, &recs[0], 5).unwrap();
    let (v, out) = run(&mut b, &tb, 1, reply([192, 168, 1, 2], 40001, ACK, b"data"), 6);
    assert_eq!(
        v,
        Verdict::Forward {
            port: 0,
            next_hop: ip4(GW4)
        }
    );
    assert_eq!(&out[14 + 12..14 + 16], &vip, "the reply leaves from the VIP");
}

#[test]
fn udp_flows_and_persistence_templates_travel_too() {
    let t = tables();
    let mut m = master();
    run(
        &mut m,
        &t,
        0,
        udp4(IN0, CLIENT, [10, 0, 0, 100], 64, 44000, 53, b"q"),
        0,
    );
    let recs = over_the_wire(&mut m);
    assert_eq!(recs.len(), 1, "a UDP flow is sent on its first packet");
    assert_eq!((recs[0].protocol, recs[0].state, recs[0].timeout_s), (17, 0, 300));

    let vip = [10, 0, 0, 103];
    run(
        &mut m,
        &t,
        0,
        tcp4(IN0, CLIENT, vip, 64, 41000, 443, SYN, b""),
        10,
    );
    let rs = match run(
        &mut m,
        &t,
        0,
        tcp4(IN0, CLIENT, vip, 64, 41000, 443, ACK, b""),
        20,
    )
    .0
    {
        Verdict::Forward { next_hop, .. } => next_hop,
        v => panic!("{v:?}"),
    };
    // NAT saw no reply yet: SYN_RECV + ACK from the client is ESTABLISHED in the INPUT table.
    let recs = over_the_wire(&mut m);
    assert_eq!(recs.len(), 2, "the connection and its template");
    let tpl = recs[1];
    assert!(tpl.is_template());
    assert_eq!(
        (tpl.cport, tpl.client, tpl.daddr),
        (0, ip4([198, 51, 100, 0]), rs)
    );
    assert_eq!(
        tpl.timeout_s, 900,
        "the template lives as long as its established connection (900 s), not only its 300 s"
    );

    // The backup gets the template alone (say the connection was lost): a new connection of
    // any client of that /24 goes to the template's server, whatever rr would pick.
    let tb = tables();
    let mut b = director();
    b.install(&tb, &tpl, 0).unwrap();
    assert_eq!(
        tb.reals
            .get(if rs == ip4([192, 168, 1, 6]) {
                RealId(5)
            } else {
                RealId(6)
            })
            .persistent
            .load(Ordering::Relaxed),
        1
    );
    for port in 50000..50004 {
        let (v, _) = run(
            &mut b,
            &tb,
            0,
            tcp4(IN0, [198, 51, 100, 9], vip, 64, port, 443, SYN, b""),
            100,
        );
        assert_eq!(
            v,
            Verdict::Forward {
                port: 1,
                next_hop: rs
            }
        );
    }
}

#[test]
fn records_for_what_the_backup_does_not_have_are_refused_and_counted() {
    let tb = tables();
    let mut b = director();
    let good = SyncConn {
        protocol: 6,
        flags: flags::DROUTE | flags::NOOUTPUT,
        state: 1,
        client: ip4(CLIENT),
        cport: 1234,
        vaddr: ip4(DR_VIP),
        vport: 80,
        daddr: ip4([192, 168, 1, 4]),
        dport: 80,
        fwmark: 0,
        timeout_s: 60,
        fullnat: None,
    };
    let no_svc = SyncConn { vport: 81, ..good };
    assert_eq!(b.install(&tb, &no_svc, 0), Err(SyncRefusal::UnknownService));
    let no_rs = SyncConn {
        daddr: ip4([192, 168, 1, 99]),
        ..good
    };
    assert_eq!(b.install(&tb, &no_rs, 0), Err(SyncRefusal::UnknownRealServer));
    let udp_for_tcp = SyncConn { protocol: 17, ..good };
    assert_eq!(b.install(&tb, &udp_for_tcp, 0), Err(SyncRefusal::UnknownService));
    assert_eq!(b.sync.refused[SyncRefusal::UnknownService as usize], 2);
    assert_eq!(b.sync.refused[SyncRefusal::UnknownRealServer as usize], 1);
    assert_eq!(b.conns_v4().len(), 0, "nothing installed");
    // A stray ACK for a flow nobody synced is still dropped.
    let (v, _) = run(
        &mut b,
        &tb,
        0,
        tcp4(IN0, CLIENT, DR_VIP, 64, 1234, 80, ACK, b""),
        1,
    );
    assert_eq!(v, Verdict::Drop(DropReason::NoConnNotInitial));
    // A record that moves a connection to another real server rebinds it.
    let tb2 = tables();
    let mut b2 = director();
    let nat = SyncConn {
        flags: flags::MASQ,
        vaddr: ip4([10, 0, 0, 100]),
        daddr: ip4([192, 168, 1, 2]),
        dport: 8080,
        ..good
    };
    b2.install(&tb2, &nat, 0).unwrap();
    b2.install(
        &tb2,
        &SyncConn {
            daddr: ip4([192, 168, 1, 3]),
            ..nat
        },
        1,
    )
    .unwrap();
    assert_eq!(tb2.reals.get(RealId(0)).active(), 0);
    assert_eq!(tb2.reals.get(RealId(1)).active(), 1);
    let (v, _) = run(&mut b2, &tb2, 1, reply([192, 168, 1, 3], 1234, ACK, b""), 2);
    assert!(
        matches!(v, Verdict::Forward { port: 0, .. }),
        "the reply key follows the new server: {v:?}"
    );
}

#[test]
fn a_full_buffer_loses_records_and_counts_them() {
    let t = tables();
    let mut m = big_director(8192);
    m.set_sync(true);
    for i in 0..(rvs_core::path::SYNC_OUT_MAX as u16 + 10) {
        run(
            &mut m,
            &t,
            0,
            udp4(IN0, CLIENT, [10, 0, 0, 100], 64, 1000 + i, 53, b"q"),
            0,
        );
    }
    assert_eq!(m.sync_out().len(), rvs_core::path::SYNC_OUT_MAX);
    assert_eq!(m.sync.lost, 10);
    assert_eq!(m.sync.emitted, rvs_core::path::SYNC_OUT_MAX as u64);
}

#[test]
fn a_resync_walks_the_whole_table_in_steps() {
    let t = tables();
    let mut m = director();
    // Sync off while the flows are made: nothing is sent then.
    for port in 0..20u16 {
        run(
            &mut m,
            &t,
            0,
            tcp4(IN0, CLIENT, DR_VIP, 64, 30000 + port, 80, SYN, b""),
            0,
        );
        if port % 2 == 0 {
            run(
                &mut m,
                &t,
                0,
                tcp4(IN0, CLIENT, DR_VIP, 64, 30000 + port, 80, ACK, b""),
                1,
            );
        }
    }
    run(
        &mut m,
        &t,
        0,
        udp4(IN0, CLIENT, [10, 0, 0, 100], 64, 44000, 53, b"q"),
        2,
    );
    assert!(m.sync_out().is_empty());
    m.start_resync();
    let mut steps = 0;
    while m.resyncing() {
        m.resync_step(&t, 3, 100);
        steps += 1;
    }
    assert!(steps > 10, "the walk is done in steps ({steps})");
    let recs = over_the_wire(&mut m);
    assert_eq!(
        recs.len(),
        11,
        "the 10 established connections and the UDP flow, not the half-open ones"
    );
    let tb = tables();
    let mut b = director();
    for r in &recs {
        b.install(&tb, r, 3).unwrap();
    }
    assert_eq!(b.conns_v4().len(), 11);
}

/// What sync costs per connection, from the real state machine: every record a master
/// produces for 10,000 short HTTP-like connections (DR: SYN, ACK, request, FIN, ACK; NAT:
/// the same with the server's replies), packed as the daemon packs them. Printed, for the
/// figures "messages and bytes per second at N new connections per second" (multiply).
#[test]
fn sync_traffic_per_connection() {
    use support::{FINACK, SYNACK};
    for (name, vip, nat) in [("DR", DR_VIP, false), ("NAT", [10, 0, 0, 100], true)] {
        let t = tables();
        let mut m = big_director(16384);
        m.set_sync(true);
        let n = 10_000u32;
        let mut b = MessageBuilder::new(0, sync::DEFAULT_MAXLEN);
        let (mut msgs, mut bytes, mut recs) = (0u64, 0u64, 0u64);
        for i in 0..n {
            let c = [198, 51, (i >> 8) as u8, i as u8];
            let port = 20000 + (i % 40000) as u16;
            let now = i as u64;
            let rs = [192, 168, 1, 2 + (i % 2) as u8];
            run(&mut m, &t, 0, tcp4(IN0, c, vip, 64, port, 80, SYN, b""), now);
            if nat {
                run(
                    &mut m,
                    &t,
                    1,
                    tcp4(from_rs(ip4(rs)), rs, c, 64, 8080, port, SYNACK, b""),
                    now,
                );
            }
            run(&mut m, &t, 0, tcp4(IN0, c, vip, 64, port, 80, ACK, b"GET /"), now);
            if nat {
                run(
                    &mut m,
                    &t,
                    1,
                    tcp4(from_rs(ip4(rs)), rs, c, 64, 8080, port, FINACK, b"200"),
                    now,
                );
            }
            run(&mut m, &t, 0, tcp4(IN0, c, vip, 64, port, 80, FINACK, b""), now);
            for r in m.sync_out().drain(..) {
                recs += 1;
                if let Some(x) = b.push(&r) {
                    msgs += 1;
                    bytes += x.len() as u64;
                }
            }
        }
        if let Some(x) = b.finish() {
            msgs += 1;
            bytes += x.len() as u64;
        }
        let per = |v: u64| v as f64 / n as f64;
        eprintln!(
            "{name}: {:.2} records, {:.4} messages, {:.1} payload bytes per connection; at 100k conn/s: {:.0} messages/s, {:.2} MB/s of UDP payload ({:.2} MB/s on the wire)",
            per(recs),
            per(msgs),
            per(bytes),
            per(msgs) * 1e5,
            per(bytes) * 1e5 / 1e6,
            (per(bytes) + per(msgs) * 42.0) * 1e5 / 1e6
        );
        assert_eq!(m.sync.lost, 0);
        assert!(
            (2.0..=3.0).contains(&per(recs)),
            "an established and a closing record each ({})",
            per(recs)
        );
    }
}
