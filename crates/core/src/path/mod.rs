//! The entry point: a burst of frames in, a verdict per frame out.
//!
//! Per frame: Ethernet (one optional VLAN tag) -> ARP (answered for VIPs and director
//! addresses) or IPv4/IPv6 -> ICMP (echo answered, errors about tracked flows translated) or
//! TCP/UDP/SCTP -> connection lookup -> on a miss, service lookup and scheduling -> the
//! forwarding method bound to the connection (NAT, DR or TUN). Lookups are batched: the whole
//! burst is parsed and its index slots loaded before any is probed.
//!
//! The Ethernet destination of a forwarded frame is left to the caller, which resolves the
//! verdict's next hop to a MAC; the source MAC is set to the egress port's.

mod family;
mod fast;
mod flow;
mod frag;
mod icmp;
mod local;
pub mod lport;
mod method;
mod sync;

pub use frag::{FRAG_ENTRIES, FRAG_HOLD, FRAG_HOLD_MS, FRAG_TTL_MS};
pub use sync::{SyncRefusal, SyncStats, SYNC_OUT_MAX};

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::conn::{Addr, ConnTable, KeyKind, Tuple};
use crate::drop::{DropCounters, DropReason};
use crate::frame::Frame;
use crate::tables::Tables;
use crate::wire::ethernet::EthernetFrame;
use crate::wire::sctp::SctpPacket;
use crate::wire::tcp::TcpSegment;
use crate::wire::udp::UdpDatagram;
use crate::wire::{ethertype, ipv4, proto};

use family::{Family, Frag, IpInfo};

/// What the data plane does with a frame after [`Director::process_burst`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Transmit on `port` after setting the destination MAC to `next_hop`'s.
    Forward {
        port: u16,
        next_hop: IpAddr,
    },
    /// The frame was turned into a reply (ARP, echo, ICMP error) with both MACs set: transmit
    /// on `port`, where it came from.
    Reply {
        port: u16,
    },
    /// The flow belongs to another worker: hand the frame to `worker` unchanged.
    Redirect {
        worker: u16,
    },
    /// An ARP reply or announcement: for the neighbor table.
    Neighbor,
    /// A later IP fragment that came before its first: copied and held by the director
    /// (released later through [`Director::take_released`]); the frame itself is freed.
    Held,
    /// For the director's own stack: hand the frame, unchanged, to the kernel twin of `port`
    /// (where it came from). `learn`: an ARP or neighbor advertisement the neighbor table
    /// learns from too.
    ToHost {
        port: u16,
        learn: bool,
    },
    Drop(DropReason),
}

/// Declares [`WorkerStats`]: each counter named once, and iterable by name, so that the
/// published counters, the report, the status op and `/metrics` read them all the same way.
macro_rules! worker_stats {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// Per-worker packet counters (drops are in [`DropCounters`]).
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct WorkerStats {
            $($(#[$doc])* pub $name: u64,)*
        }

        impl WorkerStats {
            /// The counters' names, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($name),)*];
            pub const COUNT: usize = Self::NAMES.len();

            /// The values, in the order of [`WorkerStats::NAMES`].
            pub fn values(&self) -> [u64; Self::COUNT] {
                [$(self.$name,)*]
            }

            /// The counters from values in the order of [`WorkerStats::NAMES`].
            pub fn from_values(v: [u64; Self::COUNT]) -> WorkerStats {
                let mut it = v.into_iter();
                WorkerStats {
                    $($name: it.next().unwrap_or(0),)*
                }
            }

            /// (name, value) of every counter.
            pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> {
                Self::NAMES.iter().copied().zip(self.values())
            }

            /// The sum of several workers' counters.
            pub fn sum<'a>(all: impl IntoIterator<Item = &'a WorkerStats>) -> WorkerStats {
                let mut total = [0u64; Self::COUNT];
                for s in all {
                    for (t, v) in total.iter_mut().zip(s.values()) {
                        *t += v;
                    }
                }
                WorkerStats::from_values(total)
            }
        }
    };
}

worker_stats! {
    rx,
    forwarded,
    replies,
    redirects,
    neighbor,
    conns_created,
    conns_expired,
    /// Frames for the kernel twin ([`Verdict::ToHost`]).
    to_host,
    /// Half-open connections evicted from a full table for new ones (SYN-flood defense).
    half_open_evicted,
    /// Connections a sloppy service made from a mid-flow segment (a flow taken over).
    sloppy_created,
    /// TCP/UDP first fragments whose datagram was remembered; later fragments done as their
    /// first was; later fragments held for their first; held ones replayed once it came.
    frag_first,
    frag_followed,
    frag_held,
    frag_released,
    /// FullNAT: PROXY protocol headers inserted (retransmitted first segments included), TOA
    /// options inserted, and segments whose TCP header had no room for TOA.
    proxy_headers,
    toa_options,
    toa_no_room,
    /// Packets the established path took (established connections' IPv4 packets that only
    /// keep them alive; counted in `forwarded` too): with `forwarded`, how much of the
    /// traffic takes the short way.
    established_path,
}

