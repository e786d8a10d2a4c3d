//! rvsd's run: EAL, ports, tables, workers, until a signal (or, for replays, until the input is
//! exhausted), then an orderly stop with final counters.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use crossbeam_queue::ArrayQueue;
use dpdk::{Eal, Mempool, Port, PortConfig, PortStats, RssHash};
use rvs_api::config::{Config, MemoryMode};
use rvs_core::model::{RealId, RealRegistry, RealServer};
use rvs_core::net::{Network, PortNet};
use rvs_core::{DirectorConfig, DropReason, Tables};
use rvs_dataplane::{DpDrop, Neighbors, Shared, Worker, WorkerCounters, WorkerPorts};

use crate::control::{self, ControlState};
use crate::ealenv::{self, Memory};
use rvs_api::proto::{ServiceView, Stats};

/// Redirect ring size per worker pair.
const RING: usize = 1024;

/// When rvsd stops by itself (besides SIGINT/SIGTERM).
#[derive(Debug, Clone, Default)]
pub struct StopWhen {
    /// After this long with no packet received (once some were): for pcap replays.
    pub idle: Option<Duration>,
    /// After this long in all.
    pub after: Option<Duration>,
    /// Once the workers have made this many connections (for connection-rate benches).
    pub conns: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct PortReport {
    pub name: String,
    pub stats: PortStats,
}

#[derive(Debug)]
pub struct Report {
    pub memory: Memory,
    pub ports: Vec<PortReport>,
    pub services: Vec<ServiceView>,
    pub table_size: usize,
    pub workers: usize,
    pub rx: u64,
    /// Frames each worker received (from its rx queues, not redirected ones).
    pub per_worker_rx: Vec<u64>,
    pub tx: u64,
    pub forwarded: u64,
    pub replies: u64,
    pub redirects: u64,
    pub redirected_in: u64,
    pub drops: Vec<(String, u64)>,
    pub mbufs_in_use_start: u32,
    pub mbufs_in_use_end: u32,
    pub elapsed: Duration,
    /// Per-burst processing time (ns), all workers.
    pub latency: hdrhistogram::Histogram<u64>,
    pub conns_created: u64,
    /// Half-open connections evicted from full tables for new ones (SYN-flood defense).
    pub half_open_evicted: u64,
    /// Bytes the services take (servers and scheduler tables) at the end.
    pub tables_bytes: usize,
    /// Bytes of the workers' connection tables.
    pub conn_table_bytes: usize,
    /// The most 2 MB hugepages in use (MB) while running, all processes.
    pub hugepages_used_mb: u64,
    /// The host path's counters, when some port has a kernel twin.
    pub host_path: Option<rvs_api::proto::HostPathView>,
    /// TCP/UDP fragments: first ones followed, later ones done alike, held, replayed.
    pub fragments: [u64; 4],
}

/// Builds the core's tables from the config and the ports' MACs; real servers get ids in
/// config order.
/// `host` holds, per port, the addresses its kernel twin holds (empty without a twin).
pub fn build_tables(
    cfg: &Config,
    macs: &[[u8; 6]],
    host: &[Vec<IpAddr>],
    reg: Arc<RealRegistry>,
) -> Result<Tables> {
    let net = Network {
        ports: cfg
            .ports
            .iter()
            .zip(macs)
            .enumerate()
            .map(|(i, (p, &mac))| PortNet {
                mac,
                v4: p.v4.clone(),
                v6: p.v6.clone(),
                gateway4: p.gateway4,
                gateway6: p.gateway6,
                mtu: p.mtu,
                twin: p.host_interface.is_some(),
                host: host.get(i).cloned().unwrap_or_default(),
            })
            .collect(),
    };
    let mut next = 0u32;
    let mut services = Vec::new();
    for (i, s) in cfg.services.iter().enumerate() {
        let reals: Vec<RealServer> = s
            .reals
            .iter()
            .map(|r| {
                next += 1;
                r.server(RealId(next - 1), r.weight)
            })
            .collect();
        if next as usize > reg.capacity() {
            bail!("more than {} real servers", reg.capacity());
        }
        for r in &reals {
            if net.route(r.addr).is_none() {
                bail!(
                    "service[{i}]: real server {} is reachable through no port (add an address or a gateway)",
                    r.addr
                );
            }
        }
        let svc = s
            .build(reals)
            .map_err(|e| anyhow::anyhow!("service[{i}].scheduler: {e}"))?;
        services.push(Arc::new(svc));
    }
    Ok(Tables::new(net, services, cfg.timeouts, reg).with_marks(rvs_api::mark::core_rules(&cfg.marks)))
}

fn looks_like_pci(device: &str) -> bool {
    let name = device.split(',').next().unwrap_or("");
    name.len() >= 7
        && name
            .chars()
            .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
}

/// Initialises EAL for `cfg` and runs the data plane until `stop` is set or `when` says so.
pub fn run(cfg: &Config, when: &StopWhen, stop: &AtomicBool) -> Result<Report> {
    // Before EAL and the ports: a second rvsd on the same config must touch nothing.
    let _lock = crate::instance::lock(&cfg.socket)?;
    crate::instance::remove_stale_runtime_dirs();
    let (eal, memory) = init_eal(cfg)?;
    run_on(&eal, memory, cfg, when, stop)
}

/// EAL as `cfg` asks for it (once per process).
pub fn init_eal(cfg: &Config) -> Result<(Eal, Memory)> {
    let memory = match cfg.memory {
        MemoryMode::Auto => Memory::detect(),
        MemoryMode::NoHuge => Memory::NoHuge,
        MemoryMode::Hugepages => {
            if Memory::detect() != Memory::Hugepages {
                bail!("eal.memory = \"hugepages\" but no free 2 MB hugepages are mounted: run dpdk/setup.sh, or use \"auto\" or \"no-huge\"");
            }
            Memory::Hugepages
        }
    };
    let prefix = format!("rvsd-{}", std::process::id());
    let pci = cfg.ports.iter().any(|p| looks_like_pci(&p.device));
    let mut args = ealenv::eal_args(&prefix, memory, cfg.memory_mb, pci);
    args.extend(cfg.eal_args.iter().cloned());
    let eal = Eal::init(&args).context("EAL init")?;
    ealenv::remove_runtime_dir(&prefix);
    Ok((eal, memory))
}

/// Runs the data plane on an initialised EAL (the bench runs several configs in one process):
/// start, wait for `stop` or `when`, stop and report.
pub fn run_on(eal: &Eal, memory: Memory, cfg: &Config, when: &StopWhen, stop: &AtomicBool) -> Result<Report> {
    let mut running = Running::start(eal, memory, cfg)?;
    running.wait(when, stop);
    running.stop(cfg)
}

/// A data plane and its control plane, running.
pub struct Running {
    memory: Memory,
    pool: Mempool,
    in_use_start: u32,
    ports: Vec<Port>,
    twins: Vec<crate::host::Twin>,
    queues: Vec<(Vec<dpdk::RxQueue>, Vec<dpdk::TxQueue>)>,
    shared: Arc<Shared>,
    workers: Vec<dpdk::Worker<rvs_dataplane::WorkerResult>>,
    control: rvs_control::ControlPlane,
    /// The host path's thread (the twins' queues), when some port has a twin.
    host: Option<crate::host::HostPath>,
    started: Instant,
    hugepages_used: u64,
}

impl Running {
    /// Opens the pool, the ports and the twins, builds the tables, starts the workers, then
    /// the control plane (socket, health checks, sync, peer link, routes, metrics).
    pub fn start(eal: &Eal, memory: Memory, cfg: &Config) -> Result<Running> {
        let workers = cfg.workers.len();
        let pool = open_pool(eal, cfg)?;
        let in_use_start = pool.in_use();
        let ports = open_ports(eal, cfg, &pool)?;
        let macs: Vec<[u8; 6]> = ports
            .iter()
            .zip(&cfg.ports)
            .map(|(p, c)| c.mac.map_or_else(|| p.mac(), Ok))
            .collect::<dpdk::Result<_>>()?;
        let twins = crate::host::open_twins(eal, cfg, &macs, &pool)?;
        let held = if twins.is_empty() {
            Vec::new()
        } else {
            let mut nl = rvs_twin::Netlink::new()?;
            crate::host::held(&mut nl, &twins, cfg.ports.len()).context("reading the twins' addresses")?
        };
        let reg = Arc::new(RealRegistry::new(cfg.max_real_servers));
        let tables = build_tables(cfg, &macs, &held, reg)?;
        let neighbors = cfg
            .ports
            .iter()
            .flat_map(|p| p.neighbors.iter().copied())
            .collect::<Vec<(IpAddr, [u8; 6])>>();
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(7);
        // Persistence templates are per client (per netmask): a quarter of the connections.
        let mut shared = Shared::new(tables, Neighbors::new(neighbors), workers, cfg.max_real_servers)
            .with_templates((cfg.conn_capacity / 4).max(1024), seed.rotate_left(13));
        if let Some(rings) = crate::host::rings(cfg) {
            shared = shared.with_host(rings);
        }
        let shared = Arc::new(shared);
        let mut queues: Vec<(Vec<dpdk::RxQueue>, Vec<dpdk::TxQueue>)> = ports
            .iter()
            .map(|p| p.take_queues())
            .collect::<dpdk::Result<_>>()?;
        let handles = spawn_workers(eal, cfg, &mut queues, &pool, &shared, seed)?;
        let (control, host) = start_control(cfg, &ports, &twins, &pool, &shared)?;
        Ok(Running {
            memory,
            pool,
            in_use_start,
            ports,
            twins,
            queues,
            shared,
            workers: handles,
            control,
            host,
            started: Instant::now(),
            hugepages_used: crate::ealenv::hugepages_in_use_mb(),
        })
    }

