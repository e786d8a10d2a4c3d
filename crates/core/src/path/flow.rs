//! Connections: creating them (service lookup, persistence, scheduling), stepping their state,
//! keeping the real servers' active/inactive counts, expiring them, and forwarding their
//! packets by the method bound at creation.

use std::net::IpAddr;
use std::sync::atomic::Ordering;

use super::family::{Family, IpInfo};
use super::lport::LocalPorts;
use super::{Director, Pkt, Verdict, L4};
use crate::conn::persist::TemplateKey;
use crate::conn::state::{sctp_next, tcp_next, Direction, SctpState, TcpState, Timeouts};
use crate::conn::{
    Addr, Conn, ConnTable, CONN_CLIENT_VIA_GW, CONN_INACTIVE, CONN_NO_OUTPUT, CONN_PROXY_V2, CONN_RS_VIA_GW,
    CONN_TOA, NIL,
};
use crate::drop::DropReason;
use crate::frame::Frame;
use crate::model::{Forward, Protocol, RealRegistry, RealServer, Service};
use crate::sched::FlowInfo;
use crate::tables::Tables;
use crate::wire::{proto, tcp};

/// Is a connection in this state counted as active (IPVS: ESTABLISHED only)?
pub(super) fn is_active(protocol: u8, state: u8) -> bool {
    match protocol {
        proto::TCP => state == TcpState::Established as u8,
        proto::SCTP => state == SctpState::Established as u8,
        _ => false,
    }
}

pub(super) fn state_timeout_ms(t: &Timeouts, protocol: u8, state: u8) -> u64 {
    let s = match protocol {
        proto::TCP => t.tcp[TcpState::from_u8(state) as usize],
        proto::SCTP => t.sctp[(state as usize).min(2)],
        _ => t.udp,
    };
    s as u64 * 1000
}

/// The persistence template of a client (masked) of `svc`. The service's port, not the
/// packet's: a port-0 service has one template for every port of its VIP, so a client's
/// connections to any of them reach one real server. A mark's service has one for every
/// protocol, address and port of the mark, keyed as IPVS keys it (protocol 0, the mark as the
/// address, port 0): the classic HTTP+HTTPS sticky set-up.
pub(super) fn template_key(svc: &Service, proto: u8, client: IpAddr, vaddr: IpAddr) -> TemplateKey {
    match svc.key {
        crate::model::ServiceKey::Addr { port, .. } => TemplateKey {
            proto,
            client,
            vaddr,
            vport: port,
        },
        crate::model::ServiceKey::Fwmark { mark, v6 } => TemplateKey {
            proto: 0,
            client,
            vaddr: crate::model::ServiceKey::mark_addr(mark, v6),
            vport: 0,
        },
    }
}

