//! A worker's first step: whether it may work on the restore at all, and
//! the target made ready for it (the missing topics and the partitions'
//! progress topic). It creates topics, but records no progress yet.

use std::collections::BTreeMap;
use std::time::Instant;

use super::super::options::RestoreOptions;
use super::super::plan::RestorePlan;
use super::super::progress::{self, Phase, ProgressState};
use super::super::steps::{self, translated_groups};
use super::worker::{Worker, WorkerOptions, WorkerOutcome};
use crate::error::{Error, Result};
use crate::repository::{Indexed, Repository};

/// What [`prepare`] found.
// Made once per worker and taken apart at once: boxing a variant buys nothing.
#[allow(clippy::large_enum_variant)]
pub(super) enum Prepared<'a> {
    /// The restore was done before this worker started.
    Finished(WorkerOutcome),
    /// The target is ready: `own` is the restore's own record as it was
    /// read before, `created` the topics this worker created.
    Ready {
        worker: Worker<'a>,
        own: Option<ProgressState>,
        created: Vec<String>,
    },
}

/// Checks that this worker may work on the restore and readies the
/// target: the missing topics and the partitions' progress topic. Writes
/// no progress record.
pub(super) fn prepare<'a>(
    repo: &'a Repository<Indexed>,
    plan: &'a RestorePlan,
    ropts: &'a RestoreOptions,
    opts: &'a WorkerOptions,
    started: Instant,
) -> Result<Prepared<'a>> {
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
        && !s.is_stale(&super::super::target::topic_ids(
            kafka,
            plan.topics.iter().map(|t| t.target.clone()),
        )?)
    {
        // A worker killed between the last commit and its unpin left one.
        let mut warnings = plan.warnings.clone();
        warnings.extend(super::super::pin::unpin(repo, &plan.restore_id));
        return Ok(Prepared::Finished(WorkerOutcome {
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
        }));
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
        vec![super::super::target::NewTopicSpec {
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
    Ok(Prepared::Ready {
        worker: Worker {
            repo,
            plan,
            ropts,
            opts,
            started,
            parts_topic,
            target_ids,
            recorded_ids,
        },
        own,
        created,
    })
}