    /// Waits until `stop` is set or `when` says so, following the hugepages in use.
    pub fn wait(&mut self, when: &StopWhen, stop: &AtomicBool) {
        let (mut last_rx, mut last_change) = (0u64, Instant::now());
        // A connection-rate run is timed closely; the others need no more than a 20 ms tick.
        let tick = Duration::from_millis(if when.conns.is_some() { 1 } else { 20 });
        loop {
            std::thread::sleep(tick);
            if stop.load(Ordering::Relaxed) || when.after.is_some_and(|d| self.started.elapsed() >= d) {
                break;
            }
            if let Some(n) = when.conns {
                let made: u64 = self.shared.counters.iter().map(|c| c.stats().conns_created).sum();
                if made >= n {
                    break;
                }
            }
            self.hugepages_used = self.hugepages_used.max(crate::ealenv::hugepages_in_use_mb());
            if let Some(idle) = when.idle {
                let rx: u64 = self
                    .ports
                    .iter()
                    .filter_map(|p| p.stats().ok())
                    .map(|s| s.ipackets)
                    .sum();
                if rx != last_rx {
                    (last_rx, last_change) = (rx, Instant::now());
                } else if rx > 0 && last_change.elapsed() >= idle {
                    break;
                }
            }
        }
    }

    /// Stops everything in order (routes first, while everything still forwards; the workers
    /// last) and makes the report, once every buffer is back in the pool.
    pub fn stop(self, cfg: &Config) -> Result<Report> {
        let Running {
            memory,
            pool,
            in_use_start,
            ports,
            twins,
            queues,
            shared,
            workers,
            control,
            host,
            started,
            hugepages_used,
        } = self;
        // Routes first (the routers move the flows away while everything still forwards),
        // then the rest of the control plane, the host path, and the workers last.
        let state = control.stop();
        if let Some(h) = host {
            h.stop();
        }
        shared.stop.store(true, Ordering::Relaxed);
        let elapsed = started.elapsed();
        let mut directors = Vec::new();
        let mut latency =
            hdrhistogram::Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).expect("valid bounds");
        for h in workers {
            let r = h.join().map_err(|_| anyhow::anyhow!("a worker panicked"))?;
            // Same bounds on both sides: adding cannot fail; a failure would only lose percentiles.
            let _ = latency.add(&r.latency);
            directors.push(r.director);
        }
        let port_reports: Vec<PortReport> = ports
            .iter()
            .zip(&cfg.ports)
            .map(|(p, c)| {
                Ok(PortReport {
                    name: c.name.clone(),
                    stats: p.stats()?,
                })
            })
            .collect::<dpdk::Result<_>>()?;
        drop(queues);
        if let Some(h) = &shared.host {
            h.drain();
        }
        let host_path = state.lock().unwrap_or_else(|p| p.into_inner()).host_path();
        // The control state holds port handles (for its statistics): let it go, so the ports
        // close and give back every buffer before the count below.
        drop(state);
        for p in ports.iter().chain(twins.iter().map(|t| &t.dev)) {
            p.stop()?;
        }
        let tables = shared.tables.load_full();
        let report = make_report(&shared, &tables, &directors, memory, cfg, port_reports, elapsed);
        drop(directors);
        drop(ports);
        drop(twins);
        Ok(Report {
            host_path,
            mbufs_in_use_start: in_use_start,
            mbufs_in_use_end: pool.in_use(),
            latency,
            hugepages_used_mb: hugepages_used,
            ..report
        })
    }
}

