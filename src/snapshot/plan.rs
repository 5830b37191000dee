//! Planning a snapshot: the consistent cut and what to read.
//!
//! The cut is taken in this order: first the committed offsets of the
//! consumer groups, then the end offset of every selected partition in one
//! request. A group can only have committed an offset it had read, so every
//! committed offset is at or below the cut, and restore can translate it.

use std::collections::HashMap;

use vault_format::ObjectId;
use vault_format::estate::ClusterEstate;
use vault_format::manifest::{GroupSnapshot, Selection};
use vault_format::tree::TreeRoot;

use super::history::{CutIdentity, find_bases};
use super::upgrade::KafkaRecords;
pub use super::upgrade::{NoRecords, RecordLookup};
use crate::error::{Error, Result};
use crate::kafka::{
    Edge, KafkaOptions, ListedTopic, TopicInfo, TopicSelection, dynamic_topic_configs,
    group_offsets, partition_offsets, read_cluster_estate,
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
        u64::try_from(self.end - self.read_from).unwrap_or(0)
    }
}

/// The cluster at the moment of the cut: everything a plan needs from Kafka.
#[derive(Clone, Debug, Default)]
pub struct Cut {
    /// `None` when the cluster gives none.
    pub cluster_id: Option<String>,
    pub topics: Vec<TopicInfo>,
    /// Each topic's non-default configuration.
    pub configs: HashMap<String, Vec<(String, String)>>,
    pub log_start: HashMap<(String, u32), i64>,
    /// The cut itself: each partition's end.
    pub end: HashMap<(String, u32), i64>,
    /// Committed offsets of the consumer groups on the selected topics.
    pub groups: Vec<GroupSnapshot>,
    /// ACLs, quotas, SCRAM users and dynamic broker configs; `None` when
    /// not read (a cut made without a cluster, in tests).
    pub estate: Option<ClusterEstate>,
}

impl Cut {
    /// Reads the cut from the cluster: the committed offsets of the groups
    /// first, then the end offset of every selected partition.
    pub async fn read(kafka: &KafkaOptions, req: &SnapshotRequest) -> Result<Cut> {
        if let Some(s) = &req.source
            && s.trim().is_empty()
        {
            return Err(Error::Usage("--source needs a name".into()));
        }
        let client = kafka.metadata_client(req.read_committed)?;
        let (cluster_id, topics, log_start, groups, end, estate) = {
            let k = kafka.clone();
            let sel = req.selection.clone();
            tokio::task::spawn_blocking(move || -> Result<_> {
                let md = k.fetch_metadata(&client)?;
                let cluster_id = k.cluster_id(&client);
                let names = sel.pick(&ListedTopic::from_metadata(&md))?;
                let topics = sel.describe(&k, &client, &names)?;
                let start = partition_offsets(&k, &client, &topics, Edge::Start)?;
                // The order is the consistency argument: groups first, then ends.
                let groups = group_offsets(&k, &client, &md, &topics)?;
                let end = partition_offsets(&k, &client, &topics, Edge::End)?;
                // Beside the cut, not part of its consistency: ACLs and
                // the like change on their own schedule.
                let brokers: Vec<i32> = md.brokers().iter().map(|b| b.id()).collect();
                let estate = read_cluster_estate(&k, &client, &brokers);
                Ok((cluster_id, topics, start, groups, end, estate))
            })
            .await
            .expect("metadata task panicked")?
        };
        let configs = dynamic_topic_configs(kafka, &topics).await?;
        Ok(Cut {
            cluster_id,
            topics,
            configs,
            log_start,
            end,
            groups,
            estate: Some(estate),
        })
    }
}

/// What the operator asked a snapshot to read.
#[derive(Clone, Debug)]
pub struct SnapshotRequest {
    pub selection: TopicSelection,
    pub read_committed: bool,
    /// `--source NAME`: the name of the history, instead of the cluster id.
    pub source: Option<String>,
}

#[derive(Clone, Debug)]
pub struct SnapshotPlan {
    /// The history's source: the cluster id, or the name the operator gave.
    pub source: String,
    /// Empty only when the cluster gave none and the source was named.
    pub cluster_id: String,
    pub selection: Selection,
    pub parent: Option<ObjectId>,
    pub read_committed: bool,
    pub topics: Vec<(TopicInfo, Vec<(String, String)>)>,
    pub partitions: Vec<PartitionPlan>,
    pub groups: Vec<GroupSnapshot>,
    /// What the cut read of the cluster's estate.
    pub estate: Option<ClusterEstate>,
    /// Things the operator should know (retention gaps, recreated topics).
    pub warnings: Vec<String>,
    /// Some partition's cut ends before its base snapshot's end. Either the
    /// cluster lost records, or the cut was read before a snapshot that
    /// committed meanwhile: a caller that read the cut before it held the
    /// vault lock must read it again before trusting this plan.
    pub behind_base: bool,
}

