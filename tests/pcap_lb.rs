//! rvsd on net_pcap vdevs, the real data plane end to end: every output packet is checked.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

use rvs_traffic::{
    self as traffic, server_mac, tcp_v4, udp_v4, with_macs, with_ttl, NatDemo, INSIDE_MAC, OUTSIDE_MAC,
};
use rvs_traffic::{GATEWAY_MAC, TCP_ACK, TCP_PSH, TCP_SYN};

const HEAD: &str = r#"
[dataplane]
workers = [@WORKERS@]
conn_capacity = 65536

[eal]
memory = "no-huge"
memory_mb = 256

[control]
socket = "@SOCKET@"

[[port]]
name = "outside"
device = "net_pcap_o@TAG@,@OUTSIDE@"
addresses = ["203.0.113.1/24"]
gateway = "203.0.113.254"
mac = "02:00:00:00:00:a0"
neighbors = [{ ip = "203.0.113.254", mac = "02:00:00:00:00:01" }]

[[port]]
name = "inside"
device = "net_pcap_i@TAG@,@INSIDE@"
addresses = ["192.168.1.1/24"]
mac = "02:00:00:00:00:b0"
neighbors = [
    { ip = "192.168.1.2", mac = "02:11:c0:a8:01:02" },
    { ip = "192.168.1.3", mac = "02:11:c0:a8:01:03" },
    { ip = "192.168.1.4", mac = "02:11:c0:a8:01:04" },
    { ip = "192.168.1.5", mac = "02:11:c0:a8:01:05" },
    { ip = "192.168.1.6", mac = "02:11:c0:a8:01:06" },
]

[[service]]
protocol = "tcp"
address = "10.0.0.100:80"
scheduler = "rr"
real = [
    { address = "192.168.1.2:8080", method = "nat" },
    { address = "192.168.1.3:8080", method = "nat" },
    { address = "192.168.1.4:8080", method = "nat" },
]

[[service]]
protocol = "udp"
address = "10.0.0.100:53"
scheduler = "rr"
real = [{ address = "192.168.1.2:5353", method = "nat" }]

[[service]]
protocol = "tcp"
address = "10.0.0.103:80"
scheduler = "wlc"
real = [{ address = "192.168.1.2:8080", method = "nat" }]

[[service]]
protocol = "tcp"
address = "10.0.0.101:80"
scheduler = "wlc"
real = [{ address = "192.168.1.5", method = "dr" }]

[[service]]
protocol = "tcp"
address = "10.0.0.102:80"
scheduler = "wlc"
real = [{ address = "192.168.1.6", method = "tun" }]
"#;

struct Run {
    stdout: String,
}

/// Writes the inputs, runs rvsd until its inputs are exhausted, returns its report.
fn run(dir: &Path, workers: &str, outside: &str, inside: &str) -> Run {
    run_config(dir, HEAD, workers, outside, inside)
}

