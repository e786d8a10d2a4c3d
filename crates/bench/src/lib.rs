//! The bench harness: generated workloads replayed through the real data plane (the same
//! `daemon::run_on` rvsd uses) on `net_pcap,infinite_rx=1` into `net_null`, each beside the
//! baseline forwarder on the same vdevs, so that every figure has a ratio to what this machine
//! can move at all. Benchmarks report; they do not assert timings.

mod chart;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;

use rvs::daemon::{self, StopWhen};
use rvs::ealenv::Memory;
use rvs_traffic as traffic;

use rvs_traffic::workload::VIP6;
pub use rvs_traffic::workload::{frames, workloads, Kind, Workload};

/// Buffers and MTU for a workload: 64-byte frames get small buffers (a smaller pool, as a
/// director tuned for them would have), and so the smallest MTU the config allows, which
/// they fit; IMIX gets full-size ones.
fn buffers(w: &Workload) -> (u16, u16) {
    if w.imix {
        (2176, 1500)
    } else {
        (768, 576)
    }
}

/// The rvs configuration for a workload's run: outside = the replayed pcap (tx dropped),
/// inside = a sink.
fn config(
    tag: &str,
    pcaps: &[PathBuf],
    w: &Workload,
    cpus: &[usize],
    frames: usize,
    socket: &Path,
) -> String {
    let capacity = (w.flows as usize * 2).max(65536);
    let rx = pcaps
        .iter()
        .map(|p| format!("rx_pcap={}", p.display()))
        .collect::<Vec<_>>()
        .join(",");
    let cpus = cpus.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", ");
    let (mbuf_size, mtu) = buffers(w);
    let mut servers = String::new();
    for k in 2..6 {
        servers.push_str(&format!(
            "    {{ ip = \"192.168.1.{k}\", mac = \"02:11:c0:a8:01:{k:02x}\" }},\n"
        ));
    }
    format!(
        r#"
[dataplane]
workers = [{cpus}]
conn_capacity = {capacity}
mbufs = {mbufs}
mbuf_size = {mbuf_size}
[control]
socket = "{socket}"
[[port]]
name = "outside"
device = "net_pcap_{tag}o,{rx},infinite_rx=1"
mac = "02:00:00:00:00:a0"
mtu = {mtu}
addresses = ["203.0.113.1/24", "2001:db8:ff::1/64"]
gateway = "203.0.113.254"
gateway6 = "2001:db8:ff::fe"
neighbors = [{{ ip = "203.0.113.254", mac = "02:00:00:00:00:01" }}, {{ ip = "2001:db8:ff::fe", mac = "02:00:00:00:00:01" }}]
[[port]]
name = "inside"
device = "net_null_{tag}i,no-rx=1"
mac = "02:00:00:00:00:b0"
mtu = {mtu}
addresses = ["192.168.1.1/24", "2001:db8:1::1/64"]
neighbors = [
{servers}    {{ ip = "2001:db8:1::2", mac = "02:11:00:00:00:02" }},
]
[[service]]
address = "10.0.0.100:80"
scheduler = "wrr"
real = [
    {{ address = "192.168.1.2:8080", method = "nat", weight = 2 }},
    {{ address = "192.168.1.3:8080", method = "nat", weight = 1 }},
    {{ address = "192.168.1.4:8080", method = "nat", weight = 1 }},
]
[[service]]
protocol = "udp"
address = "10.0.0.100:53"
scheduler = "rr"
real = [{{ address = "192.168.1.2:5353", method = "nat" }}, {{ address = "192.168.1.3:5353", method = "nat" }}]
[[service]]
address = "10.0.0.101:80"
scheduler = "rr"
real = [{{ address = "192.168.1.2:8080", method = "nat" }}]
[[service]]
address = "10.0.0.102:80"
scheduler = "mh"
real = [{{ address = "192.168.1.4", method = "dr" }}, {{ address = "192.168.1.5", method = "dr" }}]
[[service]]
address = "10.0.0.103:80"
scheduler = "rr"
real = [{{ address = "192.168.1.5", method = "tun" }}]
[[service]]
address = "10.0.0.104:80"
scheduler = "rr"
local_addresses = ["192.168.1.250", "192.168.1.251"]
proxy_protocol = "v2"
real = [
    {{ address = "192.168.1.2:8080", method = "fullnat" }},
    {{ address = "192.168.1.3:8080", method = "fullnat" }},
    {{ address = "192.168.1.4:8080", method = "fullnat" }},
]
[[service]]
address = "[{VIP6}]:80"
scheduler = "rr"
real = [{{ address = "[2001:db8:1::2]:8080", method = "nat" }}]
"#,
        mbufs = frames + 16384,
        socket = socket.display(),
    )
}

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub max_ns: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Result1 {
    pub workload: Workload,
    pub frames_in_pcap: usize,
    pub seconds: f64,
    /// The baseline forwarder, on one core.
    pub baseline_mpps: f64,
    /// rvs, all workers together.
    pub rvs_mpps: f64,
    /// rvs, each worker (its rx queue's own input).
    pub per_worker_mpps: Vec<f64>,
    pub ratio_to_baseline: f64,
    /// New connections per second (all workloads make some; this is the rate of the run).
    pub conns_per_s: f64,
    /// Connections per second of the worker's busy time (summed burst times): its capacity.
    pub conns_per_busy_s: f64,
    pub conns_created: u64,
    pub latency_per_burst: Latency,
    pub drops: Vec<(String, u64)>,
    pub conn_table_bytes: usize,
    pub conn_table_bytes_per_conn: f64,
    pub hugepages_used_mb: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub version: String,
    pub memory: String,
    pub workers: usize,
    pub cpu: usize,
    pub results: Vec<Result1>,
    pub peak_rss_mb: u64,
    /// Frames of a finite replay whose every output was checked (smoke mode; 0 otherwise).
    pub verified_packets: u64,
    pub note: String,
}

