//! `/metrics` scraped during and after a replay: the exposition parses (prometheus-parse, and
//! a line check of the text format), and its values agree with the input and rvsd's own report.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rvs_traffic::{self as traffic, NatDemo};

fn get(port: u16, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (head.to_string(), body.to_string())
}

fn value(scrape: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
            _ => panic!("{metric}: not a counter or gauge"),
        })
        .sum()
}

#[test]
fn metrics_agree_with_the_replay_and_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let demo = NatDemo {
        flows: 300,
        ..Default::default()
    };
    let (frames, expect) = demo.frames();
    traffic::write_pcap(&dir.path().join("demo-in.pcap"), &frames).unwrap();
    traffic::write_pcap(&dir.path().join("demo-empty.pcap"), &[]).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = include_str!("../configs/demo.toml")
        .replace("@DIR@", dir.path().to_str().unwrap())
        .replace("@CPU@", "1")
        .replace("@MEMORY@", "no-huge")
        .replace("net_pcap_outside0", &format!("net_pcap_mo{}", std::process::id()))
        .replace("net_pcap_inside0", &format!("net_pcap_mi{}", std::process::id()))
        .replace(
            "[eal]",
            &format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n\n[eal]"),
        );
    std::fs::write(dir.path().join("rvs.toml"), text).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rvsd"))
        .arg("--config")
        .arg(dir.path().join("rvs.toml"))
        .args(["--exit-idle", "2500", "--duration", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Scrape until the replay is in, then once more for the figures.
    let start = Instant::now();
    let scrape = loop {
        assert!(start.elapsed() < Duration::from_secs(20), "no complete scrape");
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            panic!("rvsd exited ({status}) before a complete scrape: {err}");
        }
        if TcpStream::connect(("127.0.0.1", port)).is_err() {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        let (head, body) = get(port, "/metrics");
        assert!(head.starts_with("HTTP/1.0 200 OK"), "{head}");
        assert!(head.contains("text/plain; version=0.0.4"), "{head}");
        let parsed = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).unwrap();
        if value(
            &parsed,
            "rvs_port_packets_total",
            &[("port", "outside"), ("direction", "rx")],
        ) == frames.len() as f64
        {
            std::thread::sleep(Duration::from_millis(300));
            let (_, body) = get(port, "/metrics");
            // The text format, line by line: comments, or `name{labels} value`.
            for l in body.lines() {
                let ok = l.starts_with("# HELP rvs_")
                    || l.starts_with("# TYPE rvs_")
                    || (l.starts_with("rvs_")
                        && l.rsplit_once(' ').is_some_and(|(_, v)| v.parse::<f64>().is_ok()));
                assert!(ok, "not exposition format: {l:?}");
            }
            break (
                prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).unwrap(),
                body,
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (scrape, body) = scrape;
    let (head, _) = get(port, "/other");
    assert!(head.starts_with("HTTP/1.0 404"), "{head}");
    let out = child.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{report}");

    let svc = [("service", "tcp/10.0.0.100:80")];
    let in_pkts = value(&scrape, "rvs_real_packets_total", &[svc[0], ("direction", "in")]);
    let out_pkts = value(&scrape, "rvs_real_packets_total", &[svc[0], ("direction", "out")]);
    assert_eq!(in_pkts, expect.to_servers as f64, "requests to the servers");
    assert_eq!(out_pkts, expect.to_clients as f64, "replies to the clients");
    assert_eq!(value(&scrape, "rvs_real_connections_total", &svc), 300.0);
    assert_eq!(value(&scrape, "rvs_drops_total", &[]), 0.0);
    assert_eq!(
        value(&scrape, "rvs_worker_packets_total", &[("kind", "received")]),
        frames.len() as f64
    );
    // The connections' data took the established path: some of what was forwarded.
    let established = value(&scrape, "rvs_established_path_packets_total", &[]);
    let forwarded = value(&scrape, "rvs_worker_packets_total", &[("kind", "forwarded")]);
    assert!(
        established > 0.0 && established <= forwarded,
        "{established} of {forwarded} forwarded"
    );
    // The same figures as the report's --stats table.
    let stats_line = report
        .lines()
        .find(|l| l.starts_with("TCP  10.0.0.100:80") && l.split_whitespace().count() == 7)
        .unwrap_or_else(|| panic!("{report}"));
    let n: Vec<f64> = stats_line
        .split_whitespace()
        .skip(2)
        .map(|x| x.parse().unwrap())
        .collect();
    assert_eq!((n[0], n[1], n[2]), (300.0, in_pkts, out_pkts), "{stats_line}");
    // The device's and the pool's figures, and each worker's busy time.
    let rx_bytes = value(
        &scrape,
        "rvs_port_bytes_total",
        &[("port", "outside"), ("direction", "rx")],
    );
    let in_bytes: usize = frames.iter().map(Vec::len).sum();
    assert_eq!(
        rx_bytes, in_bytes as f64,
        "the outside port received every input byte"
    );
    assert_eq!(value(&scrape, "rvs_port_errors_total", &[]), 0.0);
    let mbufs = value(&scrape, "rvs_mbufs", &[]);
    let in_use = value(&scrape, "rvs_mbufs_in_use", &[]);
    assert!(mbufs >= 1023.0 && in_use <= mbufs, "{in_use} of {mbufs}");
    let busy = value(&scrape, "rvs_worker_busy_seconds_total", &[("worker", "0")]);
    assert!(busy > 0.0 && busy < 60.0, "worker 0 was busy {busy} s");
    for family in [
        "rvs_real_connection_rate",
        "rvs_real_packet_rate",
        "rvs_real_byte_rate",
    ] {
        assert!(
            scrape.samples.iter().any(|x| x.metric == family),
            "{family} is exposed"
        );
    }
    // The Grafana dashboard under contrib/ asks only for families rvsd exposes.
    let families: std::collections::BTreeSet<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let dashboard = include_str!("../contrib/grafana/rvs-dashboard.json");
    let _: serde_json::Value = serde_json::from_str(dashboard).expect("the dashboard is JSON");
    let asked: std::collections::BTreeSet<&str> = dashboard
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("rvs_"))
        .collect();
    // (The host path's family appears only when a port has a twin; this config has none.)
    let missing: Vec<&&str> = asked
        .iter()
        .filter(|m| !families.contains(**m) && **m != "rvs_host_path_frames_total")
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboard asks for {missing:?}, not exposed"
    );
    let first40: Vec<&str> = body.lines().take(40).collect();
    println!("{}", first40.join("\n"));
}
