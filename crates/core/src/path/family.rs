//! What differs between IPv4 and IPv6 on the forwarding path, behind one trait so that NAT,
//! TUN and ICMP translation are written once.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::checksum;
use crate::conn::{Addr, ConnTable};
use crate::drop::DropReason;
use crate::net::Network;
use crate::wire::icmp;
use crate::wire::ipv4::{self, Ipv4Packet};
use crate::wire::ipv6::{self, Ipv6Packet};
use crate::wire::{l4, proto};

use super::Director;

/// Whether a packet is a whole datagram or a fragment of one: the first (with the transport
/// header) or a later one. (The datagram's identification is read again, off the fast path,
/// when a fragment needs it: this struct is copied along the whole path.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Frag {
    Whole,
    First,
    Later,
}

impl Frag {
    /// From IPv4's flags-and-offset field, read once.
    #[inline]
    fn of_v4(flags_frag: u16) -> Frag {
        match flags_frag & (ipv4::FLAG_MF | ipv4::FRAG_OFFSET) {
            0 => Frag::Whole,
            f if f & ipv4::FRAG_OFFSET == 0 => Frag::First,
            _ => Frag::Later,
        }
    }

    fn of(fragment: bool, first: bool) -> Frag {
        match (fragment, first) {
            (false, _) => Frag::Whole,
            (true, true) => Frag::First,
            (true, false) => Frag::Later,
        }
    }
}

/// The IP layer of a frame, checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct IpInfo<A> {
    pub src: A,
    pub dst: A,
    pub proto: u8,
    /// Absolute offset of the upper-layer header.
    pub l4: usize,
    /// Absolute end of the IP packet (Ethernet padding excluded).
    pub end: usize,
    pub fragment: Frag,
    /// TTL or hop limit as received.
    pub ttl: u8,
}

pub(crate) trait Family: Addr {
    const ICMP: u8;
    /// Length of the header rvs writes (tunnel outer header, ICMP error header).
    const HEADER_LEN: usize;
    /// The most an ICMP error may carry in all (RFC 1812: 576; RFC 4443: 1280).
    const ICMP_ERROR_MAX: usize;

    fn parse(b: &[u8]) -> Result<IpInfo<Self>, DropReason> {
        Self::parse_checked(b, crate::frame::RxCheck::Unknown)
    }
    /// [`Family::parse`] with what the NIC said of the header checksum (IPv4's: skipped when
    /// the NIC found it good, a drop when it found it bad).
    fn parse_checked(b: &[u8], nic: crate::frame::RxCheck) -> Result<IpInfo<Self>, DropReason>;
    /// The identification of the datagram a fragment (its IP header at `ip`) belongs to.
    fn frag_id(ip: &[u8]) -> u32;
    /// Parses a header quoted in an ICMP error: the packet may be cut short, so only the header
    /// itself must be complete.
    fn parse_quoted(b: &[u8]) -> Option<IpInfo<Self>>;
    fn from_ip(a: IpAddr) -> Option<Self>;
    fn table(d: &mut Director) -> &mut ConnTable<Self>;
    /// The family's table and the worker's local ports, borrowed together.
    fn table_and_ports(d: &mut Director) -> (&mut ConnTable<Self>, &mut super::lport::LocalPorts);
    fn decrement_ttl(ip: &mut [u8]);
    fn set_ttl(ip: &mut [u8], ttl: u8);
    fn set_src(ip: &mut [u8], a: Self);
    fn set_dst(ip: &mut [u8], a: Self);
    fn pseudo_changed(protocol: u8, l4: &mut [u8], old: Self, new: Self);
    /// The address as 16-bit words (2 or 8), for fused checksum updates.
    fn words(self) -> ([u16; 8], usize);
    /// Rewrites the source (`src`) or destination address in the IP header and decrements the
    /// TTL, with one checksum update (IPv6 has no header checksum).
    fn nat_header(ip: &mut [u8], src: bool, old: Self, new: Self);
    /// FullNAT's: both addresses rewritten and the TTL decremented, with one checksum update.
    fn full_nat_header(ip: &mut [u8], src: Self, dst: Self);
    /// May the packet be fragmented on the way? (IPv6: never by a router.)
    fn may_fragment(ip: &[u8]) -> bool;
    fn source(net: &Network, port: u16) -> Option<Self>;
    /// Writes the outer header of a tunnel carrying `inner_len` bytes of `inner`.
    fn emit_tunnel(out: &mut [u8], inner: &[u8], src: Self, dst: Self, inner_len: usize, ident: u16);
    /// Writes an IP header for an ICMP message of `icmp_len` bytes from `src` to `dst`.
    fn emit_icmp_ip(out: &mut [u8], src: Self, dst: Self, icmp_len: usize);
    /// The checksum of an ICMP message sent from `src` to `dst`.
    fn icmp_checksum(msg: &[u8], src: Self, dst: Self) -> u16;
    /// Whether `seg`, a TCP/UDP segment from `src` to `dst`, carries a correct checksum (an
    /// IPv4 UDP datagram may carry none).
    fn l4_checksum_ok(proto: u8, seg: &[u8], src: Self, dst: Self) -> bool;
    /// A source no client can have (besides the director's own addresses and VIPs).
    fn is_martian(self) -> bool;
    /// ICMP "packet too big" type, code and where the MTU goes.
    fn too_big(icmp: &mut [u8], mtu: u16);
    fn is_error(icmp_type: u8) -> bool;
    fn echo_request() -> u8;
    fn echo_reply() -> u8;
    /// NAT's rewrite of a whole packet (IP header at `l2`): the source (`src`) or destination
    /// address becomes `addr` and its port `port`, the TTL drops by one, both checksums take
    /// one incremental update each.
    fn nat(b: &mut [u8], l2: usize, ip: &IpInfo<Self>, src: bool, addr: Self, port: u16);
    /// Sets the length of a packet whose IP header is at the start of `ip` to `len` bytes in
    /// all (the header checksum follows).
    fn set_packet_len(ip: &mut [u8], len: usize);
    /// Recomputes a TCP/UDP checksum over `seg` from scratch (after bytes were inserted).
    fn fill_l4_checksum(proto: u8, seg: &mut [u8], src: Self, dst: Self);
}

