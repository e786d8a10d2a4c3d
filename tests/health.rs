//! Health checks with real kernels (root): rvsd in its own namespace with twins, real servers
//! (python3 http.server, a small agent) on a bridge behind the inside port, a client outside.
//! One rvsd serves four services, one scenario each:
//!
//! - A, http checks: a server's process is killed during a request loop; it is quiesced
//!   within about fall x interval + timeout, then 200 requests all succeed; restarted, it takes
//!   traffic again within about rise x interval;
//! - B, an agent answering 50%, then drain, then up: the effective weight follows, and wrr's
//!   share of new connections with it;
//! - C, a quorum with hysteresis: two of three servers down -> the sorry server answers; one
//!   back is not enough (hysteresis); both back -> the servers again;
//! - D, an exec checker whose exit code sets the weight (keepalived's misc_dynamic).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::netns::{config_head, control, curl, off_kernel, sh, twin_ports, wait_until, Lab, Rvsd};

/// The health view of real server `real` of service `vip` (`VIP:port`).
fn health_of(socket: &str, vip: &str, real: &str) -> serde_json::Value {
    let v = control(socket, r#"{"id":1,"op":"health"}"#);
    let svc = v["result"]["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == vip)
        .unwrap_or_else(|| panic!("{vip} in {v}"))
        .clone();
    if real.is_empty() {
        return svc;
    }
    svc["reals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == real)
        .unwrap_or_else(|| panic!("{real} in {svc}"))
        .clone()
}

/// `n` requests through `url`; answers by server name, and failures.
fn requests(ns: &str, url: &str, n: usize) -> (BTreeMap<String, u32>, u32) {
    let mut by = BTreeMap::new();
    let mut failed = 0;
    for _ in 0..n {
        match curl(ns, url) {
            Some(b) => *by.entry(b).or_insert(0) += 1,
            None => failed += 1,
        }
    }
    (by, failed)
}

const AGENT: &str = r#"
import socketserver, sys
class H(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.sendall(open(sys.argv[1]).read().encode())
socketserver.TCPServer.allow_reuse_address = True
socketserver.TCPServer((sys.argv[2], 9999), H).serve_forever()
"#;

#[test]
fn health_checks_quiesce_restore_scale_and_fall_back_to_the_sorry_server() {
    let mut lab = Lab::new("hc");
    let p = lab.p.clone();
    let (d, c) = (lab.ns("d"), lab.ns("c"));
    let (d_out, _) = lab.veth_between("do", &d, "ce", &c);
    let (bridge_end, d_in) = lab.veth("ib", "di", Some(&d));
    off_kernel(&d, &d_out);
    off_kernel(&d, &d_in);
    sh(&format!(
        "ip netns exec {c} ip addr add 10.80.0.2/24 dev {p}ce; ip netns exec {c} ip route add default via 10.80.0.1"
    ));
    let mut bridged = vec![bridge_end];
    let mut servers = Vec::new();
    for k in 1..=4 {
        let s = lab.ns(&format!("s{k}"));
        let (br, _) = lab.veth(&format!("s{k}b"), &format!("s{k}"), Some(&s));
        sh(&format!(
            "ip netns exec {s} ip addr add 10.81.0.1{k}/24 dev {p}s{k}; ip netns exec {s} ip route add default via 10.81.0.1"
        ));
        bridged.push(br);
        servers.push(s);
    }
    let refs: Vec<&str> = bridged.iter().map(String::as_str).collect();
    lab.bridge("br", &refs);
    let mut pids = BTreeMap::new();
    for (k, s) in servers.iter().enumerate() {
        let addr = format!("10.81.0.1{}", k + 1);
        pids.insert(
            (k + 1, 8000),
            lab.http_server_on(s, &addr, 8000, &format!("s{}", k + 1)),
        );
        if k < 3 {
            pids.insert(
                (k + 1, 8001),
                lab.http_server_on(s, &addr, 8001, &format!("s{}-8001", k + 1)),
            );
        }
        if k == 1 || k == 2 {
            // Service B has servers of its own: the client reaching one server through two
            // VIPs could reuse a port whose connection the server still holds in TIME_WAIT.
            lab.http_server_on(s, &addr, 8002, &format!("s{}-8002", k + 1));
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let agent_file = tmp.path().join("agent");
    std::fs::write(&agent_file, "up\n").unwrap();
    let agent_py = tmp.path().join("agent.py");
    std::fs::write(&agent_py, AGENT).unwrap();
    lab.spawn_in(
        &servers[1],
        &[
            "python3",
            agent_py.to_str().unwrap(),
            agent_file.to_str().unwrap(),
            "10.81.0.12",
        ],
    );
    let exit_file = tmp.path().join("exit");
    std::fs::write(&exit_file, "7").unwrap();
    let script = tmp.path().join("check.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nexit $(cat {})\n", exit_file.display()),
    )
    .unwrap();
    sh(&format!("chmod +x {}", script.display()));

    let socket = lab.socket();
    let config = config_head(&socket)
        + &twin_ports(&p, &d_out, "10.80.0.1/24", &d_in, "10.81.0.1/24")
        + &format!(
            r#"
[[service]]
address = "10.80.0.100:80"
scheduler = "rr"
check = {{ type = "http", interval = "1s", timeout = "500ms", fall = 2, rise = 2, path = "/", status = [200] }}
real = [
    {{ address = "10.81.0.11:8000", method = "nat" }},
    {{ address = "10.81.0.12:8000", method = "nat" }},
    {{ address = "10.81.0.13:8000", method = "nat" }},
]

[[service]]
address = "10.80.0.101:80"
scheduler = "wrr"
real = [
    {{ address = "10.81.0.12:8002", method = "nat", weight = 10, check = {{ type = "agent", port = 9999, interval = "300ms", timeout = "200ms", rise = 1, fall = 1 }} }},
    {{ address = "10.81.0.13:8002", method = "nat", weight = 10 }},
]

[[service]]
address = "10.80.0.102:80"
scheduler = "rr"
quorum = 4
hysteresis = 1
sorry_server = "10.81.0.14:8000"
check = {{ type = "tcp", interval = "500ms", timeout = "300ms", fall = 1, rise = 1 }}
real = [
    {{ address = "10.81.0.11:8001", method = "nat", weight = 2 }},
    {{ address = "10.81.0.12:8001", method = "nat", weight = 2 }},
    {{ address = "10.81.0.13:8001", method = "nat", weight = 2 }},
]

[[service]]
address = "10.80.0.103:80"
scheduler = "rr"
real = [
    {{ address = "10.81.0.13:8000", method = "nat", weight = 9, check = {{ type = "exec", command = ["{script}"], interval = "300ms", timeout = "250ms", rise = 1, fall = 1 }} }},
]
"#,
            script = script.display()
        );
    let rvsd = Rvsd::start_in(&lab, Some(&d), &config);
    wait_until(Duration::from_secs(20), || curl(&c, "http://10.80.0.100/")).expect("the VIP answers");

    // --- A: a dead server leaves the rotation; back, it returns ---
    let (_, failed) = requests(&c, "http://10.80.0.100/", 30);
    assert_eq!(failed, 0);
    let killed = Instant::now();
    sh(&format!("kill -9 {}", pids[&(1, 8000)]));
    let mut failed_during = 0;
    let detected = loop {
        if curl(&c, "http://10.80.0.100/").is_none() {
            failed_during += 1;
        }
        if health_of(&socket, "10.80.0.100:80", "10.81.0.11:8000")["state"] == "down" {
            break killed.elapsed();
        }
        assert!(killed.elapsed() < Duration::from_secs(10), "never quiesced");
    };
    let r = health_of(&socket, "10.80.0.100:80", "10.81.0.11:8000");
    assert_eq!(r["effective_weight"], 0, "{r}");
    assert!(r["last"].as_str().unwrap().starts_with("connect refused"), "{r}");
    let (by, failed) = requests(&c, "http://10.80.0.100/", 200);
    assert_eq!(failed, 0, "after detection every request succeeds: {by:?}");
    assert!(!by.contains_key("s1"), "{by:?}");
    let restarted = Instant::now();
    lab.http_server_on(&servers[0], "10.81.0.11", 8000, "s1");
    let serving = restarted.elapsed();
    let recovered = wait_until(Duration::from_secs(10), || {
        (health_of(&socket, "10.80.0.100:80", "10.81.0.11:8000")["state"] == "up")
            .then(|| restarted.elapsed())
    })
    .expect("the server comes back");
    // ... and the workers run with it again (its weight back in the published table) before
    // the next requests are counted.
    wait_until(Duration::from_secs(10), || {
        let ln = std::process::Command::new(common::rvsadm_bin())
            .args(["--socket", &socket, "-Ln"])
            .output()
            .ok()?;
        String::from_utf8_lossy(&ln.stdout)
            .lines()
            .find(|l| l.contains("10.81.0.11:8000"))
            .and_then(|l| l.split_whitespace().nth(3))
            .filter(|w| *w != "0")
            .map(|_| ())
    })
    .expect("the restored server's weight is published");
    let (by, failed) = requests(&c, "http://10.80.0.100/", 30);
    assert_eq!(failed, 0);
    // Exactly rr over three: a client port reused within TIME_WAIT is a new connection
    // scheduled again (IPVS's conn_reuse_mode), not a request sent to the old server.
    assert_eq!(by.get("s1"), Some(&10), "rr over three again: {by:?}");
    let listing = std::process::Command::new(common::rvsadm_bin())
        .args(["--socket", &socket, "-L", "--health"])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout).to_string();
    assert!(listing.contains("10.81.0.11:8000"), "{listing}");

    // --- B: the agent scales the weight ---
    let weight = |real: &str| {
        health_of(&socket, "10.80.0.101:80", real)["effective_weight"]
            .as_u64()
            .unwrap()
    };
    let share = |n: usize| requests(&c, "http://10.80.0.101/", n);
    std::fs::write(&agent_file, "50%\n").unwrap();
    wait_until(Duration::from_secs(5), || {
        (weight("10.81.0.12:8002") == 5).then_some(())
    })
    .expect("50% of weight 10");
    let (by50, failed50) = share(30);
    std::fs::write(&agent_file, "drain\n").unwrap();
    wait_until(Duration::from_secs(5), || {
        (weight("10.81.0.12:8002") == 0).then_some(())
    })
    .expect("drained");
    let (by_drain, failed_drain) = share(15);
    std::fs::write(&agent_file, "up\n").unwrap();
    wait_until(Duration::from_secs(5), || {
        (weight("10.81.0.12:8002") == 5).then_some(())
    })
    .expect("back from the drain at its last percentage");
    assert_eq!((failed50, failed_drain), (0, 0));
    assert_eq!(by50.get("s2-8002"), Some(&10), "wrr 5:10 over 30: {by50:?}");
    assert_eq!(by50.get("s3-8002"), Some(&20), "{by50:?}");
    assert_eq!(by_drain.get("s2-8002"), None, "drained: {by_drain:?}");

    // --- C: quorum lost -> the sorry server; hysteresis; regained ---
    sh(&format!("kill -9 {} {}", pids[&(1, 8001)], pids[&(2, 8001)]));
    let lost = wait_until(Duration::from_secs(10), || {
        (!health_of(&socket, "10.80.0.102:80", "")["quorum_up"]
            .as_bool()
            .unwrap())
        .then_some(())
    });
    assert!(lost.is_some(), "quorum lost with two of three down");
    let (by, failed) = requests(&c, "http://10.80.0.102/", 10);
    assert_eq!(
        (by.get("s4"), failed),
        (Some(&10), 0),
        "the sorry server answers: {by:?}"
    );
    lab.http_server_on(&servers[0], "10.81.0.11", 8001, "s1-8001");
    wait_until(Duration::from_secs(10), || {
        (health_of(&socket, "10.80.0.102:80", "10.81.0.11:8001")["state"] == "up").then_some(())
    })
    .expect("s1:8001 back");
    std::thread::sleep(Duration::from_millis(600));
    let q = health_of(&socket, "10.80.0.102:80", "");
    assert_eq!(
        (q["quorum_up"].as_bool(), q["live_weight"].as_u64()),
        (Some(false), Some(4)),
        "4 < 4 + 1: {q}"
    );
    lab.http_server_on(&servers[1], "10.81.0.12", 8001, "s2-8001");
    wait_until(Duration::from_secs(10), || {
        health_of(&socket, "10.80.0.102:80", "")["quorum_up"]
            .as_bool()
            .unwrap()
            .then_some(())
    })
    .expect("quorum regained with all three");
    let (by, failed) = requests(&c, "http://10.80.0.102/", 9);
    assert_eq!(failed, 0);
    assert!(
        !by.contains_key("s4") && by.len() == 3,
        "the servers again: {by:?}"
    );

    // --- D: exec exit 7 -> weight 5; exit 0 -> the configured 9 ---
    let exec_weight = || health_of(&socket, "10.80.0.103:80", "10.81.0.13:8000")["effective_weight"].as_u64();
    wait_until(Duration::from_secs(5), || {
        (exec_weight() == Some(5)).then_some(())
    })
    .expect("exit 7: weight 5");
    std::fs::write(&exit_file, "0").unwrap();
    wait_until(Duration::from_secs(5), || {
        (exec_weight() == Some(9)).then_some(())
    })
    .expect("exit 0: weight 9");
    let ln = std::process::Command::new(common::rvsadm_bin())
        .args(["--socket", &socket, "-Ln", "-t", "10.80.0.100:80"])
        .output()
        .unwrap();
    let ln = String::from_utf8_lossy(&ln.stdout).to_string();
    assert!(ln.contains("10.81.0.11:8000"), "{ln}");

    let report = rvsd.stop();
    println!(
        "health: detected a dead server in {detected:?} ({failed_during} requests failed meanwhile), \
         recovered {recovered:?} after restart (serving after {serving:?})\nagent 50%: {by50:?}, drained: {by_drain:?}\n{listing}\n{report}"
    );
}

/// Opt-in (`cargo test --release --test health -- --ignored --nocapture`): 1,000 real servers
/// checked every second (tcp, one cheap listener holding all their addresses) while a pcap
/// replay of 1,000 established NAT flows runs, against the same replay without the checks:
/// the forwarding rate of each run, and how many servers the checks found up.
#[test]
#[ignore]
fn forwarding_with_a_thousand_checked_servers() {
    let mut lab = Lab::new("hk");
    let p = lab.p.clone();
    let (d, srv) = (lab.ns("d"), lab.ns("srv"));
    let (d_chk, _) = lab.veth_between("dc", &d, "sv", &srv);
    off_kernel(&d, &d_chk);
    let reals: Vec<String> = (0..1000)
        .map(|i| format!("10.82.{}.{}", i / 250 + 1, i % 250 + 1))
        .collect();
    let batch: String = reals
        .iter()
        .map(|a| format!("addr add {a}/16 dev {p}sv\n"))
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("addrs"), batch).unwrap();
    sh(&format!(
        "ip netns exec {srv} ip -batch {}",
        tmp.path().join("addrs").display()
    ));
    lab.spawn_in(
        &srv,
        &[
            "python3",
            "-c",
            "import asyncio\nasync def h(r, w):\n    w.close()\nasync def main():\n    s = await asyncio.start_server(h, '0.0.0.0', 80, backlog=4096)\n    await s.serve_forever()\nasyncio.run(main())",
        ],
    );
    let pcap = tmp.path().join("flows.pcap");
    rvs_traffic::write_pcap(&pcap, &common::replay::established_1k()).unwrap();
    let real_list: String = reals
        .iter()
        .map(|a| format!("    {{ address = \"{a}:80\", method = \"nat\" }},\n"))
        .collect();
    let run = |checks: bool, tag: &str| -> (f64, serde_json::Value) {
        let socket = format!("{}/{tag}.sock", lab.ctl_dir());
        let check = if checks {
            r#"check = { type = "tcp", interval = "1s", timeout = "500ms" }"#
        } else {
            ""
        };
        let config = common::replay::looped_replay(&format!("{p}{tag}"), &socket, &pcap)
            + &format!(
                r#"
[[port]]
name = "checked"
device = "net_af_packet_{p}{tag}c,iface={d_chk}"
addresses = ["10.82.0.1/16"]
host_interface = "{p}{tag}t"
[host_path]
rate = 100000
burst = 10000
[[service]]
address = "10.0.0.200:80"
scheduler = "rr"
{check}
real = [
{real_list}]
"#
            );
        let rvsd = Rvsd::start_in(&lab, Some(&d), &config);
        std::thread::sleep(Duration::from_secs(12));
        let health = control(&socket, r#"{"id":1,"op":"health"}"#);
        let report = rvsd.stop();
        let num = |line: &str, key: &str| -> f64 {
            let at = line.find(key).unwrap() + key.len();
            line[at..].split_whitespace().next().unwrap().parse().unwrap()
        };
        let workers = report.lines().find(|l| l.starts_with("workers:")).unwrap();
        let ran = report.lines().find(|l| l.starts_with("memory:")).unwrap();
        let pps = num(workers, "forwarded ") / num(ran, "ran ");
        println!(
            "checks {checks}: {pps:.0} packets forwarded per second\n{}",
            report.lines().take(8).collect::<Vec<_>>().join("\n")
        );
        (pps, health)
    };
    let (without, _) = run(false, "n");
    let (with, health) = run(true, "y");
    let reals = health["result"]["services"][1]["reals"].as_array().unwrap();
    let up = reals.iter().filter(|r| r["state"] == "up").count();
    let probed = reals
        .iter()
        .filter(|r| r["successes"].as_u64().unwrap_or(0) > 0)
        .count();
    println!(
        "1,000 checked servers: forwarding {with:.0} pps with the checks, {without:.0} without ({:.1}%); \
         {up} up, {probed} answered a probe",
        with / without * 100.0
    );
    assert_eq!(up, 1000);
}
