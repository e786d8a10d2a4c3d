//! IPv4 (RFC 791). Options are skipped (the header length covers them); fragments are
//! recognised so the caller can refuse them with their own reason.

use std::net::Ipv4Addr;

use super::{be16, put16, DropReason, WireResult};
use crate::checksum;

pub const MIN_HEADER_LEN: usize = 20;

mod field {
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const TOTAL_LEN: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLAGS_FRAG: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTO: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
}

const FLAG_DF: u16 = 0x4000;
pub const FLAG_MF: u16 = 0x2000;
pub const FRAG_OFFSET: u16 = 0x1fff;

/// An IPv4 packet; the buffer may extend past `total_len` (Ethernet padding).
#[derive(Debug, Clone, Copy)]
pub struct Ipv4Packet<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Checks version, header length and total length against the buffer.
    #[inline]
    pub fn new_checked(buf: T) -> WireResult<Self> {
        let b = buf.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(DropReason::Ipv4Truncated);
        }
        if b[field::VER_IHL] >> 4 != 4 {
            return Err(DropReason::Ipv4BadVersion);
        }
        let ihl = ((b[field::VER_IHL] & 0x0f) as usize) * 4;
        if ihl < MIN_HEADER_LEN {
            return Err(DropReason::Ipv4BadIhl);
        }
        if ihl > b.len() {
            return Err(DropReason::Ipv4Truncated);
        }
        let total = be16(b, field::TOTAL_LEN) as usize;
        if total < ihl {
            return Err(DropReason::Ipv4BadTotalLen);
        }
        if total > b.len() {
            return Err(DropReason::Ipv4TotalLenBeyondFrame);
        }
        Ok(Ipv4Packet { buf })
    }

    /// Wraps a buffer without checks, for building headers; the caller keeps the contract
    /// (at least 20 bytes).
    #[inline]
    pub fn new_unchecked(buf: T) -> Self {
        Ipv4Packet { buf }
    }

    pub fn into_inner(self) -> T {
        self.buf
    }

    #[inline]
    pub fn header_len(&self) -> usize {
        ((self.buf.as_ref()[field::VER_IHL] & 0x0f) as usize) * 4
    }

    #[inline]
    pub fn total_len(&self) -> usize {
        be16(self.buf.as_ref(), field::TOTAL_LEN) as usize
    }

    pub fn tos(&self) -> u8 {
        self.buf.as_ref()[field::TOS]
    }

    #[inline]
    pub fn ident(&self) -> u16 {
        be16(self.buf.as_ref(), field::IDENT)
    }

    #[inline]
    pub fn dont_fragment(&self) -> bool {
        be16(self.buf.as_ref(), field::FLAGS_FRAG) & FLAG_DF != 0
    }

    /// A fragment: more fragments follow, or this is not the first.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        be16(self.buf.as_ref(), field::FLAGS_FRAG) & (FLAG_MF | FRAG_OFFSET) != 0
    }

    /// NAT's header rewrite: the source (`src`) or destination address becomes `new` and the
    /// TTL drops by one, with one fused checksum update (RFC 1624). The TTL must be above 1.
    #[inline(always)]
    pub fn nat_rewrite(&mut self, src: bool, new: Ipv4Addr)
    where
        T: AsMut<[u8]>,
    {
        self.nat_rewrite_delta(src, new);
    }

    /// NAT's header rewrite as [`Self::nat_rewrite`] does it, returning the one's-complement
    /// sum of the address change (RFC 1624: ~old + new over its two words), which the
    /// transport checksum's pseudo-header takes too: one computation for both checksums.
    #[inline(always)]
    pub fn nat_rewrite_delta(&mut self, src: bool, new: Ipv4Addr) -> u32
    where
        T: AsMut<[u8]>,
    {
        let b: &mut [u8; 20] = (&mut self.buf.as_mut()[..20])
            .try_into()
            .expect("a checked view holds its 20-byte header");
        let at = if src { field::SRC } else { field::DST };
        let o = u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let n = u32::from(new);
        let delta = addr_delta(o, n);
        let c = u16::from_be_bytes([b[field::CHECKSUM], b[field::CHECKSUM + 1]]);
        // The TTL/protocol word loses 0x0100: ~old + (old - 0x0100) is 0xfeff.
        let c = !checksum::fold((!c) as u32 + delta + 0xfeff);
        b[at..at + 4].copy_from_slice(&n.to_be_bytes());
        b[field::TTL] -= 1;
        b[field::CHECKSUM..field::CHECKSUM + 2].copy_from_slice(&c.to_be_bytes());
        delta
    }

    /// FullNAT's header rewrite: both addresses become `src` and `dst` and the TTL drops by
    /// one, with one fused checksum update (the same checksum as NAT's rewrite of one then
    /// the other: one's-complement updates compose). The TTL must be above 1.
    #[inline(always)]
    pub fn full_nat_rewrite(&mut self, src: Ipv4Addr, dst: Ipv4Addr)
    where
        T: AsMut<[u8]>,
    {
        let b: &mut [u8; 20] = (&mut self.buf.as_mut()[..20])
            .try_into()
            .expect("a checked view holds its 20-byte header");
        let word = |b: &[u8; 20], at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let (s, d) = (u32::from(src), u32::from(dst));
        let delta = addr_delta(word(b, field::SRC), s) + addr_delta(word(b, field::DST), d);
        let c = u16::from_be_bytes([b[field::CHECKSUM], b[field::CHECKSUM + 1]]);
        let c = !checksum::fold((!c) as u32 + delta + 0xfeff);
        b[field::SRC..field::SRC + 4].copy_from_slice(&s.to_be_bytes());
        b[field::DST..field::DST + 4].copy_from_slice(&d.to_be_bytes());
        b[field::TTL] -= 1;
        b[field::CHECKSUM..field::CHECKSUM + 2].copy_from_slice(&c.to_be_bytes());
    }

    /// The flags-and-offset field, for one read of both (`MORE_FRAGMENTS`, `FRAG_OFFSET`).
    #[inline]
    pub fn flags_frag(&self) -> u16 {
        be16(self.buf.as_ref(), field::FLAGS_FRAG)
    }

    /// The fragment's offset in 8-byte units (0 for the first fragment).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        be16(self.buf.as_ref(), field::FLAGS_FRAG) & FRAG_OFFSET
    }

    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buf.as_ref()[field::TTL]
    }

    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buf.as_ref()[field::PROTO]
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buf.as_ref(), field::CHECKSUM)
    }

    #[inline]
    pub fn src(&self) -> Ipv4Addr {
        let b = self.buf.as_ref();
        Ipv4Addr::new(b[12], b[13], b[14], b[15])
    }

    #[inline]
    pub fn dst(&self) -> Ipv4Addr {
        let b = self.buf.as_ref();
        Ipv4Addr::new(b[16], b[17], b[18], b[19])
    }

    #[inline]
    pub fn verify_checksum(&self) -> bool {
        let b = self.buf.as_ref();
        let h = self.header_len();
        if h == MIN_HEADER_LEN {
            // The common header, without options: five 32-bit words, summed straight.
            let w = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]) as u64;
            let acc = w(0) + w(4) + w(8) + w(12) + w(16);
            return checksum::words_sum_ok(acc);
        }
        checksum::checksum(&b[..h]) == 0
    }

    /// The L4 payload: from the end of the header to `total_len` (padding excluded).
    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[self.header_len()..self.total_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets the TTL, updating the header checksum.
    pub fn set_ttl(&mut self, ttl: u8) {
        let b = self.buf.as_mut();
        let old = u16::from_be_bytes([b[field::TTL], b[field::PROTO]]);
        let new = u16::from_be_bytes([ttl, b[field::PROTO]]);
        let c = u16::from_be_bytes([b[field::CHECKSUM], b[field::CHECKSUM + 1]]);
        let c = crate::checksum::update16(c, old, new);
        b[field::CHECKSUM..field::CHECKSUM + 2].copy_from_slice(&c.to_be_bytes());
        b[field::TTL] = ttl;
    }

    pub fn set_src(&mut self, a: Ipv4Addr) {
        let old = u32::from(self.src());
        let c = checksum::update32(self.checksum(), old, a.into());
        self.buf.as_mut()[field::SRC..field::SRC + 4].copy_from_slice(&a.octets());
        self.set_checksum(c);
    }

    pub fn set_dst(&mut self, a: Ipv4Addr) {
        let old = u32::from(self.dst());
        let c = checksum::update32(self.checksum(), old, a.into());
        self.buf.as_mut()[field::DST..field::DST + 4].copy_from_slice(&a.octets());
        self.set_checksum(c);
    }

    /// Decrements the TTL (the caller has checked it is above 1).
    pub fn decrement_ttl(&mut self) {
        // TTL is the high byte of the TTL/protocol word.
        let word = be16(self.buf.as_ref(), field::TTL);
        let new = word - 0x0100;
        let c = checksum::update16(self.checksum(), word, new);
        self.buf.as_mut()[field::TTL] -= 1;
        self.set_checksum(c);
    }

    pub fn set_checksum(&mut self, c: u16) {
        put16(self.buf.as_mut(), field::CHECKSUM, c);
    }

    /// Sets the total length (the caller refills or updates the checksum).
    pub fn set_total_len(&mut self, n: u16) {
        put16(self.buf.as_mut(), field::TOTAL_LEN, n);
    }

    /// Recomputes the header checksum from scratch (for headers rvs builds).
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let h = self.header_len();
        let c = checksum::checksum(&self.buf.as_ref()[..h]);
        self.set_checksum(c);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (h, t) = (self.header_len(), self.total_len());
        &mut self.buf.as_mut()[h..t]
    }
}