impl Director {
    /// A miss: kept out of line, so that what the established path inlines does not depend on
    /// how big connection creation grows (measured: +28 instructions per established packet
    /// when it was inlined after the SYN-flood defense made creation bigger).
    #[inline(never)]
    pub(super) fn new_flow<A: Family, F: Frame>(&mut self, t: &Tables, f: &mut F, p: &Pkt<A>) -> Verdict {
        let Pkt { port, l2, ip, l4, .. } = *p;
        let dst = ip.dst.ip();
        let protocol = Protocol::from_number(ip.proto);
        let marked = if t.has_marks() {
            protocol.and_then(|p| t.marked_service(p, dst, l4.dport))
        } else {
            None
        };
        let inbound = if marked.is_some() {
            t.takes(port, dst, marked)
        } else {
            t.is_vip_on(port, dst)
        };
        // The director's own traffic (ssh, BGP, replies to health probes) is never a NAT
        // reply: up to the kernel before any steering between workers.
        if !inbound && t.net.to_host(port, dst) {
            return Verdict::ToHost { port, learn: false };
        }
        // A miss here may be a hit in the owner's table: NAT replies come from real servers
        // (client = destination), new flows from clients (client = source).
        let (client, cport) = if inbound {
            (ip.src.ip(), l4.sport)
        } else {
            (dst, l4.dport)
        };
        // A FullNAT flow belongs to the worker its first packet reached (the local port it
        // gets makes the replies that worker's too): nothing crosses between workers.
        let svc = match (inbound, protocol) {
            (true, Some(pr)) => marked.or_else(|| t.service(pr, dst, l4.dport)),
            _ => None,
        };
        let owner = if svc.is_some_and(|s| s.is_fullnat()) {
            self.worker()
        } else {
            self.owner(ip.proto, client, cport)
        };
        if owner != self.worker() {
            return Verdict::Redirect { worker: owner };
        }
        if !inbound {
            // A reply of a one-packet NAT service: no connection, the service says the VIP.
            if let Some((vaddr, vport)) = t.one_packet_reply(ip.proto, ip.src.ip(), l4.sport) {
                return self.one_packet_reply(t, f, p, vaddr, vport);
            }
            return Verdict::Drop(DropReason::NotForUs);
        }
        // What would make a connection is checked first: a source no client can have, then
        // the transport checksum (both only here, off the established path).
        let src = ip.src.ip();
        if ip.src.is_martian() || t.is_own(src) {
            return Verdict::Drop(DropReason::MartianSource);
        }
        // A first fragment's checksum covers bytes still on their way: it cannot be checked.
        // The NIC's word when it checked the TCP/UDP checksum; else the path's own check.
        if ip.fragment == super::family::Frag::Whole {
            let intact = match f.rx_checksums().l4 {
                crate::frame::RxCheck::Good if ip.proto != proto::SCTP => true,
                crate::frame::RxCheck::Bad if ip.proto != proto::SCTP => false,
                _ => l4_intact(f.data(), l2, &ip),
            };
            if !intact {
                return Verdict::Drop(DropReason::BadL4Checksum);
            }
        }
        let Some(protocol) = protocol else {
            return Verdict::Drop(DropReason::UnsupportedProtocol);
        };
        let Some(svc) = svc else {
            // A VIP the kernel also holds takes what no service claims, as a Linux director
            // whose VIP is a local address does.
            return super::host_or_drop(t, port, dst, DropReason::NoService);
        };
        // IPVS schedules TCP only on a SYN, SCTP only on an INIT: anything else is a stray,
        // unless the service is sloppy (then anything but a RST, an ABORT or a SHUTDOWN
        // COMPLETE, which end flows rather than carry them).
        let initial = match protocol {
            Protocol::Tcp if svc.sloppy => l4.tcp_flags & tcp::flags::RST == 0,
            Protocol::Tcp => l4.tcp_flags & (tcp::flags::SYN | tcp::flags::RST) == tcp::flags::SYN,
            Protocol::Sctp if svc.sloppy => !matches!(
                l4.sctp_chunk,
                Some(crate::wire::sctp::chunk::ABORT)
                    | Some(crate::wire::sctp::chunk::SHUTDOWN_COMPLETE)
                    | None
            ),
            Protocol::Sctp => l4.sctp_chunk == Some(crate::wire::sctp::chunk::INIT),
            Protocol::Udp => true,
        };
        let mid_flow = match protocol {
            Protocol::Tcp => l4.tcp_flags & tcp::flags::SYN == 0,
            Protocol::Sctp => l4.sctp_chunk != Some(crate::wire::sctp::chunk::INIT),
            Protocol::Udp => false,
        };
        if !initial {
            return Verdict::Drop(DropReason::NoConnNotInitial);
        }
        if svc.one_packet && protocol == Protocol::Udp && !svc.is_fullnat() {
            return self.one_packet(t, svc, f, p);
        }
        let idx = match self.create(t, svc, p, tcp_seq(f.data(), p)) {
            Ok(idx) => idx,
            Err(r) => return Verdict::Drop(r),
        };
        self.stats.sloppy_created += mid_flow as u64;
        self.inbound_known(t, f, p, idx)
    }

