//! A snapshot taken by several workers together (`vault snapshot --workers
//! NAME`), see docs/design.md § Distributed snapshot.
//!
//! 1. The first worker takes the cut and writes it as the run's plan,
//!    create-only, so racing workers agree on one plan ([`find_or_make_plan`]).
//! 2. Every worker joins the consumer group `kvault-snapshot-NAME-HASH`
//!    ([`group_name`]: the vault, the plan, its source and selection); the
//!    group coordinator shares the partitions out ([`Assignment`]).
//! 3. A worker reads its partitions up to the plan's cut through the same
//!    pipeline as a single snapshot, a few partitions at a time, and writes a
//!    part per partition once its packs and index objects are durable.
//! 4. Whoever sees every part writes the manifest: a pure function of the
//!    plan and the parts, so it is the same object whoever writes it.
//!
//! A worker that dies or loses a partition to a rebalance leaves no part
//! for it; the worker the group gives it to next starts it again from the
//! plan, and the packs the first one wrote are adopted, not written twice.

mod commit;
mod gone;
pub mod objects;
mod start;
pub mod template;
mod worker;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use vault_format::ObjectId;
use vault_format::run::{RunPart, RunPlan};

use commit::{commit, finish_committed};
pub use gone::{KafkaTopicWatch, NoTopicWatch, TopicWatch};
use gone::{mark_gone, note_gone_topics};
pub use objects::{PlanInProgress, RunObjects, plans_in_progress, roots_in_use};
pub use start::{Found, find_or_make_plan};
pub use worker::{WorkerOptions, WorkerOutcome};

use super::pipeline;
use super::source::RecordSource;
use crate::error::Result;
use crate::kafka::{GroupMember, JoinWait};
use crate::lock::VaultLock;
use crate::now_ms;
use crate::repository::{Indexed, Repository};

/// The consumer group the workers of `plan` share partitions through:
/// `kvault-snapshot-NAME-HASH`, the hash naming the vault, the plan, and
/// the source and selection it was cut from. Two vaults whose runs share a
/// NAME on one cluster (a local vault and an S3 one, say) then never split
/// the partitions between them, and neither does a plan made afresh with
/// the workers of an older one.
pub fn group_name(vault: &vault_format::VaultId, plan: &RunPlan) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"kvault snapshot group v1");
    h.update(&vault.0);
    h.update(&plan.plan_id);
    h.update(plan.template.source.as_bytes()).update(&[0]);
    h.update(plan.template.selection.to_string().as_bytes());
    format!(
        "kvault-snapshot-{}-{}",
        plan.name,
        &h.finalize().to_hex()[..16]
    )
}

/// Which partitions a worker is to take: the group's answer in production,
/// a fixed share in tests.
pub trait Assignment {
    fn assigned(&self) -> BTreeSet<(String, u32)>;
    /// Whether the assignment has settled after the workers joined.
    fn settled(&self) -> bool;
    /// Counts the rebalances seen: a change means partitions may have come
    /// from another worker.
    fn generation(&self) -> u64;
    /// Why no assignment came, if the client knows.
    fn last_error(&self) -> Option<String>;
}

/// How long the group's assignment must stand still before a worker starts:
/// workers started together join a moment apart.
const SETTLE: Duration = Duration::from_secs(3);

impl Assignment for GroupMember {
    fn assigned(&self) -> BTreeSet<(String, u32)> {
        GroupMember::assigned(self)
    }

    fn settled(&self) -> bool {
        GroupMember::settled(self, SETTLE)
    }

    fn generation(&self) -> u64 {
        GroupMember::generation(self)
    }

    fn last_error(&self) -> Option<String> {
        GroupMember::last_error(self)
    }
}

/// How long a worker with nothing to do waits between looks at whether
/// the partitions still missing can be read at all (their topics exist).
const IDLE_CHECK: Duration = Duration::from_secs(15);

/// A fixed share of the partitions (tests, and one worker taking all).
pub struct FixedAssignment(pub BTreeSet<(String, u32)>);

impl Assignment for FixedAssignment {
    fn assigned(&self) -> BTreeSet<(String, u32)> {
        self.0.clone()
    }

    fn settled(&self) -> bool {
        true
    }

    fn generation(&self) -> u64 {
        0
    }

    fn last_error(&self) -> Option<String> {
        None
    }
}

