//! rvsd, the rvs data-plane daemon.
//!
//!   rvsd --config FILE     run the load balancer until SIGINT/SIGTERM (--report-json FILE:
//!                          the end-of-run report as JSON too)
//!   rvsd --check FILE      validate a config and exit
//!   rvsd --demo            the embedded default: NAT over three real servers on pcap vdevs
//!   rvsd --version

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;

use rvs::daemon::{self, StopWhen};
use rvs_api::Config;
use rvs_traffic::{self as traffic, NatDemo};

#[derive(Parser, Debug)]
#[command(
    name = "rvsd",
    disable_version_flag = true,
    about = "rvs data-plane daemon (DPDK)"
)]
struct Args {
    /// Print the rvs version and the DPDK versions built against and running, then exit.
    #[arg(short = 'V', long)]
    version: bool,
    /// Run with this configuration file.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["check", "demo"])]
    config: Option<PathBuf>,
    /// Validate this configuration file and exit (0 if valid).
    #[arg(long, value_name = "FILE", conflicts_with = "demo")]
    check: Option<PathBuf>,
    /// Run the embedded default: generated traffic through NAT to three real servers on pcap
    /// vdevs, then print the ipvsadm table.
    #[arg(long)]
    demo: bool,
    /// Stop after this many milliseconds without a received packet (for pcap replays).
    #[arg(long, value_name = "MS")]
    exit_idle: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    duration: Option<u64>,
    /// Write the end-of-run report as JSON (schema rvs-run-report, version 1).
    #[arg(long, value_name = "FILE")]
    report_json: Option<std::path::PathBuf>,
    /// Demo: directory for the pcaps.
    #[arg(long, default_value = "out")]
    out: PathBuf,
    /// Demo: TCP conversations to generate.
    #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    flows: u32,
    /// Demo: the worker's CPU (default: the last CPU).
    #[arg(long)]
    cpu: Option<usize>,
    /// Demo: use ordinary pages even when hugepages are available.
    #[arg(long)]
    no_huge: bool,
    /// Print rvsd's man page (roff) and exit: for packaging.
    #[arg(long, hide = true)]
    man: bool,
    /// Print a shell completion script (bash, zsh, fish) and exit: for packaging.
    #[arg(long, hide = true, value_name = "SHELL")]
    completions: Option<clap_complete::Shell>,
}

fn main() {
    let args = Args::parse();
    let result = if args.man {
        man()
    } else if let Some(shell) = args.completions {
        clap_complete::generate(
            shell,
            &mut <Args as clap::CommandFactory>::command(),
            "rvsd",
            &mut std::io::stdout(),
        );
        Ok(())
    } else if args.version {
        println!("{}, running {}", rvs::version_line("rvsd"), dpdk::version());
        Ok(())
    } else if let Some(f) = &args.check {
        check(f)
    } else if let Some(f) = &args.config {
        run_file(f, &args)
    } else if args.demo {
        demo(&args)
    } else {
        eprintln!("rvsd: nothing to do. Try `rvsd --config FILE`, `rvsd --demo` or `rvsd --help`.");
        std::process::exit(2);
    };
    if let Err(e) = result {
        eprintln!("rvsd: {e:#}");
        std::process::exit(1);
    }
}

/// rvsd.8: clap's page of the options, with what an operator needs beside them.
fn man() -> Result<()> {
    use clap::CommandFactory;
    let cmd = Args::command()
        .version(env!("CARGO_PKG_VERSION"))
        .about("rvs data-plane daemon: an LVS-style L4 load balancer on DPDK")
        .long_about(
            "rvsd runs the data plane (poll-mode workers on DPDK ports) and the control plane \
             (the control socket rvsadm speaks to, health checks, sync, metrics) described by its \
             configuration file, rvs.toml(5). It stops on SIGINT or SIGTERM and prints its \
             counters and the ipvsadm-style table.",
        )
        .after_long_help(
            "FILES: /etc/rvs/rvs.toml (the configuration), /run/rvs/rvs.sock (the control \
             socket). SEE ALSO: rvsadm(8), rvs.toml(5), ipvsadm(8), keepalived(8).",
        );
    let man = clap_mangen::Man::new(cmd).section("8");
    man.render(&mut std::io::stdout())?;
    Ok(())
}

