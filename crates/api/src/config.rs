//! The rvsd configuration file.
//!
//! ```toml
//! [dataplane]
//! workers = [1]                 # CPUs of the worker threads
//! conn_capacity = 1048576       # connections per worker and address family
//!
//! [eal]
//! memory = "auto"               # auto | hugepages | no-huge
//! memory_mb = 512               # with no-huge
//! args = []                     # extra EAL arguments
//!
//! [[port]]
//! name = "outside"
//! device = "net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap"
//! addresses = ["203.0.113.1/24"]
//! gateway = "203.0.113.254"
//! neighbors = [{ ip = "203.0.113.254", mac = "02:00:00:00:00:01" }]
//! host_interface = "rvs-out"    # optional: the port's kernel twin (the host path)
//!
//! [host_path]                   # what goes up to the twins, all ports together
//! rate = 20000                  # packets per second
//! burst = 2000
//! [timeouts]                    # ipvsadm --set tcp tcpfin udp
//! tcp = 900
//!
//! [[service]]
//! protocol = "tcp"
//! address = "10.0.0.100:80"
//! scheduler = "wlc"
//! persistence = 300             # seconds, optional (-p)
//! netmask = "255.255.255.0"     # optional (-M)
//! announce = "always"           # or "follow-host": answered while a twin holds the VIP
//!
//! [[service.real]]
//! address = "192.168.1.2:8080"
//! method = "nat"                # nat (-m) | dr (-g) | tun (-i)
//! weight = 1
//! ```

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use rvs_core::conn::state::Timeouts;
use rvs_core::model::{Announce, Forward, FullNatConfig, Persistence, Protocol, ProxyProtocol, ServiceKey};
use rvs_core::sched::{SchedFlags, Scheduler};
use rvs_core::wire::ethernet::Mac;
use serde::Deserialize;

use crate::check::{validate_check, CheckConfig, RawCheck};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub dataplane: RawDataplane,
    #[serde(default)]
    pub eal: RawEal,
    #[serde(default)]
    pub control: RawControl,
    #[serde(default)]
    pub port: Vec<RawPort>,
    #[serde(default)]
    pub host_path: RawHostPath,
    #[serde(default)]
    pub metrics: RawMetrics,
    #[serde(default)]
    pub timeouts: RawTimeouts,
    #[serde(default)]
    pub service: Vec<RawService>,
    /// IPVS sync daemons started with rvsd (as `rvsadm --start-daemon` would).
    #[serde(default)]
    pub sync_daemon: Vec<crate::ha::RawSyncDaemon>,
    /// The peer director whose configuration this one keeps in step with.
    pub peer: Option<crate::ha::RawPeer>,
    /// VIPs published for a routing daemon (scale-out behind ECMP).
    pub routes: Option<crate::ha::RawRoutes>,
    /// The classifier's rules for `-f` (firewall-mark) services, first match wins.
    #[serde(default)]
    pub mark: Vec<crate::mark::RawMark>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDataplane {
    pub workers: Option<Vec<i64>>,
    pub conn_capacity: Option<i64>,
    /// Packet buffers in the pool (default: sized from ports and workers).
    pub mbufs: Option<i64>,
    /// Data room of each buffer in bytes, headroom included (default 2176).
    pub mbuf_size: Option<i64>,
    /// Real-server ids available to the control plane (counters are kept per id).
    pub max_real_servers: Option<i64>,
    /// The most virtual services (each takes at most ~130 KiB of scheduler tables, mh's).
    pub max_services: Option<i64>,
    /// SYN-flood defense: when the connection table is full, a new TCP connection takes the
    /// place of a half-open one (default true).
    pub evict_half_open: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEal {
    pub memory: Option<String>,
    pub memory_mb: Option<i64>,
    #[serde(default)]
    pub args: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawControl {
    pub socket: Option<String>,
    /// Seconds a client may stay connected without sending a request.
    pub idle_timeout: Option<i64>,
    /// Seconds a request line may take from its first byte to its newline.
    pub request_timeout: Option<i64>,
    pub max_clients: Option<i64>,
    /// A group whose members may use the socket (its directory and the socket get the group).
    pub group: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPort {
    pub name: Option<String>,
    pub device: Option<String>,
    #[serde(default)]
    pub addresses: Vec<String>,
    pub gateway: Option<String>,
    pub gateway6: Option<String>,
    pub mtu: Option<i64>,
    pub mac: Option<String>,
    pub rx_queues: Option<i64>,
    #[serde(default)]
    pub neighbors: Vec<RawNeighbor>,
    pub host_interface: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    /// Where `GET /metrics` is served (Prometheus's text format), e.g. "127.0.0.1:9469".
    pub listen: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHostPath {
    pub rate: Option<i64>,
    pub burst: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNeighbor {
    pub ip: String,
    pub mac: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    pub tcp: Option<i64>,
    pub tcpfin: Option<i64>,
    pub udp: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
#[serde(default)]
pub struct RawService {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// ipvsadm's `-f MARK`: a firewall-mark service (instead of protocol and address).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fwmark: Option<i64>,
    /// With `fwmark`: the IPv6 service of the mark (ipvsadm's `-6`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flags: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persistence: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netmask: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub announce: Option<String>,
    /// IPVS's sloppy_tcp/sloppy_sctp for this service (mh, sh or dh only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sloppy: Option<bool>,
    /// ipvsadm's `-o`: one-packet scheduling (UDP only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub one_packet: Option<bool>,
    /// The health check of every real server (each may override fields).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<RawCheck>,
    /// keepalived's quorum: the least total weight of live servers that serves; below it the
    /// sorry server takes new connections.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quorum: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hysteresis: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sorry_server: Option<String>,
    /// FullNAT: the local addresses its connections come from (DPVS's laddrs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_addresses: Option<Vec<String>>,
    /// FullNAT over TCP: off, v1 or v2 (the PROXY protocol header before the client's bytes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<String>,
    /// FullNAT over TCP: the client's address in a TCP option (TOA).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub toa: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub real: Vec<RawReal>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
#[serde(default)]
pub struct RawReal {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upper: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lower: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<RawCheck>,
}

/// How EAL memory is backed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryMode {
    /// Hugepages when some are free, otherwise ordinary pages.
    Auto,
    Hugepages,
    NoHuge,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    pub name: String,
    pub device: String,
    pub v4: Vec<(Ipv4Addr, u8)>,
    pub v6: Vec<(Ipv6Addr, u8)>,
    pub gateway4: Option<Ipv4Addr>,
    pub gateway6: Option<Ipv6Addr>,
    pub mtu: u16,
    /// Overrides the device's MAC (vdevs such as net_pcap make one up).
    pub mac: Option<Mac>,
    pub rx_queues: Option<u16>,
    pub neighbors: Vec<(IpAddr, Mac)>,
    /// The name of the port's kernel twin, if it has one.
    pub host_interface: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealConfig {
    pub addr: IpAddr,
    pub port: u16,
    pub forward: Forward,
    pub weight: u32,
    pub upper: u32,
    pub lower: u32,
    /// The service's check with this server's fields laid over it.
    pub check: Option<CheckConfig>,
    /// This server's own check fields as written (kept for when the service's check changes).
    pub raw_check: Option<RawCheck>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    pub key: ServiceKey,
    pub scheduler: String,
    pub flags: SchedFlags,
    pub persistence: Option<Persistence>,
    pub announce: Announce,
    pub sloppy: bool,
    pub one_packet: bool,
    /// As written, for the real servers added later to lay theirs over.
    pub check: Option<RawCheck>,
    /// 0: no quorum.
    pub quorum: u32,
    pub hysteresis: u32,
    /// Takes new connections while the quorum is lost.
    pub sorry: Option<RealConfig>,
    /// FullNAT's local addresses and client-address delivery.
    pub fullnat: FullNatConfig,
    pub reals: Vec<RealConfig>,
}

/// Local addresses a service may have.
pub const MAX_LOCAL_ADDRESSES: usize = 256;

/// The control socket's limits and access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlConfig {
    pub idle_timeout: std::time::Duration,
    pub request_timeout: std::time::Duration,
    pub max_clients: usize,
    pub group: Option<String>,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            idle_timeout: std::time::Duration::from_secs(300),
            request_timeout: std::time::Duration::from_secs(10),
            max_clients: 64,
            group: None,
        }
    }
}

/// How much goes up to the kernel twins: a token bucket shared by all ports (each worker gets
/// its share), so that a flood at the director's addresses cannot starve the workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostPathConfig {
    /// Packets per second.
    pub rate: u32,
    /// Packets that may go up at once after a quiet spell.
    pub burst: u32,
}

impl Default for HostPathConfig {
    fn default() -> Self {
        HostPathConfig {
            rate: 20_000,
            burst: 2_000,
        }
    }
}

/// A validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub workers: Vec<usize>,
    pub conn_capacity: usize,
    pub mbufs: Option<u32>,
    pub mbuf_size: u16,
    pub max_real_servers: usize,
    pub max_services: usize,
    pub evict_half_open: bool,
    pub memory: MemoryMode,
    pub memory_mb: u32,
    pub eal_args: Vec<String>,
    pub socket: PathBuf,
    pub control: ControlConfig,
    pub ports: Vec<PortConfig>,
    pub host_path: HostPathConfig,
    /// `[metrics] listen`.
    pub metrics_listen: Option<SocketAddr>,
    pub timeouts: Timeouts,
    pub services: Vec<ServiceConfig>,
    pub sync_daemons: Vec<crate::ha::SyncDaemonConfig>,
    pub peer: Option<crate::ha::PeerConfig>,
    pub routes: Option<crate::ha::RoutesConfig>,
    pub marks: Vec<crate::mark::MarkConfig>,
}

pub const DEFAULT_SOCKET: &str = "/run/rvs/rvs.sock";

/// DPDK's headroom in front of each buffer's data (RTE_PKTMBUF_HEADROOM).
pub const MBUF_HEADROOM: u32 = 128;

/// Everything wrong with a configuration, one line per problem, each naming its field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub Vec<String>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Parses and validates a TOML document.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError(vec![syntax_error(&e)]))?;
        raw.validate()
    }
}

