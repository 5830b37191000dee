//! Locks that cannot lie: staleness judged only on the reader's own clock,
//! pids trusted only in the reader's own pid namespace, a holder that
//! cannot refresh stops, and gc sees every holder even mid-refresh. No
//! Kafka needed: the storage is the backend under test
//! (`KVAULT_TEST_BACKEND`), wrapped where a test needs it to fail or stall.

use crate::common;

use common::{age_file, init_repo, unindexed_pack};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vault::Error;
use vault::lock::{Holder, LockInfo, LockKind, LockTimes, VaultLock, encode};
use vault::repository::Repository;
use vault::storage::local::LocalDir;
use vault::storage::{Dir, Hooked, ObjectName, Op, Storage};

/// A refresh every 30 ms, stale after 300 ms: the default rules, faster.
const FAST: LockTimes = LockTimes {
    refresh: Duration::from_millis(30),
    stale_after: Duration::from_millis(300),
};

/// Fresh storage on the backend under test (`KVAULT_TEST_BACKEND`).
fn vault_dir() -> (tempfile::TempDir, Arc<dyn Storage>) {
    let dir = tempfile::tempdir().unwrap();
    let storage = common::Backend::current().create_storage(dir.path());
    (dir, storage)
}

/// Writes a lock as another process would, under `name`.
fn foreign_lock(storage: &dyn Storage, name: &str, kind: LockKind, holder: Holder, time_ms: u64) {
    let info = LockInfo {
        kind,
        command: "snapshot".into(),
        holder,
        lock_id: format!("id-{name}"),
        refresh: 0,
        time_ms,
    };
    assert!(
        storage
            .put_if_absent(&ObjectName::new(Dir::Locks, name), &encode(&info))
            .unwrap()
    );
}

fn other_host() -> Holder {
    Holder {
        host: "backup-2".into(),
        boot_id: "8d2c0e5e-0000-0000-0000-000000000000".into(),
        pid_namespace: "pid:[4026531836]".into(),
        pid: 4242,
    }
}

fn locks(storage: &dyn Storage) -> Vec<String> {
    storage
        .list(Dir::Locks)
        .unwrap()
        .into_iter()
        .map(|l| l.name)
        .collect()
}

#[test]
fn a_lock_written_by_a_host_whose_clock_is_behind_is_not_stale() {
    let (_d, storage) = vault_dir();
    // Written "11 minutes ago" by its own clock: it says nothing.
    let eleven_minutes_ago = vault::now_ms() - 11 * 60 * 1000;
    foreign_lock(
        storage.as_ref(),
        "shared-skewed",
        LockKind::Shared,
        other_host(),
        eleven_minutes_ago,
    );
    let e = VaultLock::acquire(
        storage.clone(),
        LockKind::Exclusive,
        "gc",
        Duration::from_millis(500),
    )
    .unwrap_err();
    assert!(matches!(e, Error::Locked(_)), "{e}");
    assert_eq!(locks(storage.as_ref()), vec!["shared-skewed"]);

    // Watched unrefreshed for longer than the stale period, it goes.
    let lock = VaultLock::acquire_with(
        storage.clone(),
        LockKind::Exclusive,
        "gc",
        Duration::from_secs(5),
        FAST,
    )
    .unwrap();
    assert_eq!(locks(storage.as_ref()), vec![lock.name().name]);
}

#[test]
fn a_dead_pid_counts_only_in_the_same_pid_namespace() {
    let (_d, storage) = vault_dir();
    let me = Holder::this_process();
    // The pid of a process that has certainly ended.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = child.id();
    child.wait().unwrap();
    let other_namespace = Holder {
        pid_namespace: "pid:[1]".into(),
        pid: dead_pid,
        ..me.clone()
    };
    foreign_lock(
        storage.as_ref(),
        "shared-container",
        LockKind::Shared,
        other_namespace,
        vault::now_ms(),
    );
    let e = VaultLock::acquire(
        storage.clone(),
        LockKind::Exclusive,
        "gc",
        Duration::from_millis(300),
    )
    .unwrap_err();
    assert!(matches!(e, Error::Locked(_)), "{e}");

    // The same namespace and boot: a missing pid is a dead holder.
    storage
        .delete(&ObjectName::new(Dir::Locks, "shared-container"))
        .unwrap();
    foreign_lock(
        storage.as_ref(),
        "shared-dead",
        LockKind::Shared,
        Holder {
            pid: dead_pid,
            ..me
        },
        vault::now_ms(),
    );
    let lock = VaultLock::acquire(
        storage.clone(),
        LockKind::Exclusive,
        "gc",
        Duration::from_millis(300),
    )
    .unwrap();
    assert_eq!(locks(storage.as_ref()), vec![lock.name().name]);
}