/// The baseline forwarder on `net_pcap,infinite_rx=1` for `secs`: packets per second.
fn baseline(
    eal: &dpdk::Eal,
    tag: &str,
    pcap: &Path,
    frames: usize,
    cpu: usize,
    secs: f64,
    mbuf_size: u16,
) -> Result<f64> {
    let pool = dpdk::Mempool::new(
        eal,
        &format!("base_{tag}"),
        (frames + 16384) as u32,
        256,
        mbuf_size,
    )?;
    let dev = format!("net_pcap_{tag}b,rx_pcap={},infinite_rx=1", pcap.display());
    let port = dpdk::Port::open(eal, &dev, &dpdk::PortConfig::default(), &pool)?;
    port.start()?;
    let (mut rx, mut tx) = port.take_queues()?;
    let (mut rx, mut tx) = (rx.remove(0), tx.remove(0));
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let before = port.stats()?.ipackets;
    let start = Instant::now();
    let w = dpdk::spawn_worker(eal, "rvs-baseline", cpu, move |_| {
        rvs_dataplane::baseline::run(&mut rx, &mut tx, &s2)
    })?;
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    let _ = w.join();
    let moved = port.stats()?.ipackets - before;
    port.stop()?;
    Ok(moved as f64 / elapsed)
}

fn peak_rss_mb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0)
        / 1024
}

