//! The operator's view of the services, and the ops that change it. Every op is validated in
//! full before anything changes; a change builds new tables (sharing every untouched service)
//! and publishes them with one atomic swap, which workers pick up at their next burst.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rvs_api::config::{
    merged_check, validate_real, validate_service, PortConfig, RawService, RealConfig, ServiceConfig,
};
use rvs_api::mark::{validate_mark, validate_marks, MarkConfig, MAX_MARKS};
use rvs_api::proto::{
    ConnView, HealthRealView, HealthServiceView, HostPathView, Op, PortView, Reply, ServiceId, Stats,
};
use rvs_core::conn::state::Timeouts;
use rvs_core::model::{Forward, Protocol, RealId, RealRegistry, RealServer, Service, ServiceKey};
use rvs_core::net::Network;
use rvs_core::{DropReason, Tables};
use rvs_dataplane::{Command, DpDrop, Shared};

use super::estimator::{Estimator, Totals};
use super::metrics::family;
use crate::health::probe::Target;
use crate::health::state::{Outcome, Quorum, RealHealth};

/// An op's failure: a stable code and a message for people.
pub type OpError = (&'static str, String);

#[derive(Debug)]
struct Entry {
    cfg: ServiceConfig,
    ids: Vec<RealId>,
    /// The sorry server's id, when the service has one.
    sorry_id: Option<RealId>,
    built: Arc<Service>,
}

/// A metric's in and out figures from a real server's totals.
type TrafficOf = fn(&Totals) -> (u64, u64);
/// A metric's in and out figures from a real server's estimated rates.
type RateOf = fn(&Stats) -> (u64, u64);
/// A metric's figure from a worker's counters.
type WorkerFigure = fn(&rvs_core::WorkerStats) -> u64;

/// A real server of a service, as health checks know it: stable across edits.
pub type RealKey = (ServiceKey, IpAddr, u16);

pub struct ControlState {
    net: Network,
    ports: Vec<PortConfig>,
    timeouts: Timeouts,
    reg: Arc<RealRegistry>,
    shared: Arc<Shared>,
    entries: Vec<Entry>,
    next_id: u32,
    base: HashMap<u32, Totals>,
    est: Estimator<u32>,
    table_size: usize,
    started: Instant,
    port_stats: Box<dyn Fn() -> Vec<PortView> + Send>,
    visible_us: Vec<u64>,
    /// The host addresses changed since the last publication.
    host_dirty: bool,
    /// Health of the checked real servers, and the services to rebuild for it.
    health: HashMap<RealKey, RealHealth>,
    quorums: HashMap<ServiceKey, Quorum>,
    health_dirty: HashSet<ServiceKey>,
    /// The probes the health checker should run, and a number bumped when they change.
    targets: Vec<(RealKey, Target)>,
    check_generation: u64,
    /// The id each real server (by service, address, port) last had: a server deleted and
    /// added again, or restored by `-R` with the same rules, gets its id back, and with it its
    /// counters and the connection counts its live connections keep (as IPVS does).
    known: HashMap<RealKey, RealId>,
    /// `[dataplane] max_services`.
    max_services: usize,
    /// The IPVS sync daemons (`--start-daemon`).
    sync: crate::sync::SyncDaemons,
    /// The last operator change of the table (for the peer link; time 0: as loaded from the
    /// config file), and this director's id in stamps.
    stamp: crate::peer::Stamp,
    origin: u64,
    peer_counters: Option<Arc<crate::peer::PeerCounters>>,
    /// `[routes]`: the interface, whether the operator drained this director, and the VIPs
    /// the route exporter has on the interface now.
    routes_interface: Option<String>,
    drained: bool,
    announced: std::collections::BTreeSet<IpAddr>,
    /// Inside a batch: changes wait for one publication at its end.
    deferred: Option<bool>,
    /// The packet-buffer pool's buffers in use and in all, for `/metrics`.
    mempool: Option<Box<dyn Fn() -> (u32, u32) + Send>>,
    /// rvsd's version line, for the status op.
    version: String,
    /// The classifier's rules for `-f` services, in order.
    marks: Vec<MarkConfig>,
}

/// A director's id in table stamps: random, so two directors never share one.
fn random_origin() -> u64 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 8];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    u64::from_le_bytes(b) | 1
}

fn parse_id(id: &ServiceId) -> Result<ServiceKey, OpError> {
    if let Some(mark) = id.fwmark {
        if !id.protocol.is_empty() || !id.address.is_empty() {
            return Err((
                "invalid",
                "service: a mark's (fwmark) or an address's (protocol, address), not both".into(),
            ));
        }
        if mark == 0 {
            return Err(("invalid", "service.fwmark: 0 is outside 1..=4294967295".into()));
        }
        return Ok(ServiceKey::Fwmark { mark, v6: id.ipv6 });
    }
    let protocol = match id.protocol.as_str() {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        "sctp" => Protocol::Sctp,
        other => {
            return Err((
                "invalid",
                format!("service.protocol: {other:?} is not one of tcp, udp, sctp"),
            ))
        }
    };
    let a: SocketAddr = id.address.parse().map_err(|_| {
        (
            "invalid",
            format!(
                "service.address: {:?} is not an IPv4/IPv6 socket address",
                id.address
            ),
        )
    })?;
    Ok(ServiceKey::Addr {
        protocol,
        vip: a.ip(),
        port: a.port(),
    })
}

fn describe(k: &ServiceKey) -> String {
    k.to_string()
}

impl ControlState {
    /// Takes over the tables rvsd started with (real server ids in config order).
    pub fn new(
        services: &[ServiceConfig],
        ports: &[PortConfig],
        tables: &Tables,
        shared: Arc<Shared>,
        table_size: usize,
        port_stats: Box<dyn Fn() -> Vec<PortView> + Send>,
    ) -> ControlState {
        let entries: Vec<Entry> = services
            .iter()
            .zip(&tables.services)
            .map(|(cfg, built)| Entry {
                cfg: cfg.clone(),
                ids: built.reals.iter().map(|r| r.id).collect(),
                sorry_id: None,
                built: built.clone(),
            })
            .collect();
        let mut next_id = entries
            .iter()
            .flat_map(|e| e.ids.iter())
            .map(|i| i.0 + 1)
            .max()
            .unwrap_or(0);
        let mut entries = entries;
        for e in entries.iter_mut().filter(|e| e.cfg.sorry.is_some()) {
            e.sorry_id = Some(RealId(next_id));
            next_id += 1;
        }
        ControlState {
            net: tables.net.clone(),
            ports: ports.to_vec(),
            timeouts: tables.timeouts,
            reg: tables.reals.clone(),
            shared: shared.clone(),
            entries,
            next_id,
            base: HashMap::new(),
            est: Estimator::default(),
            table_size,
            started: Instant::now(),
            port_stats,
            visible_us: Vec::new(),
            host_dirty: false,
            health: HashMap::new(),
            quorums: HashMap::new(),
            health_dirty: HashSet::new(),
            targets: Vec::new(),
            check_generation: 0,
            known: HashMap::new(),
            max_services: usize::MAX,
            sync: crate::sync::SyncDaemons::new(shared.clone(), shared.counters.len() as u16),
            stamp: crate::peer::Stamp::default(),
            origin: random_origin(),
            peer_counters: None,
            routes_interface: None,
            drained: false,
            announced: Default::default(),
            deferred: None,
            mempool: None,
            version: String::new(),
            marks: Vec::new(),
        }
        .with_known_ids()
        .with_health()
    }

