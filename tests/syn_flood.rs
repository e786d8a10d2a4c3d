//! A SYN flood at ten times the connection table's capacity (spoofed sources, pcap replay at
//! full speed) with 100 legitimate clients among it, each completing its handshake 50 flood
//! packets after its SYN: how many get their request through, with the defense (a half-open
//! connection gives its place to a new one when the table is full) and without it.

use std::net::Ipv4Addr;
use std::process::Command;

use rvs_traffic::{self as traffic, tcp_v4, with_macs, GATEWAY_MAC, TCP_ACK, TCP_PSH, TCP_SYN};

const LAN_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xc0];
const RS_MAC: [u8; 6] = [0x02, 0x11, 192, 168, 1, 5];
const CAPACITY: usize = 1024;
const CLIENTS: u32 = 100;

fn client(i: u32) -> Ipv4Addr {
    Ipv4Addr::new(198, 51, 100, 1 + i as u8)
}

/// The replay: flood SYNs, a legitimate SYN every 100 of them, its ACK with a request 50 later.
fn frames() -> Vec<Vec<u8>> {
    let vip = Ipv4Addr::new(10, 0, 0, 101);
    let mut rng = traffic::Rng::new(7);
    let mut out = Vec::new();
    let mut waiting: Vec<(usize, u32)> = Vec::new();
    let flood = CAPACITY * 10;
    for n in 0..flood + 100 {
        if n % 100 == 0 && (n / 100) < CLIENTS as usize {
            let i = (n / 100) as u32;
            out.push(with_macs(
                tcp_v4(client(i), vip, 40000, 80, TCP_SYN, b""),
                GATEWAY_MAC,
                LAN_MAC,
            ));
            waiting.push((n + 50, i));
        }
        if let Some(k) = waiting.iter().position(|&(at, _)| at == n) {
            let (_, i) = waiting.remove(k);
            let req = format!("GET /{i}");
            out.push(with_macs(
                tcp_v4(client(i), vip, 40000, 80, TCP_ACK | TCP_PSH, req.as_bytes()),
                GATEWAY_MAC,
                LAN_MAC,
            ));
        }
        if n < flood {
            let src = Ipv4Addr::from(0x0a00_0000 | (rng.below(1 << 24) as u32));
            let sport = 1024 + rng.below(60000) as u16;
            out.push(with_macs(
                tcp_v4(src, vip, sport, 80, TCP_SYN, b""),
                GATEWAY_MAC,
                LAN_MAC,
            ));
        }
    }
    out
}

/// Replays the flood; how many legitimate requests reached the real server, and the report.
fn replay(evict: bool, dir: &std::path::Path) -> (u32, String) {
    let tag = if evict { "e" } else { "n" };
    let config = format!(
        r#"
[dataplane]
workers = [1]
conn_capacity = {CAPACITY}
evict_half_open = {evict}
[eal]
memory = "no-huge"
[control]
socket = "{d}/{tag}.sock"
[[port]]
name = "lan"
device = "net_pcap_sf{tag}{pid},rx_pcap={d}/in.pcap,tx_pcap={d}/out-{tag}.pcap"
addresses = ["192.168.1.1/24"]
gateway = "192.168.1.254"
mac = "02:00:00:00:00:c0"
neighbors = [{{ ip = "192.168.1.5", mac = "02:11:c0:a8:01:05" }}, {{ ip = "192.168.1.254", mac = "02:00:00:00:00:01" }}]
[[service]]
address = "10.0.0.101:80"
real = [{{ address = "192.168.1.5", method = "dr" }}]
"#,
        d = dir.display(),
        pid = std::process::id()
    );
    let path = dir.join(format!("{tag}.toml"));
    std::fs::write(&path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rvsd"))
        .arg("--config")
        .arg(&path)
        .args(["--exit-idle", "300", "--duration", "60"])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent = traffic::read_pcap(&dir.join(format!("out-{tag}.pcap"))).unwrap();
    let served = sent
        .iter()
        .filter(|f| {
            f[0..6] == RS_MAC && f.len() > 54 && f[26..29] == [198, 51, 100] && f[54..].starts_with(b"GET /")
        })
        .count() as u32;
    (served, report)
}

#[test]
fn legitimate_clients_get_through_a_syn_flood_at_ten_times_the_table() {
    let dir = tempfile::tempdir().unwrap();
    traffic::write_pcap(&dir.path().join("in.pcap"), &frames()).unwrap();
    let (without, _) = replay(false, dir.path());
    let (with, report) = replay(true, dir.path());
    println!(
        "SYN flood of {} at 10x a table of {CAPACITY}: {without}/{CLIENTS} legitimate requests served without the defense, {with}/{CLIENTS} with it\n{report}",
        CAPACITY * 10
    );
    assert!(
        without <= CLIENTS / 5,
        "without the defense the full table refuses them: {without}"
    );
    assert_eq!(with, CLIENTS, "with it every legitimate client gets through");
    assert!(report.contains("half-open evicted "), "{report}");
}
