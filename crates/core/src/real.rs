//! Real servers: how packets reach one, the stable id connections keep, and the counters
//! every worker shares. The schedulers need only this (not the services that hold them), so
//! `sched` depends on `real` and `model` on both, without a cycle.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// How packets reach a real server (ipvsadm -m / -g / -i).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Forward {
    /// Masquerading: rewrite the destination inbound and the source of replies.
    Nat,
    /// Direct routing: rewrite only the destination MAC.
    Dr,
    /// IP-in-IP tunnelling to the real server.
    Tun,
    /// Full NAT: both addresses rewritten, the client's to one of the service's local
    /// addresses, so replies come back to the director wherever the real server sits.
    FullNat,
}

impl Forward {
    /// As configs and the control protocol spell it: nat, dr, tun.
    pub fn name(self) -> &'static str {
        match self {
            Forward::Nat => "nat",
            Forward::Dr => "dr",
            Forward::Tun => "tun",
            Forward::FullNat => "fullnat",
        }
    }

    /// The name `ipvsadm -L` shows.
    pub fn ipvs_name(self) -> &'static str {
        match self {
            Forward::Nat => "Masq",
            Forward::Dr => "Route",
            Forward::Tun => "Tunnel",
            Forward::FullNat => "FullNat",
        }
    }

    /// Do the real server's replies come back through the director (NAT, FullNAT)? Then
    /// the connection has a second key, its reply's.
    #[inline]
    pub fn has_replies(self) -> bool {
        matches!(self, Forward::Nat | Forward::FullNat)
    }
}

/// A stable handle of a real server, valid across table snapshots: connections keep it, and
/// the counters it indexes outlive edits of the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RealId(pub u32);

/// Counters of a real server shared by all workers. Connection counts change on connection
/// create, state change and expiry only, never per packet.
#[derive(Debug, Default)]
pub struct RealShared {
    pub active: AtomicU32,
    pub inactive: AtomicU32,
    pub persistent: AtomicU32,
    pub conns: AtomicU64,
    upper: AtomicU32,
    lower: AtomicU32,
    overloaded: AtomicBool,
}

impl RealShared {
    pub fn active(&self) -> u32 {
        self.active.load(Ordering::Relaxed)
    }

    pub fn inactive(&self) -> u32 {
        self.inactive.load(Ordering::Relaxed)
    }

    pub fn is_overloaded(&self) -> bool {
        self.overloaded.load(Ordering::Relaxed)
    }

    /// Publishes `-x`/`-y` (done when tables are built) and re-evaluates the overload flag.
    pub fn set_thresholds(&self, upper: u32, lower: u32) {
        self.upper.store(upper, Ordering::Relaxed);
        self.lower.store(lower, Ordering::Relaxed);
        self.update_overload();
    }

    /// IPVS's threshold rule: overloaded at `upper` connections (active + inactive); available
    /// again below `lower`, or below three quarters of `upper` when no lower is set.
    pub fn update_overload(&self) {
        let upper = self.upper.load(Ordering::Relaxed);
        let lower = self.lower.load(Ordering::Relaxed);
        let total = self.active() + self.inactive();
        let over = self.is_overloaded();
        let now_over = if upper != 0 && total >= upper {
            true
        } else if !over {
            false
        } else if lower != 0 {
            total >= lower
        } else if upper != 0 {
            total * 4 >= upper * 3
        } else {
            false
        };
        if now_over != over {
            self.overloaded.store(now_over, Ordering::Relaxed);
        }
    }
}

/// Fixed array of shared real-server counters indexed by [`RealId`], made once at start so
/// that no connection ever holds a pointer that an edit could free.
#[derive(Debug)]
pub struct RealRegistry {
    slots: Box<[RealShared]>,
}

impl RealRegistry {
    pub fn new(capacity: usize) -> RealRegistry {
        RealRegistry {
            slots: (0..capacity).map(|_| RealShared::default()).collect(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    #[inline]
    pub fn get(&self, id: RealId) -> &RealShared {
        &self.slots[id.0 as usize]
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealServer {
    pub id: RealId,
    pub addr: IpAddr,
    pub port: u16,
    pub forward: Forward,
    /// 0 means quiesced: no new connections, existing ones continue.
    pub weight: u32,
    /// `-x`: overloaded at this many connections (0: no limit).
    pub upper: u32,
    /// `-y`: available again below this many (0: three quarters of upper).
    pub lower: u32,
}