impl SnapshotPlan {
    pub fn records_to_read(&self) -> u64 {
        self.partitions
            .iter()
            .map(PartitionPlan::records_to_read)
            .sum()
    }

    /// Reads the cut from the cluster and finds, per partition, the history
    /// it continues (see [`super::history`]).
    pub async fn make(
        repo: &Repository<Indexed>,
        kafka: &KafkaOptions,
        req: &SnapshotRequest,
    ) -> Result<SnapshotPlan> {
        let cut = Cut::read(kafka, req).await?;
        tokio::task::block_in_place(|| SnapshotPlan::from_kafka_cut(repo, kafka, cut, req))
    }

    /// [`SnapshotPlan::from_cut`] for a cut read from `kafka`, which answers
    /// the record reads (a few, once per topic after an upgrade). Blocks:
    /// call it outside the async runtime, or in `block_in_place`.
    pub fn from_kafka_cut(
        repo: &Repository<Indexed>,
        kafka: &KafkaOptions,
        cut: Cut,
        req: &SnapshotRequest,
    ) -> Result<SnapshotPlan> {
        let lookup = KafkaRecords {
            kafka,
            read_committed: req.read_committed,
        };
        SnapshotPlan::from_cut(repo, cut, req, &lookup)
    }

    /// The plan for a cut already read: which history each partition
    /// continues and what is left to read. `records` answers the few record
    /// reads a format 1 history's proof needs (see [`super::upgrade`]).
    pub fn from_cut(
        repo: &Repository<Indexed>,
        cut: Cut,
        req: &SnapshotRequest,
        records: &dyn RecordLookup,
    ) -> Result<SnapshotPlan> {
        let read_committed = req.read_committed;
        let Cut {
            cluster_id,
            topics,
            configs,
            log_start: start,
            end,
            groups,
            estate,
        } = cut;
        let source = identify_source(req.source.as_deref(), cluster_id.as_deref(), &topics)?;
        let cluster_id = cluster_id.unwrap_or_default();

        let mut earlier = Vec::new();
        for id in repo.snapshot_ids()? {
            earlier.push((id, repo.read_snapshot(&id)?));
        }
        let identity = CutIdentity {
            source: &source,
            cluster_id: &cluster_id,
            read_committed,
        };
        let mut bases = find_bases(&earlier, &identity, &topics);
        let candidates = std::mem::take(&mut bases.format_1);
        let (adopted, upgrade_warnings) = if candidates.is_empty() {
            Default::default()
        } else {
            // Reads a few records from Kafka and the vault, once per topic
            // after an upgrade.
            super::upgrade::adopt(repo, records, &candidates, &start, &end)?
        };
        bases.partitions.extend(adopted);
        let mut warnings = bases.warnings;
        warnings.extend(upgrade_warnings);

        let mut partitions = Vec::new();
        let mut behind_base = false;
        for t in &topics {
            for p in 0..t.partitions {
                let key = (t.name.clone(), p);
                let log_start = start[&key];
                let end = end[&key];
                let (mut prev_end, mut base_root) = bases
                    .partitions
                    .get(&key)
                    .map_or((0, None), |b| (b.end, b.root));
                if end < prev_end {
                    behind_base = true;
                    warnings.push(format!(
                        "{}/{p}: end offset {end} is below the {prev_end} of the previous snapshot of the same topic ID; \
                         the cluster lost records it had (an unclean leader election?), so this partition starts a new history",
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
            source,
            cluster_id,
            selection: req.selection.record(),
            parent: bases.parent,
            read_committed,
            topics,
            partitions,
            groups,
            estate,
            warnings,
            behind_base,
        })
    }
}

/// The name of the history: the cluster id unless the operator named one.
/// Without a cluster id or topic IDs vault cannot tell histories apart by
/// itself, so it refuses rather than guess; `--source` is the operator
/// saying which history this is.
fn identify_source(
    named: Option<&str>,
    cluster_id: Option<&str>,
    topics: &[TopicInfo],
) -> Result<String> {
    if let Some(name) = named {
        return Ok(name.trim().to_string());
    }
    let Some(cluster_id) = cluster_id else {
        return Err(Error::Usage(
            "the cluster gives no cluster id, so vault cannot tell its histories from another cluster's; \
             name this source with --source NAME (the same name on every run) to back it up"
                .into(),
        ));
    };
    let without: Vec<&str> = topics
        .iter()
        .filter(|t| t.id.is_none())
        .map(|t| t.name.as_str())
        .collect();
    if !without.is_empty() {
        return Err(Error::Usage(format!(
            "the cluster gives no topic ID for {} (Kafka before 2.8?), so vault cannot tell a topic from one \
             deleted and created again under its name; name this source with --source NAME to back it up anyway",
            without.join(", ")
        )));
    }
    Ok(cluster_id.to_string())
}
