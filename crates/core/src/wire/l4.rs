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

/// Recomputes what cannot be updated incrementally (SCTP's CRC32c), after all rewrites.
#[inline]
pub fn finish(protocol: u8, b: &mut [u8]) {
    if protocol == proto::SCTP && b.len() >= sctp::HEADER_LEN {
        sctp::fill_checksum(b);
    }
}
