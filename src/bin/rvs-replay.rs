//! rvs-replay: a verdict on a replay, for CI pipelines. Runs rvsd's data plane with a config
//! whose ports read and write pcap files (`net_pcap...,rx_pcap=IN,tx_pcap=OUT`) until the
//! input is exhausted, then compares what each named port sent with an expected capture.
//!
//!   rvs-replay --config lb.toml --expect inside=expected-inside.pcap [--report-json run.json]
//!
//! Exit status: 0 every expected capture matched; 1 a port sent something else (the first
//! difference is printed: frame, field, expected and got, and both frames in one line each);
//! 2 bad input (a config that does not validate, an unreadable or non-Ethernet capture, a port
//! that does not write a pcap), with a message naming the file and the field or frame.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use rvs::capture::{first_difference, read_capture};
use rvs::daemon::{self, StopWhen};
use rvs::run_report::RunReport;
use rvs_api::Config;

#[derive(Parser, Debug)]
#[command(
    name = "rvs-replay",
    about = "replay pcaps through rvs and compare the output with expected captures"
)]
struct Args {
    /// The rvsd configuration: its ports' devices name the input and output pcaps.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// PORT=FILE: what port PORT must have sent (pcap or pcapng). Repeat for each port.
    #[arg(long, value_name = "PORT=FILE")]
    expect: Vec<String>,
    /// Write the end-of-run report as JSON (schema rvs-run-report, version 1).
    #[arg(long, value_name = "FILE")]
    report_json: Option<PathBuf>,
    /// Stop this long after the last received packet.
    #[arg(long, value_name = "MS", default_value_t = 300)]
    exit_idle: u64,
    /// Stop after this many seconds whatever happens.
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    duration: u64,
}

/// Exit 2 with a message: the input is not usable.
fn bad(msg: impl std::fmt::Display) -> ! {
    eprintln!("rvs-replay: {msg}");
    std::process::exit(2);
}

/// The value of `key=` in a DPDK device string.
fn device_arg<'a>(device: &'a str, key: &str) -> Vec<&'a str> {
    device
        .split(',')
        .filter_map(|kv| kv.trim().strip_prefix(key)?.strip_prefix('='))
        .collect()
}

fn main() {
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.config)
        .unwrap_or_else(|e| bad(format!("{}: cannot be read: {e}", args.config.display())));
    let cfg = Config::from_toml(&text)
        .unwrap_or_else(|e| bad(format!("{}: invalid configuration:\n{e}", args.config.display())));
    // Every input capture must be one rvs can replay.
    for p in &cfg.ports {
        for input in device_arg(&p.device, "rx_pcap") {
            if let Err(e) = read_capture(Path::new(input)) {
                bad(format!("port {:?}: {e}", p.name));
            }
        }
    }
    let mut checks = Vec::new();
    for e in &args.expect {
        let Some((port, file)) = e.split_once('=') else {
            bad(format!("--expect {e:?}: give PORT=FILE"));
        };
        let Some(p) = cfg.ports.iter().find(|p| p.name == port) else {
            let names: Vec<&str> = cfg.ports.iter().map(|p| p.name.as_str()).collect();
            bad(format!(
                "--expect {e:?}: no port {port:?} (ports: {})",
                names.join(", ")
            ));
        };
        let Some(out) = device_arg(&p.device, "tx_pcap").first().map(PathBuf::from) else {
            bad(format!(
                "--expect {e:?}: port {port:?} writes no pcap (give its device tx_pcap=FILE)"
            ));
        };
        let expected = read_capture(Path::new(file)).unwrap_or_else(|e| bad(e));
        checks.push((port.to_string(), out, expected));
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, stop.clone());
    }
    let when = StopWhen {
        idle: Some(Duration::from_millis(args.exit_idle)),
        after: Some(Duration::from_secs(args.duration)),
        conns: None,
    };
    let report = daemon::run(&cfg, &when, &stop).unwrap_or_else(|e| bad(format!("{e:#}")));
    print!("{}", report.render());
    if let Some(path) = &args.report_json {
        let json = serde_json::to_string_pretty(&RunReport::from_report(&report)).expect("reports serialize");
        if let Err(e) = std::fs::write(path, json) {
            bad(format!("{}: cannot be written: {e}", path.display()));
        }
    }
    let mut differs = false;
    for (port, out, expected) in &checks {
        let got = read_capture(out).unwrap_or_else(|e| bad(format!("port {port:?} output: {e}")));
        match first_difference(expected, &got) {
            None => println!("{port}: {} frames, as expected", got.len()),
            Some(d) => {
                differs = true;
                println!("{port}: {d}");
            }
        }
    }
    std::process::exit(i32::from(differs));
}