    /// Starts the sync daemons of the config file (after the twins are up).
    pub fn start_sync(&mut self, daemons: &[rvs_api::ha::SyncDaemonConfig]) -> Result<(), String> {
        for d in daemons {
            self.sync.start(d.clone())?;
        }
        Ok(())
    }

    /// Stops every sync daemon (at shutdown, before the workers).
    pub fn stop_sync(&mut self) {
        for d in self.sync.running() {
            let _ = self.sync.stop(d.state);
        }
    }

    /// The sync counters by name.
    pub fn sync_counters(&self) -> Vec<(String, u64)> {
        self.sync.counter_list()
    }

    /// With the classifier's rules of the config file (already in the tables rvsd started
    /// with).
    pub fn with_marks(mut self, marks: Vec<MarkConfig>) -> ControlState {
        self.marks = marks;
        self
    }

    /// With rvsd's version line (the status op's).
    pub fn with_version(mut self, version: String) -> ControlState {
        self.version = version;
        self
    }

    /// With the packet-buffer pool's counts (in use, in all) for `/metrics`.
    pub fn with_mempool(mut self, f: Box<dyn Fn() -> (u32, u32) + Send>) -> ControlState {
        self.mempool = Some(f);
        self
    }

    /// With a bound on the number of services (`[dataplane] max_services`).
    pub fn with_max_services(mut self, max: usize) -> ControlState {
        self.max_services = max;
        self
    }

    fn too_many(&self, n: usize) -> Result<(), OpError> {
        if n > self.max_services {
            return Err((
                "invalid",
                format!(
                    "{n} services: no more than {} ([dataplane] max_services)",
                    self.max_services
                ),
            ));
        }
        Ok(())
    }

    fn with_known_ids(mut self) -> ControlState {
        for e in &self.entries {
            for (r, &id) in e.cfg.reals.iter().zip(&e.ids) {
                self.known.insert((e.cfg.key, r.addr, r.port), id);
            }
        }
        self
    }

    /// The id for real server `key`: the one it had, unless another server holds it now
    /// (`replacing_all`: every current service is being replaced, as by a restore), else a new
    /// one.
    fn id_for(&mut self, key: RealKey, replacing_all: bool, taken: &[RealId]) -> Result<RealId, OpError> {
        if let Some(&id) = self.known.get(&key) {
            let held = |e: &Entry| e.ids.contains(&id) || e.sorry_id == Some(id);
            let used = taken.contains(&id) || (!replacing_all && self.entries.iter().any(held));
            if !used {
                return Ok(id);
            }
        }
        let id = self.alloc_id(taken)?;
        self.known.insert(key, id);
        Ok(id)
    }

    /// Health entries for the checked servers (alpha ones start down) and the probes to run;
    /// services with a quorum are settled at the health checker's first publication.
    fn with_health(mut self) -> ControlState {
        self.sync_health();
        let with_quorum = self
            .entries
            .iter()
            .filter(|e| e.cfg.quorum > 0)
            .map(|e| e.cfg.key);
        self.health_dirty.extend(with_quorum);
        self
    }

    /// Records the addresses `port`'s kernel twin holds now (published by
    /// [`ControlState::publish_if_changed`]).
    pub fn set_host_addresses(&mut self, port: u16, addrs: Vec<IpAddr>) {
        if let Some(p) = self.net.ports.get_mut(port as usize) {
            if p.host != addrs {
                p.host = addrs;
                self.host_dirty = true;
            }
        }
    }

    /// Publishes new tables if the host addresses or a server's health changed.
    pub fn publish_if_changed(&mut self) {
        if std::mem::take(&mut self.host_dirty) || !self.health_dirty.is_empty() {
            self.publish();
        }
    }

    fn find(&self, key: &ServiceKey) -> Result<usize, OpError> {
        self.entries
            .iter()
            .position(|e| e.cfg.key == *key)
            .ok_or_else(|| ("not_found", format!("no service {}", describe(key))))
    }

    /// A real-server id for a new server: fresh ones first, then ids no service uses and no
    /// connection still counts (their counters would otherwise be inherited).
    fn alloc_id(&mut self, taken: &[RealId]) -> Result<RealId, OpError> {
        if (self.next_id as usize) < self.reg.capacity() {
            self.next_id += 1;
            return Ok(RealId(self.next_id - 1));
        }
        let in_use: std::collections::HashSet<u32> = self
            .entries
            .iter()
            .flat_map(|e| e.ids.iter().map(|i| i.0))
            .chain(taken.iter().map(|i| i.0))
            .collect();
        (0..self.reg.capacity() as u32)
            .find(|&i| {
                let s = self.reg.get(RealId(i));
                !in_use.contains(&i) && s.active() + s.inactive() + s.persistent.load(Ordering::Relaxed) == 0
            })
            .map(RealId)
            .ok_or((
                "invalid",
                format!("no more than {} real servers", self.reg.capacity()),
            ))
    }

