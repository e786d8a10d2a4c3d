//! Connection sync in the data path: what a master worker hands to the sync daemon, and how a
//! backup worker installs what the daemon received.
//!
//! Sending follows IPVS: a TCP connection is sent when it enters ESTABLISHED, FIN_WAIT,
//! CLOSE, CLOSE_WAIT or TIME_WAIT (never half-open ones: a SYN flood is not replicated), an SCTP
//! association when it is established or closed, a UDP flow on its first packet; and each
//! again on a packet once half its timeout has passed since it was last sent, so the peer's
//! copy never expires while the flow lives. A persistence template goes with the first
//! connection it controls and then at half its timeout. Records wait in a bounded buffer the
//! worker empties each loop; a full buffer is a counted loss, never a wait.
//!
//! Installing never schedules: the record names the real server, which must be one of the
//! service's (else it is refused, counted by reason).

use std::net::IpAddr;
use std::sync::atomic::Ordering;

use super::family::Family;
use super::Director;
use crate::conn::persist::{TemplateKey, TemplateView};
use crate::conn::state::{SctpState, TcpState};
use crate::conn::{
    Addr, Conn, ConnTable, KeyKind, Tuple, CONN_CLIENT_VIA_GW, CONN_INACTIVE, CONN_NO_OUTPUT, CONN_PROXY_V2,
    CONN_RS_VIA_GW, CONN_TOA, NIL,
};
use crate::model::{Forward, Protocol};
use crate::sync::{flags, SyncConn, SyncFullNat};
use crate::tables::Tables;
use crate::wire::proto;

/// The longest timeout a received record may set: what an operator can set (`--set`, `-p`)
/// goes up to 31 days; a record saying more is clamped (the kernel clamps too), so that no
/// message can pin an entry for ever.
pub const MAX_SYNC_TIMEOUT_S: u32 = 31 * 24 * 3600;

/// Records a worker may hold between two loops.
pub const SYNC_OUT_MAX: usize = 4096;

/// Why a worker did not install a received record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum SyncRefusal {
    /// No service at the record's virtual address, port and protocol.
    UnknownService,
    /// The service has no real server at the record's destination.
    UnknownRealServer,
    /// No route toward the real server (or the client, for NAT).
    NoRoute,
    /// The connection table is full.
    TableFull,
    /// A FullNAT connection without its local address and port (rvs's option), or with a
    /// local port another entry holds here.
    NoLocalPort,
}

impl SyncRefusal {
    pub const COUNT: usize = 5;
    pub const ALL: [SyncRefusal; SyncRefusal::COUNT] = [
        SyncRefusal::UnknownService,
        SyncRefusal::UnknownRealServer,
        SyncRefusal::NoRoute,
        SyncRefusal::TableFull,
        SyncRefusal::NoLocalPort,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SyncRefusal::UnknownService => "unknown_service",
            SyncRefusal::UnknownRealServer => "unknown_real_server",
            SyncRefusal::NoRoute => "no_route",
            SyncRefusal::TableFull => "table_full",
            SyncRefusal::NoLocalPort => "no_local_port",
        }
    }
}

/// A worker's sync counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Records produced for the sync daemon.
    pub emitted: u64,
    /// Records lost because the buffer or the queue to the daemon was full.
    pub lost: u64,
    /// Received records that made a new entry.
    pub installed: u64,
    /// Received records that updated an entry already there.
    pub updated: u64,
    pub refused: [u64; SyncRefusal::COUNT],
}

/// The record of a table entry, with the time it has left.
fn record<A: Addr>(c: &Conn<A>, now: u64) -> SyncConn {
    let fwd = match c.forward {
        Forward::Nat => flags::MASQ,
        Forward::Dr => flags::DROUTE,
        Forward::Tun => flags::TUNNEL,
        Forward::FullNat => flags::FULLNAT,
    };
    let mut f = fwd;
    if c.flags & CONN_NO_OUTPUT != 0 || !c.forward.has_replies() {
        f |= flags::NOOUTPUT;
    }
    if c.flags & CONN_INACTIVE != 0 {
        f |= flags::INACTIVE;
    }
    let state = match c.proto {
        proto::TCP => c.state as u16,
        proto::SCTP => SctpState::from_u8(c.state).ipvs(),
        _ => 0,
    };
    SyncConn {
        protocol: c.proto,
        flags: f,
        state,
        client: c.client.ip(),
        cport: c.cport,
        vaddr: c.vaddr.ip(),
        vport: c.vport,
        daddr: c.raddr.ip(),
        dport: c.rport,
        fwmark: 0,
        timeout_s: c.expires.saturating_sub(now).div_ceil(1000).max(1) as u32,
        fullnat: (c.forward == Forward::FullNat).then(|| SyncFullNat {
            laddr: c.laddr.ip(),
            lport: c.lport,
            isn: c.isn,
            proxy_len: c.proxy_len,
            proxy_v2: c.flags & CONN_PROXY_V2 != 0,
            toa: c.flags & CONN_TOA != 0,
        }),
    }
}

