//! Schedulers: which real server takes a new connection. One file per algorithm, dispatched by
//! enum (no `dyn` on the per-packet path), looked up by ipvsadm's names.

mod rr;

use std::net::IpAddr;

pub use rr::RoundRobin;

use crate::model::{RealRegistry, RealServer, Service};

/// What a scheduler may look at about the new flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowInfo {
    pub client: IpAddr,
    pub client_port: u16,
    pub vip: IpAddr,
    pub vport: u16,
}

#[derive(Debug)]
pub enum Scheduler {
    Rr(RoundRobin),
}

/// The names `-s` accepts, in ipvsadm's order.
pub const NAMES: &[&str] = &["rr"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownScheduler(pub String);

impl std::fmt::Display for UnknownScheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unknown scheduler {:?} (valid: {})", self.0, NAMES.join(", "))
    }
}

impl std::error::Error for UnknownScheduler {}

impl Scheduler {
    pub fn by_name(name: &str) -> Result<Scheduler, UnknownScheduler> {
        match name {
            "rr" => Ok(Scheduler::Rr(RoundRobin::default())),
            other => Err(UnknownScheduler(other.to_string())),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Scheduler::Rr(_) => "rr",
        }
    }

    /// The index in `svc.reals` of the server for a new connection, or None when no server
    /// may take one.
    #[inline]
    pub fn pick(&self, svc: &Service, reg: &RealRegistry, flow: &FlowInfo) -> Option<usize> {
        match self {
            Scheduler::Rr(s) => s.pick(&svc.reals, reg, flow),
        }
    }
}

/// May this server take a new connection? Weight 0 is quiesced; over its upper threshold it is
/// overloaded until it drops below the lower one.
#[inline]
pub fn available(r: &RealServer, reg: &RealRegistry) -> bool {
    r.weight > 0 && !reg.get(r.id).is_overloaded()
}
