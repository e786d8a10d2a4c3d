//! High availability with real kernels (root): two directors, each rvsd in its own namespace
//! on af_packet veths with kernel twins, keepalived's VRRP on the twins moving the VIP, IPVS
//! connection sync between the rvsd's, and the configuration kept in step over the peer link.
//!
//! A client holds 20 keep-alive connections sending a request every 100 ms, and opens a new
//! connection every 100 ms. The master rvsd is SIGKILLed: the backup takes the VIP, and every
//! long-lived connection must survive (the backup got them by sync). The old master comes
//! back: it receives the peer's connection table, takes the VIP back after keepalived's
//! preempt_delay, and again every connection survives. Measured: the takeover time as the
//! client sees it, connections kept, new requests failed during each switch.

mod common;

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::ha::*;
use common::netns::{
    config_head, control, curl, daemon_counter, off_kernel, rvsadm, sh, wait_until, Lab, Rvsd,
};

/// The two scenarios run one at a time: each has two busy-polling rvsd on a 2-core machine.
static SERIAL: Mutex<()> = Mutex::new(());

const KEY: &str = "a shared secret of the pair, 32b";
const STREAMS: usize = 20;

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// One director's rvsd config: its ports, both sync daemons on its outside twin, the peer link
/// and the services.
#[allow(clippy::too_many_arguments)]
fn director_config(
    lab: &Lab,
    me: &str,
    cpu: u32,
    ports: &str,
    twin: &str,
    addr: &str,
    peer: &str,
    services: &str,
) -> String {
    let socket = format!("{}/{me}/rvs.sock", lab.ctl_dir());
    config_head(&socket).replace("workers = [1]", &format!("workers = [{cpu}]"))
        + ports
        + &format!(
            r#"
[[sync_daemon]]
state = "master"
mcast_interface = "{twin}"
syncid = 7
[[sync_daemon]]
state = "backup"
mcast_interface = "{twin}"
syncid = 7
[peer]
listen = "{addr}:8849"
address = "{peer}:8849"
key = "{KEY}"
"#
        )
        + services
}

struct Outcome {
    kept: usize,
    total: usize,
    /// The longest time without any answer on the streams, around each event (s).
    gaps: Vec<f64>,
    /// New requests failed within 10 s after each event.
    new_failed: Vec<usize>,
    new_total: usize,
    ports: BTreeSet<u64>,
}

fn outcome(file: &str, events: &[f64]) -> Outcome {
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let streams = v["streams"].as_array().unwrap();
    for s in streams {
        eprintln!(
            "stream {}: {} answers from {} error {}",
            s["port"], s["ok"], s["servers"], s["error"]
        );
    }
    let kept = streams
        .iter()
        .filter(|s| s["error"].is_null() && s["ok"].as_u64() > Some(0))
        .count();
    let answers: Vec<f64> = v["answers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_f64().unwrap())
        .collect();
    let news: Vec<(f64, bool)> = v["new"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n[0].as_f64().unwrap(), n[1].as_bool().unwrap()))
        .collect();
    let gaps = events
        .iter()
        .map(|&e| {
            let before = answers
                .iter()
                .copied()
                .filter(|&t| t <= e)
                .fold(f64::MIN, f64::max);
            let after = answers.iter().copied().find(|&t| t > e).unwrap_or(f64::MAX);
            after - before.max(e - 0.2)
        })
        .collect();
    let new_failed = events
        .iter()
        .map(|&e| {
            news.iter()
                .filter(|&&(t, ok)| !ok && t >= e - 1.0 && t < e + 10.0)
                .count()
        })
        .collect();
    Outcome {
        kept,
        total: streams.len(),
        gaps,
        new_failed,
        new_total: news.len(),
        ports: streams.iter().filter_map(|s| s["port"].as_u64()).collect(),
    }
}