/// `run` with another config template (the same placeholders).
fn run_config(dir: &Path, head: &str, workers: &str, outside: &str, inside: &str) -> Run {
    let cfg = head
        .replace("@WORKERS@", workers)
        .replace("@TAG@", &std::process::id().to_string())
        .replace("@OUTSIDE@", outside)
        .replace("@INSIDE@", inside)
        .replace("@SOCKET@", dir.join("rvs.sock").to_str().unwrap());
    let path = dir.join("rvs.toml");
    std::fs::write(&path, cfg).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rvsd"))
        .arg("--config")
        .arg(&path)
        .args(["--exit-idle", "300", "--duration", "60"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "rvsd failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("mbufs in use: 0 at start, 0 at the end"),
        "{stdout}"
    );
    Run { stdout }
}

/// Two workers, two rx queues on each port: q0.pcap and q1.pcap in from outside, e0 and e1
/// (empty) from inside; out o0/o1 and i0/i1.
fn run_two_queues(d: &Path, head: &str) -> Run {
    for e in ["e0.pcap", "e1.pcap"] {
        traffic::write_pcap(&d.join(e), &[]).unwrap();
    }
    let side = |a: &str, b: &str, c: &str, e: &str| {
        format!(
            "rx_pcap={},rx_pcap={},tx_pcap={},tx_pcap={}",
            pcap(d, a),
            pcap(d, b),
            pcap(d, c),
            pcap(d, e)
        )
    };
    run_config(
        d,
        head,
        "0, 1",
        &side("q0.pcap", "q1.pcap", "o0.pcap", "o1.pcap"),
        &side("e0.pcap", "e1.pcap", "i0.pcap", "i1.pcap"),
    )
}

fn pcap(dir: &Path, name: &str) -> String {
    dir.join(name).to_str().unwrap().to_string()
}

/// The IP frames of output pcaps (the gratuitous ARPs are checked on their own).
fn read(dir: &Path, names: &[&str]) -> Vec<Vec<u8>> {
    all(dir, names)
        .into_iter()
        .filter(|f| f[12..14] != [0x08, 0x06])
        .collect()
}

fn all(dir: &Path, names: &[&str]) -> Vec<Vec<u8>> {
    names
        .iter()
        .flat_map(|n| traffic::read_pcap(&dir.join(n)).unwrap())
        .collect()
}

/// What rvs must send for the demo's conversations: requests DNATed to their server,
/// replies SNATed back to the VIP, TTL decremented, MACs of the next hop.
fn expected_nat(gen: &NatDemo, frames: &[Vec<u8>]) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let (mut to_servers, mut to_clients) = (Vec::new(), Vec::new());
    for f in frames {
        let src = Ipv4Addr::new(f[26], f[27], f[28], f[29]);
        let (sport, dport) = (
            u16::from_be_bytes([f[34], f[35]]),
            u16::from_be_bytes([f[36], f[37]]),
        );
        let (flags, data) = (f[47], &f[54..]);
        if src.octets()[0] == 198 {
            let i = (0..gen.flows).find(|&i| gen.client(i) == (src, sport)).unwrap();
            let (s, sp) = gen.server_of(i);
            let out = with_ttl(tcp_v4(src, s, sport, sp, flags, data), 63);
            to_servers.push(with_macs(out, INSIDE_MAC, server_mac(s)));
        } else {
            let dst = Ipv4Addr::new(f[30], f[31], f[32], f[33]);
            let out = with_ttl(tcp_v4(gen.vip, dst, gen.port, dport, flags, data), 63);
            to_clients.push(with_macs(out, OUTSIDE_MAC, GATEWAY_MAC));
        }
    }
    (to_servers, to_clients)
}

#[test]
fn nat_both_directions_every_packet() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let gen = NatDemo {
        flows: 200,
        ..Default::default()
    };
    let (frames, _) = gen.frames();
    traffic::write_pcap(&d.join("in.pcap"), &frames).unwrap();
    traffic::write_pcap(&d.join("empty.pcap"), &[]).unwrap();
    let r = run(
        d,
        "0",
        &format!("rx_pcap={},tx_pcap={}", pcap(d, "in.pcap"), pcap(d, "out-o.pcap")),
        &format!(
            "rx_pcap={},tx_pcap={}",
            pcap(d, "empty.pcap"),
            pcap(d, "out-i.pcap")
        ),
    );
    // At start, a gratuitous ARP for each IPv4 VIP out of each port.
    for (name, mac) in [("out-o.pcap", OUTSIDE_MAC), ("out-i.pcap", INSIDE_MAC)] {
        let garps: Vec<Vec<u8>> = all(d, &[name])
            .into_iter()
            .filter(|f| f[12..14] == [0x08, 0x06])
            .collect();
        assert_eq!(garps.len(), 4, "{name}: one per VIP (10.0.0.100..103)");
        for g in &garps {
            assert_eq!(&g[0..6], &[0xff; 6]);
            assert_eq!(&g[22..28], &mac, "sender MAC is the port's");
            assert_eq!(&g[28..32], &g[38..42], "sender and target are the VIP");
        }
    }
    let (to_servers, to_clients) = expected_nat(&gen, &frames);
    assert_eq!(
        read(d, &["out-i.pcap"]),
        to_servers,
        "requests to the servers, in order"
    );
    assert_eq!(
        read(d, &["out-o.pcap"]),
        to_clients,
        "replies to the clients, in order"
    );
    assert!(r.stdout.contains("drops: none"), "{}", r.stdout);
}

