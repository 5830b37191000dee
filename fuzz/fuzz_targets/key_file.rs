#![no_main]
//! Fuzzes the key_file decoder; see vault_format::fuzzing.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| vault_format::fuzzing::key_file(data));
