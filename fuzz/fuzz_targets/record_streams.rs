#![no_main]
//! Fuzzes the record streams filter; see vault_format::fuzzing.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| vault_format::fuzzing::record_streams(data));
