//! Schedulers: which real server takes a new connection. One file per algorithm (IPVS's
//! layout), dispatched by enum (no `dyn` on the per-packet path), looked up by ipvsadm's names.
//!
//! What is shared between workers and what is not:
//! - **Built off the packet path, immutable**: everything derived from the server list — the
//!   wrr sequence, the dh/sh bucket tables, the Maglev lookup table. A change of servers builds
//!   a new scheduler (and a new table snapshot); workers never see a half-built table.
//! - **Shared, lock-free**: connection counts (atomics in the real-server registry, changed on
//!   connection create/state change/expiry, not per packet); the rr position (CAS) and the wrr
//!   sequence number (fetch_add), so all workers walk one IPVS sequence together and the
//!   distribution is exactly IPVS's whatever the number of workers; the lblc/lblcr locality
//!   caches (direct-mapped arrays of atomics); the twos random state.
//! - **Per worker**: nothing; a scheduler is a shared, `Sync` value.

mod dh;
mod fo;
mod lblc;
mod lblcr;
mod lc;
mod mh;
mod nq;
mod ovf;
mod rr;
mod sed;
mod sh;
mod twos;
mod wlc;
mod wrr;

use std::net::IpAddr;

pub use mh::Maglev;
pub use rr::RoundRobin;

use crate::real::{RealRegistry, RealServer};

/// What a scheduler may look at about the new flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowInfo {
    pub client: IpAddr,
    pub client_port: u16,
    /// The destination address: the VIP (or, for a firewall-mark service, whatever the client
    /// addressed, which is what dh and lblc are about).
    pub vip: IpAddr,
    pub vport: u16,
    /// Milliseconds (lblcr shrinks sets that have not changed for a while).
    pub now: u64,
}

/// The scheduler names `-s` accepts, in the order ipvsadm's manual lists them.
pub const NAMES: &[&str] = &[
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos",
];

/// Scheduler flags (`ipvsadm -b`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchedFlags {
    /// sh-fallback / mh-fallback (flag-1): skip to another server when the hashed one is
    /// unavailable.
    pub fallback: bool,
    /// sh-port / mh-port (flag-2): hash the source port too.
    pub port: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchedError {
    Unknown(String),
    BadFlag(String),
    /// A flag of another scheduler's (`sh-port` with rr), refused as ipvsadm refuses it.
    Incompatible(String),
    /// More servers than the scheduler's table can name.
    TooManyServers {
        scheduler: &'static str,
        max: usize,
    },
}

impl std::fmt::Display for SchedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SchedError::Unknown(n) => write!(f, "unknown scheduler {n:?} (valid: {})", NAMES.join(", ")),
            SchedError::TooManyServers { scheduler, max } => {
                write!(f, "{scheduler} places at most {max} real servers of weight above 0")
            }
            SchedError::Incompatible(n) => write!(f, "incompatible scheduler flag `{n}'"),
            SchedError::BadFlag(n) => write!(
                f,
                "unknown scheduler flag {n:?} (valid: sh-fallback, sh-port, mh-fallback, mh-port, flag-1, flag-2, flag-3)"
            ),
        }
    }
}

impl std::error::Error for SchedError {}

impl SchedFlags {
    /// Parses `-b`'s comma-separated list, as ipvsadm spells it.
    pub fn parse(s: &str) -> Result<SchedFlags, SchedError> {
        let mut f = SchedFlags::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "sh-fallback" | "mh-fallback" | "flag-1" => f.fallback = true,
                "sh-port" | "mh-port" | "flag-2" => f.port = true,
                "flag-3" => {}
                other => return Err(SchedError::BadFlag(other.to_string())),
            }
        }
        Ok(f)
    }

    /// `-b`'s list for scheduler `sched`, as ipvsadm's `parse_sched_flags` takes it: the
    /// sh- and mh- flags only with their own scheduler.
    pub fn parse_for(s: &str, sched: &str) -> Result<SchedFlags, SchedError> {
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let own = match part {
                "sh-fallback" | "sh-port" => Some("sh"),
                "mh-fallback" | "mh-port" => Some("mh"),
                _ => None,
            };
            if own.is_some_and(|o| o != sched) {
                return Err(SchedError::Incompatible(part.to_string()));
            }
        }
        SchedFlags::parse(s)
    }

    /// As `ipvsadm -L` and `-S` write them for `sched` (`print_sched_flags`): sh's and mh's
    /// own names, flag-1 and flag-2 for the others.
    pub fn names(&self, sched: &str) -> Vec<String> {
        let (fallback, port) = match sched {
            "sh" => ("sh-fallback", "sh-port"),
            "mh" => ("mh-fallback", "mh-port"),
            _ => ("flag-1", "flag-2"),
        };
        let mut v = Vec::new();
        if self.fallback {
            v.push(fallback.to_string());
        }
        if self.port {
            v.push(port.to_string());
        }
        v
    }
}

