//! The commands a CI pipeline runs: `rvs-replay` (a verdict on a replay against expected
//! captures), `rvsd --report-json`, `rvs-bench --pcap` on a user's capture and config, and
//! `rvs-bench --compare`; each with the bad input it must refuse with exit status 2.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rvs_traffic::{self as traffic, NatDemo};

struct Demo {
    dir: tempfile::TempDir,
}

impl Demo {
    /// The demo's traffic (200 conversations) and its config, pointing at files in a temporary
    /// directory; `edit` changes the config text.
    fn new(edit: impl Fn(String) -> String) -> Demo {
        let dir = tempfile::tempdir().unwrap();
        let (frames, _) = NatDemo {
            flows: 200,
            ..Default::default()
        }
        .frames();
        traffic::write_pcap(&dir.path().join("demo-in.pcap"), &frames).unwrap();
        traffic::write_pcap(&dir.path().join("demo-empty.pcap"), &[]).unwrap();
        let text = include_str!("../configs/demo.toml")
            .replace("@DIR@", dir.path().to_str().unwrap())
            .replace("@CPU@", "1")
            .replace("@MEMORY@", "no-huge")
            .replace("net_pcap_outside0", &format!("net_pcap_o{}", std::process::id()))
            .replace("net_pcap_inside0", &format!("net_pcap_i{}", std::process::id()));
        std::fs::write(dir.path().join("lb.toml"), edit(text)).unwrap();
        Demo { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn replay(&self, extra: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_rvs-replay"))
            .arg("--config")
            .arg(self.path("lb.toml"))
            .args(extra)
            .output()
            .unwrap()
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A first replay's outputs, kept as the expected captures.
fn golden(d: &Demo) -> (PathBuf, PathBuf) {
    let o = d.replay(&[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let (inside, outside) = (d.path("expected-inside.pcap"), d.path("expected-outside.pcap"));
    std::fs::copy(d.path("demo-out-inside.pcap"), &inside).unwrap();
    std::fs::copy(d.path("demo-out-outside.pcap"), &outside).unwrap();
    (inside, outside)
}

fn write_pcapng(path: &Path, frames: &[Vec<u8>]) {
    use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
    use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock;
    use pcap_file::pcapng::PcapNgWriter;
    use pcap_file::DataLink;
    let mut w = PcapNgWriter::new(std::fs::File::create(path).unwrap()).unwrap();
    w.write_pcapng_block(InterfaceDescriptionBlock {
        linktype: DataLink::ETHERNET,
        snaplen: 0,
        options: vec![],
    })
    .unwrap();
    for f in frames {
        w.write_pcapng_block(EnhancedPacketBlock {
            interface_id: 0,
            timestamp: std::time::Duration::from_secs(1),
            original_len: f.len() as u32,
            data: f.as_slice().into(),
            options: vec![],
        })
        .unwrap();
    }
}

#[test]
fn rvs_replay_matches_the_same_output_and_names_the_first_difference() {
    let d = Demo::new(|t| t);
    let (inside, outside) = golden(&d);
    let exp = |port: &str, p: &Path| format!("--expect={port}={}", p.display());
    let o = d.replay(&[
        &exp("inside", &inside),
        &exp("outside", &outside),
        "--report-json",
    ]);
    // --report-json needs a file: clap refuses (a usage error is exit 2 too).
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let json = d.path("run.json");
    let o = d.replay(&[
        &exp("inside", &inside),
        &exp("outside", &outside),
        "--report-json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("inside: 1001 frames, as expected"), "{t}");
    assert!(t.contains("outside: 601 frames, as expected"), "{t}");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["schema"], "rvs-run-report");
    assert_eq!(report["schema_version"], 1);
    assert_eq!(report["ports"][1]["tx"], 1001);

    // The same expectation as pcapng.
    let ng = d.path("expected-inside.pcapng");
    write_pcapng(&ng, &traffic::read_pcap(&inside).unwrap());
    let o = d.replay(&[&exp("inside", &ng)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // Another real-server port: the first difference, by field, with both frames summarised.
    let changed = Demo::new(|t| t.replace("192.168.1.3:8080", "192.168.1.3:8081"));
    let o = changed.replay(&[&exp("inside", &inside)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("inside: frame 3 differs in tcp.dst_port: expected 8080 (0x1f90), got 8081 (0x1f91)"),
        "{t}"
    );
    assert!(t.contains("  expected: 02:00:00:00:00:b0 > 02:11:c0:a8:01:03 IPv4 198.51.100.2 > 192.168.1.3 ttl 63 TCP 20000 > 8080 [SYN]"), "{t}");
    assert!(t.contains("  got:      02:00:00:00:00:b0 > 02:11:c0:a8:01:03 IPv4 198.51.100.2 > 192.168.1.3 ttl 63 TCP 20000 > 8081 [SYN]"), "{t}");
    // An expected capture of another length.
    let short = d.path("short.pcap");
    let mut frames = traffic::read_pcap(&inside).unwrap();
    frames.truncate(100);
    traffic::write_pcap(&short, &frames).unwrap();
    let o = d.replay(&[&exp("inside", &short)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("frame 101 differs in frame count: expected 100 frames, got 1001 frames"),
        "{}",
        text(&o)
    );
}

#[test]
fn rvs_replay_refuses_bad_input_with_status_2() {
    let d = Demo::new(|t| t);
    let corrupt = d.path("corrupt.pcap");
    let whole = std::fs::read(d.path("demo-in.pcap")).unwrap();
    std::fs::write(&corrupt, &whole[..whole.len() - 7]).unwrap();
    let raw_ip = d.path("raw.pcap");
    {
        use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
        let header = PcapHeader {
            datalink: pcap_file::DataLink::RAW,
            ..Default::default()
        };
        let mut w = PcapWriter::with_header(std::fs::File::create(&raw_ip).unwrap(), header).unwrap();
        w.write_packet(&PcapPacket::new(std::time::Duration::ZERO, 20, &[0x45; 20]))
            .unwrap();
    }
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![format!("--expect=inside={}", corrupt.display())],
            "corrupt.pcap: frame 1600: ",
        ),
        (
            vec![format!("--expect=inside={}", raw_ip.display())],
            "raw.pcap: link type",
        ),
        (
            vec!["--expect=nosuch=x.pcap".into()],
            "no port \"nosuch\" (ports: outside, inside)",
        ),
        (vec!["--expect=inside".into()], "give PORT=FILE"),
        (
            vec![format!("--expect=inside={}", d.path("lb.toml").display())],
            "is not a pcap or pcapng capture",
        ),
    ];
    for (args, want) in cases {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = d.replay(&refs);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(want), "{args:?}: {want:?} in {}", text(&o));
    }
    // A replayed input cut short, a port that writes no pcap, a config that does not validate.
    let cut = Demo::new(|t| t);
    std::fs::write(cut.path("demo-in.pcap"), &whole[..whole.len() - 7]).unwrap();
    let o = cut.replay(&[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("port \"outside\": ") && text(&o).contains("demo-in.pcap: frame 1600: "),
        "{}",
        text(&o)
    );
    let no_tx = Demo::new(|t| {
        t.replace(",tx_pcap=", ",iface_unused=")
            .replace("iface_unused=", "tx_pcap_x=")
    });
    let o = no_tx.replay(&["--expect=inside=x.pcap"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("port \"inside\" writes no pcap (give its device tx_pcap=FILE)"),
        "{}",
        text(&o)
    );
    let invalid = Demo::new(|t| t.replace("scheduler = \"rr\"", "scheduler = \"fastest\""));
    let o = invalid.replay(&[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("service[0].scheduler: unknown scheduler \"fastest\""),
        "{}",
        text(&o)
    );
}

#[test]
fn rvsd_writes_its_report_as_json() {
    let d = Demo::new(|t| t);
    let json = d.path("report.json");
    let o = Command::new(env!("CARGO_BIN_EXE_rvsd"))
        .arg("--config")
        .arg(d.path("lb.toml"))
        .args(["--exit-idle", "300", "--duration", "60", "--report-json"])
        .arg(&json)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(r["schema"], "rvs-run-report");
    assert_eq!(r["ports"][0]["name"], "outside");
    assert_eq!(r["totals"]["conns_created"], 200);
    assert_eq!(r["services"][0]["reals"].as_array().unwrap().len(), 3);
    assert_eq!(r["mbufs"]["in_use_start"], r["mbufs"]["in_use_end"]);
    assert!(r["drops"].as_object().unwrap().is_empty(), "{r}");
    // The text report says the same.
    let t = text(&o);
    assert!(
        t.contains(&format!("forwarded {}", r["totals"]["forwarded"])),
        "{t}"
    );
}

#[test]
fn rvs_bench_replays_a_users_capture_and_compares_reports() {
    let d = Demo::new(|t| t);
    let bench = |args: &[&str]| {
        Command::new(common::sibling_bin("rvs-bench", "rvs-bench"))
            .args(args)
            .output()
            .unwrap()
    };
    let out1 = d.path("b1");
    let input = d.path("demo-in.pcap");
    let o = bench(&[
        "--pcap",
        input.to_str().unwrap(),
        "--config",
        d.path("lb.toml").to_str().unwrap(),
        "--seconds",
        "0.3",
        "--no-huge",
        "--out",
        out1.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let report = out1.join("report.json");
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["results"][0]["workload"]["name"], "demo-in");
    assert_eq!(r["results"][0]["workload"]["kind"], "capture");
    assert_eq!(r["results"][0]["frames_in_pcap"], 1600);
    assert!(r["results"][0]["rvs_mpps"].as_f64().unwrap() > 0.0);
    assert!(out1.join("report.png").exists());

    // --compare: ratios side by side; a drop beyond --max-drop is a regression (exit 1).
    let faster = d.path("faster.json");
    let mut v = r.clone();
    let ratio = v["results"][0]["ratio_to_baseline"].as_f64().unwrap();
    v["results"][0]["ratio_to_baseline"] = serde_json::json!(ratio * 2.0);
    std::fs::write(&faster, v.to_string()).unwrap();
    let (old, new) = (report.to_str().unwrap(), faster.to_str().unwrap());
    let o = bench(&["--compare", old, new]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("+100.0%"), "{}", text(&o));
    let o = bench(&["--compare", new, old, "--max-drop", "10"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("-50.0%  REGRESSED (more than 10% down)"),
        "{}",
        text(&o)
    );
    let o = bench(&["--compare", new, old, "--max-drop", "60"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // Bad input: exit 2, the file named.
    let lb = d.path("lb.toml");
    let bad_toml = d.path("bad.toml");
    std::fs::write(
        &bad_toml,
        "[[port]]\nname = \"a\"\n[[service]]\naddress = \"10.0.0.1:80\"\nscheduler = \"fastest\"\n",
    )
    .unwrap();
    for (args, want) in [
        (vec!["--compare", old, lb.to_str().unwrap()], "lb.toml: not JSON"),
        (
            vec!["--pcap", lb.to_str().unwrap()],
            "lb.toml: is not a pcap or pcapng capture",
        ),
        (
            vec![
                "--pcap",
                input.to_str().unwrap(),
                "--config",
                bad_toml.to_str().unwrap(),
            ],
            "service[0].scheduler: unknown scheduler \"fastest\"",
        ),
    ] {
        let o = bench(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(want), "{args:?}: {}", text(&o));
    }
}
