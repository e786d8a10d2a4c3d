//! End to end with real kernels: network namespaces and veth pairs, rvsd on net_af_packet
//! ports, real HTTP servers (python3 -m http.server) in their own namespaces and a real client
//! (curl) making 100 requests through the VIP. NAT and DR. Needs root (CI runs as root).
//!
//! Every namespace and link carries a prefix unique to the test process and is removed when
//! the test ends, pass or fail.

mod common;

use std::time::Duration;

use common::netns::{config_head, curl, sh, wait_until, Lab, Rvsd};

/// 100 requests through the VIP; returns how many each server answered.
fn hundred_requests(client_ns: &str, url: &str) -> std::collections::BTreeMap<String, u32> {
    // The first request may race rvsd's start: wait until the VIP answers at all.
    wait_until(Duration::from_secs(20), || curl(client_ns, url)).expect("the VIP never answered");
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

#[test]
fn nat_with_real_kernels() {
    let mut lab = Lab::new("rn");
    let c = lab.ns("c");
    let (out_if, _) = lab.veth("o", "oc", Some(&c));
    sh(&format!("ip netns exec {c} ip addr add 10.71.0.2/24 dev {}oc; ip netns exec {c} ip route add default via 10.71.0.1", lab.p));
    let (in_if, in_br) = lab.veth("i", "ib", None);
    let mut bridged = vec![in_br.clone()];
    let mut servers = Vec::new();
    for k in 1..=3 {
        let s = lab.ns(&format!("s{k}"));
        let (br_end, _) = lab.veth(&format!("s{k}b"), &format!("s{k}"), Some(&s));
        sh(&format!("ip netns exec {s} ip addr add 10.72.0.1{k}/24 dev {}s{k}; ip netns exec {s} ip route add default via 10.72.0.1", lab.p));
        bridged.push(br_end);
        servers.push(s);
    }
    let refs: Vec<&str> = bridged.iter().map(String::as_str).collect();
    lab.bridge("br", &refs);
    for (k, s) in servers.iter().enumerate() {
        lab.http_server(s, &format!("10.72.0.1{}", k + 1), &format!("server{}", k + 1));
    }
    let config = config_head(&lab.socket())
        + &format!(
            r#"
[[port]]
name = "outside"
device = "net_af_packet_{p}o,iface={out_if}"
addresses = ["10.71.0.1/24"]
[[port]]
name = "inside"
device = "net_af_packet_{p}i,iface={in_if}"
addresses = ["10.72.0.1/24"]
[[service]]
protocol = "tcp"
address = "10.70.0.100:80"
scheduler = "rr"
real = [
    {{ address = "10.72.0.11:8000", method = "nat" }},
    {{ address = "10.72.0.12:8000", method = "nat" }},
    {{ address = "10.72.0.13:8000", method = "nat" }},
]
"#,
            p = lab.p
        );
    let rvsd = Rvsd::start(&lab, &config);
    let by_server = hundred_requests(&c, "http://10.70.0.100/");
    let report = rvsd.stop();
    println!("NAT: 100 requests, 0 failures, by server {by_server:?}\n{report}");
    // rr: the first request (the readiness probe) went to server1, then 100 more in turn.
    assert_eq!(by_server.len(), 3, "{by_server:?}");
    for (s, n) in &by_server {
        assert!((33..=34).contains(n), "rr spreads evenly: {s} got {n}");
    }
    assert!(report.contains("TCP  10.70.0.100:80 rr"), "{report}");
}

#[test]
fn dr_with_real_kernels() {
    let mut lab = Lab::new("rd");
    // One L2 segment: the client, the director and the real servers on a bridge. The servers
    // hold the VIP on lo and do not answer ARP for it; they reply to the client directly.
    let c = lab.ns("c");
    let (c_br, _) = lab.veth("cb", "c", Some(&c));
    sh(&format!("ip netns exec {c} ip addr add 10.73.0.2/24 dev {}c; ip netns exec {c} ip route add 10.70.1.100/32 via 10.73.0.1", lab.p));
    let (dir_if, dir_br) = lab.veth("d", "db", None);
    let mut bridged = vec![c_br, dir_br];
    let mut servers = Vec::new();
    for k in 1..=2 {
        let s = lab.ns(&format!("s{k}"));
        let (br_end, _) = lab.veth(&format!("s{k}b"), &format!("s{k}"), Some(&s));
        let dev = format!("{}s{k}", lab.p);
        sh(&format!(
            "ip netns exec {s} sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
             net.ipv4.conf.{dev}.arp_ignore=1 net.ipv4.conf.{dev}.arp_announce=2; \
             ip netns exec {s} ip addr add 10.73.0.1{k}/24 dev {dev}; \
             ip netns exec {s} ip addr add 10.70.1.100/32 dev lo"
        ));
        bridged.push(br_end);
        servers.push(s);
    }
    let refs: Vec<&str> = bridged.iter().map(String::as_str).collect();
    lab.bridge("br", &refs);
    for (k, s) in servers.iter().enumerate() {
        lab.http_server(s, "0.0.0.0", &format!("server{}", k + 1));
    }
    let config = config_head(&lab.socket())
        + &format!(
            r#"
[[port]]
name = "lan"
device = "net_af_packet_{p}d,iface={dir_if}"
addresses = ["10.73.0.1/24"]
[[service]]
protocol = "tcp"
address = "10.70.1.100:8000"
scheduler = "wrr"
real = [
    {{ address = "10.73.0.11", method = "dr", weight = 3 }},
    {{ address = "10.73.0.12", method = "dr", weight = 1 }},
]
"#,
            p = lab.p
        );
    let rvsd = Rvsd::start(&lab, &config);
    let by_server = hundred_requests(&c, "http://10.70.1.100:8000/");
    let report = rvsd.stop();
    println!("DR: 100 requests, 0 failures, by server {by_server:?}\n{report}");
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
fn nat_over_ipv6_with_real_kernels() {
    let mut lab = Lab::new("r6n");
    let p = lab.p.clone();
    let c = lab.ns("c");
    let (out_if, _) = lab.veth("o", "oc", Some(&c));
    sh(&format!(
        "ip netns exec {c} ip -6 addr add 2001:db8:71::2/64 dev {p}oc nodad; \
         ip netns exec {c} ip -6 route add default via 2001:db8:71::1"
    ));
    let (in_if, in_br) = lab.veth("i", "ib", None);
    let mut bridged = vec![in_br];
    let mut servers = Vec::new();
    for k in 1..=3 {
        let s = lab.ns(&format!("s{k}"));
        let (br_end, _) = lab.veth(&format!("s{k}b"), &format!("s{k}"), Some(&s));
        sh(&format!(
            "ip netns exec {s} ip -6 addr add 2001:db8:72::1{k}/64 dev {p}s{k} nodad; \
             ip netns exec {s} ip -6 route add default via 2001:db8:72::1"
        ));
        bridged.push(br_end);
        servers.push(s);
    }
    let refs: Vec<&str> = bridged.iter().map(String::as_str).collect();
    lab.bridge("br", &refs);
    for (k, s) in servers.iter().enumerate() {
        lab.http_server(
            s,
            &format!("2001:db8:72::1{}", k + 1),
            &format!("server{}", k + 1),
        );
    }
    let config = config_head(&lab.socket())
        + &format!(
            r#"
[[port]]
name = "outside"
device = "net_af_packet_{p}o,iface={out_if}"
addresses = ["2001:db8:71::1/64"]
[[port]]
name = "inside"
device = "net_af_packet_{p}i,iface={in_if}"
addresses = ["2001:db8:72::1/64"]
[[service]]
protocol = "tcp"
address = "[2001:db8:70::100]:80"
scheduler = "rr"
real = [
    {{ address = "[2001:db8:72::11]:8000", method = "nat" }},
    {{ address = "[2001:db8:72::12]:8000", method = "nat" }},
    {{ address = "[2001:db8:72::13]:8000", method = "nat" }},
]
"#
        );
    let rvsd = Rvsd::start(&lab, &config);
    let by_server = hundred_requests(&c, "http://[2001:db8:70::100]/");
    let report = rvsd.stop();
    println!("NAT over IPv6: 100 requests, 0 failures, by server {by_server:?}\n{report}");
    assert_eq!(by_server.len(), 3, "{by_server:?}");
    for (s, n) in &by_server {
        assert!((33..=34).contains(n), "rr spreads evenly: {s} got {n}");
    }
}

#[test]
fn dr_over_ipv6_with_real_kernels() {
    let mut lab = Lab::new("r6d");
    let p = lab.p.clone();
    // One segment; the servers hold the VIP on lo (IPv6 answers neighbor solicitations only
    // for the receiving interface's addresses, so no arp_ignore is needed).
    let c = lab.ns("c");
    let (c_br, _) = lab.veth("cb", "c", Some(&c));
    sh(&format!(
        "ip netns exec {c} ip -6 addr add 2001:db8:73::2/64 dev {p}c nodad; \
         ip netns exec {c} ip -6 route add 2001:db8:70:1::100/128 via 2001:db8:73::1"
    ));
    let (dir_if, dir_br) = lab.veth("d", "db", None);
    let mut bridged = vec![c_br, dir_br];
    let mut servers = Vec::new();
    for k in 1..=2 {
        let s = lab.ns(&format!("s{k}"));
        let (br_end, _) = lab.veth(&format!("s{k}b"), &format!("s{k}"), Some(&s));
        sh(&format!(
            "ip netns exec {s} ip -6 addr add 2001:db8:73::1{k}/64 dev {p}s{k} nodad; \
             ip netns exec {s} ip -6 addr add 2001:db8:70:1::100/128 dev lo"
        ));
        bridged.push(br_end);
        servers.push(s);
    }
    let refs: Vec<&str> = bridged.iter().map(String::as_str).collect();
    lab.bridge("br", &refs);
    for (k, s) in servers.iter().enumerate() {
        lab.http_server(s, "::", &format!("server{}", k + 1));
    }
    let config = config_head(&lab.socket())
        + &format!(
            r#"
[[port]]
name = "lan"
device = "net_af_packet_{p}d,iface={dir_if}"
addresses = ["2001:db8:73::1/64"]
[[service]]
protocol = "tcp"
address = "[2001:db8:70:1::100]:8000"
scheduler = "wrr"
real = [
    {{ address = "2001:db8:73::11", method = "dr", weight = 3 }},
    {{ address = "2001:db8:73::12", method = "dr", weight = 1 }},
]
"#
        );
    let rvsd = Rvsd::start(&lab, &config);
    let by_server = hundred_requests(&c, "http://[2001:db8:70:1::100]:8000/");
    let report = rvsd.stop();
    println!("DR over IPv6: 100 requests, 0 failures, by server {by_server:?}\n{report}");
    let s1 = by_server.get("server1").copied().unwrap_or(0);
    let s2 = by_server.get("server2").copied().unwrap_or(0);
    assert_eq!(s1 + s2, 100);
    assert!(
        (74..=76).contains(&s1) && (24..=26).contains(&s2),
        "wrr 3:1: {by_server:?}"
    );
}
