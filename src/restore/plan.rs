//! Planning a restore: everything is checked before anything is written.
//! An unknown snapshot, topic, rename or group, an unreachable target, a
//! target topic with too few partitions or a busy group all fail here.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use vault_format::ObjectId;
use vault_format::manifest::SnapshotManifest;
use vault_format::tree::TreeRoot;

use super::target::{
    NewTopicSpec, TargetCluster, default_retention_ms, group_members, topic_configs,
};
use super::window::TimeWindow;
use crate::error::{Error, Result};
use crate::kafka::KafkaOptions;
use crate::repository::{Indexed, Repository, now_ms};

/// Which consumer groups to translate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum GroupSelection {
    #[default]
    All,
    None,
    Named(Vec<String>),
}

impl GroupSelection {
    pub fn parse(s: &str) -> GroupSelection {
        match s.trim() {
            "all" => GroupSelection::All,
            "none" | "" => GroupSelection::None,
            list => GroupSelection::Named(
                list.split(',')
                    .map(|g| g.trim().to_string())
                    .filter(|g| !g.is_empty())
                    .collect(),
            ),
        }
    }
}

/// What the operator asked for.
#[derive(Clone, Debug, Default)]
pub struct RestoreRequest {
    /// `latest`, an id, or a unique prefix.
    pub snapshot: String,
    /// Empty: every topic of the snapshot.
    pub topics: Vec<String>,
    /// Source topic → target topic.
    pub renames: Vec<(String, String)>,
    pub window: TimeWindow,
    pub groups: GroupSelection,
    /// Configs for the topics restore creates, over the backed-up ones.
    pub topic_configs: Vec<(String, String)>,
}

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
    /// (index into `RestorePlan::partitions`, committed source offset, metadata)
    pub offsets: Vec<(usize, i64, Option<String>)>,
}