impl Family for Ipv4Addr {
    const ICMP: u8 = proto::ICMP;
    const HEADER_LEN: usize = 20;
    const ICMP_ERROR_MAX: usize = 576;

    #[inline]
    fn parse_checked(b: &[u8], nic: crate::frame::RxCheck) -> Result<IpInfo<Self>, DropReason> {
        use crate::frame::RxCheck;
        let ip = Ipv4Packet::new_checked(b)?;
        let ok = match nic {
            RxCheck::Good => true,
            RxCheck::Bad => false,
            RxCheck::Unknown => ip.verify_checksum(),
        };
        if !ok {
            return Err(DropReason::Ipv4BadChecksum);
        }
        Ok(IpInfo {
            src: ip.src(),
            dst: ip.dst(),
            proto: ip.protocol(),
            l4: ip.header_len(),
            end: ip.total_len(),
            fragment: Frag::of_v4(ip.flags_frag()),
            ttl: ip.ttl(),
        })
    }

    fn frag_id(ip: &[u8]) -> u32 {
        Ipv4Packet::new_unchecked(ip).ident() as u32
    }

    fn parse_quoted(b: &[u8]) -> Option<IpInfo<Self>> {
        if b.len() < 20 || b[0] >> 4 != 4 {
            return None;
        }
        let ihl = (b[0] & 0x0f) as usize * 4;
        if ihl < 20 || ihl > b.len() {
            return None;
        }
        let ip = Ipv4Packet::new_unchecked(b);
        Some(IpInfo {
            src: ip.src(),
            dst: ip.dst(),
            proto: ip.protocol(),
            l4: ihl,
            end: b.len(),
            fragment: Frag::of_v4(ip.flags_frag()),
            ttl: ip.ttl(),
        })
    }

    fn from_ip(a: IpAddr) -> Option<Self> {
        match a {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        }
    }

    fn table(d: &mut Director) -> &mut ConnTable<Self> {
        &mut d.conns4
    }

    fn table_and_ports(d: &mut Director) -> (&mut ConnTable<Self>, &mut super::lport::LocalPorts) {
        (&mut d.conns4, &mut d.lports)
    }

