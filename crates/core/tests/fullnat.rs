//! FullNAT, Katran-style: each rewrite as an exact expected frame (built with etherparse),
//! then the sequence shift over many segments both ways (retransmissions and SACK included),
//! ICMP errors both ways, TOA, IPv6, UDP, two workers without redirects, and local-port
//! exhaustion. Every output frame is re-parsed by etherparse, lengths and checksums checked.

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};
use rvs_core::conn::state::Timeouts;
use rvs_core::model::{
    Forward, FullNatConfig, Protocol, ProxyProtocol, RealId, RealRegistry, RealServer, Service, ServiceKey,
};
use rvs_core::path::owner_of;
use rvs_core::sched::SchedFlags;
use rvs_core::wire::proxy;
use rvs_core::{Director, DirectorConfig, DropReason, Frame, Tables, VecFrame, Verdict};
use support::{neigh, verify, GW_MAC, P0_MAC, P1_MAC};

const VIP: [u8; 4] = [10, 0, 0, 110];
const VIP_UDP: [u8; 4] = [10, 0, 0, 111];
const CLIENT: [u8; 4] = [198, 51, 100, 7];
const RS: [u8; 4] = [192, 168, 1, 20];
const LIP: [u8; 4] = [192, 168, 1, 250];
const LIP2: [u8; 4] = [192, 168, 1, 251];
const VIP6: &str = "2001:db8::110";
const CLIENT6: &str = "2001:db8:c::7";
const RS6: &str = "2001:db8:1::20";
const LIP6: &str = "2001:db8:1::fa";
const ISN: u32 = 0xffff_fff0; // the client's SYN: its stream wraps around 2^32 early on
const SISN: u32 = 7_000_000; // the server's

fn ip(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

fn ip6(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn real(id: u32, addr: IpAddr, port: u16) -> RealServer {
    RealServer {
        id: RealId(id),
        addr,
        port,
        forward: Forward::FullNat,
        weight: 1,
        upper: 0,
        lower: 0,
    }
}

fn service(p: Protocol, vip: IpAddr, port: u16, reals: Vec<RealServer>, f: FullNatConfig) -> Arc<Service> {
    let key = ServiceKey::Addr {
        protocol: p,
        vip,
        port,
    };
    Arc::new(
        Service::new(key, "rr", SchedFlags::default(), None, reals)
            .unwrap()
            .with_fullnat(f),
    )
}

fn tables(proxy: ProxyProtocol, toa: bool, laddrs4: Vec<IpAddr>) -> Tables {
    let net = support::tables().net.clone();
    let fnat = |laddrs: Vec<IpAddr>| FullNatConfig { laddrs, proxy, toa };
    let services = vec![
        service(
            Protocol::Tcp,
            ip(VIP),
            80,
            vec![real(0, ip(RS), 8080)],
            fnat(laddrs4.clone()),
        ),
        service(
            Protocol::Udp,
            ip(VIP_UDP),
            53,
            vec![real(1, ip(RS), 5353)],
            fnat(laddrs4),
        ),
        service(
            Protocol::Tcp,
            ip6(VIP6),
            443,
            vec![real(2, ip6(RS6), 8443)],
            fnat(vec![ip6(LIP6)]),
        ),
    ];
    Tables::new(
        net,
        services,
        Timeouts::default(),
        Arc::new(RealRegistry::new(16)),
    )
}

fn director(worker: u16, workers: u16, capacity: usize) -> Director {
    Director::new(DirectorConfig {
        worker,
        workers,
        conn_capacity_v4: capacity,
        conn_capacity_v6: 256,
        seed: 0x5eed,
        real_capacity: 16,
        evict_half_open: false,
    })
}

/// A TCP segment's fields.
#[derive(Clone, Copy, Default)]
struct Seg<'a> {
    seq: u32,
    ack: Option<u32>,
    syn: bool,
    fin: bool,
    opts: &'a [u8],
    data: &'a [u8],
}

#[allow(clippy::too_many_arguments)]
fn tcp(
    (smac, dmac): ([u8; 6], [u8; 6]),
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
    sport: u16,
    dport: u16,
    s: Seg,
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(smac, dmac);
    let b = match (src, dst) {
        (IpAddr::V4(s4), IpAddr::V4(d4)) => b.ipv4(s4.octets(), d4.octets(), ttl),
        (IpAddr::V6(s6), IpAddr::V6(d6)) => b.ipv6(s6.octets(), d6.octets(), ttl),
        _ => unreachable!(),
    };
    let mut b = b.tcp(sport, dport, s.seq, 64240);
    if s.syn {
        b = b.syn();
    }
    if let Some(a) = s.ack {
        b = b.ack(a);
    }
    if s.fin {
        b = b.fin();
    }
    if !s.opts.is_empty() {
        b = b.options_raw(s.opts).unwrap();
    }
    let mut out = Vec::new();
    b.write(&mut out, s.data).unwrap();
    out
}

fn udp(
    (smac, dmac): ([u8; 6], [u8; 6]),
    src: [u8; 4],
    dst: [u8; 4],
    ttl: u8,
    sport: u16,
    dport: u16,
    data: &[u8],
) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(smac, dmac)
        .ipv4(src, dst, ttl)
        .udp(sport, dport)
        .write(&mut out, data)
        .unwrap();
    out
}