/// Runs `list` and writes `report.json` (and the chart) into `out`. `progress` gets a line per
/// step.
pub fn run(
    list: &[Workload],
    out: &Path,
    secs: f64,
    cpus: &[usize],
    memory: Memory,
    verify: bool,
    mut progress: impl FnMut(&str),
) -> Result<BenchReport> {
    let cpu = *cpus.last().context("at least one CPU")?;
    std::fs::create_dir_all(out)?;
    let prefix = format!("rvs-bench-{}", std::process::id());
    let eal = dpdk::Eal::init(rvs::ealenv::eal_args(&prefix, memory, 4096, false)).context("EAL init")?;
    rvs::ealenv::remove_runtime_dir(&prefix);
    let verified_packets = if verify {
        verify_replay(&eal, memory, out, cpu)?
    } else {
        0
    };
    if verify {
        progress(&format!(
            "verified: {verified_packets} frames replayed, every output checked"
        ));
    }
    let mut results = Vec::new();
    for (i, w) in list.iter().enumerate() {
        let f = frames(w);
        let pcap = out.join(format!("{}.pcap", w.name));
        traffic::write_pcap(&pcap, &f)?;
        // One input per worker (its rx queue's pcap): the flows it owns, so that the workers
        // scale rather than hand each other half of every input.
        let mut per_queue = Vec::new();
        for (q, part) in split_by_owner(&f, cpus.len()).iter().enumerate() {
            let path = out.join(format!("{}-q{q}.pcap", w.name));
            traffic::write_pcap(&path, part)?;
            per_queue.push(path);
        }
        let socket = out.join(format!("bench-{i}.sock"));
        let text = config(&format!("w{i}"), &per_queue, w, cpus, f.len(), &socket);
        let cfg = rvs_api::Config::from_toml(&text).map_err(|e| anyhow::anyhow!("bench config: {e}"))?;
        let step = format!("[{}/{}] {}", i + 1, list.len(), w.name);
        let (mbuf_size, _) = buffers(w);
        let run = Measure {
            eal: &eal,
            memory,
            tag: format!("w{i}"),
            pcap: &pcap,
            frames: f.len(),
            mbuf_size,
            cpu,
            secs,
        };
        results.push(run.measure(w, &cfg, &step, &mut progress)?);
        let _ = std::fs::remove_file(&pcap);
        for q in per_queue {
            let _ = std::fs::remove_file(q);
        }
    }
    finish(out, memory, cpus.len(), cpu, results, verified_packets)
}

/// The frames of each of `n` workers: every frame goes to the worker that owns its flow by
/// the data plane's steering function (the client's endpoint: a frame from a real server
/// belongs to its destination's flow), so no worker redirects anything. Frames that are not
/// TCP/UDP over IPv4/IPv6 go to the first.
pub fn split_by_owner(frames: &[Vec<u8>], n: usize) -> Vec<Vec<Vec<u8>>> {
    let mut out = vec![Vec::new(); n.max(1)];
    for f in frames {
        let w = if n <= 1 {
            0
        } else {
            owner_of_frame(f, n as u16) as usize
        };
        out[w].push(f.clone());
    }
    out
}

fn owner_of_frame(f: &[u8], n: u16) -> u16 {
    use std::net::{IpAddr, Ipv6Addr};
    let at = |i: usize| f.get(i).copied().unwrap_or(0);
    let (proto, src, dst, l4) = match [at(12), at(13)] {
        [0x08, 0x00] if f.len() >= 34 => {
            let ihl = (at(14) & 0x0f) as usize * 4;
            let a = |i: usize| IpAddr::V4(Ipv4Addr::new(at(i), at(i + 1), at(i + 2), at(i + 3)));
            (at(23), a(26), a(30), 14 + ihl)
        }
        [0x86, 0xdd] if f.len() >= 54 => {
            let a = |i: usize| {
                let mut o = [0u8; 16];
                o.copy_from_slice(&f[i..i + 16]);
                IpAddr::V6(Ipv6Addr::from(o))
            };
            (at(20), a(22), a(38), 54)
        }
        _ => return 0,
    };
    if f.len() < l4 + 4 || !matches!(proto, 6 | 17) {
        return 0;
    }
    let (sport, dport) = (
        u16::from_be_bytes([at(l4), at(l4 + 1)]),
        u16::from_be_bytes([at(l4 + 2), at(l4 + 3)]),
    );
    // The bench's real servers are 192.168.1.0/24 and 2001:db8:1::/64.
    let from_server = match src {
        IpAddr::V4(a) => a.octets()[..3] == [192, 168, 1],
        IpAddr::V6(a) => a.segments()[..4] == [0x2001, 0xdb8, 1, 0],
    };
    let (client, cport) = if from_server { (dst, dport) } else { (src, sport) };
    rvs_core::path::owner_of(proto, client, cport, n)
}