/// Whether IPVS syncs a connection in this state.
fn syncable(protocol: u8, state: u8) -> bool {
    match protocol {
        proto::TCP => matches!(
            TcpState::from_u8(state),
            TcpState::Established
                | TcpState::FinWait
                | TcpState::Close
                | TcpState::CloseWait
                | TcpState::TimeWait
        ),
        proto::SCTP => state != SctpState::Init as u8,
        _ => true,
    }
}

/// The sync clock: seconds plus one, so that 0 means "never sent".
fn stamp(now: u64) -> u32 {
    (now / 1000) as u32 + 1
}

/// Sent long enough ago (or never) that the peer's copy needs news: half of `timeout_s`.
fn stale(synced_s: u32, now_s: u32, timeout_s: u32) -> bool {
    synced_s == 0 || now_s.saturating_sub(synced_s) >= timeout_s / 2
}

impl Director {
    /// Turns the sending side of sync on or off (the worker follows the sync daemon's role).
    pub fn set_sync(&mut self, on: bool) {
        self.sync_on = on;
    }

    /// The records produced since the last call, for the sync daemon; the caller empties it.
    pub fn sync_out(&mut self) -> &mut Vec<SyncConn> {
        &mut self.sync_out
    }

    fn emit(&mut self, r: SyncConn) {
        if self.sync_out.len() < SYNC_OUT_MAX {
            self.sync_out.push(r);
            self.sync.emitted += 1;
        } else {
            self.sync.lost += 1;
        }
    }

    /// After a packet stepped connection `idx` from state `old`: its record if IPVS would
    /// send one now (and its template's, if that is due).
    pub(super) fn sync_check<A: Family>(&mut self, idx: u32, old: u8, now: u64) {
        let now_s = stamp(now);
        let table = A::table(self);
        let c = *table.get(idx);
        if !syncable(c.proto, c.state) {
            return;
        }
        let full_s = (c.expires.saturating_sub(now) / 1000) as u32;
        if c.state == old && !stale(c.synced_s, now_s, full_s) {
            return;
        }
        table.get_mut(idx).synced_s = now_s;
        // The template goes with it when due: bound to the connection's real server.
        let tpl = (c.template != NIL)
            .then(|| self.templates.due_for_sync(c.template, now_s, now))
            .flatten()
            .map(|v| template_record(&v, c.raddr.ip(), c.rport, c.forward, now));
        self.emit(record(&c, now));
        if let Some(t) = tpl {
            self.emit(t);
        }
    }

    /// Starts sending the whole table again (a peer (re)joined, or the master daemon started),
    /// a few entries per call of [`Director::resync_step`].
    pub fn start_resync(&mut self) {
        self.resync = Some((false, 0));
    }

    pub fn resyncing(&self) -> bool {
        self.resync.is_some()
    }

    /// Emits the records of up to `max` slots of the walk started by
    /// [`Director::start_resync`]: every syncable connection, and (from worker 0, as they are
    /// shared) every template at the start of the walk.
    pub fn resync_step(&mut self, t: &Tables, now: u64, max: u32) {
        let Some((v6, from)) = self.resync else { return };
        if (v6, from) == (false, 0) && self.worker() == 0 {
            for v in self.templates.live(now) {
                let real = t
                    .template_service(v.key.proto, v.key.vaddr, v.key.vport)
                    .and_then(|s| s.real_by_id(v.real));
                if let Some(r) = real {
                    self.emit(template_record(&v, r.addr, r.port, r.forward, now));
                }
            }
        }
        let cap = if v6 {
            self.conns6.capacity()
        } else {
            self.conns4.capacity()
        } as u32;
        let to = from.saturating_add(max).min(cap);
        let now_s = stamp(now);
        for i in from..to {
            let r = if v6 {
                walk_one(&mut self.conns6, i, now, now_s)
            } else {
                walk_one(&mut self.conns4, i, now, now_s)
            };
            if let Some(r) = r {
                self.emit(r);
            }
        }
        self.resync = match (to < cap, v6) {
            (true, _) => Some((v6, to)),
            (false, false) => Some((true, 0)),
            (false, true) => None,
        };
    }

