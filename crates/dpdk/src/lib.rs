//! The safe layer over DPDK. Every `unsafe` block of rvs lives here or in `dpdk-sys`, each with a
//! `// SAFETY:` line saying why the call is sound.
//!
//! The pieces and the rules they enforce by construction:
//! - [`Eal`] is a token that proves `rte_eal_init` succeeded; everything that needs EAL takes
//!   `&Eal`. EAL initialises once per process, so a second [`Eal::init`] returns an error.
//! - [`Mempool`] owns an mbuf pool; [`Mbuf`] is one owned packet buffer, freed on `Drop`.
//! - [`Port`] probes a device from a DPDK device string (vdev or PCI), configures queues, RSS and
//!   MTU, and hands out one [`RxQueue`] and one [`TxQueue`] per queue id, each owned by one worker.
//!   The port is stopped and closed when the last of the port and its queues is dropped.
//! - [`Burst`] is a fixed array of up to [`BURST_SIZE`] mbufs: queues burst into it without any
//!   heap allocation.
//! - [`spawn_worker`] starts a thread pinned to a CPU and registered with EAL, so it has an lcore
//!   id and uses its mempool caches.
//!
//! Errors are typed values that carry DPDK's own reason (`rte_strerror`); nothing here panics on
//! a DPDK failure or aborts the process.

mod burst;
mod eal;
mod error;
mod lcore;
mod mbuf;
mod mempool;
mod port;

pub use burst::{Burst, BURST_SIZE};
pub use eal::{version, Eal};
pub use error::{Error, Result};
pub use lcore::{current_lcore, spawn_worker, tsc, tsc_hz, Worker};
pub use mbuf::{Mbuf, MbufError};
pub use mempool::{Mempool, DEFAULT_DATA_ROOM};
pub use port::{Link, Port, PortConfig, PortStats, RssHash, RxQueue, TxQueue};
