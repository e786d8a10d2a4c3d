//! FullNAT (`-b`, DPVS's most used mode): both addresses rewritten. A client's packet goes
//! from `client:cport -> vip:vport` to `laddr:lport -> rip:rport`, a server's reply back from
//! `rip:rport -> laddr:lport` to `vip:vport -> client:cport`; the real server needs no route
//! to the clients and no VIP, only a route to the local address.
//!
//! The client's address reaches the server, when the service asks for it, by:
//! - the PROXY protocol (v1 or v2): the header goes in front of the client's first byte
//!   (sequence number `isn`), again whenever a segment starting there is retransmitted, and
//!   every later byte of the client's stream is `proxy_len` further on: the client's sequence
//!   numbers are shifted toward the server, the server's acknowledgements (and SACK blocks)
//!   back toward the client, for the whole connection;
//! - TOA: the client's address and port in a TCP option (kind 254) of the SYN and of the
//!   segments that start the client's stream (the handshake's ACK, the first data), where
//!   the header has room for it; the Linux `toa` module reads it there.
//!
//! Both grow the client's first segments, so the MSS the server announces in its SYN-ACK is
//! lowered by as much. A segment that grows is rebuilt (lengths, checksum from scratch);
//! every other one takes one incremental checksum update for the addresses, the ports and
//! the shifted sequence or acknowledgement number.

use std::net::SocketAddr;

use super::super::family::{Family, Frag, IpInfo};
use super::super::flow::{route, to_real, via};
use super::super::icmp::finish_icmp;
use super::super::{Director, Pkt, Verdict};
use super::Quoted;
use crate::conn::{Conn, CONN_CLIENT_VIA_GW, CONN_PROXY_V2, CONN_TOA};
use crate::drop::DropReason;
use crate::frame::Frame;
use crate::tables::Tables;
use crate::wire::{be32, l4, proto, proxy, put32, tcp};

/// The longest TCP header (data offset 15).
const TCP_MAX_HEADER: usize = 60;

/// Is `a` after `b` in sequence space (RFC 1982 serial arithmetic)?
#[inline]
fn after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// A server-side sequence number (an acknowledgement, a SACK edge) as the client knows it:
/// the PROXY header's `len` bytes at `isn` never came from the client.
#[inline]
pub(in crate::path) fn unshift(x: u32, isn: u32, len: u8) -> u32 {
    let d = x.wrapping_sub(isn) as i32;
    if d <= 0 {
        x
    } else if d <= len as i32 {
        isn
    } else {
        x.wrapping_sub(len as u32)
    }
}

/// How much the client's first segments may grow: what the MSS announced to it gives up.
fn growth<A: Family>(c: &Conn<A>) -> u16 {
    let toa = if c.flags & CONN_TOA == 0 {
        0
    } else if A::HEADER_LEN == 20 {
        proxy::TOA_LEN_V4
    } else {
        proxy::TOA_LEN_V6
    };
    (c.proxy_len as usize + toa) as u16
}

impl Director {
    /// A client's packet: `client:cport -> vip:vport` becomes `laddr:lport -> rip:rport`.
    /// Out of line: inlined, it made the dispatch of every method bigger (callgrind: +35
    /// instructions per NAT and DR packet).
    #[inline(never)]
    pub(in crate::path) fn fullnat_in<A: Family, F: Frame>(
        &mut self,
        t: &Tables,
        f: &mut F,
        p: &Pkt<A>,
        c: &Conn<A>,
    ) -> Verdict {
        let (l2, ip) = (p.l2, p.ip);
        let mut word = None;
        if ip.proto == proto::TCP && (c.proxy_len != 0 || c.flags & CONN_TOA != 0) {
            let th = &f.data()[l2 + ip.l4..l2 + ip.end];
            let flags = th[13];
            let seq = be32(th, 4);
            let doff = (th[12] >> 4) as usize * 4;
            let payload = ip.end - ip.l4 - doff;
            let starts = flags & (tcp::flags::SYN | tcp::flags::RST) == 0 && seq == c.isn;
            let proxy = c.proxy_len != 0 && starts && payload > 0;
            let toa = c.flags & CONN_TOA != 0
                && (flags & (tcp::flags::SYN | tcp::flags::ACK | tcp::flags::RST) == tcp::flags::SYN
                    || (starts && flags & tcp::flags::ACK != 0));
            if proxy || toa {
                return self.fullnat_grow(t, f, p, c, proxy, toa);
            }
            if c.proxy_len != 0 && flags & tcp::flags::SYN == 0 && after(seq, c.isn) {
                word = Some((4, seq.wrapping_add(c.proxy_len as u32)));
            }
        }
        let b = f.data_mut();
        rewrite(b, l2, &ip, (c.laddr, c.lport), (c.raddr, c.rport), word);
        to_real(t, b, c)
    }