#[derive(Debug, Clone, Copy)]
pub struct DirectorConfig {
    /// This worker's index, and how many workers share the flows.
    pub worker: u16,
    pub workers: u16,
    /// Connection-table capacity for IPv4 and for IPv6 (each).
    pub conn_capacity_v4: usize,
    pub conn_capacity_v6: usize,
    /// Keys the connection-table hash; random per worker in production.
    pub seed: u64,
    /// How many real-server ids the traffic counters cover (the registry's capacity).
    pub real_capacity: usize,
    /// When the table is full, a new TCP connection takes the place of a half-open one.
    pub evict_half_open: bool,
}

/// Traffic of one real server through one worker (IPVS's per-destination stats). Written only
/// by that worker; the control plane sums the workers'.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RealTraffic {
    pub in_packets: u64,
    pub in_bytes: u64,
    pub out_packets: u64,
    pub out_bytes: u64,
}

/// One worker's data path: its connection tables and counters.
#[derive(Debug)]
pub struct Director {
    cfg: DirectorConfig,
    pub(crate) conns4: ConnTable<Ipv4Addr>,
    pub(crate) conns6: ConnTable<Ipv6Addr>,
    pub drops: DropCounters,
    pub stats: WorkerStats,
    traffic: Box<[RealTraffic]>,
    ident: u16,
    /// Connection sync: whether this worker produces records, the records waiting for the
    /// sync daemon, and the counts.
    sync_on: bool,
    sync_out: Vec<crate::sync::SyncConn>,
    pub sync: SyncStats,
    /// A resend of the whole table in progress: (IPv6 table?, next slot).
    resync: Option<(bool, u32)>,
    /// Persistence templates, shared by every worker of a data plane.
    pub(crate) templates: std::sync::Arc<crate::conn::persist::PersistTable>,
    /// The timer tick of the last sweep of expired templates.
    swept_tick: u64,
    /// The datagrams whose fragments this worker follows, and the fragments it holds.
    frags: frag::Frags,
    /// The frame being processed was steered here by another worker.
    steered: bool,
    /// FullNAT's local ports this worker owns.
    pub(crate) lports: lport::LocalPorts,
    /// Whether the established path (`fast.rs`) takes the packets it can (always, but to
    /// compare it with the general path).
    established_path: bool,
}

/// What the first pass learns about a frame.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Class {
    Arp {
        l2: usize,
    },
    V4 {
        l2: usize,
        ip: IpInfo<Ipv4Addr>,
        l4: L4,
    },
    V6 {
        l2: usize,
        ip: IpInfo<Ipv6Addr>,
        l4: L4,
    },
    /// The first fragment of a TCP/UDP datagram (its own variant: the whole-packet arms of
    /// the dispatch test nothing more).
    First4 {
        l2: usize,
        ip: IpInfo<Ipv4Addr>,
        l4: L4,
    },
    First6 {
        l2: usize,
        ip: IpInfo<Ipv6Addr>,
        l4: L4,
    },
    /// A TCP/UDP fragment after the first: no transport header.
    Frag4 {
        l2: usize,
        ip: IpInfo<Ipv4Addr>,
    },
    Frag6 {
        l2: usize,
        ip: IpInfo<Ipv6Addr>,
    },
    /// An IP packet the data plane does not forward (a fragment, a protocol such as VRRP):
    /// for the host if it is addressed there, else dropped for `reason`.
    Other {
        dst: IpAddr,
        reason: DropReason,
    },
    Drop(DropReason),
}

/// A packet on the path: the port it came in on, where its IP header starts, its IP and
/// transport headers as the first pass read them, and the time (ms). One value handed down
/// the path, instead of the same arguments to every function.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pkt<A> {
    pub port: u16,
    pub l2: usize,
    pub ip: IpInfo<A>,
    pub l4: L4,
    pub now: u64,
}

impl<A> Pkt<A> {
    #[inline]
    fn new(port: u16, l2: usize, ip: IpInfo<A>, l4: L4, now: u64) -> Pkt<A> {
        Pkt {
            port,
            l2,
            ip,
            l4,
            now,
        }
    }
}

/// The transport header's fields the path needs (ports zero for ICMP).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct L4 {
    pub sport: u16,
    pub dport: u16,
    pub tcp_flags: u8,
    pub sctp_chunk: Option<u8>,
}

/// A frame the fast classifier took (`classify_v4_fast`): untagged Ethernet, a checked IPv4
/// header of 20 bytes, not a fragment, a whole TCP segment or UDP datagram. What the burst's
/// later passes read of it: a record of 20 bytes instead of a [`Class`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fast4 {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub sport: u16,
    pub dport: u16,
    /// The IP packet's length (its end, from the IP header).
    pub len: u16,
    /// TCP or UDP; 0 in a frame's record the fast classifier did not take.
    pub proto: u8,
    pub tcp_flags: u8,
    pub ttl: u8,
}