/// Storage whose lock writes fail while `failing` is set, as when the
/// vault's storage becomes unreachable for the lock refresher.
fn failing_lock_writes(inner: Arc<dyn Storage>, failing: Arc<AtomicBool>) -> Hooked {
    Hooked::new(inner, move |op: &Op<'_>| {
        if let Op::PutIfAbsent { name, .. } = op
            && name.kind == Dir::Locks
            && failing.load(Ordering::SeqCst)
        {
            return Err(Error::io(
                "writing a lock",
                "locks",
                std::io::Error::other("storage unreachable"),
            ));
        }
        Ok(())
    })
}

fn repo_on(
    storage: Arc<dyn Storage>,
    cache: &std::path::Path,
) -> Repository<vault::repository::Indexed> {
    init_repo(storage, b"lock test passphrase", None, cache)
}

#[test]
fn a_holder_that_cannot_refresh_stops_before_deleting() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("v");
    let failing = Arc::new(AtomicBool::new(false));
    let storage = Arc::new(failing_lock_writes(
        // Local: the test ages a pack's file past gc's grace period.
        Arc::new(LocalDir::create(&root).unwrap()),
        failing.clone(),
    ));
    let repo = repo_on(storage.clone(), &dir.path().join("cache"));
    let pack = unindexed_pack(&repo, storage.as_ref());
    common::age_object(&root, &pack, Duration::from_secs(2 * 3600));
    let pack = root.join(pack.path());
    let lock = VaultLock::acquire_with(
        storage.clone(),
        LockKind::Exclusive,
        "gc",
        Duration::from_secs(1),
        FAST,
    )
    .unwrap();
    let policy = vault::gc::KeepPolicy::from(vault::gc::KeepRules {
        last: 1,
        ..Default::default()
    });
    let plan =
        vault::gc::GcPlan::make(&repo, &policy, &Default::default(), Some(&lock), None).unwrap();
    assert_eq!(
        plan.orphan_packs.len(),
        1,
        "the old unindexed pack is garbage"
    );

    // The storage stops taking the refresher's writes.
    failing.store(true, Ordering::SeqCst);
    std::thread::sleep(FAST.give_up_after() + Duration::from_millis(100));
    let e = lock.check().unwrap_err();
    assert!(e.to_string().contains("lost its vault lock"), "{e}");
    let e = vault::gc::execute(&repo, &plan, &lock).unwrap_err();
    assert!(matches!(e, Error::Locked(_)), "{e}");
    assert!(pack.exists(), "gc deleted nothing after losing its lock");

    // Writes work again, but a lost lock is never taken up again.
    failing.store(false, Ordering::SeqCst);
    std::thread::sleep(FAST.refresh * 3);
    assert!(lock.check().is_err());
}

/// Storage that stalls the first read of a lock object, as a slow network
/// would stall gc between listing the locks and reading them.
fn stalling_lock_reads(inner: Arc<dyn Storage>, stall: Duration) -> Hooked {
    let armed = AtomicBool::new(true);
    Hooked::new(inner, move |op: &Op<'_>| {
        if let Op::Get { name } = op
            && name.kind == Dir::Locks
            && armed.swap(false, Ordering::SeqCst)
        {
            std::thread::sleep(stall);
        }
        Ok(())
    })
}

#[test]
fn gc_racing_a_lock_refresh_still_sees_the_holder() {
    let (_d, storage) = vault_dir();
    let times = LockTimes {
        refresh: Duration::from_millis(20),
        stale_after: Duration::from_secs(60),
    };
    let snapshot = VaultLock::acquire_with(
        storage.clone(),
        LockKind::Shared,
        "snapshot",
        Duration::ZERO,
        times,
    )
    .unwrap();
    let first = snapshot.name();
    for _ in 0..5 {
        // gc lists, stalls long enough for the snapshot to refresh (write a
        // new lock, delete the listed one), then reads.
        let stalling = Arc::new(stalling_lock_reads(
            storage.clone(),
            Duration::from_millis(150),
        ));
        let e = VaultLock::acquire_with(
            stalling,
            LockKind::Exclusive,
            "gc",
            Duration::ZERO,
            LockTimes::default(),
        )
        .unwrap_err();
        assert!(matches!(e, Error::Locked(_)), "gc went ahead: {e}");
    }
    assert_ne!(snapshot.name(), first, "the snapshot refreshed meanwhile");
}

