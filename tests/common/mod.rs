//! Helpers shared by the integration tests.

#![allow(dead_code)]

pub mod ha;
pub mod netns;
pub mod replay;

/// The rvsadm binary, from its own package (built without DPDK).
pub fn rvsadm_bin() -> std::path::PathBuf {
    sibling_bin("rvsadm", "rvsadm")
}

/// A binary of another workspace package (rvsadm, rvs-bench): beside rvsd in the target
/// directory. `cargo test --workspace` builds it with everything else (its package has tests
/// of its own); a run of this package's tests alone builds it here, once per test binary.
pub fn sibling_bin(package: &str, bin: &str) -> std::path::PathBuf {
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let rvsd = std::path::Path::new(env!("CARGO_BIN_EXE_rvsd"));
    let path = rvsd.with_file_name(bin);
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if !built.iter().any(|b| b == bin) {
        let mut cmd = std::process::Command::new(env!("CARGO"));
        cmd.args(["build", "-q", "-p", package, "--bin", bin]);
        if rvsd.parent().and_then(|d| d.file_name()) == Some(std::ffi::OsStr::new("release")) {
            cmd.arg("--release");
        }
        let st = cmd.status().expect("cargo runs");
        assert!(st.success(), "building {bin} failed");
        built.push(bin.to_string());
    }
    path
}
