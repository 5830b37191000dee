#![no_main]
//! Fuzzes the run plan and run part decoders; see vault_format::fuzzing.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| vault_format::fuzzing::run_objects(data));