/// Writes `report.json` and `report.png` into `out`.
fn finish(
    out: &Path,
    memory: Memory,
    workers: usize,
    cpu: usize,
    results: Vec<Result1>,
    verified_packets: u64,
) -> Result<BenchReport> {
    let report = BenchReport {
        version: rvs::version_line("rvs-bench"),
        memory: memory.describe().into(),
        workers,
        cpu,
        results,
        peak_rss_mb: peak_rss_mb(),
        verified_packets,
        note: "rvs and the baseline forwarder (one worker) replay the same pcap with net_pcap infinite_rx; \
               rvs transmits into net_null, the baseline back out of the pcap port (dropped). Shared VM: \
               compare ratios, not absolute rates."
            .into(),
    };
    std::fs::write(report_path(out), serde_json::to_string_pretty(&report)?)?;
    crate::chart::draw(&report, &out.join("report.png"))?;
    Ok(report)
}

/// What `rvs-bench --pcap` replays.
#[derive(Debug, Clone)]
pub struct Capture {
    /// The workload's name in the report (the file's stem).
    pub name: String,
    pub frames: Vec<Vec<u8>>,
    /// The rvsd config whose services to use.
    pub config_text: String,
    pub workers: usize,
}

/// A user's capture replayed through the data plane with the services of `config_text` (an
/// rvsd config: its first port becomes the replayed pcap, the others sinks; its services,
/// addresses and neighbors stay), beside the baseline forwarder on the same capture, with
/// `workers` workers on the last CPUs. Writes the same report as the generated workloads.
pub fn run_capture(
    capture: &Capture,
    out: &Path,
    secs: f64,
    memory: Memory,
    mut progress: impl FnMut(&str),
) -> Result<BenchReport> {
    let Capture {
        name,
        frames,
        config_text,
        workers,
    } = capture;
    let (name, workers) = (name.as_str(), *workers);
    std::fs::create_dir_all(out)?;
    let cpus: Vec<usize> = {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        (n.saturating_sub(workers)..n).collect()
    };
    let pcap = out.join(format!("{name}.pcap"));
    traffic::write_pcap(&pcap, frames)?;
    let max_len = frames.iter().map(Vec::len).max().unwrap_or(60);
    let text = capture_config(
        config_text,
        &pcap,
        &cpus,
        frames.len(),
        &out.join("bench-capture.sock"),
    )?;
    let cfg = rvs_api::Config::from_toml(&text).map_err(|e| anyhow::anyhow!("{e}"))?;
    // The config's buffers (sized from its MTU) for the baseline too.
    let mbuf_size = cfg.mbuf_size;
    let prefix = format!("rvs-bench-{}", std::process::id());
    let eal = dpdk::Eal::init(rvs::ealenv::eal_args(&prefix, memory, 4096, false)).context("EAL init")?;
    rvs::ealenv::remove_runtime_dir(&prefix);
    let cpu = *cpus.last().unwrap_or(&0);
    let w = Workload::new(name, Kind::Capture, frames.len() as u32, max_len > 128);
    let run = Measure {
        eal: &eal,
        memory,
        tag: "cap".into(),
        pcap: &pcap,
        frames: frames.len(),
        mbuf_size,
        cpu,
        secs,
    };
    let result = run.measure(&w, &cfg, name, &mut progress)?;
    let _ = std::fs::remove_file(&pcap);
    finish(out, memory, workers, cpu, vec![result], 0)
}

/// The user's config with the bench's devices, CPUs, buffers and socket.
fn capture_config(text: &str, pcap: &Path, cpus: &[usize], frames: usize, socket: &Path) -> Result<String> {
    use toml::Value;
    let mut v: toml::Table = toml::from_str(text).map_err(|e| anyhow::anyhow!("TOML: {}", e.message()))?;
    let ports = v
        .get_mut("port")
        .and_then(Value::as_array_mut)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| {
            anyhow::anyhow!("port: the config needs at least one [[port]] (the first is replayed)")
        })?;
    let rx = vec![format!("rx_pcap={}", pcap.display()); cpus.len().max(1)].join(",");
    for (i, p) in ports.iter_mut().enumerate() {
        let Some(t) = p.as_table_mut() else { continue };
        let device = if i == 0 {
            format!("net_pcap_bc{i},{rx},infinite_rx=1")
        } else {
            format!("net_null_bc{i},no-rx=1")
        };
        t.insert("device".into(), Value::String(device));
        t.remove("host_interface");
        t.remove("rx_queues");
    }
    let dp = v
        .entry("dataplane")
        .or_insert_with(|| Value::Table(Default::default()))
        .as_table_mut()
        .ok_or_else(|| anyhow::anyhow!("dataplane: not a table"))?;
    dp.insert(
        "workers".into(),
        Value::Array(cpus.iter().map(|&c| Value::Integer(c as i64)).collect()),
    );
    dp.insert(
        "mbufs".into(),
        Value::Integer((frames * cpus.len().max(1) + 16384) as i64),
    );
    let ctl = v
        .entry("control")
        .or_insert_with(|| Value::Table(Default::default()))
        .as_table_mut()
        .ok_or_else(|| anyhow::anyhow!("control: not a table"))?;
    ctl.insert("socket".into(), Value::String(socket.display().to_string()));
    Ok(toml::to_string(&v)?)
}