/// The packet-buffer pool, sized for the ports, the rings between workers and the twins
/// unless `[dataplane] mbufs` says.
fn open_pool(eal: &Eal, cfg: &Config) -> Result<Mempool> {
    static POOLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let workers = cfg.workers.len();
    let twins = cfg.ports.iter().filter(|p| p.host_interface.is_some()).count();
    let pool_size = cfg.mbufs.unwrap_or(
        ((cfg.ports.len() * workers * 2048
            + workers * (RING * workers + 1024)
            + 4096
            + twins * crate::host::TWIN_MBUFS)
            .next_power_of_two()
            - 1) as u32,
    );
    let pool_name = format!("rvs_pool{}", POOLS.fetch_add(1, Ordering::Relaxed));
    Mempool::new(eal, &pool_name, pool_size, 256, cfg.mbuf_size)
        .with_context(|| format!("a pool of {pool_size} buffers of {} bytes", cfg.mbuf_size))
}

/// Opens and starts every port, with one tx queue per worker and as many rx queues as asked.
fn open_ports(eal: &Eal, cfg: &Config, pool: &Mempool) -> Result<Vec<Port>> {
    let queues = cfg.workers.len() as u16;
    let mut ports = Vec::new();
    for p in &cfg.ports {
        let pc = PortConfig {
            rx_queues: p.rx_queues.unwrap_or(queues).min(queues),
            tx_queues: queues,
            rss: RssHash::L3_L4,
            mtu: None,
            ..Default::default()
        };
        let port = Port::open(eal, &p.device, &pc, pool)
            .with_context(|| format!("port {:?} ({})", p.name, p.device))?;
        if let Some(mac) = p.mac {
            // Virtual devices such as net_pcap cannot change their MAC; they receive every
            // frame anyway, and rvs writes the configured MAC as the source of what it sends.
            match port.set_mac(mac) {
                Ok(()) | Err(dpdk::Error::Dpdk { errno: 95, .. }) => {}
                Err(e) => return Err(e).with_context(|| format!("port {:?}: setting its MAC", p.name)),
            }
        }
        port.start()
            .with_context(|| format!("port {:?}: start", p.name))?;
        ports.push(port);
    }
    Ok(ports)
}

