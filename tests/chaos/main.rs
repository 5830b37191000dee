//! The kill-point campaign (docs/reliability.md): each long command of the
//! real `vault` binary is killed at a seeded random moment, against the
//! local Kafka clusters, then run again, then checked: `check
//! --read-data` clean, the next snapshot or the rerun restore whole,
//! every record on the target exactly once with every field, every
//! consumer group at the right record, no kept snapshot lost.
//!
//! A kill is one of two kinds, drawn from the seed:
//! * at a moment: SIGKILL after a random share of the command's measured
//!   run time (anywhere, Kafka calls included);
//! * at a storage call: the debug binary's fault storage aborts the
//!   process right before, or right after, its n-th storage call
//!   (`KVAULT_STORAGE_FAULTS=kind=kill,nth=N`), n drawn from the calls an
//!   uninterrupted run makes. These reproduce exactly.
//!
//! Set by the environment (`scripts/chaos` sets them):
//! `KVAULT_CHAOS_SEED` (default 1), `KVAULT_CHAOS_COUNT` kills per
//! command kind (default 2), `KVAULT_CHAOS_KINDS` (default all). Each
//! kind prints one summary line: kills, reruns, checks passed, records
//! lost. The same seed and count run the same schedule again.

// Test data lives in small, known ranges (partitions, counts, offsets),
// where Kafka's i32 and Rust's usize meet without a check.
#![allow(clippy::cast_possible_wrap, clippy::cast_sign_loss)]

#[path = "../common/mod.rs"]
mod common;

mod concurrent;
mod harness;
mod kinds;

use harness::Campaign;

/// One test per command kind, so a failure names its kind and the kinds
/// can run alone (`scripts/chaos 7 100 --kinds gc`).
macro_rules! kind_test {
    ($name:ident, $kind:literal, $run:path) => {
        #[test]
        fn $name() {
            if let Some(c) = Campaign::for_kind($kind) {
                c.finish(&$run(&c));
            }
        }
    };
}

kind_test!(snapshot, "snapshot", kinds::snapshot);
kind_test!(restore, "restore", kinds::restore);
kind_test!(gc, "gc", kinds::gc);
kind_test!(forget, "forget", kinds::forget);
kind_test!(check, "check", kinds::check);
kind_test!(continuous, "continuous", kinds::continuous);
kind_test!(
    snapshot_workers,
    "snapshot-workers",
    kinds::snapshot_workers
);
kind_test!(restore_workers, "restore-workers", kinds::restore_workers);
kind_test!(concurrent, "concurrent", concurrent::concurrent);