#[test]
fn gc_stops_when_a_shared_lock_appears_or_its_own_is_gone() {
    let (_d, storage) = vault_dir();
    let gc =
        VaultLock::acquire(storage.clone(), LockKind::Exclusive, "gc", Duration::ZERO).unwrap();
    gc.recheck().unwrap();
    foreign_lock(
        storage.as_ref(),
        "shared-late",
        LockKind::Shared,
        other_host(),
        vault::now_ms(),
    );
    let e = gc.recheck().unwrap_err();
    assert!(e.to_string().contains("appeared"), "{e}");
    storage
        .delete(&ObjectName::new(Dir::Locks, "shared-late"))
        .unwrap();
    gc.recheck().unwrap();
    storage.delete(&gc.name()).unwrap();
    let e = gc.recheck().unwrap_err();
    assert!(e.to_string().contains("lost its vault lock"), "{e}");
}

#[test]
fn unindexed_packs_are_deleted_only_once_old() {
    // Object stores set an object's time themselves: this test of the
    // grace period ages files, so its vault is local whatever the backend.
    let v = common::TestVault::init_on(common::Backend::Local, &[]);
    let root = v.local_path();
    let young = unindexed_pack(&v.open(), v.storage().as_ref());
    let young = {
        common::age_object(&root, &young, Duration::from_secs(60));
        root.join(young.path())
    };
    let g = v.json(&["gc", "--keep-last", "1"]);
    assert_eq!(
        (g["orphan_packs"].as_u64(), g["young_orphan_packs"].as_u64()),
        (Some(0), Some(1))
    );
    assert!(young.exists(), "a running snapshot's pack survives gc");
    age_file(&young, Duration::from_secs(2 * 3600));
    let g = v.json(&["gc", "--keep-last", "1"]);
    assert_eq!(g["orphan_packs"], 1, "{g}");
    assert!(!young.exists(), "an old unindexed pack is garbage");

    // A damaged one is left for the operator, however old.
    let junk = root.join("packs/dd").join("dd".repeat(16));
    std::fs::create_dir_all(junk.parent().unwrap()).unwrap();
    std::fs::write(&junk, b"not a pack").unwrap();
    age_file(&junk, Duration::from_secs(2 * 3600));
    let g = v.json(&["gc", "--keep-last", "1"]);
    assert_eq!(
        g["damaged_orphan_packs"].as_array().unwrap().len(),
        1,
        "{g}"
    );
    assert!(junk.exists());
}

/// Storage whose lock writes hang for as long as `stall` says, once set,
/// as a stalled network would.
fn slow_lock_writes(inner: Arc<dyn Storage>, stall: Arc<Mutex<Option<Duration>>>) -> Hooked {
    Hooked::new(inner, move |op: &Op<'_>| {
        if let Op::PutIfAbsent { name, .. } = op
            && name.kind == Dir::Locks
            && let Some(d) = *stall.lock().unwrap()
        {
            std::thread::sleep(d);
        }
        Ok(())
    })
}

#[test]
fn a_refresh_that_returns_too_late_does_not_bring_the_lock_back() {
    let dir = tempfile::tempdir().unwrap();
    let stall = Arc::new(Mutex::new(None));
    let storage = Arc::new(slow_lock_writes(
        common::Backend::current().create_storage(dir.path()),
        stall.clone(),
    ));
    let lock = VaultLock::acquire_with(
        storage.clone(),
        LockKind::Shared,
        "snapshot",
        Duration::ZERO,
        FAST,
    )
    .unwrap();
    // The next refresh hangs past half the stale period, then succeeds.
    *stall.lock().unwrap() = Some(FAST.give_up_after() + Duration::from_millis(100));
    std::thread::sleep(FAST.refresh + FAST.give_up_after() + Duration::from_millis(300));
    *stall.lock().unwrap() = None;
    let e = lock.check().unwrap_err();
    assert!(e.to_string().contains("lost its vault lock"), "{e}");
    assert_eq!(
        locks(storage.as_ref()).len(),
        1,
        "the late object was taken back; only the lapsed one stays until the lock is dropped"
    );
}
