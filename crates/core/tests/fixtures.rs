//! The data path as a table of fixtures, in the Katran manner: {description, input frame,
//! expected verdict, expected output frame}. Cases run in order against one director, so
//! they also walk connection state. Expected frames are built with etherparse, and every output
//! is re-parsed by etherparse, which must agree on lengths and checksums.

mod support;

use etherparse::{
    icmpv4::DestUnreachableHeader, Icmpv4Type, Icmpv6Type, IpNumber, Ipv4Header, PacketBuilder,
};
use rvs_core::{DropReason as D, Frame, VecFrame, Verdict};
use support::*;

const VIP: [u8; 4] = [10, 0, 0, 100];
const VIP_DR: [u8; 4] = [10, 0, 0, 101];
const VIP_TUN: [u8; 4] = [10, 0, 0, 102];
const VIP_P: [u8; 4] = [10, 0, 0, 103];
const RS2: [u8; 4] = [192, 168, 1, 2];
const RS3: [u8; 4] = [192, 168, 1, 3];
const RS4: [u8; 4] = [192, 168, 1, 4];
const RS5: [u8; 4] = [192, 168, 1, 5];
const RS6: [u8; 4] = [192, 168, 1, 6];
const RS7: [u8; 4] = [192, 168, 1, 7];
const DIR0: [u8; 4] = [203, 0, 113, 1];
const DIR1: [u8; 4] = [192, 168, 1, 1];
const VIP6: &str = "2001:db8::100";
const VIP6_TUN: &str = "2001:db8::102";
const RS6_NAT: &str = "2001:db8:1::2";
const RS6_DR: &str = "2001:db8:1::4";
const RS6_TUN: &str = "2001:db8:1::5";

struct Case {
    desc: &'static str,
    port: u16,
    /// Milliseconds since the start of the run.
    at: u64,
    input: Vec<u8>,
    verdict: Verdict,
    /// The frame after processing (for Forward, with the next hop's MAC filled in).
    output: Option<Vec<u8>>,
}

fn fwd(port: u16, next_hop: std::net::IpAddr) -> Verdict {
    Verdict::Forward { port, next_hop }
}

fn drop(r: D) -> Verdict {
    Verdict::Drop(r)
}

/// Back toward the clients' router.
const BACK0: L2 = L2 {
    src: P0_MAC,
    dst: GW_MAC,
    vlan: None,
};

fn clear_df(mut f: Vec<u8>) -> Vec<u8> {
    let (mut h, _) = Ipv4Header::from_slice(&f[14..]).unwrap();
    h.dont_fragment = false;
    h.header_checksum = h.calc_header_checksum();
    f[14..34].copy_from_slice(&h.to_bytes());
    f
}

fn zero_udp_checksum(mut f: Vec<u8>) -> Vec<u8> {
    f[40..42].fill(0);
    f
}

/// Bitwise CRC32c, written independently of the core's table-driven one.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn sctp4(l2: L2, src: [u8; 4], dst: [u8; 4], ttl: u8, sport: u16, dport: u16, chunk_type: u8) -> Vec<u8> {
    let mut s = vec![0u8; 12 + 20];
    s[0..2].copy_from_slice(&sport.to_be_bytes());
    s[2..4].copy_from_slice(&dport.to_be_bytes());
    s[12] = chunk_type;
    s[14..16].copy_from_slice(&20u16.to_be_bytes());
    let c = crc32c(&s);
    s[8..12].copy_from_slice(&c.to_le_bytes());
    let mut out = Vec::new();
    PacketBuilder::ethernet2(l2.src, l2.dst)
        .ipv4(src, dst, ttl)
        .write(&mut out, IpNumber(132), &s)
        .unwrap();
    out
}

fn arp(
    l2_dst: [u8; 6],
    l2_src: [u8; 6],
    op: u16,
    sha: [u8; 6],
    spa: [u8; 4],
    tha: [u8; 6],
    tpa: [u8; 4],
) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&l2_dst);
    f.extend_from_slice(&l2_src);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&sha);
    f.extend_from_slice(&spa);
    f.extend_from_slice(&tha);
    f.extend_from_slice(&tpa);
    f
}

fn raw_eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&P0_MAC);
    f.extend_from_slice(&GW_MAC);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A valid TCP SYN to the NAT VIP, then `edit` applied to its bytes.
fn broken(edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut f = tcp4(IN0, [198, 51, 100, 99], VIP, 64, 50000, 80, SYN, b"");
    edit(&mut f);
    f
}