    fn decrement_ttl(ip: &mut [u8]) {
        Ipv4Packet::new_unchecked(ip).decrement_ttl();
    }

    fn set_ttl(ip: &mut [u8], ttl: u8) {
        Ipv4Packet::new_unchecked(ip).set_ttl(ttl);
    }

    fn set_src(ip: &mut [u8], a: Self) {
        Ipv4Packet::new_unchecked(ip).set_src(a);
    }

    fn set_dst(ip: &mut [u8], a: Self) {
        Ipv4Packet::new_unchecked(ip).set_dst(a);
    }

    fn pseudo_changed(protocol: u8, l4buf: &mut [u8], old: Self, new: Self) {
        l4::pseudo_addr_changed_v4(protocol, l4buf, old, new);
    }

    #[inline]
    fn words(self) -> ([u16; 8], usize) {
        let o = self.octets();
        (
            [
                u16::from_be_bytes([o[0], o[1]]),
                u16::from_be_bytes([o[2], o[3]]),
                0,
                0,
                0,
                0,
                0,
                0,
            ],
            2,
        )
    }

    #[inline]
    fn nat_header(ip: &mut [u8], src: bool, _old: Self, new: Self) {
        Ipv4Packet::new_unchecked(ip).nat_rewrite(src, new);
    }

    #[inline]
    fn full_nat_header(ip: &mut [u8], src: Self, dst: Self) {
        Ipv4Packet::new_unchecked(ip).full_nat_rewrite(src, dst);
    }

    fn may_fragment(ip: &[u8]) -> bool {
        !Ipv4Packet::new_unchecked(ip).dont_fragment()
    }

    fn source(net: &Network, port: u16) -> Option<Self> {
        net.source4(port)
    }

    fn emit_tunnel(out: &mut [u8], inner: &[u8], src: Self, dst: Self, inner_len: usize, ident: u16) {
        // IPVS copies the inner TOS and DF bit to the outer header.
        let p = Ipv4Packet::new_unchecked(inner);
        let (tos, df) = (p.tos(), p.dont_fragment());
        ipv4::emit(
            out,
            src,
            dst,
            proto::IPIP,
            64,
            tos,
            (20 + inner_len) as u16,
            df,
            ident,
        );
    }

    fn emit_icmp_ip(out: &mut [u8], src: Self, dst: Self, icmp_len: usize) {
        ipv4::emit(
            out,
            src,
            dst,
            proto::ICMP,
            64,
            0,
            (20 + icmp_len) as u16,
            false,
            0,
        );
    }

    fn icmp_checksum(msg: &[u8], _src: Self, _dst: Self) -> u16 {
        checksum::checksum(msg)
    }

    fn l4_checksum_ok(proto: u8, seg: &[u8], src: Self, dst: Self) -> bool {
        if proto == crate::wire::proto::UDP && seg.get(6..8) == Some(&[0, 0]) {
            return true;
        }
        let pseudo = checksum::pseudo_v4(src, dst, proto, seg.len() as u16);
        checksum::fold(checksum::sum(seg, pseudo)) == 0xffff
    }

    fn is_martian(self) -> bool {
        let o = self.octets();
        o[0] == 0 || o[0] == 127 || o[0] >= 224
    }

    fn too_big(icmp: &mut [u8], mtu: u16) {
        icmp[0] = icmp::v4::DEST_UNREACHABLE;
        icmp[1] = icmp::v4::FRAG_NEEDED;
        icmp[4..6].fill(0);
        icmp[6..8].copy_from_slice(&mtu.to_be_bytes());
    }

    fn is_error(t: u8) -> bool {
        icmp::is_error_v4(t)
    }

    fn echo_request() -> u8 {
        icmp::v4::ECHO_REQUEST
    }

    #[inline]
    fn nat(b: &mut [u8], l2: usize, ip: &IpInfo<Self>, src: bool, addr: Self, port: u16) {
        // The address change is summed once, for the header and the pseudo-header.
        let delta = Ipv4Packet::new_unchecked(&mut b[l2..]).nat_rewrite_delta(src, addr);
        l4::nat_rewrite_v4(ip.proto, &mut b[l2 + ip.l4..l2 + ip.end], src, port, delta);
    }