/// One worker per configured CPU, each with one rx and one tx queue of every port and a ring
/// from every other worker (rings[to][from]).
fn spawn_workers(
    eal: &Eal,
    cfg: &Config,
    queues: &mut [(Vec<dpdk::RxQueue>, Vec<dpdk::TxQueue>)],
    pool: &Mempool,
    shared: &Arc<Shared>,
    seed: u64,
) -> Result<Vec<dpdk::Worker<rvs_dataplane::WorkerResult>>> {
    let workers = cfg.workers.len();
    let rings: Vec<Vec<Arc<ArrayQueue<dpdk::Mbuf>>>> = (0..workers)
        .map(|_| (0..workers).map(|_| Arc::new(ArrayQueue::new(RING))).collect())
        .collect();
    let hz = dpdk::tsc_hz(eal);
    let mut handles = Vec::new();
    for (w, &cpu) in cfg.workers.iter().enumerate() {
        let mut rx = Vec::new();
        let mut tx = Vec::new();
        for (pi, (rq, tq)) in queues.iter_mut().enumerate() {
            // Every worker polls one rx queue of every port (positions must line up with the
            // tables' port numbers), so a port needs as many rx queues as there are workers.
            if !rq.is_empty() {
                rx.push(rq.remove(0));
            } else {
                bail!("port {:?} has {} rx queue(s) for {} workers: give it rx_queues or one rx device per worker", cfg.ports[pi].name, rq.len() + w, workers);
            }
            tx.push(tq.remove(0));
        }
        let rings_in = (0..workers)
            .filter(|&f| f != w)
            .map(|f| rings[w][f].clone())
            .collect();
        let rings_out = (0..workers)
            .map(|to| (to != w).then(|| rings[to][w].clone()))
            .collect();
        let dcfg = DirectorConfig {
            worker: w as u16,
            workers: workers as u16,
            conn_capacity_v4: cfg.conn_capacity,
            conn_capacity_v6: (cfg.conn_capacity / 4).max(1024),
            seed: seed.rotate_left(w as u32 * 7) ^ w as u64,
            real_capacity: cfg.max_real_servers,
            evict_half_open: cfg.evict_half_open,
        };
        let worker = Worker::new(
            dcfg,
            WorkerPorts { rx, tx },
            rings_in,
            rings_out,
            pool.clone(),
            shared.clone(),
            hz,
        );
        let h = dpdk::spawn_worker(eal, &format!("rvs-worker{w}"), cpu, move |_lcore| worker.run())
            .with_context(|| format!("dataplane.workers[{w}]: starting the worker on CPU {cpu}"))?;
        handles.push(h);
    }
    Ok(handles)
}

