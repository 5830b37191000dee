//! The engine without Kafka: records come from a `MemorySource` and go to
//! a `MemorySink`, so the combinatorics run in milliseconds.
//!
//! * A model-based test: random appends (with offset gaps), retention,
//!   snapshots, forgets and gc runs; after every step each kept snapshot
//!   reads back exactly what the model says it holds.
//! * The offset translation rule over random gaps, transaction markers, a
//!   non-empty target and a restore killed and resumed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use vault::kafka::{KafkaOptions, TopicInfo, TopicSelection};
use vault::lock::{LockKind, LockTimes, VaultLock};
use vault::reader::StoredRecord;
use vault::repository::{Indexed, InitOptions, Repository};
use vault::restore::data::restore_records;
use vault::restore::plan::{GroupPosition, GroupRestore, PartitionRestore, TopicRestore};
use vault::restore::progress::{ProgressState, RestoreSelection};
use vault::restore::sink::{MemorySink, OutRecord, RecordSink};
use vault::restore::{RestoreOptions, RestorePlan, TimeWindow, translated_groups};
use vault::snapshot::plan::{Cut, NoRecords};
use vault::snapshot::{
    MemorySource, RecordSource, SnapshotOptions, SnapshotPlan, SnapshotRequest, SourceEvent,
};
use vault::storage::local::LocalDir;
use vault_format::ObjectId;
use vault_format::record::TimestampType;

use crate::common::init_repo;

pub(crate) const TOPIC: &str = "events";
pub(crate) const PARTITIONS: u32 = 2;

/// A vault in a temporary directory, small chunks and fan-out so that a
/// few hundred records make several packs, leaves and tree levels.
pub(crate) struct MemVault {
    _dir: tempfile::TempDir,
    pub(crate) repo: Repository<Indexed>,
}

/// The passphrase of every [`MemVault`].
pub(crate) const MEM_PASSPHRASE: &[u8] = b"engine test passphrase";

impl MemVault {
    fn new() -> MemVault {
        let dir = tempfile::tempdir().unwrap();
        let storage = Arc::new(LocalDir::create(dir.path().join("v")).unwrap());
        MemVault::on(dir, storage)
    }

    /// A vault on `storage` (which may wrap a folder of `dir`), its index
    /// cache in `dir`.
    pub(crate) fn on(
        dir: tempfile::TempDir,
        storage: Arc<dyn vault::storage::Storage>,
    ) -> MemVault {
        let mut opts = InitOptions::from_settings(1, 1, 1, None, 8).unwrap();
        if let Some(c) = opts.config.as_mut() {
            c.tree_fanout = 4;
            c.pack_target_size = 8 << 10;
            c.chunker = vault_format::chunker::ChunkerParams {
                min: 256,
                avg: 1024,
                max: 4096,
            };
        }
        let repo = init_repo(
            storage,
            MEM_PASSPHRASE,
            opts.config,
            &dir.path().join("cache"),
        );
        MemVault { _dir: dir, repo }
    }

    pub(crate) fn lock(&self, kind: LockKind) -> VaultLock {
        VaultLock::acquire(
            Arc::clone(self.repo.storage()),
            kind,
            "test",
            Duration::from_secs(5),
        )
        .unwrap()
    }

    /// A snapshot of what the model's cluster holds now.
    pub(crate) fn snapshot(&self, model: &Model) -> ObjectId {
        let plan = plan_for(self, model);
        let lock = self.lock(LockKind::Shared);
        let mut source = model.source();
        // Snapshots taken within one millisecond would tie on time.
        std::thread::sleep(Duration::from_millis(2));
        vault::snapshot::execute(&self.repo, &plan, &snapshot_options(), &lock, &mut source)
            .unwrap()
            .id
    }

    pub(crate) fn forget(&self, id: &ObjectId) {
        let _lock = self.lock(LockKind::Shared);
        vault::gc::forget(&self.repo, &id.to_hex()).unwrap();
    }

    pub(crate) fn gc(&self, keep_last: usize) -> Vec<ObjectId> {
        let lock = self.lock(LockKind::Exclusive);
        let policy = vault::gc::KeepPolicy::from(vault::gc::KeepRules {
            last: keep_last,
            ..Default::default()
        });
        let opts = vault::gc::GcOptions {
            repack_below: 0.5,
            unindexed_min_age: Duration::ZERO,
            ..Default::default()
        };
        let plan = vault::gc::GcPlan::make(&self.repo, &policy, &opts, Some(&lock), None).unwrap();
        vault::gc::execute(&self.repo, &plan, &lock).unwrap();
        plan.forget
    }