const FROM_CLIENT: ([u8; 6], [u8; 6]) = (GW_MAC, P0_MAC);

/// Back out of port 0 to the clients' router (the default gateway).
fn to_client() -> ([u8; 6], [u8; 6]) {
    (P0_MAC, neigh(IpAddr::V4(Ipv4Addr::from(support::GW4))))
}

fn from_rs(rs: IpAddr) -> ([u8; 6], [u8; 6]) {
    (neigh(rs), P1_MAC)
}

fn to_rs(rs: IpAddr) -> ([u8; 6], [u8; 6]) {
    (P1_MAC, neigh(rs))
}

/// A bare SYN from `CLIENT:cport` to the VIP's port 80.
fn client_syn(cport: u16) -> Vec<u8> {
    let syn = Seg {
        seq: 5,
        syn: true,
        ..Seg::default()
    };
    tcp(FROM_CLIENT, ip(CLIENT), ip(VIP), 64, cport, 80, syn)
}

/// A segment as rvs sends it to the real server: from the local address and port, TTL 63.
fn toward_rs(seg: Seg) -> Vec<u8> {
    tcp(to_rs(ip(RS)), ip(LIP), ip(RS), 63, LPORT, 8080, seg)
}

/// A segment as rvs sends it back to the client `CLIENT:cport`: from the VIP, TTL 63.
fn toward_client(cport: u16, seg: Seg) -> Vec<u8> {
    tcp(to_client(), ip(VIP), ip(CLIENT), 63, 80, cport, seg)
}

/// Runs one frame and returns the verdict and the frame as sent (next hop's MAC filled in).
fn run(d: &mut Director, t: &Tables, port: u16, frame: Vec<u8>, now: u64) -> (Verdict, Vec<u8>) {
    let mut f = VecFrame::new(&frame);
    let v = d.process(t, port, &mut f, now);
    let mut out = f.data().to_vec();
    if let Verdict::Forward { next_hop, .. } = v {
        out[..6].copy_from_slice(&neigh(next_hop));
        verify(&out);
    }
    (v, out)
}

fn fwd(port: u16, hop: IpAddr) -> Verdict {
    Verdict::Forward { port, next_hop: hop }
}

/// The TCP header fields of an output frame: (seq, ack, options bytes, payload).
fn tcp_of(frame: &[u8]) -> (u32, u32, Vec<u8>, Vec<u8>) {
    let p = SlicedPacket::from_ethernet(frame).unwrap();
    let Some(TransportSlice::Tcp(t)) = p.transport else {
        panic!("not TCP")
    };
    (
        t.sequence_number(),
        t.acknowledgment_number(),
        t.options().to_vec(),
        t.payload().to_vec(),
    )
}

fn toa4(client: SocketAddr) -> Vec<u8> {
    let mut o = [0u8; 20];
    let n = proxy::write_toa(client, &mut o);
    o[..n].to_vec()
}

const LPORT: u16 = 1025; // the first port of a worker that owns them all

/// The client's SYN (sequence `isn`, from port `cport`) and the server's SYN-ACK (to the first
/// local port), through `d`.
fn handshake(d: &mut Director, t: &Tables, cport: u16, isn: u32) {
    let syn = Seg {
        seq: isn,
        syn: true,
        ..Seg::default()
    };
    run(
        d,
        t,
        0,
        tcp(FROM_CLIENT, ip(CLIENT), ip(VIP), 64, cport, 80, syn),
        0,
    );
    let synack = Seg {
        seq: SISN,
        ack: Some(isn.wrapping_add(1)),
        syn: true,
        ..Seg::default()
    };
    run(
        d,
        t,
        1,
        tcp(from_rs(ip(RS)), ip(RS), ip(LIP), 64, 8080, LPORT, synack),
        1,
    );
}