impl Fast4 {
    const NONE: Fast4 = Fast4 {
        src: Ipv4Addr::UNSPECIFIED,
        dst: Ipv4Addr::UNSPECIFIED,
        sport: 0,
        dport: 0,
        len: 0,
        proto: 0,
        tcp_flags: 0,
        ttl: 0,
    };

    #[inline(always)]
    fn taken(&self) -> bool {
        self.proto != 0
    }

    #[inline(always)]
    pub(crate) fn tuple(&self) -> Tuple<Ipv4Addr> {
        Tuple {
            src: self.src,
            dst: self.dst,
            sport: self.sport,
            dport: self.dport,
            proto: self.proto,
        }
    }

    /// The frame's IP and transport layers as the general path reads them.
    #[inline(always)]
    pub(crate) fn layers(&self) -> (IpInfo<Ipv4Addr>, L4) {
        let ip = IpInfo {
            src: self.src,
            dst: self.dst,
            proto: self.proto,
            l4: ipv4::MIN_HEADER_LEN,
            end: self.len as usize,
            fragment: Frag::Whole,
            ttl: self.ttl,
        };
        let l4 = L4 {
            sport: self.sport,
            dport: self.dport,
            tcp_flags: self.tcp_flags,
            sctp_chunk: None,
        };
        (ip, l4)
    }
}

const MAX_BURST: usize = 32;
const ETH: usize = crate::wire::ethernet::HEADER_LEN;

impl Director {
    pub fn new(cfg: DirectorConfig) -> Director {
        Director {
            conns4: ConnTable::new(cfg.conn_capacity_v4, cfg.seed),
            conns6: ConnTable::new(cfg.conn_capacity_v6, cfg.seed.rotate_left(17)),
            cfg,
            drops: DropCounters::default(),
            stats: WorkerStats::default(),
            traffic: vec![RealTraffic::default(); cfg.real_capacity].into_boxed_slice(),
            ident: 0,
            sync_on: false,
            sync_out: Vec::with_capacity(SYNC_OUT_MAX),
            sync: SyncStats::default(),
            resync: None,
            templates: std::sync::Arc::new(crate::conn::persist::PersistTable::new(
                (cfg.conn_capacity_v4 / 4).max(1024),
                cfg.seed.rotate_left(31),
            )),
            swept_tick: 0,
            frags: frag::Frags::default(),
            steered: false,
            lports: lport::LocalPorts::default(),
            established_path: true,
        }
    }

    /// Turns the established path off (or on again): every packet then takes the general
    /// path, which does the same (for tests and comparisons; it is on in a data plane).
    pub fn set_established_path(&mut self, on: bool) {
        self.established_path = on;
    }

    /// The same director sharing `templates` with the other workers (persistence holds across
    /// workers only when they share one table).
    pub fn with_templates(
        mut self,
        templates: std::sync::Arc<crate::conn::persist::PersistTable>,
    ) -> Director {
        self.templates = templates;
        self
    }

    /// The persistence templates this director uses.
    pub fn templates(&self) -> &crate::conn::persist::PersistTable {
        &self.templates
    }

    /// This worker's traffic to and from real server `id`.
    pub fn real_traffic(&self, id: crate::model::RealId) -> RealTraffic {
        self.traffic.get(id.0 as usize).copied().unwrap_or_default()
    }

    /// Counts a packet of a connection to (`inbound`) or from its real server.
    #[inline]
    pub(crate) fn account(&mut self, id: crate::model::RealId, inbound: bool, bytes: usize) {
        if let Some(t) = self.traffic.get_mut(id.0 as usize) {
            if inbound {
                t.in_packets += 1;
                t.in_bytes += bytes as u64;
            } else {
                t.out_packets += 1;
                t.out_bytes += bytes as u64;
            }
        }
    }

    /// FullNAT local ports this worker has handed out (or holds for synced connections).
    pub fn local_ports_in_use(&self) -> u64 {
        self.lports.in_use()
    }

    pub fn conns_v4(&self) -> &ConnTable<Ipv4Addr> {
        &self.conns4
    }

    pub fn conns_v6(&self) -> &ConnTable<Ipv6Addr> {
        &self.conns6
    }

    /// Processes one frame received on `port`.
    pub fn process<F: Frame>(&mut self, t: &Tables, port: u16, frame: &mut F, now: u64) -> Verdict {
        let mut v = [Verdict::Neighbor];
        self.process_burst(t, port, std::slice::from_mut(frame), now, &mut v);
        v[0]
    }

