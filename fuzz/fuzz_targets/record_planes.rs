#![no_main]
//! Fuzzes the record planes filter (tag 3); see vault_format::fuzzing.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| vault_format::fuzzing::record_planes(data));
