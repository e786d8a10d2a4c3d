//! A firewall-mark service with real kernels: the classic sticky HTTP+HTTPS set-up. Three real
//! servers behind NAT each serve HTTP on 80 and HTTPS (TLS, self-signed) on 443; one mark takes
//! both ports of the VIP, persistent, and curl from three client addresses makes HTTP and
//! HTTPS requests, each a new connection: every client stays on one server for both ports, and
//! rr spreads the clients. The mark's rule is added at run time with rvsadm. Needs root.

mod common;

use std::process::Command;
use std::time::Duration;

use common::netns::{config_head, rvsadm, sh, wait_for_socket, wait_until, Lab, Rvsd};

/// A threaded HTTPS server on argv[1]:argv[2] with certificate argv[3] and key argv[4],
/// serving directory argv[5].
const HTTPS_SERVER: &str = "import http.server, os, socketserver, ssl, sys
class S(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
os.chdir(sys.argv[5])
s = S((sys.argv[1], int(sys.argv[2])), http.server.SimpleHTTPRequestHandler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[3], sys.argv[4])
s.socket = ctx.wrap_socket(s.socket, server_side=True)
s.serve_forever()
";

/// One GET from `ns`, from source address `src` (TLS not verified: a test certificate).
fn get(ns: &str, src: &str, url: &str) -> Option<String> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "curl", "-sk", "--fail", "--max-time", "2"])
        .args(["--interface", src, url])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[test]
fn http_and_https_of_one_mark_stick_to_one_server_per_client() {
    let mut lab = Lab::new("fw");
    let p = lab.p.clone();
    let vip = "10.70.2.100";
    let c = lab.ns("c");
    let (out_if, _) = lab.veth("o", "oc", Some(&c));
    let clients = ["10.74.0.2", "10.74.0.3", "10.74.0.4"];
    for a in clients {
        sh(&format!("ip netns exec {c} ip addr add {a}/24 dev {p}oc"));
    }
    sh(&format!("ip netns exec {c} ip route add default via 10.74.0.1"));
    let (in_if, in_br) = lab.veth("i", "ib", None);
    let mut bridged = vec![in_br];
    let dir = std::env::temp_dir().join(format!("{p}-tls"));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    sh(&format!(
        "openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=rvs-test -days 1 -keyout {} -out {} 2>/dev/null",
        key.display(),
        cert.display()
    ));
    for k in 1..=3 {
        let s = lab.ns(&format!("s{k}"));
        let (br_end, _) = lab.veth(&format!("s{k}b"), &format!("s{k}"), Some(&s));
        let addr = format!("10.75.0.1{k}");
        sh(&format!(
            "ip netns exec {s} ip addr add {addr}/24 dev {p}s{k}; ip netns exec {s} ip route add default via 10.75.0.1"
        ));
        bridged.push(br_end);
        let name = format!("server{k}");
        lab.http_server_on(&s, &addr, 80, &name);
        let docs = std::env::temp_dir().join(format!("{p}-{name}"));
        lab.spawn_in(
            &s,
            &[
                "python3",
                "-c",
                HTTPS_SERVER,
                &addr,
                "443",
                cert.to_str().unwrap(),
                key.to_str().unwrap(),
                docs.to_str().unwrap(),
            ],
        );
        wait_until(Duration::from_secs(15), || {
            get(&s, &addr, &format!("https://{addr}/"))
        })
        .unwrap_or_else(|| panic!("the HTTPS server {name} never answered"));
    }
    let refs: Vec<&str> = bridged.iter().map(String::as_str).collect();
    lab.bridge("br", &refs);
    let socket = lab.socket();
    let config = config_head(&socket)
        + &format!(
            r#"
[[port]]
name = "outside"
device = "net_af_packet_{p}o,iface={out_if}"
addresses = ["10.74.0.1/24"]
[[port]]
name = "inside"
device = "net_af_packet_{p}i,iface={in_if}"
addresses = ["10.75.0.1/24"]
[[service]]
fwmark = 1
scheduler = "rr"
persistence = 360
real = [
    {{ address = "10.75.0.11", method = "nat" }},
    {{ address = "10.75.0.12", method = "nat" }},
    {{ address = "10.75.0.13", method = "nat" }},
]
"#
        );
    let mut rvsd = Some(Rvsd::start(&lab, &config));
    wait_for_socket(&socket);
    let http = format!("http://{vip}/");
    let https = format!("https://{vip}/");
    assert_eq!(get(&c, clients[0], &http), None, "no rule yet: nothing is marked");
    rvsadm(
        &socket,
        &[
            "--add-mark",
            "1",
            "--proto",
            "tcp",
            "--dest",
            vip,
            "--dports",
            "80,443",
        ],
    );
    if wait_until(Duration::from_secs(45), || get(&c, clients[0], &http)).is_none() {
        let report = rvsd.take().map(Rvsd::stop).unwrap_or_default();
        panic!("the marked VIP never answered; rvsd's report:\n{report}");
    }
    let mut by_client = Vec::new();
    for src in clients {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..5 {
            for url in [&http, &https] {
                let body = get(&c, src, url).unwrap_or_else(|| panic!("{src} -> {url} failed"));
                seen.insert(body);
            }
        }
        assert_eq!(seen.len(), 1, "{src}: HTTP and HTTPS on one server: {seen:?}");
        by_client.push(seen.into_iter().next().unwrap());
    }
    let distinct: std::collections::BTreeSet<_> = by_client.iter().collect();
    assert_eq!(
        distinct.len(),
        3,
        "rr gives each client a server of its own: {by_client:?}"
    );
    let listing = rvsadm(&socket, &["-Ln"]);
    assert!(listing.contains("FWM  1 rr persistent 360"), "{listing}");
    let conns = rvsadm(&socket, &["-Lnc"]);
    // IPVS's fwmark templates: protocol IP, the mark as the virtual address.
    assert!(
        conns
            .lines()
            .any(|l| l.starts_with("IP ") && l.contains("NONE        10.74.0.2:0        0.0.0.1:0")),
        "{conns}"
    );
    let report = rvsd.take().map(Rvsd::stop).unwrap_or_default();
    println!(
        "fwmark HTTP+HTTPS: 3 clients x 10 requests, servers {by_client:?}\n{listing}\n{conns}\n{report}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
