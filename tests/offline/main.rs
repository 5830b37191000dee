//! The integration tests that need no Kafka broker: the engine driven in
//! process, tampered and damaged vault objects, the vault lock, and the
//! `vault` binary's command line and exit codes. Their vaults live on the
//! backend under test (`KVAULT_TEST_BACKEND`, a local directory unless
//! set), so `cargo test --test offline` runs on a machine with no servers.
//!
//! One test binary, not one per file: each test binary links RocksDB and
//! librdkafka (about 460 MB with line tables), and a change in `src/`
//! relinks every one of them.

#[path = "../common/mod.rs"]
mod common;

mod cli_vault;
mod engine;
mod exit_codes;
mod faults;
mod locks;
mod tamper;
