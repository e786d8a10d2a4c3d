//! ARP for IPv4 over Ethernet (RFC 826): the only kind a director answers.

use std::net::Ipv4Addr;

use super::ethernet::Mac;
use super::{be16, put16, DropReason, WireResult};

pub const LEN: usize = 28;
pub const OP_REQUEST: u16 = 1;
pub const OP_REPLY: u16 = 2;

mod field {
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: std::ops::Range<usize> = 8..14;
    pub const SPA: std::ops::Range<usize> = 14..18;
    pub const THA: std::ops::Range<usize> = 18..24;
    pub const TPA: std::ops::Range<usize> = 24..28;
}

#[derive(Debug, Clone, Copy)]
pub struct ArpPacket<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Checks the length and that this is Ethernet/IPv4 ARP.
    pub fn new_checked(buf: T) -> WireResult<Self> {
        let b = buf.as_ref();
        if b.len() < LEN {
            return Err(DropReason::ArpTruncated);
        }
        if be16(b, field::HTYPE) != 1
            || be16(b, field::PTYPE) != 0x0800
            || b[field::HLEN] != 6
            || b[field::PLEN] != 4
        {
            return Err(DropReason::ArpUnsupported);
        }
        Ok(ArpPacket { buf })
    }

    pub fn operation(&self) -> u16 {
        be16(self.buf.as_ref(), field::OPER)
    }

    pub fn sender_mac(&self) -> Mac {
        self.buf.as_ref()[field::SHA].try_into().unwrap()
    }

    pub fn sender_ip(&self) -> Ipv4Addr {
        <[u8; 4]>::try_from(&self.buf.as_ref()[field::SPA])
            .unwrap()
            .into()
    }

    pub fn target_mac(&self) -> Mac {
        self.buf.as_ref()[field::THA].try_into().unwrap()
    }

    pub fn target_ip(&self) -> Ipv4Addr {
        <[u8; 4]>::try_from(&self.buf.as_ref()[field::TPA])
            .unwrap()
            .into()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Turns a request into the reply that `mac` owns the requested address, in place.
    pub fn make_reply(&mut self, mac: Mac) {
        let (sha, spa) = (self.sender_mac(), self.sender_ip());
        let tpa = self.target_ip();
        let b = self.buf.as_mut();
        put16(b, field::OPER, OP_REPLY);
        b[field::SHA].copy_from_slice(&mac);
        b[field::SPA].copy_from_slice(&tpa.octets());
        b[field::THA].copy_from_slice(&sha);
        b[field::TPA].copy_from_slice(&spa.octets());
    }
}
