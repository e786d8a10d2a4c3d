//! End to end with real kernels: network namespaces and veth pairs, rvsd on net_af_packet
//! ports, real HTTP servers (python3 -m http.server) in their own namespaces and a real client
//! (curl) making 100 requests through the VIP. NAT and DR. Needs root (CI runs as root).
//!
//! Every namespace and link carries a prefix unique to the test process and is removed when
//! the test ends, pass or fail.

mod common;

use std::time::Duration;

use common::netns::{config_head, curl, sh, wait_until, Lab, Rvsd};

/// 100 requests through the VIP; returns how many each server answered. If the VIP never
/// answers, rvsd is stopped and its report (counters, drops by reason) goes in the failure.
fn hundred_requests(
    client_ns: &str,
    url: &str,
    rvsd: &mut Option<Rvsd>,
) -> std::collections::BTreeMap<String, u32> {
    // The first request may race rvsd's start (EAL, ports, twins) on a loaded machine.
    if wait_until(Duration::from_secs(45), || curl(client_ns, url)).is_none() {
        let report = rvsd.take().map(Rvsd::stop).unwrap_or_default();
        panic!("the VIP never answered at {url}; rvsd's report:\n{report}");
    }
    let mut by_server = std::collections::BTreeMap::new();
    let mut failures = 0;
    for _ in 0..100 {
        match curl(client_ns, url) {
            Some(body) => *by_server.entry(body).or_insert(0) += 1,
            None => failures += 1,
        }
    }
    assert_eq!(failures, 0, "every request succeeds ({by_server:?})");
    by_server
}

/// `addr:port` as configs and URLs write it (brackets around IPv6).
fn sock(addr: &str, port: u16) -> String {
    if addr.contains(':') {
        format!("[{addr}]:{port}")
    } else {
        format!("{addr}:{port}")
    }
}

/// One addressing plan for both families: networks as prefixes to append a host part to
/// ("10.71.0." or "2001:db8:71::"), their prefix length and the VIP.
struct Plan {
    outside: &'static str,
    inside: &'static str,
    len: u8,
    vip: &'static str,
}

impl Plan {
    fn v6(&self) -> bool {
        self.vip.contains(':')
    }

    /// `ip -4|-6`, and the address flag that skips duplicate detection on IPv6.
    fn ip(&self) -> (&'static str, &'static str) {
        if self.v6() {
            ("ip -6", " nodad")
        } else {
            ("ip -4", "")
        }
    }

    fn host_len(&self) -> u8 {
        if self.v6() {
            128
        } else {
            32
        }
    }
}

/// NAT over three python3 HTTP servers behind the inside port, a client outside: 100 requests.
fn nat_over(tag: &str, plan: &Plan) {
    let mut lab = Lab::new(tag);
    let p = lab.p.clone();
    let (ip, nodad) = plan.ip();
    let (o, i, len) = (plan.outside, plan.inside, plan.len);
    let c = lab.ns("c");
    let (out_if, _) = lab.veth("o", "oc", Some(&c));
    sh(&format!(
        "ip netns exec {c} {ip} addr add {o}2/{len} dev {p}oc{nodad}; ip netns exec {c} {ip} route add default via {o}1"
    ));
    let (in_if, in_br) = lab.veth("i", "ib", None);
    let mut bridged = vec![in_br];
    let mut servers = Vec::new();
    for k in 1..=3 {
        let s = lab.ns(&format!("s{k}"));
        let (br_end, _) = lab.veth(&format!("s{k}b"), &format!("s{k}"), Some(&s));
        sh(&format!(
            "ip netns exec {s} {ip} addr add {i}1{k}/{len} dev {p}s{k}{nodad}; ip netns exec {s} {ip} route add default via {i}1"
        ));
        bridged.push(br_end);
        servers.push(s);
    }
    let refs: Vec<&str> = bridged.iter().map(String::as_str).collect();
    lab.bridge("br", &refs);
    for (k, s) in servers.iter().enumerate() {
        lab.http_server(s, &format!("{i}1{}", k + 1), &format!("server{}", k + 1));
    }
    let reals: Vec<String> = (1..=3)
        .map(|k| {
            format!(
                "    {{ address = \"{}\", method = \"nat\" }},",
                sock(&format!("{i}1{k}"), 8000)
            )
        })
        .collect();
    let config = config_head(&lab.socket())
        + &format!(
            r#"
[[port]]
name = "outside"
device = "net_af_packet_{p}o,iface={out_if}"
addresses = ["{o}1/{len}"]
[[port]]
name = "inside"
device = "net_af_packet_{p}i,iface={in_if}"
addresses = ["{i}1/{len}"]
[[service]]
protocol = "tcp"
address = "{}"
scheduler = "rr"
real = [
{}
]
"#,
            sock(plan.vip, 80),
            reals.join("\n")
        );
    let mut rvsd = Some(Rvsd::start(&lab, &config));
    let by_server = hundred_requests(&c, &format!("http://{}/", sock(plan.vip, 80)), &mut rvsd);
    let report = rvsd.take().map(Rvsd::stop).unwrap_or_default();
    println!(
        "NAT ({}): 100 requests, 0 failures, by server {by_server:?}\n{report}",
        plan.vip
    );
    // rr: the first request (the readiness probe) went to server1, then 100 more in turn.
    assert_eq!(by_server.len(), 3, "{by_server:?}");
    for (s, n) in &by_server {
        assert!((33..=34).contains(n), "rr spreads evenly: {s} got {n}");
    }
    assert!(
        report.contains(&format!("TCP  {} rr", sock(plan.vip, 80))),
        "{report}"
    );
}