#[test]
fn nat_with_two_workers_steers_flows_to_their_owner() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Two sets of conversations, each entirely on one rx queue: whichever worker reads a packet,
    // the flow's owner (a hash of the client) handles it, so about half of each set crosses.
    // One real server, so which server replies does not depend on how workers interleave.
    let one = NatDemo {
        vip: Ipv4Addr::new(10, 0, 0, 103),
        servers: vec![(Ipv4Addr::new(192, 168, 1, 2), 8080)],
        flows: 150,
        ..Default::default()
    };
    let a = one.clone();
    let b = NatDemo { seed: 2, ..one };
    let (fa, _) = a.frames();
    // Set b: other clients (ports from 40000) on the second queue.
    let fb: Vec<Vec<u8>> = b
        .frames()
        .0
        .into_iter()
        .map(|mut f| {
            let at = if f[26] == 198 { 34 } else { 36 };
            let p = u16::from_be_bytes([f[at], f[at + 1]]) + 20000;
            f = rewrite_port(f, at, p);
            f
        })
        .collect();
    traffic::write_pcap(&d.join("q0.pcap"), &fa).unwrap();
    traffic::write_pcap(&d.join("q1.pcap"), &fb).unwrap();
    let r = run_two_queues(d, HEAD);
    // rr across two workers interleaves servers differently from one worker, so check each
    // output packet against the connection its flow got (read from the request's SYN).
    let outputs_i = read(d, &["i0.pcap", "i1.pcap"]);
    let outputs_o = read(d, &["o0.pcap", "o1.pcap"]);
    assert_eq!(
        outputs_i.len(),
        (fa.len() + fb.len()) / 8 * 5,
        "every request reached a server"
    );
    assert_eq!(
        outputs_o.len(),
        (fa.len() + fb.len()) / 8 * 3,
        "every reply reached its client"
    );
    let mut server_of = std::collections::HashMap::new();
    for f in &outputs_i {
        let client = (
            Ipv4Addr::new(f[26], f[27], f[28], f[29]),
            u16::from_be_bytes([f[34], f[35]]),
        );
        let server = Ipv4Addr::new(f[30], f[31], f[32], f[33]);
        assert_eq!(
            *server_of.entry(client).or_insert(server),
            server,
            "a flow stays on its server"
        );
        assert_eq!(&f[0..6], &server_mac(server));
        assert_eq!(f[22], 63);
    }
    for f in &outputs_o {
        assert_eq!(
            Ipv4Addr::new(f[26], f[27], f[28], f[29]),
            Ipv4Addr::new(10, 0, 0, 103),
            "replies come from the VIP"
        );
        assert_eq!(u16::from_be_bytes([f[34], f[35]]), 80);
    }
    let redirected: u64 = r
        .stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix("workers: ")
                .and_then(|l| l.split("redirected ").nth(1))
                .and_then(|x| x.split(' ').next())
                .and_then(|n| n.parse().ok())
        })
        .unwrap();
    assert!(
        redirected > 100,
        "flows crossed between workers: {redirected}\n{}",
        r.stdout
    );
    assert!(r.stdout.contains("drops: none"), "{}", r.stdout);
}

/// Sets a TCP port at byte `at` and repairs the TCP checksum (rebuilding is simpler).
fn rewrite_port(f: Vec<u8>, at: usize, port: u16) -> Vec<u8> {
    let src = Ipv4Addr::new(f[26], f[27], f[28], f[29]);
    let dst = Ipv4Addr::new(f[30], f[31], f[32], f[33]);
    let (mut sp, mut dp) = (
        u16::from_be_bytes([f[34], f[35]]),
        u16::from_be_bytes([f[36], f[37]]),
    );
    if at == 34 {
        sp = port;
    } else {
        dp = port;
    }
    let out = tcp_v4(src, dst, sp, dp, f[47], &f[54..]);
    with_macs(
        out,
        <[u8; 6]>::try_from(&f[6..12]).unwrap(),
        <[u8; 6]>::try_from(&f[0..6]).unwrap(),
    )
}