/// The control state over the running tables, and the threads around it: the host path, sync
/// daemons, peer link, health checks, routes, metrics and the control socket.
fn start_control(
    cfg: &Config,
    ports: &[Port],
    twins: &[crate::host::Twin],
    pool: &Mempool,
    shared: &Arc<Shared>,
) -> Result<(rvs_control::ControlPlane, Option<crate::host::HostPath>)> {
    let port_handles: Vec<(String, Port)> = cfg
        .ports
        .iter()
        .map(|c| c.name.clone())
        .zip(ports.iter().cloned())
        .collect();
    let port_stats = Box::new(move || {
        port_handles
            .iter()
            .map(|(name, p)| {
                let s = p.stats().unwrap_or_default();
                rvs_api::proto::PortView {
                    name: name.clone(),
                    rx: s.ipackets,
                    tx: s.opackets,
                    imissed: s.imissed,
                    rx_nombuf: s.rx_nombuf,
                    rx_bytes: s.ibytes,
                    tx_bytes: s.obytes,
                    ierrors: s.ierrors,
                    oerrors: s.oerrors,
                }
            })
            .collect()
    });
    let state = ControlState::new(
        &cfg.services,
        &cfg.ports,
        &shared.tables.load(),
        shared.clone(),
        cfg.conn_capacity,
        port_stats,
    )
    .with_max_services(cfg.max_services)
    .with_version(crate::version_line("rvsd"))
    .with_marks(cfg.marks.clone())
    .with_mempool({
        let pool = pool.clone();
        Box::new(move || (pool.in_use(), pool.in_use() + pool.available()))
    });
    let state = Arc::new(Mutex::new(state));
    let host = if twins.is_empty() {
        None
    } else {
        let queues = twins
            .iter()
            .map(|t| {
                let (mut rx, mut tx) = t.dev.take_queues()?;
                Ok(rvs_dataplane::host::TwinQueues {
                    port: t.port,
                    rx: rx.remove(0),
                    tx: tx.remove(0),
                })
            })
            .collect::<dpdk::Result<Vec<_>>>()?;
        Some(crate::host::HostPath::start(
            twins,
            queues,
            shared.clone(),
            state.clone(),
            pool.clone(),
        )?)
    };
    Ok((rvs_control::ControlPlane::start(cfg, state)?, host))
}

