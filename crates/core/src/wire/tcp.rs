//! TCP header (RFC 793): ports, flags, checksum. Options are not interpreted.

use super::{be16, be32, put16, DropReason, WireResult};

pub const MIN_HEADER_LEN: usize = 20;
pub const CHECKSUM_AT: usize = 16;

pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
}

#[derive(Debug, Clone, Copy)]
pub struct TcpSegment<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> TcpSegment<T> {
    #[inline]
    pub fn new_checked(buf: T) -> WireResult<Self> {
        let b = buf.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(DropReason::TcpTruncated);
        }
        let off = (b[12] >> 4) as usize * 4;
        if off < MIN_HEADER_LEN || off > b.len() {
            return Err(DropReason::TcpBadDataOffset);
        }
        Ok(TcpSegment { buf })
    }

    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(self.buf.as_ref(), 0)
    }

    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(self.buf.as_ref(), 2)
    }

    pub fn seq(&self) -> u32 {
        be32(self.buf.as_ref(), 4)
    }

    #[inline]
    pub fn header_len(&self) -> usize {
        (self.buf.as_ref()[12] >> 4) as usize * 4
    }

    #[inline]
    pub fn flags(&self) -> u8 {
        self.buf.as_ref()[13]
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buf.as_ref(), CHECKSUM_AT)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpSegment<T> {
    pub fn set_checksum(&mut self, c: u16) {
        put16(self.buf.as_mut(), CHECKSUM_AT, c);
    }
}
