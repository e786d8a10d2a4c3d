//! An owned packet buffer.
//!
//! rvs frames fit one segment (pools are made with room for a full MTU frame), so the data
//! accessors work on the first segment; [`Mbuf::segments`] tells when a driver chained more.

use std::ptr::NonNull;

use dpdk_sys as sys;

/// Why an mbuf length operation was refused; the mbuf is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MbufError {
    #[error("not enough headroom: wanted {wanted} bytes, {room} available")]
    NoHeadroom { wanted: usize, room: usize },
    #[error("not enough tailroom: wanted {wanted} bytes, {room} available")]
    NoTailroom { wanted: usize, room: usize },
    #[error("cannot remove {wanted} bytes from a {len}-byte segment")]
    TooShort { wanted: usize, len: usize },
}

/// One packet buffer from a [`crate::Mempool`], returned to its pool when dropped.
///
/// `repr(transparent)` over a non-null pointer: `Option<Mbuf>` has the layout of
/// `*mut rte_mbuf`, which lets [`crate::Burst`] hand its array straight to the PMD.
#[repr(transparent)]
#[derive(Debug)]
pub struct Mbuf(NonNull<sys::rte_mbuf>);

// SAFETY: an Mbuf is the sole owner of its buffer; DPDK allows an mbuf to be freed or used on any
// thread (mbufs are routinely passed between lcores), and the pool's ring is multi-thread safe.
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    /// `raw` must be a valid mbuf that nothing else owns or will free.
    pub unsafe fn from_raw(raw: NonNull<sys::rte_mbuf>) -> Mbuf {
        Mbuf(raw)
    }

    /// Gives up ownership; the caller must free the mbuf (or pass it to a PMD).
    pub fn into_raw(self) -> NonNull<sys::rte_mbuf> {
        let raw = self.0;
        std::mem::forget(self);
        raw
    }

    pub fn as_ptr(&self) -> *mut sys::rte_mbuf {
        self.0.as_ptr()
    }

    /// Bytes in the first segment.
    #[inline]
    pub fn len(&self) -> usize {
        // SAFETY: self owns a valid mbuf; data_len is a plain field (read here rather than
        // through the shim: the path asks for the data several times a packet, and a call
        // into C each time cost more than the field read).
        unsafe { (*self.0.as_ptr()).data_len as usize }
    }

    /// The first data byte: `rte_pktmbuf_mtod`, from the mbuf's fields.
    #[inline]
    fn mtod(&self) -> *mut u8 {
        // SAFETY: self owns a valid mbuf: buf_addr + data_off is inside its buffer.
        unsafe {
            let m = self.0.as_ptr();
            ((*m).buf_addr as *mut u8).add((*m).data_off as usize)
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes in the whole packet (all segments).
    pub fn pkt_len(&self) -> usize {
        // SAFETY: self owns a valid mbuf.
        unsafe { sys::rvs_pktmbuf_pkt_len(self.0.as_ptr()) as usize }
    }

    pub fn segments(&self) -> u16 {
        // SAFETY: self owns a valid mbuf.
        unsafe { sys::rvs_pktmbuf_nb_segs(self.0.as_ptr()) }
    }

    pub fn headroom(&self) -> usize {
        // SAFETY: self owns a valid mbuf.
        unsafe { sys::rvs_pktmbuf_headroom(self.0.as_ptr()) as usize }
    }

    pub fn tailroom(&self) -> usize {
        // SAFETY: self owns a valid mbuf.
        unsafe { sys::rvs_pktmbuf_tailroom(self.0.as_ptr()) as usize }
    }

    /// The first segment's data.
    #[inline]
    pub fn data(&self) -> &[u8] {
        // SAFETY: mtod points at data_len initialised bytes inside the mbuf's buffer, which self
        // owns and which lives as long as the borrow of self.
        unsafe { std::slice::from_raw_parts(self.mtod(), self.len()) }
    }

    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as for data(), and &mut self guarantees the only access.
        unsafe { std::slice::from_raw_parts_mut(self.mtod(), self.len()) }
    }

    /// Grows the packet at the front by `n` bytes (for encapsulation) and returns the new bytes.
    pub fn prepend(&mut self, n: usize) -> Result<&mut [u8], MbufError> {
        let room = self.headroom();
        if n > room {
            return Err(MbufError::NoHeadroom { wanted: n, room });
        }
        // SAFETY: n <= headroom (so it fits u16 and the call succeeds); the returned pointer is
        // the new start of data, n bytes of which are inside the buffer self owns.
        unsafe {
            let p = sys::rvs_pktmbuf_prepend(self.0.as_ptr(), n as u16);
            Ok(std::slice::from_raw_parts_mut(p, n))
        }
    }

    /// Grows the packet at the end by `n` bytes and returns the new bytes.
    pub fn append(&mut self, n: usize) -> Result<&mut [u8], MbufError> {
        let room = self.tailroom();
        if n > room || self.segments() != 1 {
            return Err(MbufError::NoTailroom { wanted: n, room });
        }
        // SAFETY: single segment and n <= tailroom, so append succeeds and returns a pointer to
        // n bytes at the end of the data, inside the buffer self owns.
        unsafe {
            let p = sys::rvs_pktmbuf_append(self.0.as_ptr(), n as u16);
            Ok(std::slice::from_raw_parts_mut(p, n))
        }
    }

    /// Removes `n` bytes from the front (for decapsulation).
    pub fn adj(&mut self, n: usize) -> Result<(), MbufError> {
        let len = self.len();
        if n > len {
            return Err(MbufError::TooShort { wanted: n, len });
        }
        // SAFETY: n <= data_len of the first segment, the condition under which adj succeeds.
        unsafe { sys::rvs_pktmbuf_adj(self.0.as_ptr(), n as u16) };
        Ok(())
    }

    /// Removes `n` bytes from the end.
    pub fn trim(&mut self, n: usize) -> Result<(), MbufError> {
        let len = self.len();
        if n > len || self.segments() != 1 {
            return Err(MbufError::TooShort { wanted: n, len });
        }
        // SAFETY: single segment and n <= data_len, the condition under which trim succeeds.
        unsafe { sys::rvs_pktmbuf_trim(self.0.as_ptr(), n as u16) };
        Ok(())
    }

    /// The RSS hash the NIC computed (0 when the port has no RSS).
    pub fn rss_hash(&self) -> u32 {
        // SAFETY: self owns a valid mbuf.
        unsafe { sys::rvs_pktmbuf_rss_hash(self.0.as_ptr()) }
    }

    /// The port the packet was received on.
    pub fn port(&self) -> u16 {
        // SAFETY: self owns a valid mbuf.
        unsafe { sys::rvs_pktmbuf_port(self.0.as_ptr()) }
    }

    /// Says the packet was received on DPDK port `port` (a frame made here stands for one
    /// received).
    pub fn set_port(&mut self, port: u16) {
        // SAFETY: self owns a valid mbuf; the port field is plain data.
        unsafe { sys::rvs_pktmbuf_set_port(self.0.as_ptr(), port) }
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: self is the sole owner; the mbuf is not used after this.
        unsafe { sys::rvs_pktmbuf_free(self.0.as_ptr()) }
    }
}