fn make_report(
    shared: &Shared,
    tables: &Tables,
    directors: &[rvs_core::Director],
    memory: Memory,
    cfg: &Config,
    ports: Vec<PortReport>,
    elapsed: Duration,
) -> Report {
    let sum = |f: &dyn Fn(&WorkerCounters) -> u64| shared.counters.iter().map(f).sum::<u64>();
    let mut drops = Vec::new();
    for &r in DropReason::ALL {
        let n = sum(&|c| c.drop_count(r));
        if n > 0 {
            drops.push((r.name().to_string(), n));
        }
    }
    for r in DpDrop::ALL {
        let n = sum(&|c| c.dp_drop_count(r));
        if n > 0 {
            drops.push((r.name().to_string(), n));
        }
    }
    let services = tables
        .services
        .iter()
        .map(|s| {
            control::service_view(s, &tables.reals, |id| {
                let traffic = |f: fn(&rvs_core::RealTraffic) -> u64| {
                    directors.iter().map(|d| f(&d.real_traffic(id))).sum::<u64>()
                };
                Stats {
                    conns: tables.reals.get(id).conns.load(Ordering::Relaxed),
                    in_packets: traffic(|t| t.in_packets),
                    out_packets: traffic(|t| t.out_packets),
                    in_bytes: traffic(|t| t.in_bytes),
                    out_bytes: traffic(|t| t.out_bytes),
                    ..Stats::default()
                }
            })
        })
        .collect();
    let totals = rvs_core::WorkerStats::sum(directors.iter().map(|d| &d.stats));
    Report {
        memory,
        ports,
        services,
        table_size: cfg.conn_capacity,
        workers: cfg.workers.len(),
        rx: sum(&|c| c.stats().rx),
        per_worker_rx: shared.counters.iter().map(|c| c.stats().rx).collect(),
        tx: sum(&|c| c.tx()),
        forwarded: sum(&|c| c.stats().forwarded),
        replies: sum(&|c| c.stats().replies),
        redirects: sum(&|c| c.stats().redirects),
        redirected_in: sum(&|c| c.redirected_in()),
        drops,
        mbufs_in_use_start: 0,
        mbufs_in_use_end: 0,
        elapsed,
        latency: hdrhistogram::Histogram::new(3).expect("valid precision"),
        conns_created: totals.conns_created,
        half_open_evicted: totals.half_open_evicted,
        fragments: [
            totals.frag_first,
            totals.frag_followed,
            totals.frag_held,
            totals.frag_released,
        ],
        tables_bytes: tables.memory_bytes(),
        conn_table_bytes: directors
            .iter()
            .map(|d| d.conns_v4().memory_bytes() + d.conns_v6().memory_bytes())
            .sum(),
        hugepages_used_mb: 0,
        host_path: None,
    }
}

impl Report {
    /// The tables as `ipvsadm -Ln` and `ipvsadm -Ln --stats --exact` print them.
    pub fn tables(&self) -> String {
        use rvsadm::{fmt_list, ListOpts};
        let numeric = ListOpts {
            numeric: true,
            ..Default::default()
        };
        let stats = ListOpts {
            stats: true,
            exact: true,
            ..numeric.clone()
        };
        fmt_list(self.table_size, &self.services, &numeric)
            + &fmt_list(self.table_size, &self.services, &stats)
    }

    /// The counters, as rvsd prints them when it stops.
    pub fn render(&self) -> String {
        let mut s = String::new();
        use std::fmt::Write;
        let _ = writeln!(
            s,
            "memory: {}; workers: {}; ran {:.2} s",
            self.memory.describe(),
            self.workers,
            self.elapsed.as_secs_f64()
        );
        for p in &self.ports {
            let t = &p.stats;
            let _ = writeln!(
                s,
                "port {:<10} rx {} tx {} rx_bytes {} tx_bytes {} imissed {} ierrors {} oerrors {} rx_nombuf {}",
                p.name, t.ipackets, t.opackets, t.ibytes, t.obytes, t.imissed, t.ierrors, t.oerrors, t.rx_nombuf
            );
        }
        let _ = writeln!(
            s,
            "workers: rx {} forwarded {} replies {} redirected {} (received {}) tx {}; connections {} (half-open evicted {})",
            self.rx,
            self.forwarded,
            self.replies,
            self.redirects,
            self.redirected_in,
            self.tx,
            self.conns_created,
            self.half_open_evicted
        );
        if self.drops.is_empty() {
            let _ = writeln!(s, "drops: none");
        } else {
            let list: Vec<String> = self.drops.iter().map(|(n, c)| format!("{n} {c}")).collect();
            let _ = writeln!(s, "drops: {}", list.join(", "));
        }
        if self.fragments.iter().any(|&n| n > 0) {
            let [first, followed, held, released] = self.fragments;
            let _ = writeln!(
                s,
                "fragments: first {first} followed {followed} held {held} released {released}"
            );
        }
        if let Some(h) = &self.host_path {
            let _ = writeln!(
                s,
                "host path ({}): to host {} up {} (failed {}) limited {} ring full {}; down {} (ring full {})",
                h.twins.join(", "),
                h.to_host,
                h.up,
                h.up_failed,
                h.limited,
                h.ring_full,
                h.down,
                h.down_ring_full
            );
        }
        let _ = writeln!(
            s,
            "tables: {} services, {} KiB (servers and scheduler tables)",
            self.services.len(),
            self.tables_bytes.div_ceil(1024)
        );
        let _ = writeln!(
            s,
            "mbufs in use: {} at start, {} at the end",
            self.mbufs_in_use_start, self.mbufs_in_use_end
        );
        s
    }
}
