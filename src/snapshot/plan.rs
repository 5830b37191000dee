//! Planning a snapshot: the consistent cut and what to read.
//!
//! The cut is taken in this order: first the committed offsets of the
//! consumer groups, then the end offset of every selected partition in one
//! request. A group can only have committed an offset it had read, so every
//! committed offset is at or below the cut, and restore can translate it.

use std::collections::HashMap;

use vault_format::ObjectId;
use vault_format::manifest::GroupSnapshot;
use vault_format::tree::TreeRoot;

use crate::error::Result;
use crate::kafka::{
    Edge, KafkaOptions, TopicInfo, TopicSelection, group_offsets, partition_offsets, topic_configs,
};
use crate::repository::{Indexed, Repository};

/// What to do for one partition.
#[derive(Clone, Debug)]
pub struct PartitionPlan {
    pub topic: String,
    pub partition: u32,
    /// Log start offset at the cut.
    pub log_start: i64,
    /// The cut: records below it are in the snapshot.
    pub end: i64,
    /// Where reading starts: after what the vault already holds.
    pub read_from: i64,
    /// The tree of the previous snapshot of this partition, if any.
    pub base_root: Option<TreeRoot>,
    /// Offsets Kafka deleted (retention) before vault read them: `[from, to)`.
    pub retention_gap: Option<(i64, i64)>,
}

impl PartitionPlan {
    pub fn records_to_read(&self) -> u64 {
        (self.end - self.read_from).max(0) as u64
    }
}

#[derive(Clone, Debug)]
pub struct SnapshotPlan {
    pub cluster_id: String,
    pub parent: Option<ObjectId>,
    pub read_committed: bool,
    pub topics: Vec<(TopicInfo, Vec<(String, String)>)>,
    pub partitions: Vec<PartitionPlan>,
    pub groups: Vec<GroupSnapshot>,
    /// Things the operator should know (retention gaps, recreated topics).
    pub warnings: Vec<String>,
}

impl SnapshotPlan {
    pub fn records_to_read(&self) -> u64 {
        self.partitions
            .iter()
            .map(PartitionPlan::records_to_read)
            .sum()
    }

    /// Reads the cut from the cluster and finds, per partition, what the
    /// vault already holds (the newest snapshot of the same cluster that
    /// has that partition).
    pub async fn make(
        repo: &Repository<Indexed>,
        kafka: &KafkaOptions,
        selection: &TopicSelection,
        read_committed: bool,
    ) -> Result<SnapshotPlan> {
        let client = kafka.metadata_client(read_committed)?;
        let (cluster_id, topics, start, groups, end) = {
            let k = kafka.clone();
            let sel = selection.clone();
            tokio::task::spawn_blocking(move || -> Result<_> {
                let md = k.fetch_metadata(&client)?;
                let cluster_id = k.cluster_id(&client);
                let topics = sel.select(&md)?;
                let start = partition_offsets(&k, &client, &topics, Edge::Start)?;
                // The order is the consistency argument: groups first, then ends.
                let groups = group_offsets(&k, &client, &md, &topics)?;
                let end = partition_offsets(&k, &client, &topics, Edge::End)?;
                Ok((cluster_id, topics, start, groups, end))
            })
            .await
            .expect("metadata task panicked")?
        };
        let configs = topic_configs(kafka, &topics).await?;

        // The newest snapshot of this cluster holding each partition.
        let mut manifests = Vec::new();
        for id in repo.snapshot_ids()? {
            let m = repo.read_snapshot(&id)?;
            if m.source_cluster_id == cluster_id {
                manifests.push((id, m));
            }
        }
        manifests.sort_by_key(|(id, m)| std::cmp::Reverse((m.time_ms, *id)));
        let parent = manifests.first().map(|(id, _)| *id);
        let mut base: HashMap<(String, u32), (i64, Option<TreeRoot>)> = HashMap::new();
        for (_, m) in manifests.iter().rev() {
            for t in &m.topics {
                for p in &t.partitions {
                    base.insert((t.name.clone(), p.partition), (p.end_offset, p.root));
                }
            }
        }

        let mut partitions = Vec::new();
        let mut warnings = Vec::new();
        for t in &topics {
            for p in 0..t.partitions {
                let key = (t.name.clone(), p);
                let log_start = start[&key];
                let end = end[&key];
                let (mut prev_end, mut base_root) = base.get(&key).cloned().unwrap_or((0, None));
                if end < prev_end {
                    warnings.push(format!(
                        "{}/{p}: end offset {end} is below the {prev_end} of the previous snapshot; \
                         the topic was probably deleted and recreated, so this partition starts a new history",
                        t.name
                    ));
                    prev_end = 0;
                    base_root = None;
                }
                let read_from = prev_end.max(log_start);
                let retention_gap = (log_start > prev_end).then_some((prev_end, log_start));
                if let Some((a, b)) = retention_gap {
                    warnings.push(format!(
                        "{}/{p}: offsets {a}..{b} were deleted by retention before vault read them; they are not in the vault",
                        t.name
                    ));
                }
                partitions.push(PartitionPlan {
                    topic: t.name.clone(),
                    partition: p,
                    log_start,
                    end,
                    read_from,
                    base_root,
                    retention_gap,
                });
            }
        }
        let topics = topics
            .into_iter()
            .map(|t| {
                let c = configs.get(&t.name).cloned().unwrap_or_default();
                (t, c)
            })
            .collect();
        Ok(SnapshotPlan {
            cluster_id,
            parent,
            read_committed,
            topics,
            partitions,
            groups,
            warnings,
        })
    }
}