    fn set_packet_len(ip: &mut [u8], len: usize) {
        let mut p = Ipv4Packet::new_unchecked(ip);
        p.set_total_len(len as u16);
        p.fill_checksum();
    }

    fn fill_l4_checksum(proto: u8, seg: &mut [u8], src: Self, dst: Self) {
        let at = l4_checksum_at(proto);
        seg[at..at + 2].fill(0);
        let pseudo = checksum::pseudo_v4(src, dst, proto, seg.len() as u16);
        let c = finish_l4(proto, checksum::fold(checksum::sum(seg, pseudo)));
        seg[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }

    fn echo_reply() -> u8 {
        icmp::v4::ECHO_REPLY
    }
}

impl Family for Ipv6Addr {
    const ICMP: u8 = proto::ICMPV6;
    const HEADER_LEN: usize = 40;
    const ICMP_ERROR_MAX: usize = 1280;

    #[inline]
    fn parse_checked(b: &[u8], _nic: crate::frame::RxCheck) -> Result<IpInfo<Self>, DropReason> {
        let ip = Ipv6Packet::new_checked(b)?;
        let ul = ip.upper_layer()?;
        Ok(IpInfo {
            src: ip.src(),
            dst: ip.dst(),
            proto: ul.protocol,
            l4: ul.offset,
            end: ip.total_len(),
            fragment: Frag::of(ul.fragment, ul.frag_first),
            ttl: ip.hop_limit(),
        })
    }

    fn frag_id(ip: &[u8]) -> u32 {
        Ipv6Packet::new_unchecked(ip)
            .upper_layer()
            .map_or(0, |ul| ul.frag_id)
    }

    fn parse_quoted(b: &[u8]) -> Option<IpInfo<Self>> {
        if b.len() < 40 || b[0] >> 4 != 6 {
            return None;
        }
        let ip = Ipv6Packet::new_unchecked(b);
        // Walk the extension headers over what was quoted, whatever the payload length says.
        let ul = QuotedV6(b).upper_layer()?;
        Some(IpInfo {
            src: ip.src(),
            dst: ip.dst(),
            proto: ul.0,
            l4: ul.1,
            end: b.len(),
            fragment: Frag::of(ul.2, true),
            ttl: ip.hop_limit(),
        })
    }

    fn from_ip(a: IpAddr) -> Option<Self> {
        match a {
            IpAddr::V6(a) => Some(a),
            IpAddr::V4(_) => None,
        }
    }

    fn table(d: &mut Director) -> &mut ConnTable<Self> {
        &mut d.conns6
    }

    fn table_and_ports(d: &mut Director) -> (&mut ConnTable<Self>, &mut super::lport::LocalPorts) {
        (&mut d.conns6, &mut d.lports)
    }

    fn decrement_ttl(ip: &mut [u8]) {
        Ipv6Packet::new_unchecked(ip).decrement_hop_limit();
    }

    fn set_ttl(ip: &mut [u8], ttl: u8) {
        Ipv6Packet::new_unchecked(ip).set_hop_limit(ttl);
    }

    fn set_src(ip: &mut [u8], a: Self) {
        Ipv6Packet::new_unchecked(ip).set_src(a);
    }

    fn set_dst(ip: &mut [u8], a: Self) {
        Ipv6Packet::new_unchecked(ip).set_dst(a);
    }

    fn pseudo_changed(protocol: u8, l4buf: &mut [u8], old: Self, new: Self) {
        l4::pseudo_addr_changed_v6(protocol, l4buf, old, new);
    }

    #[inline]
    fn words(self) -> ([u16; 8], usize) {
        (self.segments(), 8)
    }

    #[inline]
    fn nat_header(ip: &mut [u8], src: bool, _old: Self, new: Self) {
        Ipv6Packet::new_unchecked(ip).nat_rewrite(src, new);
    }

    #[inline]
    fn full_nat_header(ip: &mut [u8], src: Self, dst: Self) {
        // No header checksum: the source with the hop limit, then the destination.
        let mut p = Ipv6Packet::new_unchecked(ip);
        p.nat_rewrite(true, src);
        p.set_dst(dst);
    }

    fn may_fragment(_ip: &[u8]) -> bool {
        false
    }

