//! ICMPv4 (RFC 792) and ICMPv6 (RFC 4443) share one layout: type, code, checksum, four bytes
//! of "rest of header" (echo id/sequence, or the next-hop MTU), then the body. For errors the
//! body quotes the offending packet's IP header and at least 8 bytes of its payload.

use super::{be16, put16, DropReason, WireResult};
use crate::checksum;

pub const HEADER_LEN: usize = 8;
pub const CHECKSUM_AT: usize = 2;

pub mod v4 {
    pub const ECHO_REPLY: u8 = 0;
    pub const DEST_UNREACHABLE: u8 = 3;
    pub const FRAG_NEEDED: u8 = 4; // code of DEST_UNREACHABLE
    pub const SOURCE_QUENCH: u8 = 4;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
    pub const PARAMETER_PROBLEM: u8 = 12;
}

pub mod v6 {
    pub const DEST_UNREACHABLE: u8 = 1;
    pub const PACKET_TOO_BIG: u8 = 2;
    pub const TIME_EXCEEDED: u8 = 3;
    pub const PARAMETER_PROBLEM: u8 = 4;
    pub const ECHO_REQUEST: u8 = 128;
    pub const ECHO_REPLY: u8 = 129;
}

#[derive(Debug, Clone, Copy)]
pub struct IcmpPacket<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    pub fn new_checked(buf: T) -> WireResult<Self> {
        if buf.as_ref().len() < HEADER_LEN {
            return Err(DropReason::IcmpTruncated);
        }
        Ok(IcmpPacket { buf })
    }

    pub fn msg_type(&self) -> u8 {
        self.buf.as_ref()[0]
    }

    pub fn code(&self) -> u8 {
        self.buf.as_ref()[1]
    }

    pub fn checksum(&self) -> u16 {
        be16(self.buf.as_ref(), CHECKSUM_AT)
    }

    /// The next-hop MTU of a fragmentation-needed / packet-too-big message (low 16 bits).
    pub fn mtu(&self) -> u16 {
        be16(self.buf.as_ref(), 6)
    }

    pub fn body(&self) -> &[u8] {
        &self.buf.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IcmpPacket<T> {
    pub fn set_checksum(&mut self, c: u16) {
        put16(self.buf.as_mut(), CHECKSUM_AT, c);
    }

    /// Changes the type, fixing the checksum incrementally (type and code share a word).
    pub fn set_type(&mut self, t: u8) {
        let b = self.buf.as_ref();
        let old = be16(b, 0);
        let new = u16::from_be_bytes([t, b[1]]);
        let c = checksum::update16(self.checksum(), old, new);
        self.buf.as_mut()[0] = t;
        self.set_checksum(c);
    }

    pub fn body_mut(&mut self) -> &mut [u8] {
        &mut self.buf.as_mut()[HEADER_LEN..]
    }
}

/// Is this ICMPv4 type an error that quotes a packet?
pub fn is_error_v4(t: u8) -> bool {
    matches!(
        t,
        v4::DEST_UNREACHABLE | v4::SOURCE_QUENCH | v4::TIME_EXCEEDED | v4::PARAMETER_PROBLEM
    )
}

/// Is this ICMPv6 type an error that quotes a packet?
pub fn is_error_v6(t: u8) -> bool {
    t < 128
}