    /// What a snapshot holds, per partition: (offset, value).
    pub(crate) fn read(&self, id: &ObjectId) -> BTreeMap<u32, Vec<(i64, Vec<u8>)>> {
        let m = self.repo.read_snapshot(id).unwrap();
        let mut out = BTreeMap::new();
        for p in &m.topics[0].partitions {
            let recs = match p.root {
                Some(root) => vault::reader::all_records(&self.repo, &root).unwrap(),
                None => vec![],
            };
            out.insert(
                p.partition,
                recs.into_iter()
                    .map(|r| (r.offset, r.value.unwrap_or_default()))
                    .collect(),
            );
        }
        out
    }
}

pub(crate) fn record(offset: i64, value: Vec<u8>) -> StoredRecord {
    StoredRecord {
        offset,
        timestamp: 1_700_000_000_000 + offset,
        timestamp_type: TimestampType::CreateTime,
        key: Some(format!("k{}", offset % 7).into_bytes()),
        value: Some(value),
        headers: vec![(b"h".to_vec(), Some(b"v".to_vec()))],
    }
}

/// A cluster with one topic, as far as a snapshot can tell.
#[derive(Clone, Debug, Default)]
pub(crate) struct Model {
    logs: BTreeMap<u32, Vec<StoredRecord>>,
    next: BTreeMap<u32, i64>,
    log_start: BTreeMap<u32, i64>,
    counter: u64,
}

/// What a snapshot holds, per partition.
pub(crate) type Holds = BTreeMap<u32, Vec<(i64, Vec<u8>)>>;
/// What a snapshot holds and, per partition, where its cut was.
pub(crate) type Taken = (Holds, BTreeMap<u32, i64>);

impl Model {
    pub(crate) fn append(&mut self, p: u32, n: usize, gaps: &[u8]) {
        for i in 0..n {
            let next = self.next.entry(p).or_default();
            let offset = *next + i64::from(gaps[i % gaps.len()] % 4);
            self.counter += 1;
            // Values compress and dedup a little, like real ones.
            let value = format!(
                "p{p} n{} {}",
                self.counter,
                "x".repeat((self.counter % 97) as usize)
            )
            .into_bytes();
            self.logs.entry(p).or_default().push(record(offset, value));
            *next = offset + 1;
        }
    }

    pub(crate) fn retain(&mut self, p: u32, k: i64) {
        let next = self.next.get(&p).copied().unwrap_or(0);
        let start = self.log_start.entry(p).or_default();
        *start = (*start + k).min(next);
        let start = *start;
        if let Some(log) = self.logs.get_mut(&p) {
            log.retain(|r| r.offset >= start);
        }
    }

    pub(crate) fn cut(&self) -> Cut {
        let mut log_start = HashMap::new();
        let mut end = HashMap::new();
        for p in 0..PARTITIONS {
            let key = (TOPIC.to_string(), p);
            log_start.insert(key.clone(), self.log_start.get(&p).copied().unwrap_or(0));
            end.insert(key, self.next.get(&p).copied().unwrap_or(0));
        }
        Cut {
            cluster_id: Some("memory-cluster".into()),
            topics: vec![TopicInfo {
                name: TOPIC.into(),
                id: Some(vault_format::TopicId([7; 16])),
                partitions: PARTITIONS,
                replication_factor: 1,
            }],
            configs: HashMap::new(),
            log_start,
            end,
            groups: vec![],
            estate: None,
        }
    }

    pub(crate) fn source(&self) -> MemorySource {
        MemorySource::new(
            self.logs
                .iter()
                .map(|(p, log)| ((TOPIC.to_string(), *p), log.clone()))
                .collect(),
        )
    }

    /// What a snapshot built on `base` (the newest snapshot left, if any)
    /// holds: the base's records, then what the cluster holds from the
    /// base's cut on. Records retention deleted since stay in the history.
    pub(crate) fn snapshot(&self, base: Option<&Taken>) -> Taken {
        let mut holds = Holds::new();
        let mut ends = BTreeMap::new();
        for p in 0..PARTITIONS {
            let (mut recs, from) = match base {
                Some((h, e)) => (
                    h.get(&p).cloned().unwrap_or_default(),
                    e.get(&p).copied().unwrap_or(0),
                ),
                None => (Vec::new(), 0),
            };
            for r in self.logs.get(&p).into_iter().flatten() {
                if r.offset >= from {
                    recs.push((r.offset, r.value.clone().unwrap_or_default()));
                }
            }
            holds.insert(p, recs);
            ends.insert(p, self.next.get(&p).copied().unwrap_or(0));
        }
        (holds, ends)
    }
}