    /// One-packet scheduling: the datagram is scheduled and forwarded, and nothing is kept.
    fn one_packet<A: Family, F: Frame>(
        &mut self,
        t: &Tables,
        svc: &Service,
        f: &mut F,
        p: &Pkt<A>,
    ) -> Verdict {
        let (real, _) = match self.pick(t, svc, p) {
            Ok(x) => x,
            Err(r) => return Verdict::Drop(r),
        };
        let c = match bound_conn(t, p.ip, p.l4, real) {
            Ok(c) => c,
            Err(r) => return Verdict::Drop(r),
        };
        t.reals.get(real.id).conns.fetch_add(1, Ordering::Relaxed);
        self.stats.conns_created += 1;
        self.forward_in(t, f, p, &c)
    }

    /// A reply from a NAT real server of a one-packet service: from the VIP, to the client.
    fn one_packet_reply<A: Family, F: Frame>(
        &mut self,
        t: &Tables,
        f: &mut F,
        p: &Pkt<A>,
        vaddr: IpAddr,
        vport: u16,
    ) -> Verdict {
        let Some(v) = A::from_ip(vaddr) else {
            return Verdict::Drop(DropReason::NotForUs);
        };
        if p.ip.ttl <= 1 {
            return Verdict::Drop(DropReason::TtlExceeded);
        }
        super::method::nat::reply_from(t, f.data_mut(), p, v, vport)
    }

