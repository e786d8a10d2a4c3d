//! The host path with real kernels (root): rvsd in a network namespace of its own on
//! `net_af_packet` ports, each with a kernel twin; a client and a real server in theirs.
//!
//! - the director's own services (an HTTP server bound to its address) and ping, through the
//!   DPDK port and the twin;
//! - the director's own connections out (curl to a real server, the path health checks use);
//! - a `follow-host` VIP that `ip addr add` / `ip addr del` on the twin turns on and off, with
//!   the gratuitous ARP seen by the client;
//! - a flood at the director's address during a replay: the established flow loses nothing and
//!   the excess is counted as `host_path_limited`.
//!
//! The af_packet ports' veths also belong to rvsd's namespace, whose kernel would answer ARP
//! and take IP on them too; strict reverse-path filtering and `arp_ignore = 8` keep it off
//! them, as a NIC bound to DPDK is off the kernel's hands.

mod common;

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use common::netns::{config_head, control, curl, off_kernel, sh, twin_ports, wait_until, Lab, Rvsd};
use rvs_traffic::{self as traffic, tcp_v4, udp_v4, with_macs, GATEWAY_MAC, TCP_ACK, TCP_PSH, TCP_SYN};

fn output(ns: &str, cmd: &str) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "bash", "-c", cmd])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn succeeds(ns: &str, cmd: &str) -> bool {
    Command::new("ip")
        .args(["netns", "exec", ns, "bash", "-c", cmd])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// `ping -c N` from `ns`: the median RTT in milliseconds, or None if any ping failed.
fn ping_median_ms(ns: &str, addr: &str, n: u32) -> Option<f64> {
    let text = output(ns, &format!("ping -n -c {n} -i 0.2 -W 1 {addr}"));
    let mut rtts: Vec<f64> = text
        .lines()
        .filter_map(|l| l.split("time=").nth(1))
        .filter_map(|t| t.split_whitespace().next()?.parse().ok())
        .collect();
    if rtts.len() != n as usize {
        return None;
    }
    rtts.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Some(rtts[rtts.len() / 2])
}

#[test]
fn the_director_is_reachable_and_reaches_out_through_its_twins() {
    let mut lab = Lab::new("hp");
    let p = lab.p.clone();
    let (d, c, s) = (lab.ns("d"), lab.ns("c"), lab.ns("s"));
    let (d_out, _) = lab.veth_between("do", &d, "ce", &c);
    let (d_in, _) = lab.veth_between("di", &d, "se", &s);
    off_kernel(&d, &d_out);
    off_kernel(&d, &d_in);
    sh(&format!(
        "ip netns exec {c} ip addr add 10.74.0.2/24 dev {p}ce; \
         ip netns exec {c} sysctl -qw net.ipv4.conf.{p}ce.arp_accept=1; \
         ip netns exec {s} ip addr add 10.75.0.2/24 dev {p}se; \
         ip netns exec {s} ip route add default via 10.75.0.1"
    ));
    lab.http_server(&s, "10.75.0.2", "server");
    let socket = lab.socket();
    let config = config_head(&socket)
        + &twin_ports(&p, &d_out, "10.74.0.1/24", &d_in, "10.75.0.1/24")
        + r#"
[[service]]
protocol = "tcp"
address = "10.74.0.100:80"
scheduler = "rr"
announce = "follow-host"
real = [{ address = "10.75.0.2:8000", method = "nat" }]
"#;
    let rvsd = Rvsd::start_in(&lab, Some(&d), &config);
    wait_until(Duration::from_secs(20), || {
        output(&d, &format!("ip -4 -o addr show dev {p}to"))
            .contains("10.74.0.1/24")
            .then_some(())
    })
    .expect("the twin appears with the port's address");
    let twin = output(&d, &format!("ip -o link show {p}to"));
    let port_mac = output(&d, &format!("cat /sys/class/net/{d_out}/address"))
        .trim()
        .to_string();
    assert!(
        twin.contains(&port_mac),
        "the twin has the port's MAC {port_mac}: {twin}"
    );
    assert!(twin.contains("mtu 1500") && twin.contains("UP"), "{twin}");

    // 1. A service of the director's own, and ping, through the DPDK port and the twin.
    lab.http_server(&d, "10.74.0.1", "director");
    assert_eq!(curl(&c, "http://10.74.0.1:8000/").as_deref(), Some("director"));
    let rtt_twin = ping_median_ms(&c, "10.74.0.1", 10).expect("ping through the twin");
    let rtt_veth = ping_median_ms(&s, "10.75.0.2", 10).expect("ping on a plain veth");

    // 2. The director's own connection out to a real server (what health checks do).
    assert_eq!(curl(&d, "http://10.75.0.2:8000/").as_deref(), Some("server"));

    // 3. follow-host: silent until the twin holds the VIP.
    assert!(!succeeds(&c, "curl -s --fail --max-time 1 http://10.74.0.100/"));
    sh(&format!("ip netns exec {c} ip neigh flush dev {p}ce"));
    let added = Instant::now();
    sh(&format!("ip netns exec {d} ip addr add 10.74.0.100/32 dev {p}to"));
    let seen = wait_until(Duration::from_secs(3), || {
        output(&c, "ip neigh show 10.74.0.100")
            .contains(&port_mac)
            .then(|| added.elapsed())
    })
    .expect("the client learns the VIP from a gratuitous ARP");
    assert!(
        seen < Duration::from_secs(1),
        "announced within 1 s (took {seen:?})"
    );
    assert_eq!(curl(&c, "http://10.74.0.100/").as_deref(), Some("server"));
    sh(&format!("ip netns exec {d} ip addr del 10.74.0.100/32 dev {p}to"));
    let gone = wait_until(Duration::from_secs(5), || {
        (!succeeds(&c, "curl -s --fail --max-time 1 http://10.74.0.100/")).then_some(())
    });
    assert!(gone.is_some(), "the VIP stops answering when the twin lets it go");

    let status = control(&socket, r#"{"id":1,"op":"status"}"#);
    let h = &status["result"]["host_path"];
    assert_eq!(
        h["twins"],
        serde_json::json!([format!("{p}to"), format!("{p}ti")]),
        "{status}"
    );
    for k in ["to_host", "up", "down"] {
        assert!(h[k].as_u64().unwrap_or(0) > 0, "{k} counted: {status}");
    }
    let report = rvsd.stop();
    println!(
        "host path: ping RTT median {rtt_twin:.3} ms through the twin, {rtt_veth:.3} ms on a plain veth; \
         VIP announced {seen:?} after ip addr add\n{report}"
    );
    assert!(
        report.contains(&format!("host path ({p}to, {p}ti): to host ")),
        "{report}"
    );
    let line = report.lines().find(|l| l.starts_with("mbufs in use")).unwrap();
    let n: Vec<&str> = line
        .split_whitespace()
        .filter(|w| w.parse::<u64>().is_ok())
        .collect();
    assert_eq!(n[0], n[1], "no mbuf leaked: {line}");
}

#[test]
fn a_flood_at_the_director_is_limited_and_costs_the_flows_nothing() {
    let mut lab = Lab::new("hf");
    let p = lab.p.clone();
    let d = lab.ns("d");
    let dir = tempfile::tempdir().unwrap();
    let lan_mac = [0x02, 0, 0, 0, 0, 0xc0];
    let rs_mac = [0x02, 0x11, 192, 168, 1, 5];
    let (client, vip, director) = (
        Ipv4Addr::new(198, 51, 100, 7),
        Ipv4Addr::new(10, 0, 0, 101),
        Ipv4Addr::new(192, 168, 1, 1),
    );
    // One established DR flow: a SYN, then a data segment after every 50 flood packets.
    let mut frames = vec![with_macs(
        tcp_v4(client, vip, 40000, 80, TCP_SYN, b""),
        GATEWAY_MAC,
        lan_mac,
    )];
    let mut flow = 1;
    for i in 0..100_000u32 {
        let src = Ipv4Addr::from(0xc633_6400 + (i % 200) + 10);
        frames.push(with_macs(
            udp_v4(src, director, 1000 + (i % 5000) as u16, 9, b"flood"),
            GATEWAY_MAC,
            lan_mac,
        ));
        if i % 50 == 49 {
            let data = format!("segment {flow}");
            frames.push(with_macs(
                tcp_v4(client, vip, 40000, 80, TCP_ACK | TCP_PSH, data.as_bytes()),
                GATEWAY_MAC,
                lan_mac,
            ));
            flow += 1;
        }
    }
    let (inp, out) = (dir.path().join("in.pcap"), dir.path().join("out.pcap"));
    traffic::write_pcap(&inp, &frames).unwrap();
    let sock = dir.path().join("rvs.sock").display().to_string();
    let config = config_head(&sock)
        + &format!(
            r#"
[[port]]
name = "lan"
device = "net_pcap_{p}l,rx_pcap={inp},tx_pcap={out}"
addresses = ["192.168.1.1/24"]
gateway = "192.168.1.254"
mac = "02:00:00:00:00:c0"
neighbors = [{{ ip = "192.168.1.5", mac = "02:11:c0:a8:01:05" }}, {{ ip = "192.168.1.254", mac = "02:00:00:00:00:01" }}]
host_interface = "{p}tw"
[host_path]
rate = 10000
burst = 1000
[[service]]
protocol = "tcp"
address = "10.0.0.101:80"
real = [{{ address = "192.168.1.5", method = "dr" }}]
"#,
            inp = inp.display(),
            out = out.display(),
        );
    let path = dir.path().join("rvs.toml");
    std::fs::write(&path, config).unwrap();
    let run = Command::new("ip")
        .args(["netns", "exec", &d, env!("CARGO_BIN_EXE_rvsd"), "--config"])
        .arg(&path)
        .args(["--exit-idle", "500", "--duration", "60"])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    println!("{report}");
    let sent = traffic::read_pcap(&out).unwrap();
    let to_rs: Vec<&Vec<u8>> = sent
        .iter()
        .filter(|f| f[0..6] == rs_mac && f.len() > 37 && f[30..34] == vip.octets())
        .collect();
    assert_eq!(
        to_rs.len(),
        flow as usize,
        "every packet of the established flow is forwarded"
    );
    for (k, f) in to_rs.iter().enumerate().skip(1) {
        assert!(
            f.ends_with(format!("segment {k}").as_bytes()),
            "in order and intact: {k}"
        );
    }
    let line = report
        .lines()
        .find(|l| l.starts_with("host path"))
        .expect(&report);
    let num = |key: &str| -> u64 {
        let at = line.find(key).unwrap_or_else(|| panic!("{key} in {line}")) + key.len();
        line[at..]
            .split_whitespace()
            .next()
            .unwrap()
            .trim_end_matches(|c: char| !c.is_ascii_digit())
            .parse()
            .unwrap()
    };
    assert_eq!(num("to host "), 100_000, "{line}");
    let limited = num("limited ");
    assert!(limited > 50_000, "most of the flood is held back: {line}");
    assert_eq!(
        num(") limited ") + num(" up ") + num("(failed ") + num("ring full "),
        100_000,
        "every packet for the host is accounted for: {line}"
    );
    assert!(
        report.contains(&format!("host_path_limited {limited}")),
        "{report}"
    );
}

/// Frames an interface of namespace `ns` has received and sent (/proc/net/dev is per
/// namespace).
fn if_packets(ns: &str, dev: &str) -> (u64, u64) {
    let text = output(ns, "cat /proc/net/dev");
    let fields: Vec<u64> = text
        .lines()
        .find_map(|l| {
            l.trim_start()
                .strip_prefix(&format!("{dev}:"))
                .map(str::to_string)
        })
        .unwrap_or_else(|| panic!("{dev} in {ns}: {text}"))
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (fields[1], fields[9])
}

/// A UDP sender in `ns`: as many 18-byte datagrams to `dst` port 9 as Python sends in `secs`.
fn udp_blast(ns: &str, dst: &str, secs: f64) {
    let script = format!(
        "import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nend=time.time()+{secs}\n\
         while time.time()<end:\n    for _ in range(500):\n        s.sendto(b'x'*18,('{dst}',9))\n"
    );
    assert!(succeeds(ns, &format!("python3 -c \"{script}\"")));
}

/// Opt-in (`cargo test --release --test host_path -- --ignored --nocapture`): packets per
/// second up (client -> port -> twin) and down (twin -> port -> client) with the rate limit
/// out of the way, beside the same sender over a plain veth pair.
#[test]
#[ignore]
fn host_path_throughput() {
    let mut lab = Lab::new("ht");
    let p = lab.p.clone();
    let (d, c, v) = (lab.ns("d"), lab.ns("c"), lab.ns("v"));
    let (d_out, _) = lab.veth_between("do", &d, "ce", &c);
    lab.veth_between("vc", &c, "vv", &v);
    off_kernel(&d, &d_out);
    sh(&format!(
        "ip netns exec {c} ip addr add 10.76.0.2/24 dev {p}ce; \
         ip netns exec {c} ip addr add 10.77.0.2/24 dev {p}vc; \
         ip netns exec {v} ip addr add 10.77.0.1/24 dev {p}vv"
    ));
    let config = config_head(&lab.socket())
        + &format!(
            r#"
[[port]]
name = "outside"
device = "net_af_packet_{p}o,iface={d_out}"
addresses = ["10.76.0.1/24"]
host_interface = "{p}to"
[host_path]
rate = 100000000
burst = 1000000
"#
        );
    let rvsd = Rvsd::start_in(&lab, Some(&d), &config);
    wait_until(Duration::from_secs(20), || {
        ping_median_ms(&c, "10.76.0.1", 1).map(|_| ())
    })
    .expect("the director answers through its twin");
    let secs = 2.0;
    let measure = |from: &str, to: &str, dst: &str, rx_ns: &str, rx_dev: &str| {
        let (before, _) = if_packets(rx_ns, rx_dev);
        let start = Instant::now();
        udp_blast(from, dst, secs);
        std::thread::sleep(Duration::from_millis(200));
        let (after, _) = if_packets(rx_ns, rx_dev);
        let pps = (after - before) as f64 / start.elapsed().as_secs_f64().min(secs + 0.2).max(secs);
        println!("{from} -> {to}: {pps:.0} packets/s received");
        pps
    };
    let up = measure(&c, "director (up the twin)", "10.76.0.1", &d, &format!("{p}to"));
    let down = measure(&d, "client (down the twin)", "10.76.0.2", &c, &format!("{p}ce"));
    let veth = measure(&c, "plain veth peer", "10.77.0.1", &v, &format!("{p}vv"));
    let rtt = ping_median_ms(&c, "10.76.0.1", 20);
    let rtt_veth = ping_median_ms(&c, "10.77.0.1", 20);
    let report = rvsd.stop();
    println!(
        "host path throughput: up {up:.0} pps, down {down:.0} pps, plain veth {veth:.0} pps (same sender); \
         ping median {rtt:?} ms via the twin, {rtt_veth:?} ms on the veth\n{report}"
    );
    assert!(up > 0.0 && down > 0.0);
}
