//! Embeds the versions `rvsd --version` prints: the DPDK that pkg-config finds (the one the
//! binaries are built against) and the git commit of the tree.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    // dpdk-sys links the library and fails with install advice when it is missing; here only
    // the version is wanted.
    let dpdk = pkg_config::Config::new()
        .cargo_metadata(false)
        .probe("libdpdk")
        .map(|l| l.version)
        .unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=RVS_DPDK_BUILD_VERSION={dpdk}");

    let git = Command::new("git")
        .args(["describe", "--always", "--dirty", "--exclude", "*"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=RVS_GIT_VERSION={git}");
}