fn load(path: &Path) -> Result<Config> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Config::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: invalid configuration:\n{e}", path.display()))
}

fn check(path: &Path) -> Result<()> {
    let c = load(path)?;
    let reals: usize = c.services.iter().map(|s| s.reals.len()).sum();
    println!(
        "{}: ok ({} port(s), {} worker(s), {} service(s), {} real server(s))",
        path.display(),
        c.ports.len(),
        c.workers.len(),
        c.services.len(),
        reals
    );
    Ok(())
}

/// SIGINT and SIGTERM set the returned flag.
fn stop_on_signals() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }
    Ok(stop)
}

fn when(args: &Args) -> StopWhen {
    StopWhen {
        conns: None,
        idle: args.exit_idle.map(Duration::from_millis),
        after: args.duration.map(Duration::from_secs),
    }
}

fn run_file(path: &Path, args: &Args) -> Result<()> {
    let cfg = load(path)?;
    println!("{}, running {}", rvs::version_line("rvsd"), dpdk::version());
    let stop = stop_on_signals()?;
    let report = daemon::run(&cfg, &when(args), &stop)?;
    print!("{}", report.render());
    print!("{}", report.tables());
    write_json(&report, args)
}

fn write_json(report: &daemon::Report, args: &Args) -> Result<()> {
    if let Some(path) = &args.report_json {
        let json = serde_json::to_string_pretty(&rvs::run_report::RunReport::from_report(report))?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn demo(args: &Args) -> Result<()> {
    println!("{}, running {}", rvs::version_line("rvsd"), dpdk::version());
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let dir = std::path::absolute(&args.out)?;
    let dir_s = dir.to_str().context("the output directory is not UTF-8")?;
    if dir_s.contains(',') || dir_s.contains('"') {
        bail!("{dir_s}: a DPDK device string cannot hold this path; choose another --out");
    }
    let gen = NatDemo {
        flows: args.flows,
        ..Default::default()
    };
    let (frames, expect) = gen.frames();
    traffic::write_pcap(&dir.join("demo-in.pcap"), &frames)?;
    traffic::write_pcap(&dir.join("demo-empty.pcap"), &[])?;
    println!(
        "traffic: {} TCP conversations, {} frames -> {}/demo-in.pcap",
        args.flows,
        frames.len(),
        dir_s
    );
    let cpu = args.cpu.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get() - 1)
            .unwrap_or(0)
    });
    let text = include_str!("../../configs/demo.toml")
        .replace("@DIR@", dir_s)
        .replace("@CPU@", &cpu.to_string())
        .replace("@MEMORY@", if args.no_huge { "no-huge" } else { "auto" });
    let cfg = Config::from_toml(&text).map_err(|e| anyhow::anyhow!("the embedded demo config: {e}"))?;
    let stop = stop_on_signals()?;
    let report = daemon::run(
        &cfg,
        &StopWhen {
            conns: None,
            idle: Some(Duration::from_millis(300)),
            after: Some(Duration::from_secs(60)),
        },
        &stop,
    )?;
    print!("{}", report.render());
    print!("{}", report.tables());
    write_json(&report, args)?;
    // Beside the traffic, each port sent a gratuitous ARP for the VIP at start.
    let ip_frames = |name: &str| -> Result<u64> {
        Ok(traffic::read_pcap(&dir.join(name))?
            .iter()
            .filter(|f| f.get(12..14) != Some(&[0x08, 0x06][..]))
            .count() as u64)
    };
    let to_servers = ip_frames("demo-out-inside.pcap")?;
    let to_clients = ip_frames("demo-out-outside.pcap")?;
    println!(
        "output: {to_servers} frames to the real servers -> {dir_s}/demo-out-inside.pcap (expected {})",
        expect.to_servers
    );
    println!(
        "        {to_clients} frames to the clients -> {dir_s}/demo-out-outside.pcap (expected {})",
        expect.to_clients
    );
    if to_servers != expect.to_servers || to_clients != expect.to_clients {
        bail!("the output pcaps do not hold what the demo sent through");
    }
    Ok(())
}
