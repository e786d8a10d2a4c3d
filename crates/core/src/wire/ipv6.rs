//! IPv6 (RFC 8200), with the extension-header walk to the upper-layer header.

use std::net::Ipv6Addr;

use super::{be16, put16, DropReason, WireResult};

pub const HEADER_LEN: usize = 40;

mod field {
    pub const PAYLOAD_LEN: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: std::ops::Range<usize> = 8..24;
    pub const DST: std::ops::Range<usize> = 24..40;
}

mod nh {
    pub const HOP_BY_HOP: u8 = 0;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const NO_NEXT: u8 = 59;
    pub const DEST_OPTS: u8 = 60;
}

/// At most this many extension headers are walked; more is treated as an attack.
const MAX_EXT_HEADERS: usize = 8;

/// Where the walk ended: the upper-layer protocol and its offset from the start of the IPv6
/// header, and whether a fragment header was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpperLayer {
    pub protocol: u8,
    pub offset: usize,
    /// A fragment (an atomic fragment, offset 0 without more, is a whole packet and not one).
    pub fragment: bool,
    /// The fragment header's identification, and whether this is the first fragment.
    pub frag_id: u32,
    pub frag_first: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct Ipv6Packet<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Checks the version and that the payload length fits the buffer.
    pub fn new_checked(buf: T) -> WireResult<Self> {
        let b = buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(DropReason::Ipv6Truncated);
        }
        if b[0] >> 4 != 6 {
            return Err(DropReason::Ipv6BadVersion);
        }
        if HEADER_LEN + be16(b, field::PAYLOAD_LEN) as usize > b.len() {
            return Err(DropReason::Ipv6PayloadLenBeyondFrame);
        }
        Ok(Ipv6Packet { buf })
    }

    pub fn new_unchecked(buf: T) -> Self {
        Ipv6Packet { buf }
    }

    pub fn payload_len(&self) -> usize {
        be16(self.buf.as_ref(), field::PAYLOAD_LEN) as usize
    }

    /// Header plus payload: the packet's length without Ethernet padding.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + self.payload_len()
    }

    pub fn next_header(&self) -> u8 {
        self.buf.as_ref()[field::NEXT_HEADER]
    }

    pub fn hop_limit(&self) -> u8 {
        self.buf.as_ref()[field::HOP_LIMIT]
    }

    pub fn src(&self) -> Ipv6Addr {
        <[u8; 16]>::try_from(&self.buf.as_ref()[field::SRC])
            .unwrap()
            .into()
    }

    pub fn dst(&self) -> Ipv6Addr {
        <[u8; 16]>::try_from(&self.buf.as_ref()[field::DST])
            .unwrap()
            .into()
    }

    /// Walks hop-by-hop, routing, fragment, destination-options and AH headers to the upper
    /// layer. ESP and "no next header" end the walk with that protocol.
    pub fn upper_layer(&self) -> WireResult<UpperLayer> {
        let b = &self.buf.as_ref()[..self.total_len()];
        let mut next = self.next_header();
        let mut off = HEADER_LEN;
        let mut fragment = false;
        let (mut frag_id, mut frag_first) = (0, true);
        for _ in 0..MAX_EXT_HEADERS {
            let len = match next {
                nh::HOP_BY_HOP | nh::ROUTING | nh::DEST_OPTS => {
                    if off + 2 > b.len() {
                        return Err(DropReason::Ipv6ExtTruncated);
                    }
                    (b[off + 1] as usize + 1) * 8
                }
                nh::FRAGMENT => {
                    if off + 8 > b.len() {
                        return Err(DropReason::Ipv6ExtTruncated);
                    }
                    let offset_flags = u16::from_be_bytes([b[off + 2], b[off + 3]]);
                    frag_first = offset_flags & 0xfff8 == 0;
                    fragment = !frag_first || offset_flags & 1 != 0;
                    frag_id = u32::from_be_bytes([b[off + 4], b[off + 5], b[off + 6], b[off + 7]]);
                    8
                }
                nh::AH => {
                    if off + 2 > b.len() {
                        return Err(DropReason::Ipv6ExtTruncated);
                    }
                    (b[off + 1] as usize + 2) * 4
                }
                nh::ESP | nh::NO_NEXT => {
                    return Ok(UpperLayer {
                        protocol: next,
                        offset: off,
                        fragment,
                        frag_id,
                        frag_first,
                    })
                }
                _ => {
                    return Ok(UpperLayer {
                        protocol: next,
                        offset: off,
                        fragment,
                        frag_id,
                        frag_first,
                    })
                }
            };
            if off + len > b.len() {
                return Err(DropReason::Ipv6ExtTruncated);
            }
            next = b[off];
            off += len;
        }
        Err(DropReason::Ipv6TooManyExtHeaders)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// NAT's header rewrite: the source (`src`) or destination address becomes `new` and the
    /// hop limit drops by one (no header checksum in IPv6). The hop limit must be above 1.
    #[inline]
    pub fn nat_rewrite(&mut self, src: bool, new: Ipv6Addr) {
        let b = self.buf.as_mut();
        let at = if src { field::SRC } else { field::DST };
        b[at].copy_from_slice(&new.octets());
        b[field::HOP_LIMIT] -= 1;
    }

    pub fn set_hop_limit(&mut self, hop_limit: u8) {
        self.buf.as_mut()[field::HOP_LIMIT] = hop_limit;
    }

    pub fn set_src(&mut self, a: Ipv6Addr) {
        self.buf.as_mut()[field::SRC].copy_from_slice(&a.octets());
    }

    pub fn set_dst(&mut self, a: Ipv6Addr) {
        self.buf.as_mut()[field::DST].copy_from_slice(&a.octets());
    }

    /// IPv6 has no header checksum: the hop limit changes alone.
    pub fn decrement_hop_limit(&mut self) {
        self.buf.as_mut()[field::HOP_LIMIT] -= 1;
    }

    pub fn set_payload_len(&mut self, n: u16) {
        put16(self.buf.as_mut(), field::PAYLOAD_LEN, n);
    }
}

