//! Virtual services and real servers, in IPVS's terms.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use crate::sched::{SchedError, SchedFlags, Scheduler};
use crate::wire::proto;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => proto::TCP,
            Protocol::Udp => proto::UDP,
            Protocol::Sctp => proto::SCTP,
        }
    }

    /// As configs, the control protocol and rvsadm spell it: tcp, udp, sctp.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }

    pub fn from_number(n: u8) -> Option<Protocol> {
        match n {
            proto::TCP => Some(Protocol::Tcp),
            proto::UDP => Some(Protocol::Udp),
            proto::SCTP => Some(Protocol::Sctp),
            _ => None,
        }
    }
}

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
}

impl Forward {
    /// As configs and the control protocol spell it: nat, dr, tun.
    pub fn name(self) -> &'static str {
        match self {
            Forward::Nat => "nat",
            Forward::Dr => "dr",
            Forward::Tun => "tun",
        }
    }

    /// The name `ipvsadm -L` shows.
    pub fn ipvs_name(self) -> &'static str {
        match self {
            Forward::Nat => "Masq",
            Forward::Dr => "Route",
            Forward::Tun => "Tunnel",
        }
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

/// Persistence (`ipvsadm -p TIMEOUT -M NETMASK`): a client's new connections go to the same
/// real server while its template lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Persistence {
    pub timeout_s: u32,
    /// Prefix length applied to the client address (32 or 128: per client).
    pub prefix_len: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServiceKey {
    pub protocol: Protocol,
    pub vip: IpAddr,
    pub port: u16,
}

/// When a service's VIP is answered: ARP/ND and echo for it, and new connections to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Announce {
    /// On every port, whatever the kernel says (rvs owns the address).
    #[default]
    Always,
    /// On a port only while that port's kernel twin holds the address, so that whoever moves
    /// the address (an operator's `ip addr`, keepalived's VRRP) moves the VIP. Connections
    /// already made keep being forwarded after the address goes.
    FollowHost,
}

impl Announce {
    pub fn name(self) -> &'static str {
        match self {
            Announce::Always => "always",
            Announce::FollowHost => "follow-host",
        }
    }

    pub fn parse(s: &str) -> Option<Announce> {
        match s {
            "always" => Some(Announce::Always),
            "follow-host" => Some(Announce::FollowHost),
            _ => None,
        }
    }
}

#[derive(Debug)]
pub struct Service {
    pub key: ServiceKey,
    pub scheduler: Scheduler,
    pub flags: SchedFlags,
    pub persistence: Option<Persistence>,
    pub reals: Vec<RealServer>,
    pub announce: Announce,
    /// IPVS's sloppy_tcp / sloppy_sctp for this service: a segment that is not a SYN (a chunk
    /// that is not an INIT) and matches no connection is scheduled anyway, so a director that
    /// takes over a flow mid-stream (an ECMP rehash) forwards it. Only for schedulers that
    /// every director computes alike (mh, sh, dh).
    pub sloppy: bool,
    /// ipvsadm's `-o` (one-packet scheduling, UDP): every datagram is scheduled on its own and
    /// no connection is kept (DNS, syslog).
    pub one_packet: bool,
}

impl Service {
    /// A service with its scheduler built for `reals` (any table it needs is made here).
    pub fn new(
        key: ServiceKey,
        scheduler: &str,
        flags: SchedFlags,
        persistence: Option<Persistence>,
        reals: Vec<RealServer>,
    ) -> Result<Service, SchedError> {
        let scheduler = Scheduler::new(scheduler, flags, &reals)?;
        Ok(Service {
            key,
            scheduler,
            flags,
            persistence,
            reals,
            announce: Announce::Always,
            sloppy: false,
            one_packet: false,
        })
    }

    /// The same service, answered as `announce` says.
    pub fn with_announce(mut self, announce: Announce) -> Service {
        self.announce = announce;
        self
    }

    /// The same service, with one-packet scheduling or not.
    pub fn with_one_packet(mut self, on: bool) -> Service {
        self.one_packet = on;
        self
    }

    /// The same service, sloppy or not.
    pub fn with_sloppy(mut self, sloppy: bool) -> Service {
        self.sloppy = sloppy;
        self
    }

    pub fn real_by_id(&self, id: RealId) -> Option<&RealServer> {
        self.reals.iter().find(|r| r.id == id)
    }
}
