//! A restore done by several workers together (`vault restore --workers
//! NAME`), see docs/design.md § Distributed snapshot and restore, its
//! part **Restore**.
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
mod prepare;
mod status;
mod worker;

pub use status::{RestoreStatus, restores_in_progress};
pub use worker::{WorkerOptions, WorkerOutcome, group_name};

use own_record::{claim_restore, commit_own_record};
use partition::restore_partition;
use prepare::{Prepared, prepare};
use worker::Worker;

use super::options::RestoreOptions;
use super::plan::RestorePlan;
use super::progress::{self, Phase, ProgressState, partition_key};
use super::steps::{self, translated_groups};
use crate::error::{Error, Result};
use crate::kafka::{GroupMember, JoinWait, KafkaOptions};
use crate::repository::{Indexed, Repository};

/// Works on the restore `plan` with the other workers of `opts.name`
/// until every partition is restored and the group offsets are committed.
pub fn work(
    repo: &Repository<Indexed>,
    plan: &RestorePlan,
    ropts: &RestoreOptions,
    opts: &WorkerOptions,
) -> Result<WorkerOutcome> {
    let started = Instant::now();
    let (worker, own, created) = match prepare(repo, plan, ropts, opts, started)? {
        Prepared::Finished(out) => return Ok(out),
        Prepared::Ready {
            worker,
            own,
            created,
        } => (worker, own, created),
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
    let claimed = claim_restore(&worker, own, &mut out.warnings)?;
    work_partitions(&worker, claimed, out)
}

/// Joins the run's consumer group and restores the partitions it is given,
/// a batch at a time, until every partition is done; then finishes the
/// restore. `claimed` is the start time of the restore's own record.
fn work_partitions(
    worker: &Worker<'_>,
    claimed: u64,
    mut out: WorkerOutcome,
) -> Result<WorkerOutcome> {
    let (plan, opts, kafka) = (worker.plan, worker.opts, worker.kafka());
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
        let done = finished_partitions(kafka, plan, &worker.parts_topic, &worker.target_ids)?;
        if done.len() == plan.partitions.len() {
            return finish(worker, &done, out);
        }
        if !member.settled(Duration::from_secs(3)) {
            JoinWait {
                group: group_name(&opts.name, &plan.restore_id),
                started: worker.started,
                timeout: opts.join_timeout,
            }
            .pause_unsettled(
                member.generation(),
                member.last_error(),
                "answer",
                "the restore's committed partitions stay",
            )?;
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
                check_targets_unchanged(kafka, plan, &worker.target_ids)?;
            }
            std::thread::sleep(opts.poll_interval);
            continue;
        }
        idle_since = None;
        restore_batch(worker, &member, &mine, &mut out)?;
    }
}

/// Restores the plan partitions `mine` at once, each on a thread of its
/// own, and counts what they wrote into `out`. A partition handed to
/// another worker meanwhile is that worker's to finish.
fn restore_batch(
    worker: &Worker<'_>,
    member: &GroupMember,
    mine: &[usize],
    out: &mut WorkerOutcome,
) -> Result<()> {
    let plan = worker.plan;
    crate::faults::pause_point("distributed-restore-batch");
    let fresh = |restore_id: &str, part_of: Option<&str>, topic: Option<&str>| {
        worker.fresh(restore_id, part_of, topic)
    };
    let results: Vec<Result<u64>> = std::thread::scope(|s| {
        let handles: Vec<_> = mine
            .iter()
            .map(|&i| {
                let fresh = &fresh;
                let ids = &worker.target_ids;
                let topic = worker.parts_topic.as_str();
                let (repo, ropts) = (worker.repo, worker.ropts);
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
    Ok(())
}

/// Every partition is done (`done`, by partition key): commits the group
/// offsets unless the restore is done already, marks it done and takes
/// the pin back.
fn finish(
    worker: &Worker<'_>,
    done: &BTreeMap<String, ProgressState>,
    mut out: WorkerOutcome,
) -> Result<WorkerOutcome> {
    let (plan, kafka) = (worker.plan, worker.kafka());
    // Done by records that are still there: a target topic deleted
    // or created again since this worker began holds none of them,
    // and committing the groups would point past its empty log.
    check_targets_unchanged(kafka, plan, &worker.target_ids)?;
    let mut state = worker.fresh(&plan.restore_id, None, None);
    for s in done.values() {
        state.partitions.extend(s.partitions.clone());
        state.ends.extend(s.ends.clone());
        state.transactions += s.transactions;
    }
    out.groups = translated_groups(plan, &state);
    // Once every partition is on the target, and never before; and
    // never again once the restore is done (its consumers may have
    // moved on since: committing again would rewind them).
    let finished = progress::load(kafka, &plan.restore_id)?.is_some_and(|s| s.phase == Phase::Done);
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
        .extend(super::pin::unpin(worker.repo, &plan.restore_id));
    out.duration = worker.started.elapsed();
    Ok(out)
}

/// Whether a partition's producer was fenced: another worker's producer of
/// the same transactional id took the partition over.
fn is_fenced(e: &Error) -> bool {
    e.to_string().to_ascii_lowercase().contains("fenced")
}

/// How long a worker with nothing to do waits between looks at whether
/// the target topics are still the ones it restores into.
const IDLE_CHECK: Duration = Duration::from_secs(15);

/// Fails, saying what to do, when a target topic was deleted or created
/// again since `began` (the IDs this worker started with).
fn check_targets_unchanged(
    kafka: &KafkaOptions,
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

/// The partitions whose own records say they are done, by partition key.
fn finished_partitions(
    kafka: &KafkaOptions,
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
