//! Planning a restore: everything is checked before anything is written.
//! An unknown snapshot, topic, rename or group, an unreachable target, a
//! target topic with too few partitions or a busy group all fail here.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use vault_format::ObjectId;
use vault_format::tree::TreeRoot;

use super::progress::{self, ProgressState, RestoreSelection};
use super::resume;
use super::select::{RestoreRequest, selection_for};
use super::target::{
    NewTopicSpec, TargetCluster, default_retention_ms, effective_topic_configs, group_members,
};
use super::window::TimeWindow;
use crate::catalog;
use crate::error::{Error, Result};
use crate::kafka::KafkaOptions;
use crate::now_ms;
use crate::repository::{Indexed, Repository};

#[derive(Clone, Debug)]
pub struct TopicRestore {
    pub source: String,
    pub target: String,
    pub partitions: u32,
    /// `Some` when the target topic does not exist yet.
    pub create: Option<NewTopicSpec>,
}

#[derive(Clone, Debug)]
pub struct PartitionRestore {
    pub source_topic: String,
    pub target_topic: String,
    pub partition: u32,
    pub root: Option<TreeRoot>,
    /// Committed source offsets of the selected groups here.
    pub group_offsets: Vec<i64>,
}

#[derive(Clone, Debug)]
pub struct GroupRestore {
    pub group_id: String,
    pub offsets: Vec<GroupPosition>,
}

/// A group's committed position on one restored partition.
#[derive(Clone, Debug)]
pub struct GroupPosition {
    /// Index into [`RestorePlan::partitions`].
    pub partition: usize,
    pub source_offset: i64,
    pub metadata: Option<String>,
}

#[derive(Clone, Debug)]
pub struct RestorePlan {
    /// Names this restore on the target (transactional id, progress key).
    pub restore_id: String,
    /// The vault restored from, as its progress records name it.
    pub vault_id: String,
    /// What is restored; the same snapshot and selection is the same restore.
    pub selection: RestoreSelection,
    /// This run continues a restore an earlier run began (or reports one
    /// that finished).
    pub resumes: bool,
    /// Unfinished restores to mark abandoned first (`--abandon-unfinished`).
    pub abandon: Vec<ProgressState>,
    pub snapshot_id: ObjectId,
    pub snapshot_time_ms: u64,
    pub window: TimeWindow,
    pub topics: Vec<TopicRestore>,
    pub partitions: Vec<PartitionRestore>,
    pub groups: Vec<GroupRestore>,
    pub target_brokers: u32,
    pub warnings: Vec<String>,
}

impl RestorePlan {
    pub(crate) fn topics_to_create(&self) -> Vec<NewTopicSpec> {
        self.topics
            .iter()
            .filter_map(|t| t.create.clone())
            .collect()
    }