#[derive(Clone, Debug)]
pub struct RestorePlan {
    /// Names this restore on the target (transactional id, progress key).
    pub restore_id: String,
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
    pub fn topics_to_create(&self) -> Vec<NewTopicSpec> {
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
        let snapshot_id = repo.resolve_snapshot(&req.snapshot)?;
        let m = repo.read_snapshot(&snapshot_id)?;
        let selected = select_topics(&m, req)?;
        let renames = check_renames(&selected, req)?;
        let group_names = check_groups(&m, &selected, &req.groups)?;

        // The target: reachable, enough partitions, groups idle.
        let client = kafka.metadata_client(true)?;
        let cluster = {
            let (k, c) = (kafka.clone(), client);
            let names = group_names.clone();
            tokio::task::spawn_blocking(move || -> Result<_> {
                let cluster = TargetCluster::read(&k, &c)?;
                for g in &names {
                    let n = group_members(&k, &c, g)?;
                    if n > 0 {
                        return Err(Error::Usage(format!(
                            "consumer group {g} has {n} active member(s) on the target; stop its consumers \
                             (or leave it out with --consumer-groups) and run the restore again"
                        )));
                    }
                }
                Ok((cluster, c))
            })
            .await
            .expect("metadata task panicked")?
        };
        let (cluster, client) = cluster;

        let mut warnings = Vec::new();
        let mut topics = Vec::new();
        let mut partitions = Vec::new();
        let mut part_index = HashMap::new();
        for t in &selected {
            let target = renames
                .get(&t.name)
                .cloned()
                .unwrap_or_else(|| t.name.clone());
            let n = t.partitions.len() as u32;
            let create = match cluster.topics.get(&target) {
                Some(&have) if have < n => {
                    return Err(Error::Usage(format!(
                        "target topic {target} has {have} partitions but the snapshot's {} has {n}; \
                         restore keeps partition numbers, so add partitions to {target} (kafka-topics --alter --partitions {n}) \
                         or restore into a new topic with --rename {}=NEW",
                        t.name, t.name
                    )));
                }
                Some(_) => None,
                None => Some(new_topic_spec(&target, t, &cluster, req, &mut warnings)),
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
                    offsets.push((i, o.offset, o.metadata.clone()));
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
            restore_id: restore_id(repo, &snapshot_id, &topics, req),
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

fn select_topics<'m>(
    m: &'m SnapshotManifest,
    req: &RestoreRequest,
) -> Result<Vec<&'m vault_format::manifest::TopicSnapshot>> {
    if req.topics.is_empty() {
        return Ok(m.topics.iter().collect());
    }
    let mut out = Vec::new();
    for name in &req.topics {
        let t = m.topics.iter().find(|t| &t.name == name).ok_or_else(|| {
            Error::Usage(format!(
                "topic {name} is not in the snapshot; it holds: {}",
                topic_list(m)
            ))
        })?;
        out.push(t);
    }
    Ok(out)
}

fn topic_list(m: &SnapshotManifest) -> String {
    m.topics
        .iter()
        .map(|t| t.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn check_renames(
    selected: &[&vault_format::manifest::TopicSnapshot],
    req: &RestoreRequest,
) -> Result<HashMap<String, String>> {
    let mut map = HashMap::new();
    for (src, dst) in &req.renames {
        if !selected.iter().any(|t| &t.name == src) {
            return Err(Error::Usage(format!(
                "--rename {src}={dst}: topic {src} is not among the topics being restored ({})",
                selected
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        if dst.is_empty()
            || dst.len() > 249
            || !dst
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(Error::Usage(format!(
                "--rename {src}={dst}: {dst:?} is not a valid Kafka topic name"
            )));
        }
        if map.insert(src.clone(), dst.clone()).is_some() {
            return Err(Error::Usage(format!("--rename names {src} twice")));
        }
    }
    let mut targets = BTreeSet::new();
    for t in selected {
        let target = map.get(&t.name).unwrap_or(&t.name);
        if !targets.insert(target.clone()) {
            return Err(Error::Usage(format!(
                "two topics would be restored into {target}; rename one of them"
            )));
        }
    }
    Ok(map)
}

fn check_groups(
    m: &SnapshotManifest,
    selected: &[&vault_format::manifest::TopicSnapshot],
    sel: &GroupSelection,
) -> Result<BTreeSet<String>> {
    let on_selected = |g: &vault_format::manifest::GroupSnapshot| {
        g.offsets
            .iter()
            .any(|o| selected.iter().any(|t| t.name == o.topic))
    };
    let available: BTreeSet<String> = m
        .groups
        .iter()
        .filter(|g| on_selected(g))
        .map(|g| g.group_id.clone())
        .collect();
    match sel {
        GroupSelection::All => Ok(available),
        GroupSelection::None => Ok(BTreeSet::new()),
        GroupSelection::Named(names) => {
            for n in names {
                if !available.contains(n) {
                    return Err(Error::Usage(format!(
                        "consumer group {n} has no offsets on the restored topics in this snapshot; groups there: {}",
                        if available.is_empty() {
                            "none".to_string()
                        } else {
                            available.iter().cloned().collect::<Vec<_>>().join(", ")
                        }
                    )));
                }
            }
            Ok(names.iter().cloned().collect())
        }
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
    client: &rdkafka::consumer::BaseConsumer,
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
    let described = topic_configs(kafka, &existing).await?;
    let default_retention = if topics.iter().any(|t| t.create.is_some()) {
        Some(default_retention_ms(kafka, client).await?)
    } else {
        None
    };
    let now = now_ms() as i64;
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

/// Stable across runs of the same command, so a rerun resumes.
fn restore_id(
    repo: &Repository<Indexed>,
    snapshot: &ObjectId,
    topics: &[TopicRestore],
    req: &RestoreRequest,
) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"kvault restore v1");
    h.update(&repo.vault_id().0);
    h.update(&snapshot.0);
    for t in topics {
        h.update(t.source.as_bytes()).update(&[0]);
        h.update(t.target.as_bytes()).update(&[0]);
    }
    h.update(&req.window.from_ms.unwrap_or(i64::MIN).to_le_bytes());
    h.update(&req.window.to_ms.unwrap_or(i64::MAX).to_le_bytes());
    h.finalize().to_hex()[..32].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use vault_format::manifest::{PartitionSnapshot, TopicSnapshot};

    fn topic(rf: u32, configs: &[(&str, &str)]) -> TopicSnapshot {
        TopicSnapshot {
            name: "orders".into(),
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

    #[test]
    fn groups_parse() {
        assert_eq!(GroupSelection::parse("all"), GroupSelection::All);
        assert_eq!(GroupSelection::parse("none"), GroupSelection::None);
        assert_eq!(
            GroupSelection::parse("a, b"),
            GroupSelection::Named(vec!["a".into(), "b".into()])
        );
    }
}
