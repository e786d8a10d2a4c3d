//! Opt-in soak (`RVS_SOAK_MINUTES=10 cargo test --release --test soak -- --ignored --nocapture`,
//! 1 minute by default): rvsd replays 1,000 established NAT flows in a loop while a client
//! makes a live change every 100 ms (weights, services and servers added and removed), then
//! reports what should stay flat: mbufs in use, the daemon's resident memory, and drops.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[test]
#[ignore]
fn soak_with_a_live_change_every_100_ms() {
    let minutes: f64 = std::env::var("RVS_SOAK_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(1.0);
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("flows.pcap");
    let flows = common::replay::established_1k();
    rvs_traffic::write_pcap(&pcap, &flows).unwrap();
    let sock = dir.path().join("ctl/rvs.sock");
    let config = common::replay::looped_replay(
        &format!("soak{}", std::process::id()),
        sock.to_str().unwrap(),
        &pcap,
    );
    std::fs::write(dir.path().join("rvs.toml"), config).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_rvsd"))
        .arg("--config")
        .arg(dir.path().join("rvs.toml"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let start = Instant::now();
    while UnixStream::connect(&sock).is_err() {
        assert!(start.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(50));
    }
    let s = UnixStream::connect(&sock).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    let mut send = |line: String| {
        writeln!(w, "{line}").unwrap();
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        assert!(l.contains("\"ok\":true"), "{line}: {l}");
    };
    std::thread::sleep(Duration::from_secs(2));
    let rss_start = rss_kb(pid);
    let svc = r#""service":{"protocol":"tcp","address":"10.0.0.100:80"}"#;
    let end = Instant::now() + Duration::from_secs_f64(minutes * 60.0);
    let mut k = 0u64;
    while Instant::now() < end {
        let line = match k % 4 {
            0 => format!(
                r#"{{"id":{k},"op":"edit_real",{svc},"real":{{"address":"192.168.1.{}:8080","method":"nat","weight":{}}}}}"#,
                2 + k % 3,
                k % 5
            ),
            1 => format!(
                r#"{{"id":{k},"op":"add_service","service":{{"address":"10.9.0.1:80","real":[{{"address":"192.168.1.9:80","method":"nat"}}]}}}}"#
            ),
            2 => format!(
                r#"{{"id":{k},"op":"delete_service","service":{{"protocol":"tcp","address":"10.9.0.1:80"}}}}"#
            ),
            _ => format!(r#"{{"id":{k},"op":"list"}}"#),
        };
        send(line);
        k += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let rss_end = rss_kb(pid);
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    let mbufs = report
        .lines()
        .find(|l| l.starts_with("mbufs in use"))
        .unwrap_or("")
        .to_string();
    let drops = report
        .lines()
        .find(|l| l.starts_with("drops"))
        .unwrap_or("")
        .to_string();
    let workers = report
        .lines()
        .find(|l| l.starts_with("workers:"))
        .unwrap_or("")
        .to_string();
    println!(
        "soak: {minutes} min, {k} live changes; RSS {rss_start} kB -> {rss_end} kB; {mbufs}; {drops}\n{workers}"
    );
    let n: Vec<u64> = mbufs.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    // DPDK 22.11's pcap PMD keeps the copy of the capture it loops over (infinite_rx) in
    // buffers of the pool and does not give them back when the port closes: those, and no
    // more, may remain.
    let preload = flows.len() as u64;
    assert!(
        n.len() == 2 && n[1] <= n[0] + preload,
        "mbufs back to where they started (but for the PMD's {preload}): {mbufs}"
    );
    assert!(
        rss_end <= rss_start + rss_start / 10 + 4096,
        "RSS flat: {rss_start} -> {rss_end} kB"
    );
}