fn syntax_error(e: &toml::de::Error) -> String {
    let msg = e.message().to_string();
    match e.span() {
        Some(s) => format!("TOML (at byte {}): {msg}", s.start),
        None => format!("TOML: {msg}"),
    }
}

/// Collects errors under field paths.
struct Errors(Vec<String>);

impl Errors {
    fn add(&mut self, field: impl fmt::Display, msg: impl fmt::Display) {
        self.0.push(format!("{field}: {msg}"));
    }
}

fn parse_mac(s: &str) -> Option<Mac> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    let mut m = [0u8; 6];
    for (b, p) in m.iter_mut().zip(parts) {
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    Some(m)
}

fn parse_prefix(s: &str) -> Option<(IpAddr, u8)> {
    let (a, l) = s.split_once('/')?;
    let a: IpAddr = a.parse().ok()?;
    let l: u8 = l.parse().ok()?;
    let max = if a.is_ipv4() { 32 } else { 128 };
    (l <= max).then_some((a, l))
}

/// A netmask as a prefix length: dotted IPv4 mask or a number (`-M 255.255.255.0`, `-M 64`).
fn parse_netmask(s: &str, v6: bool) -> Option<u8> {
    if let Ok(n) = s.trim_start_matches('/').parse::<u8>() {
        return (n <= if v6 { 128 } else { 32 }).then_some(n);
    }
    if v6 {
        return None;
    }
    let m = u32::from(s.parse::<Ipv4Addr>().ok()?);
    let len = m.leading_ones();
    (m.checked_shl(len).unwrap_or(0) == 0).then_some(len as u8)
}

/// A real server address: `IP:port`, `[IPv6]:port`, or a bare IP (the virtual port).
fn parse_real_addr(s: &str, vport: u16) -> Option<(IpAddr, u16)> {
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some((sa.ip(), sa.port()));
    }
    let bare = s.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>().ok().map(|ip| (ip, vport))
}