    /// Installs a record received from the master, in this worker's tables (the caller picked
    /// the worker that owns the flow; templates go to every worker).
    pub fn install(&mut self, t: &Tables, r: &SyncConn, now: u64) -> Result<(), SyncRefusal> {
        let res = match r.client {
            IpAddr::V4(_) => self.install_in::<std::net::Ipv4Addr>(t, r, now),
            IpAddr::V6(_) => self.install_in::<std::net::Ipv6Addr>(t, r, now),
        };
        match res {
            Ok(true) => self.sync.installed += 1,
            Ok(false) => self.sync.updated += 1,
            Err(e) => self.sync.refused[e as usize] += 1,
        }
        res.map(|_| ())
    }

    /// Ok(true): a new entry; Ok(false): one updated.
    fn install_in<A: Family>(&mut self, t: &Tables, r: &SyncConn, now: u64) -> Result<bool, SyncRefusal> {
        let (Some(client), Some(vaddr), Some(raddr)) =
            (A::from_ip(r.client), A::from_ip(r.vaddr), A::from_ip(r.daddr))
        else {
            return Err(SyncRefusal::UnknownService);
        };
        // A template says its service as it is keyed (a mark's: protocol 0, the mark as the
        // address); a connection is looked up as its first packet was (marks first).
        let svc = if r.is_template() {
            t.template_service(r.protocol, r.vaddr, r.vport)
        } else {
            Protocol::from_number(r.protocol).and_then(|p| t.lookup(p, r.vaddr, r.vport))
        }
        .ok_or(SyncRefusal::UnknownService)?;
        let real = svc
            .reals
            .iter()
            .find(|x| x.addr == r.daddr && (x.port == r.dport || x.port == 0))
            .ok_or(SyncRefusal::UnknownRealServer)?;
        let timeout_ms = if r.timeout_s > 0 {
            r.timeout_s.min(MAX_SYNC_TIMEOUT_S) as u64 * 1000
        } else {
            super::flow::state_timeout_ms(&t.timeouts, r.protocol, local_state(r))
        };
        let now_s = stamp(now);
        if r.is_template() {
            let key = TemplateKey {
                proto: r.protocol,
                client: r.client,
                vaddr: r.vaddr,
                vport: r.vport,
            };
            let persist = svc
                .persistence
                .map_or(r.timeout_s.min(MAX_SYNC_TIMEOUT_S), |p| p.timeout_s);
            return self
                .templates
                .install(&key, real.id, persist, now + timeout_ms, now, &t.reals)
                .map_err(|_| SyncRefusal::TableFull);
        }
        let table = A::table(self);
        let state = local_state(r);
        let tuple = Tuple {
            src: client,
            dst: vaddr,
            sport: r.cport,
            dport: r.vport,
            proto: r.protocol,
        };
        let reg = &t.reals;
        if let Some(idx) = table.find(&tuple, table.hash(&tuple, KeyKind::In), KeyKind::In) {
            let c = *table.get(idx);
            let was_active = c.flags & CONN_INACTIVE == 0;
            if c.real != real.id {
                let old = reg.get(c.real);
                if was_active {
                    old.active.fetch_sub(1, Ordering::Relaxed);
                } else {
                    old.inactive.fetch_sub(1, Ordering::Relaxed);
                }
                old.conns.fetch_sub(1, Ordering::Relaxed);
                old.update_overload();
                table.rebind(idx, raddr, r.dport, real.forward, real.id);
                let new = reg.get(real.id);
                new.inactive.fetch_add(1, Ordering::Relaxed);
                new.conns.fetch_add(1, Ordering::Relaxed);
                table.get_mut(idx).flags |= CONN_INACTIVE;
            }
            let e = table.get_mut(idx);
            e.state = state;
            e.expires = now + timeout_ms;
            e.synced_s = now_s;
            set_activity(e, reg, super::flow::is_active(r.protocol, state));
            return Ok(false);
        }
        let (rs_port, rs_hop) = t.real_route(real).ok_or(SyncRefusal::NoRoute)?;
        let mut cflags = if rs_hop != real.addr { CONN_RS_VIA_GW } else { 0 };
        let mut client_port = 0;
        if real.forward.has_replies() {
            let (p, hop) = t.route(r.client).ok_or(SyncRefusal::NoRoute)?;
            client_port = p;
            if hop != r.client {
                cflags |= CONN_CLIENT_VIA_GW;
            }
        } else {
            cflags |= CONN_NO_OUTPUT;
        }
        let mut c = Conn::new(
            r.protocol,
            client,
            r.cport,
            vaddr,
            r.vport,
            raddr,
            r.dport,
            real.forward,
            real.id,
        );
        c.flags = cflags | CONN_INACTIVE;
        c.rs_port = rs_port as u8;
        c.client_port = client_port as u8;
        c.state = state;
        c.expires = now + timeout_ms;
        c.synced_s = now_s;
        if let Some(p) = svc.persistence {
            let key = super::flow::template_key(svc, r.protocol, client.masked(p.prefix_len).ip(), r.vaddr);
            if let Some((slot, id)) = self.templates.lookup(&key, now) {
                if id == real.id {
                    c.template = slot;
                    c.persist_s = p.timeout_s;
                }
            }
        }
        // FullNAT: the local address and port the master chose, held in this worker's share
        // (the caller picked the worker that owns the port) so no new connection takes it.
        let held = match (real.forward, r.fullnat) {
            (Forward::FullNat, Some(f)) => {
                c.laddr = A::from_ip(f.laddr).ok_or(SyncRefusal::NoLocalPort)?;
                c.lport = f.lport;
                c.isn = f.isn;
                c.proxy_len = f.proxy_len;
                if f.proxy_v2 {
                    c.flags |= CONN_PROXY_V2;
                }
                if f.toa {
                    c.flags |= CONN_TOA;
                }
                let (w, n) = (self.cfg.worker, self.cfg.workers);
                if !self.lports.hold(f.laddr, r.protocol, f.lport, w, n) {
                    return Err(SyncRefusal::NoLocalPort);
                }
                Some((f.laddr, f.lport))
            }
            (Forward::FullNat, None) => return Err(SyncRefusal::NoLocalPort),
            _ => None,
        };
        let (table, lports) = A::table_and_ports(self);
        let idx = match table.insert(c) {
            Ok(i) => i,
            Err(_) => {
                if let Some((a, p)) = held {
                    lports.release(a, r.protocol, p);
                }
                return Err(SyncRefusal::TableFull);
            }
        };
        let shared = reg.get(real.id);
        shared.inactive.fetch_add(1, Ordering::Relaxed);
        shared.conns.fetch_add(1, Ordering::Relaxed);
        set_activity(table.get_mut(idx), reg, super::flow::is_active(r.protocol, state));
        shared.update_overload();
        self.stats.conns_created += 1;
        Ok(true)
    }
}

