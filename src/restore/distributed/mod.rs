//! A restore done by several workers together (`vault restore --workers
//! NAME`), see docs/design.md § Distributed restore.
//!
//! Every worker plans the same restore (the same snapshot and selection
//! give the same restore id), creates the missing topics, and joins the
//! consumer group `kvault-restore-NAME-ID` (the restore's id) subscribed to the target topics;
//! the group coordinator shares the target partitions out.
//!
//! Each partition is restored as its own small restore: its own
//! transactional id (`kvault-restore-<id>/<topic>/<partition>`) and its own
//! progress record, committed in the same transactions as its records. So
//! exactly-once holds per partition across crashes and reassignment: the
//! worker that takes a partition over fences the one that had it
//! (`init_transactions` aborts its open transaction) and resumes after its
//! last committed transaction. A worker has at most `partitions_in_flight`
//! partitions open at once.
//!
//! The restore's own record says which run does it (a single process
//! refuses to resume it), and turns to done only after the group offsets
//! are committed, which happens once every partition's record is done,
//! never before.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

mod own_record;
mod partition;
mod status;

pub use status::{RestoreStatus, restores_in_progress};

use own_record::{claim, commit_own_record};
use partition::restore_partition;

use super::options::RestoreOptions;
use super::plan::RestorePlan;
use super::progress::{self, PROGRESS_VERSION, Phase, ProgressState, partition_key};
use super::steps::{self, GroupOutcome, translated_groups};
use crate::error::{Error, Result};
use crate::kafka::GroupMember;
use crate::now_ms;
use crate::repository::{Indexed, Repository};

/// The consumer group the workers of run `name` share partitions through,
/// bound to the restore they restore (its id names the vault, the snapshot
/// and the selection): workers of two restores under one NAME never split
/// each other's partitions.
pub fn group_name(name: &str, restore_id: &str) -> String {
    format!(
        "kvault-restore-{name}-{}",
        &restore_id[..restore_id.len().min(16)]
    )
}

pub struct WorkerOptions {
    pub name: String,
    pub partitions_in_flight: usize,
    pub session_timeout: Duration,
    pub poll_interval: Duration,
    /// A worker the group never answers for this long fails, saying why.
    pub join_timeout: Duration,
}

#[derive(Clone, Debug)]
pub struct WorkerOutcome {
    pub restore_id: String,
    /// Target partitions this worker finished (`topic/partition`).
    pub partitions_done_here: Vec<String>,
    /// Records this worker wrote, and those the whole restore holds.
    pub records_here: u64,
    pub records: u64,
    /// This worker committed the group offsets (others may have committed
    /// the same offsets too).
    pub groups_committed_here: bool,
    /// The restore had finished before this worker started.
    pub already_complete: bool,
    pub topics_created: Vec<String>,
    pub groups: Vec<GroupOutcome>,
    pub duration: Duration,
    pub warnings: Vec<String>,
}

