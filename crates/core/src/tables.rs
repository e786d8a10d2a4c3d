//! The tables the control plane publishes and every worker reads: network, services with their
//! real servers, timeouts. Immutable once built; a change builds a new `Tables`.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;
use std::sync::Arc;

use crate::conn::state::Timeouts;
use crate::model::{Announce, MarkRule, Protocol, RealRegistry, Service, ServiceKey};
use crate::net::Network;

/// The hasher of the maps keyed by the operator's addresses (services, VIPs, local
/// addresses, next hops): word at a time, multiply and rotate (FxHash's scheme), so an
/// address costs a step or two where a byte-wise hash (FNV, which this replaced) took one per
/// byte of it and of its discriminant and length. The keys are the operator's, not the
/// attacker's: SipHash's flood resistance would buy nothing.
#[derive(Default, Clone, Copy)]
pub struct KeyHasher(u64);

impl KeyHasher {
    const K: u64 = 0xf135_7aea_2e62_a9c5;

    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(Self::K);
    }
}

impl Hasher for KeyHasher {
    #[inline]
    fn finish(&self) -> u64 {
        // The multiply leaves its best bits on top; hash tables index with the low ones.
        self.0.rotate_left(26)
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w) ^ (rest.len() as u64) << 59);
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }

    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(i as u64);
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(i as u64);
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn write_isize(&mut self, i: isize) {
        self.add(i as u64);
    }
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<KeyHasher>>;

/// An IPv4 service's key as one word: the protocol's number, the port and the address.
#[inline]
fn v4_key(protocol: Protocol, vip: std::net::Ipv4Addr, port: u16) -> u64 {
    ((protocol.number() as u64) << 48) | ((port as u64) << 32) | u32::from(vip) as u64
}

#[derive(Debug)]
pub struct Tables {
    pub net: Network,
    /// Shared with later snapshots when unchanged, so a service's scheduler state (the rr
    /// position, locality caches) survives edits of other services.
    pub services: Vec<Arc<Service>>,
    pub timeouts: Timeouts,
    pub reals: Arc<RealRegistry>,
    /// Address services by (protocol, VIP, port): a plain tuple, so that a new flow's lookup
    /// hashes no enum discriminant.
    by_key: FastMap<(Protocol, IpAddr, u16), usize>,
    /// The IPv4 ones again, keyed by one word (`v4_key`): a new flow's lookup is one hash
    /// round and one compare instead of a tuple's five and its enum compare.
    by_key4: FastMap<u64, usize>,
    /// Each VIP and when it is answered: `Always` if any of its services says so.
    vips: FastMap<IpAddr, Announce>,
    /// NAT real servers of one-packet services, by (protocol, address, port): the service
    /// their replies come from (None when two services share the server: ambiguous).
    one_packet_nat: FastMap<(u8, IpAddr, u16), Option<(IpAddr, u16)>>,
    /// Every address of the director's own (VIPs, port addresses, what the twins hold): no
    /// client has one, so a new flow from one is spoofed or looped (one lookup, not three).
    own: FastMap<IpAddr, ()>,
    /// The classifier's rules, first match wins, and the `-f` services by (mark, IPv6?).
    marks: Vec<MarkRule>,
    by_mark: FastMap<(u32, bool), usize>,
    /// FullNAT's local addresses (every service's): answered for (ARP/ND) on every port.
    laddrs: FastMap<IpAddr, ()>,
    /// Each real server's route (egress port, next hop), resolved once per table instead of
    /// once per new connection; indexed by the server's registry id (dense), with the
    /// address it was resolved for.
    real_routes: Vec<Option<(IpAddr, u16, IpAddr)>>,
    /// The network's routes, flattened (a new connection's route to its client).
    routes: crate::net::RouteIndex,
}