/// Why `name` cannot be a new kernel interface's name, if it cannot: the kernel's rules
/// (`dev_valid_name`: 1 to 15 bytes, not `.` or `..`, no `/`, `:` or white space), and no
/// interface of that name may exist already in this network namespace.
pub fn interface_name_problem(name: &str) -> Option<String> {
    if name.is_empty() || name.len() > 15 {
        return Some(format!("is {} bytes: an interface name has 1 to 15", name.len()));
    }
    if name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c == '\0')
    {
        return Some("is not a valid interface name (no '/', ':', spaces; not '.' or '..')".into());
    }
    // /proc/self/net/dev lists the interfaces of this process's network namespace (/sys shows
    // the namespace it was mounted in).
    let dev = std::fs::read_to_string("/proc/self/net/dev").unwrap_or_default();
    let exists = dev
        .lines()
        .filter_map(|l| l.split_once(':'))
        .any(|(n, _)| n.trim() == name);
    exists.then(|| "clashes with an existing interface (choose another name, or remove it)".into())
}

/// A real server's check: the service's (`service`) with the server's own fields (`real`) laid
/// over it, validated; the problems as `(field, message)` if it is not valid.
pub fn merged_check(
    service: Option<&RawCheck>,
    real: Option<&RawCheck>,
) -> Result<Option<CheckConfig>, Vec<(String, String)>> {
    let raw = match (service, real) {
        (None, None) => return Ok(None),
        (Some(c), None) | (None, Some(c)) => c.clone(),
        (Some(a), Some(b)) => a.overlaid(b),
    };
    let mut problems = Vec::new();
    validate_check(&raw, &mut problems).map(Some).ok_or(problems)
}

/// The id of group `name` (or a number) from /etc/group.
pub fn group_id(name: &str) -> Option<u32> {
    if let Ok(n) = name.parse::<u32>() {
        return Some(n);
    }
    let groups = std::fs::read_to_string("/etc/group").ok()?;
    groups.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then_some(())?;
        f.nth(1)?.parse().ok()
    })
}

fn in_range(v: i64, lo: i64, hi: i64) -> bool {
    (lo..=hi).contains(&v)
}

fn on_link(ports: &[PortConfig], a: IpAddr) -> bool {
    let net = rvs_core::net::Network {
        ports: ports
            .iter()
            .map(|p| rvs_core::net::PortNet {
                mac: [0; 6],
                v4: p.v4.clone(),
                v6: p.v6.clone(),
                gateway4: None,
                gateway6: None,
                mtu: p.mtu,
                twin: false,
                host: Vec::new(),
            })
            .collect(),
    };
    net.route(a).is_some()
}

/// A service's FullNAT settings: local addresses of its family, each once; PROXY protocol and
/// TOA only over TCP; real servers all FullNAT or none (a FullNAT flow belongs to the worker
/// that received it, any other to the worker its client hashes to: one service cannot be
/// both), FullNAT ones with local addresses and without one-packet scheduling. SCTP is
/// refused: its INIT chunks carry addresses FullNAT would have to rewrite too.
fn validate_fullnat(
    e: &mut Errors,
    f: &dyn Fn(&str) -> String,
    s: &RawService,
    protocol: Option<Protocol>,
    v6: bool,
    reals: &[RealConfig],
    one_packet: bool,
) -> FullNatConfig {
    let mut out = FullNatConfig::default();
    for (k, a) in s.local_addresses.iter().flatten().enumerate() {
        match a.parse::<IpAddr>() {
            Ok(ip) if ip.is_ipv6() != v6 => e.add(
                f(&format!("local_addresses[{k}]")),
                format!("{ip} is not of the service's family"),
            ),
            Ok(ip) if ip.is_unspecified() || ip.is_multicast() || ip.is_loopback() => e.add(
                f(&format!("local_addresses[{k}]")),
                format!("{ip} cannot be a local address"),
            ),
            Ok(ip) if out.laddrs.contains(&ip) => e.add(
                f(&format!("local_addresses[{k}]")),
                format!("{ip} is listed twice"),
            ),
            Ok(ip) => out.laddrs.push(ip),
            Err(_) => e.add(
                f(&format!("local_addresses[{k}]")),
                format!("{a:?} is not an IPv4/IPv6 address"),
            ),
        }
    }
    if out.laddrs.len() > MAX_LOCAL_ADDRESSES {
        e.add(
            f("local_addresses"),
            format!("no more than {MAX_LOCAL_ADDRESSES}"),
        );
    }
    if let Some(pp) = s.proxy_protocol.as_deref() {
        match ProxyProtocol::parse(pp) {
            Some(p) => out.proxy = p,
            None => e.add(f("proxy_protocol"), format!("{pp:?} is not one of off, v1, v2")),
        }
    }
    out.toa = s.toa.unwrap_or(false);
    let tcp = protocol.is_none_or(|p| p == Protocol::Tcp);
    if out.proxy != ProxyProtocol::Off && !tcp {
        e.add(f("proxy_protocol"), "is for TCP services");
    }
    if out.toa && !tcp {
        e.add(f("toa"), "is for TCP services (a TCP option)");
    }
    let fnat = reals.iter().filter(|r| r.forward == Forward::FullNat).count();
    if fnat > 0 && fnat < reals.len() {
        e.add(
            f("real"),
            "real servers are all fullnat or none: a FullNAT flow stays on the worker that received it, others go to the worker their client hashes to",
        );
    }
    if fnat > 0 {
        if out.laddrs.is_empty() {
            e.add(
                f("local_addresses"),
                "missing: fullnat real servers need local addresses to connect from",
            );
        }
        if protocol == Some(Protocol::Sctp) {
            e.add(f("real"), "fullnat is for TCP and UDP services");
        }
        if one_packet {
            e.add(
                f("one_packet"),
                "cannot go with fullnat: a FullNAT flow needs its connection (its local port)",
            );
        }
    }
    out
}

