//! The fault campaign without a broker (docs/reliability.md § A storage
//! that fails on purpose): snapshot, restore, gc and check run in process
//! on a vault whose storage follows a seeded fault plan
//! (`vault::storage::faulty`): errors, added latency, lost replies, stale
//! listings and partial files. Then, with the faults off and the vault
//! opened afresh, every command must have either succeeded or failed
//! with an error, and:
//!
//! * every snapshot in the vault reads back exactly what the model says
//!   it took (no snapshot committed without its data);
//! * no snapshot a keep rule holds is gone, and nothing a kept snapshot
//!   needs was freed (`check --read-data` is clean);
//! * a restore that failed, run again, puts every record on the target
//!   exactly once.
//!
//! `KVAULT_CHAOS_SCHEDULES` (default 6) sets how many seeded schedules
//! each fault kind gets and `KVAULT_CHAOS_SEED` (default 1) the first
//! seed; `scripts/chaos` runs many. A failing schedule prints the one
//! command that runs it again alone.

use std::collections::BTreeSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use vault::kafka::KafkaOptions;
use vault::lock::LockKind;
use vault::repository::{Indexed, Repository};
use vault::restore::RestoreOptions;
use vault::restore::data::restore_records;
use vault::restore::plan::{PartitionRestore, TopicRestore};
use vault::restore::progress::{ProgressState, RestoreSelection};
use vault::restore::sink::MemorySink;
use vault::restore::{RestorePlan, TimeWindow};
use vault::storage::Storage;
use vault::storage::faulty::{FaultKind, FaultPlan, FaultState, faulty};
use vault::storage::local::LocalDir;
use vault_format::ObjectId;

use crate::common::open_repo;
use crate::engine::{
    Holds, MEM_PASSPHRASE, MemVault, Model, PARTITIONS, TOPIC, Taken, snapshot_options,
};

/// The kinds that leave the test process alive (`kill` is the kill-point
/// campaign's, through the binary).
const KINDS: [FaultKind; 5] = [
    FaultKind::Error,
    FaultKind::Latency,
    FaultKind::LostReply,
    FaultKind::StaleList,
    FaultKind::Partial,
];

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What one schedule saw.
#[derive(Default, Debug)]
struct Tally {
    schedules: u64,
    /// Schedules in which at least one fault struck.
    with_faults: u64,
    injected: u64,
    commands_ok: u64,
    commands_failed: u64,
    /// Records a restore missed or wrote twice, and snapshots that read
    /// back wrong or went missing: each must stay 0.
    records_lost: u64,
    records_duplicated: u64,
    kept_snapshots_lost: u64,
    problems: Vec<String>,
}

/// The plan of the `i`-th schedule of a kind: half pick exactly one
/// call to hit (every call gets its turn across seeds), half a rate.
fn plan_for_schedule(kind: FaultKind, seed: u64, calls: u64, root: &std::path::Path) -> FaultPlan {
    let mut plan = FaultPlan::new(kind, seed);
    match kind {
        FaultKind::Latency => plan.latency = Duration::from_millis(1 + seed % 7),
        FaultKind::StaleList => plan.stale = Duration::from_secs(30),
        // Spread over the calls a schedule makes (`calls`, counted once).
        _ if seed.is_multiple_of(2) => {
            plan.nth = Some(1 + (seed / 2).wrapping_mul(7919) % calls.max(1));
        }
        _ => plan.rate = (1.0 + (seed % 3) as f64) / calls.max(1) as f64,
    }
    if kind == FaultKind::Partial {
        plan.root = Some(root.to_path_buf());
    }
    plan
}

/// Runs `f`, turning a panic into a failure of the schedule: a command
/// under faults may fail, never crash.
fn attempt<T>(
    what: &str,
    spec: &str,
    tally: &mut Tally,
    f: impl FnOnce() -> vault::Result<T>,
) -> Option<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => {
            tally.commands_ok += 1;
            Some(v)
        }
        Ok(Err(e)) => {
            tally.commands_failed += 1;
            let msg = e.to_string();
            if msg.trim().is_empty() {
                tally
                    .problems
                    .push(format!("{spec}: {what} failed with an empty message"));
            }
            None
        }
        Err(_) => {
            tally.commands_failed += 1;
            tally.problems.push(format!("{spec}: {what} panicked"));
            None
        }
    }
}