/// The number of connections rvsd behind `socket` holds for `vip` (any state).
fn conns_for(socket: &str, vip: &str) -> usize {
    // rvsd may be starting: no socket yet is no connection.
    if std::os::unix::net::UnixStream::connect(socket).is_err() {
        return 0;
    }
    let v = control(socket, r#"{"id":1,"op":"connections"}"#);
    v["result"]["conns"].as_array().map_or(0, |a| {
        a.iter()
            .filter(|c| {
                c["virtual_"]
                    .as_str()
                    .or(c["virtual"].as_str())
                    .is_some_and(|x| x.starts_with(vip))
            })
            .count()
    })
}

#[test]
fn dr_failover_keeps_every_connection_and_the_configuration() {
    failover("hd", false);
}

#[test]
fn nat_failover_moves_the_gateway_too_and_keeps_every_connection() {
    failover("hn", true);
}

/// The whole scenario, in DR (one segment: client, directors, real servers) or NAT (the real
/// servers on an inside segment, their gateway a second VRRP address in a sync group with the
/// VIP's).
fn failover(tag: &str, nat: bool) {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut lab = Lab::new(tag);
    let p = lab.p.clone();
    let (da, db, c) = (lab.ns("da"), lab.ns("db"), lab.ns("c"));
    let (ba, a_dev) = lab.veth("ba", "la", Some(&da));
    let (bb, b_dev) = lab.veth("bb", "lb", Some(&db));
    let (bc, _) = lab.veth("bc", "lc", Some(&c));
    off_kernel(&da, &a_dev);
    off_kernel(&db, &b_dev);
    sh(&format!("ip netns exec {c} ip addr add 10.90.0.2/24 dev {p}lc"));
    let mut outside = vec![ba, bb, bc];
    let mut inside = Vec::new();
    let (mut a_in, mut b_in) = (String::new(), String::new());
    if nat {
        let (x, a) = lab.veth("ia", "ja", Some(&da));
        let (y, b) = lab.veth("ib", "jb", Some(&db));
        off_kernel(&da, &a);
        off_kernel(&db, &b);
        (a_in, b_in) = (a, b);
        inside = vec![x, y];
    }
    let net = if nat { "10.91.0" } else { "10.90.0" };
    let mut servers = Vec::new();
    for k in 1..=3 {
        let s = lab.ns(&format!("s{k}"));
        let (br, _) = lab.veth(&format!("s{k}b"), &format!("s{k}"), Some(&s));
        sh(&format!(
            "ip netns exec {s} ip addr add {net}.2{k}/24 dev {p}s{k}"
        ));
        if nat {
            // NAT: replies go to the gateway, the VRRP address on the master's inside twin.
            sh(&format!("ip netns exec {s} ip route add default via 10.91.0.1"));
            inside.push(br);
        } else {
            // DR: the VIP on lo, never answered for on the wire.
            sh(&format!(
                "ip netns exec {s} ip addr add 10.90.0.100/32 dev lo; \
                 ip netns exec {s} sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2"
            ));
            outside.push(br);
        }
        servers.push(s);
    }
    let refs: Vec<&str> = outside.iter().map(String::as_str).collect();
    lab.bridge("br", &refs);
    if nat {
        let refs: Vec<&str> = inside.iter().map(String::as_str).collect();
        lab.bridge("bi", &refs);
    }
    let tmp = tempfile::tempdir().unwrap();
    let server_py = tmp.path().join("server.py");
    std::fs::write(&server_py, KEEPALIVE_SERVER).unwrap();
    for (k, s) in servers.iter().enumerate() {
        for port in ["80", "8080"] {
            lab.spawn_in(
                s,
                &[
                    "python3",
                    server_py.to_str().unwrap(),
                    &format!("s{}", k + 1),
                    port,
                ],
            );
        }
    }
    let (method, flag) = if nat { ("nat", "-m") } else { ("dr", "-g") };
    let services = format!(
        r#"
[[service]]
address = "10.90.0.100:80"
scheduler = "rr"
announce = "follow-host"
real = [{{ address = "{net}.21:80", method = "{method}" }}, {{ address = "{net}.22:80", method = "{method}" }}, {{ address = "{net}.23:80", method = "{method}" }}]
"#
    );
    let port = |me: &str, dev: &str, addr: &str, inside_dev: &str, inside_addr: &str| {
        let mut s = format!(
            "[[port]]\nname = \"lan\"\ndevice = \"net_af_packet_{p}{me},iface={dev}\"\naddresses = [\"{addr}/24\"]\nhost_interface = \"{p}t{me}\"\n"
        );
        if nat {
            s += &format!(
                "[[port]]\nname = \"inside\"\ndevice = \"net_af_packet_{p}i{me},iface={inside_dev}\"\naddresses = [\"{inside_addr}/24\"]\nhost_interface = \"{p}u{me}\"\n"
            );
        }
        s
    };
    let (twin_a, twin_b) = (format!("{p}ta"), format!("{p}tb"));
    let (in_twin_a, in_twin_b) = (format!("{p}ua"), format!("{p}ub"));
    let conf_a = director_config(
        &lab,
        "a",
        0,
        &port("a", &a_dev, "10.90.0.11", &a_in, "10.91.0.11"),
        &twin_a,
        "10.90.0.11",
        "10.90.0.12",
        &services,
    );
    let conf_b = director_config(
        &lab,
        "b",
        1,
        &port("b", &b_dev, "10.90.0.12", &b_in, "10.91.0.12"),
        &twin_b,
        "10.90.0.12",
        "10.90.0.11",
        &services,
    );
    let (sock_a, sock_b) = (
        format!("{}/a/rvs.sock", lab.ctl_dir()),
        format!("{}/b/rvs.sock", lab.ctl_dir()),
    );
    let rvsd_a = Rvsd::start_named(&lab, Some(&da), "a", &conf_a);
    let rvsd_b = Rvsd::start_named(&lab, Some(&db), "b", &conf_b);
    for (ns, name, twin, in_twin, prio) in [
        (&da, "a", &twin_a, &in_twin_a, 150),
        (&db, "b", &twin_b, &in_twin_b, 100),
    ] {
        let mut conf =
            keepalived_globals(name) + &vrrp_instance("VI_VIP", twin, 51, prio, &["10.90.0.100/32"]);
        if nat {
            conf += &vrrp_instance("VI_GW", in_twin, 52, prio, &["10.91.0.1/24"]);
            conf += "vrrp_sync_group G {\n    group {\n        VI_VIP\n        VI_GW\n    }\n}\n";
        }
        keepalived(&mut lab, ns, name, &conf);
    }
    wait_until(Duration::from_secs(30), || {
        holds(&da, &twin_a, "10.90.0.100").then_some(())
    })
    .expect("keepalived on A takes the VIP");
    if nat {
        wait_until(Duration::from_secs(10), || {
            holds(&da, &in_twin_a, "10.91.0.1").then_some(())
        })
        .expect("keepalived on A takes the gateway");
    }
    wait_until(Duration::from_secs(15), || curl(&c, "http://10.90.0.100/"))
        .expect("the VIP answers through A");
    assert!(!holds(&db, &twin_b, "10.90.0.100"), "one master");
    let out = rvsadm(&sock_a, &["-L", "--daemon"]);
    assert_eq!(
        out,
        "master sync daemon (mcast=".to_string()
            + &twin_a
            + ", syncid=7, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"
            + "backup sync daemon (mcast="
            + &twin_a
            + ", syncid=7, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"
    );

    // Sync messages on the wire, for the decoders.
    let pcap = tmp.path().join("sync.pcap").display().to_string();
    lab.spawn_in_root(&[
        "tcpdump",
        "-i",
        &format!("{p}br"),
        "-U",
        "-w",
        &pcap,
        "udp port 8848",
    ]);
    std::thread::sleep(Duration::from_millis(500));

    let (client, result) = start_streams(&c, tmp.path(), "10.90.0.100", 36, STREAMS);
    let started = Instant::now();

    // The backup holds the streams before anything fails.
    wait_until(Duration::from_secs(10), || {
        (conns_for(&sock_b, "10.90.0.100:80") >= STREAMS).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "B holds the streams by sync: {}",
            conns_for(&sock_b, "10.90.0.100:80")
        )
    });

    // A change on A reaches B within a second.
    rvsadm(&sock_a, &["-A", "-t", "10.90.0.100:8080", "-s", "wrr"]);
    for k in 1..=3 {
        rvsadm(
            &sock_a,
            &[
                "-a",
                "-t",
                "10.90.0.100:8080",
                "-r",
                &format!("{net}.2{k}:8080"),
                flag,
            ],
        );
    }
    let t0 = Instant::now();
    wait_until(Duration::from_secs(3), || {
        let l = rvsadm(&sock_b, &["-Ln", "-t", "10.90.0.100:8080"]);
        (l.matches(&format!("-> {net}.")).count() == 3).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "the service added on A appears on B: A {} B {}",
            rvsadm(&sock_a, &["-Ln"]),
            rvsadm(&sock_b, &["-L", "--daemon", "--stats"])
        )
    });
    let replicated = t0.elapsed();
    assert!(
        replicated < Duration::from_secs(1),
        "replicated in {replicated:?}"
    );

    std::thread::sleep(Duration::from_secs(6).saturating_sub(started.elapsed()));
    let kill_at = now_s();
    rvsd_a.kill();
    let took = wait_until(Duration::from_secs(15), || {
        holds(&db, &twin_b, "10.90.0.100").then(now_s)
    })
    .expect("B takes the VIP when A dies");
    eprintln!("B holds the VIP {:.2} s after A was killed", took - kill_at);
    if nat {
        wait_until(Duration::from_secs(5), || {
            holds(&db, &in_twin_b, "10.91.0.1").then_some(())
        })
        .expect("the gateway moves with the VIP (sync group)");
    }
    wait_until(Duration::from_secs(10), || curl(&c, "http://10.90.0.100:8080/"))
        .expect("the replicated service serves through B");

    // A comes back: it gets B's table and connections, then takes the VIP back.
    std::thread::sleep(Duration::from_secs(14).saturating_sub(started.elapsed()));
    let rvsd_a = Rvsd::start_named(&lab, Some(&da), "a2", &conf_a);
    let back_at = now_s();
    wait_until(Duration::from_secs(15), || {
        (conns_for(&sock_a, "10.90.0.100:80") >= STREAMS).then_some(())
    })
    .expect("A, back, receives B's connections");
    let got = wait_until(Duration::from_secs(2), || {
        let l = rvsadm(&sock_a, &["-Ln"]);
        (l.matches("10.90.0.100:8080").count() == 1).then_some(l)
    });
    assert!(
        got.is_some_and(|l| l.matches(&format!("-> {net}.")).count() == 6),
        "A got the table from B: A {}\nB {}",
        rvsadm(&sock_a, &["-L", "--daemon", "--stats"]),
        rvsadm(&sock_b, &["-L", "--daemon", "--stats"])
    );
    let retook = wait_until(Duration::from_secs(20), || {
        holds(&da, &twin_a, "10.90.0.100").then(now_s)
    })
    .expect("A takes the VIP back");
    eprintln!("A holds the VIP again {:.2} s after it started", retook - back_at);

    let status = client.wait_with_output().unwrap().status;
    assert!(status.success());
    let o = outcome(&result, &[kill_at, retook]);
    eprintln!(
        "{}: kept {}/{} connections; takeover gap {:.2} s, failback gap {:.2} s; new requests failed {} (takeover), {} (failback) of {}; VIP on B {:.2} s after the kill",
        method.to_uppercase(),
        o.kept,
        o.total,
        o.gaps[0], o.gaps[1], o.new_failed[0], o.new_failed[1], o.new_total, took - kill_at
    );
    assert_eq!(
        o.kept, STREAMS,
        "every long-lived connection survives both switches"
    );
    assert!(daemon_counter(&sock_b, "installed") >= STREAMS as u64);
    drop(rvsd_a);
    drop(rvsd_b);
    // The capture ends before it is read, so both decoders see the same whole file.
    let _ = std::process::Command::new("pkill")
        .args(["-INT", "-f", &format!("tcpdump -i {p}br")])
        .status();
    std::thread::sleep(Duration::from_millis(500));

    // What was on the wire, by two decoders that are not rvs's.
    let records = decode_pcap(&pcap);
    let seen: BTreeSet<u64> = records
        .iter()
        .filter(|r| r["client"] == "10.90.0.2" && r["vaddr"] == "10.90.0.100" && r["vport"] == 80)
        .map(|r| r["cport"].as_u64().unwrap())
        .collect();
    assert!(
        o.ports.is_subset(&seen),
        "every stream was sent: {:?} not in {seen:?}",
        o.ports.difference(&seen).collect::<Vec<_>>()
    );
    for r in &records {
        assert_eq!(r["syncid"], 7);
        assert_eq!(
            r["flags"].as_u64().unwrap() & 0x7,
            if nat { 0 } else { 3 },
            "the method: {r}"
        );
        let d = r["daddr"].as_str().unwrap();
        assert!(
            d.starts_with(net) && ["21", "22", "23"].iter().any(|k| d.ends_with(k)),
            "{r}"
        );
        assert!(r["timeout"].as_u64().unwrap() > 0);
    }
    if let Some(t) = tshark_records(&pcap) {
        assert_eq!(t.len(), records.len(), "tshark sees as many records");
        for (a, b) in t.iter().zip(&records) {
            assert_eq!(a[0], b["client"].as_str().unwrap());
            assert_eq!(a[1], b["cport"].to_string());
            assert_eq!(a[4], b["daddr"].as_str().unwrap());
            assert_eq!(a[6], b["timeout"].to_string());
            assert_eq!(
                u64::from_str_radix(a[7].trim_start_matches("0x"), 16).unwrap(),
                b["flags"].as_u64().unwrap()
            );
        }
    }
}
