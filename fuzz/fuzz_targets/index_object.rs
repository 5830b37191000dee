#![no_main]
//! Fuzzes the index_object decoder; see vault_format::fuzzing.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| vault_format::fuzzing::index_object(data));