/// Works on `plan` until it is committed: takes the partitions
/// `assignment` gives this worker, writes their parts, and commits when
/// every part is there. `source` makes a record source for each batch.
///
/// No wait is without an end: a worker with nothing assigned looks every
/// `IDLE_CHECK` (15 s) at whether the partitions still missing belong to topics
/// `topics` says are gone (a topic deleted mid-run is dropped from the
/// group and never assigned again), and marks those partitions
/// `topic_gone`, so the run commits without that topic and says so.
pub fn work(
    repo: &Repository<Indexed>,
    plan: &RunPlan,
    assignment: &dyn Assignment,
    topics: &dyn TopicWatch,
    source: &mut dyn FnMut() -> Result<Box<dyn RecordSource + Send>>,
    opts: &WorkerOptions,
    lock: &VaultLock,
) -> Result<WorkerOutcome> {
    let started = Instant::now();
    let run = RunObjects::new(repo, &opts.name);
    let plans = template::partition_plans(plan);
    let index: HashMap<(String, u32), u32> = plans
        .iter()
        .enumerate()
        .map(|(i, p)| {
            (
                (p.topic.clone(), p.partition),
                u32::try_from(i).expect("partition counts fit a u32"),
            )
        })
        .collect();
    let mut parts: BTreeMap<u32, RunPart> = BTreeMap::new();
    let mut out = WorkerOutcome {
        snapshot: ObjectId([0; 32]),
        manifest: plan.template.clone(),
        committed_here: false,
        partitions_done_here: Vec::new(),
        partitions_duplicated: 0,
        records_read: 0,
        bytes_read: 0,
        bytes_added: 0,
        packs_adopted: 0,
        duration: Duration::ZERO,
        warnings: plan.warnings.clone(),
    };
    let mut adopted_at: Option<u64> = None;
    let mut idle_since: Option<Instant> = None;
    // A plan resumed after its topics changed: a topic deleted, or deleted
    // and created again, cannot be read at the plan's offsets.
    let mut looked_at_topics = false;
    loop {
        lock.check()?;
        crate::faults::pause_point("distributed-loop");
        let listing = run.list(plan)?;
        // A plan of the same name but another id: this one was dropped
        // (`vault forget --plan`) and the name planned again since.
        let replaced = listing.plan_present
            && !listing.committed
            && run.load_plan()?.is_some_and(|p| p.plan_id != plan.plan_id);
        if listing.committed || !listing.plan_present || replaced {
            return finish_committed(repo, &run, plan, &mut out, started);
        }
        // A part taken back since (its worker lost its lock) no longer
        // counts: its partition is read again, and the commit is built
        // from the parts that are there.
        let listed: BTreeSet<u32> = listing.parts.iter().copied().collect();
        parts.retain(|i, _| listed.contains(i));
        for i in listing.parts {
            if let std::collections::btree_map::Entry::Vacant(e) = parts.entry(i)
                && let Some(p) = run.read_part(plan, i)?
            {
                e.insert(p);
            }
        }
        if !looked_at_topics {
            looked_at_topics = true;
            let missing: Vec<u32> = (0..plans.len() as u32)
                .filter(|i| !parts.contains_key(i))
                .collect();
            for p in mark_gone(&run, plan, &plans, &missing, topics, lock)? {
                parts.insert(p.index, p);
            }
        }
        if parts.len() == plans.len() {
            note_gone_topics(&parts, &plans, &mut out);
            return commit(repo, &run, plan, &parts, lock, &mut out, started);
        }
        if !assignment.settled() {
            JoinWait {
                group: group_name(&repo.vault_id(), plan),
                started,
                timeout: opts.join_timeout,
            }
            .pause_unsettled(
                assignment.generation(),
                assignment.last_error(),
                "assignment",
                "the run's finished parts stay",
            )?;
            continue;
        }
        let mine: Vec<u32> = assignment
            .assigned()
            .iter()
            .filter_map(|tp| index.get(tp).copied())
            .filter(|i| !parts.contains_key(i))
            .take(opts.partitions_per_batch.max(1))
            .collect();
        if mine.is_empty() {
            let idle = *idle_since.get_or_insert_with(Instant::now);
            if idle.elapsed() >= IDLE_CHECK {
                idle_since = Some(Instant::now());
                let missing: Vec<u32> = (0..plans.len() as u32)
                    .filter(|i| !parts.contains_key(i))
                    .collect();
                // A failed look is tried again at the next one.
                for p in mark_gone(&run, plan, &plans, &missing, topics, lock).unwrap_or_default() {
                    parts.insert(p.index, p);
                }
                continue;
            }
            std::thread::sleep(opts.poll_interval);
            continue;
        }
        idle_since = None;
        // Another worker may have read some of these partitions before it
        // died or lost them: its indexed packs are dedup'ed against, its
        // unindexed ones adopted, so nothing is uploaded twice. Only after a
        // rebalance (or at the start) can that be new: listing every pack
        // of a large vault per batch would cost more than it saves.
        if adopted_at != Some(assignment.generation()) {
            adopted_at = Some(assignment.generation());
            repo.sync_index()?;
            out.packs_adopted += repo.adopt_orphan_packs()?;
        }
        let written = match read_batch(
            repo, &run, plan, &plans, &mine, source, topics, opts, lock, &mut out,
        ) {
            Ok(w) => w,
            // A topic deleted while it was read stalls or fails the batch:
            // if that is why, its partitions are marked and the rest of
            // the batch is read again.
            Err(e) => match mark_gone(&run, plan, &plans, &mine, topics, lock) {
                Ok(gone) if !gone.is_empty() => gone,
                // Not a topic gone (or the cluster cannot say): the read's
                // own error is the one that explains.
                _ => return Err(e),
            },
        };
        for p in written {
            parts.insert(p.index, p);
        }
    }
}

