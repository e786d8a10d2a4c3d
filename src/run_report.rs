//! rvsd's end-of-run report as JSON, for programs (CI pipelines): everything the text report
//! shows. The schema is versioned: `schema` names it and `schema_version` changes only when a
//! field changes meaning or goes away (new fields may appear in any version).
//!
//! ```json
//! {
//!   "schema": "rvs-run-report", "schema_version": 1,
//!   "rvsd": "rvsd 0.1.0 (git ..., built against DPDK 22.11.11)",
//!   "elapsed_s": 1.42, "memory": "--no-huge ...", "workers": 1,
//!   "ports": [{"name": "outside", "rx": 12000, "tx": 11990, "rx_bytes": 0, "tx_bytes": 0,
//!              "imissed": 0, "ierrors": 0, "oerrors": 0, "rx_nombuf": 0}],
//!   "totals": {"rx": 24000, "tx": 23990, "forwarded": 23980, "replies": 10, "redirects": 0,
//!              "redirected_in": 0, "conns_created": 3000},
//!   "drops": {"no_service": 10},
//!   "host_path": null,
//!   "services": [ ...as the control socket's `list` gives them... ],
//!   "mbufs": {"in_use_start": 0, "in_use_end": 0},
//!   "latency_per_burst_ns": {"p50": 2800, "p99": 4300, "p999": 20000, "max": 90000}
//! }
//! ```

use std::collections::BTreeMap;

use rvs_api::proto::{HostPathView, ServiceView};
use serde::{Deserialize, Serialize};

use crate::daemon::Report;

pub const SCHEMA: &str = "rvs-run-report";
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub schema: String,
    pub schema_version: u32,
    pub rvsd: String,
    pub elapsed_s: f64,
    pub memory: String,
    pub workers: usize,
    pub ports: Vec<PortJson>,
    pub totals: Totals,
    /// Drops by reason (non-zero ones).
    pub drops: BTreeMap<String, u64>,
    pub host_path: Option<HostPathView>,
    pub services: Vec<ServiceView>,
    pub mbufs: Mbufs,
    pub latency_per_burst_ns: Percentiles,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortJson {
    pub name: String,
    pub rx: u64,
    pub tx: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub imissed: u64,
    pub ierrors: u64,
    pub oerrors: u64,
    pub rx_nombuf: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub rx: u64,
    pub tx: u64,
    pub forwarded: u64,
    pub replies: u64,
    pub redirects: u64,
    pub redirected_in: u64,
    pub conns_created: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mbufs {
    pub in_use_start: u32,
    pub in_use_end: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl RunReport {
    pub fn from_report(r: &Report) -> RunReport {
        let lat = &r.latency;
        RunReport {
            schema: SCHEMA.into(),
            schema_version: SCHEMA_VERSION,
            rvsd: crate::version_line("rvsd"),
            elapsed_s: r.elapsed.as_secs_f64(),
            memory: r.memory.describe().into(),
            workers: r.workers,
            ports: r
                .ports
                .iter()
                .map(|p| PortJson {
                    name: p.name.clone(),
                    rx: p.stats.ipackets,
                    tx: p.stats.opackets,
                    rx_bytes: p.stats.ibytes,
                    tx_bytes: p.stats.obytes,
                    imissed: p.stats.imissed,
                    ierrors: p.stats.ierrors,
                    oerrors: p.stats.oerrors,
                    rx_nombuf: p.stats.rx_nombuf,
                })
                .collect(),
            totals: Totals {
                rx: r.rx,
                tx: r.tx,
                forwarded: r.forwarded,
                replies: r.replies,
                redirects: r.redirects,
                redirected_in: r.redirected_in,
                conns_created: r.conns_created,
            },
            drops: r.drops.iter().cloned().collect(),
            host_path: r.host_path.clone(),
            services: r.services.clone(),
            mbufs: Mbufs {
                in_use_start: r.mbufs_in_use_start,
                in_use_end: r.mbufs_in_use_end,
            },
            latency_per_burst_ns: Percentiles {
                p50: lat.value_at_quantile(0.5),
                p99: lat.value_at_quantile(0.99),
                p999: lat.value_at_quantile(0.999),
                max: lat.max(),
            },
        }
    }
}
