//! rvsadm on its own, as a user meets it before any rvsd runs: its version, its help, the
//! exit status of a bad command line (2, with ipvsadm's message) and of an unreachable daemon
//! (1, saying where it looked).

use std::process::Command;

fn rvsadm(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rvsadm"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn version_and_help_need_no_daemon() {
    let v = rvsadm(&["--version"]);
    assert!(v.status.success());
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("rvsadm 0."));
    let h = rvsadm(&["-h"]);
    assert!(h.status.success());
    let help = String::from_utf8_lossy(&h.stdout);
    for o in [
        "--add-service",
        "--fwmark-service",
        "--add-mark",
        "--start-daemon",
        "--tun-info",
    ] {
        assert!(help.contains(o), "{o} in the help");
    }
}

#[test]
fn a_bad_command_line_is_a_usage_error_with_ipvsadms_message() {
    let bad = rvsadm(&["-A", "-t"]);
    assert_eq!(bad.status.code(), Some(2), "a bad command line is a usage error");
    let twice = rvsadm(&["-A", "-t", "10.0.0.1:80", "-u", "10.0.0.1:53"]);
    assert_eq!(twice.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&twice.stderr)
        .starts_with("rvsadm: multiple 'service-address' options specified"));
    let illegal = rvsadm(&["-C", "-n"]);
    assert!(String::from_utf8_lossy(&illegal.stderr)
        .contains("Illegal 'numeric' option with the 'flush' command"));
}

#[test]
fn an_unreachable_daemon_is_an_error_that_names_the_socket() {
    let dir = std::env::temp_dir().join(format!("rvsadm-cli-{}", std::process::id()));
    let sock = dir.join("none.sock");
    let no = Command::new(env!("CARGO_BIN_EXE_rvsadm"))
        .arg("--socket")
        .arg(&sock)
        .arg("-Ln")
        .output()
        .unwrap();
    assert_eq!(no.status.code(), Some(1));
    let err = String::from_utf8_lossy(&no.stderr);
    assert!(
        err.contains("cannot reach rvsd at") && err.contains("none.sock"),
        "{err}"
    );
    let env = Command::new(env!("CARGO_BIN_EXE_rvsadm"))
        .env("RVS_SOCKET", &sock)
        .arg("-Ln")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&env.stderr).contains("none.sock"),
        "RVS_SOCKET is used"
    );
}