    /// The real server for a new flow of `svc`, through the client's persistence template if
    /// the service has one (shared by every worker); the template's slot or NIL.
    fn pick<'s, A: Family>(
        &mut self,
        t: &Tables,
        svc: &'s Service,
        p: &Pkt<A>,
    ) -> Result<(&'s RealServer, u32), DropReason> {
        let Pkt { ip, l4, now, .. } = *p;
        let reg = &t.reals;
        let Some(persist) = svc.persistence else {
            return Ok((schedule(svc, reg, ip, l4, now)?, NIL));
        };
        // The client's template, shared by every worker: one real server per client (per
        // netmask) whichever worker its connections land on.
        let key = template_key(svc, ip.proto, ip.src.masked(persist.prefix_len).ip(), ip.dst.ip());
        if let Some((slot, r)) = self
            .templates
            .lookup(&key, now)
            .and_then(|(slot, id)| svc.real_by_id(id).map(|r| (slot, r)))
        {
            return Ok((r, slot));
        }
        let r = schedule(svc, reg, ip, l4, now)?;
        let (slot, id) = self
            .templates
            .claim(&key, r.id, persist.timeout_s, now, reg)
            .map_err(|_| DropReason::TemplateTableFull)?;
        // Another worker may have bound the client an instant earlier.
        Ok((svc.real_by_id(id).unwrap_or(r), slot))
    }

    /// Picks the real server (through the client's persistence template if the service has
    /// one) and inserts the connection.
    fn create<A: Family>(
        &mut self,
        t: &Tables,
        svc: &Service,
        p: &Pkt<A>,
        seq: u32,
    ) -> Result<u32, DropReason> {
        let Pkt { ip, l4, now, .. } = *p;
        let reg = &t.reals;
        let evict = self.evict_half_open();
        let (real, template) = self.pick(t, svc, p)?;
        let persist_s = svc.persistence.map_or(0, |p| p.timeout_s);
        let mut c = bound_conn(t, ip, l4, real)?;
        c.flags |= CONN_INACTIVE;
        c.template = template;
        c.persist_s = persist_s;
        c.expires = now + state_timeout_ms(&t.timeouts, ip.proto, 0);
        if c.forward == Forward::FullNat {
            self.bind_local(svc, &mut c, p, seq)?;
        }
        let (table, lports) = A::table_and_ports(self);
        let mut evicted = 0;
        let inserted = match table.insert(c) {
            Ok(i) => Ok(i),
            // A full table under a SYN flood: a half-open connection makes room for this one,
            // so new clients still get in while established flows are never touched.
            Err(_) if evict && ip.proto == proto::TCP => {
                evicted = 1;
                insert_evicting(table, reg, lports, c)
            }
            Err(_) => Err(DropReason::ConnTableFull),
        };
        let idx = match inserted {
            Ok(i) => i,
            Err(r) => {
                if c.forward == Forward::FullNat {
                    self.lports.release(c.laddr.ip(), c.proto, c.lport);
                }
                return Err(r);
            }
        };
        let shared = reg.get(real.id);
        shared.inactive.fetch_add(1, Ordering::Relaxed);
        shared.conns.fetch_add(1, Ordering::Relaxed);
        shared.update_overload();
        self.stats.conns_created += 1;
        self.stats.half_open_evicted += evicted;
        Ok(idx)
    }

    /// A FullNAT connection's local address and port (this worker's share of the service's
    /// local addresses), and how the client's address reaches the server: the PROXY header's
    /// length and version, TOA. The client's first sequence number is its SYN's plus one
    /// (a connection a sloppy service makes mid-flow has no SYN: no PROXY header for it).
    fn bind_local<A: Family>(
        &mut self,
        svc: &Service,
        c: &mut Conn<A>,
        p: &Pkt<A>,
        seq: u32,
    ) -> Result<(), DropReason> {
        let (laddr, lport) = self
            .lports
            .take(
                &svc.fullnat.laddrs,
                A::HEADER_LEN != 20,
                c.proto,
                self.cfg.worker,
                self.cfg.workers,
            )
            .map_err(|e| match e {
                super::lport::NoPort::NoAddress => DropReason::NoLocalAddress,
                super::lport::NoPort::Exhausted => DropReason::LocalPortsExhausted,
            })?;
        c.laddr = A::from_ip(laddr).ok_or(DropReason::NoLocalAddress)?;
        c.lport = lport;
        let syn = p.l4.tcp_flags & (tcp::flags::SYN | tcp::flags::ACK) == tcp::flags::SYN;
        if c.proto == proto::TCP {
            let f = &svc.fullnat;
            if syn {
                c.isn = seq.wrapping_add(1);
                if f.proxy != crate::model::ProxyProtocol::Off {
                    let v2 = f.proxy == crate::model::ProxyProtocol::V2;
                    let client = std::net::SocketAddr::new(c.client.ip(), c.cport);
                    let dst = std::net::SocketAddr::new(c.vaddr.ip(), c.vport);
                    c.proxy_len = crate::wire::proxy::header_len(v2, client, dst) as u8;
                    if v2 {
                        c.flags |= CONN_PROXY_V2;
                    }
                }
            }
            if f.toa {
                c.flags |= CONN_TOA;
            }
        }
        Ok(())
    }

    /// Steps the connection's state for a packet in `dir`, refreshes its expiry and moves it
    /// between the active and inactive counts when that changes. `c` is the caller's copy of
    /// the entry, read before (a load of the line just stored to would wait for the store: a
    /// store-forwarding stall on every packet), kept up to date here. Returns the state
    /// before. The established case first, inlined; the rest out of line.
    #[inline(always)]
    fn step<A: Addr>(
        table: &mut ConnTable<A>,
        t: &Tables,
        idx: u32,
        dir: Direction,
        l4: &L4,
        now: u64,
        c: &mut Conn<A>,
    ) -> u8 {
        let old = c.state;
        // The established path: a segment without SYN, FIN or RST leaves an ESTABLISHED TCP
        // connection as it is (every direction's table says so), and its activity with it;
        // only its expiry moves. (Measured: 50 instructions a packet less.)
        if old == TcpState::Established as u8
            && c.proto == proto::TCP
            && l4.tcp_flags & (tcp::flags::SYN | tcp::flags::FIN | tcp::flags::RST) == 0
        {
            c.expires = now + t.timeouts.tcp[TcpState::Established as usize] as u64 * 1000;
            table.get_mut(idx).expires = c.expires;
            return old;
        }
        Self::step_slow(table, &t.reals, &t.timeouts, idx, dir, l4, now);
        *c = *table.get(idx);
        old
    }

    #[inline(never)]
    fn step_slow<A: Addr>(
        table: &mut ConnTable<A>,
        reg: &RealRegistry,
        timeouts: &Timeouts,
        idx: u32,
        dir: Direction,
        l4: &L4,
        now: u64,
    ) {
        let c = table.get_mut(idx);
        let dir = if c.flags & CONN_NO_OUTPUT != 0 && dir == Direction::Input {
            Direction::InputOnly
        } else {
            dir
        };
        let new = match c.proto {
            proto::TCP => tcp_next(TcpState::from_u8(c.state), dir, l4.tcp_flags) as u8,
            proto::SCTP => sctp_next(SctpState::from_u8(c.state), l4.sctp_chunk) as u8,
            _ => 0,
        };
        c.state = new;
        c.expires = now + state_timeout_ms(timeouts, c.proto, new);
        let was_inactive = c.flags & CONN_INACTIVE != 0;
        let active = is_active(c.proto, new);
        if active == was_inactive {
            move_activity(c, reg, active);
        }
    }

    /// A packet from the client side of a connection.
    #[inline(always)]
    pub(super) fn inbound<A: Family, F: Frame>(
        &mut self,
        t: &Tables,
        f: &mut F,
        p: &Pkt<A>,
        idx: u32,
    ) -> Verdict {
        // A bare SYN on a known tuple: one flag test on the established path (the flags are
        // zero for UDP and SCTP).
        if p.l4.tcp_flags & (tcp::flags::SYN | tcp::flags::ACK | tcp::flags::RST) == tcp::flags::SYN {
            if let Err(r) = self.reuse_time_wait(t, p, idx, tcp_seq(f.data(), p)) {
                return Verdict::Drop(r);
            }
        }
        self.inbound_known(t, f, p, idx)
    }

    /// A client's packet on connection `idx` as it stands (a connection just made goes here
    /// straight: it is in no TIME_WAIT).
    #[inline(always)]
    fn inbound_known<A: Family, F: Frame>(&mut self, t: &Tables, f: &mut F, p: &Pkt<A>, idx: u32) -> Verdict {
        let table = A::table(self);
        let mut c = *table.get(idx);
        let old = Self::step(table, t, idx, Direction::Input, &p.l4, p.now, &mut c);
        if c.template != NIL {
            self.keep_template(&c, p.now);
        }
        if self.sync_on {
            self.sync_check::<A>(idx, old, p.now);
        }
        if p.ip.ttl <= 1 && c.forward.has_replies() {
            return Verdict::Drop(DropReason::TtlExceeded);
        }
        self.forward_in(t, f, p, &c)
    }

    /// IPVS's `conn_reuse_mode` (1, its default): a SYN that finds its TCP connection in
    /// TIME_WAIT (a client reusing a port within those two minutes) or CLOSE (after a reset:
    /// a refused attempt, for ten seconds) starts a new connection, scheduled again, instead
    /// of going to the old one's server (IPVS's `is_new_conn_expected`). The entry is reused in
    /// place: its old server's count released, bound to the new server. Not under
    /// persistence, where the template decides (IPVS: not a controlled connection). A flow
    /// whose service is gone keeps its entry, as before.
    #[cold]
    #[inline(never)]
    fn reuse_time_wait<A: Family>(
        &mut self,
        t: &Tables,
        p: &Pkt<A>,
        idx: u32,
        seq: u32,
    ) -> Result<(), DropReason> {
        let c = A::table(self).get(idx);
        let ended = c.state == TcpState::TimeWait as u8 || c.state == TcpState::Close as u8;
        if !ended || c.template != NIL {
            return Ok(());
        }
        let svc = Protocol::from_number(p.ip.proto).and_then(|pr| t.lookup(pr, p.ip.dst.ip(), p.l4.dport));
        let Some(svc) = svc else {
            return Ok(());
        };
        let (real, template) = self.pick(t, svc, p)?;
        let fresh = bound_conn(t, p.ip, p.l4, real)?;
        if (A::table(self).get(idx).forward == Forward::FullNat) != (fresh.forward == Forward::FullNat) {
            // The service moved to or from FullNAT since: the entry has no local port to keep
            // (or one the new method would not use). It runs out its TIME_WAIT as it is.
            return Ok(());
        }
        let reg = &t.reals;
        let table = A::table(self);
        let old = *table.get(idx);
        let was = reg.get(old.real);
        if old.flags & CONN_INACTIVE != 0 {
            was.inactive.fetch_sub(1, Ordering::Relaxed);
        } else {
            was.active.fetch_sub(1, Ordering::Relaxed);
        }
        was.update_overload();
        table.rebind(idx, fresh.raddr, fresh.rport, fresh.forward, fresh.real);
        let e = table.get_mut(idx);
        // A FullNAT entry keeps its local address and port (they are this worker's) and how
        // the client's address is delivered; the new SYN starts a new stream.
        e.flags = fresh.flags | CONN_INACTIVE | (old.flags & (CONN_PROXY_V2 | CONN_TOA));
        if old.forward == Forward::FullNat {
            e.isn = seq.wrapping_add(1);
        }
        e.rs_port = fresh.rs_port;
        e.client_port = fresh.client_port;
        e.state = TcpState::None as u8;
        e.template = template;
        e.persist_s = svc.persistence.map_or(0, |pe| pe.timeout_s);
        let new = reg.get(real.id);
        new.inactive.fetch_add(1, Ordering::Relaxed);
        new.conns.fetch_add(1, Ordering::Relaxed);
        new.update_overload();
        // The old connection ended and a new one began (the entry count stays the same).
        self.stats.conns_expired += 1;
        self.stats.conns_created += 1;
        Ok(())
    }

    /// A reply from a real server of a NAT connection.
    pub(super) fn outbound<A: Family, F: Frame>(
        &mut self,
        t: &Tables,
        f: &mut F,
        p: &Pkt<A>,
        idx: u32,
    ) -> Verdict {
        let table = A::table(self);
        let mut c = *table.get(idx);
        let old = Self::step(table, t, idx, Direction::Output, &p.l4, p.now, &mut c);
        if c.template != NIL {
            self.keep_template(&c, p.now);
        }
        if self.sync_on {
            self.sync_check::<A>(idx, old, p.now);
        }
        if p.ip.ttl <= 1 {
            return Verdict::Drop(DropReason::TtlExceeded);
        }
        self.forward_out(t, f, p, &c)
    }

    /// A packet of a connection under a template: the template lives at least as long as the
    /// connection, and its persistence timeout from now (IPVS re-arms a template while it
    /// controls connections).
    #[cold]
    fn keep_template<A: Addr>(&self, c: &Conn<A>, now: u64) {
        self.templates
            .keep_alive(c.template, c.expires.max(now + c.persist_s as u64 * 1000));
    }

    /// Advances the connection timers to `now` (ms), expiring what is due and keeping the real
    /// servers' counts. Call once per poll loop.
    pub fn advance(&mut self, t: &Tables, now: u64) {
        let reg = &t.reals;
        // Expired templates are freed a stretch at a time, by whichever worker gets there.
        let tick = now / crate::conn::TICK_MS;
        let new_tick = tick != self.swept_tick;
        if new_tick {
            self.swept_tick = tick;
            self.templates.sweep(1024, now, reg);
        }
        self.expire_fragments(now, new_tick);
        let lports = &mut self.lports;
        let n4 = self.conns4.advance(now, |tb, i| expire(tb, reg, lports, i));
        let n6 = self.conns6.advance(now, |tb, i| expire(tb, reg, lports, i));
        self.stats.conns_expired += (n4 + n6) as u64;
    }
}