#[test]
fn syn_handshake_and_first_data_with_proxy_v2_and_toa_exact_frames() {
    let t = tables(ProxyProtocol::V2, true, vec![ip(LIP)]);
    let mut d = director(0, 1, 1024);
    let client = SocketAddr::new(ip(CLIENT), 40000);
    let toa = toa4(client);
    let hdr_len = 28u32;

    // SYN: both addresses rewritten, TOA appended to its options (MSS kept).
    let mss = [2, 4, 0x05, 0xb4];
    let syn = Seg {
        seq: ISN,
        syn: true,
        opts: &mss,
        ..Seg::default()
    };
    let (v, out) = run(
        &mut d,
        &t,
        0,
        tcp(FROM_CLIENT, ip(CLIENT), ip(VIP), 64, 40000, 80, syn),
        0,
    );
    assert_eq!(v, fwd(1, ip(RS)));
    let opts: Vec<u8> = mss.iter().chain(toa.iter()).copied().collect();
    let want = toward_rs(Seg { opts: &opts, ..syn });
    assert_eq!(out, want, "SYN: laddr:lport -> rip:rport, with TOA");

    // SYN-ACK: back to the client from the VIP, its MSS lowered by the PROXY header and TOA.
    let synack = Seg {
        seq: SISN,
        ack: Some(ISN.wrapping_add(1)),
        syn: true,
        opts: &mss,
        ..Seg::default()
    };
    let (v, out) = run(
        &mut d,
        &t,
        1,
        tcp(from_rs(ip(RS)), ip(RS), ip(LIP), 64, 8080, LPORT, synack),
        1,
    );
    assert_eq!(v, fwd(0, ip(support::GW4)));
    let clamped = (1460 - 28 - 8u16).to_be_bytes();
    let want = toward_client(
        40000,
        Seg {
            opts: &[2, 4, clamped[0], clamped[1]],
            ..synack
        },
    );
    assert_eq!(out, want, "SYN-ACK: vip:vport -> client, MSS clamped, ack as is");

    // The handshake's ACK: TOA, no shift (nothing inserted before it).
    let ack = Seg {
        seq: ISN.wrapping_add(1),
        ack: Some(SISN + 1),
        ..Seg::default()
    };
    let (_, out) = run(
        &mut d,
        &t,
        0,
        tcp(FROM_CLIENT, ip(CLIENT), ip(VIP), 64, 40000, 80, ack),
        2,
    );
    let want = toward_rs(Seg { opts: &toa, ..ack });
    assert_eq!(out, want, "handshake ACK: TOA");

    // The first data: TOA, and the PROXY v2 header in front of the client's bytes.
    let data = Seg {
        data: b"GET / HTTP/1.0\r\n\r\n",
        ..ack
    };
    let (_, out) = run(
        &mut d,
        &t,
        0,
        tcp(FROM_CLIENT, ip(CLIENT), ip(VIP), 64, 40000, 80, data),
        3,
    );
    let mut hdr = [0u8; proxy::MAX_LEN];
    let n = proxy::write_header(true, client, SocketAddr::new(ip(VIP), 80), &mut hdr);
    assert_eq!(n as u32, hdr_len);
    let body: Vec<u8> = hdr[..n].iter().chain(data.data).copied().collect();
    let want = toward_rs(Seg {
        opts: &toa,
        data: &body,
        ..data
    });
    assert_eq!(out, want, "first data: PROXY v2 header first");
    let (_, _, _, payload) = tcp_of(&out);
    assert_eq!(
        proxy::parse_header(&payload),
        Some((client, SocketAddr::new(ip(VIP), 80), n))
    );

    // The server acknowledges header and request: the client sees its own bytes acknowledged.
    let sack = {
        let a = ISN.wrapping_add(1 + hdr_len + 18 + 100).to_be_bytes();
        let b = ISN.wrapping_add(1 + hdr_len + 18 + 200).to_be_bytes();
        [1, 1, 5, 10, a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]]
    };
    let reply = Seg {
        seq: SISN + 1,
        ack: Some(ISN.wrapping_add(1 + hdr_len + 18)),
        opts: &sack,
        data: b"HTTP/1.0 200 OK\r\n\r\n",
        ..Seg::default()
    };
    let (_, out) = run(
        &mut d,
        &t,
        1,
        tcp(from_rs(ip(RS)), ip(RS), ip(LIP), 64, 8080, LPORT, reply),
        4,
    );
    let unsack = {
        let a = ISN.wrapping_add(1 + 18 + 100).to_be_bytes();
        let b = ISN.wrapping_add(1 + 18 + 200).to_be_bytes();
        [1, 1, 5, 10, a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]]
    };
    let want = toward_client(
        40000,
        Seg {
            ack: Some(ISN.wrapping_add(1 + 18)),
            opts: &unsack,
            ..reply
        },
    );
    assert_eq!(out, want, "reply: ack and SACK edges moved back over the header");
    assert_eq!(d.stats.proxy_headers, 1);
    assert_eq!(d.stats.toa_options, 3);
}