impl Tables {
    /// Builds the lookup indexes and publishes each real server's thresholds to its shared
    /// counters.
    pub fn new(
        net: Network,
        services: Vec<Arc<Service>>,
        timeouts: Timeouts,
        reals: Arc<RealRegistry>,
    ) -> Tables {
        let mut by_key = FastMap::default();
        let mut by_key4 = FastMap::default();
        let mut vips = FastMap::default();
        let mut one_packet_nat: FastMap<(u8, IpAddr, u16), Option<(IpAddr, u16)>> = FastMap::default();
        let mut by_mark = FastMap::default();
        for (i, s) in services.iter().enumerate() {
            for r in &s.reals {
                reals.get(r.id).set_thresholds(r.upper, r.lower);
            }
            let (protocol, vip, port) = match s.key {
                ServiceKey::Addr { protocol, vip, port } => (protocol, vip, port),
                ServiceKey::Fwmark { mark, v6 } => {
                    by_mark.insert((mark, v6), i);
                    continue;
                }
            };
            by_key.insert((protocol, vip, port), i);
            if let IpAddr::V4(a) = vip {
                by_key4.insert(v4_key(protocol, a, port), i);
            }
            let a = vips.entry(vip).or_insert(s.announce);
            if s.announce == Announce::Always {
                *a = Announce::Always;
            }
            for r in &s.reals {
                if s.one_packet && r.forward == crate::model::Forward::Nat {
                    let k = (protocol.number(), r.addr, r.port);
                    let v = (vip, port);
                    one_packet_nat
                        .entry(k)
                        .and_modify(|e| {
                            if *e != Some(v) {
                                *e = None;
                            }
                        })
                        .or_insert(Some(v));
                }
            }
        }
        let mut real_routes = Vec::new();
        for r in services.iter().flat_map(|s| s.reals.iter()) {
            let i = r.id.0 as usize;
            if real_routes.len() <= i {
                real_routes.resize(i + 1, None);
            }
            real_routes[i] = net.route(r.addr).map(|(port, hop)| (r.addr, port, hop));
        }
        let laddrs: FastMap<IpAddr, ()> = services
            .iter()
            .flat_map(|s| s.fullnat.laddrs.iter().map(|&a| (a, ())))
            .collect();
        let mut own: FastMap<IpAddr, ()> = vips.keys().map(|&a| (a, ())).collect();
        own.extend(laddrs.iter().map(|(&a, _)| (a, ())));
        for p in &net.ports {
            own.extend(p.v4.iter().map(|&(a, _)| (IpAddr::V4(a), ())));
            own.extend(p.v6.iter().map(|&(a, _)| (IpAddr::V6(a), ())));
            own.extend(p.host.iter().map(|&a| (a, ())));
        }
        Tables {
            services,
            timeouts,
            reals,
            by_key,
            by_key4,
            vips,
            one_packet_nat,
            own,
            marks: Vec::new(),
            by_mark,
            laddrs,
            real_routes,
            routes: net.route_index(),
            net,
        }
    }

    /// The route (egress port, next hop) to `dst`, as [`Network::route`] answers it.
    #[inline]
    pub fn route(&self, dst: IpAddr) -> Option<(u16, IpAddr)> {
        self.routes.route(dst)
    }

    /// The route to a real server (egress port, next hop): resolved when the tables were
    /// built, as IPVS caches a destination's route.
    #[inline]
    pub fn real_route(&self, r: &crate::model::RealServer) -> Option<(u16, IpAddr)> {
        match self.real_routes.get(r.id.0 as usize) {
            Some(&Some((addr, port, hop))) if addr == r.addr => Some((port, hop)),
            _ => self.route(r.addr),
        }
    }

    /// The same tables with the classifier's `rules` (first match wins). Each rule naming one
    /// address whose mark has a service makes that address a VIP, answered as the service
    /// says; wider prefixes are for the routers to send here.
    pub fn with_marks(mut self, rules: Vec<MarkRule>) -> Tables {
        for r in &rules {
            let Some(&i) = self.by_mark.get(&(r.mark, r.dst.is_ipv6())) else {
                continue;
            };
            if r.is_host() {
                let announce = self.services[i].announce;
                let a = self.vips.entry(r.dst).or_insert(announce);
                if announce == Announce::Always {
                    *a = Announce::Always;
                }
                self.own.insert(r.dst, ());
            }
        }
        self.marks = rules;
        self
    }

    /// Whether there are classifier rules at all (a new flow skips them when there are none).
    #[inline]
    pub fn has_marks(&self) -> bool {
        !self.marks.is_empty()
    }

    /// The `-f` service of the first rule matching a new flow, if that mark has one.
    #[inline]
    pub fn marked_service(&self, protocol: Protocol, dst: IpAddr, port: u16) -> Option<&Service> {
        if self.marks.is_empty() {
            return None;
        }
        let r = self.marks.iter().find(|r| r.matches(protocol, dst, port))?;
        self.by_mark
            .get(&(r.mark, dst.is_ipv6()))
            .map(|&i| &*self.services[i])
    }

    /// The `-f MARK` service of a family.
    pub fn fwmark_service(&self, mark: u32, v6: bool) -> Option<&Service> {
        self.by_mark.get(&(mark, v6)).map(|&i| &*self.services[i])
    }

    /// The service a new flow belongs to, in IPVS's order: the mark's service, then the
    /// protocol, address and port's, then the address's port-0 service.
    #[inline]
    pub fn lookup(&self, protocol: Protocol, dst: IpAddr, port: u16) -> Option<&Service> {
        self.marked_service(protocol, dst, port)
            .or_else(|| self.service(protocol, dst, port))
    }

