//! One restored partition as a small restore of its own: its own
//! transactional id and progress record, resumed after its last commit.

use std::collections::BTreeMap;

use super::super::data::restore_records;
use super::super::options::RestoreOptions;
use super::super::plan::{RestorePlan, TopicRestore};
use super::super::produce::{QueueBudget, TxnProducer};
use super::super::progress::{self, Phase, ProgressState, partition_key};
use crate::error::{Error, Result};
use crate::repository::{Indexed, Repository};

/// The id of one partition's own restore within `restore_id`.
fn partition_restore_id(restore_id: &str, target_topic: &str, partition: u32) -> String {
    format!("{restore_id}/{}", partition_key(target_topic, partition))
}

/// The plan of one partition of `plan`: its topic, the partition, and no
/// groups (they are committed for the whole restore at the end).
fn partition_plan(plan: &RestorePlan, index: usize) -> RestorePlan {
    let p = &plan.partitions[index];
    let mut sub = plan.clone();
    sub.restore_id = partition_restore_id(&plan.restore_id, &p.target_topic, p.partition);
    sub.partitions = vec![p.clone()];
    sub.topics = plan
        .topics
        .iter()
        .filter(|t| t.target == p.target_topic)
        .cloned()
        .map(|t| TopicRestore { create: None, ..t })
        .collect();
    sub.groups = Vec::new();
    sub.abandon = Vec::new();
    sub
}

/// Makes a new progress record: (restore id, the restore it is a partition
/// of, the only target topic it names).
pub(super) type FreshRecord<'a> =
    dyn Fn(&str, Option<&str>, Option<&str>) -> ProgressState + Sync + 'a;

/// Restores one partition as its own small restore; returns the records
/// written by this call.
///
/// A worker's producers share its memory, so each gets a 32 MiB queue
/// ([`QueueBudget::PER_PARTITION`]). A record bigger than that (vault takes
/// records up to 64 MiB) cannot be queued at all: the partition is then
/// restored again by a producer with the single restore's 68 MiB queue.
/// Its transactional id is the same, so starting it aborts the open
/// transaction, and the partition resumes after its last commit: nothing
/// is written twice.
pub(super) fn restore_partition(
    repo: &Repository<Indexed>,
    plan: &RestorePlan,
    index: usize,
    parts_topic: &str,
    ropts: &RestoreOptions,
    target_ids: &BTreeMap<String, Option<String>>,
    fresh: &FreshRecord<'_>,
) -> Result<u64> {
    let mut too_small = false;
    let first = restore_partition_with(
        repo,
        plan,
        index,
        (parts_topic, QueueBudget::PER_PARTITION),
        ropts,
        target_ids,
        fresh,
        &mut too_small,
    );
    match first {
        Err(_) if too_small => {
            let mut again = false;
            restore_partition_with(
                repo,
                plan,
                index,
                (parts_topic, QueueBudget::WHOLE),
                ropts,
                target_ids,
                fresh,
                &mut again,
            )
        }
        other => other,
    }
}

#[allow(clippy::too_many_arguments)]
fn restore_partition_with(
    repo: &Repository<Indexed>,
    plan: &RestorePlan,
    index: usize,
    (parts_topic, budget): (&str, QueueBudget),
    ropts: &RestoreOptions,
    target_ids: &BTreeMap<String, Option<String>>,
    fresh: &FreshRecord<'_>,
    too_small: &mut bool,
) -> Result<u64> {
    let sub = partition_plan(plan, index);
    let kafka = &ropts.kafka;
    // Fences the worker that had this partition before (a dead one, or one
    // that lost it to a rebalance) and aborts its open transaction. Only
    // this partition's producers write its progress partition, so what is
    // read next is everything ever committed for it.
    let slot = i32::try_from(index).expect("partition counts fit an i32");
    let producer = TxnProducer::start_at(kafka, &sub.restore_id, parts_topic, slot, budget)?;
    let records = progress::read_records(kafka, parts_topic, &[slot])?;
    // Nothing read because the topic is missing is not "no progress".
    if records.partition_records.is_empty() && !progress::topic_exists(kafka, parts_topic)? {
        return Err(Error::Kafka {
            context: format!("reading the progress of {}", sub.restore_id),
            message: format!("topic {parts_topic} is missing on the target; nothing was written"),
        });
    }
    if let Some(u) = records.unreadable.first() {
        return Err(Error::Kafka {
            context: format!(
                "reading the progress of {} from topic {parts_topic}",
                sub.restore_id
            ),
            message: format!(
                "the record {} is unreadable ({}); it was not written by this vault version",
                u.key, u.error
            ),
        });
    }
    let loaded = records
        .partition_records
        .into_iter()
        .find(|s| s.restore_id == sub.restore_id);
    let mut state = match loaded {
        Some(s) if !s.is_stale(target_ids) && s.phase != Phase::Abandoned => s,
        _ => {
            let s = fresh(
                &sub.restore_id,
                Some(&plan.restore_id),
                Some(&sub.partitions[0].target_topic),
            );
            producer.begin()?;
            producer.commit(&s)?;
            s
        }
    };
    if state.phase == Phase::Done {
        return Ok(0);
    }
    // Its commits from now on say who restores the partition (`vault status`).
    state.worker = Some(format!(
        "{}/{}",
        crate::host::hostname(),
        std::process::id()
    ));
    let before: u64 = state.partitions.values().map(|p| p.records).sum();
    let opts = RestoreOptions {
        kafka: kafka.clone(),
        workers: ropts.workers,
        transaction_bytes: ropts.transaction_bytes,
        progress: None,
    };
    if let Err(e) = restore_records(repo, &sub, &opts, &producer, &mut state) {
        *too_small = producer.queue_too_small();
        return Err(e);
    }
    let key = partition_key(&sub.partitions[0].target_topic, sub.partitions[0].partition);
    let ends = super::super::steps::target_ends(kafka, &sub, &state)?;
    state.ends = ends.into_iter().filter(|(k, _)| *k == key).collect();
    state.phase = Phase::Done;
    producer.begin()?;
    producer.commit(&state)?;
    let after: u64 = state.partitions.values().map(|p| p.records).sum();
    Ok(after - before)
}