    pub async fn make(
        repo: &Repository<Indexed>,
        kafka: &KafkaOptions,
        req: &RestoreRequest,
    ) -> Result<RestorePlan> {
        let entries = catalog::list(repo)?;
        let requested =
            catalog::resolve(&entries, &req.snapshot, &req.topics, req.source.as_deref())?;
        let manifest_of = |id: &ObjectId| {
            entries
                .iter()
                .find(|e| e.id == *id)
                .map(|e| &e.manifest)
                .ok_or_else(|| Error::NotFound(format!("snapshot {id} is not in the vault")))
        };
        let selection_of =
            |id: &ObjectId| -> Result<RestoreSelection> { selection_for(manifest_of(id)?, req) };
        // Bad options fail here, before the target is asked anything.
        let wanted = selection_of(&requested)?;
        let vault_id = repo.vault_id().to_hex();

        // The target: reachable, its topics and the restores already on it.
        let client = kafka.metadata_client(true)?;
        let (cluster, records, client) = {
            let (k, c) = (kafka.clone(), client);
            let vault_id = vault_id.clone();
            tokio::task::spawn_blocking(move || -> Result<_> {
                let cluster = TargetCluster::read(&k, &c)?;
                let mut all = progress::load_all(&k)?;
                // Version 0 records name no vault: they may be this one's.
                all.records
                    .retain(|r| r.vault_id == vault_id || r.version == 0);
                Ok((cluster, all, c))
            })
            .await
            .expect("metadata task panicked")?
        };
        let mut names: BTreeSet<String> = wanted.targets().map(str::to_string).collect();
        for r in &records.records {
            names.extend(r.target_topic_ids.keys().cloned());
        }
        let current_ids = {
            let k = kafka.clone();
            tokio::task::spawn_blocking(move || super::target::topic_ids(&k, names))
                .await
                .expect("metadata task panicked")?
        };
        let resolution = resume::resolve(
            &resume::Request {
                vault: repo.vault_id(),
                requested,
                latest: req.snapshot == "latest",
                abandon_unfinished: req.abandon_unfinished,
                records: &records.records,
                unreadable: &records.unreadable,
                entries: &entries,
                current_ids: &current_ids,
            },
            &selection_of,
        )?;

        let snapshot_id = resolution.snapshot;
        let m = manifest_of(&snapshot_id)?;
        let selection = resolution.selection;
        let group_names: BTreeSet<String> = selection.groups.iter().cloned().collect();
        // Groups must be idle on the target.
        {
            let (k, names) = (kafka.clone(), group_names.clone());
            let c = kafka.metadata_client(true)?;
            tokio::task::spawn_blocking(move || -> Result<()> {
                for g in &names {
                    let n = group_members(&k, &c, g)?;
                    if n > 0 {
                        return Err(Error::Usage(format!(
                            "consumer group {g} has {n} active member(s) on the target; stop its consumers \
                             (or leave it out with --consumer-groups) and run the restore again"
                        )));
                    }
                }
                Ok(())
            })
            .await
            .expect("metadata task panicked")?;
        }

        let mut warnings = resolution.warnings;
        let mut topics = Vec::new();
        let mut partitions = Vec::new();
        let mut part_index = HashMap::new();
        for (source, target) in &selection.topics {
            let t = m
                .topics
                .iter()
                .find(|t| &t.name == source)
                .expect("the selection comes from this manifest");
            let n = t.partitions.len() as u32;
            let create = match cluster.topics.get(target) {
                Some(&have) if have < n => {
                    return Err(Error::Usage(format!(
                        "target topic {target} has {have} partitions but the snapshot's {} has {n}; \
                         restore keeps partition numbers, so add partitions to {target} (kafka-topics --alter --partitions {n}) \
                         or restore into a new topic with --rename {}=NEW",
                        t.name, t.name
                    )));
                }
                Some(_) => None,
                None => Some(new_topic_spec(target, t, &cluster, req, &mut warnings)),
            };
            topics.push(TopicRestore {
                source: t.name.clone(),
                target: target.clone(),
                partitions: n,
                create,
            });
            for p in &t.partitions {
                part_index.insert((t.name.clone(), p.partition), partitions.len());
                partitions.push(PartitionRestore {
                    source_topic: t.name.clone(),
                    target_topic: target.clone(),
                    partition: p.partition,
                    root: p.root,
                    group_offsets: Vec::new(),
                });
            }
        }

        let mut groups = Vec::new();
        for g in m
            .groups
            .iter()
            .filter(|g| group_names.contains(&g.group_id))
        {
            let mut offsets = Vec::new();
            for o in &g.offsets {
                if let Some(&i) = part_index.get(&(o.topic.clone(), o.partition)) {
                    offsets.push(GroupPosition {
                        partition: i,
                        source_offset: o.offset,
                        metadata: o.metadata.clone(),
                    });
                    partitions[i].group_offsets.push(o.offset);
                }
            }
            groups.push(GroupRestore {
                group_id: g.group_id.clone(),
                offsets,
            });
        }

        retention_warnings(
            kafka,
            &client,
            &topics,
            &partitions,
            req.window,
            &mut warnings,
        )
        .await?;
        Ok(RestorePlan {
            restore_id: resolution.restore_id,
            vault_id,
            selection,
            resumes: resolution.resumes,
            abandon: resolution.abandon,
            snapshot_id,
            snapshot_time_ms: m.time_ms,
            window: req.window,
            topics,
            partitions,
            groups,
            target_brokers: cluster.brokers as u32,
            warnings,
        })
    }
}

fn new_topic_spec(
    target: &str,
    t: &vault_format::manifest::TopicSnapshot,
    cluster: &TargetCluster,
    req: &RestoreRequest,
    warnings: &mut Vec<String>,
) -> NewTopicSpec {
    let mut rf = t.replication_factor.max(1);
    if rf as usize > cluster.brokers {
        warnings.push(format!(
            "{target}: replication factor {rf} capped at {} (the target cluster's broker count)",
            cluster.brokers
        ));
        rf = cluster.brokers as u32;
    }
    let mut configs: BTreeMap<String, String> = t.configs.iter().cloned().collect();
    for (k, v) in &req.topic_configs {
        configs.insert(k.clone(), v.clone());
    }
    // A min.insync.replicas above the capped factor would refuse every write.
    if let Some(mir) = configs
        .get("min.insync.replicas")
        .and_then(|v| v.parse::<u32>().ok())
        && mir > rf
    {
        warnings.push(format!(
            "{target}: min.insync.replicas {mir} capped at {rf}"
        ));
        configs.insert("min.insync.replicas".into(), rf.to_string());
    }
    NewTopicSpec {
        name: target.to_string(),
        partitions: t.partitions.len() as u32,
        replication_factor: rf,
        configs: configs.into_iter().collect(),
    }
}