/// Many segments both ways, with retransmissions (of the first segment too) and SACK: the
/// server's view of the client's stream is the header then the client's bytes, and the
/// client's view of the server's acknowledgements is its own numbering.
#[test]
fn the_sequence_shift_holds_over_a_long_exchange_both_ways() {
    for v2 in [false, true] {
        let t = tables(
            if v2 { ProxyProtocol::V2 } else { ProxyProtocol::V1 },
            false,
            vec![ip(LIP)],
        );
        let mut d = director(0, 1, 1024);
        let client = SocketAddr::new(ip(CLIENT), 40001);
        let hlen = proxy::header_len(v2, client, SocketAddr::new(ip(VIP), 80)) as u32;
        let c = |seg: Seg| tcp(FROM_CLIENT, ip(CLIENT), ip(VIP), 64, 40001, 80, seg);
        let s = |seg: Seg| tcp(from_rs(ip(RS)), ip(RS), ip(LIP), 64, 8080, LPORT, seg);
        handshake(&mut d, &t, 40001, ISN);
        // What the server received, in its numbering.
        let mut server_got: Vec<u8> = Vec::new();
        let mut sent: Vec<u8> = Vec::new();
        let chunk = |i: usize| -> Vec<u8> { (0..100).map(|k| (i * 7 + k) as u8).collect() };
        for i in 0..50usize {
            let data = chunk(i);
            let seq = ISN.wrapping_add(1 + sent.len() as u32);
            let seg = Seg {
                seq,
                ack: Some(SISN + 1),
                data: &data,
                ..Seg::default()
            };
            // Every tenth segment is sent twice (a retransmission); the first one three times.
            let times = if i == 0 {
                3
            } else if i % 10 == 0 {
                2
            } else {
                1
            };
            for _ in 0..times {
                let (v, out) = run(&mut d, &t, 0, c(seg), 10 + i as u64);
                assert_eq!(v, fwd(1, ip(RS)));
                let (oseq, _, _, payload) = tcp_of(&out);
                let off = oseq.wrapping_sub(ISN.wrapping_add(1)) as usize;
                if i == 0 {
                    assert_eq!(off, 0, "the first segment starts the server's stream");
                    assert_eq!(payload.len(), hlen as usize + 100, "the header, every time");
                } else {
                    assert_eq!(off, hlen as usize + sent.len(), "segment {i} shifted");
                }
                if server_got.len() < off + payload.len() {
                    server_got.resize(off + payload.len(), 0);
                }
                server_got[off..off + payload.len()].copy_from_slice(&payload);
            }
            sent.extend_from_slice(&data);
            // The server acknowledges everything so far, SACKing a range beyond it.
            let acked = ISN.wrapping_add(1 + hlen + sent.len() as u32);
            let (l, r) = (acked.wrapping_add(50), acked.wrapping_add(60));
            let (lb, rb) = (l.to_be_bytes(), r.to_be_bytes());
            let opts = [
                1, 1, 5, 10, lb[0], lb[1], lb[2], lb[3], rb[0], rb[1], rb[2], rb[3],
            ];
            let (v, out) = run(
                &mut d,
                &t,
                1,
                s(Seg {
                    seq: SISN + 1,
                    ack: Some(acked),
                    opts: &opts,
                    ..Seg::default()
                }),
                10 + i as u64,
            );
            assert_eq!(v, fwd(0, ip(support::GW4)));
            let (_, oack, oopts, _) = tcp_of(&out);
            let mine = ISN.wrapping_add(1 + sent.len() as u32);
            assert_eq!(oack, mine, "ack {i} in the client's numbering");
            let edge = |at: usize| u32::from_be_bytes(oopts[at..at + 4].try_into().unwrap());
            assert_eq!((edge(4), edge(8)), (mine.wrapping_add(50), mine.wrapping_add(60)));
        }
        let (peer, dst, n) = proxy::parse_header(&server_got).expect("the stream starts with a header");
        assert_eq!((peer, dst), (client, SocketAddr::new(ip(VIP), 80)));
        assert_eq!(&server_got[n..], &sent[..], "then exactly the client's bytes");
        // An acknowledgement inside the header (the server has part of it) is the start.
        let (_, out) = run(
            &mut d,
            &t,
            1,
            s(Seg {
                seq: SISN + 1,
                ack: Some(ISN.wrapping_add(1 + hlen / 2)),
                ..Seg::default()
            }),
            100,
        );
        assert_eq!(tcp_of(&out).1, ISN.wrapping_add(1));
    }
}