#[derive(Clone, Debug)]
enum Op {
    Append { p: u32, n: usize, gaps: Vec<u8> },
    Retain { p: u32, k: i64 },
    Snapshot,
    Forget(usize),
    Gc(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..PARTITIONS, 1usize..120, prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(p, n, gaps)| Op::Append { p, n, gaps }),
        1 => (0..PARTITIONS, 1i64..60).prop_map(|(p, k)| Op::Retain { p, k }),
        3 => Just(Op::Snapshot),
        1 => (0usize..8).prop_map(Op::Forget),
        1 => (1usize..3).prop_map(Op::Gc),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 12,
        // The saved seeds sit next to this file (tests/offline/main.rs
        // would otherwise make proptest look in tests/proptest-regressions/).
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        .. ProptestConfig::default()
    })]

    #[test]
    fn every_kept_snapshot_reads_back_what_it_took(ops in prop::collection::vec(op(), 1..14)) {
        let vault = MemVault::new();
        let mut model = Model::default();
        // The snapshots left, oldest first: what each holds and its cut.
        let mut kept: Vec<(ObjectId, Taken)> = Vec::new();
        for op in ops {
            match op {
                Op::Append { p, n, gaps } => model.append(p, n, &gaps),
                Op::Retain { p, k } => model.retain(p, k),
                Op::Snapshot => {
                    let id = vault.snapshot(&model);
                    let holds = model.snapshot(kept.last().map(|(_, h)| h));
                    kept.push((id, holds));
                }
                Op::Forget(i) => {
                    if !kept.is_empty() {
                        let (id, _) = kept.remove(i % kept.len());
                        vault.forget(&id);
                    }
                }
                Op::Gc(n) => {
                    let forgotten = vault.gc(n);
                    kept.retain(|(id, _)| !forgotten.contains(id));
                    prop_assert!(kept.len() <= n);
                }
            }
            for (id, (want, _)) in &kept {
                prop_assert_eq!(&vault.read(id), want, "snapshot {}", id);
            }
        }
        let report = vault::check::run(&vault.repo, vault::check::CheckOptions {
            read_data: 1.0,
            progress: None,
        }).unwrap();
        prop_assert!(report.is_ok(), "{:?}", report.problems);
    }
}

/// A sink that fails to commit its `n`-th transaction, as a killed run.
struct FailingAt<'a> {
    inner: &'a MemorySink,
    fail_at: usize,
    commits: std::cell::Cell<usize>,
}

impl RecordSink for FailingAt<'_> {
    fn begin(&self) -> vault::Result<()> {
        self.inner.begin()
    }
    fn send(
        &self,
        part: usize,
        t: &str,
        p: u32,
        r: &OutRecord<'_>,
        mark: usize,
    ) -> vault::Result<()> {
        self.inner.send(part, t, p, r, mark)
    }
    fn poll(&self) {}
    fn flush(&self) -> vault::Result<Vec<(usize, i64)>> {
        self.inner.flush()
    }
    fn last_offset(&self, part: usize) -> Option<i64> {
        self.inner.last_offset(part)
    }
    fn commit(&self, state: &ProgressState) -> vault::Result<()> {
        self.commits.set(self.commits.get() + 1);
        if self.commits.get() == self.fail_at {
            return Err(vault::Error::Internal("killed".into()));
        }
        self.inner.commit(state)
    }
    fn abort(&self) {
        self.inner.abort();
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 16,
        // The saved seeds sit next to this file (tests/offline/main.rs
        // would otherwise make proptest look in tests/proptest-regressions/).
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        .. ProptestConfig::default()
    })]

    /// A committed source offset C becomes the target offset of the first
    /// restored record at or after C, else the partition's end: across
    /// compaction gaps, transaction markers, a non-empty target and a
    /// restore killed mid-way and run again.
    #[test]
    fn offsets_translate_to_the_first_record_at_or_after_them(
        n in 1usize..400,
        gaps in prop::collection::vec(any::<u8>(), 1..16),
        positions in prop::collection::vec(any::<u16>(), 0..8),
        prefill in 0i64..5,
        fail_at in 0usize..4,
    ) {
        let vault = MemVault::new();
        let mut model = Model::default();
        model.append(0, n, &gaps);
        let id = vault.snapshot(&model);
        let m = vault.repo.read_snapshot(&id).unwrap();
        let last = model.next[&0];
        // Positions anywhere from before the first offset to past the end.
        let wanted: Vec<i64> = positions.iter().map(|p| i64::from(*p) % (last + 3) - 1).collect();
        let wanted: Vec<i64> = wanted.into_iter().map(|c| c.max(0)).collect();
        let plan = restore_plan(&m, &wanted);

        let sink = MemorySink::default();
        sink.prefill(TOPIC, 0, prefill);
        let opts = RestoreOptions {
            kafka: KafkaOptions::new("unused:9092"),
            workers: 2,
            // Small transactions: several markers among the records.
            transaction_bytes: 2 << 10,
            progress: None,
        };
        let mut state = ProgressState::default();
        if fail_at > 0 {
            let failing = FailingAt { inner: &sink, fail_at, commits: Default::default() };
            let _ = restore_records(&vault.repo, &plan, &opts, &failing, &mut state);
        }
        restore_records(&vault.repo, &plan, &opts, &sink, &mut state).unwrap();
        let restored = sink.committed(TOPIC, 0);
        prop_assert_eq!(restored.len(), n, "every record exactly once");
        state.ends.insert(format!("{TOPIC}/0"), sink.end(TOPIC, 0));
        let groups = translated_groups(&plan, &state);
        for (o, c) in groups[0].offsets.iter().zip(&wanted) {
            let want = restored
                .iter()
                .find(|r| r.source_offset >= *c)
                .map_or(sink.end(TOPIC, 0), |r| r.target_offset);
            prop_assert_eq!(o.target_offset, want, "position {}", c);
        }
    }
}