#[test]
fn dr_and_tun_and_udp_every_packet() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let c = Ipv4Addr::new(198, 51, 100, 7);
    let dr_vip = Ipv4Addr::new(10, 0, 0, 101);
    let tun_vip = Ipv4Addr::new(10, 0, 0, 102);
    let vip = Ipv4Addr::new(10, 0, 0, 100);
    let input = vec![
        tcp_v4(c, dr_vip, 30000, 80, TCP_SYN, &[]),
        tcp_v4(c, dr_vip, 30000, 80, TCP_ACK | TCP_PSH, b"GET /"),
        tcp_v4(c, tun_vip, 30001, 80, TCP_SYN, &[]),
        tcp_v4(c, tun_vip, 30001, 80, TCP_ACK | TCP_PSH, b"GET /tun"),
        udp_v4(c, vip, 30002, 53, b"query"),
        with_macs(
            udp_v4(Ipv4Addr::new(192, 168, 1, 2), c, 5353, 30002, b"answer"),
            server_mac(Ipv4Addr::new(192, 168, 1, 2)),
            INSIDE_MAC,
        ),
    ];
    traffic::write_pcap(&d.join("in.pcap"), &input).unwrap();
    traffic::write_pcap(&d.join("empty.pcap"), &[]).unwrap();
    run(
        d,
        "0",
        &format!("rx_pcap={},tx_pcap={}", pcap(d, "in.pcap"), pcap(d, "out-o.pcap")),
        &format!(
            "rx_pcap={},tx_pcap={}",
            pcap(d, "empty.pcap"),
            pcap(d, "out-i.pcap")
        ),
    );
    let inside = read(d, &["out-i.pcap"]);
    let rs5 = Ipv4Addr::new(192, 168, 1, 5);
    let rs6 = Ipv4Addr::new(192, 168, 1, 6);
    // DR: only the MACs change.
    assert_eq!(
        inside[0],
        with_macs(input[0].clone(), INSIDE_MAC, server_mac(rs5))
    );
    assert_eq!(
        inside[1],
        with_macs(input[1].clone(), INSIDE_MAC, server_mac(rs5))
    );
    // TUN: an outer IPv4 header (protocol 4) from the director to the real server, the inner
    // packet byte for byte.
    for (k, f) in inside[2..4].iter().enumerate() {
        assert_eq!(&f[0..6], &server_mac(rs6));
        assert_eq!(&f[6..12], &INSIDE_MAC);
        assert_eq!(f[14], 0x45);
        assert_eq!(f[23], 4, "IP-in-IP");
        assert_eq!(&f[26..30], &[192, 168, 1, 1]);
        assert_eq!(&f[30..34], &rs6.octets());
        assert_eq!(u16::from_be_bytes([f[16], f[17]]) as usize, f.len() - 14);
        assert_eq!(&f[34..], &input[2 + k][14..], "inner packet untouched");
    }
    // UDP NAT, both ways.
    assert_eq!(
        inside[4],
        with_macs(
            with_ttl(
                udp_v4(c, Ipv4Addr::new(192, 168, 1, 2), 30002, 5353, b"query"),
                63
            ),
            INSIDE_MAC,
            server_mac(Ipv4Addr::new(192, 168, 1, 2))
        )
    );
    let outside = read(d, &["out-o.pcap"]);
    assert_eq!(
        outside,
        vec![with_macs(
            with_ttl(udp_v4(vip, c, 53, 30002, b"answer"), 63),
            OUTSIDE_MAC,
            GATEWAY_MAC
        )]
    );
    assert_eq!(inside.len(), 5);
}

#[test]
fn jumbo_frames_are_forwarded_whole_with_buffers_sized_from_the_mtu() {
    let dir = tempfile::tempdir().unwrap();
    let (client, vip) = (Ipv4Addr::new(198, 51, 100, 9), Ipv4Addr::new(10, 0, 0, 100));
    let data: Vec<u8> = (0..8900u32).map(|i| (i % 251) as u8).collect();
    let frames = vec![
        with_macs(
            tcp_v4(client, vip, 41000, 80, TCP_SYN, b""),
            GATEWAY_MAC,
            OUTSIDE_MAC,
        ),
        with_macs(
            tcp_v4(client, vip, 41000, 80, TCP_ACK | TCP_PSH, &data),
            GATEWAY_MAC,
            OUTSIDE_MAC,
        ),
    ];
    assert_eq!(frames[1].len(), 14 + 20 + 20 + 8900);
    traffic::write_pcap(&dir.path().join("in.pcap"), &frames).unwrap();
    traffic::write_pcap(&dir.path().join("empty.pcap"), &[]).unwrap();
    let head = HEAD
        .replace(
            "addresses = [\"203.0.113.1/24\"]",
            "addresses = [\"203.0.113.1/24\"]\nmtu = 9000",
        )
        .replace(
            "addresses = [\"192.168.1.1/24\"]",
            "addresses = [\"192.168.1.1/24\"]\nmtu = 9000",
        );
    let r = run_config(
        dir.path(),
        &head,
        "1",
        &format!(
            "rx_pcap={},tx_pcap={}",
            pcap(dir.path(), "in.pcap"),
            pcap(dir.path(), "out-o.pcap")
        ),
        &format!(
            "rx_pcap={},tx_pcap={}",
            pcap(dir.path(), "empty.pcap"),
            pcap(dir.path(), "out-i.pcap")
        ),
    );
    assert!(r.stdout.contains("drops: none"), "{}", r.stdout);
    let sent = read(dir.path(), &["out-i.pcap"]);
    assert_eq!(sent.len(), 2, "both frames forwarded");
    let big = &sent[1];
    assert_eq!(big.len(), frames[1].len(), "whole, one segment");
    assert_eq!(u16::from_be_bytes([big[36], big[37]]), 8080, "DNATed");
    assert_eq!(&big[54..], &data[..], "the payload intact");
    assert!(traffic::checksums_valid(big));
}

