//! Between a [`SnapshotPlan`] and the [`RunPlan`] workers share, and from
//! a run plan and its parts to the manifest.
//!
//! The manifest is a pure function of the plan and its parts: its time is
//! the cut's, its host the planner's, its stats the sums of the parts'. So
//! every worker that sees all parts writes the same bytes, which are the
//! same object (its name is their keyed hash): the snapshot is committed
//! exactly once whoever commits it, and a second commit changes nothing.

use vault_format::manifest::{PartitionSnapshot, SnapshotManifest, SnapshotStats, TopicSnapshot};
use vault_format::run::{PlannedPartition, RunPart, RunPlan};

use crate::error::{Error, Result};
use crate::snapshot::{PartitionPlan, SnapshotPlan};

/// The run plan for `plan`: the manifest it will become, with each
/// partition's root the tree it continues.
pub fn run_plan(
    name: &str,
    plan: &SnapshotPlan,
    tags: &[String],
    data_horizon_ms: Option<u64>,
    now_ms: u64,
) -> RunPlan {
    let mut parts = plan.partitions.iter();
    let topics = plan
        .topics
        .iter()
        .map(|(t, configs)| TopicSnapshot {
            name: t.name.clone(),
            topic_id: t.id,
            replication_factor: t.replication_factor,
            configs: configs.clone(),
            partitions: (0..t.partitions)
                .map(|_| {
                    let p = parts.next().expect("one plan per partition");
                    PartitionSnapshot {
                        partition: p.partition,
                        log_start_offset: p.log_start,
                        end_offset: p.end,
                        root: p.base_root,
                    }
                })
                .collect(),
        })
        .collect();
    RunPlan {
        name: name.to_string(),
        plan_id: crate::host::random_bytes(),
        created_ms: now_ms,
        template: SnapshotManifest {
            time_ms: now_ms,
            parent: plan.parent,
            source: plan.source.clone(),
            source_cluster_id: plan.cluster_id.clone(),
            selection: plan.selection.clone(),
            hostname: crate::host::hostname(),
            tags: tags.to_vec(),
            read_committed: plan.read_committed,
            topics,
            groups: plan.groups.clone(),
            estate: plan.estate.clone(),
            stats: SnapshotStats::default(),
        },
        partitions: plan
            .partitions
            .iter()
            .map(|p| PlannedPartition {
                read_from: p.read_from,
                retention_gap: p.retention_gap,
            })
            .collect(),
        data_horizon_ms,
        warnings: plan.warnings.clone(),
    }
}

/// What each partition of a run plan asks of the worker that takes it.
pub fn partition_plans(plan: &RunPlan) -> Vec<PartitionPlan> {
    plan.template
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t, p)))
        .zip(&plan.partitions)
        .map(|((t, p), planned)| PartitionPlan {
            topic: t.name.clone(),
            partition: p.partition,
            log_start: p.log_start_offset,
            end: p.end_offset,
            read_from: planned.read_from,
            base_root: p.root,
            retention_gap: planned.retention_gap,
        })
        .collect()
}

/// The snapshot a plan commits as, given a part for each of its
/// partitions: a pure function of the two. Topics with a part marked
/// `topic_gone` are left out.
pub fn manifest(plan: &RunPlan, parts: &[RunPart]) -> Result<SnapshotManifest> {
    let n = plan.partitions.len();
    if parts.len() != n || parts.iter().enumerate().any(|(i, p)| p.index as usize != i) {
        return Err(Error::Internal(format!(
            "a run plan of {n} partitions committed with {} parts",
            parts.len()
        )));
    }
    let mut m = plan.template.clone();
    let mut parts_iter = parts.iter();
    let mut gone = Vec::new();
    for t in &mut m.topics {
        for p in &mut t.partitions {
            let part = parts_iter.next().expect("counted above");
            p.root = part.root;
            p.log_start_offset = part.log_start_offset;
            if part.topic_gone.is_some() && !gone.contains(&t.name) {
                gone.push(t.name.clone());
            }
        }
    }
    // A topic deleted while the run read it is left out whole, with its
    // group offsets: the snapshot holds what it could read to the cut.
    m.topics.retain(|t| !gone.contains(&t.name));
    for g in &mut m.groups {
        g.offsets.retain(|o| !gone.contains(&o.topic));
    }
    let finished = parts
        .iter()
        .map(|p| p.finished_ms)
        .max()
        .unwrap_or(plan.created_ms);
    m.stats = SnapshotStats {
        records_read: parts.iter().map(|p| p.records_read).sum(),
        bytes_read: parts.iter().map(|p| p.bytes_read).sum(),
        bytes_added: parts.iter().map(|p| p.bytes_added).sum(),
        chunks_added: parts.iter().map(|p| p.chunks_added).sum(),
        duration_ms: finished.saturating_sub(plan.created_ms),
    };
    Ok(m)
}