    /// A client's segment that carries the PROXY header (`proxy`) or a TOA option (`toa`)
    /// from here on: grown, rewritten and checksummed again.
    #[cold]
    #[inline(never)]
    fn fullnat_grow<A: Family, F: Frame>(
        &mut self,
        t: &Tables,
        f: &mut F,
        p: &Pkt<A>,
        c: &Conn<A>,
        proxy: bool,
        toa: bool,
    ) -> Verdict {
        let (l2, ip) = (p.l2, p.ip);
        // A fragment's checksum covers bytes in other frames: it cannot be recomputed.
        if ip.fragment != Frag::Whole {
            return Verdict::Drop(DropReason::Fragment);
        }
        let client = SocketAddr::new(c.client.ip(), c.cport);
        let mut hdr = [0u8; proxy::MAX_LEN];
        let plen = if proxy {
            let dst = SocketAddr::new(c.vaddr.ip(), c.vport);
            proxy::write_header(c.flags & CONN_PROXY_V2 != 0, client, dst, &mut hdr)
        } else {
            0
        };
        let th_at = l2 + ip.l4;
        let doff = (f.data()[th_at + 12] >> 4) as usize * 4;
        let mut opt = [0u8; proxy::TOA_LEN_V6];
        let mut tlen = 0;
        if toa {
            let need = if client.is_ipv4() {
                proxy::TOA_LEN_V4
            } else {
                proxy::TOA_LEN_V6
            };
            if doff + need <= TCP_MAX_HEADER {
                tlen = proxy::write_toa(client, &mut opt);
            } else {
                self.stats.toa_no_room += 1;
            }
        }
        let grow = plen + tlen;
        if grow == 0 {
            let b = f.data_mut();
            rewrite(b, l2, &ip, (c.laddr, c.lport), (c.raddr, c.rport), None);
            return to_real(t, b, c);
        }
        // Ethernet padding after the packet goes first: the packet grows into its place.
        let end = l2 + ip.end;
        let pad = f.data().len() - end;
        if !f.trim(pad) || !f.append(grow) {
            return Verdict::Drop(DropReason::NoTailroom);
        }
        let b = f.data_mut();
        let data_at = th_at + doff;
        b.copy_within(data_at..end, data_at + grow);
        b[data_at..data_at + tlen].copy_from_slice(&opt[..tlen]);
        b[data_at + tlen..data_at + grow].copy_from_slice(&hdr[..plen]);
        b[th_at + 12] = (((doff + tlen) / 4) as u8) << 4 | (b[th_at + 12] & 0x0f);
        b[th_at..th_at + 2].copy_from_slice(&c.lport.to_be_bytes());
        b[th_at + 2..th_at + 4].copy_from_slice(&c.rport.to_be_bytes());
        let iph = &mut b[l2..];
        A::set_src(iph, c.laddr);
        A::set_dst(iph, c.raddr);
        A::decrement_ttl(iph);
        A::set_packet_len(iph, ip.end + grow);
        A::fill_l4_checksum(proto::TCP, &mut b[th_at..end + grow], c.laddr, c.raddr);
        self.stats.proxy_headers += proxy as u64;
        self.stats.toa_options += (tlen != 0) as u64;
        to_real(t, b, c)
    }
}

