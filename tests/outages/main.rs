//! The tests that take a shared server down or break it on purpose: the
//! S3 server's faults (`object_storage`) and a restart of the source Kafka
//! cluster (`broker_restart`). A test running beside one of these would
//! see the outage too, so this binary is apart from the others (cargo runs
//! test binaries one after another, never side by side) and its tests
//! take turns through [`serial`].

#[path = "../common/mod.rs"]
mod common;

// Each test holds its turn across its awaits, the Kafka set-up included
// (a broker restart beside it would fail that too). The lint warns of a
// task that blocks its runtime's thread on a lock another task of the
// same runtime holds; here each test has a runtime of its own, and the
// one lock is between tests.
#[allow(clippy::await_holding_lock)]
mod broker_restart;
#[allow(clippy::await_holding_lock)]
mod object_storage;
#[allow(clippy::await_holding_lock)]
mod s3_faults;

use std::sync::{Mutex, MutexGuard, PoisonError};

/// One outage at a time: every test of this binary takes the guard first
/// and holds it for its whole run. A failed test poisons the lock, and
/// the next one still takes its turn (each test puts its server back on
/// the way out).
pub fn serial() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(PoisonError::into_inner)
}
