//! Scale-out with real kernels (root): a router namespace running BIRD with ECMP multipath
//! (L4 hash), three directors (rvsd in their own namespaces, each with BIRD on its twin
//! announcing the VIPs rvs puts there), DR to three real servers with sloppy mh, a client
//! behind the router holding 60 keep-alive streams. A director stopped (SIGTERM), killed
//! (SIGKILL), brought back, and drained: the route follows each time, the router rehashes,
//! and the streams survive because every director picks the same real server.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::ha::{start_streams, KEEPALIVE_SERVER};
use common::netns::{
    config_head, control, curl, off_kernel, rvsadm, sh, wait_for_socket, wait_until, Lab, Rvsd,
};

const VIP: &str = "10.70.10.100";
const STREAMS: usize = 60;

/// The router's next hops for the VIP.
fn next_hops(router: &str) -> usize {
    let out = std::process::Command::new("ip")
        .args(["-n", router, "route", "show", &format!("{VIP}/32")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let n = text.matches("nexthop via").count();
    if n == 0 && text.contains(" via ") {
        1
    } else {
        n
    }
}

fn wait_hops(router: &str, want: usize, limit: Duration) -> Option<f64> {
    let t = Instant::now();
    wait_until(limit, || {
        (next_hops(router) == want).then(|| t.elapsed().as_secs_f64())
    })
}

/// Connections a director made for the VIP service so far (`--stats` Conns).
fn conns_made(socket: &str) -> u64 {
    let v = control(socket, r#"{"id":1,"op":"list"}"#);
    v["result"]["services"][0]["stats"]["conns"].as_u64().unwrap_or(0)
}

fn bird(lab: &mut Lab, ns: &str, name: &str, conf: &str) {
    let dir = std::env::temp_dir().join(format!("{}-bird-{name}", lab.p));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bird.conf");
    std::fs::write(&file, conf).unwrap();
    let (f, s, p) = (
        file.display().to_string(),
        dir.join("bird.ctl").display().to_string(),
        dir.join("bird.pid").display().to_string(),
    );
    lab.spawn_in(ns, &["bird", "-f", "-c", &f, "-s", &s, "-P", &p]);
}

fn director_bird(me: &str, twin: &str) -> String {
    format!(
        r#"router id {me};
protocol device {{ scan time 1; }}
# The VIPs rvs puts on its twin ([routes]), and only those, go to the router.
protocol direct {{ ipv4; interface "{twin}"; }}
protocol bgp up {{
    local {me} as 65001;
    neighbor 10.71.0.1 as 65000;
    hold time 3; keepalive time 1; connect retry time 1; error wait time 1, 3;
    ipv4 {{ import none; export where net ~ [ 10.70.10.0/24{{32,32}} ]; }};
}}
"#
    )
}

const ROUTER_BIRD: &str = r#"router id 10.71.0.1;
protocol device { scan time 1; }
# Equal routes from several directors become one multipath route in the kernel.
protocol kernel { ipv4 { import none; export all; }; merge paths on; }
template bgp director {
    local 10.71.0.1 as 65000;
    hold time 3; keepalive time 1; connect retry time 1; error wait time 1, 3;
    ipv4 { import all; export none; };
}
protocol bgp d1 from director { neighbor 10.71.0.11 as 65001; }
protocol bgp d2 from director { neighbor 10.71.0.12 as 65001; }
protocol bgp d3 from director { neighbor 10.71.0.13 as 65001; }
"#;

#[test]
fn directors_behind_ecmp_keep_every_connection_when_one_leaves_joins_or_drains() {
    let mut lab = Lab::new("ec");
    let p = lab.p.clone();
    let (r, c) = (lab.ns("r"), lab.ns("c"));
    lab.veth_between("rc", &r, "cr", &c);
    sh(&format!(
        "ip netns exec {r} ip addr add 10.70.0.1/24 dev {p}rc; ip netns exec {c} ip addr add 10.70.0.2/24 dev {p}cr; \
         ip netns exec {c} ip route add default via 10.70.0.1; \
         ip netns exec {r} sysctl -qw net.ipv4.ip_forward=1 net.ipv4.fib_multipath_hash_policy=1"
    ));
    let (fr, _) = lab.veth("fr", "rf", Some(&r));
    sh(&format!("ip netns exec {r} ip addr add 10.71.0.1/24 dev {p}rf"));
    let mut fabric = vec![fr];
    let tmp = tempfile::tempdir().unwrap();
    let server_py = tmp.path().join("server.py");
    std::fs::write(&server_py, KEEPALIVE_SERVER).unwrap();
    for k in 1..=3 {
        let s = lab.ns(&format!("s{k}"));
        let (br, _) = lab.veth(&format!("s{k}b"), &format!("s{k}"), Some(&s));
        sh(&format!(
            "ip netns exec {s} ip addr add 10.71.0.2{k}/24 dev {p}s{k}; ip netns exec {s} ip route add default via 10.71.0.1; \
             ip netns exec {s} ip addr add {VIP}/32 dev lo; \
             ip netns exec {s} sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2"
        ));
        fabric.push(br);
        lab.spawn_in(
            &s,
            &["python3", server_py.to_str().unwrap(), &format!("s{k}"), "80"],
        );
    }
    let mut directors = Vec::new();
    for k in 1..=3 {
        let d = lab.ns(&format!("d{k}"));
        let (br, dev) = lab.veth(&format!("d{k}b"), &format!("d{k}"), Some(&d));
        off_kernel(&d, &dev);
        fabric.push(br);
        directors.push((d, dev));
    }
    let refs: Vec<&str> = fabric.iter().map(String::as_str).collect();
    lab.bridge("fb", &refs);
    bird(&mut lab, &r, "r", ROUTER_BIRD);

    let ctl_dir = lab.ctl_dir();
    let config = |k: usize, dev: &str| -> (String, String) {
        let socket = format!("{ctl_dir}/d{k}/rvs.sock");
        let twin = format!("{p}t{k}");
        let text = config_head(&socket).replace("workers = [1]", &format!("workers = [{}]", k % 2))
            + &format!(
                r#"
[[port]]
name = "fabric"
device = "net_af_packet_{p}{k},iface={dev}"
addresses = ["10.71.0.1{k}/24"]
gateway = "10.71.0.1"
host_interface = "{twin}"
[routes]
interface = "{twin}"
linger = "2s"
[[service]]
address = "{VIP}:80"
scheduler = "mh"
sloppy = true
check = {{ type = "tcp", interval = "1s", timeout = "500ms", fall = 2, rise = 1 }}
real = [{{ address = "10.71.0.21:80", method = "dr" }}, {{ address = "10.71.0.22:80", method = "dr" }}, {{ address = "10.71.0.23:80", method = "dr" }}]
"#
            );
        (socket, text)
    };
    let mut rvsd = Vec::new();
    let mut sockets = Vec::new();
    for (k, (d, dev)) in directors.iter().enumerate() {
        let (socket, text) = config(k + 1, dev);
        rvsd.push(Some(Rvsd::start_named(
            &lab,
            Some(d),
            &format!("d{}", k + 1),
            &text,
        )));
        sockets.push(socket);
    }
    for (k, (d, _)) in directors.iter().enumerate() {
        wait_for_socket(&sockets[k]);
        bird(
            &mut lab,
            d,
            &format!("d{}", k + 1),
            &director_bird(&format!("10.71.0.1{}", k + 1), &format!("{p}t{}", k + 1)),
        );
    }
    wait_hops(&r, 3, Duration::from_secs(30))
        .unwrap_or_else(|| panic!("the router holds three next hops for the VIP: {}", next_hops(&r)));
    assert_eq!(
        rvsadm(&sockets[0], &["-L", "--routes"]),
        format!("routes on {p}t1\n  {VIP:<40} announced\n")
    );

    // New connections spread over the directors.
    let before: Vec<u64> = sockets.iter().map(|s| conns_made(s)).collect();
    let mut failed = 0;
    for _ in 0..90 {
        if curl(&c, &format!("http://{VIP}/")).is_none() {
            failed += 1;
        }
    }
    let spread: Vec<u64> = sockets
        .iter()
        .zip(&before)
        .map(|(s, b)| conns_made(s) - b)
        .collect();
    eprintln!("90 new connections: {spread:?} per director, {failed} failed");
    assert_eq!(failed, 0);
    assert!(
        spread.iter().all(|&n| n >= 10),
        "every director takes a share: {spread:?}"
    );

    let (client, result) = start_streams(&c, tmp.path(), VIP, 44, STREAMS);
    let started = Instant::now();
    let at = |s: u64| std::thread::sleep(Duration::from_secs(s).saturating_sub(started.elapsed()));
    let mut events: BTreeMap<&str, String> = BTreeMap::new();

    // SIGTERM: rvsd withdraws first, forwards for its linger, then stops.
    at(5);
    let t = Instant::now();
    let stopping = std::thread::spawn({
        let d1 = rvsd[0].take().unwrap();
        move || d1.stop()
    });
    let gone = wait_hops(&r, 2, Duration::from_secs(10)).expect("SIGTERM withdraws d1's route");
    events.insert(
        "sigterm_withdrawn_s",
        format!("{:.2}", t.elapsed().as_secs_f64().min(gone)),
    );
    stopping.join().unwrap();
    at(12);
    let (_, text) = config(1, &directors[0].1);
    rvsd[0] = Some(Rvsd::start_named(&lab, Some(&directors[0].0), "d1b", &text));
    let back = wait_hops(&r, 3, Duration::from_secs(20)).unwrap_or_else(|| {
        let show = |ns: &str, name: &str| {
            let sock = std::env::temp_dir().join(format!("{p}-bird-{name}/bird.ctl"));
            let o = std::process::Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    ns,
                    "birdc",
                    "-s",
                    sock.to_str().unwrap(),
                    "show",
                    "protocols",
                    "all",
                ])
                .output()
                .unwrap();
            let a = std::process::Command::new("ip")
                .args(["-n", ns, "addr"])
                .output()
                .unwrap();
            format!(
                "{}\n{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&a.stdout)
            )
        };
        panic!(
            "d1 back: three next hops:\nd1 {}\nrouter {}",
            show(&directors[0].0, "d1"),
            show(&r, "r")
        )
    });
    events.insert("rejoin_announced_s", format!("{back:.2}"));

    // SIGKILL: the twin vanishes with rvsd; the router's BGP hold timer withdraws the route.
    at(20);
    let t = Instant::now();
    rvsd[2].take().unwrap().kill();
    wait_hops(&r, 2, Duration::from_secs(15)).expect("SIGKILL withdraws d3's route");
    events.insert("sigkill_withdrawn_s", format!("{:.2}", t.elapsed().as_secs_f64()));
    at(27);
    let (_, text) = config(3, &directors[2].1);
    rvsd[2] = Some(Rvsd::start_named(&lab, Some(&directors[2].0), "d3b", &text));
    wait_hops(&r, 3, Duration::from_secs(20)).expect("d3 back: three next hops");

    // Drain d2: its route goes, it stops getting new connections, every stream goes on.
    at(33);
    let t = Instant::now();
    rvsadm(&sockets[1], &["--drain"]);
    wait_hops(&r, 2, Duration::from_secs(10)).expect("drain withdraws d2's route");
    events.insert("drain_withdrawn_s", format!("{:.2}", t.elapsed().as_secs_f64()));
    std::thread::sleep(Duration::from_secs(1));
    let d2_then = conns_made(&sockets[1]);
    std::thread::sleep(Duration::from_secs(3));
    let d2_new = conns_made(&sockets[1]) - d2_then;

    assert!(client.wait_with_output().unwrap().status.success());
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&result).unwrap()).unwrap();
    let streams = v["streams"].as_array().unwrap();
    let kept = streams
        .iter()
        .filter(|s| s["error"].is_null() && s["ok"].as_u64() > Some(0))
        .count();
    for s in streams.iter().filter(|s| !s["error"].is_null()) {
        eprintln!("lost stream {}: {}", s["port"], s["error"]);
    }
    let news = v["new"].as_array().unwrap();
    let new_failed = news.iter().filter(|n| n[1] == false).count();
    let sloppy: Vec<String> = sockets
        .iter()
        .map(|s| {
            let st = control(s, r#"{"id":1,"op":"status"}"#);
            st["result"]["sloppy_created"].to_string()
        })
        .collect();
    eprintln!(
        "ECMP: kept {kept}/{} streams through SIGTERM, rejoin, SIGKILL, rejoin and drain; new requests failed {new_failed} of {}; events {events:?}; connections made by d2 after its drain: {d2_new}; sloppy pick-ups per director {sloppy:?}",
        streams.len(),
        news.len()
    );
    assert_eq!(kept, STREAMS, "every stream survives every event");
    assert_eq!(d2_new, 0, "a drained director gets no new connections");

    // Health: with every real server down, no director wants the VIP; the route goes.
    let t = Instant::now();
    for k in 1..=3 {
        sh(&format!("ip netns pids {p}s{k} | xargs -r kill"));
    }
    let dead = wait_hops(&r, 0, Duration::from_secs(15))
        .expect("no live real server: the route is withdrawn everywhere");
    eprintln!(
        "every real server down: route withdrawn {:.2} s later",
        t.elapsed().as_secs_f64().min(dead + 0.0)
    );
    assert_eq!(
        rvsadm(&sockets[0], &["-L", "--routes"]),
        format!("routes on {p}t1\n  {VIP:<40} withdrawn: no live real server\n")
    );
}