/// DPDK 22.11's RX checksum flags (`RTE_MBUF_F_RX_*_CKSUM_*`: bindgen cannot expand their
/// `RTE_BIT64` macros; a test checks them against the C side's).
#[cfg_attr(not(feature = "frame"), allow(dead_code))]
const RX_IP_CKSUM_GOOD: u64 = 1 << 7;
#[cfg_attr(not(feature = "frame"), allow(dead_code))]
const RX_IP_CKSUM_BAD: u64 = 1 << 4;
#[cfg_attr(not(feature = "frame"), allow(dead_code))]
const RX_L4_CKSUM_GOOD: u64 = 1 << 8;
#[cfg_attr(not(feature = "frame"), allow(dead_code))]
const RX_L4_CKSUM_BAD: u64 = 1 << 3;

#[cfg(feature = "frame")]
impl rvs_core::Frame for Mbuf {
    #[inline]
    fn data(&self) -> &[u8] {
        Mbuf::data(self)
    }

    #[inline]
    fn rx_checksums(&self) -> rvs_core::RxChecksums {
        use rvs_core::RxCheck;
        // SAFETY: self owns a valid mbuf; ol_flags is plain data (read here, not through the
        // shim: once a packet).
        let f = unsafe { (*self.0.as_ptr()).ol_flags };
        // Both bits set means "none" (the NIC did not check), as neither does.
        let of = |good: u64, bad: u64| match (f & good != 0, f & bad != 0) {
            (true, false) => RxCheck::Good,
            (false, true) => RxCheck::Bad,
            _ => RxCheck::Unknown,
        };
        rvs_core::RxChecksums {
            ip: of(RX_IP_CKSUM_GOOD, RX_IP_CKSUM_BAD),
            l4: of(RX_L4_CKSUM_GOOD, RX_L4_CKSUM_BAD),
        }
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        Mbuf::data_mut(self)
    }

    #[inline]
    fn headroom(&self) -> usize {
        Mbuf::headroom(self)
    }

    #[inline]
    fn prepend(&mut self, n: usize) -> bool {
        Mbuf::prepend(self, n).is_ok()
    }

    #[inline]
    fn adj(&mut self, n: usize) -> bool {
        Mbuf::adj(self, n).is_ok()
    }

    #[inline]
    fn trim(&mut self, n: usize) -> bool {
        Mbuf::trim(self, n).is_ok()
    }

    #[inline]
    fn append(&mut self, n: usize) -> bool {
        Mbuf::append(self, n).is_ok()
    }
}

#[cfg(test)]
mod rx_flag_tests {
    #[test]
    fn rx_checksum_flags_are_the_c_sides() {
        // SAFETY: a pure function returning constants.
        let c = |i| unsafe { dpdk_sys::rvs_rx_csum_flag(i) };
        assert_eq!(
            [c(0), c(1), c(2), c(3)],
            [
                super::RX_IP_CKSUM_GOOD,
                super::RX_IP_CKSUM_BAD,
                super::RX_L4_CKSUM_GOOD,
                super::RX_L4_CKSUM_BAD
            ]
        );
    }
}