/// Reads the partitions `batch` (indices into the plan) and writes a part
/// for each. Returns the parts written.
#[allow(clippy::too_many_arguments)]
fn read_batch(
    repo: &Repository<Indexed>,
    run: &RunObjects<'_, Indexed>,
    plan: &RunPlan,
    plans: &[super::PartitionPlan],
    batch: &[u32],
    source: &mut dyn FnMut() -> Result<Box<dyn RecordSource + Send>>,
    topics: &dyn TopicWatch,
    opts: &WorkerOptions,
    lock: &VaultLock,
    out: &mut WorkerOutcome,
) -> Result<Vec<RunPart>> {
    let started_ms = now_ms();
    let batch_plans: Vec<super::PartitionPlan> =
        batch.iter().map(|i| plans[*i as usize].clone()).collect();
    if let Some(pb) = &opts.progress {
        pb.set_length(
            batch_plans
                .iter()
                .map(super::PartitionPlan::records_to_read)
                .sum(),
        );
        pb.set_position(0);
    }
    let popts = pipeline::PipelineOptions {
        workers: opts.threads,
        stall_timeout: opts.stall_timeout,
        progress: opts.progress.clone(),
        progress_base: (0, 0),
    };
    let mut src = source()?;
    let piped = pipeline::run(repo, src.as_mut(), &batch_plans, &popts, lock)?;
    let mut roots = piped.roots;
    let horizon_bytes = super::horizon::apply_to_roots(
        repo,
        &mut roots,
        plan.template.time_ms,
        plan.data_horizon_ms,
        lock,
    )?;
    crate::faults::pause_point("distributed-parts-ready");
    let finished_ms = now_ms();
    // Shares of the batch's totals, so the manifest's sums come out whole.
    let n = batch.len() as u64;
    let share = |total: u64, k: u64| total / n + u64::from(k < total % n);
    let bytes_added = piped.written.pack_bytes_written + horizon_bytes;
    let worker = format!("{}/{}", crate::host::hostname(), std::process::id());
    // A topic deleted and created again while this batch read it gave
    // records of the new topic at the old one's offsets: those partitions
    // are marked gone instead. (Recreated after this look, the records
    // read were the old topic's, as the plan wants.)
    let gone = mark_gone(run, plan, plans, batch, topics, lock)?;
    let gone_indices: BTreeSet<u32> = gone.iter().map(|p| p.index).collect();
    let mut written: Vec<RunPart> = Vec::new();
    // Parts commit what the packs hold: a worker whose lock lapsed may have
    // had its packs removed by a gc meanwhile.
    lock.check()?;
    for (k, (i, root)) in batch.iter().zip(roots).enumerate() {
        let p = &batch_plans[k];
        if gone_indices.contains(i) {
            continue;
        }
        let deleted: Vec<(i64, i64)> = piped
            .drained
            .deleted
            .iter()
            .filter(|d| d.part == k)
            .map(|d| (d.from, d.to))
            .collect();
        let log_start = deleted.iter().map(|d| d.1).fold(p.log_start, i64::max);
        let (records_read, bytes_read) = piped.drained.per_partition[k];
        let k = k as u64;
        let part = RunPart {
            plan_id: plan.plan_id,
            index: *i,
            root,
            log_start_offset: log_start,
            deleted,
            records_read,
            bytes_read,
            bytes_added: share(bytes_added, k),
            chunks_added: share(piped.written.chunks_added, k),
            started_ms,
            finished_ms,
            worker: worker.clone(),
            topic_gone: None,
        };
        if run.put_part(&part)? {
            out.partitions_done_here
                .push((p.topic.clone(), p.partition));
            written.push(part);
        } else {
            out.partitions_duplicated += 1;
        }
    }
    if let Err(e) = lock.check() {
        for p in &written {
            let _ = run.delete_part(plan, p.index);
        }
        return Err(e);
    }
    // What this batch read of them counts for nothing: their topics are left out.
    written.extend(gone);
    out.records_read += piped.drained.records;
    out.bytes_read += piped.drained.bytes;
    out.bytes_added += bytes_added;
    out.warnings.extend(repo.take_warnings());
    for d in &piped.drained.deleted {
        let p = &batch_plans[d.part];
        out.warnings.push(format!(
            "{}/{}: offsets {}..{} were deleted by retention after the cut and before vault read them; \
             they are not in this snapshot",
            p.topic, p.partition, d.from, d.to
        ));
    }
    Ok(written)
}
