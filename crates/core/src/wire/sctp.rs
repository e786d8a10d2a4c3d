//! SCTP common header (RFC 4960 section 3.1) and the type of the first chunk.

use super::{be16, be32, put32, DropReason, WireResult};
use crate::checksum::crc32c;

pub const HEADER_LEN: usize = 12;
pub const CHECKSUM_AT: usize = 8;

pub mod chunk {
    pub const INIT: u8 = 1;
    pub const ABORT: u8 = 6;
    pub const SHUTDOWN: u8 = 7;
    pub const SHUTDOWN_COMPLETE: u8 = 14;
}

#[derive(Debug, Clone, Copy)]
pub struct SctpPacket<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> SctpPacket<T> {
    #[inline]
    pub fn new_checked(buf: T) -> WireResult<Self> {
        if buf.as_ref().len() < HEADER_LEN {
            return Err(DropReason::SctpTruncated);
        }
        Ok(SctpPacket { buf })
    }

    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(self.buf.as_ref(), 0)
    }

    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(self.buf.as_ref(), 2)
    }

    pub fn verification_tag(&self) -> u32 {
        be32(self.buf.as_ref(), 4)
    }

    /// Type of the first chunk (None for a packet with no chunk).
    #[inline]
    pub fn first_chunk(&self) -> Option<u8> {
        self.buf.as_ref().get(HEADER_LEN).copied()
    }

    #[inline]
    pub fn verify_checksum(&self) -> bool {
        let b = self.buf.as_ref();
        let mut copy = b.to_vec();
        copy[CHECKSUM_AT..CHECKSUM_AT + 4].fill(0);
        crc32c(&copy).to_le_bytes() == b[CHECKSUM_AT..CHECKSUM_AT + 4]
    }
}

/// Recomputes the CRC32c of a whole SCTP packet in place (it is stored little-endian on the
/// wire, RFC 4960 appendix B). There is no incremental form.
/// Whether a packet's CRC32c is right (checked on what would open a connection, so a copy is
/// affordable).
pub fn checksum_ok(b: &[u8]) -> bool {
    if b.len() < HEADER_LEN {
        return false;
    }
    let mut copy = b.to_vec();
    put32(&mut copy, CHECKSUM_AT, 0);
    crc32c(&copy).to_le_bytes() == b[CHECKSUM_AT..CHECKSUM_AT + 4]
}

pub fn fill_checksum(b: &mut [u8]) {
    put32(b, CHECKSUM_AT, 0);
    let c = crc32c(b);
    b[CHECKSUM_AT..CHECKSUM_AT + 4].copy_from_slice(&c.to_le_bytes());
}
