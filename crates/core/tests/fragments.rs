//! IP fragments of TCP and UDP through the data path: in order, out of order (later fragments
//! held, then replayed), first-fragment-last, the hold's bound and its timeout, NAT both ways
//! (a real server's large UDP answers), IPv6, and several workers (every fragment steered to
//! the flow's owner). Outputs are reassembled here and checked by etherparse, so the checksum
//! the first fragment carries must be right for the whole datagram.

mod support;

use rvs_core::{Director, DirectorConfig, DropReason, Frame, Tables, VecFrame, Verdict};
use support::*;

const VIP: [u8; 4] = [10, 0, 0, 100];
const RS: [u8; 4] = [192, 168, 1, 2];

fn ip_checksum(h: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for (i, w) in h.chunks(2).enumerate() {
        if i != 5 {
            s += u16::from_be_bytes([w[0], w[1]]) as u32;
        }
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// IPv4 fragments and their reassembly: rvs-traffic's (written apart from the core).
fn frag4(frame: &[u8], chunk: usize, id: u16) -> Vec<Vec<u8>> {
    rvs_traffic::fragment_v4(frame, chunk, id)
}

fn reassemble4(frags: &[Vec<u8>]) -> Vec<u8> {
    rvs_traffic::reassemble_v4(frags)
}

/// Splits an Ethernet/IPv6 frame (no extension headers) into fragments of at most `chunk`
/// bytes of the upper layer each, with a fragment header of identification `id`.
fn frag6(frame: &[u8], chunk: usize, id: u32) -> Vec<Vec<u8>> {
    let (head, payload) = frame.split_at(54);
    let nh = head[20];
    let n = payload.len().div_ceil(chunk);
    (0..n)
        .map(|i| {
            let part = &payload[i * chunk..((i + 1) * chunk).min(payload.len())];
            let mut f = head.to_vec();
            f[18..20].copy_from_slice(&((8 + part.len()) as u16).to_be_bytes());
            f[20] = 44;
            let more = u16::from(i + 1 < n);
            f.extend_from_slice(&[nh, 0]);
            f.extend_from_slice(&(((i * chunk) as u16) | more).to_be_bytes());
            f.extend_from_slice(&id.to_be_bytes());
            f.extend_from_slice(part);
            f
        })
        .collect()
}

fn reassemble6(frags: &[Vec<u8>]) -> Vec<u8> {
    let mut v: Vec<&Vec<u8>> = frags.iter().collect();
    v.sort_by_key(|f| u16::from_be_bytes([f[56], f[57]]) & 0xfff8);
    let mut out = v[0][..54].to_vec();
    out[20] = v[0][54];
    for f in &v {
        let len = u16::from_be_bytes([f[18], f[19]]) as usize;
        out.extend_from_slice(&f[62..54 + len]);
    }
    let pl = (out.len() - 54) as u16;
    out[18..20].copy_from_slice(&pl.to_be_bytes());
    out
}

fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// Runs `frames` through `d` in order; the output frames of those forwarded, and every verdict.
fn run(
    d: &mut Director,
    t: &Tables,
    port: u16,
    frames: &[Vec<u8>],
    now: u64,
) -> (Vec<Vec<u8>>, Vec<Verdict>) {
    let mut out = Vec::new();
    let mut verdicts = Vec::new();
    for fr in frames {
        let mut f = VecFrame::new(fr);
        let v = d.process(t, port, &mut f, now);
        if matches!(v, Verdict::Forward { .. }) {
            out.push(f.data().to_vec());
        }
        verdicts.push(v);
    }
    (out, verdicts)
}

/// Replays what the director released (as the worker does).
fn replay(d: &mut Director, t: &Tables, now: u64) -> (Vec<Vec<u8>>, Vec<Verdict>) {
    let mut out = Vec::new();
    let mut verdicts = Vec::new();
    for (port, fr) in d.take_released() {
        let mut f = VecFrame::new(&fr);
        let v = d.process_steered(t, port, &mut f, now);
        if matches!(v, Verdict::Forward { .. }) {
            out.push(f.data().to_vec());
        }
        verdicts.push(v);
    }
    (out, verdicts)
}

#[test]
fn a_fragmented_request_reaches_its_nat_server_whole() {
    let t = tables();
    let mut d = director();
    let body = payload(4000);
    let frags = frag4(&udp4(IN0, CLIENT, VIP, 64, 40000, 53, &body), 1480, 0x1234);
    assert_eq!(frags.len(), 3);
    let (out, verdicts) = run(&mut d, &t, 0, &frags, 1);
    for v in &verdicts {
        assert_eq!(
            *v,
            Verdict::Forward {
                port: 1,
                next_hop: ip4(RS)
            }
        );
    }
    for f in &out {
        assert_eq!(
            &f[30..34],
            &RS,
            "every fragment's destination is the real server's"
        );
        assert_eq!(f[22], 63, "TTL decremented");
        assert_eq!(ip_checksum(&f[14..34]), u16::from_be_bytes([f[24], f[25]]));
    }
    let whole = reassemble4(&out);
    verify(&whole);
    assert_eq!(
        u16::from_be_bytes([whole[36], whole[37]]),
        5353,
        "the real server's port"
    );
    assert_eq!(&whole[42..], &body[..]);
    let st = d.stats;
    assert_eq!((st.frag_first, st.frag_followed, st.frag_held), (1, 2, 0));
    assert_eq!(d.real_traffic(rvs_core::model::RealId(2)).in_packets, 3);
}

#[test]
fn a_real_servers_large_answers_come_back_from_the_vip_in_fragments() {
    let t = tables();
    let mut d = director();
    let (_, v) = run(&mut d, &t, 0, &[udp4(IN0, CLIENT, VIP, 64, 40001, 53, b"q")], 1);
    assert_eq!(
        v[0],
        Verdict::Forward {
            port: 1,
            next_hop: ip4(RS)
        }
    );
    for id in 0..5u16 {
        let body = payload(4000 + id as usize);
        let answer = udp4(from_rs(ip4(RS)), RS, CLIENT, 64, 5353, 40001, &body);
        let frags = frag4(&answer, 1480, 0x4000 + id);
        let (out, verdicts) = run(&mut d, &t, 1, &frags, 2);
        assert_eq!(out.len(), 3, "{verdicts:?}");
        for f in &out {
            assert_eq!(&f[26..30], &VIP, "from the VIP");
        }
        let whole = reassemble4(&out);
        verify(&whole);
        assert_eq!(
            u16::from_be_bytes([whole[34], whole[35]]),
            53,
            "from the VIP's port"
        );
        assert_eq!(&whole[42..], &body[..]);
    }
}

#[test]
fn later_fragments_before_their_first_are_held_and_replayed_after_it() {
    let t = tables();
    let mut d = director();
    let body = payload(4000);
    let mut frags = frag4(&udp4(IN0, CLIENT, VIP, 64, 40002, 53, &body), 1480, 0x77);
    frags.reverse(); // last, middle, first
    let (out, verdicts) = run(&mut d, &t, 0, &frags, 1);
    assert_eq!(verdicts[..2], [Verdict::Held, Verdict::Held]);
    assert_eq!(
        verdicts[2],
        Verdict::Forward {
            port: 1,
            next_hop: ip4(RS)
        }
    );
    assert!(d.has_released());
    let (later, v2) = replay(&mut d, &t, 2);
    assert_eq!(v2.len(), 2, "{v2:?}");
    let all: Vec<Vec<u8>> = out.into_iter().chain(later).collect();
    let whole = reassemble4(&all);
    verify(&whole);
    assert_eq!(&whole[42..], &body[..]);
    let st = d.stats;
    assert_eq!((st.frag_held, st.frag_released), (2, 2));
}

#[test]
fn the_hold_is_bounded_and_what_never_completes_times_out_counted() {
    let t = tables();
    let mut d = director();
    let body = payload(3000);
    for id in 0..=rvs_core::FRAG_HOLD as u16 {
        let frags = frag4(&udp4(IN0, CLIENT, VIP, 64, 41000 + id, 53, &body), 1480, id);
        let (_, v) = run(&mut d, &t, 0, &frags[1..2], 1);
        let want = if (id as usize) < rvs_core::FRAG_HOLD {
            Verdict::Held
        } else {
            Verdict::Drop(DropReason::FragHoldFull)
        };
        assert_eq!(v[0], want, "datagram {id}");
    }
    d.advance(&t, 1 + rvs_core::FRAG_HOLD_MS + 1);
    assert_eq!(d.drops.get(DropReason::FragTimeout), rvs_core::FRAG_HOLD as u64);
    assert_eq!(d.drops.get(DropReason::FragHoldFull), 1);
    // The hold is free again.
    let frags = frag4(&udp4(IN0, CLIENT, VIP, 64, 42000, 53, &body), 1480, 999);
    assert_eq!(run(&mut d, &t, 0, &frags[1..], 2000).1, vec![Verdict::Held; 2]);
}

#[test]
fn the_rest_of_a_datagram_whose_first_fragment_was_refused_is_refused_alike() {
    let t = tables();
    let mut d = director();
    let frags = frag4(&udp4(IN0, CLIENT, VIP, 64, 40003, 5000, &payload(3000)), 1480, 5);
    let (_, v) = run(&mut d, &t, 0, &frags, 1);
    assert_eq!(v, vec![Verdict::Drop(DropReason::NoService); 3]);
    // ICMP (and SCTP) fragments are not followed.
    let mut echo = echo4(IN0, CLIENT, VIP, 64, false);
    echo[20] = 0x20;
    let c = ip_checksum(&echo[14..34]);
    echo[24..26].copy_from_slice(&c.to_be_bytes());
    assert_eq!(
        run(&mut d, &t, 0, &[echo], 1).1,
        vec![Verdict::Drop(DropReason::Fragment)]
    );
}

#[test]
fn ipv6_fragments_follow_a_dr_request_and_a_nat_reply() {
    let t = tables();
    let mut d = director();
    let vip6 = "2001:db8::100";
    let body = payload(3500);
    let frags = frag6(&udp6(IN0, CLIENT6, vip6, 64, 40000, 53, &body), 1232, 0xabcdef);
    let (out, v) = run(&mut d, &t, 0, &frags, 1);
    assert_eq!(out.len(), 3, "{v:?}");
    for f in &out {
        assert_eq!(f[21], 64, "DR leaves the hop limit alone");
    }
    let whole = reassemble6(&out);
    verify(&whole);
    assert_eq!(&whole[62..], &body[..]);

    // NAT over TCP: the SYN, then a real server's segment too big for one frame.
    let rs6 = "2001:db8:1::2";
    let (_, v) = run(
        &mut d,
        &t,
        0,
        &[tcp6(IN0, CLIENT6, vip6, 64, 40100, 80, SYN, b"")],
        1,
    );
    assert!(matches!(v[0], Verdict::Forward { port: 1, .. }), "{v:?}");
    let reply = tcp6(
        from_rs(ip6(rs6)),
        rs6,
        CLIENT6,
        64,
        8080,
        40100,
        SYNACK,
        &payload(3000),
    );
    let frags = frag6(&reply, 1232, 77);
    let (out, v) = run(&mut d, &t, 1, &frags, 2);
    assert_eq!(out.len(), 3, "{v:?}");
    let whole = reassemble6(&out);
    verify(&whole);
    assert_eq!(&whole[22..38], &v6(vip6), "from the VIP");
    assert_eq!(u16::from_be_bytes([whole[54], whole[55]]), 80);
}

/// Workers 0 and 1 of two.
fn two_directors() -> Vec<Director> {
    (0..2)
        .map(|w| {
            Director::new(DirectorConfig {
                worker: w,
                workers: 2,
                conn_capacity_v4: 1024,
                conn_capacity_v6: 256,
                seed: 0x5eed,
                real_capacity: 64,
                evict_half_open: true,
            })
        })
        .collect()
}

/// Two workers: a frame steered elsewhere is handed to that worker (as the rings do).
fn deliver(
    ds: &mut [Director],
    t: &Tables,
    at: usize,
    port: u16,
    frame: &[u8],
    now: u64,
) -> (usize, Verdict, Vec<u8>) {
    let mut f = VecFrame::new(frame);
    let mut w = at;
    let mut v = ds[w].process(t, port, &mut f, now);
    let mut hops = 0;
    while let Verdict::Redirect { worker } = v {
        hops += 1;
        assert!(hops <= 2, "steered at most to the home, then to the owner");
        w = worker as usize;
        v = ds[w].process_steered(t, port, &mut f, now);
    }
    (w, v, f.data().to_vec())
}

#[test]
fn with_several_workers_every_fragment_reaches_the_flows_owner() {
    let t = tables();
    let mut ds = two_directors();
    for k in 0..40u16 {
        let body = payload(4000);
        let frags = frag4(&udp4(IN0, CLIENT, VIP, 64, 43000 + k, 53, &body), 1480, 0x100 + k);
        let mut out = Vec::new();
        let mut workers = Vec::new();
        // Each fragment arrives at whichever worker (as if from two queues).
        for (i, fr) in frags.iter().enumerate() {
            let (w, v, data) = deliver(&mut ds, &t, (i + k as usize) % 2, 0, fr, 1);
            assert_eq!(
                v,
                Verdict::Forward {
                    port: 1,
                    next_hop: ip4(RS)
                },
                "datagram {k} fragment {i}"
            );
            workers.push(w);
            out.push(data);
        }
        assert!(
            workers.iter().all(|&w| w == workers[0]),
            "one worker: {workers:?}"
        );
        let whole = reassemble4(&out);
        verify(&whole);
    }
}

/// Two workers as the data plane runs them: each takes a burst from its own queue, then what
/// the other steered to it (its ring), then replays what it released; until all is done.
/// Returns every forwarded frame.
fn two_workers(ds: &mut [Director], t: &Tables, queues: [Vec<Vec<u8>>; 2], burst: usize) -> Vec<Vec<u8>> {
    use std::collections::VecDeque;
    let mut queues: [VecDeque<Vec<u8>>; 2] = queues.map(VecDeque::from);
    let mut rings: [VecDeque<Vec<u8>>; 2] = [VecDeque::new(), VecDeque::new()];
    let mut out = Vec::new();
    let act = |v: Verdict, f: Vec<u8>, rings: &mut [VecDeque<Vec<u8>>; 2], out: &mut Vec<Vec<u8>>| match v {
        Verdict::Forward { .. } => out.push(f),
        Verdict::Redirect { worker } => rings[worker as usize].push_back(f),
        Verdict::Held => {}
        v => panic!("{v:?}"),
    };
    for round in 0..1000 {
        let idle = queues.iter().all(VecDeque::is_empty) && rings.iter().all(VecDeque::is_empty);
        if idle {
            break;
        }
        assert!(round < 999, "never settles");
        for w in 0..2 {
            for _ in 0..burst {
                let Some(fr) = queues[w].pop_front() else { break };
                let mut f = VecFrame::new(&fr);
                let v = ds[w].process(t, 0, &mut f, 1);
                act(v, f.data().to_vec(), &mut rings, &mut out);
            }
            while let Some(fr) = rings[w].pop_front() {
                let mut f = VecFrame::new(&fr);
                let v = ds[w].process_steered(t, 0, &mut f, 1);
                act(v, f.data().to_vec(), &mut rings, &mut out);
            }
            for (port, fr) in ds[w].take_released() {
                let mut f = VecFrame::new(&fr);
                let v = ds[w].process_steered(t, port, &mut f, 1);
                act(v, f.data().to_vec(), &mut rings, &mut out);
            }
        }
    }
    out
}

#[test]
fn fragments_split_across_two_workers_queues_all_arrive() {
    let t = tables();
    let mut ds = two_directors();
    let (mut q0, mut q1) = (Vec::new(), Vec::new());
    for k in 0..40u16 {
        let c = [198, 51, 100, 10 + (k % 7) as u8];
        let frags = frag4(
            &udp4(IN0, c, VIP, 64, 33000 + k, 53, &payload(3000)),
            1480,
            500 + k,
        );
        let (first, rest) = if k % 2 == 0 {
            (&mut q0, &mut q1)
        } else {
            (&mut q1, &mut q0)
        };
        first.push(frags[0].clone());
        rest.extend(frags[1..].iter().cloned());
    }
    let out = two_workers(&mut ds, &t, [q0, q1], 32);
    for k in 0..40u16 {
        let n = out
            .iter()
            .filter(|f| f[18..20] == (500 + k).to_be_bytes())
            .count();
        assert_eq!(n, 3, "datagram {k}");
    }
}