/// A real server's reply: `rip:rport -> laddr:lport` becomes `vip:vport -> client:cport`,
/// its acknowledgement and SACK blocks moved back over the PROXY header, the MSS of its
/// SYN-ACK lowered by what the client's first segments grow by. Out of line, as inbound.
#[inline(never)]
pub(in crate::path) fn outbound<A: Family>(t: &Tables, b: &mut [u8], p: &Pkt<A>, c: &Conn<A>) -> Verdict {
    let (l2, ip) = (p.l2, p.ip);
    let mut word = None;
    if ip.proto == proto::TCP && (c.proxy_len != 0 || c.flags & CONN_TOA != 0) {
        let th = &mut b[l2 + ip.l4..l2 + ip.end];
        let flags = th[13];
        let doff = (th[12] >> 4) as usize * 4;
        if doff > tcp::MIN_HEADER_LEN && doff <= th.len() {
            let syn_ack = flags & (tcp::flags::SYN | tcp::flags::ACK) == tcp::flags::SYN | tcp::flags::ACK;
            options(th, doff, c.isn, c.proxy_len, if syn_ack { growth(c) } else { 0 });
        }
        if c.proxy_len != 0 && flags & tcp::flags::ACK != 0 {
            let ack = be32(th, 8);
            let new = unshift(ack, c.isn, c.proxy_len);
            if new != ack {
                word = Some((8, new));
            }
        }
    }
    rewrite(b, l2, &ip, (c.vaddr, c.vport), (c.client, c.cport), word);
    via(
        t,
        b,
        c.client_port,
        c.flags & CONN_CLIENT_VIA_GW != 0,
        c.client.ip(),
    )
}

/// Walks a reply's TCP options: SACK edges moved back over the PROXY header, the MSS lowered
/// by `clamp`; each change updates the checksum.
fn options(th: &mut [u8], doff: usize, isn: u32, proxy_len: u8, clamp: u16) {
    let mut i = tcp::MIN_HEADER_LEN;
    while i < doff {
        let kind = th[i];
        if kind == 0 {
            break;
        }
        if kind == 1 {
            i += 1;
            continue;
        }
        let Some(&len) = th.get(i + 1) else { break };
        let len = len as usize;
        if len < 2 || i + len > doff {
            break;
        }
        match kind {
            // MSS
            2 if len == 4 && clamp != 0 => {
                let old = u16::from_be_bytes([th[i + 2], th[i + 3]]);
                let new = old.saturating_sub(clamp).max(64);
                if new != old {
                    th[i + 2..i + 4].copy_from_slice(&new.to_be_bytes());
                    fix(th, &[old], &[new]);
                }
            }
            // SACK: pairs of edges
            5 if proxy_len != 0 => {
                let mut e = i + 2;
                while e + 4 <= i + len {
                    let old = be32(th, e);
                    let new = unshift(old, isn, proxy_len);
                    if new != old {
                        put32(th, e, new);
                        fix(th, &words32(old), &words32(new));
                    }
                    e += 4;
                }
            }
            _ => {}
        }
        i += len;
    }
}

fn words32(v: u32) -> [u16; 2] {
    [(v >> 16) as u16, v as u16]
}

