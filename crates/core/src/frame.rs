//! What the core needs from a packet buffer: its bytes, and room to grow or shrink at either end
//! (tunnel headers are prepended, ICMP errors are built in place). The data plane implements it
//! for DPDK mbufs; tests and fuzzers use [`VecFrame`].

/// What the NIC said of a received frame's checksums (DPDK's `RTE_MBUF_F_RX_*_CKSUM_*`),
/// for the checks it makes unnecessary. `Unknown` (a device that does not check, a frame
/// made or copied in software) means the path checks itself; `Bad` is a counted drop as a
/// failed software check is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RxCheck {
    #[default]
    Unknown,
    Good,
    Bad,
}

/// The NIC's word on the IPv4 header checksum and on the TCP/UDP checksum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RxChecksums {
    pub ip: RxCheck,
    pub l4: RxCheck,
}

pub trait Frame {
    fn data(&self) -> &[u8];
    /// What the NIC verified of this frame's checksums (nothing, by default).
    #[inline]
    fn rx_checksums(&self) -> RxChecksums {
        RxChecksums::default()
    }
    fn data_mut(&mut self) -> &mut [u8];
    fn headroom(&self) -> usize;
    /// Grows the front by `n` bytes (contents unspecified); false, and no change, if no room.
    fn prepend(&mut self, n: usize) -> bool;
    /// Removes `n` bytes from the front; false, and no change, if shorter.
    fn adj(&mut self, n: usize) -> bool;
    /// Removes `n` bytes from the end; false, and no change, if shorter.
    fn trim(&mut self, n: usize) -> bool;
    /// Grows the end by `n` bytes (contents unspecified); false, and no change, if no room.
    fn append(&mut self, n: usize) -> bool;
}

/// A frame in a `Vec` with headroom in front, like an mbuf's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VecFrame {
    buf: Vec<u8>,
    start: usize,
    rx: RxChecksums,
}

impl VecFrame {
    /// DPDK's default mbuf headroom.
    pub const HEADROOM: usize = 128;

    pub fn new(data: &[u8]) -> VecFrame {
        VecFrame::with_headroom(data, Self::HEADROOM)
    }

    pub fn with_headroom(data: &[u8], headroom: usize) -> VecFrame {
        let mut buf = vec![0u8; headroom + data.len()];
        buf[headroom..].copy_from_slice(data);
        VecFrame {
            buf,
            start: headroom,
            rx: RxChecksums::default(),
        }
    }

    /// The same frame as a NIC that checked its checksums would hand it over.
    pub fn with_rx_checksums(mut self, rx: RxChecksums) -> VecFrame {
        self.rx = rx;
        self
    }
}

// Inlined as the data plane's mbuf frame is, so that the core's instruction counts (callgrind,
// on these frames) are the data plane's.
impl Frame for VecFrame {
    #[inline]
    fn data(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    #[inline]
    fn rx_checksums(&self) -> RxChecksums {
        self.rx
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..]
    }

    fn headroom(&self) -> usize {
        self.start
    }

    fn prepend(&mut self, n: usize) -> bool {
        if n > self.start {
            return false;
        }
        self.start -= n;
        true
    }

    fn adj(&mut self, n: usize) -> bool {
        if n > self.buf.len() - self.start {
            return false;
        }
        self.start += n;
        true
    }

    fn trim(&mut self, n: usize) -> bool {
        if n > self.buf.len() - self.start {
            return false;
        }
        self.buf.truncate(self.buf.len() - n);
        true
    }

    fn append(&mut self, n: usize) -> bool {
        // An mbuf has about 2 KB of room; a VecFrame grows like one.
        if self.buf.len() + n > self.start + 2048 {
            return false;
        }
        self.buf.resize(self.buf.len() + n, 0);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grow_and_shrink() {
        let mut f = VecFrame::with_headroom(&[1, 2, 3, 4], 2);
        assert!(!f.prepend(3));
        assert!(f.prepend(2));
        assert_eq!(f.data().len(), 6);
        assert!(f.adj(2));
        assert_eq!(f.data(), &[1, 2, 3, 4]);
        assert!(f.trim(1));
        assert_eq!(f.data(), &[1, 2, 3]);
        assert!(!f.trim(4));
        assert!(!f.adj(4));
    }
}
