//! The operator's view of the services, and the ops that change it. Every op is validated in
//! full before anything changes; a change builds new tables (sharing every untouched service)
//! and publishes them with one atomic swap, which workers pick up at their next burst.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rvs_api::config::{validate_real, validate_service, PortConfig, RawService, RealConfig, ServiceConfig};
use rvs_api::proto::{ConnView, HostPathView, Op, PortView, Reply, ServiceId};
use rvs_core::conn::state::Timeouts;
use rvs_core::model::{Protocol, RealId, RealRegistry, RealServer, Service, ServiceKey};
use rvs_core::net::Network;
use rvs_core::{DropReason, Tables};
use rvs_dataplane::{Command, DpDrop, Shared};

use super::estimator::{Estimator, Totals};

/// An op's failure: a stable code and a message for people.
pub type OpError = (&'static str, String);

#[derive(Debug)]
struct Entry {
    cfg: ServiceConfig,
    ids: Vec<RealId>,
    built: Arc<Service>,
}

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
}

fn parse_id(id: &ServiceId) -> Result<ServiceKey, OpError> {
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
    Ok(ServiceKey {
        protocol,
        vip: a.ip(),
        port: a.port(),
    })
}

fn describe(k: &ServiceKey) -> String {
    format!("{} {}", k.protocol.name(), SocketAddr::new(k.vip, k.port))
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
                built: built.clone(),
            })
            .collect();
        let next_id = entries
            .iter()
            .flat_map(|e| e.ids.iter())
            .map(|i| i.0 + 1)
            .max()
            .unwrap_or(0);
        ControlState {
            net: tables.net.clone(),
            ports: ports.to_vec(),
            timeouts: tables.timeouts,
            reg: tables.reals.clone(),
            shared,
            entries,
            next_id,
            base: HashMap::new(),
            est: Estimator::default(),
            table_size,
            started: Instant::now(),
            port_stats,
            visible_us: Vec::new(),
            host_dirty: false,
        }
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

    /// Publishes new tables if the host addresses changed.
    pub fn publish_if_changed(&mut self) {
        if std::mem::take(&mut self.host_dirty) {
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

    fn build(&self, cfg: &ServiceConfig, ids: &[RealId]) -> Result<Arc<Service>, OpError> {
        let reals = cfg
            .reals
            .iter()
            .zip(ids)
            .map(|(r, &id)| {
                if self.net.route(r.addr).is_none() {
                    return Err(("invalid", format!("real server {}: no port reaches it", r.addr)));
                }
                Ok(RealServer {
                    id,
                    addr: r.addr,
                    port: r.port,
                    forward: r.forward,
                    weight: r.weight,
                    upper: r.upper,
                    lower: r.lower,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Service::new(cfg.key, &cfg.scheduler, cfg.flags, cfg.persistence, reals)
            .map(|s| Arc::new(s.with_announce(cfg.announce)))
            .map_err(|e| ("invalid", format!("service.scheduler: {e}")))
    }

    /// Publishes new tables and waits (up to 100 ms) until every worker runs with them, so
    /// that when an op is answered the change is in force. Records how long that took.
    fn publish(&mut self) {
        let services = self.entries.iter().map(|e| e.built.clone()).collect();
        let tables = Tables::new(self.net.clone(), services, self.timeouts, self.reg.clone());
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

    /// A service with fresh ids for its real servers.
    fn new_entry(&mut self, cfg: ServiceConfig, taken: &mut Vec<RealId>) -> Result<Entry, OpError> {
        let mut ids = Vec::new();
        for _ in &cfg.reals {
            let id = self.alloc_id(taken)?;
            taken.push(id);
            ids.push(id);
        }
        let built = self.build(&cfg, &ids)?;
        Ok(Entry { cfg, ids, built })
    }

    pub fn apply(&mut self, op: Op) -> Result<Option<Reply>, OpError> {
        match op {
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
                let e = self.new_entry(cfg, &mut Vec::new())?;
                self.entries.push(e);
            }
            Op::EditService { service } => {
                let keep_announce = service.announce.is_none();
                let mut cfg = self.validate(&RawService {
                    real: Vec::new(),
                    ..service
                })?;
                let i = self.find(&cfg.key)?;
                cfg.reals = self.entries[i].cfg.reals.clone();
                if keep_announce {
                    // ipvsadm's -E knows nothing of announcements: it does not reset them.
                    cfg.announce = self.entries[i].cfg.announce;
                }
                let built = self.build(&cfg, &self.entries[i].ids)?;
                self.entries[i] = Entry {
                    cfg,
                    ids: self.entries[i].ids.clone(),
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
                let id = self.alloc_id(&[])?;
                let (mut cfg, mut ids) = (self.entries[i].cfg.clone(), self.entries[i].ids.clone());
                cfg.reals.push(r);
                ids.push(id);
                let built = self.build(&cfg, &ids)?;
                self.entries[i] = Entry { cfg, ids, built };
            }
            Op::EditReal { service, real } => {
                let i = self.find(&parse_id(&service)?)?;
                let r = validate_real(&self.entries[i].cfg, &real, &self.ports)
                    .map_err(|e| ("invalid", e.to_string()))?;
                let k = self.real_index(i, &r)?;
                let mut cfg = self.entries[i].cfg.clone();
                cfg.reals[k] = r;
                let built = self.build(&cfg, &self.entries[i].ids)?;
                self.entries[i] = Entry {
                    cfg,
                    ids: self.entries[i].ids.clone(),
                    built,
                };
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
                let built = self.build(&cfg, &ids)?;
                self.entries[i] = Entry { cfg, ids, built };
            }
            Op::Restore { services } => {
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
                        self.new_entry(cfg, &mut taken)
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
            Op::Status {} => return Ok(Some(self.status())),
        }
        self.publish();
        Ok(None)
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
        Reply::Status {
            version: crate::version_line("rvsd"),
            workers: self.shared.counters.len(),
            uptime_s: self.started.elapsed().as_secs(),
            ports: (self.port_stats)(),
            drops,
            change_visible_us: self.visibility().map(|(median, max)| [median, max]),
            host_path: self.host_path(),
        }
    }
}
