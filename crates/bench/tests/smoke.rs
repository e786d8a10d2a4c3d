//! The bench harness in its CI mode: seconds long, checks that the replay's output packets are
//! right and that the report (JSON and PNG) is produced. Asserts no timing.

use std::process::Command;

#[test]
fn smoke_replay_is_correct_and_the_report_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rvs-bench"))
        .args(["--smoke", "--no-huge", "--seconds", "0.5", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("verified: 8000 frames replayed, every output checked"),
        "{stdout}"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(report["verified_packets"], 8000);
    let results = report["results"].as_array().unwrap();
    let names: Vec<&str> = results
        .iter()
        .map(|r| r["workload"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["established-1k", "new-connections", "nat-mixed-1k"]);
    for r in results {
        // Both forwarders ran and moved packets (rates themselves are not judged here).
        assert!(r["baseline_mpps"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["rvs_mpps"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["latency_per_burst"]["p50_ns"].as_u64().unwrap() > 0, "{r}");
        assert_eq!(r["drops"].as_array().unwrap().len(), 0, "no drops: {r}");
    }
    assert!(
        results[1]["conns_created"].as_u64().unwrap() >= 20_000,
        "every SYN made a connection"
    );
    let png = std::fs::read(dir.path().join("report.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
}