    /// Is a new flow to `dst` on `port` one the director takes: a VIP answered there, or a
    /// marked destination (one of a wider prefix routed here: always; a VIP of a follow-host
    /// mark service: while the port's twin holds it)?
    #[inline]
    pub fn takes(&self, port: u16, dst: IpAddr, s: Option<&Service>) -> bool {
        if let Some(&a) = self.vips.get(&dst) {
            return self.answered(port, dst, a);
        }
        match s {
            Some(s) if matches!(s.key, ServiceKey::Fwmark { .. }) => self.answered(port, dst, s.announce),
            _ => false,
        }
    }

    /// Is `a`, announced as `announce` says, answered on `port` now?
    #[inline]
    fn answered(&self, port: u16, a: IpAddr, announce: Announce) -> bool {
        match announce {
            Announce::Always => true,
            Announce::FollowHost => self.net.port(port).is_some_and(|p| p.host.contains(&a)),
        }
    }

    /// The service a persistence template belongs to: a mark's (protocol 0, the mark as the
    /// address) or an address's.
    pub fn template_service(&self, proto: u8, vaddr: IpAddr, vport: u16) -> Option<&Service> {
        if proto == 0 {
            let mark = match vaddr {
                IpAddr::V4(a) => u32::from(a),
                IpAddr::V6(a) => u32::try_from(u128::from(a)).ok()?,
            };
            return self.fwmark_service(mark, vaddr.is_ipv6());
        }
        self.service(Protocol::from_number(proto)?, vaddr, vport)
    }

    #[inline]
    pub fn service(&self, protocol: Protocol, vip: IpAddr, port: u16) -> Option<&Service> {
        // A port-0 service takes every port of its VIP that no service of its own has.
        let i = match vip {
            IpAddr::V4(a) => self
                .by_key4
                .get(&v4_key(protocol, a, port))
                .or_else(|| self.by_key4.get(&v4_key(protocol, a, 0))),
            IpAddr::V6(_) => self
                .by_key
                .get(&(protocol, vip, port))
                .or_else(|| self.by_key.get(&(protocol, vip, 0))),
        };
        i.map(|&i| &*self.services[i])
    }

    /// Bytes the services take (their servers and their schedulers' tables), the part of the
    /// tables that grows with the configuration.
    pub fn memory_bytes(&self) -> usize {
        self.services
            .iter()
            .map(|s| {
                std::mem::size_of::<Service>()
                    + s.reals.len() * std::mem::size_of::<crate::model::RealServer>()
                    + s.scheduler.memory_bytes()
            })
            .sum()
    }

    /// The VIP and port a reply from `addr:port` (a NAT real server of a one-packet service)
    /// goes out from, as no connection remembers it.
    #[inline]
    pub fn one_packet_reply(&self, protocol: u8, addr: IpAddr, port: u16) -> Option<(IpAddr, u16)> {
        if self.one_packet_nat.is_empty() {
            return None;
        }
        self.one_packet_nat
            .get(&(protocol, addr, port))
            .copied()
            .flatten()
    }

    /// Is `a` one of the director's own addresses: a VIP, a port's, or one a twin holds?
    #[inline]
    pub fn is_own(&self, a: IpAddr) -> bool {
        self.own.contains_key(&a)
    }

    /// Is `a` a VIP of some service (answered on some port or not)?
    #[inline]
    pub fn is_vip(&self, a: IpAddr) -> bool {
        self.vips.contains_key(&a)
    }

    /// Is `a` a local address of a FullNAT service?
    #[inline]
    pub fn is_laddr(&self, a: IpAddr) -> bool {
        !self.laddrs.is_empty() && self.laddrs.contains_key(&a)
    }

    /// Does the data plane answer ARP/ND and echo for `a` on `port`: a VIP answered there
    /// now, or a FullNAT local address?
    #[inline]
    pub fn answers(&self, port: u16, a: IpAddr) -> bool {
        self.is_vip_on(port, a) || self.is_laddr(a)
    }

    /// Is `a` a VIP answered on `port` now: always, or while the port's twin holds it?
    #[inline]
    pub fn is_vip_on(&self, port: u16, a: IpAddr) -> bool {
        self.vips.get(&a).is_some_and(|&an| self.answered(port, a, an))
    }

    /// The VIPs answered on `port` now, for gratuitous announcements.
    pub fn vips_on(&self, port: u16) -> impl Iterator<Item = IpAddr> + '_ {
        self.vips
            .keys()
            .copied()
            .filter(move |&a| self.is_vip_on(port, a))
    }
}
