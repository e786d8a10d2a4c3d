//! IP fragments with real kernels, both ways through NAT: a client sends 3,000-byte UDP
//! requests and a real UDP server answers each with 4,000 bytes, on links of MTU 1,500, so
//! the kernels fragment both (the director forwards fragments, it never reassembles), and the
//! client checks every answer whole. IPv4 and IPv6. Needs root.

mod common;

use std::process::Command;
use std::time::Duration;

use common::netns::{config_head, sh, wait_for_link, wait_until, Lab, Rvsd};

/// A UDP server on argv[1]:argv[2] answering each datagram with argv[4] bytes: its name
/// (argv[3]) and the request's length, padded.
const UDP_SERVER: &str = "import socket, sys
fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
size = int(sys.argv[4])
while True:
    data, peer = s.recvfrom(65535)
    head = ('%s %d ' % (sys.argv[3], len(data))).encode()
    s.sendto(head + b'x' * (size - len(head)), peer)
";

/// Sends argv[3] requests of argv[4] bytes to argv[1]:argv[2]; prints one line per answer:
/// its length and its first words (or `lost`).
const UDP_CLIENT: &str = "import socket, sys
fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.settimeout(2)
for i in range(int(sys.argv[3])):
    s.sendto(bytes([i % 251]) * int(sys.argv[4]), (sys.argv[1], int(sys.argv[2])))
    try:
        data = s.recv(65535)
        print(len(data), data[:32].decode().split(' ')[0], data[:32].decode().split(' ')[1])
    except socket.timeout:
        print('lost')
";

struct Plan {
    outside: &'static str,
    inside: &'static str,
    len: u8,
    vip: &'static str,
}

/// rvsd's ports are net_tap devices moved into the client's and the server's namespaces:
/// each kernel talks to rvsd directly. (net_af_packet would not do here: DPDK's af_packet
/// PMD joins a fanout group with the kernel's defragmentation flag, so the kernel hands it
/// IPv4 datagrams reassembled, never their fragments.)
fn fragmented_both_ways(tag: &str, plan: &Plan) {
    let mut lab = Lab::new(tag);
    let p = lab.p.clone();
    let v6 = plan.vip.contains(':');
    let (ip, nodad) = if v6 { ("ip -6", " nodad") } else { ("ip -4", "") };
    let (o, i, len) = (plan.outside, plan.inside, plan.len);
    let c = lab.ns("c");
    let s = lab.ns("s");
    let server_addr = format!("{i}2");
    let (vip_host, rs) = if v6 {
        (format!("[{}]", plan.vip), format!("[{server_addr}]:5353"))
    } else {
        (plan.vip.to_string(), format!("{server_addr}:5353"))
    };
    let config = config_head(&lab.socket())
        + &format!(
            r#"
[[port]]
name = "outside"
device = "net_tap_{p}o,iface={p}to"
addresses = ["{o}1/{len}"]
[[port]]
name = "inside"
device = "net_tap_{p}i,iface={p}ti"
addresses = ["{i}1/{len}"]
[[service]]
protocol = "udp"
address = "{vip_host}:53"
scheduler = "rr"
real = [{{ address = "{rs}", method = "nat" }}]
"#
        );
    let mut rvsd = Some(Rvsd::start(&lab, &config));
    for (dev, ns, net) in [(format!("{p}to"), &c, o), (format!("{p}ti"), &s, i)] {
        wait_for_link(&dev);
        sh(&format!(
            "ip link set {dev} netns {ns}; ip netns exec {ns} ip link set {dev} up; \
             ip netns exec {ns} {ip} addr add {net}2/{len} dev {dev}{nodad}; \
             ip netns exec {ns} {ip} route add default via {net}1"
        ));
    }
    lab.spawn_in(
        &s,
        &[
            "python3",
            "-c",
            UDP_SERVER,
            &server_addr,
            "5353",
            "server",
            "4000",
        ],
    );
    let ask = |n: &str| -> Vec<String> {
        let out = Command::new("ip")
            .args([
                "netns", "exec", &c, "python3", "-c", UDP_CLIENT, plan.vip, "53", n, "3000",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    };
    // The first answer may race rvsd's start.
    if wait_until(Duration::from_secs(45), || {
        ask("1").first().filter(|l| l.starts_with("4000 ")).cloned()
    })
    .is_none()
    {
        let report = rvsd.take().map(Rvsd::stop).unwrap_or_default();
        panic!("no whole answer through {}; rvsd's report:\n{report}", plan.vip);
    }
    let lines = ask("20");
    let report = rvsd.take().map(Rvsd::stop).unwrap_or_default();
    println!("fragments ({}): {lines:?}\n{report}", plan.vip);
    assert_eq!(lines.len(), 20, "{lines:?}");
    for l in &lines {
        assert_eq!(
            l, "4000 server 3000",
            "every answer whole, every request whole: {lines:?}"
        );
    }
    // 21 requests of 3 fragments in, 21 answers of 3 fragments out.
    let line = report
        .lines()
        .find(|l| l.starts_with("fragments:"))
        .unwrap_or_else(|| panic!("{report}"));
    let first: u64 = line.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!(first >= 42, "{line}");
}

#[test]
fn udp_fragments_both_ways_through_nat_with_real_kernels() {
    fragmented_both_ways(
        "fg",
        &Plan {
            outside: "10.76.0.",
            inside: "10.77.0.",
            len: 24,
            vip: "10.70.3.100",
        },
    );
}

#[test]
fn udp_fragments_both_ways_through_nat_over_ipv6_with_real_kernels() {
    fragmented_both_ways(
        "fg6",
        &Plan {
            outside: "2001:db8:76::",
            inside: "2001:db8:77::",
            len: 64,
            vip: "2001:db8:70:3::100",
        },
    );
}