/// A connection of the packet's flow bound to `real`, with its routes resolved (once, here:
/// IPVS caches the route in the destination the same way) and its method's flags; not yet in
/// a table. A NAT packet that cannot be forwarded (TTL 1, a traceroute probe) makes none.
fn bound_conn<A: Family>(
    t: &Tables,
    ip: IpInfo<A>,
    l4: L4,
    real: &RealServer,
) -> Result<Conn<A>, DropReason> {
    if real.forward.has_replies() && ip.ttl <= 1 {
        return Err(DropReason::TtlExceeded);
    }
    let raddr = A::from_ip(real.addr).ok_or(DropReason::NoRealServer)?;
    let (rs_port, rs_hop) = t.real_route(real).ok_or(DropReason::NoRoute)?;
    let mut flags = if rs_hop != real.addr { CONN_RS_VIA_GW } else { 0 };
    let mut client_port = 0;
    if real.forward.has_replies() {
        let (p, hop) = t.route(ip.src.ip()).ok_or(DropReason::NoRoute)?;
        client_port = p;
        if hop != ip.src.ip() {
            flags |= CONN_CLIENT_VIA_GW;
        }
    } else {
        flags |= CONN_NO_OUTPUT;
    }
    // A real server of port 0 (of a port-0 service) takes the port the client asked for.
    let rport = if real.port == 0 { l4.dport } else { real.port };
    let mut c = Conn::new(
        ip.proto,
        ip.src,
        l4.sport,
        ip.dst,
        l4.dport,
        raddr,
        rport,
        real.forward,
        real.id,
    );
    c.flags = flags;
    c.rs_port = rs_port as u8;
    c.client_port = client_port as u8;
    Ok(c)
}

