//! rvsd and rvsadm as a user runs them.

use std::process::Command;

fn rvsd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rvsd"))
}

#[test]
fn version_names_rvs_and_both_dpdk_versions() {
    let out = rvsd().arg("--version").output().unwrap();
    assert!(out.status.success());
    let s = String::from_utf8(out.stdout).unwrap();
    assert!(
        s.starts_with(&format!("rvsd {} (git ", env!("CARGO_PKG_VERSION"))),
        "{s}"
    );
    assert!(s.contains("built against DPDK 22.11"), "{s}");
    assert!(s.contains("running DPDK 22.11"), "{s}");
}

#[test]
fn demo_balances_nat_traffic_over_three_servers() {
    let dir = tempfile::tempdir().unwrap();
    let out = rvsd()
        .args(["--demo", "--no-huge", "--flows", "300", "--cpu", "0", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("TCP  10.0.0.100:80 rr\n"), "{stdout}");
    for s in ["192.168.1.2:8080", "192.168.1.3:8080", "192.168.1.4:8080"] {
        assert!(
            stdout.contains(&format!("  -> {s:<28} Masq    1      0          100       ")),
            "{s} in\n{stdout}"
        );
    }
    assert!(stdout.contains("drops: none"), "{stdout}");
    assert!(
        stdout.contains("mbufs in use: 0 at start, 0 at the end"),
        "{stdout}"
    );
    assert!(stdout.contains("1500 frames to the real servers"), "{stdout}");
    assert!(stdout.contains("900 frames to the clients"), "{stdout}");
}

#[test]
fn demo_on_a_missing_cpu_fails_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = rvsd()
        .args(["--demo", "--no-huge", "--flows", "10", "--cpu", "999", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("CPU 999 does not exist"), "{err}");
}

#[test]
fn no_arguments_is_a_usage_error() {
    let out = rvsd().output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("rvsd --config FILE"));
}

#[test]
fn shipped_configs_pass_check() {
    for f in [
        "configs/nat.toml",
        "configs/dr.toml",
        "configs/tun.toml",
        "configs/host.toml",
        "configs/ha/dr-a.toml",
        "configs/ha/dr-b.toml",
        "configs/ha/nat-a.toml",
        "configs/ha/nat-b.toml",
        "configs/ecmp/director.toml",
    ] {
        let out = rvsd()
            .args(["--check", f])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{f}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains(": ok ("));
    }
}

/// `program` (installed by dpdk/setup.sh) accepts each shipped file: it exits non-zero on any
/// unknown keyword or bad value.
fn accepted_by(program: &str, args: &[&str], files: &[&str]) {
    for f in files {
        let path = format!("{}/configs/{f}", env!("CARGO_MANIFEST_DIR"));
        let out = std::process::Command::new(program)
            .args(args)
            .arg(&path)
            .output()
            .unwrap_or_else(|e| panic!("{program} (dpdk/setup.sh installs it): {e}"));
        assert!(
            out.status.success(),
            "{path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The peers' configurations shipped beside rvs's: keepalived's for the HA pairs, BIRD's for
/// ECMP.
#[test]
fn shipped_keepalived_and_bird_configs_are_accepted_by_them() {
    accepted_by(
        "keepalived",
        &["--config-test", "-f"],
        &[
            "ha/keepalived-dr-a.conf",
            "ha/keepalived-dr-b.conf",
            "ha/keepalived-nat-a.conf",
            "ha/keepalived-nat-b.conf",
        ],
    );
    accepted_by(
        "bird",
        &["-p", "-c"],
        &["ecmp/bird-director.conf", "ecmp/bird-router.conf"],
    );
}

#[test]
fn a_bad_config_lists_every_bad_field_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        r#"
[dataplane]
workers = [0, 0]
[[port]]
device = "net_null0"
addresses = ["10.0.0.1/33"]
host_interface = "lo"
[[service]]
protocol = "tcp"
address = "10.0.0.100:80"
scheduler = "fastest"
check = { type = "http", status = [700], rise = 0 }
[[service.real]]
address = "10.0.0.5:8080"
method = "dr"
weight = -3
"#,
    )
    .unwrap();
    for flag in ["--check", "--config"] {
        let out = rvsd().arg(flag).arg(&path).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{flag}");
        let err = String::from_utf8_lossy(&out.stderr);
        for want in [
            "dataplane.workers[1]: CPU 0 is listed twice",
            "port[0].addresses[0]: \"10.0.0.1/33\" is not an address with prefix",
            "port[0].host_interface: \"lo\" clashes with an existing interface",
            "service[0].check.status[0]: 700 is not an HTTP status (100..=599)",
            "service[0].check.rise: 0 is outside 1..=100",
            "service[0].scheduler: unknown scheduler \"fastest\"",
            "service[0].real[0].weight: -3 is outside 0..=65535",
            "service[0].real[0].address: port 8080 differs from the virtual port 80",
        ] {
            assert!(err.contains(want), "{flag}: {want:?} missing from\n{err}");
        }
    }
    let missing = rvsd()
        .args(["--check", "/nonexistent/rvs.toml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("reading /nonexistent/rvs.toml"));
}

#[test]
fn a_device_that_does_not_probe_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rvs.toml");
    std::fs::write(
        &path,
        "[dataplane]\nworkers = [0]\n[eal]\nmemory = \"no-huge\"\n[[port]]\nname = \"up\"\ndevice = \"net_pcap_x9,rx_pcap=/nonexistent.pcap,tx_pcap=/tmp/x.pcap\"\naddresses = [\"10.0.0.1/24\"]\n",
    )
    .unwrap();
    let out = rvsd().arg("--config").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("port \"up\" (net_pcap_x9"), "{err}");
    assert!(err.contains("rte_dev_probe failed"), "{err}");
}

#[test]
fn a_second_rvsd_on_the_same_config_is_refused_before_it_touches_a_port() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    rvs_traffic::write_pcap(&dir.path().join("in.pcap"), &[]).unwrap();
    let config = format!(
        r#"
[dataplane]
workers = [1]
[eal]
memory = "no-huge"
[control]
socket = "{d}/rvs.sock"
[[port]]
name = "lan"
device = "net_pcap_twice{pid},rx_pcap={d}/in.pcap,tx_pcap={d}/out.pcap"
addresses = ["10.0.0.1/24"]
mac = "02:00:00:00:00:aa"
[[service]]
address = "10.0.0.100:80"
real = [{{ address = "10.0.0.2" }}]
"#,
        pid = std::process::id()
    );
    let path = dir.path().join("rvs.toml");
    std::fs::write(&path, config).unwrap();
    let first = rvsd()
        .arg("--config")
        .arg(&path)
        .args(["--duration", "3"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let sock = dir.path().join("rvs.sock");
    let start = std::time::Instant::now();
    while !sock.exists() && start.elapsed() < std::time::Duration::from_secs(20) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(sock.exists(), "the first rvsd serves its socket");
    let second = rvsd()
        .arg("--config")
        .arg(&path)
        .args(["--duration", "3"])
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains(&format!(
            "another rvsd (pid {}) runs with this config",
            first.id()
        )),
        "{err}"
    );
    assert!(!err.contains("EAL"), "refused before EAL: {err}");
    let out = first.wait_with_output().unwrap();
    assert!(out.status.success());
    // The first instance's output is whole: its gratuitous ARP for the VIP is there.
    let sent = rvs_traffic::read_pcap(&dir.path().join("out.pcap")).unwrap();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(&sent[0][12..14], &[0x08, 0x06]);
}