/// Validates one service as the control socket receives it, against the daemon's ports;
/// errors name fields under `service`.
pub fn validate_service(raw: &RawService, ports: &[PortConfig]) -> Result<ServiceConfig, ConfigError> {
    let cfg = RawConfig {
        service: vec![raw.clone()],
        ..Default::default()
    };
    let mut e = Errors(Vec::new());
    let mut out = cfg.validate_services(&mut e, ports);
    let rename = |m: String| m.replacen("service[0]", "service", 1);
    match (e.0.is_empty(), out.pop()) {
        (true, Some(s)) => Ok(s),
        (true, None) => Err(ConfigError(vec!["service: incomplete".into()])),
        (false, _) => Err(ConfigError(e.0.into_iter().map(rename).collect())),
    }
}

impl RealConfig {
    /// The core's real server: this one under `id`, scheduled with `weight` (its configured
    /// weight, or what health checks and quorum make of it).
    pub fn server(&self, id: rvs_core::model::RealId, weight: u32) -> rvs_core::model::RealServer {
        rvs_core::model::RealServer {
            id,
            addr: self.addr,
            port: self.port,
            forward: self.forward,
            weight,
            upper: self.upper,
            lower: self.lower,
        }
    }
}

impl ServiceConfig {
    /// The core's service over `reals`, with its scheduler built: what rvsd starts with and
    /// what every change publishes.
    pub fn build(
        &self,
        reals: Vec<rvs_core::model::RealServer>,
    ) -> Result<rvs_core::model::Service, rvs_core::sched::SchedError> {
        Ok(
            rvs_core::model::Service::new(self.key, &self.scheduler, self.flags, self.persistence, reals)?
                .with_announce(self.announce)
                .with_sloppy(self.sloppy)
                .with_one_packet(self.one_packet)
                .with_fullnat(self.fullnat.clone()),
        )
    }

    /// The service as a config entry that validates back to it (what a peer director is sent
    /// when the table is replicated).
    pub fn to_raw(&self) -> RawService {
        let real = |r: &RealConfig| RawReal {
            address: Some(SocketAddr::new(r.addr, r.port).to_string()),
            method: Some(r.forward.name().to_string()),
            weight: Some(r.weight as i64),
            upper: Some(r.upper as i64),
            lower: Some(r.lower as i64),
            check: r.raw_check.clone(),
        };
        let flags = self.flags.names(&self.scheduler);
        let (protocol, address, fwmark, ipv6) = match self.key {
            ServiceKey::Addr { protocol, vip, port } => (
                Some(protocol.name().to_string()),
                Some(SocketAddr::new(vip, port).to_string()),
                None,
                None,
            ),
            ServiceKey::Fwmark { mark, v6 } => (None, None, Some(mark as i64), v6.then_some(true)),
        };
        RawService {
            protocol,
            address,
            fwmark,
            ipv6,
            scheduler: Some(self.scheduler.clone()),
            flags: (!flags.is_empty()).then(|| flags.join(",")),
            persistence: self.persistence.map(|p| p.timeout_s as i64),
            netmask: self.persistence.map(|p| p.prefix_len.to_string()),
            announce: (self.announce != Announce::Always).then(|| self.announce.name().to_string()),
            sloppy: self.sloppy.then_some(true),
            one_packet: self.one_packet.then_some(true),
            check: self.check.clone(),
            quorum: (self.quorum != 0).then_some(self.quorum as i64),
            hysteresis: (self.quorum != 0).then_some(self.hysteresis as i64),
            sorry_server: self
                .sorry
                .as_ref()
                .map(|r| SocketAddr::new(r.addr, r.port).to_string()),
            local_addresses: (!self.fullnat.laddrs.is_empty())
                .then(|| self.fullnat.laddrs.iter().map(|a| a.to_string()).collect()),
            proxy_protocol: (self.fullnat.proxy != ProxyProtocol::Off)
                .then(|| self.fullnat.proxy.name().to_string()),
            toa: self.fullnat.toa.then_some(true),
            real: self.reals.iter().map(real).collect(),
        }
    }
}

/// Validates one real server of a service (`-a`/`-e`); errors name fields under `real`.
pub fn validate_real(
    service: &ServiceConfig,
    raw: &RawReal,
    ports: &[PortConfig],
) -> Result<RealConfig, ConfigError> {
    let vip = service.key.family_addr();
    let svc = RawService {
        address: Some(vip.to_string()),
        check: service.check.clone(),
        real: vec![raw.clone()],
        ..Default::default()
    };
    let cfg = RawConfig {
        service: vec![svc.clone()],
        ..Default::default()
    };
    let mut e = Errors(Vec::new());
    let mut reals = cfg.validate_reals(&mut e, 0, &svc, Some(vip), ports);
    let rename = |m: String| m.replacen("service[0].real[0]", "real", 1);
    match (e.0.is_empty(), reals.pop()) {
        (true, Some(r)) => Ok(r),
        (true, None) => Err(ConfigError(vec!["real: incomplete".into()])),
        (false, _) => Err(ConfigError(e.0.into_iter().map(rename).collect())),
    }
}