/// Works on the restore `plan` with the other workers of `opts.name`
/// until every partition is restored and the group offsets are committed.
pub fn work(
    repo: &Repository<Indexed>,
    plan: &RestorePlan,
    ropts: &RestoreOptions,
    opts: &WorkerOptions,
) -> Result<WorkerOutcome> {
    let started = Instant::now();
    let kafka = &ropts.kafka;
    if !plan.abandon.is_empty() {
        return Err(Error::Usage(
            "--abandon-unfinished cannot be combined with --workers: abandon the unfinished restore \
             with a single `vault restore ... --abandon-unfinished` first"
                .into(),
        ));
    }
    // The restore's own record says whether this is a new restore. A
    // restore that has begun keeps its partitions' progress in the parts
    // topic: if that topic is gone, the progress is lost, and restoring
    // from the start would write every committed record again.
    let parts_topic = progress::partition_progress_topic(&plan.restore_id);
    let own = progress::load(kafka, &plan.restore_id)?;
    // Done already (by workers or a single run): nothing to create or write.
    if let Some(s) = &own
        && s.phase == Phase::Done
        && !s.is_stale(&super::target::topic_ids(
            kafka,
            plan.topics.iter().map(|t| t.target.clone()),
        )?)
    {
        // A worker killed between the last commit and its unpin left one.
        let mut warnings = plan.warnings.clone();
        warnings.extend(super::pin::unpin(repo, &plan.restore_id));
        return Ok(WorkerOutcome {
            restore_id: plan.restore_id.clone(),
            partitions_done_here: Vec::new(),
            records_here: 0,
            records: s.partitions.values().map(|p| p.records).sum(),
            groups_committed_here: false,
            already_complete: true,
            topics_created: Vec::new(),
            groups: translated_groups(plan, s),
            duration: started.elapsed(),
            warnings,
        });
    }
    let begun = own
        .as_ref()
        .is_some_and(|s| s.phase.is_unfinished() && s.workers.is_some());
    if begun && !progress::topic_exists(kafka, &parts_topic)? {
        return Err(Error::Kafka {
            context: format!("resuming restore {}", plan.restore_id),
            message: format!(
                "its partitions' progress topic {parts_topic} is gone from the target, so vault cannot tell \
                 which records are there; nothing was written. Delete the restored topics and run \
                 `vault restore ... --abandon-unfinished` to start over"
            ),
        });
    }
    // Each restored partition's progress has a partition of its own there.
    let created = steps::create_topics_and(
        kafka,
        plan,
        vec![super::target::NewTopicSpec {
            name: parts_topic.clone(),
            partitions: u32::try_from(plan.partitions.len()).expect("partition counts fit a u32"),
            replication_factor: plan.target_brokers.min(3),
            configs: progress::progress_topic_configs(),
        }],
    )?;
    let target_ids = steps::target_topic_ids(kafka, plan)?;
    let recorded_ids: BTreeMap<String, String> = target_ids
        .iter()
        .filter_map(|(t, id)| Some((t.clone(), id.clone()?)))
        .collect();
    let fresh = |restore_id: &str, part_of: Option<&str>, topic: Option<&str>| ProgressState {
        version: PROGRESS_VERSION,
        restore_id: restore_id.to_string(),
        vault_id: plan.vault_id.clone(),
        snapshot_id: plan.snapshot_id.to_hex(),
        selection: Some(plan.selection.clone()),
        // A partition's record names only its own topic: another topic
        // recreated on the target does not make it stale.
        target_topic_ids: recorded_ids
            .iter()
            .filter(|(t, _)| topic.is_none_or(|only| only == t.as_str()))
            .map(|(t, id)| (t.clone(), id.clone()))
            .collect(),
        started_ms: now_ms(),
        workers: Some(opts.name.clone()),
        part_of: part_of.map(str::to_string),
        ..ProgressState::default()
    };
    let mut out = WorkerOutcome {
        restore_id: plan.restore_id.clone(),
        partitions_done_here: Vec::new(),
        records_here: 0,
        records: 0,
        groups_committed_here: false,
        already_complete: false,
        topics_created: created,
        groups: Vec::new(),
        duration: Duration::ZERO,
        warnings: plan.warnings.clone(),
    };

    // Before the restore's own record can make this an unfinished restore
    // that a rerun must resume: see `restore::pin`.
    out.warnings
        .extend(super::pin::pin_snapshot(repo, plan, kafka)?);
    // The restore's own record, committed before any record is written so
    // a single process never takes it for one of its own. `claimed` is its
    // start time: the restore this worker works on.
    let claimed = match own {
        Some(s) if s.is_stale(&target_ids) || s.phase == Phase::Abandoned => {
            claim(kafka, plan, &fresh(&plan.restore_id, None, None))?
        }
        Some(s) if s.workers.as_deref() != Some(opts.name.as_str()) => {
            return Err(Error::Usage(format!(
                "restore {} was begun by {}; finish it the same way (or pass --abandon-unfinished to a \
                 single `vault restore` to start over)",
                plan.restore_id,
                match &s.workers {
                    Some(w) => format!("the workers of run {w} (--workers {w})"),
                    None => "a single process (without --workers)".to_string(),
                }
            )));
        }
        Some(s) => s.started_ms,
        None => claim(kafka, plan, &fresh(&plan.restore_id, None, None))?,
    };

    let index: HashMap<(String, u32), usize> = plan
        .partitions
        .iter()
        .enumerate()
        .map(|(i, p)| ((p.target_topic.clone(), p.partition), i))
        .collect();
    let targets: Vec<String> = plan.topics.iter().map(|t| t.target.clone()).collect();
    let member = GroupMember::join(
        kafka,
        &group_name(&opts.name, &plan.restore_id),
        &targets,
        opts.session_timeout,
    )?;
    let mut idle_since: Option<Instant> = None;
    loop {
        // Abandoned (`--abandon-unfinished`), or begun afresh by another
        // run since: this worker's restore is over, and its partitions' next
        // writes are fenced anyway.
        if let Some(now) = progress::load(kafka, &plan.restore_id)?
            && now.started_ms >= claimed
            && (now.phase == Phase::Abandoned || now.workers.as_deref() != Some(opts.name.as_str()))
        {
            return Err(Error::Usage(format!(
                "restore {} was {} while this worker worked on it; this worker stops (what it committed stays)",
                plan.restore_id,
                if now.phase == Phase::Abandoned {
                    "abandoned (--abandon-unfinished)".to_string()
                } else {
                    "taken over by another run".to_string()
                }
            )));
        }
        let done = finished_partitions(kafka, plan, &parts_topic, &target_ids)?;
        if done.len() == plan.partitions.len() {
            // Done by records that are still there: a target topic deleted
            // or created again since this worker began holds none of them,
            // and committing the groups would point past its empty log.
            check_targets_unchanged(kafka, plan, &target_ids)?;
            let mut state = fresh(&plan.restore_id, None, None);
            for s in done.values() {
                state.partitions.extend(s.partitions.clone());
                state.ends.extend(s.ends.clone());
                state.transactions += s.transactions;
            }
            out.groups = translated_groups(plan, &state);
            // Once every partition is on the target, and never before; and
            // never again once the restore is done (its consumers may have
            // moved on since: committing again would rewind them).
            let finished =
                progress::load(kafka, &plan.restore_id)?.is_some_and(|s| s.phase == Phase::Done);
            if !plan.groups.is_empty() && !finished {
                steps::commit_groups(kafka, plan, &out.groups)?;
                out.groups_committed_here = true;
            }
            state.phase = Phase::Done;
            if !finished {
                commit_own_record(kafka, &state)?;
            }
            out.records = state.partitions.values().map(|p| p.records).sum();
            out.warnings
                .extend(super::pin::unpin(repo, &plan.restore_id));
            out.duration = started.elapsed();
            return Ok(out);
        }
        if !member.settled(Duration::from_secs(3)) {
            if member.generation() == 0 && started.elapsed() > opts.join_timeout {
                return Err(Error::Kafka {
                    context: format!(
                        "joining the consumer group {}",
                        group_name(&opts.name, &plan.restore_id)
                    ),
                    message: format!(
                        "no answer from the group coordinator in {} s ({}); check the brokers and that this \
                         client may join the group (a group ACL); the restore's committed partitions stay",
                        opts.join_timeout.as_secs(),
                        member
                            .last_error()
                            .unwrap_or_else(|| "the client reported no error".into())
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        let mine: Vec<usize> = member
            .assigned()
            .iter()
            .filter_map(|tp| index.get(tp).copied())
            .filter(|i| {
                let p = &plan.partitions[*i];
                !done.contains_key(&partition_key(&p.target_topic, p.partition))
            })
            .take(opts.partitions_in_flight.max(1))
            .collect();
        if mine.is_empty() {
            // Partitions of a deleted target topic are never assigned:
            // waiting for them would never end.
            let idle = *idle_since.get_or_insert_with(Instant::now);
            if idle.elapsed() >= IDLE_CHECK {
                idle_since = Some(Instant::now());
                check_targets_unchanged(kafka, plan, &target_ids)?;
            }
            std::thread::sleep(opts.poll_interval);
            continue;
        }
        idle_since = None;
        crate::faults::pause_point("distributed-restore-batch");
        let results: Vec<Result<u64>> = std::thread::scope(|s| {
            let handles: Vec<_> = mine
                .iter()
                .map(|&i| {
                    let fresh = &fresh;
                    let ids = &target_ids;
                    let topic = parts_topic.as_str();
                    s.spawn(move || restore_partition(repo, plan, i, topic, ropts, ids, fresh))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("partition restore panicked"))
                .collect()
        });
        for (i, r) in mine.iter().zip(results) {
            let p = &plan.partitions[*i];
            let key = partition_key(&p.target_topic, p.partition);
            match r {
                Ok(n) => {
                    out.records_here += n;
                    out.partitions_done_here.push(key);
                }
                // A rebalance gave the partition to another worker, whose
                // producer fenced this one's: its transactions keep the
                // partition exactly once, and it finishes the partition.
                Err(e)
                    if is_fenced(&e)
                        || !member
                            .assigned()
                            .contains(&(p.target_topic.clone(), p.partition)) =>
                {
                    out.warnings.push(format!(
                        "{key}: handed to another worker while this one restored it ({e}); that worker finishes it"
                    ));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Whether a partition's producer was fenced: another worker's producer of
/// the same transactional id took the partition over.
fn is_fenced(e: &Error) -> bool {
    e.to_string().to_ascii_lowercase().contains("fenced")
}

/// The partitions whose own records say they are done, by partition key.
/// How long a worker with nothing to do waits between looks at whether
/// the target topics are still the ones it restores into.
const IDLE_CHECK: Duration = Duration::from_secs(15);

/// Fails, saying what to do, when a target topic was deleted or created
/// again since `began` (the IDs this worker started with).
fn check_targets_unchanged(
    kafka: &crate::kafka::KafkaOptions,
    plan: &RestorePlan,
    began: &BTreeMap<String, Option<String>>,
) -> Result<()> {
    let now = steps::target_topic_ids(kafka, plan)?;
    for (topic, id) in began {
        let current = now.get(topic).cloned().flatten();
        if current != *id {
            return Err(Error::Kafka {
                context: format!("restore {} into {topic}", plan.restore_id),
                message: format!(
                    "target topic {topic} was {} while the restore ran (topic ID {} then, {} now), so \
                     the records restored into it \
                     before then are gone; the restore stopped before committing any group offsets. Delete \
                     topic {topic} on the target (it may hold records this restore wrote after it was \
                     created again), then run the same command again: the partitions of the other topics \
                     that are done stay done, and {topic} is restored from the start",
                    if current.is_some() {
                        "deleted and created again"
                    } else {
                        "deleted"
                    },
                    id.as_deref().unwrap_or("none"),
                    current.as_deref().unwrap_or("none")
                ),
            });
        }
    }
    Ok(())
}

fn finished_partitions(
    kafka: &crate::kafka::KafkaOptions,
    plan: &RestorePlan,
    parts_topic: &str,
    target_ids: &BTreeMap<String, Option<String>>,
) -> Result<BTreeMap<String, ProgressState>> {
    let partitions: Vec<i32> = (0..plan.partitions.len())
        .map(|i| i32::try_from(i).expect("partition counts fit an i32"))
        .collect();
    // A partition whose record is held back by an open transaction (its
    // worker is committing, or died mid-commit) counts as not done yet.
    let all = progress::read_records(kafka, parts_topic, &partitions)?;
    Ok(all
        .partition_records
        .into_iter()
        .filter(|s| s.part_of.as_deref() == Some(plan.restore_id.as_str()))
        .filter(|s| s.phase == Phase::Done && !s.is_stale(target_ids))
        .filter_map(|s| Some((s.partitions.keys().next()?.clone(), s)))
        .collect())
}