    fn source(net: &Network, port: u16) -> Option<Self> {
        net.source6(port)
    }

    fn emit_tunnel(out: &mut [u8], _inner: &[u8], src: Self, dst: Self, inner_len: usize, _ident: u16) {
        ipv6::emit(out, src, dst, proto::IPV6, 64, inner_len as u16);
    }

    fn emit_icmp_ip(out: &mut [u8], src: Self, dst: Self, icmp_len: usize) {
        ipv6::emit(out, src, dst, proto::ICMPV6, 64, icmp_len as u16);
    }

    fn icmp_checksum(msg: &[u8], src: Self, dst: Self) -> u16 {
        let pseudo = checksum::pseudo_v6(src, dst, proto::ICMPV6, msg.len() as u32);
        !checksum::fold(checksum::sum(msg, pseudo))
    }

    fn l4_checksum_ok(proto: u8, seg: &[u8], src: Self, dst: Self) -> bool {
        let pseudo = checksum::pseudo_v6(src, dst, proto, seg.len() as u32);
        checksum::fold(checksum::sum(seg, pseudo)) == 0xffff
    }

    fn is_martian(self) -> bool {
        self.is_unspecified() || self.is_loopback() || self.is_multicast() || self.to_ipv4_mapped().is_some()
    }

    fn too_big(icmp: &mut [u8], mtu: u16) {
        icmp[0] = icmp::v6::PACKET_TOO_BIG;
        icmp[1] = 0;
        icmp[4..8].copy_from_slice(&(mtu as u32).to_be_bytes());
    }

    fn is_error(t: u8) -> bool {
        icmp::is_error_v6(t)
    }

    fn echo_request() -> u8 {
        icmp::v6::ECHO_REQUEST
    }

    #[inline]
    fn nat(b: &mut [u8], l2: usize, ip: &IpInfo<Self>, src: bool, addr: Self, port: u16) {
        let old = if src { ip.src } else { ip.dst };
        Ipv6Packet::new_unchecked(&mut b[l2..]).nat_rewrite(src, addr);
        // The address's change summed once, two words at a time (no header checksum here).
        let delta = checksum::words_delta128(u128::from(old), u128::from(addr));
        l4::nat_rewrite_summed(ip.proto, &mut b[l2 + ip.l4..l2 + ip.end], src, port, delta, false);
    }

    fn set_packet_len(ip: &mut [u8], len: usize) {
        Ipv6Packet::new_unchecked(ip).set_payload_len((len - 40) as u16);
    }

    fn fill_l4_checksum(proto: u8, seg: &mut [u8], src: Self, dst: Self) {
        let at = l4_checksum_at(proto);
        seg[at..at + 2].fill(0);
        let pseudo = checksum::pseudo_v6(src, dst, proto, seg.len() as u32);
        let c = finish_l4(proto, checksum::fold(checksum::sum(seg, pseudo)));
        seg[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }

    fn echo_reply() -> u8 {
        icmp::v6::ECHO_REPLY
    }
}

/// The extension-header walk over a quoted IPv6 packet, bounded by what was quoted.
struct QuotedV6<'a>(&'a [u8]);

impl QuotedV6<'_> {
    fn upper_layer(&self) -> Option<(u8, usize, bool)> {
        let b = self.0;
        let mut next = b[6];
        let mut off = 40;
        let mut frag = false;
        for _ in 0..8 {
            let len = match next {
                0 | 43 | 60 => (*b.get(off + 1)? as usize + 1) * 8,
                44 => {
                    frag = true;
                    8
                }
                51 => (*b.get(off + 1)? as usize + 2) * 4,
                _ => return Some((next, off, frag)),
            };
            next = *b.get(off)?;
            off += len;
        }
        None
    }
}

/// Where a TCP or UDP checksum sits in its header.
fn l4_checksum_at(proto: u8) -> usize {
    if proto == proto::UDP {
        crate::wire::udp::CHECKSUM_AT
    } else {
        crate::wire::tcp::CHECKSUM_AT
    }
}

/// The checksum to write from the folded sum (UDP writes 0 as all ones).
fn finish_l4(proto: u8, folded: u16) -> u16 {
    let c = !folded;
    if proto == proto::UDP && c == 0 {
        0xffff
    } else {
        c
    }
}