/// One workload's measurement: the baseline, then rvs, on the same replayed pcap.
struct Measure<'a> {
    eal: &'a dpdk::Eal,
    memory: Memory,
    tag: String,
    pcap: &'a Path,
    frames: usize,
    mbuf_size: u16,
    cpu: usize,
    secs: f64,
}

impl Measure<'_> {
    fn measure(
        &self,
        w: &Workload,
        cfg: &rvs_api::Config,
        step: &str,
        progress: &mut impl FnMut(&str),
    ) -> Result<Result1> {
        let secs = self.secs;
        progress(&format!(
            "{step}: {} frames; baseline {secs:.1} s ...",
            self.frames
        ));
        let base = baseline(
            self.eal,
            &self.tag,
            self.pcap,
            self.frames,
            self.cpu,
            secs,
            self.mbuf_size,
        )?;
        progress(&format!(
            "{step}: baseline {:.2} Mpps; rvs {secs:.1} s ...",
            base / 1e6
        ));
        let when = StopWhen {
            after: Some(Duration::from_secs_f64(secs)),
            conns: (w.kind == Kind::NewConnections).then_some(w.flows as u64),
            idle: None,
        };
        let stop = AtomicBool::new(false);
        let r = daemon::run_on(self.eal, self.memory, cfg, &when, &stop)?;
        let secs_run = r.elapsed.as_secs_f64();
        let mpps = r.rx as f64 / secs_run;
        let per_worker_mpps: Vec<f64> = r
            .per_worker_rx
            .iter()
            .map(|&n| n as f64 / secs_run / 1e6)
            .collect();
        let lat = &r.latency;
        let result = Result1 {
            workload: w.clone(),
            frames_in_pcap: self.frames,
            seconds: secs_run,
            baseline_mpps: base / 1e6,
            rvs_mpps: mpps / 1e6,
            per_worker_mpps,
            ratio_to_baseline: if base > 0.0 { mpps / base } else { 0.0 },
            conns_per_s: r.conns_created as f64 / secs_run,
            conns_per_busy_s: {
                let busy_s = lat.mean() * lat.len() as f64 / 1e9;
                if busy_s > 0.0 {
                    r.conns_created as f64 / busy_s
                } else {
                    0.0
                }
            },
            conns_created: r.conns_created,
            latency_per_burst: Latency {
                p50_ns: lat.value_at_quantile(0.5),
                p99_ns: lat.value_at_quantile(0.99),
                p999_ns: lat.value_at_quantile(0.999),
                max_ns: lat.max(),
            },
            drops: r.drops.clone(),
            conn_table_bytes: r.conn_table_bytes,
            conn_table_bytes_per_conn: r.conn_table_bytes as f64 / cfg.conn_capacity as f64,
            hugepages_used_mb: r.hugepages_used_mb,
        };
        progress(&format!(
            "{step}: rvs {:.2} Mpps ({:.0}% of baseline), {:.0} conns/s, burst p50 {} ns p99 {} ns",
            result.rvs_mpps,
            result.ratio_to_baseline * 100.0,
            result.conns_per_s,
            result.latency_per_burst.p50_ns,
            result.latency_per_burst.p99_ns
        ));
        Ok(result)
    }
}

