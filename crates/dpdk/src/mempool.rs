//! Packet-buffer pools.

use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::Arc;

use dpdk_sys as sys;

use crate::burst::Burst;
use crate::eal::Eal;
use crate::error::{Error, Result};
use crate::mbuf::Mbuf;

/// Room for a 1500-byte MTU frame with VLAN tag, plus DPDK's 128-byte headroom for prepends.
pub const DEFAULT_DATA_ROOM: u16 = 2048 + 128;

/// An mbuf pool. Clones share the pool. The pool is freed when the last clone is dropped and no
/// mbuf is in use; if mbufs are still out (a leak elsewhere), it is left allocated rather than
/// freed under them.
#[derive(Clone, Debug)]
pub struct Mempool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    raw: NonNull<sys::rte_mempool>,
    name: String,
}

// SAFETY: rte_mempool's get/put paths are multi-thread safe (ring-backed, per-lcore caches), and
// the pointer stays valid until Inner's Drop.
unsafe impl Send for Inner {}
// SAFETY: as above; &Inner only reads counters or calls thread-safe mempool functions.
unsafe impl Sync for Inner {}

impl Mempool {
    /// Creates a pool of `n` mbufs with a per-lcore cache of `cache` and `data_room` bytes each
    /// (use [`DEFAULT_DATA_ROOM`]). `name` must be unique in the process.
    pub fn new(_eal: &Eal, name: &str, n: u32, cache: u32, data_room: u16) -> Result<Mempool> {
        let cname = CString::new(name).map_err(|_| Error::Invalid {
            what: "mempool name",
            why: "contains a NUL byte".into(),
        })?;
        if cache > sys::RTE_MEMPOOL_CACHE_MAX_SIZE || cache as u64 * 3 / 2 > n as u64 {
            return Err(Error::Invalid {
                what: "mempool cache size",
                why: format!(
                    "{cache} must be at most {} and two thirds of the pool size {n}",
                    sys::RTE_MEMPOOL_CACHE_MAX_SIZE
                ),
            });
        }
        // SAFETY: EAL is initialised (the &Eal proves it); the name is a valid C string.
        let socket = unsafe { sys::rte_socket_id() } as i32;
        // SAFETY: as above; all sizes were checked.
        let raw = unsafe { sys::rte_pktmbuf_pool_create(cname.as_ptr(), n, cache, 0, data_room, socket) };
        let raw = NonNull::new(raw).ok_or_else(|| Error::from_rte_errno("rte_pktmbuf_pool_create"))?;
        Ok(Mempool {
            inner: Arc::new(Inner {
                raw,
                name: name.to_string(),
            }),
        })
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    pub(crate) fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.inner.raw.as_ptr()
    }

    /// Allocates one mbuf (empty, with the default headroom).
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool is valid; a non-null result is a fresh mbuf that we now own.
        let m = unsafe { sys::rvs_pktmbuf_alloc(self.as_ptr()) };
        NonNull::new(m).map(|m| unsafe { Mbuf::from_raw(m) })
    }

    /// Fills the burst's free slots with `n` fresh mbufs, all or nothing.
    pub fn alloc_bulk(&self, burst: &mut Burst, n: usize) -> Result<()> {
        if n > burst.room() {
            return Err(Error::Invalid {
                what: "alloc_bulk count",
                why: format!("{n} exceeds the burst's {} free slots", burst.room()),
            });
        }
        // SAFETY: the slots from len on are free and there are at least n of them; on success
        // DPDK writes n valid mbufs there, which the burst then owns.
        unsafe {
            let dst = burst.raw_slots().add(burst.len());
            let ret = sys::rvs_pktmbuf_alloc_bulk(self.as_ptr(), dst, n as u32);
            if ret != 0 {
                return Err(Error::dpdk("rte_pktmbuf_alloc_bulk", ret));
            }
            burst.filled(n);
        }
        Ok(())
    }

    /// Mbufs currently allocated (including those sitting in lcore caches).
    pub fn in_use(&self) -> u32 {
        // SAFETY: the pool is valid; the call only reads counters.
        unsafe { sys::rte_mempool_in_use_count(self.as_ptr()) }
    }

    /// Mbufs available (in the ring and the caches).
    pub fn available(&self) -> u32 {
        // SAFETY: the pool is valid; the call only reads counters.
        unsafe { sys::rte_mempool_avail_count(self.as_ptr()) }
    }

    /// Objects held in `lcore`'s cache of this pool.
    pub fn cache_len(&self, lcore: u32) -> u32 {
        // SAFETY: the pool is valid; the shim bounds-checks lcore against RTE_MAX_LCORE.
        unsafe { sys::rvs_mempool_cache_len(self.as_ptr(), lcore) }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // SAFETY: the pool is valid; freeing it is sound only with no mbuf out, checked here.
        unsafe {
            if sys::rte_mempool_in_use_count(self.raw.as_ptr()) == 0 {
                sys::rte_mempool_free(self.raw.as_ptr());
            }
        }
    }
}