/// A restore of partition 0 of `m` into the same topic, one group at `wanted`.
fn restore_plan(m: &vault_format::manifest::SnapshotManifest, wanted: &[i64]) -> RestorePlan {
    let p = &m.topics[0].partitions[0];
    RestorePlan {
        restore_id: "engine-test".into(),
        vault_id: String::new(),
        selection: RestoreSelection::default(),
        resumes: false,
        abandon: vec![],
        snapshot_id: ObjectId([0; 32]),
        snapshot_time_ms: m.time_ms,
        window: TimeWindow::default(),
        topics: vec![TopicRestore {
            source: TOPIC.into(),
            target: TOPIC.into(),
            partitions: 1,
            create: None,
        }],
        partitions: vec![PartitionRestore {
            source_topic: TOPIC.into(),
            target_topic: TOPIC.into(),
            partition: 0,
            root: p.root,
            group_offsets: wanted.to_vec(),
        }],
        groups: vec![GroupRestore {
            group_id: "g".into(),
            offsets: wanted
                .iter()
                .map(|c| GroupPosition {
                    partition: 0,
                    source_offset: *c,
                    metadata: None,
                })
                .collect(),
        }],
        target_brokers: 1,
        warnings: vec![],
    }
}

/// A snapshot of the test topic.
pub(crate) fn request() -> SnapshotRequest {
    SnapshotRequest {
        selection: TopicSelection::topics(&[TOPIC]),
        read_committed: true,
        source: None,
    }
}

/// The plan of a snapshot of what `model` holds now.
pub(crate) fn plan_for(vault: &MemVault, model: &Model) -> SnapshotPlan {
    SnapshotPlan::from_cut(&vault.repo, model.cut(), &request(), &NoRecords).unwrap()
}

pub(crate) fn snapshot_options() -> SnapshotOptions {
    SnapshotOptions {
        tags: vec![],
        workers: 2,
        stall_timeout: Duration::from_secs(10),
        progress: None,
        data_horizon_ms: None,
        // One partition a pass: every snapshot here reads in several passes.
        partitions_per_pass: Some(1),
    }
}

#[test]
fn retention_after_the_cut_is_reported_and_moves_the_log_start() {
    let vault = MemVault::new();
    let mut model = Model::default();
    model.append(0, 100, &[0]);
    model.append(1, 10, &[0]);
    let plan = plan_for(&vault, &model);
    // Between the cut and the read, retention deletes offsets 0..40.
    let mut source = model.source();
    source.delete_before(TOPIC, 0, 40);
    let lock = vault.lock(LockKind::Shared);
    let out = vault::snapshot::execute(&vault.repo, &plan, &snapshot_options(), &lock, &mut source)
        .unwrap();
    assert!(
        out.warnings
            .iter()
            .any(|w| w.contains("events/0: offsets 0..40 were deleted by retention")),
        "{:?}",
        out.warnings
    );
    let m = vault.repo.read_snapshot(&out.id).unwrap();
    let p0 = &m.topics[0].partitions[0];
    assert_eq!((p0.log_start_offset, p0.end_offset), (40, 100));
    let held = vault.read(&out.id);
    assert_eq!(held[&0].first().map(|r| r.0), Some(40));
    assert_eq!(held[&0].len(), 60);
    assert_eq!(held[&1].len(), 10);
}

