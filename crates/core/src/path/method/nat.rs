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
    let (l2, ip) = (p.l2, &p.ip);
    let (outer_src, outer_dst) = (c.vaddr, ip.dst);
    A::set_src(&mut b[l2..], outer_src);
    A::decrement_ttl(&mut b[l2..]);
    let quoted = &mut b[q.at..q.end];
    A::set_dst(quoted, c.vaddr);
    let seg = &mut quoted[q.ip.l4..];
    A::pseudo_changed(q.ip.proto, seg, q.ip.dst, c.vaddr);
    l4::set_dst_port(q.ip.proto, seg, c.vport);
    finish_icmp::<A>(&mut b[l2 + ip.l4..q.end], outer_src, outer_dst);
    route(t, b, c.client.ip())
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
    let (l2, ip) = (p.l2, &p.ip);
    let (outer_src, outer_dst) = (ip.src, c.raddr);
    A::set_dst(&mut b[l2..], outer_dst);
    A::decrement_ttl(&mut b[l2..]);
    let quoted = &mut b[q.at..q.end];
    A::set_src(quoted, c.raddr);
    let seg = &mut quoted[q.ip.l4..];
    A::pseudo_changed(q.ip.proto, seg, q.ip.src, c.raddr);
    l4::set_src_port(q.ip.proto, seg, c.rport);
    finish_icmp::<A>(&mut b[l2 + ip.l4..q.end], outer_src, outer_dst);
    route(t, b, c.raddr.ip())
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
    let old = if src { ip.src } else { ip.dst };
    A::nat_header(&mut b[l2..], src, old, addr);
    let ((ow, n), (nw, _)) = (old.words(), addr.words());
    l4::nat_rewrite(
        ip.proto,
        &mut b[l2 + ip.l4..l2 + ip.end],
        src,
        port,
        &ow[..n],
        &nw[..n],
        A::HEADER_LEN == 20,
    );
}