impl RawConfig {
    pub fn validate(&self) -> Result<Config, ConfigError> {
        let mut e = Errors(Vec::new());

        let workers: Vec<usize> = match &self.dataplane.workers {
            None => vec![0],
            Some(w) if w.is_empty() => {
                e.add("dataplane.workers", "needs at least one CPU");
                Vec::new()
            }
            Some(w) => {
                let mut seen = HashSet::new();
                w.iter()
                    .enumerate()
                    .filter_map(|(i, &c)| {
                        if !in_range(c, 0, 4095) {
                            e.add(
                                format!("dataplane.workers[{i}]"),
                                format!("{c} is not a CPU number"),
                            );
                            None
                        } else if !seen.insert(c) {
                            e.add(
                                format!("dataplane.workers[{i}]"),
                                format!("CPU {c} is listed twice"),
                            );
                            None
                        } else {
                            Some(c as usize)
                        }
                    })
                    .collect()
            }
        };
        let conn_capacity = match self.dataplane.conn_capacity {
            None => 1 << 20,
            Some(c) if in_range(c, 1, 1 << 29) => c as usize,
            Some(c) => {
                e.add("dataplane.conn_capacity", format!("{c} is outside 1..=536870912"));
                1
            }
        };
        let mbufs = self.dataplane.mbufs.and_then(|m| {
            if in_range(m, 1023, 1 << 26) {
                Some(m as u32)
            } else {
                e.add("dataplane.mbufs", format!("{m} is outside 1023..=67108864"));
                None
            }
        });
        let mbuf_size = match self.dataplane.mbuf_size {
            None => 2048 + 128,
            Some(m) if in_range(m, 256, 16384) => m as u16,
            Some(m) => {
                e.add("dataplane.mbuf_size", format!("{m} is outside 256..=16384"));
                2048 + 128
            }
        };
        let max_real_servers = match self.dataplane.max_real_servers {
            None => 16_384,
            Some(m) if in_range(m, 16, 1 << 20) => m as usize,
            Some(m) => {
                e.add(
                    "dataplane.max_real_servers",
                    format!("{m} is outside 16..=1048576"),
                );
                16_384
            }
        };
        let max_services = match self.dataplane.max_services {
            None => 4096,
            Some(m) if in_range(m, 1, 1 << 20) => m as usize,
            Some(m) => {
                e.add("dataplane.max_services", format!("{m} is outside 1..=1048576"));
                4096
            }
        };
        if self.service.len() > max_services {
            e.add(
                "service",
                format!(
                    "{} services, more than dataplane.max_services ({max_services})",
                    self.service.len()
                ),
            );
        }
        let memory = match self.eal.memory.as_deref() {
            None | Some("auto") => MemoryMode::Auto,
            Some("hugepages") => MemoryMode::Hugepages,
            Some("no-huge") => MemoryMode::NoHuge,
            Some(other) => {
                e.add(
                    "eal.memory",
                    format!("{other:?} is not one of auto, hugepages, no-huge"),
                );
                MemoryMode::Auto
            }
        };
        let memory_mb = match self.eal.memory_mb {
            None => 512,
            Some(m) if in_range(m, 64, 1 << 20) => m as u32,
            Some(m) => {
                e.add("eal.memory_mb", format!("{m} is outside 64..=1048576"));
                512
            }
        };
        for (i, a) in self.eal.args.iter().enumerate() {
            if a.contains('\0') {
                e.add(format!("eal.args[{i}]"), "contains a NUL byte");
            }
        }

        let ports = self.validate_ports(&mut e);
        let control = self.validate_control(&mut e);
        let metrics_listen = self
            .metrics
            .listen
            .as_ref()
            .and_then(|l| match l.parse::<SocketAddr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    e.add(
                        "metrics.listen",
                        format!("{l:?} is not an address and port (127.0.0.1:9469)"),
                    );
                    None
                }
            });
        // A frame of the largest MTU (plus Ethernet and a VLAN tag) must fit one buffer's data
        // room (the buffer less DPDK's 128 bytes of headroom): the path sees one segment.
        let largest = ports.iter().map(|p| p.mtu).max().unwrap_or(1500);
        let needed = |mtu: u16| (mtu as u32 + 18 + MBUF_HEADROOM).next_multiple_of(64);
        let mbuf_size = match self.dataplane.mbuf_size {
            None => mbuf_size.max(needed(largest) as u16),
            Some(_) => {
                for (i, p) in ports.iter().enumerate() {
                    if needed(p.mtu) > mbuf_size as u32 {
                        e.add(
                            format!("port[{i}].mtu"),
                            format!(
                                "{} needs buffers of at least {} bytes (dataplane.mbuf_size is {mbuf_size}): raise mbuf_size or leave it out to size it from the MTU",
                                p.mtu,
                                needed(p.mtu)
                            ),
                        );
                    }
                }
                mbuf_size
            }
        };
        let mut host_path = HostPathConfig::default();
        if let Some(r) = self.host_path.rate {
            match r {
                1..=100_000_000 => host_path.rate = r as u32,
                _ => e.add(
                    "host_path.rate",
                    format!("{r} is outside 1..=100000000 packets per second"),
                ),
            }
        }
        if let Some(b) = self.host_path.burst {
            match b {
                1..=1_000_000 => host_path.burst = b as u32,
                _ => e.add("host_path.burst", format!("{b} is outside 1..=1000000 packets")),
            }
        }
        let mut timeouts = Timeouts::default();
        let mut t = |field: &str, v: Option<i64>| -> u32 {
            match v {
                None => 0,
                Some(s) if in_range(s, 1, 31 * 24 * 3600) => s as u32,
                Some(s) => {
                    e.add(
                        format!("timeouts.{field}"),
                        format!("{s} is not a number of seconds in 1..=2678400"),
                    );
                    0
                }
            }
        };
        let (tcp, fin, udp) = (
            t("tcp", self.timeouts.tcp),
            t("tcpfin", self.timeouts.tcpfin),
            t("udp", self.timeouts.udp),
        );
        timeouts.set(tcp, fin, udp);
        let services = self.validate_services(&mut e, &ports);
        let mut sync_daemons: Vec<crate::ha::SyncDaemonConfig> = Vec::new();
        for (i, d) in self.sync_daemon.iter().enumerate() {
            match d.validate() {
                Ok(d) if sync_daemons.iter().any(|x| x.state == d.state) => e.add(
                    format!("sync_daemon[{i}].state"),
                    format!("a {} daemon is given twice", d.state.name()),
                ),
                Ok(d) => sync_daemons.push(d),
                Err(errs) => {
                    for m in errs.0 {
                        e.0.push(format!("sync_daemon[{i}].{m}"));
                    }
                }
            }
        }
        let peer = self.peer.as_ref().and_then(|p| p.validate(&mut e.0));
        let routes = self.routes.as_ref().and_then(|r| r.validate(&mut e.0));
        let marks = crate::mark::validate_marks(&self.mark, &mut e.0);

        if e.0.is_empty() {
            Ok(Config {
                workers,
                conn_capacity,
                mbufs,
                mbuf_size,
                max_real_servers,
                max_services,
                evict_half_open: self.dataplane.evict_half_open.unwrap_or(true),
                memory,
                memory_mb,
                eal_args: self.eal.args.clone(),
                socket: PathBuf::from(
                    self.control
                        .socket
                        .clone()
                        .unwrap_or_else(|| DEFAULT_SOCKET.into()),
                ),
                control,
                ports,
                host_path,
                metrics_listen,
                timeouts,
                services,
                sync_daemons,
                peer,
                routes,
                marks,
            })
        } else {
            Err(ConfigError(e.0))
        }
    }

    fn validate_control(&self, e: &mut Errors) -> ControlConfig {
        let mut c = ControlConfig::default();
        let c_ = &self.control;
        let secs = |e: &mut Errors, f: &str, v: Option<i64>, default: std::time::Duration| match v {
            None => default,
            Some(s) if in_range(s, 1, 86_400) => std::time::Duration::from_secs(s as u64),
            Some(s) => {
                e.add(
                    format!("control.{f}"),
                    format!("{s} is not a number of seconds in 1..=86400"),
                );
                default
            }
        };
        c.idle_timeout = secs(e, "idle_timeout", c_.idle_timeout, c.idle_timeout);
        c.request_timeout = secs(e, "request_timeout", c_.request_timeout, c.request_timeout);
        if let Some(m) = c_.max_clients {
            if in_range(m, 2, 4096) {
                c.max_clients = m as usize;
            } else {
                e.add("control.max_clients", format!("{m} is outside 2..=4096"));
            }
        }
        if let Some(g) = &c_.group {
            if group_id(g).is_none() {
                e.add(
                    "control.group",
                    format!("{g:?} is not a group of this system (/etc/group)"),
                );
            }
            c.group = Some(g.clone());
        }
        c
    }

    fn validate_ports(&self, e: &mut Errors) -> Vec<PortConfig> {
        if self.port.is_empty() {
            e.add("port", "at least one [[port]] is needed");
        }
        let mut names = HashSet::new();
        let mut twins = HashSet::new();
        let mut out = Vec::new();
        for (i, p) in self.port.iter().enumerate() {
            let f = |x: &str| format!("port[{i}].{x}");
            let name = p.name.clone().unwrap_or_else(|| format!("port{i}"));
            if !names.insert(name.clone()) {
                e.add(f("name"), format!("{name:?} is used by another port"));
            }
            let device = match p.device.as_deref().map(str::trim) {
                None | Some("") => {
                    e.add(
                        f("device"),
                        "missing: a DPDK device string (net_pcap0,rx_pcap=..., or a PCI address)",
                    );
                    String::new()
                }
                Some(d) if d.contains('\0') || d.starts_with(',') => {
                    e.add(f("device"), format!("{d:?} is not a DPDK device string"));
                    String::new()
                }
                Some(d) => d.to_string(),
            };
            let (mut v4, mut v6) = (Vec::new(), Vec::new());
            for (k, a) in p.addresses.iter().enumerate() {
                match parse_prefix(a) {
                    Some((IpAddr::V4(x), l)) => v4.push((x, l)),
                    Some((IpAddr::V6(x), l)) => v6.push((x, l)),
                    None => e.add(
                        f(&format!("addresses[{k}]")),
                        format!("{a:?} is not an address with prefix (10.0.0.1/24)"),
                    ),
                }
            }
            let gateway4 = p.gateway.as_ref().and_then(|g| match g.parse::<Ipv4Addr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    e.add(f("gateway"), format!("{g:?} is not an IPv4 address"));
                    None
                }
            });
            let gateway6 = p.gateway6.as_ref().and_then(|g| match g.parse::<Ipv6Addr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    e.add(f("gateway6"), format!("{g:?} is not an IPv6 address"));
                    None
                }
            });
            let mtu = match p.mtu {
                None => 1500,
                Some(m) if in_range(m, 576, 9600) => m as u16,
                Some(m) => {
                    e.add(f("mtu"), format!("{m} is outside 576..=9600"));
                    1500
                }
            };
            let mac = p.mac.as_ref().and_then(|m| {
                let v = parse_mac(m);
                if v.is_none() {
                    e.add(
                        f("mac"),
                        format!("{m:?} is not a MAC address (02:00:00:00:00:01)"),
                    );
                }
                v
            });
            let rx_queues = p.rx_queues.and_then(|q| {
                if in_range(q, 1, 64) {
                    Some(q as u16)
                } else {
                    e.add(f("rx_queues"), format!("{q} is outside 1..=64"));
                    None
                }
            });
            let mut neighbors = Vec::new();
            for (k, n) in p.neighbors.iter().enumerate() {
                match (n.ip.parse::<IpAddr>(), parse_mac(&n.mac)) {
                    (Ok(ip), Some(mac)) => neighbors.push((ip, mac)),
                    (Err(_), _) => e.add(
                        f(&format!("neighbors[{k}].ip")),
                        format!("{:?} is not an IP address", n.ip),
                    ),
                    (_, None) => e.add(
                        f(&format!("neighbors[{k}].mac")),
                        format!("{:?} is not a MAC address", n.mac),
                    ),
                }
            }
            let host_interface = p
                .host_interface
                .as_ref()
                .and_then(|n| match interface_name_problem(n) {
                    Some(why) => {
                        e.add(f("host_interface"), format!("{n:?} {why}"));
                        None
                    }
                    None => Some(n.clone()),
                });
            if let Some(n) = &host_interface {
                if !twins.insert(n.clone()) {
                    e.add(f("host_interface"), format!("{n:?} is the twin of another port"));
                }
            }
            out.push(PortConfig {
                name,
                device,
                v4,
                v6,
                gateway4,
                gateway6,
                mtu,
                mac,
                rx_queues,
                neighbors,
                host_interface,
            });
        }
        for (i, p) in out.iter().enumerate() {
            if let Some(g) = p.gateway4 {
                if !on_link(std::slice::from_ref(p), IpAddr::V4(g)) {
                    e.add(
                        format!("port[{i}].gateway"),
                        format!("{g} is not in any of the port's subnets"),
                    );
                }
            }
            if let Some(g) = p.gateway6 {
                if !on_link(std::slice::from_ref(p), IpAddr::V6(g)) {
                    e.add(
                        format!("port[{i}].gateway6"),
                        format!("{g} is not in any of the port's subnets"),
                    );
                }
            }
        }
        out
    }

    fn validate_services(&self, e: &mut Errors, ports: &[PortConfig]) -> Vec<ServiceConfig> {
        let mut keys = HashSet::new();
        let mut out = Vec::new();
        for (i, s) in self.service.iter().enumerate() {
            let f = |x: &str| format!("service[{i}].{x}");
            let fwmark = match s.fwmark {
                None => {
                    if s.ipv6.is_some() {
                        e.add(
                            f("ipv6"),
                            "goes with fwmark (ipvsadm -f MARK -6); an address says its own family",
                        );
                    }
                    None
                }
                Some(m) if in_range(m, 1, u32::MAX as i64) => {
                    if s.protocol.is_some() || s.address.is_some() {
                        e.add(f("fwmark"), "a service is a mark's (-f) or an address's (-t/-u/--sctp-service), not both: drop protocol and address");
                    }
                    Some(ServiceKey::Fwmark {
                        mark: m as u32,
                        v6: s.ipv6.unwrap_or(false),
                    })
                }
                Some(m) => {
                    e.add(f("fwmark"), format!("{m} is outside 1..=4294967295"));
                    None
                }
            };
            let protocol = match s.protocol.as_deref() {
                _ if s.fwmark.is_some() => None,
                None | Some("tcp") => Some(Protocol::Tcp),
                Some("udp") => Some(Protocol::Udp),
                Some("sctp") => Some(Protocol::Sctp),
                Some(other) => {
                    e.add(f("protocol"), format!("{other:?} is not one of tcp, udp, sctp"));
                    None
                }
            };
            let vip = match s.address.as_deref() {
                // A mark's service: real servers are checked against its family, port 0.
                _ if s.fwmark.is_some() => fwmark.map(|k| k.family_addr()),
                None => {
                    e.add(
                        f("address"),
                        "missing: the virtual address and port (10.0.0.100:80)",
                    );
                    None
                }
                Some(a) => match a.parse::<SocketAddr>() {
                    // Port 0 is IPVS's every-port service (checked below: it must persist).
                    Ok(sa) => Some(sa),
                    Err(_) => {
                        e.add(f("address"), format!("{a:?} is not an IPv4/IPv6 socket address"));
                        None
                    }
                },
            };
            let scheduler = s.scheduler.clone().unwrap_or_else(|| "wlc".into());
            if !Scheduler::is_known(&scheduler) {
                e.add(
                    f("scheduler"),
                    rvs_core::sched::SchedError::Unknown(scheduler.clone()),
                );
            }
            let flags = match s.flags.as_deref().map(|f| SchedFlags::parse_for(f, &scheduler)) {
                None => SchedFlags::default(),
                Some(Ok(fl)) => fl,
                Some(Err(err)) => {
                    e.add(f("flags"), err);
                    SchedFlags::default()
                }
            };
            let v6 = vip.is_some_and(|v| v.is_ipv6());
            let persistence = match (s.persistence, s.netmask.as_deref()) {
                (None, None) => None,
                (None, Some(_)) => {
                    e.add(f("netmask"), "needs persistence (ipvsadm -M goes with -p)");
                    None
                }
                (Some(t), mask) => {
                    if !in_range(t, 1, 31 * 24 * 3600) {
                        e.add(
                            f("persistence"),
                            format!("{t} is not a timeout in 1..=2678400 seconds"),
                        );
                    }
                    let prefix_len = match mask {
                        None => Some(if v6 { 128 } else { 32 }),
                        Some(m) => {
                            let p = parse_netmask(m, v6);
                            if p.is_none() {
                                e.add(f("netmask"), format!("{m:?} is not a netmask for this family"));
                            }
                            p
                        }
                    };
                    prefix_len.map(|p| Persistence {
                        timeout_s: t.max(1) as u32,
                        prefix_len: p,
                    })
                }
            };
            if fwmark.is_none() && vip.is_some_and(|v| v.port() == 0) && persistence.is_none() {
                e.add(
                    f("address"),
                    "port 0 (every port of the VIP) needs persistence (ipvsadm -p), as in IPVS",
                );
            }
            let announce = match s.announce.as_deref() {
                None => Announce::Always,
                Some(a) => match Announce::parse(a) {
                    Some(x) => x,
                    None => {
                        e.add(f("announce"), format!("{a:?} is not one of always, follow-host"));
                        Announce::Always
                    }
                },
            };
            if announce == Announce::FollowHost && !ports.iter().any(|p| p.host_interface.is_some()) {
                e.add(
                    f("announce"),
                    "follow-host needs a port with a host_interface (the twin whose addresses it follows)",
                );
            }
            let sloppy = s.sloppy.unwrap_or(false);
            if sloppy && !matches!(scheduler.as_str(), "mh" | "sh" | "dh") {
                e.add(
                    f("sloppy"),
                    format!("needs mh, sh or dh: {scheduler} picks differently on each director, so a flow taken over mid-stream would go to another real server"),
                );
            }
            let one_packet = s.one_packet.unwrap_or(false);
            if one_packet && protocol.is_some_and(|p| p != Protocol::Udp) {
                e.add(
                    f("one_packet"),
                    "is for UDP services (ipvsadm -o): TCP and SCTP need their connections",
                );
            }
            if let Some(c) = &s.check {
                let mut problems = Vec::new();
                validate_check(c, &mut problems);
                for (field, m) in problems {
                    e.add(f(&format!("check.{field}")), m);
                }
            }
            let reals = self.validate_reals(e, i, s, vip, ports);
            let fullnat = validate_fullnat(e, &f, s, protocol, v6, &reals, one_packet);
            let quorum = match s.quorum {
                None => 0,
                Some(q) if in_range(q, 1, 1 << 24) => q as u32,
                Some(q) => {
                    e.add(f("quorum"), format!("{q} is outside 1..=16777216"));
                    0
                }
            };
            let hysteresis = match s.hysteresis {
                None => 0,
                Some(h) if in_range(h, 0, quorum as i64) => h as u32,
                Some(h) => {
                    e.add(
                        f("hysteresis"),
                        format!("{h} is outside 0..={quorum} (the quorum)"),
                    );
                    0
                }
            };
            let sorry = s.sorry_server.as_deref().and_then(|a| {
                let vport = vip.map_or(0, |v| v.port());
                let forward = reals.first().map_or(Forward::Nat, |r| r.forward);
                match parse_real_addr(a, vport) {
                    Some((ip, port)) if vip.is_none_or(|v| v.is_ipv4() == ip.is_ipv4()) => {
                        if !matches!(forward, Forward::Nat | Forward::FullNat) && port != vport {
                            e.add(f("sorry_server"), format!("port {port} differs from the virtual port {vport}: the real servers use DR or TUN"));
                        }
                        Some(RealConfig {
                            addr: ip,
                            port,
                            forward,
                            weight: 1,
                            upper: 0,
                            lower: 0,
                            check: None,
                            raw_check: None,
                        })
                    }
                    _ => {
                        e.add(f("sorry_server"), format!("{a:?} is not a socket address of the virtual address's family"));
                        None
                    }
                }
            });
            let key = match (fwmark, protocol, vip) {
                (Some(k), _, _) => Some(k),
                (None, Some(protocol), Some(vip)) => Some(ServiceKey::Addr {
                    protocol,
                    vip: vip.ip(),
                    port: vip.port(),
                }),
                _ => None,
            };
            if let Some(key) = key {
                if !keys.insert(key) {
                    let field = if fwmark.is_some() { "fwmark" } else { "address" };
                    e.add(f(field), format!("{key} is defined twice"));
                }
                out.push(ServiceConfig {
                    key,
                    scheduler,
                    flags,
                    persistence,
                    announce,
                    sloppy,
                    one_packet,
                    check: s.check.clone(),
                    quorum,
                    hysteresis,
                    sorry,
                    fullnat,
                    reals,
                });
            }
        }
        out
    }

    fn validate_reals(
        &self,
        e: &mut Errors,
        i: usize,
        s: &RawService,
        vip: Option<SocketAddr>,
        ports: &[PortConfig],
    ) -> Vec<RealConfig> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (k, r) in s.real.iter().enumerate() {
            let f = |x: &str| format!("service[{i}].real[{k}].{x}");
            let vport = vip.map_or(0, |v| v.port());
            let addr = match r.address.as_deref() {
                None => {
                    e.add(
                        f("address"),
                        "missing: the real server's address (192.168.1.2:80)",
                    );
                    None
                }
                Some(a) => match parse_real_addr(a, vport) {
                    Some(x) => Some(x),
                    None => {
                        e.add(f("address"), format!("{a:?} is not an IPv4/IPv6 socket address"));
                        None
                    }
                },
            };
            let forward = match r.method.as_deref() {
                None | Some("dr") | Some("route") | Some("gatewaying") => Some(Forward::Dr),
                Some("nat") | Some("masq") | Some("masquerading") => Some(Forward::Nat),
                Some("tun") | Some("tunnel") | Some("ipip") => Some(Forward::Tun),
                Some("fullnat") | Some("fnat") => Some(Forward::FullNat),
                Some(other) => {
                    e.add(
                        f("method"),
                        format!("{other:?} is not one of nat, dr, tun, fullnat"),
                    );
                    None
                }
            };
            let num = |e: &mut Errors, field: &str, v: Option<i64>, default: u32| -> u32 {
                match v {
                    None => default,
                    Some(x) if in_range(x, 0, 65535) => x as u32,
                    Some(x) => {
                        e.add(f(field), format!("{x} is outside 0..=65535"));
                        default
                    }
                }
            };
            let weight = num(e, "weight", r.weight, 1);
            let upper = num(e, "upper", r.upper, 0);
            let lower = num(e, "lower", r.lower, 0);
            if upper > 0 && lower > upper {
                e.add(
                    f("lower"),
                    format!("{lower} is above the upper threshold {upper}"),
                );
            }
            let (Some((ip, port)), Some(forward)) = (addr, forward) else {
                continue;
            };
            if let Some(v) = vip {
                if v.is_ipv4() != ip.is_ipv4() {
                    e.add(
                        f("address"),
                        format!("{ip} is not of the virtual address's family"),
                    );
                    continue;
                }
            }
            if !matches!(forward, Forward::Nat | Forward::FullNat) && port != vport {
                e.add(f("address"), format!("port {port} differs from the virtual port {vport}: DR and TUN cannot change the port (use nat or fullnat)"));
            }
            if !ports.is_empty()
                && !ports.iter().any(|p| p.gateway4.is_some() || p.gateway6.is_some())
                && !on_link(ports, ip)
            {
                e.add(
                    f("address"),
                    format!("{ip} is on no port's subnet and no port has a gateway"),
                );
            }
            if forward == Forward::Dr && !on_link(ports, ip) {
                e.add(
                    f("address"),
                    format!("{ip}: direct routing needs the real server on a port's subnet"),
                );
            }
            if !seen.insert((ip, port)) {
                e.add(
                    f("address"),
                    format!("{ip}:{port} is already a real server of this service"),
                );
                continue;
            }
            let check = match merged_check(s.check.as_ref(), r.check.as_ref()) {
                Ok(c) => c,
                Err(problems) => {
                    // The service's own check was reported under service[i].check already.
                    let service_ok = s
                        .check
                        .as_ref()
                        .is_none_or(|c| validate_check(c, &mut Vec::new()).is_some());
                    if service_ok {
                        for (field, m) in problems {
                            e.add(f(&format!("check.{field}")), m);
                        }
                    }
                    None
                }
            };
            out.push(RealConfig {
                addr: ip,
                port,
                forward,
                weight,
                upper,
                lower,
                check,
                raw_check: r.check.clone(),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests;