fn try_snapshot(vault: &MemVault, model: &Model) -> vault::Result<ObjectId> {
    try_snapshot_on(&vault.repo, model)
}

/// gc keeping the last `keep_last`, with the safety margin `margin`
/// (`None`: the command line's hour).
fn try_gc(
    repo: &Repository<Indexed>,
    keep_last: usize,
    margin: Option<Duration>,
) -> vault::Result<Vec<ObjectId>> {
    let lock = vault::lock::VaultLock::acquire(
        Arc::clone(repo.storage()),
        LockKind::Exclusive,
        "test",
        Duration::from_secs(5),
    )?;
    let policy = vault::gc::KeepPolicy::from(vault::gc::KeepRules {
        last: keep_last,
        ..Default::default()
    });
    // The command line's defaults (repack below half), with the margin.
    let mut opts = vault::gc::GcOptions::default();
    if let Some(m) = margin {
        opts.unindexed_min_age = m;
    }
    let plan = vault::gc::GcPlan::make(repo, &policy, &opts, Some(&lock), None)?;
    vault::gc::execute(repo, &plan, &lock)?;
    Ok(plan.forget)
}

fn try_check(repo: &Repository<Indexed>) -> vault::Result<vault::check::CheckReport> {
    vault::check::run(
        repo,
        vault::check::CheckOptions {
            read_data: 1.0,
            progress: None,
        },
    )
}

/// A restore of every partition of snapshot `id` into the same topic.
fn restore_plan(repo: &Repository<Indexed>, id: &ObjectId) -> vault::Result<RestorePlan> {
    let m = repo.read_snapshot(id)?;
    let t = &m.topics[0];
    Ok(RestorePlan {
        restore_id: "faults-test".into(),
        vault_id: String::new(),
        selection: RestoreSelection::default(),
        resumes: false,
        abandon: vec![],
        snapshot_id: *id,
        snapshot_time_ms: m.time_ms,
        window: TimeWindow::default(),
        topics: vec![TopicRestore {
            source: TOPIC.into(),
            target: TOPIC.into(),
            partitions: PARTITIONS,
            create: None,
        }],
        partitions: t
            .partitions
            .iter()
            .map(|p| PartitionRestore {
                source_topic: TOPIC.into(),
                target_topic: TOPIC.into(),
                partition: p.partition,
                root: p.root,
                group_offsets: vec![],
            })
            .collect(),
        groups: vec![],
        target_brokers: 1,
        warnings: vec![],
    })
}

fn restore_options() -> RestoreOptions {
    RestoreOptions {
        kafka: KafkaOptions::new("unused:9092"),
        workers: 2,
        // Small transactions: a fault lands between commits too.
        transaction_bytes: 4 << 10,
        progress: None,
    }
}

/// Compares what a sink committed with what a snapshot holds: returns
/// (lost, duplicated) record counts.
fn compare_sink(sink: &MemorySink, want: &Holds) -> (u64, u64) {
    let (mut lost, mut dup) = (0, 0);
    for (p, recs) in want {
        let got = sink.committed(TOPIC, *p);
        let mut seen = BTreeSet::new();
        for r in &got {
            if !seen.insert(r.source_offset) {
                dup += 1;
            }
        }
        for (offset, value) in recs {
            match got.iter().find(|r| r.source_offset == *offset) {
                Some(r) if r.value.as_deref().unwrap_or_default() == value.as_slice() => {}
                _ => lost += 1,
            }
        }
    }
    (lost, dup)
}