/// DR on one segment: the client, the director and two servers holding the VIP on lo (IPv4:
/// with arp_ignore/arp_announce; IPv6 answers neighbor solicitations only for the receiving
/// interface's addresses); wrr 3:1 over 100 requests.
fn dr_over(tag: &str, plan: &Plan) {
    let mut lab = Lab::new(tag);
    let p = lab.p.clone();
    let (ip, nodad) = plan.ip();
    let (n, len, vip, hl) = (plan.outside, plan.len, plan.vip, plan.host_len());
    let c = lab.ns("c");
    let (c_br, _) = lab.veth("cb", "c", Some(&c));
    sh(&format!(
        "ip netns exec {c} {ip} addr add {n}2/{len} dev {p}c{nodad}; ip netns exec {c} {ip} route add {vip}/{hl} via {n}1"
    ));
    let (dir_if, dir_br) = lab.veth("d", "db", None);
    let mut bridged = vec![c_br, dir_br];
    let mut servers = Vec::new();
    for k in 1..=2 {
        let s = lab.ns(&format!("s{k}"));
        let (br_end, _) = lab.veth(&format!("s{k}b"), &format!("s{k}"), Some(&s));
        let dev = format!("{p}s{k}");
        if !plan.v6() {
            sh(&format!(
                "ip netns exec {s} sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
                 net.ipv4.conf.{dev}.arp_ignore=1 net.ipv4.conf.{dev}.arp_announce=2"
            ));
        }
        sh(&format!(
            "ip netns exec {s} {ip} addr add {n}1{k}/{len} dev {dev}{nodad}; ip netns exec {s} {ip} addr add {vip}/{hl} dev lo"
        ));
        bridged.push(br_end);
        servers.push(s);
    }
    let refs: Vec<&str> = bridged.iter().map(String::as_str).collect();
    lab.bridge("br", &refs);
    let any = if plan.v6() { "::" } else { "0.0.0.0" };
    for (k, s) in servers.iter().enumerate() {
        lab.http_server(s, any, &format!("server{}", k + 1));
    }
    let config = config_head(&lab.socket())
        + &format!(
            r#"
[[port]]
name = "lan"
device = "net_af_packet_{p}d,iface={dir_if}"
addresses = ["{n}1/{len}"]
[[service]]
protocol = "tcp"
address = "{}"
scheduler = "wrr"
real = [
    {{ address = "{n}11", method = "dr", weight = 3 }},
    {{ address = "{n}12", method = "dr", weight = 1 }},
]
"#,
            sock(vip, 8000)
        );
    let mut rvsd = Some(Rvsd::start(&lab, &config));
    let by_server = hundred_requests(&c, &format!("http://{}/", sock(vip, 8000)), &mut rvsd);
    let report = rvsd.take().map(Rvsd::stop).unwrap_or_default();
    println!("DR ({vip}): 100 requests, 0 failures, by server {by_server:?}\n{report}");
    // wrr 3:1 over 101 connections (with the readiness probe).
    let s1 = by_server.get("server1").copied().unwrap_or(0);
    let s2 = by_server.get("server2").copied().unwrap_or(0);
    assert_eq!(s1 + s2, 100);
    assert!(
        (74..=76).contains(&s1) && (24..=26).contains(&s2),
        "wrr 3:1: {by_server:?}"
    );
    assert!(report.contains("Route"), "{report}");
}

#[test]
fn nat_with_real_kernels() {
    nat_over(
        "rn",
        &Plan {
            outside: "10.71.0.",
            inside: "10.72.0.",
            len: 24,
            vip: "10.70.0.100",
        },
    );
}

#[test]
fn dr_with_real_kernels() {
    dr_over(
        "rd",
        &Plan {
            outside: "10.73.0.",
            inside: "",
            len: 24,
            vip: "10.70.1.100",
        },
    );
}

#[test]
fn nat_over_ipv6_with_real_kernels() {
    nat_over(
        "r6n",
        &Plan {
            outside: "2001:db8:71::",
            inside: "2001:db8:72::",
            len: 64,
            vip: "2001:db8:70::100",
        },
    );
}

#[test]
fn dr_over_ipv6_with_real_kernels() {
    dr_over(
        "r6d",
        &Plan {
            outside: "2001:db8:73::",
            inside: "",
            len: 64,
            vip: "2001:db8:70:1::100",
        },
    );
}
