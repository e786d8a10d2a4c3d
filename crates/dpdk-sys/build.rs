//! Finds the system DPDK with pkg-config, compiles the inline-function shim and generates the
//! bindings. A machine without libdpdk-dev fails here with the package to install, not with a
//! wall of missing-header errors.

use std::env;
use std::path::PathBuf;

const MIN_DPDK: &str = "22.11";

fn main() {
    println!("cargo:rerun-if-changed=src/shim.c");
    println!("cargo:rerun-if-changed=src/shim.h");
    println!("cargo:rerun-if-changed=src/wrapper.h");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    let dpdk = match pkg_config::Config::new()
        .atleast_version(MIN_DPDK)
        .probe("libdpdk")
    {
        Ok(lib) => lib,
        Err(e) => {
            eprintln!(
                "\nerror: DPDK >= {MIN_DPDK} was not found by pkg-config ({e}).\n\
                 On Debian 12 install it with:  apt-get install libdpdk-dev libclang-dev pkg-config\n\
                 (or run dpdk/setup.sh, which installs everything rvs needs).\n"
            );
            std::process::exit(1);
        }
    };
    // Dependents (crates that declare a dependency on this one) read it as DEP_RTE_EAL_VERSION.
    println!("cargo:version={}", dpdk.version);

    let mut shim = cc::Build::new();
    shim.file("src/shim.c").opt_level(3).warnings(true);
    for inc in &dpdk.include_paths {
        shim.include(inc);
    }
    // rte_memcpy.h uses SSSE3 intrinsics: Debian's libdpdk.pc asks for corei7, keep it explicit.
    shim.flag("-march=corei7").flag("-include").flag("rte_config.h");
    shim.compile("rvs_dpdk_shim");

    let mut builder = bindgen::Builder::default()
        .header("src/wrapper.h")
        .clang_arg("-march=corei7")
        .allowlist_function("rte_.*|rvs_.*")
        .allowlist_type("rte_.*")
        .allowlist_var("RTE_.*")
        // Packed structs that contain aligned members: bindgen cannot lay them out in Rust.
        .opaque_type("rte_arp_hdr|rte_arp_ipv4|rte_l2tpv2_.*|rte_gtp_.*")
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .prepend_enum_name(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for inc in &dpdk.include_paths {
        builder = builder.clang_arg(format!("-I{}", inc.display()));
    }
    let bindings = builder
        .generate()
        .expect("bindgen failed on the DPDK headers (is libclang-dev installed?)");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("bindings.rs");
    bindings.write_to_file(out).expect("writing bindings.rs");
}
