//! NAT (masquerading, `-m`): the destination of a client's packet becomes the real server's
//! address and port, the source of the server's reply the VIP's; one fused incremental update
//! of each checksum (RFC 1624). ICMP errors about a NAT connection are translated both ways as
//! IPVS's `ip_vs_nat_icmp` does.

use super::super::family::{Family, IpInfo};
use super::super::flow::{route, to_real, via};
use super::super::icmp::finish_icmp;
use super::super::{Pkt, Verdict};
use super::Quoted;
use crate::conn::{Conn, CONN_CLIENT_VIA_GW};
use crate::tables::Tables;
use crate::wire::l4;

/// A client's packet: destination VIP:vport -> RIP:rport, toward the real server.
#[inline]
pub(in crate::path) fn inbound<A: Family>(t: &Tables, b: &mut [u8], p: &Pkt<A>, c: &Conn<A>) -> Verdict {
    rewrite_dst(b, p.l2, &p.ip, c.raddr, c.rport);
    to_real(t, b, c)
}

/// A real server's reply: source RIP:rport -> VIP:vport, toward the client.
#[inline]
pub(in crate::path) fn outbound<A: Family>(t: &Tables, b: &mut [u8], p: &Pkt<A>, c: &Conn<A>) -> Verdict {
    rewrite_src(b, p.l2, &p.ip, c.vaddr, c.vport);
    via(
        t,
        b,
        c.client_port,
        c.flags & CONN_CLIENT_VIA_GW != 0,
        c.client.ip(),
    )
}

/// A reply no connection remembers (a one-packet service's): from `vaddr:vport`, routed to
/// its destination.
pub(in crate::path) fn reply_from<A: Family>(
    t: &Tables,
    b: &mut [u8],
    p: &Pkt<A>,
    vaddr: A,
    vport: u16,
) -> Verdict {
    rewrite_src(b, p.l2, &p.ip, vaddr, vport);
    route(t, b, p.ip.dst.ip())
}

/// An error from the server side about a packet forwarded to a NAT real server (quoted
/// client -> RIP): to the client, as if from the VIP.
pub(in crate::path) fn icmp_to_client<A: Family>(
    t: &Tables,
    b: &mut [u8],
    p: &Pkt<A>,
    q: &Quoted<A>,
    c: &Conn<A>,
) -> Verdict {
    icmp_translate(t, b, p, q, c, true)
}

/// An error sent to a VIP about a reply (quoted VIP -> client): back to the real server,
/// addresses restored.
pub(in crate::path) fn icmp_to_real<A: Family>(
    t: &Tables,
    b: &mut [u8],
    p: &Pkt<A>,
    q: &Quoted<A>,
    c: &Conn<A>,
) -> Verdict {
    icmp_translate(t, b, p, q, c, false)
}

/// One translation, either way: toward the client the outer source and the quoted
/// destination become the VIP (and its port); toward the real server the outer destination and
/// the quoted source become the server's address (and port). The quoted transport checksum is
/// updated, the ICMP checksum recomputed.
fn icmp_translate<A: Family>(
    t: &Tables,
    b: &mut [u8],
    p: &Pkt<A>,
    q: &Quoted<A>,
    c: &Conn<A>,
    to_client: bool,
) -> Verdict {
    let (l2, ip) = (p.l2, &p.ip);
    let (addr, port, next) = if to_client {
        (c.vaddr, c.vport, c.client.ip())
    } else {
        (c.raddr, c.rport, c.raddr.ip())
    };
    let (outer_src, outer_dst) = if to_client { (addr, ip.dst) } else { (ip.src, addr) };
    if to_client {
        A::set_src(&mut b[l2..], addr);
    } else {
        A::set_dst(&mut b[l2..], addr);
    }
    A::decrement_ttl(&mut b[l2..]);
    // The quoted packet went the other way: its other side is the one rewritten.
    let quoted = &mut b[q.at..q.end];
    let old = if to_client {
        A::set_dst(quoted, addr);
        q.ip.dst
    } else {
        A::set_src(quoted, addr);
        q.ip.src
    };
    let seg = &mut quoted[q.ip.l4..];
    A::pseudo_changed(q.ip.proto, seg, old, addr);
    if to_client {
        l4::set_dst_port(q.ip.proto, seg, port);
    } else {
        l4::set_src_port(q.ip.proto, seg, port);
    }
    finish_icmp::<A>(&mut b[l2 + ip.l4..q.end], outer_src, outer_dst);
    route(t, b, next)
}

/// NAT inbound: destination VIP:vport -> RIP:rport, TTL decremented; each checksum gets one
/// incremental update covering every word that changed (RFC 1624).
pub(in crate::path) fn rewrite_dst<A: Family>(b: &mut [u8], l2: usize, ip: &IpInfo<A>, raddr: A, rport: u16) {
    nat(b, l2, ip, false, raddr, rport);
}

/// NAT outbound: source RIP:rport -> VIP:vport, TTL decremented.
pub(in crate::path) fn rewrite_src<A: Family>(b: &mut [u8], l2: usize, ip: &IpInfo<A>, vaddr: A, vport: u16) {
    nat(b, l2, ip, true, vaddr, vport);
}

fn nat<A: Family>(b: &mut [u8], l2: usize, ip: &IpInfo<A>, src: bool, addr: A, port: u16) {
    A::nat(b, l2, ip, src, addr, port);
}
