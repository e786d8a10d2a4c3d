#![no_main]
//! `cargo +nightly fuzz run packet`: see the harness, `rvs_core::fuzzing::packet`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| rvs_core::fuzzing::packet(data));