    /// Processes a burst of frames received on `port`, writing one verdict per frame.
    /// `now` is in milliseconds. Frames are rewritten in place.
    pub fn process_burst<F: Frame>(
        &mut self,
        t: &Tables,
        port: u16,
        frames: &mut [F],
        now: u64,
        out: &mut [Verdict],
    ) {
        assert_eq!(frames.len(), out.len(), "one verdict per frame");
        let established = self.stats.established_path;
        for (frames, out) in frames.chunks_mut(MAX_BURST).zip(out.chunks_mut(MAX_BURST)) {
            // The common frame (IPv4, TCP or UDP, no options, no tag) is read once into a
            // small record; any other into a class, layer by layer.
            // Each frame's hashes are computed, and its index slots asked for, as soon as it is
            // read; then (once they are on their way) the entries they name, before probing
            // any: the cache misses of a burst overlap instead of coming one after another.
            let mut fast = [Fast4::NONE; MAX_BURST];
            let mut classes = [Class::Drop(DropReason::EthTruncated); MAX_BURST];
            let mut hashes = [(0u32, 0u32); MAX_BURST];
            let n = frames.len();
            for (((x, c), h), f) in fast
                .iter_mut()
                .zip(classes.iter_mut())
                .zip(hashes.iter_mut())
                .zip(frames.iter())
            {
                let nic_ip = f.rx_checksums().ip;
                if classify_v4_fast(f.data(), nic_ip, x) {
                    prefetch_slots(&self.conns4, &x.tuple(), h);
                    continue;
                }
                if !classify_v6_fast(f.data(), c) {
                    *c = classify_checked(f.data(), nic_ip);
                }
                match c {
                    Class::V4 { ip, l4, .. } | Class::First4 { ip, l4, .. } => {
                        prefetch_slots(&self.conns4, &tuple(ip, l4), h)
                    }
                    Class::V6 { ip, l4, .. } | Class::First6 { ip, l4, .. } => {
                        prefetch_slots(&self.conns6, &tuple(ip, l4), h)
                    }
                    _ => {}
                }
            }
            let (mut new4, mut new6) = (0, 0);
            for ((x, c), h) in fast[..n].iter().zip(classes.iter()).zip(hashes.iter()) {
                if x.taken() {
                    new4 += self.conns4.prefetch_entry(*h, x.proto, x.src, x.sport, new4) as usize;
                    continue;
                }
                match c {
                    Class::V4 { ip, l4, .. } | Class::First4 { ip, l4, .. } => {
                        new4 += self.conns4.prefetch_entry(*h, ip.proto, ip.src, l4.sport, new4) as usize;
                    }
                    Class::V6 { ip, l4, .. } | Class::First6 { ip, l4, .. } => {
                        new6 += self.conns6.prefetch_entry(*h, ip.proto, ip.src, l4.sport, new6) as usize;
                    }
                    _ => {}
                }
            }
            for ((((x, c), h), f), v) in fast
                .iter()
                .zip(classes.iter())
                .zip(hashes)
                .zip(frames.iter_mut())
                .zip(out.iter_mut())
            {
                *v = if x.taken() {
                    let found = self.conns4.lookup_hashed(&x.tuple(), h);
                    if let Some((idx, kind)) = found {
                        // Written and counted there when taken.
                        if self.established4(t, port, f, x, idx, kind, now, v) {
                            continue;
                        }
                    }
                    let (ip, l4) = x.layers();
                    self.known_or_new(t, f, &Pkt::new(port, ETH, ip, l4, now), found)
                } else {
                    self.dispatch(t, port, f, *c, h, now)
                };
                self.count(*v);
            }
        }
        // What the established path forwarded was received and forwarded.
        let n = self.stats.established_path - established;
        self.stats.rx += n;
        self.stats.forwarded += n;
    }

    pub(super) fn count(&mut self, v: Verdict) {
        self.stats.rx += 1;
        match v {
            Verdict::Forward { .. } => self.stats.forwarded += 1,
            Verdict::Reply { .. } => self.stats.replies += 1,
            Verdict::Redirect { .. } => self.stats.redirects += 1,
            Verdict::Neighbor => self.stats.neighbor += 1,
            Verdict::Held => {}
            Verdict::ToHost { .. } => self.stats.to_host += 1,
            Verdict::Drop(r) => self.drops.count(r),
        }
    }

