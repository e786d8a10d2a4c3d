//! Helpers shared by the integration tests.

#![allow(dead_code)]

pub mod ha;
pub mod netns;
pub mod replay;

/// The rvsadm binary, from its own package (built without DPDK): beside rvsd in the target
/// directory. `cargo test --workspace` builds it with everything else (its package has tests
/// of its own); a run of this package's tests alone builds it here, once.
pub fn rvsadm_bin() -> std::path::PathBuf {
    static BUILD: std::sync::Once = std::sync::Once::new();
    let rvsd = std::path::Path::new(env!("CARGO_BIN_EXE_rvsd"));
    let path = rvsd.with_file_name("rvsadm");
    BUILD.call_once(|| {
        let mut cmd = std::process::Command::new(env!("CARGO"));
        cmd.args(["build", "-q", "-p", "rvsadm", "--bin", "rvsadm"]);
        if rvsd.parent().and_then(|d| d.file_name()) == Some(std::ffi::OsStr::new("release")) {
            cmd.arg("--release");
        }
        let st = cmd.status().expect("cargo runs");
        assert!(st.success(), "building rvsadm failed");
    });
    path
}
