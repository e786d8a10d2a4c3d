//! rvs-bench: replays generated workloads through the real data plane beside the baseline
//! forwarder and reports Mpps (and the ratio), connections per second, per-burst latency,
//! connection-table memory and drops, as JSON and a PNG chart.
//!
//!   rvs-bench                    every workload, 5 s each (opt-in: minutes, GBs of memory)
//!   rvs-bench --smoke            seconds long (CI); checks the data path's output first
//!   rvs-bench --only established-1k,new-connections --seconds 3
//!   rvs-bench --pcap capture.pcap [--config lb.toml] [--workers N]   your traffic, your services
//!   rvs-bench --compare old/report.json new/report.json [--max-drop 10]
//!
//! Exit status: 0; 1 a regression (`--compare`) or a failed run; 2 bad input (a capture, config
//! or report that cannot be used, named with the frame or field).

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Parser;
use rvs::ealenv::Memory;
use rvs_bench as bench;

#[derive(Parser, Debug)]
#[command(name = "rvs-bench", about = "rvs pcap-replay benchmark")]
struct Args {
    /// Seconds per run (baseline and rvs each).
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// The CI set: small workloads, 1 second each.
    #[arg(long)]
    smoke: bool,
    /// Only these workloads (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Where report.json and report.png go.
    #[arg(long, default_value = "out/bench")]
    out: PathBuf,
    /// The worker's CPU with one worker (default: the last CPU).
    #[arg(long, conflicts_with = "workers")]
    cpu: Option<usize>,
    /// Use ordinary pages even when hugepages are available.
    #[arg(long)]
    no_huge: bool,
    /// Replay this capture (pcap or pcapng, Ethernet) instead of the generated workloads.
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
    /// With --pcap: an rvsd config whose services (and first port's addresses) to use; default
    /// the embedded demo's (NAT 10.0.0.100:80 over 192.168.1.2-4:8080).
    #[arg(long, value_name = "FILE", requires = "pcap")]
    config: Option<PathBuf>,
    /// Workers, on the last CPUs: each gets an rx queue with the flows it owns (generated
    /// workloads) or a copy of the capture (--pcap). The baseline stays on one core.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    workers: u16,
    /// Compare two reports (OLD NEW) by each workload's ratio to the baseline.
    #[arg(long, num_args = 2, value_names = ["OLD", "NEW"], conflicts_with_all = ["pcap", "smoke", "only"])]
    compare: Vec<PathBuf>,
    /// With --compare: the largest drop of a ratio, in percent, that is not a regression.
    #[arg(long, default_value_t = 10.0)]
    max_drop: f64,
}

/// Exit 2: the input cannot be used.
fn bad(msg: impl std::fmt::Display) -> ! {
    eprintln!("rvs-bench: {msg}");
    std::process::exit(2);
}

fn main() {
    let args = Args::parse();
    if let [old, new] = args.compare.as_slice() {
        let rows = bench::compare(old, new, args.max_drop).unwrap_or_else(|e| bad(e));
        print!("{}", bench::fmt_compare(&rows, args.max_drop));
        std::process::exit(i32::from(rows.iter().any(|r| r.regressed)));
    }
    if let Err(e) = run(&args) {
        eprintln!("rvs-bench: {e:#}");
        std::process::exit(1);
    }
}

