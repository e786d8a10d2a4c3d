//! rvsd, the rvs data-plane daemon.
//!
//! At this stage it runs the demo: a generated traffic pcap replayed through a real DPDK port
//! (a `net_pcap` vdev) by a pinned worker, and written back out. The config-driven load balancer
//! (`--config`, `--check`) replaces the pass-through as the data path lands.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;

use rvs::ealenv::{self, Memory};
use rvs::passthrough::{self, Until};
use rvs::traffic::{self, DemoTraffic};

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
    /// Run the demo: generate traffic, replay it through a net_pcap port, report what moved.
    #[arg(long)]
    demo: bool,
    /// Directory for the demo's input and output pcaps.
    #[arg(long, default_value = "out")]
    out: PathBuf,
    /// Frames the demo generates.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    packets: u32,
    /// CPU the worker is pinned to (default: the last CPU).
    #[arg(long)]
    cpu: Option<usize>,
    /// Use ordinary pages even when hugepages are available.
    #[arg(long)]
    no_huge: bool,
}

fn main() {
    let args = Args::parse();
    let result = if args.version {
        println!("{}, running {}", rvs::version_line("rvsd"), dpdk::version());
        Ok(())
    } else if args.demo {
        demo(&args)
    } else {
        eprintln!("rvsd: nothing to do. Try `rvsd --demo` (replays generated traffic through DPDK) or `rvsd --help`.");
        std::process::exit(2);
    };
    if let Err(e) = result {
        eprintln!("rvsd: {e:#}");
        std::process::exit(1);
    }
}

fn demo(args: &Args) -> Result<()> {
    println!("{}, running {}", rvs::version_line("rvsd"), dpdk::version());
    let cpu = args.cpu.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get() - 1)
            .unwrap_or(0)
    });

    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let inp = args.out.join("demo-in.pcap");
    let outp = args.out.join("demo-out.pcap");
    let frames = DemoTraffic {
        packets: args.packets,
        ..Default::default()
    }
    .frames();
    let in_bytes: usize = frames.iter().map(Vec::len).sum();
    traffic::write_pcap(&inp, &frames).with_context(|| format!("writing {}", inp.display()))?;
    println!(
        "traffic: {} frames, {} bytes -> {}",
        frames.len(),
        in_bytes,
        inp.display()
    );

    let memory = if args.no_huge {
        Memory::NoHuge
    } else {
        Memory::detect()
    };
    println!("memory:  {}", memory.describe());
    let prefix = format!("rvsd-{}", std::process::id());
    let eal = dpdk::Eal::init(ealenv::eal_args(&prefix, memory, 512, false)).context("EAL init")?;
    ealenv::remove_runtime_dir(&prefix);

    let pool = dpdk::Mempool::new(&eal, "demo_pool", 8191, 256, dpdk::DEFAULT_DATA_ROOM)?;
    let start_in_use = pool.in_use();
    let dev = format!("net_pcap_demo0,rx_pcap={},tx_pcap={}", abs(&inp)?, abs(&outp)?);
    let port = dpdk::Port::open(&eal, &dev, &dpdk::PortConfig::default(), &pool)
        .with_context(|| format!("opening port {dev}"))?;
    port.start()?;
    println!(
        "port:    {} (port {}), mac {}",
        port.name(),
        port.id(),
        mac(port.mac()?)
    );

    let (mut rxq, mut txq) = port.take_queues()?;
    let (mut rx, mut tx) = (rxq.remove(0), txq.remove(0));
    let expected = frames.len() as u64;
    let started = Instant::now();
    let worker = dpdk::spawn_worker(&eal, "rvs-worker0", cpu, move |lcore| {
        static STOP: AtomicBool = AtomicBool::new(false);
        let until = Until {
            limit: Some(expected),
            idle: Duration::from_secs(2),
            stop: &STOP,
        };
        (lcore, passthrough::run(&mut rx, &mut tx, until))
    })
    .with_context(|| format!("starting the worker on CPU {cpu}"))?;
    let (lcore, moved) = worker
        .join()
        .map_err(|_| anyhow::anyhow!("the worker panicked"))?;
    let took = started.elapsed();

    let stats = port.stats()?;
    port.stop()?;
    drop(port); // close: the pcap vdev flushes and closes its output file
    println!(
        "worker:  CPU {cpu}, lcore {lcore}: moved {} frames, {} bytes in {:.1} ms; tx dropped {}",
        moved.tx,
        moved.rx_bytes,
        took.as_secs_f64() * 1e3,
        moved.tx_dropped
    );
    println!(
        "counters: ipackets {} opackets {} ibytes {} obytes {} imissed {} ierrors {} oerrors {} rx_nombuf {}",
        stats.ipackets,
        stats.opackets,
        stats.ibytes,
        stats.obytes,
        stats.imissed,
        stats.ierrors,
        stats.oerrors,
        stats.rx_nombuf
    );
    println!("mbufs in use: {} before, {} after", start_in_use, pool.in_use());

    let out_frames = traffic::read_pcap(&outp).with_context(|| format!("reading {}", outp.display()))?;
    if out_frames != frames {
        bail!(
            "output {} differs from the input: {} frames out, {} in",
            outp.display(),
            out_frames.len(),
            frames.len()
        );
    }
    println!(
        "output:  {} ({} frames, identical to the input)",
        outp.display(),
        out_frames.len()
    );
    Ok(())
}

fn abs(p: &std::path::Path) -> Result<String> {
    let p = std::path::absolute(p)?;
    let s = p.to_str().context("path is not UTF-8")?;
    if s.contains(',') {
        bail!("{s}: a DPDK device string cannot contain a path with a comma");
    }
    Ok(s.to_string())
}

fn mac(m: [u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}
