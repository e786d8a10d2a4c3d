//! UDP header (RFC 768).

use super::{be16, DropReason, WireResult};

pub const HEADER_LEN: usize = 8;
pub const CHECKSUM_AT: usize = 6;

#[derive(Debug, Clone, Copy)]
pub struct UdpDatagram<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> UdpDatagram<T> {
    /// Checks the header and that the length field covers the header and fits the packet.
    #[inline]
    pub fn new_checked(buf: T) -> WireResult<Self> {
        let b = buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(DropReason::UdpTruncated);
        }
        let len = be16(b, 4) as usize;
        if len < HEADER_LEN || len > b.len() {
            return Err(DropReason::UdpBadLength);
        }
        Ok(UdpDatagram { buf })
    }

    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(self.buf.as_ref(), 0)
    }

    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(self.buf.as_ref(), 2)
    }

    pub fn len(&self) -> usize {
        be16(self.buf.as_ref(), 4) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == HEADER_LEN
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buf.as_ref(), CHECKSUM_AT)
    }
}