/// Where the report of a run lives.
pub fn report_path(out: &Path) -> PathBuf {
    out.join("report.json")
}

/// Replays the established-1k workload once (no loop) with the inside port writing a pcap, and
/// checks every output frame: DNATed to one of the real servers, port 8080, TTL decremented,
/// the inside port's MAC, valid IPv4 and TCP checksums. Returns how many were checked.
fn verify_replay(eal: &dpdk::Eal, memory: Memory, out: &Path, cpu: usize) -> Result<u64> {
    let w = Workload::new("verify", Kind::Established, 1000, false);
    let f = frames(&w);
    let input = out.join("verify-in.pcap");
    let empty = out.join("verify-empty.pcap");
    let output = out.join("verify-out.pcap");
    traffic::write_pcap(&input, &f)?;
    traffic::write_pcap(&empty, &[])?;
    let text = config(
        "vf",
        std::slice::from_ref(&input),
        &w,
        &[cpu],
        f.len(),
        &out.join("verify.sock"),
    )
    .replace(
        &format!("rx_pcap={},infinite_rx=1", input.display()),
        &format!("rx_pcap={}", input.display()),
    )
    .replace(
        "net_null_vfi,no-rx=1",
        &format!(
            "net_pcap_vfi,rx_pcap={},tx_pcap={}",
            empty.display(),
            output.display()
        ),
    );
    let cfg = rvs_api::Config::from_toml(&text).map_err(|e| anyhow::anyhow!("verify config: {e}"))?;
    let when = StopWhen {
        idle: Some(Duration::from_millis(300)),
        after: Some(Duration::from_secs(30)),
        conns: None,
    };
    let r = daemon::run_on(eal, memory, &cfg, &when, &AtomicBool::new(false))?;
    if !r.drops.is_empty() {
        anyhow::bail!("the verification replay dropped frames: {:?}", r.drops);
    }
    let sent: Vec<Vec<u8>> = traffic::read_pcap(&output)?
        .into_iter()
        .filter(|x| x[12..14] == [0x08, 0x00])
        .collect();
    if sent.len() != f.len() {
        anyhow::bail!("{} frames in, {} out", f.len(), sent.len());
    }
    let servers = [
        Ipv4Addr::new(192, 168, 1, 2),
        Ipv4Addr::new(192, 168, 1, 3),
        Ipv4Addr::new(192, 168, 1, 4),
    ];
    for (k, (o, i)) in sent.iter().zip(&f).enumerate() {
        let dst = Ipv4Addr::new(o[30], o[31], o[32], o[33]);
        let ok = servers.contains(&dst)
            && o[6..12] == traffic::INSIDE_MAC
            && o[0..6] == traffic::server_mac(dst)
            && o[22] == 63
            && u16::from_be_bytes([o[36], o[37]]) == 8080
            && o[26..30] == i[26..30]
            && o[34..36] == i[34..36]
            && o[54..] == i[54..]
            && traffic::checksums_valid(o);
        if !ok {
            anyhow::bail!(
                "output frame {k} is not the NAT of its input: in {:02x?}, out {:02x?} (checksums {})",
                i,
                o,
                traffic::checksums_valid(o)
            );
        }
    }
    for p in [input, empty, output] {
        let _ = std::fs::remove_file(p);
    }
    Ok(sent.len() as u64)
}

/// One workload in two reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Compared {
    pub workload: String,
    pub old_ratio: Option<f64>,
    pub new_ratio: Option<f64>,
    /// Relative change of the ratio to the baseline, in percent (negative: slower).
    pub change_pct: Option<f64>,
    pub regressed: bool,
}