/// A TCP segment's sequence number (0 for anything else): read off the frame where a
/// connection needs it, so that the per-packet header summary stays small.
fn tcp_seq<A: Family>(b: &[u8], p: &Pkt<A>) -> u32 {
    if p.ip.proto != proto::TCP {
        return 0;
    }
    b.get(p.l2 + p.ip.l4 + 4..p.l2 + p.ip.l4 + 8)
        .map_or(0, |s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Moves a connection between its real server's inactive and active counts (IPVS's
/// IP_VS_CONN_F_INACTIVE), when its state says it changed sides.
#[inline]
pub(super) fn move_activity<A: Addr>(c: &mut Conn<A>, reg: &RealRegistry, active: bool) {
    let shared = reg.get(c.real);
    if active {
        c.flags &= !CONN_INACTIVE;
        shared.inactive.fetch_sub(1, Ordering::Relaxed);
        shared.active.fetch_add(1, Ordering::Relaxed);
    } else {
        c.flags |= CONN_INACTIVE;
        shared.active.fetch_sub(1, Ordering::Relaxed);
        shared.inactive.fetch_add(1, Ordering::Relaxed);
    }
}

/// Whether the frame's transport checksum is right (SCTP: its CRC32c).
fn l4_intact<A: Family>(b: &[u8], l2: usize, ip: &IpInfo<A>) -> bool {
    let Some(seg) = b.get(l2 + ip.l4..l2 + ip.end) else {
        return false;
    };
    match ip.proto {
        proto::TCP | proto::UDP => A::l4_checksum_ok(ip.proto, seg, ip.src, ip.dst),
        proto::SCTP => crate::wire::sctp::checksum_ok(seg),
        _ => true,
    }
}

/// Makes room for `c` in a full table by evicting a half-open connection (off the fast path).
#[cold]
#[inline(never)]
fn insert_evicting<A: Addr>(
    table: &mut ConnTable<A>,
    reg: &RealRegistry,
    lports: &mut LocalPorts,
    c: Conn<A>,
) -> Result<u32, DropReason> {
    if !table.evict_one(half_open, |tb, i| {
        expire(tb, reg, lports, i);
    }) {
        return Err(DropReason::ConnTableFull);
    }
    table.insert(c).map_err(|_| DropReason::ConnTableFull)
}

/// A TCP connection not yet established (IPVS drop_entry's victims): what a SYN flood fills the
/// table with, and what a legitimate client loses least by (it retransmits its SYN).
fn half_open<A: Addr>(c: &Conn<A>) -> bool {
    c.proto == proto::TCP
        && matches!(
            TcpState::from_u8(c.state),
            TcpState::None | TcpState::SynSent | TcpState::SynRecv | TcpState::SynAck
        )
}

/// The expiry of one connection: its real server's counts settled; None removes it (the
/// table would keep an entry given a new time; connections are never kept).
fn expire<A: Addr>(
    table: &mut ConnTable<A>,
    reg: &RealRegistry,
    lports: &mut LocalPorts,
    idx: u32,
) -> Option<u64> {
    let c = *table.get(idx);
    if c.forward == Forward::FullNat {
        lports.release(c.laddr.ip(), c.proto, c.lport);
    }
    let shared = reg.get(c.real);
    if c.flags & CONN_INACTIVE != 0 {
        shared.inactive.fetch_sub(1, Ordering::Relaxed);
    } else {
        shared.active.fetch_sub(1, Ordering::Relaxed);
    }
    shared.update_overload();
    None
}

fn schedule<'s, A: Family>(
    svc: &'s Service,
    reg: &RealRegistry,
    ip: IpInfo<A>,
    l4: L4,
    now: u64,
) -> Result<&'s RealServer, DropReason> {
    let flow = FlowInfo {
        client: ip.src.ip(),
        client_port: l4.sport,
        vip: ip.dst.ip(),
        vport: l4.dport,
        now,
    };
    svc.scheduler
        .pick(&svc.reals, reg, &flow)
        .map(|i| &svc.reals[i])
        .ok_or(DropReason::NoRealServer)
}