/// Writes a 40-byte header into `b[..40]`.
pub fn emit(b: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, hop_limit: u8, payload_len: u16) {
    b[..40].fill(0);
    b[0] = 0x60;
    put16(b, field::PAYLOAD_LEN, payload_len);
    b[field::NEXT_HEADER] = next_header;
    b[field::HOP_LIMIT] = hop_limit;
    b[field::SRC].copy_from_slice(&src.octets());
    b[field::DST].copy_from_slice(&dst.octets());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(next: u8, ext: &[u8], payload: usize) -> Vec<u8> {
        let mut b = vec![0u8; 40];
        emit(
            &mut b,
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
            next,
            64,
            (ext.len() + payload) as u16,
        );
        b.extend_from_slice(ext);
        b.resize(b.len() + payload, 0);
        b
    }

    #[test]
    fn walks_extension_headers() {
        // hop-by-hop (8 bytes) -> fragment (8 bytes: offset 0, more, id 7) -> TCP
        let ext = [44, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 1, 0, 0, 0, 7];
        let b = packet(0, &ext, 20);
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            p.upper_layer().unwrap(),
            UpperLayer {
                protocol: 6,
                offset: 56,
                fragment: true,
                frag_id: 7,
                frag_first: true,
            }
        );
        // Offset 0 without more fragments is an atomic fragment: a whole packet.
        let mut atomic = ext;
        atomic[11] = 0;
        let b = packet(0, &atomic, 20);
        let ul = Ipv6Packet::new_checked(&b[..]).unwrap().upper_layer().unwrap();
        assert!(!ul.fragment && ul.frag_first);
        // A later fragment: offset 185 (1480 bytes).
        let mut later = ext;
        later[10..12].copy_from_slice(&((185u16 << 3) | 1).to_be_bytes());
        let b = packet(0, &later, 20);
        let ul = Ipv6Packet::new_checked(&b[..]).unwrap().upper_layer().unwrap();
        assert!(ul.fragment && !ul.frag_first);
    }

    #[test]
    fn refusals() {
        let b = packet(6, &[], 20);
        assert_eq!(
            Ipv6Packet::new_checked(&b[..39]).unwrap_err(),
            DropReason::Ipv6Truncated
        );
        assert_eq!(
            Ipv6Packet::new_checked(&b[..50]).unwrap_err(),
            DropReason::Ipv6PayloadLenBeyondFrame
        );
        let mut v = b.clone();
        v[0] = 0x40;
        assert_eq!(
            Ipv6Packet::new_checked(&v[..]).unwrap_err(),
            DropReason::Ipv6BadVersion
        );
        // A destination-options header claiming more than there is.
        let b = packet(60, &[6, 4, 0, 0, 0, 0, 0, 0], 0);
        assert_eq!(
            Ipv6Packet::new_checked(&b[..])
                .unwrap()
                .upper_layer()
                .unwrap_err(),
            DropReason::Ipv6ExtTruncated
        );
    }
}