#[test]
fn icmp_errors_are_translated_both_ways() {
    let t = tables(ProxyProtocol::V1, false, vec![ip(LIP)]);
    let mut d = director(0, 1, 1024);
    let client = SocketAddr::new(ip(CLIENT), 40002);
    let hlen = proxy::header_len(false, client, SocketAddr::new(ip(VIP), 80)) as u32;
    run(
        &mut d,
        &t,
        0,
        tcp(
            FROM_CLIENT,
            ip(CLIENT),
            ip(VIP),
            64,
            40002,
            80,
            Seg {
                seq: ISN,
                syn: true,
                ..Seg::default()
            },
        ),
        0,
    );
    // A router on the server side: "fragmentation needed" about a segment the director sent
    // (laddr:lport -> rip:rport, shifted by the header).
    let sent = toward_rs(Seg {
        seq: ISN.wrapping_add(1 + hlen + 500),
        ack: Some(SISN + 1),
        data: &[0u8; 8],
        ..Seg::default()
    });
    let quoted = &sent[14..14 + 20 + 28];
    let mut err = Vec::new();
    PacketBuilder::ethernet2(neigh(ip([192, 168, 1, 9])), P1_MAC)
        .ipv4([192, 168, 1, 9], LIP, 64)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1400 },
        ))
        .write(&mut err, quoted)
        .unwrap();
    let (v, out) = run(&mut d, &t, 1, err, 1);
    assert_eq!(v, fwd(0, ip(support::GW4)));
    let p = SlicedPacket::from_ethernet(&out).unwrap();
    let Some(etherparse::NetSlice::Ipv4(o)) = &p.net else {
        panic!()
    };
    assert_eq!((o.header().source(), o.header().destination()), (VIP, CLIENT));
    let q = &out[14 + 20 + 8..];
    assert_eq!(&q[12..16], &CLIENT, "quoted source: the client");
    assert_eq!(&q[16..20], &VIP, "quoted destination: the VIP");
    assert_eq!(u16::from_be_bytes([q[20], q[21]]), 40002);
    assert_eq!(u16::from_be_bytes([q[22], q[23]]), 80);
    assert_eq!(
        u32::from_be_bytes(q[24..28].try_into().unwrap()),
        ISN.wrapping_add(1 + 500),
        "quoted sequence number in the client's numbering"
    );

    // The client side: "port unreachable"-style error to the VIP about a reply.
    let reply = toward_client(
        40002,
        Seg {
            seq: SISN + 1,
            ack: Some(ISN.wrapping_add(1)),
            data: &[0u8; 8],
            ..Seg::default()
        },
    );
    let mut err = Vec::new();
    PacketBuilder::ethernet2(GW_MAC, P0_MAC)
        .ipv4(CLIENT, VIP, 64)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::Host,
        ))
        .write(&mut err, &reply[14..14 + 48])
        .unwrap();
    let (v, out) = run(&mut d, &t, 0, err, 2);
    assert_eq!(v, fwd(1, ip(RS)));
    let q = &out[14 + 20 + 8..];
    assert_eq!(
        &out[14 + 12..14 + 20],
        &[LIP, RS].concat()[..],
        "from the local address"
    );
    assert_eq!(
        &q[12..20],
        &[RS, LIP].concat()[..],
        "quoting the server's own reply"
    );
    assert_eq!(u16::from_be_bytes([q[20], q[21]]), 8080);
    assert_eq!(u16::from_be_bytes([q[22], q[23]]), LPORT);
}

#[test]
fn udp_and_ipv6_are_fullnat_too() {
    let t = tables(ProxyProtocol::V1, true, vec![ip(LIP)]);
    let mut d = director(0, 1, 1024);
    let (v, out) = run(
        &mut d,
        &t,
        0,
        udp(FROM_CLIENT, CLIENT, VIP_UDP, 64, 5000, 53, b"query"),
        0,
    );
    assert_eq!(v, fwd(1, ip(RS)));
    assert_eq!(
        out,
        udp(to_rs(ip(RS)), LIP, RS, 63, LPORT, 5353, b"query"),
        "UDP: no header, no TOA"
    );
    let (v, out) = run(
        &mut d,
        &t,
        1,
        udp(from_rs(ip(RS)), RS, LIP, 64, 5353, LPORT, b"answer"),
        1,
    );
    assert_eq!(v, fwd(0, ip(support::GW4)));
    assert_eq!(out, udp(to_client(), VIP_UDP, CLIENT, 63, 53, 5000, b"answer"));

    // IPv6 with PROXY v1 (TCP6) and TOA (20 bytes).
    let client = SocketAddr::new(ip6(CLIENT6), 40003);
    let (v, out) = run(
        &mut d,
        &t,
        0,
        tcp(
            FROM_CLIENT,
            ip6(CLIENT6),
            ip6(VIP6),
            64,
            40003,
            443,
            Seg {
                seq: 1,
                syn: true,
                ..Seg::default()
            },
        ),
        2,
    );
    assert_eq!(v, fwd(1, ip6(RS6)));
    let toa = {
        let mut o = [0u8; 20];
        proxy::write_toa(client, &mut o);
        o
    };
    assert_eq!(
        out,
        tcp(
            to_rs(ip6(RS6)),
            ip6(LIP6),
            ip6(RS6),
            63,
            LPORT,
            8443,
            Seg {
                seq: 1,
                syn: true,
                opts: &toa,
                ..Seg::default()
            }
        )
    );
    let data = Seg {
        seq: 2,
        ack: Some(9),
        data: b"hello",
        ..Seg::default()
    };
    let (_, out) = run(
        &mut d,
        &t,
        0,
        tcp(FROM_CLIENT, ip6(CLIENT6), ip6(VIP6), 64, 40003, 443, data),
        3,
    );
    let (seq, _, opts, payload) = tcp_of(&out);
    assert_eq!((seq, &opts[..]), (2, &toa[..]));
    let (peer, dst, n) = proxy::parse_header(&payload).unwrap();
    assert_eq!((peer, dst), (client, "[2001:db8::110]:443".parse().unwrap()));
    assert!(payload.starts_with(b"PROXY TCP6 2001:db8:c::7 2001:db8::110 40003 443\r\n"));
    assert_eq!(&payload[n..], b"hello");
}