/// One seeded schedule of one kind, made of the calls it makes (`calls`:
/// 0 to count them, with a plan that injects nothing); returns how many
/// calls the faults applied to.
fn run_schedule(kind: FaultKind, seed: u64, calls: u64, tally: &mut Tally) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("v");
    let local: Arc<dyn Storage> = Arc::new(LocalDir::create(&root).unwrap());
    let mut plan = plan_for_schedule(kind, seed, calls.max(1), &root);
    if calls == 0 {
        plan.nth = Some(u64::MAX);
    }
    let spec = plan.spec();
    let (storage, state): (Arc<dyn Storage>, Arc<FaultState>) = faulty(Arc::clone(&local), plan);
    state.set_armed(false);
    let cache_root = dir.path().to_path_buf();
    let vault = MemVault::on(dir, storage);
    let mut model = Model::default();
    let gaps = [(seed % 3) as u8, 1, 0];

    // Two snapshots made without faults: the history the faults must
    // not hurt.
    for p in 0..PARTITIONS {
        model.append(p, 120 + (seed % 50) as usize, &gaps);
    }
    let s0 = vault.snapshot(&model);
    let t0 = model.snapshot(None);
    for p in 0..PARTITIONS {
        model.append(p, 60, &gaps);
    }
    let s1 = vault.snapshot(&model);
    let t1 = model.snapshot(Some(&t0));
    for p in 0..PARTITIONS {
        model.append(p, 40 + (seed % 30) as usize, &gaps);
    }
    let t2 = model.snapshot(Some(&t1));

    // Under faults: a snapshot, a restore of s1, gc keeping the last two,
    // and a check.
    state.set_armed(true);
    let s2 = attempt("snapshot", &spec, tally, || try_snapshot(&vault, &model));
    let sink = MemorySink::default();
    let mut progress = ProgressState::default();
    let restored = attempt("restore", &spec, tally, || {
        let plan = restore_plan(&vault.repo, &s1)?;
        restore_records(&vault.repo, &plan, &restore_options(), &sink, &mut progress)
    });
    // Nothing else writes to this vault: gc may delete and repack at once,
    // so the faults meet those steps too. Under stale listings the margin
    // is what keeps a snapshot gc does not see: the command line's hour.
    let margin = (kind != FaultKind::StaleList).then_some(Duration::ZERO);
    let gc = attempt("gc", &spec, tally, || try_gc(&vault.repo, 2, margin));
    let checked = attempt("check", &spec, tally, || try_check(&vault.repo));
    state.set_armed(false);
    let counted = state.counted();
    tally.injected += state.injected();
    tally.schedules += 1;
    tally.with_faults += u64::from(state.injected() > 0);
    let _ = (gc, checked);

    // Faults off, the vault opened afresh (a new cache: nothing the
    // faulty run kept in memory hides damage).
    let fresh_cache = cache_root.join(format!("cache-after-{seed}"));
    let repo = open_repo(Arc::clone(&local), MEM_PASSPHRASE, &fresh_cache).unwrap();
    let ids: BTreeSet<ObjectId> = repo.snapshot_ids().unwrap().into_iter().collect();
    let fail = |tally: &mut Tally, m: String| tally.problems.push(format!("{spec}: {m}"));

    // s1 is one of the two newest whatever committed: keep-last 2 holds it.
    if !ids.contains(&s1) {
        tally.kept_snapshots_lost += 1;
        fail(tally, "s1, kept by keep-last 2, is gone".into());
    }
    // s0 may go only if a newer snapshot committed.
    let new: Vec<ObjectId> = ids
        .iter()
        .filter(|i| **i != s0 && **i != s1)
        .copied()
        .collect();
    if !ids.contains(&s0) && new.is_empty() {
        tally.kept_snapshots_lost += 1;
        fail(
            tally,
            "s0 is gone though no newer snapshot committed".into(),
        );
    }
    if new.len() > 1 {
        fail(
            tally,
            format!("{} snapshots committed by one run", new.len()),
        );
    }
    if let Some(id) = s2
        && !ids.contains(&id)
    {
        tally.kept_snapshots_lost += 1;
        fail(tally, "the snapshot that reported success is gone".into());
    }
    // Every snapshot reads back exactly what it took.
    let expected = |id: &ObjectId| -> &Taken {
        if *id == s0 {
            &t0
        } else if *id == s1 {
            &t1
        } else {
            &t2
        }
    };
    for id in &ids {
        match read_all(&repo, id) {
            Ok(h) if h == expected(id).0 => {}
            Ok(h) => {
                let (want, got) = (count(&expected(id).0), count(&h));
                tally.records_lost += want.saturating_sub(got) as u64;
                fail(
                    tally,
                    format!(
                        "snapshot {} reads back {got} of {want} records, or other ones",
                        id.to_hex()
                    ),
                );
            }
            Err(e) => {
                tally.records_lost += count(&expected(id).0) as u64;
                fail(
                    tally,
                    format!("snapshot {} does not read back: {e}", id.to_hex()),
                );
            }
        }
    }
    match try_check(&repo) {
        Ok(r) if r.is_ok() => {}
        Ok(r) => fail(tally, format!("check --read-data: {:?}", r.problems)),
        Err(e) => fail(tally, format!("check --read-data failed: {e}")),
    }

    // The restore: whole already, or whole once run again.
    if restored.is_none() {
        let again = restore_plan(&repo, &s1).and_then(|plan| {
            restore_records(&repo, &plan, &restore_options(), &sink, &mut progress)
        });
        if let Err(e) = again {
            fail(
                tally,
                format!("the restore run again without faults failed: {e}"),
            );
        }
    }
    let (lost, dup) = compare_sink(&sink, &t1.0);
    tally.records_lost += lost;
    tally.records_duplicated += dup;
    if lost + dup > 0 {
        fail(
            tally,
            format!("restore: {lost} records lost, {dup} duplicated"),
        );
    }

    // The next snapshot, gc and check without faults work and leave a
    // whole vault.
    let next = &repo;
    let id = match try_snapshot_on(next, &model) {
        Ok(id) => id,
        Err(e) => {
            fail(tally, format!("the next snapshot failed: {e}"));
            return counted;
        }
    };
    match read_all(next, &id) {
        Ok(h) if h == t2.0 => {}
        _ => {
            tally.records_lost += 1;
            fail(
                tally,
                "the next snapshot does not read back what it took".into(),
            );
        }
    }
    if let Err(e) = try_gc(next, 2, margin) {
        fail(tally, format!("gc without faults failed: {e}"));
    }
    match try_check(next) {
        Ok(r) if r.is_ok() => {}
        Ok(r) => fail(tally, format!("check after the next gc: {:?}", r.problems)),
        Err(e) => fail(tally, format!("check after the next gc failed: {e}")),
    }
    // The vault (and its folder) lives until here.
    drop(vault);
    counted
}

