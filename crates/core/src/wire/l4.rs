//! Port rewriting shared by TCP, UDP and SCTP, which all carry the source and destination
//! ports in their first four bytes. The checksum is fixed incrementally when it is present
//! in the slice: a header quoted inside an ICMP error may be cut after eight bytes, and then
//! the ports change alone (as IPVS does). SCTP's CRC32c has no incremental form: callers
//! recompute it with [`super::sctp::fill_checksum`] once all rewrites are done.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{be16, proto, put16, sctp, tcp, udp};
use crate::checksum;

/// Source and destination port (the slice has at least 4 bytes).
#[inline]
pub fn ports(b: &[u8]) -> (u16, u16) {
    (be16(b, 0), be16(b, 2))
}

#[inline]
fn checksum_at(protocol: u8) -> Option<usize> {
    match protocol {
        proto::TCP => Some(tcp::CHECKSUM_AT),
        proto::UDP => Some(udp::CHECKSUM_AT),
        _ => None,
    }
}

#[inline]
fn update(protocol: u8, b: &mut [u8], f: impl Fn(u16) -> u16) {
    if let Some(at) = checksum_at(protocol) {
        if b.len() >= at + 2 {
            let c = f(be16(b, at));
            put16(b, at, c);
        }
    }
}

#[inline]
fn set_port(protocol: u8, b: &mut [u8], at: usize, port: u16) {
    let old = be16(b, at);
    if old == port {
        return;
    }
    put16(b, at, port);
    update(protocol, b, |c| {
        if protocol == proto::UDP {
            checksum::update_udp16(c, old, port)
        } else {
            checksum::update16(c, old, port)
        }
    });
}

#[inline]
pub fn set_src_port(protocol: u8, b: &mut [u8], port: u16) {
    set_port(protocol, b, 0, port);
}

#[inline]
pub fn set_dst_port(protocol: u8, b: &mut [u8], port: u16) {
    set_port(protocol, b, 2, port);
}

/// An IPv4 address of the pseudo-header changed from `old` to `new`.
#[inline]
pub fn pseudo_addr_changed_v4(protocol: u8, b: &mut [u8], old: Ipv4Addr, new: Ipv4Addr) {
    let (o, n) = (u32::from(old), u32::from(new));
    update(protocol, b, |c| {
        if protocol == proto::UDP {
            checksum::update_udp32(c, o, n)
        } else {
            checksum::update32(c, o, n)
        }
    });
}

/// An IPv6 address of the pseudo-header changed (UDP over IPv6 always has a checksum).
#[inline]
pub fn pseudo_addr_changed_v6(protocol: u8, b: &mut [u8], old: Ipv6Addr, new: Ipv6Addr) {
    let (o, n) = (old.octets(), new.octets());
    update(protocol, b, |c| checksum::update128(c, &o, &n));
}

/// [`nat_rewrite_summed`] over IPv4 (a UDP datagram without a checksum keeps none), the
/// address change from [`super::ipv4::Ipv4Packet::nat_rewrite_delta`].
#[inline(always)]
pub fn nat_rewrite_v4(protocol: u8, seg: &mut [u8], src: bool, port: u16, addr_delta: u32) {
    nat_rewrite_summed(protocol, seg, src, port, addr_delta, true);
}

/// NAT's transport rewrite: the source (`src`) or destination port becomes `port`, and the
/// checksum takes one incremental update for that and for the address's change in the
/// pseudo-header, summed beforehand (`addr_delta`: ~old + new over the address's 16-bit words,
/// unfolded, as IPv4's header rewrite or [`crate::checksum::words_delta128`] gives it): the
/// port and one fold. An IPv4 UDP datagram without a checksum (`udp_zero_ok`) keeps none;
/// SCTP's CRC32c is recomputed.
#[inline(always)]
pub fn nat_rewrite_summed(
    protocol: u8,
    seg: &mut [u8],
    src: bool,
    port: u16,
    addr_delta: u32,
    udp_zero_ok: bool,
) {
    let update = |c: u16, old_port: u16| {
        !crate::checksum::fold((!c) as u32 + addr_delta + (!old_port) as u32 + port as u32)
    };
    // TCP, the common case: the header is whole (the classifier checked), so one bounds check
    // covers every field touched.
    if protocol == proto::TCP {
        if let Some(h) = seg.first_chunk_mut::<{ super::tcp::MIN_HEADER_LEN }>() {
            let at = if src { 0 } else { 2 };
            let old_port = u16::from_be_bytes([h[at], h[at + 1]]);
            h[at..at + 2].copy_from_slice(&port.to_be_bytes());
            let k = super::tcp::CHECKSUM_AT;
            let c = update(u16::from_be_bytes([h[k], h[k + 1]]), old_port);
            h[k..k + 2].copy_from_slice(&c.to_be_bytes());
            return;
        }
    }
    rewrite_port(protocol, seg, src, port, udp_zero_ok, update);
}

/// The port rewrite both NAT forms share: the source (`src`) or destination port becomes
/// `port`, and the checksum becomes what `update` makes of it and the old port. SCTP's CRC32c
/// is recomputed instead; an IPv4 UDP datagram without a checksum (`udp_zero_ok`) keeps none,
/// and a UDP sum that comes to zero is sent as 0xffff.
#[inline(always)]
fn rewrite_port(
    protocol: u8,
    seg: &mut [u8],
    src: bool,
    port: u16,
    udp_zero_ok: bool,
    update: impl FnOnce(u16, u16) -> u16,
) {
    let at = if src { 0 } else { 2 };
    let old_port = u16::from_be_bytes([seg[at], seg[at + 1]]);
    seg[at..at + 2].copy_from_slice(&port.to_be_bytes());
    let csum_at = match protocol {
        proto::TCP => super::tcp::CHECKSUM_AT,
        proto::UDP => super::udp::CHECKSUM_AT,
        _ => return finish(protocol, seg),
    };
    let c = u16::from_be_bytes([seg[csum_at], seg[csum_at + 1]]);
    if protocol == proto::UDP && c == 0 && udp_zero_ok {
        return; // IPv4 UDP without a checksum stays without one
    }
    let mut c = update(c, old_port);
    if protocol == proto::UDP && c == 0 {
        c = 0xffff;
    }
    seg[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());
}

/// Recomputes what cannot be updated incrementally (SCTP's CRC32c), after all rewrites.
#[inline]
pub fn finish(protocol: u8, b: &mut [u8]) {
    if protocol == proto::SCTP && b.len() >= sctp::HEADER_LEN {
        sctp::fill_checksum(b);
    }
}
