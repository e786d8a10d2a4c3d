//! rvs-bench: replays generated workloads through the real data plane beside the baseline
//! forwarder and reports Mpps (and the ratio), connections per second, per-burst latency,
//! connection-table memory and drops, as JSON and a PNG chart.
//!
//!   rvs-bench                    every workload, 5 s each (opt-in: minutes, GBs of memory)
//!   rvs-bench --smoke            seconds long (CI); checks the data path's output first
//!   rvs-bench --only established-1k,new-connections --seconds 3

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Parser;
use rvs::bench;
use rvs::ealenv::Memory;

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
    /// The worker's CPU (default: the last CPU).
    #[arg(long)]
    cpu: Option<usize>,
    /// Use ordinary pages even when hugepages are available.
    #[arg(long)]
    no_huge: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
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
    let cpu = args.cpu.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get() - 1)
            .unwrap_or(0)
    });
    let memory = if args.no_huge {
        Memory::NoHuge
    } else {
        Memory::detect()
    };
    println!(
        "{}; memory: {}; worker on CPU {cpu}",
        rvs::version_line("rvs-bench"),
        memory.describe()
    );
    let report = bench::run(&list, &args.out, secs, cpu, memory, args.smoke, |l| {
        println!("{l}")
    })?;
    println!(
        "\n{:<22} {:>9} {:>9} {:>7} {:>12} {:>8} {:>8} {:>9} {:>9}",
        "workload",
        "base Mpps",
        "rvs Mpps",
        "ratio",
        "conns/busy-s",
        "p50 ns",
        "p99 ns",
        "p99.9 ns",
        "max ns"
    );
    for r in &report.results {
        println!(
            "{:<22} {:>9.2} {:>9.2} {:>6.0}% {:>12.0} {:>8} {:>8} {:>9} {:>9}",
            r.workload.name,
            r.baseline_mpps,
            r.rvs_mpps,
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