/// `--pcap`: the user's capture with the user's (or the demo's) services.
fn run_capture(
    args: &Args,
    capture: &std::path::Path,
    secs: f64,
    memory: Memory,
) -> Result<bench::BenchReport> {
    let frames = rvs::capture::read_capture(capture).unwrap_or_else(|e| bad(e));
    if frames.is_empty() {
        bad(format!("{}: the capture holds no frame", capture.display()));
    }
    let text = match &args.config {
        Some(c) => std::fs::read_to_string(c)
            .unwrap_or_else(|e| bad(format!("{}: cannot be read: {e}", c.display()))),
        None => include_str!("../../../configs/demo.toml")
            .replace("@DIR@", "/tmp")
            .replace("@CPU@", "0")
            .replace("@MEMORY@", "auto"),
    };
    let name = capture
        .file_stem()
        .map_or("capture".to_string(), |s| s.to_string_lossy().into_owned());
    let what = args
        .config
        .as_ref()
        .map_or("the demo's services".to_string(), |c| c.display().to_string());
    match bench::check_capture_config(&text) {
        Ok(()) => {}
        Err(e) => bad(format!("{what}: invalid configuration:\n{e}")),
    }
    println!("{}: {} frames, with {what}", capture.display(), frames.len());
    let capture = bench::Capture {
        name,
        frames,
        config_text: text,
        workers: args.workers as usize,
    };
    bench::run_capture(&capture, &args.out, secs, memory, |l| println!("{l}"))
}

fn run(args: &Args) -> Result<()> {
    let mut list = bench::workloads(args.smoke);
    if !args.only.is_empty() {
        let all = bench::workloads(false);
        list = args
            .only
            .iter()
            .map(|n| {
                all.iter().find(|w| &w.name == n).cloned().ok_or_else(|| {
                    anyhow::anyhow!(
                        "no workload {n:?} (have: {})",
                        all.iter().map(|w| w.name.as_str()).collect::<Vec<_>>().join(", ")
                    )
                })
            })
            .collect::<Result<_>>()?;
    }
    let secs = if args.smoke {
        args.seconds.min(1.0)
    } else {
        args.seconds
    };
    if secs <= 0.0 {
        bail!("--seconds must be positive");
    }
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = args.workers as usize;
    if workers > ncpu {
        bail!("--workers {workers}: this machine has {ncpu} CPUs");
    }
    let cpus: Vec<usize> = match args.cpu {
        Some(c) => vec![c],
        None => (ncpu - workers..ncpu).collect(),
    };
    let cpu = *cpus.last().expect("at least one worker");
    let memory = if args.no_huge {
        Memory::NoHuge
    } else {
        Memory::detect()
    };
    println!(
        "{}; memory: {}; workers on CPUs {cpus:?} (the baseline on {cpu})",
        rvs::version_line("rvs-bench"),
        memory.describe()
    );
    let report = match &args.pcap {
        Some(capture) => run_capture(args, capture, secs, memory)?,
        None => bench::run(&list, &args.out, secs, &cpus, memory, args.smoke, |l| {
            println!("{l}")
        })?,
    };
    println!(
        "\n{:<22} {:>9} {:>9} {:>13} {:>7} {:>12} {:>8} {:>8} {:>9} {:>9}",
        "workload",
        "base Mpps",
        "rvs Mpps",
        "per worker",
        "ratio",
        "conns/busy-s",
        "p50 ns",
        "p99 ns",
        "p99.9 ns",
        "max ns"
    );
    for r in &report.results {
        println!(
            "{:<22} {:>9.2} {:>9.2} {:>13} {:>6.0}% {:>12.0} {:>8} {:>8} {:>9} {:>9}",
            r.workload.name,
            r.baseline_mpps,
            r.rvs_mpps,
            r.per_worker_mpps
                .iter()
                .map(|m| format!("{m:.2}"))
                .collect::<Vec<_>>()
                .join("/"),
            r.ratio_to_baseline * 100.0,
            r.conns_per_busy_s,
            r.latency_per_burst.p50_ns,
            r.latency_per_burst.p99_ns,
            r.latency_per_burst.p999_ns,
            r.latency_per_burst.max_ns
        );
        if !r.drops.is_empty() {
            println!("{:<22} drops: {:?}", "", r.drops);
        }
    }
    println!(
        "peak RSS {} MB; report: {} and {}",
        report.peak_rss_mb,
        bench::report_path(&args.out).display(),
        args.out.join("report.png").display()
    );
    Ok(())
}