fn try_snapshot_on(repo: &Repository<Indexed>, model: &Model) -> vault::Result<ObjectId> {
    let plan = vault::snapshot::SnapshotPlan::from_cut(
        repo,
        model.cut(),
        &crate::engine::request(),
        &vault::snapshot::plan::NoRecords,
    )?;
    let lock = vault::lock::VaultLock::acquire(
        Arc::clone(repo.storage()),
        LockKind::Shared,
        "test",
        Duration::from_secs(5),
    )?;
    std::thread::sleep(Duration::from_millis(2));
    let mut source = model.source();
    Ok(vault::snapshot::execute(repo, &plan, &snapshot_options(), &lock, &mut source)?.id)
}

fn read_all(repo: &Repository<Indexed>, id: &ObjectId) -> vault::Result<Holds> {
    let m = repo.read_snapshot(id)?;
    let mut out = Holds::new();
    for p in &m.topics[0].partitions {
        let recs = match p.root {
            Some(root) => vault::reader::all_records(repo, &root)?,
            None => vec![],
        };
        out.insert(
            p.partition,
            recs.into_iter()
                .map(|r| (r.offset, r.value.unwrap_or_default()))
                .collect(),
        );
    }
    Ok(out)
}

fn count(h: &Holds) -> usize {
    h.values().map(Vec::len).sum()
}