/// Routes to `dst` and sets the source MAC to the egress port's.
pub(super) fn route(t: &Tables, b: &mut [u8], dst: IpAddr) -> Verdict {
    let Some((port, next_hop)) = t.route(dst) else {
        return Verdict::Drop(DropReason::NoRoute);
    };
    set_src_mac(b, t.net.ports[port as usize].mac);
    Verdict::Forward { port, next_hop }
}

/// Toward a connection's real server by the route resolved at its creation.
pub(super) fn to_real<A: Addr>(t: &Tables, b: &mut [u8], c: &Conn<A>) -> Verdict {
    via(t, b, c.rs_port, c.flags & CONN_RS_VIA_GW != 0, c.raddr.ip())
}

/// Out of `port`, to `dst` itself or to the port's gateway of its family.
#[inline]
pub(super) fn via(t: &Tables, b: &mut [u8], port: u8, via_gateway: bool, dst: IpAddr) -> Verdict {
    let Some(p) = t.net.ports.get(port as usize) else {
        return Verdict::Drop(DropReason::NoRoute);
    };
    let next_hop = match (via_gateway, dst) {
        (false, _) => dst,
        (true, IpAddr::V4(_)) => match p.gateway4 {
            Some(g) => IpAddr::V4(g),
            None => return Verdict::Drop(DropReason::NoRoute),
        },
        (true, IpAddr::V6(_)) => match p.gateway6 {
            Some(g) => IpAddr::V6(g),
            None => return Verdict::Drop(DropReason::NoRoute),
        },
    };
    set_src_mac(b, p.mac);
    Verdict::Forward {
        port: port as u16,
        next_hop,
    }
}

/// The frame was classified, so it holds an Ethernet header.
#[inline]
pub(super) fn set_src_mac(b: &mut [u8], mac: crate::wire::ethernet::Mac) {
    b[6..12].copy_from_slice(&mac);
}
