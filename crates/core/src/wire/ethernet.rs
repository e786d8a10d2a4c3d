//! Ethernet II with at most one 802.1Q tag.

use super::{be16, ethertype, put16, DropReason, WireResult};

pub type Mac = [u8; 6];
pub const BROADCAST: Mac = [0xff; 6];

mod field {
    pub const DST: std::ops::Range<usize> = 0..6;
    pub const SRC: std::ops::Range<usize> = 6..12;
    pub const TYPE: usize = 12;
    pub const VLAN_TCI: usize = 14;
    pub const VLAN_TYPE: usize = 16;
}

pub const HEADER_LEN: usize = 14;
pub const VLAN_HEADER_LEN: usize = 18;

/// An Ethernet frame. `header_len` covers the VLAN tag when there is one.
#[derive(Debug, Clone, Copy)]
pub struct EthernetFrame<T> {
    buf: T,
    header_len: usize,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Checks the header (and the VLAN tag, if any). Two stacked tags (QinQ) are refused.
    #[inline]
    pub fn new_checked(buf: T) -> WireResult<Self> {
        let b = buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(DropReason::EthTruncated);
        }
        let header_len = match be16(b, field::TYPE) {
            ethertype::VLAN => {
                if b.len() < VLAN_HEADER_LEN {
                    return Err(DropReason::VlanTruncated);
                }
                if matches!(be16(b, field::VLAN_TYPE), ethertype::VLAN | ethertype::QINQ) {
                    return Err(DropReason::VlanStacked);
                }
                VLAN_HEADER_LEN
            }
            ethertype::QINQ => return Err(DropReason::VlanStacked),
            _ => HEADER_LEN,
        };
        Ok(EthernetFrame { buf, header_len })
    }

    #[inline]
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    #[inline]
    pub fn dst(&self) -> Mac {
        self.buf.as_ref()[field::DST].try_into().unwrap()
    }

    #[inline]
    pub fn src(&self) -> Mac {
        self.buf.as_ref()[field::SRC].try_into().unwrap()
    }

    /// The VLAN id of the 802.1Q tag, if any.
    pub fn vlan(&self) -> Option<u16> {
        (self.header_len == VLAN_HEADER_LEN).then(|| be16(self.buf.as_ref(), field::VLAN_TCI) & 0x0fff)
    }

    /// The ethertype of the payload (after the VLAN tag, if any).
    #[inline]
    pub fn ethertype(&self) -> u16 {
        be16(self.buf.as_ref(), self.header_len - 2)
    }

    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[self.header_len..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    pub fn set_dst(&mut self, mac: Mac) {
        self.buf.as_mut()[field::DST].copy_from_slice(&mac);
    }

    pub fn set_src(&mut self, mac: Mac) {
        self.buf.as_mut()[field::SRC].copy_from_slice(&mac);
    }

    pub fn set_ethertype(&mut self, t: u16) {
        let at = self.header_len - 2;
        put16(self.buf.as_mut(), at, t);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let h = self.header_len;
        &mut self.buf.as_mut()[h..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_tagged() {
        let mut f = [0u8; 60];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let e = EthernetFrame::new_checked(&f[..]).unwrap();
        assert_eq!((e.header_len(), e.vlan(), e.ethertype()), (14, None, 0x0800));
        f[12..18].copy_from_slice(&[0x81, 0x00, 0x20, 0x64, 0x86, 0xdd]);
        let e = EthernetFrame::new_checked(&f[..]).unwrap();
        assert_eq!((e.header_len(), e.vlan(), e.ethertype()), (18, Some(100), 0x86dd));
    }

    #[test]
    fn refusals() {
        assert_eq!(
            EthernetFrame::new_checked(&[0u8; 13][..]).unwrap_err(),
            DropReason::EthTruncated
        );
        let mut f = [0u8; 16];
        f[12..14].copy_from_slice(&[0x81, 0x00]);
        assert_eq!(
            EthernetFrame::new_checked(&f[..]).unwrap_err(),
            DropReason::VlanTruncated
        );
        let mut f = [0u8; 30];
        f[12..18].copy_from_slice(&[0x81, 0x00, 0, 1, 0x81, 0x00]);
        assert_eq!(
            EthernetFrame::new_checked(&f[..]).unwrap_err(),
            DropReason::VlanStacked
        );
    }
}
