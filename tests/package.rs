//! The Debian package, installed on this machine as an operator would: rvsd and rvsadm run
//! from /usr/sbin, the example configuration under /etc/rvs passes `rvsd --check`, the unit
//! passes `systemd-analyze verify`, the man pages render without warnings, the completions
//! parse; then it is purged and leaves nothing behind. Needs root (dpkg).

mod common;

use std::path::Path;
use std::process::Command;

fn run(cmd: &str, args: &[&str]) -> std::process::Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"))
}

fn ok(cmd: &str, args: &[&str]) -> String {
    let o = run(cmd, args);
    assert!(
        o.status.success(),
        "{cmd} {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Purges the package when the test ends, pass or fail.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = run("dpkg", &["--purge", "rvs"]);
    }
}

#[test]
fn the_package_installs_runs_and_purges_cleanly() {
    assert!(common::netns::is_root(), "installing a package needs root");
    let bins = common::rvsadm_bin().parent().unwrap().to_path_buf();
    let root = env!("CARGO_MANIFEST_DIR");
    let build = Command::new(format!("{root}/packaging/build-deb.sh"))
        .args(["--bin-dir", bins.to_str().unwrap()])
        .env("RVS_DEB_COMPRESSION", "none")
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let deb = String::from_utf8_lossy(&build.stdout).into_owned();
    let deb = Path::new(root).join(deb.trim());
    let files = ok("dpkg-deb", &["-c", deb.to_str().unwrap()]);
    println!("{files}");
    let _installed = Installed;
    ok("dpkg", &["-i", deb.to_str().unwrap()]);

    assert!(ok("/usr/sbin/rvsd", &["--version"]).starts_with("rvsd 0."));
    ok("/usr/sbin/rvsd", &["--check", "/etc/rvs/rvs.toml"]);
    for example in ["nat.toml", "dr.toml", "ha/dr-a.toml", "ecmp/director.toml"] {
        ok(
            "/usr/sbin/rvsd",
            &["--check", &format!("/usr/share/doc/rvs/examples/{example}")],
        );
    }
    assert!(ok("/usr/sbin/rvsadm", &["-h"]).contains("--add-service"));
    assert_eq!(run("/usr/sbin/rvsadm", &["-C", "-n"]).status.code(), Some(2));
    for page in ["man8/rvsd.8.gz", "man8/rvsadm.8.gz", "man5/rvs.toml.5.gz"] {
        let sh = format!("zcat /usr/share/man/{page} | groff -man -ww -z 2>&1");
        let out = ok("sh", &["-c", &sh]);
        assert!(out.is_empty(), "{page} renders without warnings: {out}");
    }
    for c in ["rvsd", "rvsadm"] {
        ok(
            "bash",
            &["-n", &format!("/usr/share/bash-completion/completions/{c}")],
        );
    }
    if Path::new("/usr/bin/systemd-analyze").exists() {
        let v = run("systemd-analyze", &["verify", "/lib/systemd/system/rvsd.service"]);
        let err = String::from_utf8_lossy(&v.stderr);
        assert!(v.status.success(), "systemd-analyze verify: {err}");
        assert!(
            !err.contains("rvsd.service:"),
            "the unit verifies without remarks: {err}"
        );
    }
    let hp = ok("/usr/lib/rvs/rvs-hugepages", &[]);
    println!("rvs-hugepages: {hp:?}");

    ok("dpkg", &["--purge", "rvs"]);
    for gone in [
        "/usr/sbin/rvsd",
        "/usr/sbin/rvsadm",
        "/etc/rvs/rvs.toml",
        "/lib/systemd/system/rvsd.service",
    ] {
        assert!(!Path::new(gone).exists(), "{gone} is removed by the purge");
    }
}