/// Compares two `report.json` files by each workload's ratio to the baseline forwarder (so
/// reports from different machines compare): a workload regressed when its ratio fell by more
/// than `max_drop_pct` percent. The error names the file and what is wrong with it.
pub fn compare(old: &Path, new: &Path, max_drop_pct: f64) -> std::result::Result<Vec<Compared>, String> {
    let load = |p: &Path| -> std::result::Result<Vec<(String, f64)>, String> {
        let text = std::fs::read_to_string(p).map_err(|e| format!("{}: cannot be read: {e}", p.display()))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", p.display()))?;
        let results = v["results"]
            .as_array()
            .ok_or_else(|| format!("{}: not an rvs-bench report (no \"results\" list)", p.display()))?;
        results
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let name = r["workload"]["name"].as_str();
                let ratio = r["ratio_to_baseline"].as_f64();
                match (name, ratio) {
                    (Some(n), Some(x)) if x.is_finite() => Ok((n.to_string(), x)),
                    _ => Err(format!(
                        "{}: results[{i}] lacks workload.name or a numeric ratio_to_baseline",
                        p.display()
                    )),
                }
            })
            .collect()
    };
    let (a, b) = (load(old)?, load(new)?);
    let mut names: Vec<String> = a.iter().map(|(n, _)| n.clone()).collect();
    for (n, _) in &b {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    Ok(names
        .into_iter()
        .map(|n| {
            let find = |l: &[(String, f64)]| l.iter().find(|(x, _)| *x == n).map(|(_, r)| *r);
            let (o, w) = (find(&a), find(&b));
            let change_pct = match (o, w) {
                (Some(o), Some(w)) if o > 0.0 => Some((w - o) / o * 100.0),
                _ => None,
            };
            Compared {
                workload: n,
                old_ratio: o,
                new_ratio: w,
                change_pct,
                regressed: change_pct.is_some_and(|c| c < -max_drop_pct),
            }
        })
        .collect())
}

/// The comparison as a table.
pub fn fmt_compare(rows: &[Compared], max_drop_pct: f64) -> String {
    let pct = |r: Option<f64>| r.map_or("-".to_string(), |x| format!("{:.1}%", x * 100.0));
    let mut s = format!(
        "{:<24} {:>10} {:>10} {:>9}\n",
        "workload", "old ratio", "new ratio", "change"
    );
    for r in rows {
        let change = r.change_pct.map_or("-".to_string(), |c| format!("{c:+.1}%"));
        let mark = if r.regressed {
            format!("  REGRESSED (more than {max_drop_pct}% down)")
        } else if r.old_ratio.is_none() || r.new_ratio.is_none() {
            "  (in one report only)".to_string()
        } else {
            String::new()
        };
        s += &format!(
            "{:<24} {:>10} {:>10} {:>9}{mark}\n",
            r.workload,
            pct(r.old_ratio),
            pct(r.new_ratio),
            change
        );
    }
    s
}

/// Whether `text` can serve `run_capture`: the config as the bench will run it (its devices,
/// CPUs and socket replaced) validates; else every problem, each naming its field.
pub fn check_capture_config(text: &str) -> std::result::Result<(), String> {
    let t = capture_config(text, Path::new("/dev/null"), &[0], 1, Path::new("/dev/null"))
        .map_err(|e| e.to_string())?;
    rvs_api::Config::from_toml(&t)
        .map(drop)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod split_tests {
    use super::*;

    /// Each worker's input holds whole flows (requests and the servers' replies together),
    /// each owned by that worker, and nothing is lost.
    #[test]
    fn each_worker_gets_the_flows_it_owns_replies_included() {
        let w = Workload::new("m", Kind::NatMixed, 200, false);
        let f = frames(&w);
        let parts = split_by_owner(&f, 2);
        assert_eq!(parts.iter().map(Vec::len).sum::<usize>(), f.len());
        assert!(parts.iter().all(|p| !p.is_empty()), "both workers have input");
        let client_of = |fr: &[u8]| {
            let (src, dst) = (&fr[26..30], &fr[30..34]);
            let (sp, dp) = (&fr[34..36], &fr[36..38]);
            if src[..3] == [192, 168, 1] {
                (dst.to_vec(), dp.to_vec())
            } else {
                (src.to_vec(), sp.to_vec())
            }
        };
        for (k, part) in parts.iter().enumerate() {
            for fr in part {
                assert_eq!(owner_of_frame(fr, 2) as usize, k);
                let c = client_of(fr);
                assert!(
                    !parts[1 - k].iter().any(|o| client_of(o) == c),
                    "a flow in one part only"
                );
            }
        }
        assert_eq!(split_by_owner(&f, 1)[0].len(), f.len());
    }
}
