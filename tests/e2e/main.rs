//! The end-to-end tests: `vault` against the two local Kafka clusters
//! (`scripts/kafka start`), one module per subject. A test's full name
//! starts with its module (`snapshot::…`), which is how `scripts/test`
//! picks the modules it runs again with the vault on S3 and on Azure.
//!
//! One test binary, not one per file: each test binary links RocksDB and
//! librdkafka (about 460 MB with line tables), and a change in `src/`
//! relinks every one of them. The tests
//! that take a shared server down are in `tests/outages`, not here: they
//! would fail the tests running beside them.

#[path = "../common/mod.rs"]
mod common;

mod config;
mod continuous;
mod damage;
mod distributed;
mod estate;
mod full_disk;
mod gc;
mod histories;
mod inspect;
mod kafka_harness;
mod permissions;
mod restore;
mod restore_crash;
mod secrets;
mod snapshot;