#[derive(Debug)]
pub enum Scheduler {
    Rr(rr::RoundRobin),
    Wrr(wrr::WeightedRoundRobin),
    Lc,
    Wlc,
    Lblc(lblc::Lblc),
    Lblcr(lblcr::Lblcr),
    Dh(dh::DestinationHash),
    Sh(sh::SourceHash),
    Sed,
    Nq,
    Fo,
    Ovf,
    Mh(mh::Maglev),
    Twos(twos::TwoChoices),
}

impl Scheduler {
    /// Builds scheduler `name` for the servers `reals` (tables are built here, off the packet
    /// path). Build a new one whenever the servers or their weights change.
    pub fn new(name: &str, flags: SchedFlags, reals: &[RealServer]) -> Result<Scheduler, SchedError> {
        Ok(match name {
            "rr" => Scheduler::Rr(rr::RoundRobin::new()),
            "wrr" => Scheduler::Wrr(wrr::WeightedRoundRobin::new(reals)),
            "lc" => Scheduler::Lc,
            "wlc" => Scheduler::Wlc,
            "lblc" => Scheduler::Lblc(lblc::Lblc::new()),
            "lblcr" => Scheduler::Lblcr(lblcr::Lblcr::new()),
            "dh" => Scheduler::Dh(dh::DestinationHash::new(reals)),
            "sh" => Scheduler::Sh(sh::SourceHash::new(reals, flags)),
            "sed" => Scheduler::Sed,
            "nq" => Scheduler::Nq,
            "fo" => Scheduler::Fo,
            "ovf" => Scheduler::Ovf,
            "mh" => {
                if reals.iter().filter(|r| r.weight > 0).count() > mh::MAX_SERVERS {
                    return Err(SchedError::TooManyServers {
                        scheduler: "mh",
                        max: mh::MAX_SERVERS,
                    });
                }
                Scheduler::Mh(mh::Maglev::new(reals, flags, mh::DEFAULT_TABLE_SIZE))
            }
            "twos" => Scheduler::Twos(twos::TwoChoices::new()),
            other => return Err(SchedError::Unknown(other.to_string())),
        })
    }

    /// Bytes of the tables this scheduler keeps for its service (what bounds a service's
    /// memory beside its servers).
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Scheduler>()
            + match self {
                Scheduler::Wrr(s) => s.memory_bytes(),
                Scheduler::Lblc(s) => s.memory_bytes(),
                Scheduler::Lblcr(s) => s.memory_bytes(),
                Scheduler::Dh(s) => s.memory_bytes(),
                Scheduler::Sh(s) => s.memory_bytes(),
                Scheduler::Mh(s) => s.memory_bytes(),
                _ => 0,
            }
    }

    /// Is `name` a scheduler rvs knows?
    pub fn is_known(name: &str) -> bool {
        NAMES.contains(&name)
    }

    pub fn name(&self) -> &'static str {
        match self {
            Scheduler::Rr(_) => "rr",
            Scheduler::Wrr(_) => "wrr",
            Scheduler::Lc => "lc",
            Scheduler::Wlc => "wlc",
            Scheduler::Lblc(_) => "lblc",
            Scheduler::Lblcr(_) => "lblcr",
            Scheduler::Dh(_) => "dh",
            Scheduler::Sh(_) => "sh",
            Scheduler::Sed => "sed",
            Scheduler::Nq => "nq",
            Scheduler::Fo => "fo",
            Scheduler::Ovf => "ovf",
            Scheduler::Mh(_) => "mh",
            Scheduler::Twos(_) => "twos",
        }
    }

    /// The index in `reals` of the server for a new connection, or None when no server may
    /// take one.
    #[inline]
    pub fn pick(&self, reals: &[RealServer], reg: &RealRegistry, flow: &FlowInfo) -> Option<usize> {
        match self {
            Scheduler::Rr(s) => s.pick(reals, reg),
            Scheduler::Wrr(s) => s.pick(reals, reg),
            Scheduler::Lc => lc::pick(reals, reg),
            Scheduler::Wlc => wlc::pick(reals, reg),
            Scheduler::Lblc(s) => s.pick(reals, reg, flow),
            Scheduler::Lblcr(s) => s.pick(reals, reg, flow),
            Scheduler::Dh(s) => s.pick(reals, reg, flow),
            Scheduler::Sh(s) => s.pick(reals, reg, flow),
            Scheduler::Sed => sed::pick(reals, reg),
            Scheduler::Nq => nq::pick(reals, reg),
            Scheduler::Fo => fo::pick(reals, reg),
            Scheduler::Ovf => ovf::pick(reals, reg),
            Scheduler::Mh(s) => s.pick(reals, reg, flow),
            Scheduler::Twos(s) => s.pick(reals, reg),
        }
    }
}

/// May this server take a new connection? Weight 0 is quiesced; over its upper threshold it is
/// overloaded until it drops below the lower one.
#[inline]
pub fn available(r: &RealServer, reg: &RealRegistry) -> bool {
    r.weight > 0 && !reg.get(r.id).is_overloaded()
}

