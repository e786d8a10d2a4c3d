#![no_main]
//! `cargo +nightly fuzz run control`: see the harness, `rvs_api::fuzzing::control`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| rvs_api::fuzzing::control(data));
