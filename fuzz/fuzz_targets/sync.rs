#![no_main]
//! `cargo +nightly fuzz run sync`: see the harness, `rvs_core::fuzzing::sync`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| rvs_core::fuzzing::sync(data));