fn fix_ip_checksum(f: &mut [u8]) {
    f[24..26].fill(0);
    let mut sum = 0u32;
    for c in f[14..34].chunks(2) {
        sum += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    f[24..26].copy_from_slice(&(!(sum as u16)).to_be_bytes());
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    let mut c = |desc, port, at, input, verdict, output| {
        v.push(Case {
            desc,
            port,
            at,
            input,
            verdict,
            output,
        })
    };

    // --- NAT, TCP, IPv4: the state walk, both directions ---
    c(
        "nat tcp4: client SYN is scheduled (rr: first server) and DNATed",
        0,
        0,
        tcp4(IN0, CLIENT, VIP, 64, 40000, 80, SYN, b""),
        fwd(1, ip4(RS2)),
        Some(tcp4(out(1, ip4(RS2)), CLIENT, RS2, 63, 40000, 8080, SYN, b"")),
    );
    c(
        "nat tcp4: SYN-ACK from the real server is SNATed to the VIP",
        1,
        1,
        tcp4(from_rs(ip4(RS2)), RS2, CLIENT, 64, 8080, 40000, SYNACK, b""),
        fwd(0, ip4(GW4)),
        Some(tcp4(out(0, ip4(GW4)), VIP, CLIENT, 63, 80, 40000, SYNACK, b"")),
    );
    c(
        "nat tcp4: client ACK completes the handshake",
        0,
        2,
        tcp4(IN0, CLIENT, VIP, 64, 40000, 80, ACK, b""),
        fwd(1, ip4(RS2)),
        Some(tcp4(out(1, ip4(RS2)), CLIENT, RS2, 63, 40000, 8080, ACK, b"")),
    );
    c(
        "nat tcp4: client data",
        0,
        3,
        tcp4(IN0, CLIENT, VIP, 64, 40000, 80, PSHACK, b"GET / HTTP/1.1\r\n\r\n"),
        fwd(1, ip4(RS2)),
        Some(tcp4(
            out(1, ip4(RS2)),
            CLIENT,
            RS2,
            63,
            40000,
            8080,
            PSHACK,
            b"GET / HTTP/1.1\r\n\r\n",
        )),
    );
    c(
        "nat tcp4: server data (odd length payload)",
        1,
        4,
        tcp4(
            from_rs(ip4(RS2)),
            RS2,
            CLIENT,
            64,
            8080,
            40000,
            PSHACK,
            b"HTTP/1.1 200 OK\r\n\r\nhi!",
        ),
        fwd(0, ip4(GW4)),
        Some(tcp4(
            out(0, ip4(GW4)),
            VIP,
            CLIENT,
            63,
            80,
            40000,
            PSHACK,
            b"HTTP/1.1 200 OK\r\n\r\nhi!",
        )),
    );
    c(
        "nat tcp4: second client is scheduled to the second server",
        0,
        5,
        tcp4(IN0, [198, 51, 100, 8], VIP, 64, 40001, 80, SYN, b""),
        fwd(1, ip4(RS3)),
        Some(tcp4(
            out(1, ip4(RS3)),
            [198, 51, 100, 8],
            RS3,
            63,
            40001,
            8080,
            SYN,
            b"",
        )),
    );
    c(
        "nat tcp4: a VLAN-tagged client keeps its tag (rr wraps to the first server)",
        0,
        6,
        tcp4(
            L2 {
                vlan: Some(100),
                ..IN0
            },
            [198, 51, 100, 9],
            VIP,
            64,
            40002,
            80,
            SYN,
            b"",
        ),
        fwd(1, ip4(RS2)),
        Some(tcp4(
            L2 {
                vlan: Some(100),
                ..out(1, ip4(RS2))
            },
            [198, 51, 100, 9],
            RS2,
            63,
            40002,
            8080,
            SYN,
            b"",
        )),
    );
    c(
        "nat tcp4: client FIN",
        0,
        10,
        tcp4(IN0, CLIENT, VIP, 64, 40000, 80, FINACK, b""),
        fwd(1, ip4(RS2)),
        Some(tcp4(out(1, ip4(RS2)), CLIENT, RS2, 63, 40000, 8080, FINACK, b"")),
    );
    c(
        "nat tcp4: server FIN",
        1,
        11,
        tcp4(from_rs(ip4(RS2)), RS2, CLIENT, 64, 8080, 40000, FINACK, b""),
        fwd(0, ip4(GW4)),
        Some(tcp4(out(0, ip4(GW4)), VIP, CLIENT, 63, 80, 40000, FINACK, b"")),
    );
    c(
        "nat tcp4: last ACK, TIME_WAIT",
        0,
        12,
        tcp4(IN0, CLIENT, VIP, 64, 40000, 80, ACK, b""),
        fwd(1, ip4(RS2)),
        Some(tcp4(out(1, ip4(RS2)), CLIENT, RS2, 63, 40000, 8080, ACK, b"")),
    );
    c(
        "tcp: a segment without SYN and without a connection is not scheduled",
        0,
        13,
        tcp4(IN0, [198, 51, 100, 50], VIP, 64, 45000, 80, ACK, b""),
        drop(D::NoConnNotInitial),
        None,
    );
    c(
        "nat tcp4: TTL 1 cannot be forwarded",
        0,
        14,
        tcp4(IN0, CLIENT, VIP, 1, 40000, 80, ACK, b""),
        drop(D::TtlExceeded),
        None,
    );

    // --- NAT, UDP ---
    c(
        "nat udp4: request DNATed with port mapping",
        0,
        20,
        udp4(IN0, CLIENT, VIP, 64, 44000, 53, b"query"),
        fwd(1, ip4(RS2)),
        Some(udp4(out(1, ip4(RS2)), CLIENT, RS2, 63, 44000, 5353, b"query")),
    );
    c(
        "nat udp4: reply SNATed",
        1,
        21,
        udp4(from_rs(ip4(RS2)), RS2, CLIENT, 64, 5353, 44000, b"answer"),
        fwd(0, ip4(GW4)),
        Some(udp4(out(0, ip4(GW4)), VIP, CLIENT, 63, 53, 44000, b"answer")),
    );
    c(
        "nat udp4: a zero (absent) UDP checksum stays zero",
        0,
        22,
        zero_udp_checksum(udp4(IN0, CLIENT, VIP, 64, 44001, 53, b"q2")),
        fwd(1, ip4(RS2)),
        Some(zero_udp_checksum(udp4(
            out(1, ip4(RS2)),
            CLIENT,
            RS2,
            63,
            44001,
            5353,
            b"q2",
        ))),
    );
    c(
        "nat udp4: a service whose only server is quiesced (weight 0) takes no new flow",
        0,
        23,
        udp4(IN0, CLIENT, [10, 0, 0, 104], 64, 44002, 53, b"q"),
        drop(D::NoRealServer),
        None,
    );

    // --- DR ---
    c(
        "dr tcp4: only the MACs change (IP packet untouched, TTL too)",
        0,
        30,
        tcp4(IN0, CLIENT, VIP_DR, 64, 40100, 80, SYN, b""),
        fwd(1, ip4(RS4)),
        Some(tcp4(out(1, ip4(RS4)), CLIENT, VIP_DR, 64, 40100, 80, SYN, b"")),
    );
    c(
        "dr tcp4: the client's ACK follows the connection",
        0,
        31,
        tcp4(IN0, CLIENT, VIP_DR, 64, 40100, 80, ACK, b"x"),
        fwd(1, ip4(RS4)),
        Some(tcp4(out(1, ip4(RS4)), CLIENT, VIP_DR, 64, 40100, 80, ACK, b"x")),
    );

    // --- TUN ---
    let syn = tcp4(IN0, CLIENT, VIP_TUN, 64, 40200, 80, SYN, b"");
    c(
        "tun tcp4: IPIP from the director's address, inner packet untouched, DF copied",
        0,
        40,
        syn.clone(),
        fwd(1, ip4(RS5)),
        Some(ipip4(out(1, ip4(RS5)), DIR1, RS5, &ip_of(&syn), true, 1)),
    );
    let big = tcp4(IN0, CLIENT, VIP_TUN, 64, 40200, 80, ACK, &[0x5a; 1450]);
    c(
        "tun tcp4: too big with DF set: ICMP fragmentation needed, MTU 1480, from the VIP",
        0,
        41,
        big.clone(),
        Verdict::Reply { port: 0 },
        Some(icmp4(
            BACK0,
            VIP_TUN,
            CLIENT,
            64,
            Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::FragmentationNeeded {
                next_hop_mtu: 1480,
            }),
            &ip_of(&big)[..548],
            false,
        )),
    );
    c(
        "tun tcp4: too big without DF: rvs does not fragment, counted",
        0,
        42,
        clear_df(big),
        drop(D::TunNeedsFragmentation),
        None,
    );
    let fits = tcp4(IN0, CLIENT, VIP_TUN, 64, 40200, 80, ACK, &[0x5a; 1440]);
    c(
        "tun tcp4: exactly the MTU once encapsulated is sent",
        0,
        43,
        fits.clone(),
        fwd(1, ip4(RS5)),
        Some(ipip4(out(1, ip4(RS5)), DIR1, RS5, &ip_of(&fits), true, 2)),
    );

    // --- Persistence (-p 300 -M 255.255.255.0) ---
    c(
        "persistence: first connection of a client is scheduled",
        0,
        50,
        tcp4(IN0, CLIENT, VIP_P, 64, 41000, 443, SYN, b""),
        fwd(1, ip4(RS6)),
        Some(tcp4(out(1, ip4(RS6)), CLIENT, RS6, 63, 41000, 443, SYN, b"")),
    );
    c(
        "persistence: the same client's next connection sticks to its server",
        0,
        51,
        tcp4(IN0, CLIENT, VIP_P, 64, 41001, 443, SYN, b""),
        fwd(1, ip4(RS6)),
        Some(tcp4(out(1, ip4(RS6)), CLIENT, RS6, 63, 41001, 443, SYN, b"")),
    );
    c(
        "persistence: a client of the same /24 shares the template",
        0,
        52,
        tcp4(IN0, [198, 51, 100, 200], VIP_P, 64, 41002, 443, SYN, b""),
        fwd(1, ip4(RS6)),
        Some(tcp4(
            out(1, ip4(RS6)),
            [198, 51, 100, 200],
            RS6,
            63,
            41002,
            443,
            SYN,
            b"",
        )),
    );
    c(
        "persistence: a client of another /24 is scheduled anew",
        0,
        53,
        tcp4(IN0, [198, 51, 101, 9], VIP_P, 64, 41003, 443, SYN, b""),
        fwd(1, ip4(RS7)),
        Some(tcp4(
            out(1, ip4(RS7)),
            [198, 51, 101, 9],
            RS7,
            63,
            41003,
            443,
            SYN,
            b"",
        )),
    );

    // --- IPv6 ---
    c(
        "nat tcp6: SYN DNATed, hop limit decremented",
        0,
        60,
        tcp6(IN0, CLIENT6, VIP6, 64, 42000, 80, SYN, b""),
        fwd(1, ip6(RS6_NAT)),
        Some(tcp6(
            out(1, ip6(RS6_NAT)),
            CLIENT6,
            RS6_NAT,
            63,
            42000,
            8080,
            SYN,
            b"",
        )),
    );
    c(
        "nat tcp6: reply SNATed",
        1,
        61,
        tcp6(
            from_rs(ip6(RS6_NAT)),
            RS6_NAT,
            CLIENT6,
            64,
            8080,
            42000,
            SYNACK,
            b"",
        ),
        fwd(0, ip6(GW6)),
        Some(tcp6(out(0, ip6(GW6)), VIP6, CLIENT6, 63, 80, 42000, SYNACK, b"")),
    );
    let fwd6 = tcp6(out(1, ip6(RS6_NAT)), CLIENT6, RS6_NAT, 63, 42000, 8080, SYN, b"");
    let sent6 = tcp6(out(1, ip6(RS6_NAT)), CLIENT6, VIP6, 63, 42000, 80, SYN, b"");
    let unreach6 = Icmpv6Type::DestinationUnreachable(etherparse::icmpv6::DestUnreachableCode::Port);
    c(
        "icmpv6 error from a NAT real server goes to the client, translated to the VIP",
        1,
        62,
        icmp6(
            from_rs(ip6(RS6_NAT)),
            RS6_NAT,
            CLIENT6,
            64,
            unreach6,
            &ip_of(&fwd6),
        ),
        fwd(0, ip6(GW6)),
        Some(icmp6(
            out(0, ip6(GW6)),
            VIP6,
            CLIENT6,
            63,
            unreach6,
            &ip_of(&sent6),
        )),
    );
    c(
        "dr udp6: only the MACs change",
        0,
        62,
        udp6(IN0, CLIENT6, VIP6, 64, 42100, 53, b"q6"),
        fwd(1, ip6(RS6_DR)),
        Some(udp6(out(1, ip6(RS6_DR)), CLIENT6, VIP6, 64, 42100, 53, b"q6")),
    );
    let syn6 = tcp6(IN0, CLIENT6, VIP6_TUN, 64, 42200, 80, SYN, b"");
    c(
        "tun tcp6: IPv6-in-IPv6 from the director's address",
        0,
        63,
        syn6.clone(),
        fwd(1, ip6(RS6_TUN)),
        Some(ip6ip6(
            out(1, ip6(RS6_TUN)),
            "2001:db8:1::1",
            RS6_TUN,
            &ip_of(&syn6),
        )),
    );
    let big6 = tcp6(IN0, CLIENT6, VIP6_TUN, 64, 42200, 80, ACK, &[0xa5; 1430]);
    c(
        "tun tcp6: too big: ICMPv6 packet too big, MTU 1460, quoting up to 1280 bytes",
        0,
        64,
        big6.clone(),
        Verdict::Reply { port: 0 },
        Some(icmp6(
            BACK0,
            VIP6_TUN,
            CLIENT6,
            64,
            Icmpv6Type::PacketTooBig { mtu: 1460 },
            &ip_of(&big6)[..1232],
        )),
    );

    // --- SCTP ---
    c(
        "nat sctp4: INIT DNATed with port mapping, CRC32c recomputed",
        0,
        70,
        sctp4(IN0, CLIENT, VIP, 64, 5000, 3868, 1),
        fwd(1, ip4(RS2)),
        Some(sctp4(out(1, ip4(RS2)), CLIENT, RS2, 63, 5000, 3869, 1)),
    );
    c(
        "nat sctp4: the server's reply",
        1,
        71,
        sctp4(from_rs(ip4(RS2)), RS2, CLIENT, 64, 3869, 5000, 2),
        fwd(0, ip4(GW4)),
        Some(sctp4(out(0, ip4(GW4)), VIP, CLIENT, 63, 3868, 5000, 2)),
    );
    c(
        "sctp: DATA without an association is not scheduled",
        0,
        72,
        sctp4(IN0, CLIENT, VIP, 64, 5001, 3868, 0),
        drop(D::NoConnNotInitial),
        None,
    );

    // --- ICMP ---
    c(
        "echo request to a VIP is answered",
        0,
        80,
        echo4(IN0, CLIENT, VIP, 64, false),
        Verdict::Reply { port: 0 },
        Some(echo4(BACK0, VIP, CLIENT, 64, true)),
    );
    c(
        "echo request to a director address is answered (TTL reset to 64)",
        0,
        81,
        echo4(IN0, CLIENT, DIR0, 17, false),
        Verdict::Reply { port: 0 },
        Some(echo4(BACK0, DIR0, CLIENT, 64, true)),
    );
    c(
        "icmpv6 echo request to a VIP is answered",
        0,
        82,
        echo6(IN0, CLIENT6, VIP6, 64, false),
        Verdict::Reply { port: 0 },
        Some(echo6(BACK0, VIP6, CLIENT6, 64, true)),
    );
    c(
        "echo request to an address that is not ours",
        0,
        83,
        echo4(IN0, CLIENT, [10, 9, 9, 9], 64, false),
        drop(D::NotForUs),
        None,
    );
    c(
        "echo reply to a VIP is not something to answer",
        0,
        84,
        echo4(IN0, CLIENT, VIP, 64, true),
        drop(D::IcmpUnhandled),
        None,
    );
    let to_rs = udp4(out(1, ip4(RS2)), CLIENT, RS2, 63, 44000, 5353, b"query");
    let as_sent = udp4(out(1, ip4(RS2)), CLIENT, VIP, 63, 44000, 53, b"query");
    c(
        "icmp error from a NAT real server goes to the client, translated to the VIP",
        1,
        85,
        icmp4(
            from_rs(ip4(RS2)),
            RS2,
            CLIENT,
            64,
            Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Port),
            &ip_of(&to_rs),
            false,
        ),
        fwd(0, ip4(GW4)),
        Some(icmp4(
            out(0, ip4(GW4)),
            VIP,
            CLIENT,
            63,
            Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Port),
            &ip_of(&as_sent),
            false,
        )),
    );
    let reply = tcp4(BACK0, VIP, [198, 51, 100, 8], 62, 80, 40001, SYNACK, b"");
    let reply_rs = tcp4(BACK0, RS3, [198, 51, 100, 8], 62, 8080, 40001, SYNACK, b"");
    c(
        "icmp error to a VIP about a reply goes to the real server, translated back",
        0,
        86,
        icmp4(
            IN0,
            GW4,
            VIP,
            64,
            Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Host),
            &ip_of(&reply)[..28],
            false,
        ),
        fwd(1, ip4(RS3)),
        Some(icmp4(
            out(1, ip4(RS3)),
            GW4,
            RS3,
            63,
            Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Host),
            &ip_of(&reply_rs)[..28],
            false,
        )),
    );
    let stranger = tcp4(BACK0, VIP, [198, 51, 100, 77], 62, 80, 1234, SYNACK, b"");
    c(
        "icmp error about an unknown flow",
        0,
        87,
        icmp4(
            IN0,
            GW4,
            VIP,
            64,
            Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Host),
            &ip_of(&stranger)[..28],
            false,
        ),
        drop(D::IcmpNoConn),
        None,
    );
    c(
        "icmp error quoting less than an IP header",
        0,
        88,
        icmp4(
            IN0,
            GW4,
            VIP,
            64,
            Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Host),
            &ip_of(&stranger)[..12],
            false,
        ),
        drop(D::IcmpQuoteTruncated),
        None,
    );

    // --- IPv6 neighbor discovery ---
    let (ns, ns_body) = nd(135, 0, VIP6, GW_MAC, 1);
    let (na, na_body) = nd(136, 0x60, VIP6, P0_MAC, 2);
    c(
        "neighbor solicitation for a v6 VIP is answered with the port's MAC",
        0,
        89,
        icmp6(IN0, GW6, VIP6, 255, ns, &ns_body),
        Verdict::Reply { port: 0 },
        Some(icmp6(BACK0, VIP6, GW6, 255, na, &na_body)),
    );
    let (ns_other, ns_other_body) = nd(135, 0, "2001:db8::999", GW_MAC, 1);
    c(
        "neighbor solicitation for someone else",
        0,
        89,
        icmp6(IN0, GW6, "2001:db8::999", 255, ns_other, &ns_other_body),
        drop(D::NdNotForUs),
        None,
    );
    c(
        "neighbor solicitation with a hop limit below 255 is not valid",
        0,
        89,
        icmp6(IN0, GW6, VIP6, 64, ns, &ns_body),
        drop(D::NdNotForUs),
        None,
    );
    let (adv, adv_body) = nd(136, 0x60, GW6, GW_MAC, 2);
    c(
        "neighbor advertisement goes to the neighbor table",
        0,
        89,
        icmp6(IN0, GW6, "2001:db8:ff::1", 255, adv, &adv_body),
        Verdict::Neighbor,
        None,
    );

    // --- ARP ---
    c(
        "arp request for a VIP is answered with the port's MAC",
        0,
        90,
        arp([0xff; 6], GW_MAC, 1, GW_MAC, GW4, [0; 6], VIP),
        Verdict::Reply { port: 0 },
        Some(arp(GW_MAC, P0_MAC, 2, P0_MAC, VIP, GW_MAC, GW4)),
    );
    c(
        "arp request for a director address is answered",
        1,
        91,
        arp([0xff; 6], neigh(ip4(RS2)), 1, neigh(ip4(RS2)), RS2, [0; 6], DIR1),
        Verdict::Reply { port: 1 },
        Some(arp(
            neigh(ip4(RS2)),
            P1_MAC,
            2,
            P1_MAC,
            DIR1,
            neigh(ip4(RS2)),
            RS2,
        )),
    );
    c(
        "arp request for someone else",
        0,
        92,
        arp([0xff; 6], GW_MAC, 1, GW_MAC, GW4, [0; 6], [203, 0, 113, 9]),
        drop(D::ArpNotForUs),
        None,
    );
    c(
        "arp reply goes to the neighbor table",
        1,
        93,
        arp(P1_MAC, neigh(ip4(RS2)), 2, neigh(ip4(RS2)), RS2, P1_MAC, DIR1),
        Verdict::Neighbor,
        None,
    );
    c(
        "arp for IPv6-sized addresses is unsupported",
        0,
        94,
        {
            let mut f = arp([0xff; 6], GW_MAC, 1, GW_MAC, GW4, [0; 6], VIP);
            f[19] = 16;
            f
        },
        drop(D::ArpUnsupported),
        None,
    );
    c(
        "arp truncated",
        0,
        95,
        arp([0xff; 6], GW_MAC, 1, GW_MAC, GW4, [0; 6], VIP)[..30].to_vec(),
        drop(D::ArpTruncated),
        None,
    );

    // --- Malformed frames: every layer, each with its reason ---
    c("empty frame", 0, 100, Vec::new(), drop(D::EthTruncated), None);
    c(
        "shorter than an Ethernet header",
        0,
        100,
        vec![0; 13],
        drop(D::EthTruncated),
        None,
    );
    c(
        "VLAN tag cut short",
        0,
        100,
        {
            let mut f = raw_eth(0x8100, &[0x00]);
            f.truncate(16);
            f
        },
        drop(D::VlanTruncated),
        None,
    );
    c(
        "stacked VLAN tags",
        0,
        100,
        raw_eth(0x8100, &[0, 1, 0x81, 0, 0, 2, 0x08, 0]),
        drop(D::VlanStacked),
        None,
    );
    c(
        "unknown ethertype",
        0,
        100,
        raw_eth(0x88cc, &[0; 46]),
        drop(D::UnknownEthertype),
        None,
    );
    c(
        "IPv4 shorter than its header",
        0,
        100,
        broken(|f| f.truncate(14 + 12)),
        drop(D::Ipv4Truncated),
        None,
    );
    c(
        "IPv4 header length below 20",
        0,
        100,
        broken(|f| {
            f[14] = 0x44;
            fix_ip_checksum(f)
        }),
        drop(D::Ipv4BadIhl),
        None,
    );
    c(
        "IPv4 version not 4",
        0,
        100,
        broken(|f| f[14] = 0x55),
        drop(D::Ipv4BadVersion),
        None,
    );
    c(
        "IPv4 total length beyond the frame",
        0,
        100,
        broken(|f| {
            f[17] += 10;
            fix_ip_checksum(f)
        }),
        drop(D::Ipv4TotalLenBeyondFrame),
        None,
    );
    c(
        "IPv4 total length below the header",
        0,
        100,
        broken(|f| {
            f[16] = 0;
            f[17] = 12;
            fix_ip_checksum(f)
        }),
        drop(D::Ipv4BadTotalLen),
        None,
    );
    c(
        "IPv4 bad header checksum",
        0,
        100,
        broken(|f| f[24] ^= 0xff),
        drop(D::Ipv4BadChecksum),
        None,
    );
    c(
        "IPv4 first fragment (more fragments) to a port without a service",
        0,
        100,
        broken(|f| {
            f[20] |= 0x20;
            f[37] = 8; // destination port 8
            fix_ip_checksum(f)
        }),
        drop(D::NoService),
        None,
    );
    c(
        "IPv4 non-first fragment before its first: held",
        0,
        100,
        broken(|f| {
            f[21] = 0x10;
            f[18..20].copy_from_slice(&[0xbe, 0xef]); // another datagram than the case above
            fix_ip_checksum(f)
        }),
        Verdict::Held,
        None,
    );
    c(
        "IPv4 ICMP fragment: not followed",
        0,
        100,
        {
            let mut f = echo4(IN0, CLIENT, VIP, 64, false);
            f[20] |= 0x20;
            fix_ip_checksum(&mut f);
            f
        },
        drop(D::Fragment),
        None,
    );
    c(
        "TCP truncated",
        0,
        100,
        broken(|f| {
            f.truncate(14 + 20 + 10);
            f[17] = 30;
            fix_ip_checksum(f)
        }),
        drop(D::TcpTruncated),
        None,
    );
    c(
        "TCP data offset below 5",
        0,
        100,
        broken(|f| f[14 + 20 + 12] = 0x40),
        drop(D::TcpBadDataOffset),
        None,
    );
    c(
        "TCP data offset past the segment",
        0,
        100,
        broken(|f| f[14 + 20 + 12] = 0xf0),
        drop(D::TcpBadDataOffset),
        None,
    );
    c(
        "UDP truncated",
        0,
        100,
        {
            let mut f = udp4(IN0, CLIENT, VIP, 64, 1, 53, b"");
            f.truncate(14 + 20 + 4);
            f[17] = 24;
            fix_ip_checksum(&mut f);
            f
        },
        drop(D::UdpTruncated),
        None,
    );
    c(
        "UDP length beyond the packet",
        0,
        100,
        {
            let mut f = udp4(IN0, CLIENT, VIP, 64, 1, 53, b"ab");
            f[14 + 20 + 5] = 40;
            f
        },
        drop(D::UdpBadLength),
        None,
    );
    c(
        "IPv6 shorter than its header",
        0,
        100,
        {
            let mut f = tcp6(IN0, CLIENT6, VIP6, 64, 1, 80, SYN, b"");
            f.truncate(14 + 30);
            f
        },
        drop(D::Ipv6Truncated),
        None,
    );
    c(
        "IPv6 payload length beyond the frame",
        0,
        100,
        {
            let mut f = tcp6(IN0, CLIENT6, VIP6, 64, 1, 80, SYN, b"");
            f[19] += 8;
            f
        },
        drop(D::Ipv6PayloadLenBeyondFrame),
        None,
    );
    c(
        "IPv6 first fragment to a port without a service",
        0,
        100,
        {
            let mut f = tcp6(IN0, CLIENT6, VIP6, 64, 1, 80, SYN, b"");
            let mut tcp = f[54..].to_vec();
            f.truncate(54);
            f[20] = 44;
            // Offset 0, more fragments: a first fragment (of a SYN to a port without a
            // service; an atomic fragment, without "more", would be a whole packet).
            f.extend_from_slice(&[6, 0, 0, 1, 0, 0, 0, 1]);
            tcp[2..4].copy_from_slice(&8u16.to_be_bytes());
            f.extend_from_slice(&tcp);
            let pl = (f.len() - 54) as u16;
            f[18..20].copy_from_slice(&pl.to_be_bytes());
            f
        },
        drop(D::NoService),
        None,
    );
    c(
        "ICMP shorter than its header",
        0,
        100,
        {
            let mut f = echo4(IN0, CLIENT, VIP, 64, false);
            f.truncate(14 + 20 + 4);
            f[17] = 24;
            fix_ip_checksum(&mut f);
            f
        },
        drop(D::IcmpTruncated),
        None,
    );
    c(
        "a protocol no service uses (GRE)",
        0,
        100,
        {
            let mut f = broken(|_| {});
            f[23] = 47;
            fix_ip_checksum(&mut f);
            f
        },
        drop(D::UnsupportedProtocol),
        None,
    );
    c(
        "a VIP port without a service",
        0,
        100,
        tcp4(IN0, CLIENT, VIP, 64, 40000, 81, SYN, b""),
        drop(D::NoService),
        None,
    );
    c(
        "an address that is neither a VIP nor a tracked reply",
        0,
        100,
        tcp4(IN0, CLIENT, [10, 9, 9, 9], 64, 40000, 80, SYN, b""),
        drop(D::NotForUs),
        None,
    );

    // --- What would make a connection is checked first ---
    for (desc, src) in [
        (
            "a SYN from the VIP itself (source = destination) is a martian",
            VIP,
        ),
        ("a SYN from a director address is a martian", [203, 0, 113, 1]),
        ("a SYN from 127.0.0.1 is a martian", [127, 0, 0, 1]),
        ("a SYN from 0.0.0.0 is a martian", [0, 0, 0, 0]),
        ("a SYN from a multicast address is a martian", [224, 1, 2, 3]),
        (
            "a SYN from the broadcast address is a martian",
            [255, 255, 255, 255],
        ),
    ] {
        c(
            desc,
            0,
            100,
            tcp4(IN0, src, VIP, 64, 40100, 80, SYN, b""),
            drop(D::MartianSource),
            None,
        );
    }
    c(
        "a SYN with a bad TCP checksum makes no connection",
        0,
        100,
        broken(|f| {
            let at = 14 + 20 + 16;
            f[at] ^= 0x5a;
        }),
        drop(D::BadL4Checksum),
        None,
    );
    c(
        "a UDP datagram with a bad checksum makes no connection",
        0,
        100,
        {
            let mut f = udp4(IN0, [198, 51, 100, 98], VIP, 64, 45000, 53, b"query");
            let at = 14 + 20 + 6;
            f[at] ^= 0x5a;
            f
        },
        drop(D::BadL4Checksum),
        None,
    );
    c(
        "an IPv6 SYN from ::1 is a martian",
        0,
        100,
        tcp6(IN0, "::1", VIP6, 64, 40101, 80, SYN, b""),
        drop(D::MartianSource),
        None,
    );

    // --- Expiry: TIME_WAIT (120 s) ends the first NAT connection ---
    c(
        "after TIME_WAIT expires, the connection is gone",
        0,
        12 + 121_000,
        tcp4(IN0, CLIENT, VIP, 64, 40000, 80, ACK, b""),
        drop(D::NoConnNotInitial),
        None,
    );
    v
}

#[test]
fn fixture_table() {
    let t = tables();
    let mut d = director();
    let cases = cases();
    let (mut checked, mut reparsed) = (0, 0);
    assert!(cases.len() >= 40, "{} cases", cases.len());
    for case in cases {
        d.advance(&t, case.at);
        let mut f = VecFrame::new(&case.input);
        let verdict = d.process(&t, case.port, &mut f, case.at);
        checked += 1;
        assert_eq!(verdict, case.verdict, "{}", case.desc);
        let mut got = f.data().to_vec();
        if let Verdict::Forward { next_hop, .. } = verdict {
            got[0..6].copy_from_slice(&neigh(next_hop));
        }
        if let Some(want) = &case.output {
            assert_eq!(hex(&got), hex(want), "{}: output frame", case.desc);
        }
        if matches!(verdict, Verdict::Forward { .. } | Verdict::Reply { .. }) && got[12..14] != [0x08, 0x06] {
            reparsed += 1;
            verify(&got);
        }
    }
    println!("{checked} fixtures, {reparsed} outputs re-parsed by etherparse");
    assert!(reparsed >= 30);
}

fn hex(b: &[u8]) -> String {
    b.chunks(16)
        .map(|l| l.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}
