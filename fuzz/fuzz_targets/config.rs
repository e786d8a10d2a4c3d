#![no_main]
//! `cargo +nightly fuzz run config`: see the harness, `rvs_api::fuzzing::config`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| rvs_api::fuzzing::config(data));
