//! rvs-core: the pure data path of the rvs load balancer.
//!
//! No DPDK, no clock, no I/O, no threads: frames come in as [`Frame`]s, time as a `now` in
//! milliseconds, and out go [`Verdict`]s. That is what lets every behaviour be tested,
//! fuzzed and measured in memory (the quinn-proto way).
//!
//! - [`wire`]: zero-copy header views; [`checksum`]: RFC 1071 and RFC 1624.
//! - [`model`]: services and real servers in IPVS's terms; [`sched`]: the schedulers.
//! - [`conn`]: the per-worker connection table, TCP state tables and timeouts.
//! - [`net`]: the director's addresses and routes.
//! - [`path`]: the entry point, [`Director::process_burst`], and the forwarding methods.
//! - [`sync`]: IPVS's connection-sync protocol (version 1) between directors.
//! - [`drop`]: every reason a frame is dropped, each with a counter.

pub mod checksum;
pub mod conn;
pub mod drop;
pub mod frame;
pub mod fuzzing;
pub mod model;
pub mod net;
pub mod path;
pub mod real;
pub mod sched;
pub mod sync;
pub mod tables;
pub mod wire;

pub use drop::{DropCounters, DropReason};
pub use frame::{Frame, RxCheck, RxChecksums, VecFrame};
pub use path::{
    Director, DirectorConfig, RealTraffic, SyncRefusal, SyncStats, Verdict, WorkerStats, FRAG_ENTRIES,
    FRAG_HOLD, FRAG_HOLD_MS, FRAG_TTL_MS,
};
pub use tables::Tables;
