//! One worker of a distributed restore: its options, what it reports, and
//! what it knows of the restore while it works on it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::super::options::RestoreOptions;
use super::super::plan::RestorePlan;
use super::super::progress::{PROGRESS_VERSION, ProgressState};
use super::super::steps::GroupOutcome;
use crate::kafka::KafkaOptions;
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

/// What one worker knows of its restore once the target is ready; its
/// claim, its loop over the partitions and its finish share it.
pub(super) struct Worker<'a> {
    pub repo: &'a Repository<Indexed>,
    pub plan: &'a RestorePlan,
    pub ropts: &'a RestoreOptions,
    pub opts: &'a WorkerOptions,
    /// When [`super::work`] began: the group join times out counting from it.
    pub started: Instant,
    /// The topic of the partitions' own progress records.
    pub parts_topic: String,
    /// The target topics' IDs when this worker began.
    pub target_ids: BTreeMap<String, Option<String>>,
    /// Those of them that have an ID, as new progress records name them.
    pub recorded_ids: BTreeMap<String, String>,
}

impl Worker<'_> {
    pub fn kafka(&self) -> &KafkaOptions {
        &self.ropts.kafka
    }

    /// A new progress record of this run: the restore's own (`part_of`
    /// `None`), or one partition's. It names the topic IDs of `topic` only,
    /// or of every target topic when `topic` is `None`.
    pub fn fresh(
        &self,
        restore_id: &str,
        part_of: Option<&str>,
        topic: Option<&str>,
    ) -> ProgressState {
        let plan = self.plan;
        ProgressState {
            version: PROGRESS_VERSION,
            restore_id: restore_id.to_string(),
            vault_id: plan.vault_id.clone(),
            snapshot_id: plan.snapshot_id.to_hex(),
            selection: Some(plan.selection.clone()),
            // A partition's record names only its own topic: another topic
            // recreated on the target does not make it stale.
            target_topic_ids: self
                .recorded_ids
                .iter()
                .filter(|(t, _)| topic.is_none_or(|only| only == t.as_str()))
                .map(|(t, id)| (t.clone(), id.clone()))
                .collect(),
            started_ms: now_ms(),
            workers: Some(self.opts.name.clone()),
            part_of: part_of.map(str::to_string),
            ..ProgressState::default()
        }
    }
}