/// Every fault kind, `KVAULT_CHAOS_SCHEDULES` seeded schedules each. One
/// summary line per kind; any lost or duplicated record, lost kept
/// snapshot or damaged vault fails the test and names the schedule.
#[test]
fn seeded_storage_faults_lose_nothing() {
    let schedules = env_u64("KVAULT_CHAOS_SCHEDULES", 6);
    let first = env_u64("KVAULT_CHAOS_SEED", 1);
    let only = std::env::var("KVAULT_CHAOS_FAULT").ok();
    let mut all_problems = Vec::new();
    for kind in KINDS {
        if only.as_deref().is_some_and(|k| k != kind.name()) {
            continue;
        }
        // The run that counts the calls injects nothing, except stale
        // listings (every listing is filtered): its problems count too.
        let mut counting = Tally::default();
        let calls = run_schedule(kind, 0, 0, &mut counting);
        all_problems.extend(counting.problems);
        let mut tally = Tally::default();
        for seed in first..first + schedules {
            run_schedule(kind, seed, calls, &mut tally);
        }
        println!(
            "\nchaos faults {:<10} schedules {:>4} ({} struck; {calls} calls each)  faults injected {:>5}  commands ok {:>4} failed {:>4}  records lost {}  duplicated {}  kept snapshots lost {}",
            kind.name(),
            tally.schedules,
            tally.with_faults,
            tally.injected,
            tally.commands_ok,
            tally.commands_failed,
            tally.records_lost,
            tally.records_duplicated,
            tally.kept_snapshots_lost,
        );
        for p in &tally.problems {
            println!(
                "  PROBLEM {p}\n    again: KVAULT_CHAOS_FAULT={} KVAULT_CHAOS_SEED={} KVAULT_CHAOS_SCHEDULES=1 cargo test --test offline -- faults:: --nocapture",
                kind.name(),
                seed_of(p)
            );
        }
        all_problems.extend(tally.problems);
    }
    assert!(
        all_problems.is_empty(),
        "{} problems: {all_problems:#?}",
        all_problems.len()
    );
}

/// The seed in a problem line's plan ("kind=…,seed=N,…").
fn seed_of(problem: &str) -> String {
    problem
        .split(',')
        .find_map(|f| f.strip_prefix("seed="))
        .unwrap_or("?")
        .to_string()
}

// Regression tests of the defects the campaign found (docs/reliability.md
// § Defects the campaign found), each on the one fault that showed it.

/// A vault on `storage` made by [`MemVault::on`] with two snapshots: the
/// second holds records the first does not, in packs of its own.
fn two_snapshots(
    dir: tempfile::TempDir,
    storage: Arc<dyn Storage>,
) -> (MemVault, Model, [ObjectId; 2], Taken) {
    let vault = MemVault::on(dir, storage);
    let mut model = Model::default();
    for p in 0..PARTITIONS {
        model.append(p, 150, &[0]);
    }
    let s0 = vault.snapshot(&model);
    let t0 = model.snapshot(None);
    for p in 0..PARTITIONS {
        model.append(p, 150, &[1]);
    }
    let s1 = vault.snapshot(&model);
    let t1 = model.snapshot(Some(&t0));
    (vault, model, [s0, s1], t1)
}

/// Found by `stale-list`: gc listed `snapshots/` without the snapshot
/// committed a moment before, found its new packs dead and deleted them.
/// Packs younger than the safety margin are now left whole.
#[test]
fn gc_keeps_the_packs_of_a_snapshot_its_listing_does_not_show_yet() {
    let dir = tempfile::tempdir().unwrap();
    let local: Arc<dyn Storage> = Arc::new(LocalDir::create(dir.path().join("v")).unwrap());
    let hidden: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    let h = Arc::clone(&hidden);
    let lagging: Arc<dyn Storage> = Arc::new(
        vault::storage::Hooked::new(Arc::clone(&local), |_| Ok(())).with_list_filter(
            move |kind, listed| {
                if kind == vault::storage::Dir::Snapshots
                    && let Some(name) = h.lock().unwrap().as_ref()
                {
                    listed.retain(|l| &l.name != name);
                }
            },
        ),
    );
    let cache = dir.path().join("cache-after");
    let (vault, _, [_, s1], t1) = two_snapshots(dir, lagging);
    *hidden.lock().unwrap() = Some(s1.to_hex());
    // keep-last 1 over what the listing shows: the first snapshot.
    try_gc(&vault.repo, 1, None).unwrap();
    *hidden.lock().unwrap() = None;
    let repo = open_repo(local, MEM_PASSPHRASE, &cache).unwrap();
    assert_eq!(
        read_all(&repo, &s1).unwrap(),
        t1.0,
        "the hidden snapshot lost data"
    );
    assert!(try_check(&repo).unwrap().is_ok());
}

fn lock_objects(storage: &dyn Storage) -> usize {
    storage.list(vault::storage::Dir::Locks).unwrap().len()
}