/// Kafka deletes at once what is older than a topic's retention, and
/// rewrites timestamps on LogAppendTime topics: say so before restoring.
async fn retention_warnings(
    kafka: &KafkaOptions,
    client: &crate::kafka::MetadataClient,
    topics: &[TopicRestore],
    partitions: &[PartitionRestore],
    window: TimeWindow,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let existing: Vec<String> = topics
        .iter()
        .filter(|t| t.create.is_none())
        .map(|t| t.target.clone())
        .collect();
    let described = effective_topic_configs(kafka, &existing).await?;
    let default_retention = if topics.iter().any(|t| t.create.is_some()) {
        Some(default_retention_ms(kafka, client).await?)
    } else {
        None
    };
    let now = crate::time::signed_ms(now_ms());
    for t in topics {
        let configs: HashMap<String, String> = match &t.create {
            Some(spec) => spec.configs.iter().cloned().collect(),
            None => described.get(&t.target).cloned().unwrap_or_default(),
        };
        let retention = configs
            .get("retention.ms")
            .and_then(|v| v.parse::<i64>().ok())
            .or(default_retention)
            .unwrap_or(-1);
        let oldest = partitions
            .iter()
            .filter(|p| p.target_topic == t.target)
            .filter_map(|p| p.root)
            .map(|r| r.summary.min_ts.max(window.from_ms.unwrap_or(i64::MIN)))
            .min();
        if let Some(oldest) = oldest
            && retention >= 0
            && oldest < now - retention
        {
            warnings.push(format!(
                    "{}: restored records go back to {}, older than the target's retention.ms={retention}; \
                     Kafka will delete them soon after the restore. {}",
                    t.target,
                    crate::time::format_rfc3339(oldest),
                    if t.create.is_some() {
                        "Keep them with --topic-config retention.ms=-1 (or a longer retention)."
                    } else {
                        "Raise the topic's retention.ms (kafka-configs --alter) before restoring to keep them."
                    }
                ));
        }
        if configs.get("message.timestamp.type").map(String::as_str) == Some("LogAppendTime") {
            warnings.push(format!(
                "{}: the topic uses LogAppendTime, so the target broker replaces the restored timestamps with its own; \
                 {}",
                t.target,
                if t.create.is_some() {
                    "keep the original times with --topic-config message.timestamp.type=CreateTime"
                } else {
                    "set message.timestamp.type=CreateTime on it first to keep the original times"
                }
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vault_format::manifest::{PartitionSnapshot, TopicSnapshot};

    fn topic(rf: u32, configs: &[(&str, &str)]) -> TopicSnapshot {
        TopicSnapshot {
            name: "orders".into(),
            topic_id: None,
            replication_factor: rf,
            configs: configs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            partitions: (0..3)
                .map(|p| PartitionSnapshot {
                    partition: p,
                    log_start_offset: 0,
                    end_offset: 0,
                    root: None,
                })
                .collect(),
        }
    }

    #[test]
    fn new_topics_cap_replication_and_take_overrides() {
        let cluster = TargetCluster {
            brokers: 1,
            topics: HashMap::new(),
        };
        let req = RestoreRequest {
            topic_configs: vec![("retention.ms".into(), "-1".into())],
            ..RestoreRequest::default()
        };
        let mut warnings = Vec::new();
        let t = topic(
            3,
            &[
                ("min.insync.replicas", "2"),
                ("retention.ms", "1000"),
                ("cleanup.policy", "compact"),
            ],
        );
        let spec = new_topic_spec("orders-dr", &t, &cluster, &req, &mut warnings);
        assert_eq!(spec.partitions, 3);
        assert_eq!(spec.replication_factor, 1);
        assert_eq!(
            spec.configs,
            vec![
                ("cleanup.policy".to_string(), "compact".to_string()),
                ("min.insync.replicas".to_string(), "1".to_string()),
                ("retention.ms".to_string(), "-1".to_string()),
            ]
        );
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("replication factor 3 capped at 1"));
    }
}