    fn dispatch<F: Frame>(
        &mut self,
        t: &Tables,
        port: u16,
        f: &mut F,
        c: Class,
        h: (u32, u32),
        now: u64,
    ) -> Verdict {
        match c {
            Class::Drop(r) => Verdict::Drop(r),
            Class::Other { dst, reason } => host_or_drop(t, port, dst, reason),
            Class::Arp { l2 } => self.arp(t, port, f, l2),
            Class::First4 { l2, ip, l4 } => self.first_fragment(t, f, Pkt::new(port, l2, ip, l4, now), h),
            Class::First6 { l2, ip, l4 } => self.first_fragment(t, f, Pkt::new(port, l2, ip, l4, now), h),
            Class::V4 { l2, ip, l4 } => self.ip(t, f, Pkt::new(port, l2, ip, l4, now), h),
            Class::V6 { l2, ip, l4 } => self.ip(t, f, Pkt::new(port, l2, ip, l4, now), h),
            Class::Frag4 { l2, ip } => self.later_fragment(t, f, Pkt::new(port, l2, ip, L4::default(), now)),
            Class::Frag6 { l2, ip } => self.later_fragment(t, f, Pkt::new(port, l2, ip, L4::default(), now)),
        }
    }

    #[inline(always)]
    pub(super) fn ip<A: Family, F: Frame>(
        &mut self,
        t: &Tables,
        f: &mut F,
        p: Pkt<A>,
        hashes: (u32, u32),
    ) -> Verdict {
        if p.ip.proto == A::ICMP {
            return self.icmp(t, f, &p);
        }
        let found = A::table(self).lookup_hashed(&tuple(&p.ip, &p.l4), hashes);
        self.known_or_new(t, f, &p, found)
    }

    /// A TCP/UDP/SCTP packet after its lookup: to its connection, or a new flow.
    #[inline(always)]
    fn known_or_new<A: Family, F: Frame>(
        &mut self,
        t: &Tables,
        f: &mut F,
        p: &Pkt<A>,
        found: Option<(u32, KeyKind)>,
    ) -> Verdict {
        match found {
            Some((idx, KeyKind::Out)) => self.outbound(t, f, p, idx),
            Some((idx, _)) => self.inbound(t, f, p, idx),
            None => self.new_flow(t, f, p),
        }
    }

    /// Which worker owns a flow: a hash of its client endpoint, which NAT leaves unchanged in
    /// both directions, so requests and replies meet in one table.
    pub(crate) fn owner(&self, proto: u8, client: IpAddr, client_port: u16) -> u16 {
        if self.cfg.workers <= 1 {
            return self.cfg.worker;
        }
        owner_of(proto, client, client_port, self.cfg.workers)
    }

    pub(crate) fn worker(&self) -> u16 {
        self.cfg.worker
    }

    pub(crate) fn evict_half_open(&self) -> bool {
        self.cfg.evict_half_open
    }

    pub(crate) fn next_ident(&mut self) -> u16 {
        self.ident = self.ident.wrapping_add(1);
        self.ident
    }
}

