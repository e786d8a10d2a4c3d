//! A fixed-size burst of mbufs: the unit that rx and tx work in, with no heap allocation.

use dpdk_sys as sys;

use crate::mbuf::Mbuf;

/// Packets per rx/tx call: DPDK's customary burst.
pub const BURST_SIZE: usize = 32;

/// Up to [`BURST_SIZE`] owned mbufs in a fixed array. Slots `0..len` are always `Some`.
/// Whatever a burst still holds when dropped is freed.
pub struct Burst {
    slots: [Option<Mbuf>; BURST_SIZE],
    len: usize,
}

impl Default for Burst {
    fn default() -> Self {
        Burst::new()
    }
}

impl Burst {
    pub const fn new() -> Burst {
        Burst {
            slots: [const { None }; BURST_SIZE],
            len: 0,
        }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    pub fn is_full(&self) -> bool {
        self.len == BURST_SIZE
    }

    /// Free slots.
    #[inline]
    pub fn room(&self) -> usize {
        BURST_SIZE - self.len
    }

    /// Adds an mbuf; gives it back when the burst is full.
    #[inline]
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        if self.is_full() {
            return Err(m);
        }
        self.slots[self.len] = Some(m);
        self.len += 1;
        Ok(())
    }

    #[inline]
    pub fn pop(&mut self) -> Option<Mbuf> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        self.slots[self.len].take()
    }

    #[inline]
    pub fn as_slice(&self) -> &[Mbuf] {
        // SAFETY: Mbuf is repr(transparent) over NonNull, so Option<Mbuf> has the same layout as
        // Mbuf with None as null; slots 0..len are all Some, so they are valid Mbufs.
        unsafe { std::slice::from_raw_parts(self.slots.as_ptr().cast::<Mbuf>(), self.len) }
    }

    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [Mbuf] {
        // SAFETY: as in as_slice; &mut self makes the access exclusive, and a caller cannot write
        // a None through &mut Mbuf.
        unsafe { std::slice::from_raw_parts_mut(self.slots.as_mut_ptr().cast::<Mbuf>(), self.len) }
    }

    /// Takes every mbuf out, in order, leaving the burst empty.
    #[inline]
    pub fn drain(&mut self) -> impl Iterator<Item = Mbuf> + '_ {
        let n = self.len;
        self.len = 0;
        self.slots[..n]
            .iter_mut()
            .map(|s| s.take().expect("slots below len are Some"))
    }

    /// Frees every mbuf in the burst with one bulk call.
    pub fn clear(&mut self) {
        if self.len == 0 {
            return;
        }
        // SAFETY: slots 0..len are owned non-null mbufs laid out as *mut rte_mbuf (see
        // as_slice); after the bulk free they are forgotten by resetting them to None without
        // running Drop.
        unsafe {
            sys::rvs_pktmbuf_free_bulk(self.raw_slots(), self.len as u32);
            for s in &mut self.slots[..self.len] {
                std::ptr::write(s, None);
            }
        }
        self.len = 0;
    }

    /// The array as raw pointers for the PMD: slot i is `*mut rte_mbuf` (null when None).
    pub(crate) fn raw_slots(&mut self) -> *mut *mut sys::rte_mbuf {
        self.slots.as_mut_ptr().cast::<*mut sys::rte_mbuf>()
    }

    /// Records that the PMD filled `n` more slots after `len` (rx).
    ///
    /// # Safety
    /// Slots `len..len+n` must now hold valid mbufs owned by this burst.
    pub(crate) unsafe fn filled(&mut self, n: usize) {
        debug_assert!(self.len + n <= BURST_SIZE);
        self.len += n;
    }

    /// Records that the PMD took the first `n` mbufs (tx): the rest move to the front.
    ///
    /// # Safety
    /// The first `n` slots must have been handed to the PMD, which now owns them.
    pub(crate) unsafe fn consumed(&mut self, n: usize) {
        debug_assert!(n <= self.len);
        for s in &mut self.slots[..n] {
            // The PMD owns these now: forget without freeing.
            std::ptr::write(s, None);
        }
        self.slots[..self.len].rotate_left(n);
        self.len -= n;
    }
}

impl Drop for Burst {
    fn drop(&mut self) {
        self.clear();
    }
}

impl std::fmt::Debug for Burst {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Burst").field("len", &self.len).finish()
    }
}