/// Found by `lost-reply`: a lock write that landed but whose reply was
/// lost left a lock nobody knew the name of, which held the vault until
/// someone watched it go stale (ten minutes from another host).
#[test]
fn a_lock_write_whose_reply_is_lost_leaves_no_lock() {
    let dir = tempfile::tempdir().unwrap();
    let local: Arc<dyn Storage> = Arc::new(LocalDir::create(dir.path().join("v")).unwrap());
    let mut plan = FaultPlan::new(FaultKind::LostReply, 1);
    plan.nth = Some(1);
    let (storage, _) = faulty(Arc::clone(&local), plan);
    let got =
        vault::lock::VaultLock::acquire(storage, LockKind::Exclusive, "gc", Duration::from_secs(1));
    assert!(got.is_err(), "the lock write reported an error");
    assert_eq!(
        lock_objects(local.as_ref()),
        0,
        "the lock that landed is gone"
    );
    // And the vault is free at once.
    vault::lock::VaultLock::acquire(local, LockKind::Exclusive, "gc", Duration::ZERO).unwrap();
}

/// Found by `error`: a release whose one delete failed left the lock for
/// ten minutes. The release tries again.
#[test]
fn a_lock_release_that_fails_once_still_releases() {
    let dir = tempfile::tempdir().unwrap();
    let local: Arc<dyn Storage> = Arc::new(LocalDir::create(dir.path().join("v")).unwrap());
    let failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let f = Arc::clone(&failed);
    let storage: Arc<dyn Storage> =
        Arc::new(vault::storage::Hooked::new(Arc::clone(&local), move |op| {
            if let vault::storage::Op::Delete { name } = op
                && name.kind == vault::storage::Dir::Locks
                && !f.swap(true, std::sync::atomic::Ordering::SeqCst)
            {
                return Err(vault::Error::Storage {
                    context: format!("delete {name}"),
                    message: "injected".into(),
                });
            }
            Ok(())
        }));
    let lock =
        vault::lock::VaultLock::acquire(storage, LockKind::Shared, "snapshot", Duration::ZERO)
            .unwrap();
    drop(lock);
    assert!(
        failed.load(std::sync::atomic::Ordering::SeqCst),
        "the first delete failed"
    );
    assert_eq!(lock_objects(local.as_ref()), 0, "released all the same");
}

/// Found by the concurrent histories (on S3): check listed the index,
/// then the snapshots, so a snapshot committed in between looked damaged
/// (its chunks "not in the index"). Check now lists the snapshots first.
#[test]
fn check_beside_a_snapshot_that_commits_meanwhile_finds_no_damage() {
    use std::sync::mpsc;
    let dir = tempfile::tempdir().unwrap();
    let local: Arc<dyn Storage> = Arc::new(LocalDir::create(dir.path().join("v")).unwrap());
    let check_cache = dir.path().join("cache-check");
    // The first listing of packs (check builds its index, then lists the
    // packs) waits while the test commits a snapshot.
    let (reached_tx, reached_rx) = mpsc::channel::<()>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let gate = std::sync::Mutex::new(Some((reached_tx, go_rx)));
    let gated: Arc<dyn Storage> =
        Arc::new(vault::storage::Hooked::new(Arc::clone(&local), move |op| {
            if let vault::storage::Op::List {
                kind: vault::storage::Dir::Packs,
            } = op
                && let Some((reached, go)) = gate.lock().unwrap().take()
            {
                reached.send(()).unwrap();
                go.recv().unwrap();
            }
            Ok(())
        }));
    let vault = MemVault::on(dir, Arc::clone(&local));
    let mut model = Model::default();
    for p in 0..PARTITIONS {
        model.append(p, 100, &[0]);
    }
    vault.snapshot(&model);
    for p in 0..PARTITIONS {
        model.append(p, 100, &[1]);
    }
    let checker = std::thread::spawn(move || {
        let repo = open_repo(gated, MEM_PASSPHRASE, &check_cache).unwrap();
        try_check(&repo).unwrap()
    });
    reached_rx.recv().unwrap();
    vault.snapshot(&model);
    go_tx.send(()).unwrap();
    let report = checker.join().unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
}
