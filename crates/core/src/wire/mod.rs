//! Zero-copy views over packet headers, one file per header, in the smoltcp manner.
//!
//! The contract, written once: a view is made with `new_checked`, which verifies every length
//! the accessors rely on and returns the [`DropReason`] that names what is wrong. After that,
//! no getter or setter can panic. Setters that change a field covered by a checksum update that
//! checksum incrementally (RFC 1624), so a rewrite never re-reads the payload.
//! `payload()` borrows from the same buffer, so Ethernet -> IP -> L4 views chain over one frame.

pub mod arp;
pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod l4;
pub mod nd;
pub mod proxy;
pub mod sctp;
pub mod tcp;
pub mod udp;

pub use crate::drop::DropReason;

/// Result of a view constructor.
pub type WireResult<T> = Result<T, DropReason>;

/// IP protocol numbers rvs handles.
pub mod proto {
    pub const ICMP: u8 = 1;
    pub const IPIP: u8 = 4;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const IPV6: u8 = 41;
    pub const ICMPV6: u8 = 58;
    pub const SCTP: u8 = 132;
}

/// Ethertypes rvs handles.
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const VLAN: u16 = 0x8100;
    pub const QINQ: u16 = 0x88a8;
    pub const IPV6: u16 = 0x86dd;
}

#[inline]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline]
pub(crate) fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline]
pub(crate) fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}