/// The record of slot `i` for a resend, if it holds a template or a syncable connection.
fn walk_one<A: Addr>(t: &mut ConnTable<A>, i: u32, now: u64, now_s: u32) -> Option<SyncConn> {
    let c = *t.live(i)?;
    if !syncable(c.proto, c.state) {
        return None;
    }
    t.get_mut(i).synced_s = now_s;
    Some(record(&c, now))
}

/// The record's state in rvs's numbering.
fn local_state(r: &SyncConn) -> u8 {
    match r.protocol {
        proto::TCP => TcpState::from_u8(r.state.min(u8::MAX as u16) as u8) as u8,
        proto::SCTP => SctpState::from_ipvs(r.state) as u8,
        _ => 0,
    }
}

/// Moves an entry between its real server's active and inactive counts to match `active`.
fn set_activity<A: Addr>(c: &mut Conn<A>, reg: &crate::model::RealRegistry, active: bool) {
    let was_active = c.flags & CONN_INACTIVE == 0;
    if was_active == active {
        return;
    }
    super::flow::move_activity(c, reg, active);
    reg.get(c.real).update_overload();
}

/// The record of a shared template, bound to real server `daddr:dport` reached by `forward`.
fn template_record(v: &TemplateView, daddr: IpAddr, dport: u16, forward: Forward, now: u64) -> SyncConn {
    let fwd = match forward {
        Forward::Nat => flags::MASQ,
        Forward::Dr => flags::DROUTE | flags::NOOUTPUT,
        Forward::Tun => flags::TUNNEL | flags::NOOUTPUT,
        Forward::FullNat => flags::FULLNAT,
    };
    SyncConn {
        protocol: v.key.proto,
        flags: fwd | flags::TEMPLATE,
        state: 0,
        client: v.key.client,
        cport: 0,
        vaddr: v.key.vaddr,
        vport: v.key.vport,
        daddr,
        dport,
        // A mark's template carries its mark, as IPVS's do.
        fwmark: match (v.key.proto, v.key.vaddr) {
            (0, IpAddr::V4(a)) => u32::from(a),
            (0, IpAddr::V6(a)) => u128::from(a) as u32,
            _ => 0,
        },
        timeout_s: v.expires.saturating_sub(now).div_ceil(1000).max(1) as u32,
        fullnat: None,
    }
}
