//! Virtual services and real servers, in IPVS's terms.

use std::net::IpAddr;

pub use crate::real::{Forward, RealId, RealRegistry, RealServer, RealShared};
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

/// Persistence (`ipvsadm -p TIMEOUT -M NETMASK`): a client's new connections go to the same
/// real server while its template lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Persistence {
    pub timeout_s: u32,
    /// Prefix length applied to the client address (32 or 128: per client).
    pub prefix_len: u8,
}

/// What identifies a virtual service, as IPVS keys them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceKey {
    /// `-t|-u|--sctp-service VIP:port`; port 0 takes every port of the VIP.
    Addr {
        protocol: Protocol,
        vip: IpAddr,
        port: u16,
    },
    /// `-f MARK` (with `-6` for IPv6): the packets the classifier's rules mark, whatever their
    /// protocol, destination address and port.
    Fwmark { mark: u32, v6: bool },
}

impl ServiceKey {
    /// The virtual address of an address service (none for a mark's).
    pub fn vip(&self) -> Option<IpAddr> {
        match *self {
            ServiceKey::Addr { vip, .. } => Some(vip),
            ServiceKey::Fwmark { .. } => None,
        }
    }

    /// The virtual port: 0 for a mark's service (its real servers' port 0 is the packet's).
    pub fn port(&self) -> u16 {
        match *self {
            ServiceKey::Addr { port, .. } => port,
            ServiceKey::Fwmark { .. } => 0,
        }
    }

    /// The unspecified address of the service's family with its port: what real servers are
    /// checked against (family, default port).
    pub fn family_addr(&self) -> std::net::SocketAddr {
        match *self {
            ServiceKey::Addr { vip, port, .. } => std::net::SocketAddr::new(vip, port),
            ServiceKey::Fwmark { v6, .. } => std::net::SocketAddr::new(unspecified(v6), 0),
        }
    }

    /// The template address of a mark's persistence, as IPVS makes it: the mark as an
    /// address of the family (with protocol 0 and port 0, one template for every protocol
    /// and port the mark covers).
    pub fn mark_addr(mark: u32, v6: bool) -> IpAddr {
        if v6 {
            IpAddr::V6(std::net::Ipv6Addr::from(mark as u128))
        } else {
            IpAddr::V4(std::net::Ipv4Addr::from(mark))
        }
    }
}

fn unspecified(v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
    }
}

impl ServiceKey {
    /// The service in a metric label: `tcp/10.0.0.1:80`, `fwmark/1`, `fwmark6/1`.
    pub fn label(&self) -> String {
        match *self {
            ServiceKey::Addr { protocol, vip, port } => {
                format!("{}/{}", protocol.name(), std::net::SocketAddr::new(vip, port))
            }
            ServiceKey::Fwmark { mark, v6: false } => format!("fwmark/{mark}"),
            ServiceKey::Fwmark { mark, v6: true } => format!("fwmark6/{mark}"),
        }
    }
}

impl std::fmt::Display for ServiceKey {
    /// `tcp 10.0.0.1:80`, `fwmark 1`, `fwmark 1 (IPv6)`: how errors name a service.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            ServiceKey::Addr { protocol, vip, port } => {
                write!(f, "{} {}", protocol.name(), std::net::SocketAddr::new(vip, port))
            }
            ServiceKey::Fwmark { mark, v6: false } => write!(f, "fwmark {mark}"),
            ServiceKey::Fwmark { mark, v6: true } => write!(f, "fwmark {mark} (IPv6)"),
        }
    }
}

/// A classifier rule (rvs's stand-in for iptables' MARK target): new flows whose protocol,
/// destination address and destination port match get `mark`, and a `-f mark` service of the
/// destination's family takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MarkRule {
    pub mark: u32,
    /// None: TCP, UDP and SCTP.
    pub protocol: Option<Protocol>,
    pub dst: IpAddr,
    pub prefix_len: u8,
    /// Inclusive destination-port range (0..=65535 for every port).
    pub ports: (u16, u16),
}

impl MarkRule {
    #[inline]
    pub fn matches(&self, protocol: Protocol, dst: IpAddr, port: u16) -> bool {
        self.protocol.is_none_or(|p| p == protocol)
            && (self.ports.0..=self.ports.1).contains(&port)
            && crate::net::in_prefix(dst, self.dst, self.prefix_len)
    }

    /// Does the rule name one address (a /32 or /128), which the director then answers for?
    pub fn is_host(&self) -> bool {
        self.prefix_len == if self.dst.is_ipv6() { 128 } else { 32 }
    }
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

/// How a FullNAT service tells its real servers the client's address (TCP only; off by
/// default, as the server must expect it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum ProxyProtocol {
    #[default]
    Off,
    /// HAProxy's PROXY protocol version 1: one text line before the client's first byte.
    V1,
    /// Version 2: the binary header.
    V2,
}

impl ProxyProtocol {
    pub fn name(self) -> &'static str {
        match self {
            ProxyProtocol::Off => "off",
            ProxyProtocol::V1 => "v1",
            ProxyProtocol::V2 => "v2",
        }
    }

    pub fn parse(s: &str) -> Option<ProxyProtocol> {
        match s {
            "off" | "disable" | "none" => Some(ProxyProtocol::Off),
            "v1" => Some(ProxyProtocol::V1),
            "v2" => Some(ProxyProtocol::V2),
            _ => None,
        }
    }
}

/// What a FullNAT service needs besides its real servers: the local addresses its
/// connections come from (DPVS's laddrs), and how the client's address is delivered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FullNatConfig {
    pub laddrs: Vec<IpAddr>,
    pub proxy: ProxyProtocol,
    /// The client's address and port in a TCP option (kind 254, DPVS's TOA) of the SYN and
    /// of the segments that start the client's stream.
    pub toa: bool,
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
    /// Local addresses and client-address delivery, for FullNAT real servers.
    pub fullnat: FullNatConfig,
    /// Some real server is FullNAT (a service's are all FullNAT or none: the config and the
    /// control plane refuse a mix).
    has_fullnat: bool,
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
        let has_fullnat = reals.iter().any(|r| r.forward == Forward::FullNat);
        Ok(Service {
            key,
            scheduler,
            flags,
            persistence,
            reals,
            announce: Announce::Always,
            sloppy: false,
            one_packet: false,
            fullnat: FullNatConfig::default(),
            has_fullnat,
        })
    }

    /// The same service with FullNAT's local addresses and client-address delivery.
    pub fn with_fullnat(mut self, fullnat: FullNatConfig) -> Service {
        self.fullnat = fullnat;
        self
    }

    /// Are its connections FullNAT ones? Then they belong to the worker that receives their
    /// first packet (the local port is chosen so that replies come back to it), not to the
    /// worker the client's address hashes to.
    #[inline]
    pub fn is_fullnat(&self) -> bool {
        self.has_fullnat
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