/// IPVS's persistence across cores: two workers, two rx queues, 50 clients of one /24 (the
/// service's -M) opening 10 connections each, spread over both queues. Flows are owned by
/// client address and port, so each client's connections land on both workers; every one
/// must reach the one real server the /24 is bound to.
#[test]
fn persistence_binds_a_netmask_to_one_server_across_workers_and_queues() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let head = format!(
        "{HEAD}\n[[service]]\nprotocol = \"tcp\"\naddress = \"10.0.0.104:443\"\nscheduler = \"rr\"\npersistence = 300\nnetmask = \"255.255.255.0\"\nreal = [\n    {{ address = \"192.168.1.2:443\", method = \"nat\" }},\n    {{ address = \"192.168.1.3:443\", method = \"nat\" }},\n    {{ address = \"192.168.1.4:443\", method = \"nat\" }},\n]\n"
    );
    let (mut q0, mut q1) = (Vec::new(), Vec::new());
    for c in 1..=50u8 {
        for p in 0..10u16 {
            let f = with_macs(
                tcp_v4(
                    Ipv4Addr::new(198, 51, 100, c),
                    Ipv4Addr::new(10, 0, 0, 104),
                    30000 + p,
                    443,
                    TCP_SYN,
                    b"",
                ),
                GATEWAY_MAC,
                OUTSIDE_MAC,
            );
            if (c as u16 + p).is_multiple_of(2) {
                q0.push(f);
            } else {
                q1.push(f);
            }
        }
    }
    traffic::write_pcap(&d.join("q0.pcap"), &q0).unwrap();
    traffic::write_pcap(&d.join("q1.pcap"), &q1).unwrap();
    let r = run_two_queues(d, &head);
    let out = read(d, &["i0.pcap", "i1.pcap"]);
    assert_eq!(out.len(), 500, "every SYN reached a server\n{}", r.stdout);
    let servers: std::collections::BTreeSet<Ipv4Addr> = out
        .iter()
        .map(|f| Ipv4Addr::new(f[30], f[31], f[32], f[33]))
        .collect();
    assert_eq!(servers.len(), 1, "one real server for the /24: {servers:?}");
    let redirected: u64 = r
        .stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix("workers: ")
                .and_then(|l| l.split("redirected ").nth(1))
                .and_then(|x| x.split(' ').next())
                .and_then(|n| n.parse().ok())
        })
        .unwrap();
    assert!(redirected > 50, "the flows crossed between workers: {redirected}");
}

