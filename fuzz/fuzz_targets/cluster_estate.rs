#![no_main]
//! Fuzzes the cluster estate decoder (ACLs, quotas, SCRAM users, broker
//! configs inside a version 3 manifest); see vault_format::fuzzing.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| vault_format::fuzzing::cluster_estate(data));
