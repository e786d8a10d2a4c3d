//! rvs-dataplane: the glue between the pure core and DPDK.
//!
//! A [`Worker`] owns rx queue i and tx queue i of every port, its own
//! [`rvs_core::Director`] (connection tables, counters) and its end of the redirect rings.
//! Per poll loop it receives a burst per port, hands it to the core, and acts on the verdicts:
//! resolve the next hop and transmit, transmit a reply, hand the frame to the worker that owns
//! its flow, teach the neighbor table, or free it (the core has counted why).
//!
//! What crosses threads, and how:
//! - tables: an `ArcSwap<Tables>` the control thread publishes, loaded once per burst;
//! - redirects: a bounded lock-free ring per ordered pair of workers (mbufs move by value);
//! - neighbors: an `ArcSwap` map, replaced on the rare learn; workers only load it;
//! - counters: each worker publishes its own into atomics that only it writes;
//! - the host path ([`host`]): frames for the kernel twins go up one ring to the host thread,
//!   and what the kernel sends comes down a ring per worker;
//! - connection sync ([`SyncQueues`]): records go to the sync daemon and come from it through
//!   bounded queues per worker; a full queue is a counted loss.

pub mod counters;
pub mod host;
pub mod neighbor;
pub mod worker;

pub use counters::{DpDrop, WorkerCounters};
pub use host::{HostRings, HostStats};
pub use neighbor::Neighbors;
pub use worker::{Command, ConnEntry, Shared, SyncQueues, Worker, WorkerPorts, WorkerResult};

pub mod baseline;