/// A source that, at its first poll, has the snapshot's lock removed (as a
/// gc that judged it stale would) and waits until the holder notices.
struct LosesTheLock<'a> {
    inner: MemorySource,
    lock: &'a VaultLock,
    storage: Arc<dyn vault::storage::Storage>,
    struck: bool,
}

impl RecordSource for LosesTheLock<'_> {
    fn start(&mut self, parts: &[vault::snapshot::PartitionPlan]) -> vault::Result<()> {
        self.inner.start(parts)
    }

    fn poll(
        &mut self,
        timeout: Duration,
        sink: &mut dyn FnMut(SourceEvent<'_>) -> vault::Result<()>,
    ) -> vault::Result<()> {
        if !self.struck {
            self.struck = true;
            self.storage.delete(&self.lock.name()).unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while self.lock.check().is_ok() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the lock's removal went unnoticed"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        self.inner.poll(timeout, sink)
    }

    fn last_error(&self) -> Option<String> {
        None
    }
}

#[test]
fn a_snapshot_that_loses_its_lock_commits_nothing() {
    let vault = MemVault::new();
    let mut model = Model::default();
    model.append(0, 300, &[0, 1]);
    model.append(1, 300, &[0]);
    let plan = plan_for(&vault, &model);
    let lock = VaultLock::acquire_with(
        Arc::clone(vault.repo.storage()),
        LockKind::Shared,
        "test",
        Duration::from_secs(5),
        LockTimes {
            refresh: Duration::from_millis(50),
            stale_after: Duration::from_secs(60),
        },
    )
    .unwrap();
    let mut source = LosesTheLock {
        inner: model.source(),
        lock: &lock,
        storage: Arc::clone(vault.repo.storage()),
        struck: false,
    };
    let err = vault::snapshot::execute(&vault.repo, &plan, &snapshot_options(), &lock, &mut source)
        .unwrap_err();
    assert!(matches!(err, vault::Error::Locked(_)), "{err}");
    drop(lock);
    assert!(vault::catalog::list(&vault.repo).unwrap().is_empty());

    // The vault is whole: the next snapshot takes everything.
    let id = vault.snapshot(&model);
    let held = vault.read(&id);
    assert_eq!((held[&0].len(), held[&1].len()), (300, 300));
    let report = vault::check::run(
        &vault.repo,
        vault::check::CheckOptions {
            read_data: 1.0,
            progress: None,
        },
    )
    .unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
}

/// Two workers share a snapshot's partitions (`--workers`), one of them
/// also taking the other's partition, as after a rebalance: both end with
/// the snapshot one process takes of the same cut, committed once.
#[test]
fn workers_sharing_partitions_commit_the_snapshot_one_process_takes() {
    use std::collections::BTreeSet;
    use vault::snapshot::distributed::{
        FixedAssignment, NoTopicWatch, WorkerOptions, template, work,
    };

    let vault = MemVault::new();
    let mut model = Model::default();
    model.append(0, 150, &[1, 0, 2]);
    model.append(1, 90, &[0]);
    vault.snapshot(&model);
    model.append(0, 60, &[0, 3]);
    model.append(1, 200, &[1]);

    // One cut, taken by one process and by two workers.
    let plan = plan_for(&vault, &model);
    let lock = vault.lock(LockKind::Shared);
    let mut source = model.source();
    let single =
        vault::snapshot::execute(&vault.repo, &plan, &snapshot_options(), &lock, &mut source)
            .unwrap();
    let run = template::run_plan("engine", &plan, &[], None, vault::now_ms());
    assert!(
        vault::snapshot::distributed::RunObjects::new(&vault.repo, "engine")
            .create_plan(&run)
            .unwrap()
    );
    let opts = WorkerOptions {
        name: "engine".into(),
        tags: vec![],
        data_horizon_ms: None,
        threads: 1,
        stall_timeout: Duration::from_secs(10),
        partitions_per_batch: 1,
        poll_interval: Duration::from_millis(20),
        progress: None,
        rejoin_window: Duration::from_secs(60),
        join_timeout: Duration::from_secs(60),
    };
    let share = |ps: &[u32]| {
        FixedAssignment(
            ps.iter()
                .map(|p| (TOPIC.to_string(), *p))
                .collect::<BTreeSet<_>>(),
        )
    };
    let outcomes: Vec<_> = std::thread::scope(|s| {
        let workers: Vec<_> = [share(&[0]), share(&[1, 0])]
            .into_iter()
            .map(|assignment| {
                let (repo, run, opts, model) = (&vault.repo, &run, &opts, &model);
                let lock = vault.lock(LockKind::Shared);
                s.spawn(move || {
                    let mut source = || -> vault::Result<Box<dyn RecordSource + Send>> {
                        Ok(Box::new(model.source()))
                    };
                    work(
                        repo,
                        run,
                        &assignment,
                        &NoTopicWatch,
                        &mut source,
                        opts,
                        &lock,
                    )
                    .unwrap()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    assert_eq!(outcomes[0].snapshot, outcomes[1].snapshot, "one snapshot");
    let written: usize = outcomes.iter().map(|o| o.partitions_done_here.len()).sum();
    assert_eq!(written, 2, "one part per partition, whoever wrote it");
    let distributed = vault.repo.read_snapshot(&outcomes[0].snapshot).unwrap();
    assert_eq!(distributed.topics, single.manifest.topics, "the same trees");
    assert_eq!(distributed.parent, single.manifest.parent);
    assert_eq!(
        distributed.stats.records_read,
        single.manifest.stats.records_read
    );
    assert!(
        vault
            .repo
            .storage()
            .list(vault::storage::Dir::Runs)
            .unwrap()
            .iter()
            .all(|l| l.name.ends_with(".commit")),
        "plan and parts are gone once committed"
    );
}

/// The CLI reads the cut while the key is derived, before it holds the
/// lock, so a snapshot can commit in between with more records than that
/// cut. Such a plan must say it is behind its base (the CLI then reads
/// the cut again) rather than pass for a cluster that lost records.
#[test]
fn a_cut_read_before_a_newer_snapshot_is_behind_its_base() {
    let vault = MemVault::new();
    let mut model = Model::default();
    model.append(0, 50, &[0]);
    let early = model.cut();
    model.append(0, 30, &[0]);
    assert!(!plan_for(&vault, &model).behind_base);
    vault.snapshot(&model);
    let stale = SnapshotPlan::from_cut(&vault.repo, early, &request(), &NoRecords).unwrap();
    assert!(stale.behind_base);
    let fresh = plan_for(&vault, &model);
    assert!(!fresh.behind_base, "{:?}", fresh.warnings);
    assert_eq!(fresh.records_to_read(), 0);
}

// ---------------------------------------------------------------------
// The start of a snapshot (`vault::snapshot::prepare`): the cut is read
// while the vault opens, and read again under the lock when it went stale
// meanwhile. Each mode opens the vault its own way: one snapshot unlocks
// and locks it, `--every` only locks the vault it keeps open, a `--workers`
// worker unlocks and locks it and then plans only if no plan exists.

mod prepare {
    use std::collections::BTreeSet;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use vault::lock::LockWatch;
    use vault::snapshot::distributed::{
        FixedAssignment, Found, NoTopicWatch, WorkerOptions, find_or_make_plan, work,
    };
    use vault::snapshot::plan::RecordLookup;
    use vault::snapshot::{Cluster, prepare};

    use super::*;

    /// MemVault's passphrase, for the modes that open the vault themselves.
    const PASSPHRASE: &[u8] = b"engine test passphrase";

    /// How old a cut may grow while the vault opens, here: short, so that
    /// a slow open takes a fraction of a second, not the CLI's seconds.
    const CUT_AGE: Duration = Duration::from_millis(100);

    /// A cluster for `prepare`: each cut is the model as it stands when
    /// the cut is asked for, and the cuts asked for are counted, so a test
    /// sees whether the cut read while the vault opened was read again.
    struct ModelCluster {
        model: Mutex<Model>,
        reads: AtomicUsize,
    }

    impl ModelCluster {
        fn new(model: Model) -> ModelCluster {
            ModelCluster {
                model: Mutex::new(model),
                reads: AtomicUsize::new(0),
            }
        }

        fn append(&self, p: u32, n: usize) {
            self.model.lock().unwrap().append(p, n, &[0]);
        }

        fn model(&self) -> Model {
            self.model.lock().unwrap().clone()
        }

        fn reads(&self) -> usize {
            self.reads.load(Ordering::SeqCst)
        }
    }

    impl Cluster for ModelCluster {
        fn read_cut(
            &self,
            _: &SnapshotRequest,
        ) -> impl Future<Output = vault::Result<Cut>> + Send + 'static {
            // Read at once, as the call is made: the test knows which
            // records the cut read while the vault opens holds.
            self.reads.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Ok(self.model.lock().unwrap().cut()))
        }

        fn records(&self, _: bool) -> impl RecordLookup {
            NoRecords
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    }

    /// The end of each partition in a committed snapshot.
    fn ends(repo: &Repository<Indexed>, id: &ObjectId) -> Vec<i64> {
        let m = repo.read_snapshot(id).unwrap();
        m.topics[0]
            .partitions
            .iter()
            .map(|p| p.end_offset)
            .collect()
    }

    /// The one-shot mode's opener: the vault unlocked (the key derivation
    /// the cut overlaps), locked, and its index loaded. `meanwhile` runs
    /// while it unlocks.
    fn open_locked(
        storage: &Arc<dyn vault::storage::Storage>,
        cache: &std::path::Path,
        meanwhile: impl FnOnce(),
    ) -> vault::Result<Option<(Repository<Indexed>, VaultLock)>> {
        let repo = Repository::open(Arc::clone(storage))?.unlock(PASSPHRASE)?;
        meanwhile();
        let lock = VaultLock::acquire(
            Arc::clone(repo.storage()),
            LockKind::Shared,
            "snapshot",
            Duration::from_secs(5),
        )?;
        Ok(Some((repo.index(cache)?, lock)))
    }

    #[test]
    fn a_cut_read_while_the_vault_opened_is_used_when_it_is_still_good() {
        let vault = MemVault::new();
        let mut model = Model::default();
        model.append(0, 40, &[0]);
        let cluster = ModelCluster::new(model);
        let rt = runtime();
        let req = request();
        let storage = vault.repo.storage();
        let (lock, mut cut) = prepare(
            &rt,
            &cluster,
            &req,
            storage.as_ref(),
            Duration::from_secs(60),
            || Ok(Some(vault.lock(LockKind::Shared))),
        )
        .unwrap()
        .unwrap();
        let plan = cut.plan(&vault.repo).unwrap();
        assert_eq!(cluster.reads(), 1, "no second cut");
        assert_eq!(plan.records_to_read(), 40);
        drop(lock);
    }

    /// One snapshot whose vault took longer to open than a cut may age
    /// (here while the records kept coming) reads the cut again under the
    /// lock, and the snapshot holds what the cluster had then.
    #[test]
    fn one_shot_reads_the_cut_again_after_a_slow_open() {
        let vault = MemVault::new();
        let mut model = Model::default();
        model.append(0, 40, &[0]);
        model.append(1, 10, &[0]);
        let cluster = ModelCluster::new(model);
        vault.snapshot(&cluster.model());
        cluster.append(0, 30);
        let rt = runtime();
        let req = request();
        let cache = tempfile::tempdir().unwrap();
        let storage = Arc::clone(vault.repo.storage());
        let ((repo, lock), mut cut) =
            prepare(&rt, &cluster, &req, storage.as_ref(), CUT_AGE, || {
                open_locked(&storage, cache.path(), || {
                    cluster.append(0, 25);
                    cluster.append(1, 5);
                    std::thread::sleep(CUT_AGE * 2);
                })
            })
            .unwrap()
            .unwrap();
        let plan = cut.plan(&repo).unwrap();
        assert_eq!(cluster.reads(), 2, "the cut is read again under the lock");
        assert!(!plan.behind_base);
        let mut source = cluster.model().source();
        let out = vault::snapshot::execute(&repo, &plan, &snapshot_options(), &lock, &mut source)
            .unwrap();
        assert_eq!(ends(&repo, &out.id), vec![95, 15]);
        assert_eq!(out.records_read, 55 + 5);
    }

    /// An interval of `--every` that waited for the lock behind a gc while
    /// records kept coming reads the cut again once it holds the lock.
    #[test]
    fn every_interval_reads_the_cut_again_after_waiting_behind_a_gc() {
        let vault = MemVault::new();
        let mut model = Model::default();
        model.append(0, 40, &[0]);
        model.append(1, 10, &[0]);
        let cluster = ModelCluster::new(model);
        // The interval before.
        vault.snapshot(&cluster.model());
        cluster.append(0, 30);
        let rt = runtime();
        let req = request();
        let gc = vault.lock(LockKind::Exclusive);
        let (waiting, told) = std::sync::mpsc::channel::<()>();
        let mut watch = LockWatch::new(LockTimes::default());
        std::thread::scope(|s| {
            s.spawn(move || {
                // The gc ends well after the interval began to wait for it.
                told.recv().unwrap();
                std::thread::sleep(CUT_AGE * 2);
                drop(gc);
            });
            // The --every mode's opener: the lock on the vault it keeps
            // open, then the index brought up to date.
            let (lock, mut cut) = prepare(
                &rt,
                &cluster,
                &req,
                vault.repo.storage().as_ref(),
                CUT_AGE,
                || {
                    cluster.append(1, 20);
                    waiting.send(()).unwrap();
                    let Some(lock) = VaultLock::acquire_watching(
                        Arc::clone(vault.repo.storage()),
                        LockKind::Shared,
                        "snapshot --every",
                        Duration::from_secs(30),
                        &mut watch,
                        &|| false,
                    )?
                    else {
                        return Ok(None);
                    };
                    vault.repo.sync_index()?;
                    Ok(Some(lock))
                },
            )
            .unwrap()
            .unwrap();
            let plan = cut.plan(&vault.repo).unwrap();
            assert_eq!(cluster.reads(), 2, "the cut is read again under the lock");
            let mut source = cluster.model().source();
            let out = vault::snapshot::execute(
                &vault.repo,
                &plan,
                &snapshot_options(),
                &lock,
                &mut source,
            )
            .unwrap();
            assert_eq!(ends(&vault.repo, &out.id), vec![70, 30]);
            let held = vault.read(&out.id);
            assert_eq!((held[&0].len(), held[&1].len()), (70, 30));
        });
    }

    /// A `--workers` worker that finds no plan makes it from a fresh cut
    /// when a snapshot committed while it opened the vault. That snapshot
    /// is of older records than the early cut (a slow snapshot whose cut
    /// came first), so the early cut is not behind it: only the changed
    /// snapshot list makes the worker read the cut again.
    #[test]
    fn a_worker_plans_from_a_fresh_cut_after_a_snapshot_committed_meanwhile() {
        let vault = MemVault::new();
        let mut older = Model::default();
        older.append(0, 30, &[0]);
        older.append(1, 10, &[0]);
        let mut model = older.clone();
        model.append(0, 10, &[0]);
        let cluster = ModelCluster::new(model);
        let rt = runtime();
        let req = request();
        let cache = tempfile::tempdir().unwrap();
        let storage = Arc::clone(vault.repo.storage());
        let mut meanwhile = None;
        // An age no open reaches: only the snapshot committed meanwhile
        // makes the early cut stale.
        let ((repo, lock), mut cut) = prepare(
            &rt,
            &cluster,
            &req,
            storage.as_ref(),
            Duration::from_secs(600),
            || {
                open_locked(&storage, cache.path(), || {
                    // Another process commits its snapshot of fewer records.
                    meanwhile = Some(vault.snapshot(&older));
                })
            },
        )
        .unwrap()
        .unwrap();
        let opts = WorkerOptions {
            name: "prepare".into(),
            tags: vec![],
            data_horizon_ms: None,
            threads: 1,
            stall_timeout: Duration::from_secs(10),
            partitions_per_batch: 1,
            poll_interval: Duration::from_millis(20),
            progress: None,
            rejoin_window: Duration::from_secs(60),
            join_timeout: Duration::from_secs(60),
        };
        let found = find_or_make_plan(&repo, &req, Some("memory-cluster"), &opts, &mut || {
            cut.plan(&repo)
        })
        .unwrap();
        let Found::Plan {
            plan,
            planned_here: true,
        } = found
        else {
            panic!("this worker makes the plan");
        };
        assert_eq!(cluster.reads(), 2, "the cut is read again under the lock");
        let all: BTreeSet<(String, u32)> =
            (0..PARTITIONS).map(|p| (TOPIC.to_string(), p)).collect();
        let model = cluster.model();
        let mut source =
            || -> vault::Result<Box<dyn RecordSource + Send>> { Ok(Box::new(model.source())) };
        let out = work(
            &repo,
            &plan,
            &FixedAssignment(all),
            &NoTopicWatch,
            &mut source,
            &opts,
            &lock,
        )
        .unwrap();
        assert_eq!(out.manifest.parent, meanwhile, "it continues that snapshot");
        assert_eq!(ends(&repo, &out.snapshot), vec![40, 10]);
        assert_eq!(out.records_read, 10, "only what that snapshot lacks");
    }
}