/// One incremental update of a TCP header's checksum.
fn fix(th: &mut [u8], old: &[u16], new: &[u16]) {
    let at = tcp::CHECKSUM_AT;
    let c = u16::from_be_bytes([th[at], th[at + 1]]);
    let c = crate::checksum::update_words(c, old, new);
    th[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

/// Both addresses and both ports (and a sequence or acknowledgement number, `word`: its
/// offset in the TCP header and its new value) rewritten, the TTL decremented; the transport
/// checksum takes one incremental update for all of it (RFC 1624).
#[inline(always)]
pub(in crate::path) fn rewrite<A: Family>(
    b: &mut [u8],
    l2: usize,
    ip: &IpInfo<A>,
    (src, sport): (A, u16),
    (dst, dport): (A, u16),
    word: Option<(usize, u32)>,
) {
    A::full_nat_header(&mut b[l2..], src, dst);
    let seg = &mut b[l2 + ip.l4..l2 + ip.end];
    let (osp, odp) = l4::ports(seg);
    seg[0..2].copy_from_slice(&sport.to_be_bytes());
    seg[2..4].copy_from_slice(&dport.to_be_bytes());
    let at = match ip.proto {
        proto::TCP => tcp::CHECKSUM_AT,
        proto::UDP => crate::wire::udp::CHECKSUM_AT,
        _ => return l4::finish(ip.proto, seg),
    };
    let c = u16::from_be_bytes([seg[at], seg[at + 1]]);
    if ip.proto == proto::UDP && c == 0 && A::HEADER_LEN == 20 {
        return; // IPv4 UDP without a checksum stays without one
    }
    // RFC 1624 over every changed word, summed as they come (what `update_words` sums).
    let ((os, n), (od, _)) = (ip.src.words(), ip.dst.words());
    let ((ns, _), (nd, _)) = (src.words(), dst.words());
    let mut acc = (!c) as u32;
    let mut add = |old: u16, new: u16| acc += (!old) as u32 + new as u32;
    for i in 0..n {
        add(os[i], ns[i]);
        add(od[i], nd[i]);
    }
    add(osp, sport);
    add(odp, dport);
    if let Some((off, v)) = word {
        let (o, w) = (words32(be32(seg, off)), words32(v));
        put32(seg, off, v);
        add(o[0], w[0]);
        add(o[1], w[1]);
    }
    let mut c = !crate::checksum::fold(acc);
    if ip.proto == proto::UDP && c == 0 {
        c = 0xffff;
    }
    seg[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

/// An ICMP error about a FullNAT connection, translated for the other side:
/// - from the server side about a packet sent to the real server (quoted `laddr:lport ->
///   rip:rport`), `to_client`: to the client from the VIP, quoting the packet as the client
///   sent it (`client:cport -> vip:vport`, its sequence number unshifted);
/// - sent to the VIP about a reply (quoted `vip:vport -> client:cport`): to the real server
///   from the local address, quoting the reply as the server sent it (`rip:rport ->
///   laddr:lport`).
pub(in crate::path) fn icmp<A: Family>(
    t: &Tables,
    b: &mut [u8],
    p: &Pkt<A>,
    q: &Quoted<A>,
    c: &Conn<A>,
    to_client: bool,
) -> Verdict {
    if to_client {
        icmp_translate(
            t,
            b,
            p,
            q,
            (c.vaddr, c.client),
            (c.client, c.cport),
            (c.vaddr, c.vport),
            c,
            true,
        )
    } else {
        icmp_translate(
            t,
            b,
            p,
            q,
            (c.laddr, c.raddr),
            (c.raddr, c.rport),
            (c.laddr, c.lport),
            c,
            false,
        )
    }
}

/// The outer header becomes `outer` (source, destination), the quoted packet's source and
/// destination `qsrc` and `qdst`; the quoted transport checksum is updated where it was
/// quoted, the ICMP checksum recomputed.
#[allow(clippy::too_many_arguments)]
fn icmp_translate<A: Family>(
    t: &Tables,
    b: &mut [u8],
    p: &Pkt<A>,
    q: &Quoted<A>,
    (osrc, odst): (A, A),
    (qs, qsp): (A, u16),
    (qd, qdp): (A, u16),
    c: &Conn<A>,
    to_client: bool,
) -> Verdict {
    let (l2, ip) = (p.l2, &p.ip);
    A::set_src(&mut b[l2..], osrc);
    A::set_dst(&mut b[l2..], odst);
    A::decrement_ttl(&mut b[l2..]);
    let quoted = &mut b[q.at..q.end];
    A::set_src(quoted, qs);
    A::set_dst(quoted, qd);
    let seg = &mut quoted[q.ip.l4..];
    A::pseudo_changed(q.ip.proto, seg, q.ip.src, qs);
    A::pseudo_changed(q.ip.proto, seg, q.ip.dst, qd);
    l4::set_src_port(q.ip.proto, seg, qsp);
    l4::set_dst_port(q.ip.proto, seg, qdp);
    // The client's sequence number, as it knows it.
    if to_client && q.ip.proto == proto::TCP && c.proxy_len != 0 && seg.len() >= 8 {
        let old = be32(seg, 4);
        let new = unshift(old, c.isn, c.proxy_len);
        put32(seg, 4, new);
        if seg.len() >= tcp::CHECKSUM_AT + 2 {
            fix(seg, &words32(old), &words32(new));
        }
    }
    l4::finish(q.ip.proto, seg);
    finish_icmp::<A>(&mut b[l2 + ip.l4..q.end], osrc, odst);
    route(t, b, odst.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unshift_maps_the_header_to_its_start() {
        let isn = 1000;
        assert_eq!(unshift(900, isn, 28), 900);
        assert_eq!(unshift(1000, isn, 28), 1000);
        assert_eq!(unshift(1010, isn, 28), 1000);
        assert_eq!(unshift(1028, isn, 28), 1000);
        assert_eq!(unshift(1029, isn, 28), 1001);
        // Across the wrap.
        assert_eq!(unshift(20, u32::MAX - 9, 28), 20u32.wrapping_sub(28));
        assert!(after(5, u32::MAX) && !after(u32::MAX, 5));
    }
}