/// Writes a 20-byte header (no options) into `b[..20]` with its checksum.
#[allow(clippy::too_many_arguments)]
pub fn emit(
    b: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    ttl: u8,
    tos: u8,
    total_len: u16,
    df: bool,
    ident: u16,
) {
    b[..20].fill(0);
    b[field::VER_IHL] = 0x45;
    b[field::TOS] = tos;
    put16(b, field::TOTAL_LEN, total_len);
    put16(b, field::IDENT, ident);
    if df {
        put16(b, field::FLAGS_FRAG, FLAG_DF);
    }
    b[field::TTL] = ttl;
    b[field::PROTO] = proto;
    b[field::SRC..field::SRC + 4].copy_from_slice(&src.octets());
    b[field::DST..field::DST + 4].copy_from_slice(&dst.octets());
    let c = checksum::checksum(&b[..20]);
    put16(b, field::CHECKSUM, c);
}

/// The one's-complement sum of an address's change, ~old + new over its two words (RFC 1624),
/// unfolded.
#[inline(always)]
fn addr_delta(old: u32, new: u32) -> u32 {
    (!(old >> 16) & 0xffff) + (!old & 0xffff) + (new >> 16) + (new & 0xffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> [u8; 20] {
        let mut b = [0u8; 20];
        emit(
            &mut b,
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
            6,
            64,
            0,
            20,
            true,
            7,
        );
        b
    }

    #[test]
    fn emit_parse_round_trip() {
        let b = header();
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(
            (p.src(), p.dst(), p.protocol(), p.ttl()),
            (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2), 6, 64)
        );
        assert!(p.dont_fragment() && !p.is_fragment());
    }

    #[test]
    fn setters_keep_the_checksum_valid() {
        let mut b = header();
        let mut p = Ipv4Packet::new_checked(&mut b[..]).unwrap();
        p.set_dst(Ipv4Addr::new(192, 168, 1, 2));
        p.set_src(Ipv4Addr::new(172, 16, 0, 9));
        p.decrement_ttl();
        assert!(p.verify_checksum());
        assert_eq!(p.ttl(), 63);
    }

    #[test]
    fn refusals() {
        let mut b = header();
        assert_eq!(
            Ipv4Packet::new_checked(&b[..19]).unwrap_err(),
            DropReason::Ipv4Truncated
        );
        b[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err(),
            DropReason::Ipv4BadIhl
        );
        b[0] = 0x46;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err(),
            DropReason::Ipv4Truncated
        );
        b[0] = 0x65;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err(),
            DropReason::Ipv4BadVersion
        );
        let mut b = header();
        b[3] = 21;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err(),
            DropReason::Ipv4TotalLenBeyondFrame
        );
        b[3] = 19;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err(),
            DropReason::Ipv4BadTotalLen
        );
    }
}