/// With two workers, a new FullNAT flow stays on the worker it reached, and gets a local port
/// whose reply that worker owns: a reply that reached the other worker is steered by the same
/// function, and nothing else crosses.
#[test]
fn two_workers_own_their_flows_and_their_replies() {
    let t = tables(ProxyProtocol::Off, false, vec![ip(LIP)]);
    let mut w = [director(0, 2, 4096), director(1, 2, 4096)];
    for i in 0..200u16 {
        let (k, other) = ((i % 2) as usize, 1 - (i % 2) as usize);
        let syn = tcp(
            FROM_CLIENT,
            ip(CLIENT),
            ip(VIP),
            64,
            20000 + i,
            80,
            Seg {
                seq: 5,
                syn: true,
                ..Seg::default()
            },
        );
        let (v, out) = run(&mut w[k], &t, 0, syn, 0);
        assert_eq!(v, fwd(1, ip(RS)), "no redirect for a new flow");
        let lport = u16::from_be_bytes([out[34], out[35]]);
        assert_eq!(owner_of(6, ip(LIP), lport, 2), k as u16, "the reply's owner");
        let reply = tcp(
            from_rs(ip(RS)),
            ip(RS),
            ip(LIP),
            64,
            8080,
            lport,
            Seg {
                seq: 9,
                ack: Some(6),
                syn: true,
                ..Seg::default()
            },
        );
        assert_eq!(
            run(&mut w[k], &t, 1, reply.clone(), 1).0,
            fwd(0, ip(support::GW4))
        );
        assert_eq!(
            run(&mut w[other], &t, 1, reply, 1).0,
            Verdict::Redirect { worker: k as u16 }
        );
    }
    assert_eq!(
        w[0].stats.redirects + w[1].stats.redirects,
        200,
        "only the misdelivered replies"
    );
}

#[test]
fn local_ports_run_out_as_a_counted_drop_and_come_back_on_expiry() {
    let t = tables(ProxyProtocol::Off, false, vec![ip(LIP)]);
    let mut d = director(0, 1, 70_000);
    let share = (proxy_ports()) as u32;
    let mut n = 0u32;
    'outer: for c in 1..=250u8 {
        for port in 1024..=65535u16 {
            if n == share {
                break 'outer;
            }
            let syn = tcp(
                FROM_CLIENT,
                [198, 51, 100, c].into(),
                ip(VIP),
                64,
                port,
                80,
                Seg {
                    seq: 5,
                    syn: true,
                    ..Seg::default()
                },
            );
            let mut f = VecFrame::new(&syn);
            assert!(matches!(d.process(&t, 0, &mut f, 0), Verdict::Forward { .. }));
            n += 1;
        }
    }
    let syn = client_syn(1);
    assert_eq!(
        run(&mut d, &t, 0, syn.clone(), 0).0,
        Verdict::Drop(DropReason::LocalPortsExhausted)
    );
    assert_eq!(d.drops.get(DropReason::LocalPortsExhausted), 1);
    assert_eq!(d.local_ports_in_use(), share as u64);
    // A second local address doubles the room; without one of the family, a counted drop.
    let t2 = tables(ProxyProtocol::Off, false, vec![ip(LIP), ip(LIP2)]);
    assert!(matches!(
        run(&mut d, &t2, 0, syn.clone(), 0).0,
        Verdict::Forward { .. }
    ));
    let t0 = tables(ProxyProtocol::Off, false, vec![ip6(LIP6)]);
    let syn2 = client_syn(2);
    assert_eq!(
        run(&mut d, &t0, 0, syn2, 0).0,
        Verdict::Drop(DropReason::NoLocalAddress)
    );
    // Half-open connections expire (TCP SYN_RECV: 60 s): every port comes back.
    d.advance(&t, 200_000);
    assert_eq!(d.local_ports_in_use(), 0);
    assert!(matches!(
        run(&mut d, &t, 0, syn, 200_001).0,
        Verdict::Forward { .. }
    ));
}

fn proxy_ports() -> usize {
    (rvs_core::path::lport::LPORT_MAX - rvs_core::path::lport::LPORT_MIN) as usize + 1
}