#[test]
fn udp_fragments_in_order_out_of_order_first_last_and_past_the_hold() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let c = Ipv4Addr::new(198, 51, 100, 7);
    let vip = Ipv4Addr::new(10, 0, 0, 100);
    let rs = Ipv4Addr::new(192, 168, 1, 2);
    let body = |n: usize| -> Vec<u8> { (0..n).map(|i| (i * 13 + 5) as u8).collect() };
    let request = |port: u16, n: usize| udp_v4(c, vip, port, 53, &body(n));
    let mut input = Vec::new();
    // In order (3 fragments).
    input.extend(traffic::fragment_v4(&request(31000, 4000), 1480, 1));
    // Out of order: middle, last, first.
    let f = traffic::fragment_v4(&request(31001, 4000), 1480, 2);
    input.extend([f[1].clone(), f[2].clone(), f[0].clone()]);
    // The first last of five.
    let f = traffic::fragment_v4(&request(31002, 7000), 1480, 3);
    input.extend(f[1..].iter().cloned());
    input.push(f[0].clone());
    // 70 datagrams whose first fragment never comes: the hold (64) overflows, then times out.
    for k in 0..70u16 {
        let f = traffic::fragment_v4(&request(32000 + k, 3000), 1480, 100 + k);
        input.push(f[1].clone());
    }
    // A real server's large answer back through NAT.
    let answer = with_macs(
        udp_v4(rs, c, 5353, 31000, &body(4000)),
        server_mac(rs),
        INSIDE_MAC,
    );
    traffic::write_pcap(&d.join("in.pcap"), &input).unwrap();
    traffic::write_pcap(&d.join("in-i.pcap"), &traffic::fragment_v4(&answer, 1480, 9)).unwrap();
    let r = run(
        d,
        "0",
        &format!("rx_pcap={},tx_pcap={}", pcap(d, "in.pcap"), pcap(d, "out-o.pcap")),
        &format!(
            "rx_pcap={},tx_pcap={}",
            pcap(d, "in-i.pcap"),
            pcap(d, "out-i.pcap")
        ),
    );
    let inside = read(d, &["out-i.pcap"]);
    assert_eq!(
        inside.len(),
        3 + 3 + 5,
        "every fragment of the three complete datagrams"
    );
    // Held fragments are replayed after the burst their first came in: group by datagram.
    for (id, port, n) in [(1u16, 31000, 4000), (2, 31001, 4000), (3, 31002, 7000)] {
        let frags: Vec<Vec<u8>> = inside
            .iter()
            .filter(|f| f[18..20] == id.to_be_bytes())
            .cloned()
            .collect();
        let whole = traffic::reassemble_v4(&frags);
        assert!(traffic::checksums_valid(&whole), "datagram from port {port}");
        assert_eq!(&whole[30..34], &rs.octets());
        assert_eq!(u16::from_be_bytes([whole[34], whole[35]]), port);
        assert_eq!(u16::from_be_bytes([whole[36], whole[37]]), 5353);
        assert_eq!(&whole[42..], &body(n)[..]);
    }
    let outside = read(d, &["out-o.pcap"]);
    assert_eq!(outside.len(), 3, "the answer's three fragments");
    let whole = traffic::reassemble_v4(&outside);
    assert!(traffic::checksums_valid(&whole));
    assert_eq!(&whole[26..30], &vip.octets());
    assert_eq!(u16::from_be_bytes([whole[34], whole[35]]), 53);
    assert_eq!(&whole[42..], &body(4000)[..]);
    assert!(
        r.stdout
            .contains("fragments: first 4 followed 10 held 70 released 6"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("frag_hold_full 6"), "{}", r.stdout);
    // Held when rvsd stopped (before their 500 ms were up): counted as timed out.
    assert!(r.stdout.contains("frag_timeout 64"), "{}", r.stdout);
}

#[test]
fn fragments_split_across_two_queues_and_workers_reach_the_flows_owner() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let vip = Ipv4Addr::new(10, 0, 0, 100);
    let rs = Ipv4Addr::new(192, 168, 1, 2);
    let (mut q0, mut q1) = (Vec::new(), Vec::new());
    let n = 40u16;
    for k in 0..n {
        let c = Ipv4Addr::new(198, 51, 100, 10 + (k % 7) as u8);
        let data: Vec<u8> = (0..3000).map(|i| (i as u16 ^ k) as u8).collect();
        let frags = traffic::fragment_v4(&udp_v4(c, vip, 33000 + k, 53, &data), 1480, 500 + k);
        // The first fragment on one queue, the later ones on the other (alternating).
        let (first, rest) = if k % 2 == 0 {
            (&mut q0, &mut q1)
        } else {
            (&mut q1, &mut q0)
        };
        first.push(frags[0].clone());
        rest.extend(frags[1..].iter().cloned());
    }
    traffic::write_pcap(&d.join("q0.pcap"), &q0).unwrap();
    traffic::write_pcap(&d.join("q1.pcap"), &q1).unwrap();
    let r = run_two_queues(d, HEAD);
    let inside = read(d, &["i0.pcap", "i1.pcap"]);
    for k in 0..n {
        let frags: Vec<Vec<u8>> = inside
            .iter()
            .filter(|f| f[18..20] == (500 + k).to_be_bytes())
            .cloned()
            .collect();
        assert_eq!(frags.len(), 3, "datagram {k}:\n{}", r.stdout);
        let whole = traffic::reassemble_v4(&frags);
        assert!(traffic::checksums_valid(&whole), "datagram {k}");
        assert_eq!(&whole[30..34], &rs.octets());
        assert_eq!(u16::from_be_bytes([whole[34], whole[35]]), 33000 + k);
    }
    assert!(r.stdout.contains("drops: none"), "{}", r.stdout);
}