/// IPVS's connection overhead (`ip_vs_dest_conn_overhead`): an active connection costs 256
/// inactive ones.
#[inline]
pub(crate) fn overhead(r: &RealServer, reg: &RealRegistry) -> u64 {
    let s = reg.get(r.id);
    ((s.active() as u64) << 8) + s.inactive() as u64
}

/// The weighted-least family's scan (IPVS wlc/sed): the available server minimising
/// `cost / weight`, compared as `c1 * w2 > c2 * w1` to avoid division; ties keep the first.
/// The first available server of cost 0 ends the scan: nothing after it can be strictly
/// better, so the answer is IPVS's, found sooner when servers are idle.
#[inline]
pub(crate) fn least_weighted(
    reals: &[RealServer],
    reg: &RealRegistry,
    cost: impl Fn(&RealServer) -> u64,
) -> Option<usize> {
    let mut least: Option<(usize, u64, u64)> = None;
    for (i, r) in reals.iter().enumerate() {
        if !available(r, reg) {
            continue;
        }
        let c = cost(r);
        if c == 0 {
            return Some(i);
        }
        let w = r.weight as u64;
        match least {
            Some((_, lc, lw)) if lc * w <= c * lw => {}
            _ => least = Some((i, c, w)),
        }
    }
    least.map(|(i, _, _)| i)
}

/// A 64-bit mix (splitmix64's finaliser): the hash behind dh, sh, mh and the caches. Fixed,
/// so that every director computes the same server for the same address.
#[inline]
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A stable hash of an address (and optionally a port), with a seed to draw independent hashes.
#[inline]
pub(crate) fn hash_addr(a: IpAddr, port: u16, seed: u64) -> u64 {
    let v = match a {
        IpAddr::V4(a) => u32::from(a) as u64,
        IpAddr::V6(a) => {
            let x = u128::from(a);
            mix(x as u64) ^ (x >> 64) as u64
        }
    };
    mix(v ^ ((port as u64) << 32) ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

#[cfg(test)]
pub(crate) mod testutil {
    use std::sync::atomic::Ordering;

    use crate::real::{Forward, RealId, RealRegistry, RealServer};

    use super::FlowInfo;

    pub fn reals(weights: &[u32]) -> Vec<RealServer> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| RealServer {
                id: RealId(i as u32),
                addr: std::net::IpAddr::V4(std::net::Ipv4Addr::from(0xc0a8_0100 + i as u32 + 1)),
                port: 80,
                forward: Forward::Nat,
                weight: w,
                upper: 0,
                lower: 0,
            })
            .collect()
    }

    /// Sets active/inactive counts of server `i`.
    pub fn set_conns(reg: &RealRegistry, i: u32, active: u32, inactive: u32) {
        let s = reg.get(RealId(i));
        s.active.store(active, Ordering::Relaxed);
        s.inactive.store(inactive, Ordering::Relaxed);
    }

    pub fn flow(client: u32, port: u16) -> FlowInfo {
        FlowInfo {
            client: std::net::IpAddr::V4(std::net::Ipv4Addr::from(client)),
            client_port: port,
            vip: "10.0.0.100".parse().unwrap(),
            vport: 80,
            now: 0,
        }
    }

    pub fn flow_to(dst: u32) -> FlowInfo {
        FlowInfo {
            vip: std::net::IpAddr::V4(std::net::Ipv4Addr::from(dst)),
            ..flow(0x0a01_0001, 1000)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_builds_and_unknown_names_list_the_valid_ones() {
        let reals = testutil::reals(&[1, 2]);
        for n in NAMES {
            let s = Scheduler::new(n, SchedFlags::default(), &reals).unwrap();
            assert_eq!(s.name(), *n);
        }
        let e = Scheduler::new("fastest", SchedFlags::default(), &reals).unwrap_err();
        assert!(e.to_string().contains("unknown scheduler \"fastest\""), "{e}");
        assert!(
            e.to_string()
                .contains("rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq"),
            "{e}"
        );
    }

    #[test]
    fn flags_parse_like_ipvsadm() {
        assert_eq!(
            SchedFlags::parse("sh-fallback,sh-port").unwrap(),
            SchedFlags {
                fallback: true,
                port: true
            }
        );
        assert_eq!(
            SchedFlags::parse("mh-port").unwrap(),
            SchedFlags {
                fallback: false,
                port: true
            }
        );
        assert_eq!(
            SchedFlags::parse("flag-1").unwrap(),
            SchedFlags {
                fallback: true,
                port: false
            }
        );
        assert!(SchedFlags::parse("sh-bogus")
            .unwrap_err()
            .to_string()
            .contains("sh-bogus"));
        assert_eq!(
            SchedFlags {
                fallback: true,
                port: true
            }
            .names("mh"),
            ["mh-fallback", "mh-port"]
        );
    }
}