/// A FullNAT connection synced to a backup (through the wire format, IPVS's sequence option
/// and rvs's local-address option) resumes there: the same local address and port, the
/// client's stream still shifted by the PROXY header, the port held in the backup's share.
#[test]
fn sync_carries_what_a_backup_needs_to_resume_a_fullnat_connection() {
    use rvs_core::sync::{decode, flags, MessageBuilder};
    let t = tables(ProxyProtocol::V1, true, vec![ip(LIP)]);
    let mut master = director(0, 1, 1024);
    master.set_sync(true);
    let client = SocketAddr::new(ip(CLIENT), 40010);
    let hlen = proxy::header_len(false, client, SocketAddr::new(ip(VIP), 80)) as u32;
    let c = |seg: Seg| tcp(FROM_CLIENT, ip(CLIENT), ip(VIP), 64, 40010, 80, seg);
    let s = |seg: Seg| tcp(from_rs(ip(RS)), ip(RS), ip(LIP), 64, 8080, LPORT, seg);
    handshake(&mut master, &t, 40010, ISN);
    // The ACK establishes it: IPVS sends a record then.
    run(
        &mut master,
        &t,
        0,
        c(Seg {
            seq: ISN.wrapping_add(1),
            ack: Some(SISN + 1),
            ..Seg::default()
        }),
        2,
    );
    let records: Vec<_> = master.sync_out().drain(..).collect();
    assert_eq!(records.len(), 1, "{records:?}");
    let f = records[0].fullnat.expect("the FullNAT part");
    assert_eq!((f.laddr, f.lport, f.isn), (ip(LIP), LPORT, ISN.wrapping_add(1)));
    assert_eq!((f.proxy_len as u32, f.proxy_v2, f.toa), (hlen, false, true));

    let mut b = MessageBuilder::new(1, 1500);
    assert!(b.push(&records[0]).is_none());
    let msg = b.finish().unwrap();
    assert_eq!(msg.len() % 4, 0, "records are padded to 4");
    // IPVS's flags and sequence option, as a Linux backup reads them.
    let rec = &msg[8..];
    let fl = u32::from_be_bytes(rec[4..8].try_into().unwrap());
    assert_eq!(fl & flags::FWD_MASK, flags::FULLNAT);
    assert_eq!(fl & flags::SEQ_MASK, flags::IN_SEQ);
    assert_eq!(&rec[36..38], &[1, 24], "IPVS_OPT_SEQ_DATA");
    assert_eq!(
        u32::from_be_bytes(rec[38..42].try_into().unwrap()),
        ISN.wrapping_add(1)
    );
    assert_eq!(u32::from_be_bytes(rec[42..46].try_into().unwrap()), hlen);
    assert_eq!(
        rec[62] & 0x40,
        0x40,
        "rvs's option is optional (IPVS_OPT_F_PARAM)"
    );
    let got = decode(&msg, 1).unwrap();
    assert_eq!(got.conns.len(), 1);
    assert_eq!(got.conns[0].fullnat, Some(f));

    let mut backup = director(0, 1, 1024);
    backup.install(&t, &got.conns[0], 10).unwrap();
    assert_eq!(backup.local_ports_in_use(), 1, "the port is held on the backup");
    // The client's next bytes, after failover: shifted as on the master.
    let (v, out) = run(
        &mut backup,
        &t,
        0,
        c(Seg {
            seq: ISN.wrapping_add(1 + 100),
            ack: Some(SISN + 1),
            data: b"more",
            ..Seg::default()
        }),
        20,
    );
    assert_eq!(v, fwd(1, ip(RS)));
    assert_eq!(tcp_of(&out).0, ISN.wrapping_add(1 + 100 + hlen));
    assert_eq!(&out[26..30], &LIP, "from the same local address");
    assert_eq!(u16::from_be_bytes([out[34], out[35]]), LPORT, "and port");
    let (_, out) = run(
        &mut backup,
        &t,
        1,
        s(Seg {
            seq: SISN + 1,
            ack: Some(ISN.wrapping_add(1 + 104 + hlen)),
            ..Seg::default()
        }),
        21,
    );
    assert_eq!(tcp_of(&out).1, ISN.wrapping_add(1 + 104));
    // A new connection on the backup does not take the held port.
    let (_, out) = run(
        &mut backup,
        &t,
        0,
        tcp(
            FROM_CLIENT,
            ip(CLIENT),
            ip(VIP),
            64,
            40011,
            80,
            Seg {
                seq: 1,
                syn: true,
                ..Seg::default()
            },
        ),
        22,
    );
    assert_ne!(u16::from_be_bytes([out[34], out[35]]), LPORT);
    // A record without the local address cannot be resumed: refused, counted.
    let mut bare = got.conns[0];
    bare.fullnat = None;
    bare.cport = 40012;
    assert!(backup.install(&t, &bare, 30).is_err());
}

