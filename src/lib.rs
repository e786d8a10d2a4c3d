//! The `rvs` package: the `rvsd` daemon and the replay tool, and the pieces they share that are
//! not part of the pure core or the DPDK layer (`rvsadm`, the bench and the traffic generator
//! are packages of their own).

pub mod capture;
/// The control plane is a package of its own; rvsd uses its modules by these names.
pub use rvs_control::{control, health, peer, routes, sync};
pub mod daemon;
pub mod ealenv;
pub mod host;
pub mod instance;
pub mod run_report;

/// `rvs 0.1.0 (git dc987ac, built against DPDK 22.11.11)`.
pub fn version_line(bin: &str) -> String {
    format!(
        "{bin} {} (git {}, built against DPDK {})",
        env!("CARGO_PKG_VERSION"),
        env!("RVS_GIT_VERSION"),
        env!("RVS_DPDK_BUILD_VERSION")
    )
}