/// The worker that owns a flow whose client endpoint is `client:client_port`, out of `workers`.
/// The same function must be used by every worker (and by RSS set-up that wants no redirects).
pub fn owner_of(proto: u8, client: IpAddr, client_port: u16, workers: u16) -> u16 {
    let h = match client {
        IpAddr::V4(a) => a.mix(proto as u64),
        IpAddr::V6(a) => a.mix(proto as u64),
    };
    let h = (h ^ client_port as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    ((h >> 32) % workers as u64) as u16
}

/// A packet the data plane has no use for: up to the kernel if it is for the host, else a drop
/// for `reason`. Called only where the path would otherwise drop, never on the fast path.
pub(crate) fn host_or_drop(t: &Tables, port: u16, dst: IpAddr, reason: DropReason) -> Verdict {
    if t.net.to_host(port, dst) {
        Verdict::ToHost { port, learn: false }
    } else {
        Verdict::Drop(reason)
    }
}

/// Computes a frame's hashes and asks for their first index slots.
#[inline]
fn prefetch_slots<A: Addr>(t: &ConnTable<A>, tuple: &Tuple<A>, h: &mut (u32, u32)) {
    *h = t.hashes(tuple);
    t.prefetch_slot(h.0);
    t.prefetch_slot(h.1);
}

/// A classified packet's 5-tuple.
#[inline]
fn tuple<A: Copy>(ip: &IpInfo<A>, l4: &L4) -> Tuple<A> {
    Tuple {
        src: ip.src,
        dst: ip.dst,
        sport: l4.sport,
        dport: l4.dport,
        proto: ip.proto,
    }
}

/// The common frame in one pass at fixed offsets: untagged Ethernet, an IPv4 header of 20
/// bytes, not a fragment, carrying a whole TCP segment or UDP datagram: writes its record to
/// `out` and answers true. Answers false, writing nothing, for anything else (a frame it does
/// not take, a check that fails), which [`classify_checked`] then reads layer by layer: what
/// it accepts is exactly what that function makes of the same frame (tested), so every
/// malformed frame still meets its own drop reason there.
#[inline(always)]
fn classify_v4_fast(b: &[u8], nic_ip: crate::frame::RxCheck, out: &mut Fast4) -> bool {
    use crate::frame::RxCheck;
    const L2: usize = crate::wire::ethernet::HEADER_LEN;
    // Ethernet, the IPv4 header and the UDP header, the shortest transport header taken.
    let Some(h) = b.get(..L2 + 28) else {
        return false;
    };
    let h: &[u8; L2 + 28] = h.try_into().expect("the slice is L2 + 28 bytes");
    // IPv4's ethertype and a version-4 header of five words, read as one word (with the TOS).
    if u32::from_be_bytes([h[12], h[13], h[L2], h[L2 + 1]]) >> 8 != 0x08_00_45 {
        return false;
    }
    let total = u16::from_be_bytes([h[L2 + 2], h[L2 + 3]]) as usize;
    let flags_frag = u16::from_be_bytes([h[L2 + 6], h[L2 + 7]]);
    if total > b.len() - L2 || flags_frag & (ipv4::FLAG_MF | ipv4::FRAG_OFFSET) != 0 {
        return false;
    }
    let ok = match nic_ip {
        RxCheck::Good => true,
        RxCheck::Bad => false,
        // The one's-complement sum does not depend on byte order (RFC 1071): the words are
        // summed as they lie in memory.
        RxCheck::Unknown => {
            let w = |i: usize| {
                u32::from_ne_bytes([h[L2 + i], h[L2 + i + 1], h[L2 + i + 2], h[L2 + i + 3]]) as u64
            };
            crate::checksum::words_sum_ok(w(0) + w(4) + w(8) + w(12) + w(16))
        }
    };
    if !ok {
        return false;
    }
    let proto = h[L2 + 9];
    // total <= b.len() - L2 (above): the segment is in the frame.
    let Some(tcp_flags) = b
        .get(L2 + 20..L2 + total)
        .and_then(|seg| fast_transport(proto, seg))
    else {
        return false;
    };
    *out = Fast4 {
        src: Ipv4Addr::new(h[L2 + 12], h[L2 + 13], h[L2 + 14], h[L2 + 15]),
        dst: Ipv4Addr::new(h[L2 + 16], h[L2 + 17], h[L2 + 18], h[L2 + 19]),
        sport: u16::from_be_bytes([h[L2 + 20], h[L2 + 21]]),
        dport: u16::from_be_bytes([h[L2 + 22], h[L2 + 23]]),
        len: total as u16,
        proto,
        tcp_flags,
        ttl: h[L2 + 8],
    };
    true
}

/// The fast classifiers' transport check of a segment (the IP packet's payload): a whole
/// TCP header with its data offset inside the segment, or a UDP datagram whose length fits
/// it, as `TcpSegment::new_checked` and `UdpDatagram::new_checked` ask. The TCP flags (0 for
/// UDP), or None for anything else.
#[inline(always)]
fn fast_transport(protocol: u8, seg: &[u8]) -> Option<u8> {
    match protocol {
        proto::TCP => {
            let h = seg.get(..20)?;
            let off = (h[12] >> 4) as usize * 4;
            (off >= 20 && off <= seg.len()).then_some(h[13])
        }
        proto::UDP => {
            let h = seg.get(..8)?;
            let len = u16::from_be_bytes([h[4], h[5]]) as usize;
            (len >= 8 && len <= seg.len()).then_some(0)
        }
        _ => None,
    }
}

/// The common IPv6 frame at fixed offsets: untagged Ethernet, an IPv6 header followed by a
/// whole TCP segment or UDP datagram (no extension header): writes its class to `out` and
/// answers true; false, writing nothing, for anything else, which [`classify_checked`] then
/// reads layer by layer. What it accepts is exactly what that function makes of the same
/// frame (tested), so every malformed frame still meets its own drop reason there.
#[inline(always)]
fn classify_v6_fast(b: &[u8], out: &mut Class) -> bool {
    const L2: usize = crate::wire::ethernet::HEADER_LEN;
    const L4_AT: usize = L2 + 40;
    // Ethernet, the IPv6 header and the UDP header, the shortest transport header taken.
    let Some(h) = b.get(..L4_AT + 8) else {
        return false;
    };
    let h: &[u8; L4_AT + 8] = h.try_into().expect("the slice is L2 + 48 bytes");
    if h[12] != 0x86 || h[13] != 0xdd || h[L2] >> 4 != 6 {
        return false;
    }
    let plen = u16::from_be_bytes([h[L2 + 4], h[L2 + 5]]) as usize;
    if 40 + plen > b.len() - L2 {
        return false;
    }
    let proto = h[L2 + 6];
    // 40 + plen <= b.len() - L2 (above): the segment is in the frame.
    let Some(tcp_flags) = b
        .get(L4_AT..L4_AT + plen)
        .and_then(|seg| fast_transport(proto, seg))
    else {
        return false;
    };
    let addr = |at: usize| {
        let a: [u8; 16] = h[at..at + 16].try_into().expect("16 bytes");
        Ipv6Addr::from(a)
    };
    let ip = IpInfo {
        src: addr(L2 + 8),
        dst: addr(L2 + 24),
        proto,
        l4: 40,
        end: 40 + plen,
        fragment: Frag::Whole,
        ttl: h[L2 + 7],
    };
    let l4 = L4 {
        sport: u16::from_be_bytes([h[L4_AT], h[L4_AT + 1]]),
        dport: u16::from_be_bytes([h[L4_AT + 2], h[L4_AT + 3]]),
        tcp_flags,
        sctp_chunk: None,
    };
    *out = Class::V6 { l2: L2, ip, l4 };
    true
}

/// Any frame, layer by layer (what the fast classifiers do not take).
#[inline(never)]
fn classify_checked(b: &[u8], nic_ip: crate::frame::RxCheck) -> Class {
    let eth = match EthernetFrame::new_checked(b) {
        Ok(e) => e,
        Err(r) => return Class::Drop(r),
    };
    let l2 = eth.header_len();
    match eth.ethertype() {
        ethertype::ARP => Class::Arp { l2 },
        ethertype::IPV4 => match ip_class::<Ipv4Addr>(&b[l2..], nic_ip) {
            Ok((ip, None)) => Class::Frag4 { l2, ip },
            Ok((ip, Some(l4))) if ip.fragment == Frag::First => Class::First4 { l2, ip, l4 },
            Ok((ip, Some(l4))) => Class::V4 { l2, ip, l4 },
            Err(IpClassError::Bad(r)) => Class::Drop(r),
            Err(IpClassError::NotForwarded(dst, reason)) => Class::Other {
                dst: dst.ip(),
                reason,
            },
        },
        ethertype::IPV6 => match ip_class::<Ipv6Addr>(&b[l2..], nic_ip) {
            Ok((ip, None)) => Class::Frag6 { l2, ip },
            Ok((ip, Some(l4))) if ip.fragment == Frag::First => Class::First6 { l2, ip, l4 },
            Ok((ip, Some(l4))) => Class::V6 { l2, ip, l4 },
            Err(IpClassError::Bad(r)) => Class::Drop(r),
            Err(IpClassError::NotForwarded(dst, reason)) => Class::Other {
                dst: dst.ip(),
                reason,
            },
        },
        _ => Class::Drop(DropReason::UnknownEthertype),
    }
}

/// Why a valid-looking IP packet is not classified as a flow.
enum IpClassError<A> {
    /// Malformed at some layer.
    Bad(DropReason),
    /// Well formed, but nothing the data plane forwards (a fragment, VRRP, IGMP...): the host
    /// may want it.
    NotForwarded(A, DropReason),
}

impl<A> From<DropReason> for IpClassError<A> {
    fn from(r: DropReason) -> Self {
        IpClassError::Bad(r)
    }
}

/// The IP header and, but for a TCP/UDP fragment after the first, the transport header.
fn ip_class<A: Family>(
    b: &[u8],
    nic: crate::frame::RxCheck,
) -> Result<(IpInfo<A>, Option<L4>), IpClassError<A>> {
    let ip = A::parse_checked(b, nic)?;
    if ip.fragment != Frag::Whole && !matches!(ip.proto, proto::TCP | proto::UDP) {
        return Err(IpClassError::NotForwarded(ip.dst, DropReason::Fragment));
    }
    if ip.fragment == Frag::Later {
        return Ok((ip, None));
    }
    let l4b = &b[ip.l4..ip.end];
    let l4 = match ip.proto {
        // A first fragment holds the whole header but not the length its header gives.
        proto::UDP if ip.fragment == Frag::First => {
            if l4b.len() < crate::wire::udp::HEADER_LEN {
                return Err(IpClassError::Bad(DropReason::UdpTruncated));
            }
            L4 {
                sport: u16::from_be_bytes([l4b[0], l4b[1]]),
                dport: u16::from_be_bytes([l4b[2], l4b[3]]),
                ..L4::default()
            }
        }
        proto::TCP => {
            let s = TcpSegment::new_checked(l4b)?;
            L4 {
                sport: s.src_port(),
                dport: s.dst_port(),
                tcp_flags: s.flags(),
                sctp_chunk: None,
            }
        }
        proto::UDP => {
            let d = UdpDatagram::new_checked(l4b)?;
            L4 {
                sport: d.src_port(),
                dport: d.dst_port(),
                ..L4::default()
            }
        }
        proto::SCTP => {
            let s = SctpPacket::new_checked(l4b)?;
            L4 {
                sport: s.src_port(),
                dport: s.dst_port(),
                tcp_flags: 0,
                sctp_chunk: s.first_chunk(),
            }
        }
        p if p == A::ICMP => {
            crate::wire::icmp::IcmpPacket::new_checked(l4b)?;
            L4::default()
        }
        _ => {
            return Err(IpClassError::NotForwarded(
                ip.dst,
                DropReason::UnsupportedProtocol,
            ))
        }
    };
    Ok((ip, Some(l4)))
}

#[cfg(test)]
mod tests {
    use super::WorkerStats;
    use super::{classify_checked, Class, Fast4};
    use crate::frame::RxCheck;
    use proptest::prelude::*;

    /// The fast classifiers' answer (IPv4's record as the class it stands for), if one of them
    /// takes the frame.
    fn classify_fast(b: &[u8], nic: RxCheck) -> Option<Class> {
        let mut x = Fast4::NONE;
        if super::classify_v4_fast(b, nic, &mut x) {
            assert!(x.taken());
            let (ip, l4) = x.layers();
            return Some(Class::V4 {
                l2: crate::wire::ethernet::HEADER_LEN,
                ip,
                l4,
            });
        }
        let mut c = Class::Drop(crate::DropReason::EthTruncated);
        super::classify_v6_fast(b, &mut c).then_some(c)
    }

    /// What the fast classifiers are for: untagged IPv4 with a 20-byte header, or IPv6 without
    /// an extension header, carrying a whole TCP segment or UDP datagram.
    fn common(c: &Class) -> bool {
        match c {
            Class::V4 { l2: 14, ip, .. } => ip.l4 == 20 && matches!(ip.proto, 6 | 17),
            Class::V6 { l2: 14, ip, .. } => ip.l4 == 40 && matches!(ip.proto, 6 | 17),
            _ => false,
        }
    }

    /// A valid IPv4 or IPv6 (`v6`) TCP or UDP frame (etherparse builds it), with `pad` bytes
    /// of Ethernet padding after the packet.
    fn frame(v6: bool, tcp: bool, payload: usize, pad: usize) -> Vec<u8> {
        let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let b = if v6 {
            b.ipv6(
                [0x20, 1, 0xd, 0xb8, 0, 0xc, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7],
                [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0],
                64,
            )
        } else {
            b.ipv4([10, 1, 2, 3], [10, 0, 0, 100], 64)
        };
        let data = vec![0x5a; payload];
        let mut out = Vec::new();
        if tcp {
            b.tcp(40000, 80, 7, 64000).ack(9).write(&mut out, &data).unwrap();
        } else {
            b.udp(40000, 53).write(&mut out, &data).unwrap();
        }
        out.resize(out.len() + pad, 0);
        out
    }

    #[test]
    fn the_fast_classifiers_take_the_common_frames() {
        for v6 in [false, true] {
            for tcp in [false, true] {
                for (payload, pad) in [(0, 0), (0, 6), (1, 0), (1400, 0)] {
                    let f = frame(v6, tcp, payload, pad);
                    let fast = classify_fast(&f, RxCheck::Unknown);
                    assert!(fast.as_ref().is_some_and(common), "{v6} {tcp} {payload} {pad}");
                    assert_eq!(fast.unwrap(), classify_checked(&f, RxCheck::Unknown));
                }
            }
        }
    }

    proptest! {
        /// Whatever a fast classifier accepts, the layer-by-layer one makes the same of;
        /// whatever they refuse is left to that one (a bad checksum, an extension header, a
        /// short or odd header, another protocol), and is not a common frame.
        #[test]
        fn the_fast_classifiers_agree_with_the_checked_one(
            v6 in any::<bool>(),
            tcp in any::<bool>(),
            payload in 0usize..64,
            pad in 0usize..8,
            edits in proptest::collection::vec((0usize..110, any::<u8>()), 0..4),
            cut in 0usize..100,
            nic in prop_oneof![Just(RxCheck::Unknown), Just(RxCheck::Good), Just(RxCheck::Bad)],
        ) {
            let mut f = frame(v6, tcp, payload, pad);
            for (at, v) in edits {
                if at < f.len() {
                    f[at] = v;
                }
            }
            f.truncate(f.len().saturating_sub(cut % 40 * (cut / 50)));
            let slow = classify_checked(&f, nic);
            match classify_fast(&f, nic) {
                Some(fast) => prop_assert_eq!(fast, slow),
                None => prop_assert!(!common(&slow), "a fast classifier refused a frame it should take: {:?}", slow),
            }
        }
    }

    #[test]
    fn every_worker_counter_is_named_once_and_survives_a_round_trip() {
        let mut names = WorkerStats::NAMES.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), WorkerStats::COUNT);
        let v: [u64; WorkerStats::COUNT] = std::array::from_fn(|i| i as u64 * 3 + 1);
        let s = WorkerStats::from_values(v);
        assert_eq!(s.values(), v);
        assert_eq!(s.rx, 1);
        assert_eq!(
            s.iter().find(|(n, _)| *n == "frag_held").map(|x| x.1),
            Some(s.frag_held)
        );
        let total = WorkerStats::sum([&s, &s]);
        assert_eq!(total.forwarded, 2 * s.forwarded);
    }
}