/// A client reusing its port while the connection is in TIME_WAIT starts a new connection
/// (IPVS's conn_reuse_mode): the entry keeps its local port, and the PROXY header goes before
/// the new stream's first byte.
#[test]
fn a_syn_in_time_wait_starts_a_new_stream_on_the_same_local_port() {
    let t = tables(ProxyProtocol::V1, false, vec![ip(LIP)]);
    let mut d = director(0, 1, 1024);
    let c = |seg: Seg| tcp(FROM_CLIENT, ip(CLIENT), ip(VIP), 64, 40020, 80, seg);
    let s = |seg: Seg| tcp(from_rs(ip(RS)), ip(RS), ip(LIP), 64, 8080, LPORT, seg);
    let a = |seq: u32, ack: u32, fin: bool| Seg {
        seq,
        ack: Some(ack),
        fin,
        ..Seg::default()
    };
    handshake(&mut d, &t, 40020, 100);
    run(&mut d, &t, 0, c(a(101, SISN + 1, false)), 2);
    run(&mut d, &t, 0, c(a(101, SISN + 1, true)), 3);
    run(&mut d, &t, 1, s(a(SISN + 1, 102, true)), 4);
    run(&mut d, &t, 0, c(a(102, SISN + 2, false)), 5);
    let (_, conn) = d.conns_v4().iter().next().unwrap();
    assert_eq!(conn.state, rvs_core::conn::state::TcpState::TimeWait as u8);
    // The port comes back: a new SYN with a new ISN.
    let (v, out) = run(
        &mut d,
        &t,
        0,
        c(Seg {
            seq: 5000,
            syn: true,
            ..Seg::default()
        }),
        6,
    );
    assert_eq!(v, fwd(1, ip(RS)));
    assert_eq!(
        u16::from_be_bytes([out[34], out[35]]),
        LPORT,
        "the same local port"
    );
    assert_eq!(d.conns_v4().len(), 1);
    let (_, out) = run(
        &mut d,
        &t,
        0,
        c(Seg {
            seq: 5001,
            ack: Some(1),
            data: b"GET",
            ..Seg::default()
        }),
        7,
    );
    let (seq, _, _, payload) = tcp_of(&out);
    assert_eq!(seq, 5001);
    assert!(
        payload.starts_with(b"PROXY TCP4 198.51.100.7 10.0.0.110 40020 80\r\n"),
        "{payload:?}"
    );
    assert!(payload.ends_with(b"GET"));
}

/// What the NIC says of the checksums replaces the path's own checks, never weakens them: a
/// header or segment the NIC found good is not summed again, one it found bad is a counted
/// drop even if the bytes add up, and without its word the path checks itself. (Any service
/// would do; this file has a director at hand.)
#[test]
fn the_nics_checksum_flags_stand_in_for_the_software_checks() {
    use rvs_core::{RxCheck, RxChecksums};
    let t = tables(ProxyProtocol::Off, false, vec![ip(LIP)]);
    let mut d = director(0, 1, 1024);
    let syn = |cport: u16| {
        tcp(
            FROM_CLIENT,
            ip(CLIENT),
            ip(VIP),
            64,
            cport,
            80,
            Seg {
                seq: 1,
                syn: true,
                ..Seg::default()
            },
        )
    };
    let nic = |ip: RxCheck, l4: RxCheck| RxChecksums { ip, l4 };
    let go = |d: &mut Director, f: Vec<u8>, rx: RxChecksums| {
        let mut fr = VecFrame::new(&f).with_rx_checksums(rx);
        d.process(&t, 0, &mut fr, 0)
    };
    use RxCheck::*;
    // Bad by the NIC's word: dropped, whatever the bytes say.
    assert_eq!(
        go(&mut d, syn(1), nic(Bad, Good)),
        Verdict::Drop(DropReason::Ipv4BadChecksum)
    );
    assert_eq!(
        go(&mut d, syn(2), nic(Good, Bad)),
        Verdict::Drop(DropReason::BadL4Checksum)
    );
    // A corrupted IPv4 header checksum: the software check catches it without the NIC's word.
    let mut broken = syn(3);
    broken[24] ^= 0xff;
    assert_eq!(
        go(&mut d, broken.clone(), nic(Unknown, Unknown)),
        Verdict::Drop(DropReason::Ipv4BadChecksum)
    );
    // A corrupted TCP checksum likewise.
    let mut torn = syn(4);
    torn[50] ^= 0xff;
    assert_eq!(
        go(&mut d, torn, nic(Unknown, Unknown)),
        Verdict::Drop(DropReason::BadL4Checksum)
    );
    // Good by the NIC's word, good bytes: forwarded.
    assert!(matches!(
        go(&mut d, syn(5), nic(Good, Good)),
        Verdict::Forward { .. }
    ));
    assert!(matches!(
        go(&mut d, syn(6), nic(Unknown, Unknown)),
        Verdict::Forward { .. }
    ));
    assert_eq!(d.drops.get(DropReason::Ipv4BadChecksum), 2);
    assert_eq!(d.drops.get(DropReason::BadL4Checksum), 2);
}