    /// Builds a service with each real server at its effective weight: its health's, or 0
    /// while the quorum is lost (then the sorry server, `sorry_id`, takes new connections).
    fn build(
        &self,
        cfg: &ServiceConfig,
        ids: &[RealId],
        sorry_id: Option<RealId>,
    ) -> Result<Arc<Service>, OpError> {
        let quorum_lost = self
            .quorums
            .get(&cfg.key)
            .is_some_and(|q| cfg.quorum > 0 && !q.up);
        let mut reals = cfg
            .reals
            .iter()
            .zip(ids)
            .map(|(r, &id)| {
                if self.net.route(r.addr).is_none() {
                    return Err(("invalid", format!("real server {}: no port reaches it", r.addr)));
                }
                let weight = if quorum_lost {
                    0
                } else {
                    self.effective_weight(&cfg.key, r)
                };
                Ok(r.server(id, weight))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let (true, Some(s), Some(id)) = (quorum_lost, &cfg.sorry, sorry_id) {
            if self.net.route(s.addr).is_some() && !reals.iter().any(|r| r.addr == s.addr && r.port == s.port)
            {
                reals.push(RealServer {
                    upper: 0,
                    lower: 0,
                    ..s.server(id, 1)
                });
            }
        }
        cfg.build(reals)
            .map(Arc::new)
            .map_err(|e| ("invalid", format!("service.scheduler: {e}")))
    }

    /// Publishes new tables and waits (up to 100 ms) until every worker runs with them, so
    /// that when an op is answered the change is in force. Records how long that took.
    fn publish(&mut self) {
        if let Some(changed) = &mut self.deferred {
            *changed = true;
            return;
        }
        self.sync_health();
        self.settle_quorums();
        for key in std::mem::take(&mut self.health_dirty) {
            if let Some(i) = self.entries.iter().position(|e| e.cfg.key == key) {
                let e = &self.entries[i];
                if let Ok(b) = self.build(&e.cfg, &e.ids, e.sorry_id) {
                    self.entries[i].built = b;
                }
            }
        }
        let services = self.entries.iter().map(|e| e.built.clone()).collect();
        let tables = Tables::new(self.net.clone(), services, self.timeouts, self.reg.clone())
            .with_marks(rvs_api::mark::core_rules(&self.marks));
        let start = Instant::now();
        let g = self.shared.publish(tables);
        while !self.shared.all_seen(g) && start.elapsed() < Duration::from_millis(100) {
            std::hint::spin_loop();
        }
        if self.shared.all_seen(g) {
            let us = start.elapsed().as_micros() as u64;
            self.visible_us.push(us);
            if self.visible_us.len() > 4096 {
                self.visible_us.drain(..2048);
            }
        }
    }

    /// Median and maximum time from publishing tables to every worker using them, over the
    /// last changes (microseconds).
    pub fn visibility(&self) -> Option<(u64, u64)> {
        let mut v = self.visible_us.clone();
        v.sort_unstable();
        Some((*v.get(v.len() / 2)?, *v.last()?))
    }

    fn validate(&self, raw: &RawService) -> Result<ServiceConfig, OpError> {
        validate_service(raw, &self.ports).map_err(|e| ("invalid", e.to_string()))
    }

    /// A service with ids for its real servers (each its old one where it can).
    fn new_entry(
        &mut self,
        cfg: ServiceConfig,
        taken: &mut Vec<RealId>,
        replacing_all: bool,
    ) -> Result<Entry, OpError> {
        let mut ids = Vec::new();
        for r in &cfg.reals {
            let id = self.id_for((cfg.key, r.addr, r.port), replacing_all, taken)?;
            taken.push(id);
            ids.push(id);
        }
        let sorry_id = match cfg.sorry {
            Some(_) => {
                let id = self.alloc_id(taken)?;
                taken.push(id);
                Some(id)
            }
            None => None,
        };
        let built = self.build(&cfg, &ids, sorry_id)?;
        Ok(Entry {
            cfg,
            ids,
            sorry_id,
            built,
        })
    }

    /// `-P`/`-Q`: adds or removes a FullNAT local address of a service, checked by the same
    /// rules as a config file's.
    fn local_address(&mut self, service: &ServiceId, address: &str, add: bool) -> Result<(), OpError> {
        let i = self.find(&parse_id(service)?)?;
        let a: IpAddr = address
            .parse()
            .map_err(|_| ("invalid", format!("{address:?} is not an IPv4/IPv6 address")))?;
        let mut cfg = self.entries[i].cfg.clone();
        match (add, cfg.fullnat.laddrs.iter().position(|&x| x == a)) {
            (true, Some(_)) => {
                return Err((
                    "exists",
                    format!("{a} is already a local address of {}", describe(&cfg.key)),
                ))
            }
            (false, None) => {
                return Err((
                    "not_found",
                    format!("{a} is not a local address of {}", describe(&cfg.key)),
                ))
            }
            (true, None) => cfg.fullnat.laddrs.push(a),
            (false, Some(k)) => {
                cfg.fullnat.laddrs.remove(k);
            }
        }
        let mut raw = cfg.to_raw();
        raw.real.clear();
        self.validate(&raw)?;
        self.replace(i, cfg, self.entries[i].ids.clone())
    }

    pub fn apply(&mut self, op: Op) -> Result<Option<Reply>, OpError> {
        match op {
            Op::Batch { ops } => return Ok(Some(self.batch(ops))),
            Op::StartDaemon { daemon } => {
                let d = daemon.validate().map_err(|e| ("invalid", e.to_string()))?;
                self.sync.start(d).map_err(|m| ("sync", m))?;
                return Ok(None);
            }
            Op::StopDaemon { state } => {
                let role = rvs_api::ha::SyncRole::parse(&state)
                    .ok_or_else(|| ("invalid", format!("state: {state:?} is not master or backup")))?;
                self.sync.stop(role).map_err(|m| ("sync", m))?;
                return Ok(None);
            }
            Op::Drain { drain } => {
                if self.routes_interface.is_none() {
                    return Err((
                        "invalid",
                        "drain needs [routes]: there are no routes to withdraw".into(),
                    ));
                }
                self.drained = drain;
                eprintln!(
                    "rvsd: routes: {}",
                    if drain {
                        "drained: every VIP is withdrawn, connections go on"
                    } else {
                        "undrained: VIPs announced again"
                    }
                );
                return Ok(None);
            }
            Op::Routes {} => {
                let (_, withdrawn) = self.route_plan();
                return Ok(Some(Reply::Routes {
                    interface: self.routes_interface.clone(),
                    drained: self.drained,
                    announced: self.announced.iter().map(|a| a.to_string()).collect(),
                    withdrawn: withdrawn
                        .into_iter()
                        .map(|(a, why)| (a.to_string(), why.to_string()))
                        .collect(),
                }));
            }
            Op::Marks {} => {
                return Ok(Some(Reply::Marks {
                    marks: self.marks.iter().map(|m| m.to_raw()).collect(),
                }))
            }
            Op::AddMark { mark } => {
                let m = validate_mark(&mark, "mark").map_err(|e| ("invalid", e.join("\n")))?;
                if self.marks.contains(&m) {
                    return Err(("exists", format!("the rule {m} is there already")));
                }
                if self.marks.len() >= MAX_MARKS {
                    return Err(("invalid", format!("no more than {MAX_MARKS} mark rules")));
                }
                self.marks.push(m);
            }
            Op::DeleteMark { mark } => {
                let m = validate_mark(&mark, "mark").map_err(|e| ("invalid", e.join("\n")))?;
                let i = self
                    .marks
                    .iter()
                    .position(|x| *x == m)
                    .ok_or_else(|| ("not_found", format!("no rule {m}")))?;
                self.marks.remove(i);
            }
            Op::Daemons {} => {
                let mut counters = self.sync.counter_list();
                if let Some(p) = &self.peer_counters {
                    counters.extend(p.list());
                }
                return Ok(Some(Reply::Daemons {
                    daemons: self.sync.running(),
                    counters,
                }));
            }
            Op::AddService { service } => {
                let cfg = self.validate(&service)?;
                if self.find(&cfg.key).is_ok() {
                    return Err((
                        "exists",
                        format!(
                            "service {} already exists (use edit_service / -E to change it)",
                            describe(&cfg.key)
                        ),
                    ));
                }
                self.too_many(self.entries.len() + 1)?;
                let e = self.new_entry(cfg, &mut Vec::new(), false)?;
                self.entries.push(e);
            }
            Op::EditService { service } => {
                let keep = service.clone();
                let mut cfg = self.validate(&RawService {
                    real: Vec::new(),
                    ..service
                })?;
                let i = self.find(&cfg.key)?;
                let old = &self.entries[i].cfg;
                // ipvsadm's -E knows nothing of rvs's own settings: what it leaves out stays.
                if keep.sloppy.is_none() {
                    cfg.sloppy = old.sloppy;
                }
                if keep.one_packet.is_none() {
                    cfg.one_packet = old.one_packet;
                }
                if keep.local_addresses.is_none() {
                    cfg.fullnat.laddrs = old.fullnat.laddrs.clone();
                }
                if keep.proxy_protocol.is_none() {
                    cfg.fullnat.proxy = old.fullnat.proxy;
                }
                if keep.toa.is_none() {
                    cfg.fullnat.toa = old.fullnat.toa;
                }
                if keep.announce.is_none() {
                    cfg.announce = old.announce;
                }
                if keep.check.is_none() {
                    cfg.check = old.check.clone();
                }
                if keep.quorum.is_none() {
                    (cfg.quorum, cfg.hysteresis) = (old.quorum, old.hysteresis);
                }
                if keep.sorry_server.is_none() {
                    cfg.sorry = old.sorry.clone();
                }
                cfg.reals = old.reals.clone();
                for r in &mut cfg.reals {
                    r.check = merged_check(cfg.check.as_ref(), r.raw_check.as_ref()).map_err(|p| {
                        let (f, m) = &p[0];
                        (
                            "invalid",
                            format!("real {}: check.{f}: {m}", SocketAddr::new(r.addr, r.port)),
                        )
                    })?;
                }
                let sorry_id = match (&cfg.sorry, self.entries[i].sorry_id) {
                    (Some(_), None) => Some(self.alloc_id(&[])?),
                    (_, id) => id,
                };
                let built = self.build(&cfg, &self.entries[i].ids, sorry_id)?;
                self.entries[i] = Entry {
                    cfg,
                    ids: self.entries[i].ids.clone(),
                    sorry_id,
                    built,
                };
            }
            Op::DeleteService { service } => {
                let i = self.find(&parse_id(&service)?)?;
                self.entries.remove(i);
            }
            Op::Clear {} => self.entries.clear(),
            Op::AddReal { service, real } => {
                let i = self.find(&parse_id(&service)?)?;
                let r = validate_real(&self.entries[i].cfg, &real, &self.ports)
                    .map_err(|e| ("invalid", e.to_string()))?;
                if self.entries[i]
                    .cfg
                    .reals
                    .iter()
                    .any(|x| x.addr == r.addr && x.port == r.port)
                {
                    return Err((
                        "exists",
                        format!(
                            "{} is already a real server of {}",
                            SocketAddr::new(r.addr, r.port),
                            describe(&self.entries[i].cfg.key)
                        ),
                    ));
                }
                let fullnat = self.entries[i]
                    .cfg
                    .reals
                    .first()
                    .map(|x| x.forward == Forward::FullNat);
                if fullnat.is_some_and(|f| f != (r.forward == Forward::FullNat)) {
                    return Err((
                        "invalid",
                        format!(
                            "real servers of {} are all fullnat or none: a FullNAT flow stays on the worker that received it, others go to the worker their client hashes to",
                            describe(&self.entries[i].cfg.key)
                        ),
                    ));
                }
                if r.forward == Forward::FullNat {
                    let cfg = &self.entries[i].cfg;
                    if matches!(
                        cfg.key,
                        ServiceKey::Addr {
                            protocol: Protocol::Sctp,
                            ..
                        }
                    ) {
                        return Err(("invalid", "fullnat is for TCP and UDP services".into()));
                    }
                    if cfg.one_packet {
                        return Err((
                            "invalid",
                            "fullnat cannot go with one-packet scheduling: a FullNAT flow needs its connection (its local port)".into(),
                        ));
                    }
                }
                let id = self.id_for((self.entries[i].cfg.key, r.addr, r.port), false, &[])?;
                let (mut cfg, mut ids) = (self.entries[i].cfg.clone(), self.entries[i].ids.clone());
                cfg.reals.push(r);
                ids.push(id);
                self.replace(i, cfg, ids)?;
            }
            Op::EditReal { service, real } => {
                let i = self.find(&parse_id(&service)?)?;
                let keep_check = real.check.is_none();
                let mut r = validate_real(&self.entries[i].cfg, &real, &self.ports)
                    .map_err(|e| ("invalid", e.to_string()))?;
                let k = self.real_index(i, &r)?;
                let mut cfg = self.entries[i].cfg.clone();
                if keep_check {
                    // ipvsadm's -e knows nothing of checks: the server's own stays.
                    r.raw_check = cfg.reals[k].raw_check.clone();
                    r.check = cfg.reals[k].check.clone();
                }
                cfg.reals[k] = r;
                self.replace(i, cfg, self.entries[i].ids.clone())?;
            }
            Op::DeleteReal { service, address } => {
                let i = self.find(&parse_id(&service)?)?;
                let probe = rvs_api::config::RawReal {
                    address: Some(address),
                    method: Some("nat".into()),
                    ..Default::default()
                };
                let r = validate_real(&self.entries[i].cfg, &probe, &self.ports)
                    .map_err(|e| ("invalid", e.to_string()))?;
                let k = self.real_index(i, &r)?;
                let (mut cfg, mut ids) = (self.entries[i].cfg.clone(), self.entries[i].ids.clone());
                cfg.reals.remove(k);
                ids.remove(k);
                self.replace(i, cfg, ids)?;
            }
            Op::AddLocalAddress { service, address } => self.local_address(&service, &address, true)?,
            Op::DeleteLocalAddress { service, address } => self.local_address(&service, &address, false)?,
            Op::Restore { services, .. } => {
                self.too_many(services.len())?;
                let mut fresh = Vec::new();
                let mut taken = Vec::new();
                // Everything is validated before anything changes; ids taken by a failed restore
                // are simply not used.
                let saved = self.next_id;
                for (n, raw) in services.iter().enumerate() {
                    let step = self.validate(raw).and_then(|cfg| {
                        if fresh.iter().any(|x: &Entry| x.cfg.key == cfg.key) {
                            return Err(("exists", format!("{} is given twice", describe(&cfg.key))));
                        }
                        self.new_entry(cfg, &mut taken, true)
                    });
                    match step {
                        Ok(e) => fresh.push(e),
                        Err((c, m)) => {
                            self.next_id = saved;
                            return Err((c, format!("services[{n}]: {m}")));
                        }
                    }
                }
                self.entries = fresh;
            }
            Op::SetTimeouts { tcp, tcpfin, udp } => {
                for (name, v) in [("tcp", tcp), ("tcpfin", tcpfin), ("udp", udp)] {
                    if v > 31 * 24 * 3600 {
                        return Err(("invalid", format!("{name}: {v} is more than 2678400 seconds")));
                    }
                }
                self.timeouts.set(tcp, tcpfin, udp);
            }
            Op::GetTimeouts {} => {
                let (tcp, tcpfin, udp) = self.timeouts.shown();
                return Ok(Some(Reply::Timeouts { tcp, tcpfin, udp }));
            }
            Op::List { service } => return self.list(service.as_ref().map(parse_id).transpose()?).map(Some),
            Op::Zero { service } => {
                let ids: Vec<RealId> = match service {
                    Some(s) => {
                        let i = self.find(&parse_id(&s)?)?;
                        self.entries[i].ids.clone()
                    }
                    None => self.entries.iter().flat_map(|e| e.ids.iter().copied()).collect(),
                };
                for id in ids {
                    let t = self.raw_totals(id);
                    self.base.insert(id.0, t);
                }
                return Ok(None);
            }
            Op::Connections {} => return Ok(Some(self.connections()?)),
            Op::Health {} => return Ok(Some(self.health_view())),
            Op::Status {} => return Ok(Some(self.status())),
        }
        self.publish();
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.stamp = crate::peer::Stamp {
            time_ms: now_ms.max(self.stamp.time_ms + 1),
            origin: self.origin,
        };
        Ok(None)
    }

    /// Applies each op as its own command, publishing once at the end.
    fn batch(&mut self, ops: Vec<Op>) -> Reply {
        self.deferred = Some(false);
        let errors = ops
            .into_iter()
            .map(|op| {
                let refused = |m: &str| rvs_api::proto::ErrorBody {
                    code: "invalid".into(),
                    message: m.into(),
                };
                match op {
                    Op::Batch { .. } | Op::Restore { .. } => Some(refused("a batch holds single changes")),
                    op if crate::control::server::read_only(&op) => {
                        Some(refused("a batch holds changes, not queries"))
                    }
                    op => self
                        .apply(op)
                        .err()
                        .map(|(code, message)| rvs_api::proto::ErrorBody {
                            code: code.into(),
                            message,
                        }),
                }
            })
            .collect();
        if self.deferred.take() == Some(true) {
            self.publish();
        }
        Reply::Batch { errors }
    }

    /// When the table was last changed by an operator.
    pub fn stamp(&self) -> crate::peer::Stamp {
        self.stamp
    }

    /// The table as the peer director gets it.
    pub fn peer_table(&self) -> crate::peer::PeerTable {
        crate::peer::PeerTable {
            stamp: self.stamp,
            timeouts: self.timeouts.shown(),
            services: self.entries.iter().map(|e| e.cfg.to_raw()).collect(),
            marks: self.marks.iter().map(|m| m.to_raw()).collect(),
        }
    }

    /// Takes the peer's table if it is newer than ours: Ok(true) if taken, Ok(false) if not
    /// newer; an error (nothing changed) if it does not validate here.
    pub fn apply_peer(&mut self, t: crate::peer::PeerTable) -> Result<bool, String> {
        if t.stamp.time_ms == 0 || t.stamp <= self.stamp {
            return Ok(false);
        }
        let (tcp, tcpfin, udp) = t.timeouts;
        for (name, v) in [("tcp", tcp), ("tcpfin", tcpfin), ("udp", udp)] {
            if v == 0 || v > 31 * 24 * 3600 {
                return Err(format!("timeouts.{name}: {v}"));
            }
        }
        let mut problems = Vec::new();
        let marks = validate_marks(&t.marks, &mut problems);
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        let n = t.services.len();
        self.apply(Op::Restore {
            services: t.services,
            more: false,
        })
        .map_err(|(_, m)| m)?;
        self.marks = marks;
        self.timeouts.set(tcp, tcpfin, udp);
        self.publish();
        if self.stamp.time_ms > 0 && self.stamp.origin == self.origin {
            eprintln!("rvsd: peer: its newer table ({n} services) replaces this director's own changes");
        }
        self.stamp = t.stamp;
        Ok(true)
    }

    /// With `[routes]` on `interface`.
    pub fn set_routes_interface(&mut self, interface: &str) {
        self.routes_interface = Some(interface.to_string());
    }

    /// The VIPs this director wants traffic for (some service of the VIP has a live real
    /// server, and the director is not drained), and the others with why.
    pub fn route_plan(&self) -> (std::collections::BTreeSet<IpAddr>, Vec<(IpAddr, &'static str)>) {
        let mut live: std::collections::BTreeMap<IpAddr, bool> = Default::default();
        for e in &self.entries {
            let up = e.built.reals.iter().any(|r| r.weight > 0);
            // A mark's service has no VIP of its own: its rules' addresses are routed as
            // configured (a prefix announced by the operator's routing daemon).
            let Some(vip) = e.cfg.key.vip() else { continue };
            *live.entry(vip).or_insert(false) |= up;
        }
        let mut wanted = std::collections::BTreeSet::new();
        let mut withdrawn = Vec::new();
        for (vip, up) in live {
            match (self.drained, up) {
                (true, _) => withdrawn.push((vip, "drained")),
                (false, false) => withdrawn.push((vip, "no live real server")),
                (false, true) => {
                    wanted.insert(vip);
                }
            }
        }
        (wanted, withdrawn)
    }

    /// What the route exporter has on the interface now.
    pub fn set_announced(&mut self, vips: std::collections::BTreeSet<IpAddr>) {
        self.announced = vips;
    }

    /// The peer (re)joined: the workers send it their whole connection table (if a master
    /// sync daemon runs).
    pub fn resync_peer(&self) {
        self.sync.resync();
    }

    /// The peer link's counters, listed with the sync counters.
    pub fn set_peer_counters(&mut self, c: Arc<crate::peer::PeerCounters>) {
        self.peer_counters = Some(c);
    }

    /// Rebuilds entry `i` with a new config and ids (its sorry server kept).
    fn replace(&mut self, i: usize, cfg: ServiceConfig, ids: Vec<RealId>) -> Result<(), OpError> {
        let sorry_id = self.entries[i].sorry_id;
        let built = self.build(&cfg, &ids, sorry_id)?;
        self.entries[i] = Entry {
            cfg,
            ids,
            sorry_id,
            built,
        };
        Ok(())
    }

    fn real_index(&self, i: usize, r: &RealConfig) -> Result<usize, OpError> {
        self.entries[i]
            .cfg
            .reals
            .iter()
            .position(|x| x.addr == r.addr && x.port == r.port)
            .ok_or_else(|| {
                (
                    "not_found",
                    format!(
                        "{} is not a real server of {}",
                        SocketAddr::new(r.addr, r.port),
                        describe(&self.entries[i].cfg.key)
                    ),
                )
            })
    }

    /// Counters of a real server since the start (summed over workers).
    fn raw_totals(&self, id: RealId) -> Totals {
        let mut t = Totals {
            conns: self.reg.get(id).conns.load(Ordering::Relaxed),
            ..Default::default()
        };
        for c in &self.shared.counters {
            let r = c.real(id.0 as usize);
            t.in_packets += r.in_packets;
            t.in_bytes += r.in_bytes;
            t.out_packets += r.out_packets;
            t.out_bytes += r.out_bytes;
        }
        t
    }

    /// Counters since the last zero.
    fn totals(&self, id: RealId) -> Totals {
        let t = self.raw_totals(id);
        match self.base.get(&id.0) {
            None => t,
            Some(b) => Totals {
                conns: t.conns.saturating_sub(b.conns),
                in_packets: t.in_packets.saturating_sub(b.in_packets),
                out_packets: t.out_packets.saturating_sub(b.out_packets),
                in_bytes: t.in_bytes.saturating_sub(b.in_bytes),
                out_bytes: t.out_bytes.saturating_sub(b.out_bytes),
            },
        }
    }

    /// One estimator sample (called every 2 seconds).
    pub fn sample_rates(&mut self, now: Instant) {
        let ids: Vec<RealId> = self.entries.iter().flat_map(|e| e.ids.iter().copied()).collect();
        let totals: Vec<(u32, Totals)> = ids.iter().map(|&id| (id.0, self.raw_totals(id))).collect();
        self.est.sample(now, totals);
    }

    fn list(&self, only: Option<ServiceKey>) -> Result<Reply, OpError> {
        if let Some(k) = only {
            self.find(&k)?;
        }
        let services = self
            .entries
            .iter()
            .filter(|e| only.is_none_or(|k| e.cfg.key == k))
            .map(|e| {
                super::view::service_view(&e.built, &self.reg, |id| self.est.stats(id.0, self.totals(id)))
            })
            .collect();
        Ok(Reply::Services {
            table_size: self.table_size,
            services,
        })
    }

    fn connections(&self) -> Result<Reply, OpError> {
        let mut conns = Vec::new();
        for q in &self.shared.commands {
            let (tx, rx) = std::sync::mpsc::channel();
            if q.push(Command::DumpConns(tx)).is_err() {
                return Err(("busy", "a worker has too many pending requests; try again".into()));
            }
            let entries = rx
                .recv_timeout(Duration::from_secs(2))
                .map_err(|_| ("busy", "a worker did not answer".to_string()))?;
            for c in entries {
                let ep = |(a, p): (IpAddr, u16)| SocketAddr::new(a, p).to_string();
                conns.push(ConnView {
                    protocol: match c.protocol {
                        6 => "TCP",
                        17 => "UDP",
                        132 => "SCTP",
                        _ => "IP",
                    }
                    .into(),
                    expires: c.expires_ms / 1000,
                    state: c.state,
                    client: ep(c.client),
                    virtual_: ep(c.virtual_),
                    destination: ep(c.real),
                });
            }
        }
        Ok(Reply::Connections { conns })
    }

    /// A real server's weight for the scheduler: its health's, or the configured one.
    fn effective_weight(&self, service: &ServiceKey, r: &RealConfig) -> u32 {
        match r.check {
            None => r.weight,
            Some(_) => self
                .health
                .get(&(*service, r.addr, r.port))
                .map_or(r.weight, |h| h.weight(r.weight)),
        }
    }

    /// Health entries for every checked server (alpha ones start down), none for the others,
    /// and the list of probes to run (its generation bumped when it changes).
    fn sync_health(&mut self) {
        let mut targets = Vec::new();
        let mut seen = HashSet::new();
        for e in &self.entries {
            for r in &e.cfg.reals {
                let Some(c) = &r.check else { continue };
                let key = (e.cfg.key, r.addr, r.port);
                seen.insert(key);
                if let std::collections::hash_map::Entry::Vacant(v) = self.health.entry(key) {
                    v.insert(RealHealth::new(c.alpha));
                    if c.alpha {
                        self.health_dirty.insert(e.cfg.key);
                    }
                }
                // From the director's address on the port that reaches the server, when that
                // port has a twin (the kernel holds the address there).
                let source = self.net.route(r.addr).and_then(|(port, _)| {
                    self.net.port(port).filter(|p| p.twin)?;
                    match r.addr {
                        IpAddr::V4(_) => self.net.source4(port).map(IpAddr::V4),
                        IpAddr::V6(_) => self.net.source6(port).map(IpAddr::V6),
                    }
                });
                let target = Target {
                    addr: SocketAddr::new(r.addr, r.port),
                    source,
                    check: c.clone(),
                };
                targets.push((key, target));
            }
        }
        let gone: Vec<RealKey> = self
            .health
            .keys()
            .filter(|k| !seen.contains(*k))
            .copied()
            .collect();
        for k in gone {
            self.health.remove(&k);
            self.health_dirty.insert(k.0);
        }
        if targets != self.targets {
            self.targets = targets;
            self.check_generation += 1;
        }
    }

    /// Each service's quorum against its live weight; a service that lost or regained it is
    /// rebuilt (its servers at 0 and its sorry server at 1 while it is lost).
    fn settle_quorums(&mut self) {
        for i in 0..self.entries.len() {
            let (key, quorum, hysteresis) = {
                let c = &self.entries[i].cfg;
                (c.key, c.quorum, c.hysteresis)
            };
            if quorum == 0 {
                self.quorums.remove(&key);
                continue;
            }
            let live: u64 = self.entries[i]
                .cfg
                .reals
                .iter()
                .map(|r| self.effective_weight(&key, r) as u64)
                .sum();
            let q = self
                .quorums
                .entry(key)
                .or_insert_with(|| Quorum::new(quorum, hysteresis));
            (q.quorum, q.hysteresis) = (quorum, hysteresis);
            if q.update(live) {
                let sorry = self.entries[i]
                    .cfg
                    .sorry
                    .as_ref()
                    .map_or("no sorry server".to_string(), |s| {
                        format!("sorry server {}", SocketAddr::new(s.addr, s.port))
                    });
                eprintln!(
                    "rvsd: health: {}: quorum {} (live weight {live}, quorum {quorum}, hysteresis {hysteresis}; {sorry})",
                    describe(&key),
                    if q.up { "regained" } else { "lost" }
                );
                self.health_dirty.insert(key);
            }
        }
    }

    /// Applies one probe's result; a change of state or weight is logged in one line and the
    /// service rebuilt at the next publication.
    pub fn health_result(&mut self, key: &RealKey, outcome: &Outcome, now: Instant) {
        let Some(r) = self
            .entries
            .iter()
            .find(|e| e.cfg.key == key.0)
            .and_then(|e| e.cfg.reals.iter().find(|r| r.addr == key.1 && r.port == key.2))
        else {
            return;
        };
        let (Some(c), Some(h)) = (&r.check, self.health.get_mut(key)) else {
            return;
        };
        let (was_up, before) = (h.up, h.weight(r.weight));
        let flipped = h.record(outcome, c.rise, c.fall, now);
        let after = h.weight(r.weight);
        let state = |up: bool| if up { "up" } else { "down" };
        if flipped || before != after {
            eprintln!(
                "rvsd: health: {} real {}: {} -> {}, weight {before} -> {after} ({})",
                describe(&key.0),
                SocketAddr::new(key.1, key.2),
                state(was_up),
                state(h.up),
                outcome.text()
            );
        }
        if before != after {
            self.health_dirty.insert(key.0);
        }
    }

    /// Bumped whenever the probes to run change.
    pub fn check_generation(&self) -> u64 {
        self.check_generation
    }

    /// The probes to run: one per checked real server.
    pub fn check_targets(&self) -> Vec<(RealKey, Target)> {
        self.targets.clone()
    }

    fn health_view(&self) -> Reply {
        let now = Instant::now();
        let services = self
            .entries
            .iter()
            .map(|e| {
                let key = e.cfg.key;
                let reals = e
                    .cfg
                    .reals
                    .iter()
                    .map(|r| {
                        let h = self.health.get(&(key, r.addr, r.port));
                        HealthRealView {
                            address: SocketAddr::new(r.addr, r.port).to_string(),
                            check: r.check.as_ref().map_or("none", |c| c.kind.name()).into(),
                            state: match h {
                                None => "unchecked",
                                Some(h) if h.up => "up",
                                Some(_) => "down",
                            }
                            .into(),
                            weight: r.weight,
                            effective_weight: e
                                .built
                                .reals
                                .iter()
                                .find(|b| b.addr == r.addr && b.port == r.port)
                                .map_or(0, |b| b.weight),
                            last: h
                                .and_then(|h| h.last.as_ref())
                                .map_or(String::new(), |l| l.1.clone()),
                            age_ms: h
                                .and_then(|h| h.last.as_ref())
                                .map(|l| now.duration_since(l.0).as_millis() as u64),
                            successes: h.map_or(0, |h| h.successes),
                            failures: h.map_or(0, |h| h.failures),
                            transitions: h.map_or(0, |h| h.transitions),
                        }
                    })
                    .collect();
                HealthServiceView {
                    protocol: match key {
                        ServiceKey::Addr { protocol, .. } => protocol.name().into(),
                        ServiceKey::Fwmark { .. } => "fwmark".into(),
                    },
                    service: match key {
                        ServiceKey::Addr { vip, port, .. } => SocketAddr::new(vip, port).to_string(),
                        ServiceKey::Fwmark { mark, v6: false } => mark.to_string(),
                        ServiceKey::Fwmark { mark, v6: true } => format!("{mark} IPv6"),
                    },
                    quorum: e.cfg.quorum,
                    hysteresis: e.cfg.hysteresis,
                    live_weight: e
                        .cfg
                        .reals
                        .iter()
                        .map(|r| self.effective_weight(&key, r) as u64)
                        .sum(),
                    quorum_up: self.quorums.get(&key).is_none_or(|q| q.up),
                    sorry_server: e
                        .cfg
                        .sorry
                        .as_ref()
                        .map(|s| SocketAddr::new(s.addr, s.port).to_string()),
                    reals,
                }
            })
            .collect();
        Reply::Health { services }
    }

    /// The exposition of every counter and gauge for `/metrics` (see `metrics.rs`).
    pub fn metrics(&self) -> String {
        let mut out = String::new();
        family(&mut out, "rvs_up", "gauge", "1 while rvsd runs.").sample(&[], 1);
        family(
            &mut out,
            "rvs_uptime_seconds",
            "gauge",
            "Seconds since rvsd started.",
        )
        .sample(&[], self.started.elapsed().as_secs());
        self.service_metrics(&mut out);
        self.dataplane_metrics(&mut out);
        self.ha_metrics(&mut out);
        out
    }

    /// Connection sync and the peer link: the daemons running and every counter.
    fn ha_metrics(&self, out: &mut String) {
        let mut f = family(
            out,
            "rvs_sync_daemon_running",
            "gauge",
            "1 for each IPVS sync daemon role running, by role and interface.",
        );
        for d in self.sync.running() {
            f.sample(&[("role", d.state.name()), ("interface", &d.mcast_interface)], 1);
        }
        let mut f = family(
            out,
            "rvs_ha_events_total",
            "counter",
            "Connection sync and peer link counters (sent, received, installed, refused by reason...).",
        );
        let mut counters = self.sync.counter_list();
        if let Some(p) = &self.peer_counters {
            counters.extend(p.list());
        }
        for (name, v) in &counters {
            f.sample(&[("event", name)], v);
        }
    }

    /// Per service and real server: connections, traffic, weights, health, quorum.
    fn service_metrics(&self, out: &mut String) {
        let label = |k: &ServiceKey| k.label();
        let reals: Vec<(String, String, &RealServer, Totals)> = self
            .entries
            .iter()
            .flat_map(|e| {
                let svc = label(&e.cfg.key);
                e.built
                    .reals
                    .iter()
                    .map(move |r| (svc.clone(), SocketAddr::new(r.addr, r.port).to_string(), r))
            })
            .map(|(svc, real, r)| (svc, real, r, self.raw_totals(r.id)))
            .collect();
        let mut f = family(
            out,
            "rvs_real_connections",
            "gauge",
            "Connections of a real server now (IPVS's ActiveConn, InActConn, persistence templates).",
        );
        for (svc, real, r, _) in &reals {
            let s = self.reg.get(r.id);
            for (state, n) in [
                ("active", s.active() as u64),
                ("inactive", s.inactive() as u64),
                ("persistent", s.persistent.load(Ordering::Relaxed) as u64),
            ] {
                f.sample(&[("service", svc), ("real", real), ("state", state)], n);
            }
        }
        let mut f = family(
            out,
            "rvs_real_connections_total",
            "counter",
            "Connections a real server was given.",
        );
        for (svc, real, _, t) in &reals {
            f.sample(&[("service", svc), ("real", real)], t.conns);
        }
        let traffic: [(&'static str, &str, TrafficOf); 2] = [
            (
                "rvs_real_packets_total",
                "Packets to (in) and from (out) a real server.",
                |t| (t.in_packets, t.out_packets),
            ),
            (
                "rvs_real_bytes_total",
                "Bytes to (in) and from (out) a real server.",
                |t| (t.in_bytes, t.out_bytes),
            ),
        ];
        for (name, help, get) in traffic {
            let mut f = family(out, name, "counter", help);
            for (svc, real, _, t) in &reals {
                let (i, o) = get(t);
                f.sample(&[("service", svc), ("real", real), ("direction", "in")], i);
                f.sample(&[("service", svc), ("real", real), ("direction", "out")], o);
            }
        }
        // IPVS's rate estimator (2 s samples, smoothed over about 8 s): `ipvsadm -L --rate`.
        let rates: Vec<Stats> = reals
            .iter()
            .map(|(_, _, r, t)| self.est.stats(r.id.0, *t))
            .collect();
        let mut f = family(
            out,
            "rvs_real_connection_rate",
            "gauge",
            "New connections per second to a real server, as ipvsadm --rate estimates them.",
        );
        for ((svc, real, _, _), st) in reals.iter().zip(&rates) {
            f.sample(&[("service", svc), ("real", real)], st.cps);
        }
        let per_second: [(&'static str, &str, RateOf); 2] = [
            (
                "rvs_real_packet_rate",
                "Packets per second to (in) and from (out) a real server, as ipvsadm --rate estimates them.",
                |st| (st.in_pps, st.out_pps),
            ),
            (
                "rvs_real_byte_rate",
                "Bytes per second to (in) and from (out) a real server, as ipvsadm --rate estimates them.",
                |st| (st.in_bps, st.out_bps),
            ),
        ];
        for (name, help, get) in per_second {
            let mut f = family(out, name, "gauge", help);
            for ((svc, real, _, _), st) in reals.iter().zip(&rates) {
                let (i, o) = get(st);
                f.sample(&[("service", svc), ("real", real), ("direction", "in")], i);
                f.sample(&[("service", svc), ("real", real), ("direction", "out")], o);
            }
        }
        let mut f = family(
            out,
            "rvs_real_weight",
            "gauge",
            "A real server's weight as the scheduler uses it (health and quorum applied).",
        );
        for (svc, real, r, _) in &reals {
            f.sample(&[("service", svc), ("real", real)], r.weight);
        }
        let mut f = family(
            out,
            "rvs_real_up",
            "gauge",
            "1 if a checked real server is up, 0 if down (unchecked servers are absent).",
        );
        for e in &self.entries {
            for r in &e.cfg.reals {
                if let Some(h) = self.health.get(&(e.cfg.key, r.addr, r.port)) {
                    let real = SocketAddr::new(r.addr, r.port).to_string();
                    f.sample(
                        &[("service", &label(&e.cfg.key)), ("real", &real)],
                        u8::from(h.up),
                    );
                }
            }
        }
        let mut f = family(
            out,
            "rvs_service_quorum_up",
            "gauge",
            "0 while a service's quorum is lost (its sorry server serves).",
        );
        for e in self.entries.iter().filter(|e| e.cfg.quorum > 0) {
            let up = self.quorums.get(&e.cfg.key).is_none_or(|q| q.up);
            f.sample(&[("service", &label(&e.cfg.key))], u8::from(up));
        }
        family(out, "rvs_services", "gauge", "Virtual services.").sample(&[], self.entries.len());
        family(
            out,
            "rvs_tables_bytes",
            "gauge",
            "Bytes the services take (servers and scheduler tables).",
        )
        .sample(&[], self.shared.tables.load().memory_bytes());
    }

    /// Drops, workers, ports, connection tables, the host path.
    fn dataplane_metrics(&self, out: &mut String) {
        let counters = &self.shared.counters;
        let mut f = family(out, "rvs_drops_total", "counter", "Frames dropped, by reason.");
        let core = DropReason::ALL
            .iter()
            .map(|&r| (r.name(), counters.iter().map(|c| c.drop_count(r)).sum()));
        let dp = DpDrop::ALL
            .iter()
            .map(|&r| (r.name(), counters.iter().map(|c| c.dp_drop_count(r)).sum()));
        for (reason, n) in core.chain(dp) {
            f.sample::<u64>(&[("reason", reason)], n);
        }
        let stats: Vec<(String, rvs_core::WorkerStats, &rvs_dataplane::WorkerCounters)> = counters
            .iter()
            .enumerate()
            .map(|(w, c)| (w.to_string(), c.stats(), c))
            .collect();
        let mut f = family(
            out,
            "rvs_worker_packets_total",
            "counter",
            "Frames a worker received and what became of them.",
        );
        for (w, st, c) in &stats {
            for (kind, n) in [
                ("received", st.rx),
                ("forwarded", st.forwarded),
                ("replied", st.replies),
                ("redirected", st.redirects),
                ("neighbor", st.neighbor),
                ("to_host", st.to_host),
                ("redirected_in", c.redirected_in()),
                ("transmitted", c.tx()),
            ] {
                f.sample(&[("worker", w), ("kind", kind)], n);
            }
        }
        let mut f = family(
            out,
            "rvs_worker_busy_seconds_total",
            "counter",
            "Seconds a worker spent in poll loops that handled a frame: rate() of it is the busy share of its core.",
        );
        for (w, _, c) in &stats {
            f.sample(&[("worker", w)], c.busy_ns() as f64 / 1e9);
        }
        let mut f = family(
            out,
            "rvs_fragments_total",
            "counter",
            "TCP/UDP fragments: first fragments followed, later ones done as their first, later ones held for their first, held ones replayed.",
        );
        for (w, st, _) in &stats {
            for (kind, n) in [
                ("first", st.frag_first),
                ("followed", st.frag_followed),
                ("held", st.frag_held),
                ("released", st.frag_released),
            ] {
                f.sample(&[("worker", w), ("kind", kind)], n);
            }
        }
        let per_worker: [(&'static str, &str, &str, WorkerFigure); 5] = [
            (
                "rvs_established_path_packets_total",
                "counter",
                "Packets the established path took (forwarded the short way: an established connection's IPv4 packet that changes nothing but its expiry), by worker; a share of the forwarded.",
                |s| s.established_path,
            ),
            (
                "rvs_connections_created_total",
                "counter",
                "Connections made, by worker.",
                |s| s.conns_created,
            ),
            (
                "rvs_half_open_evicted_total",
                "counter",
                "Half-open connections that gave their place in a full table (SYN-flood defense).",
                |s| s.half_open_evicted,
            ),
            (
                "rvs_sloppy_created_total",
                "counter",
                "Connections a sloppy service made from a mid-flow segment (flows taken over), by worker.",
                |s| s.sloppy_created,
            ),
            (
                "rvs_conn_table_entries",
                "gauge",
                "Live connection-table entries, by worker (connections and templates).",
                |s| {
                    s.conns_created
                        .saturating_sub(s.conns_expired + s.half_open_evicted)
                },
            ),
        ];
        for (name, kind, help, get) in per_worker {
            let mut f = family(out, name, kind, help);
            for (w, st, _) in &stats {
                f.sample(&[("worker", w)], get(st));
            }
        }
        family(
            out,
            "rvs_conn_table_capacity",
            "gauge",
            "Connection-table capacity per worker and family.",
        )
        .sample(&[], self.table_size);
        let ports = (self.port_stats)();
        let mut f = family(
            out,
            "rvs_port_packets_total",
            "counter",
            "Frames a port received and sent, as the device counts them.",
        );
        for p in &ports {
            f.sample(&[("port", &p.name), ("direction", "rx")], p.rx);
            f.sample(&[("port", &p.name), ("direction", "tx")], p.tx);
        }
        let mut f = family(
            out,
            "rvs_port_bytes_total",
            "counter",
            "Bytes a port received and sent, as the device counts them.",
        );
        for p in &ports {
            f.sample(&[("port", &p.name), ("direction", "rx")], p.rx_bytes);
            f.sample(&[("port", &p.name), ("direction", "tx")], p.tx_bytes);
        }
        let mut f = family(
            out,
            "rvs_port_errors_total",
            "counter",
            "Frames a port's device failed to receive (rx) or send (tx).",
        );
        for p in &ports {
            f.sample(&[("port", &p.name), ("direction", "rx")], p.ierrors);
            f.sample(&[("port", &p.name), ("direction", "tx")], p.oerrors);
        }
        if let Some(pool) = &self.mempool {
            let (in_use, size) = pool();
            family(
                out,
                "rvs_mbufs_in_use",
                "gauge",
                "Packet buffers in use (in rings, queues, waiting for a neighbor, held).",
            )
            .sample(&[], in_use);
            family(out, "rvs_mbufs", "gauge", "Packet buffers in the pool.").sample(&[], size);
        }
        let mut f = family(
            out,
            "rvs_port_imissed_total",
            "counter",
            "Frames the device dropped because its receive queues were full.",
        );
        for p in &ports {
            f.sample(&[("port", &p.name)], p.imissed);
        }
        let mut f = family(
            out,
            "rvs_port_rx_nombuf_total",
            "counter",
            "Receives that failed for lack of buffers.",
        );
        for p in &ports {
            f.sample(&[("port", &p.name)], p.rx_nombuf);
        }
        if let Some(h) = self.host_path() {
            let mut f = family(
                out,
                "rvs_host_path_frames_total",
                "counter",
                "Frames between the ports and their kernel twins.",
            );
            for (kind, n) in [
                ("to_host", h.to_host),
                ("up", h.up),
                ("up_failed", h.up_failed),
                ("limited", h.limited),
                ("ring_full", h.ring_full),
                ("down", h.down),
                ("down_ring_full", h.down_ring_full),
            ] {
                f.sample(&[("kind", kind)], n);
            }
        }
    }

    /// The host path's counters: the workers' and the host thread's.
    pub fn host_path(&self) -> Option<HostPathView> {
        let rings = self.shared.host.as_ref()?;
        let h = rings.stats();
        let sum = |f: &dyn Fn(&rvs_dataplane::WorkerCounters) -> u64| {
            self.shared.counters.iter().map(f).sum::<u64>()
        };
        Some(HostPathView {
            twins: self
                .ports
                .iter()
                .filter_map(|p| p.host_interface.clone())
                .collect(),
            to_host: sum(&|c| c.stats().to_host),
            up: h.up,
            up_failed: h.up_failed,
            limited: sum(&|c| c.dp_drop_count(DpDrop::HostPathLimited)),
            ring_full: sum(&|c| c.dp_drop_count(DpDrop::HostRingFull)),
            down: h.down,
            down_ring_full: h.down_ring_full,
        })
    }

    fn status(&self) -> Reply {
        let mut drops = Vec::new();
        for &r in DropReason::ALL {
            let n: u64 = self.shared.counters.iter().map(|c| c.drop_count(r)).sum();
            if n > 0 {
                drops.push((r.name().to_string(), n));
            }
        }
        for r in DpDrop::ALL {
            let n: u64 = self.shared.counters.iter().map(|c| c.dp_drop_count(r)).sum();
            if n > 0 {
                drops.push((r.name().to_string(), n));
            }
        }
        let per_worker: Vec<rvs_core::WorkerStats> = self.shared.counters.iter().map(|c| c.stats()).collect();
        let totals = rvs_core::WorkerStats::sum(&per_worker);
        Reply::Status {
            version: self.version.clone(),
            workers: self.shared.counters.len(),
            uptime_s: self.started.elapsed().as_secs(),
            ports: (self.port_stats)(),
            drops,
            change_visible_us: self.visibility().map(|(median, max)| [median, max]),
            services: self.entries.len(),
            tables_bytes: self.shared.tables.load().memory_bytes(),
            sloppy_created: totals.sloppy_created,
            counters: totals.iter().map(|(n, v)| (n.to_string(), v)).collect(),
            host_path: self.host_path(),
        }
    }
}
