//! The steps a restore takes on the target, shared by the one-process
//! restore ([`super::execute`]) and the distributed one
//! ([`super::distributed::work`]): create the topics, learn their topic
//! IDs, refuse a concurrent restore into the same topics, wait for the end
//! offsets past the restored records, translate the groups' positions and
//! commit them.

use std::collections::BTreeMap;
use std::time::Instant;

use super::plan::RestorePlan;
use super::progress::{self, PROGRESS_TOPIC, ProgressRecords, ProgressState, partition_key};
use super::target::{self, NewTopicSpec};
use super::translate::translate;
use crate::error::{Error, Result};
use crate::kafka::{Edge, KafkaOptions, OffsetCommit, SettlePause, TopicInfo, partition_offsets};

/// One group position on the target.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TranslatedOffset {
    pub source_topic: String,
    #[serde(rename = "topic")]
    pub target_topic: String,
    pub partition: u32,
    pub source_offset: i64,
    pub target_offset: i64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct GroupOutcome {
    #[serde(rename = "group")]
    pub group_id: String,
    pub offsets: Vec<TranslatedOffset>,
}

/// Commits every selected group's translated positions on the target.
pub(crate) fn commit_groups(
    kafka: &KafkaOptions,
    plan: &RestorePlan,
    groups: &[GroupOutcome],
) -> Result<()> {
    // `translated_groups` keeps the plan's order, group by group and offset by offset.
    let commits: Vec<(String, Vec<OffsetCommit>)> = groups
        .iter()
        .zip(&plan.groups)
        .map(|(g, planned)| {
            let offsets = g
                .offsets
                .iter()
                .zip(&planned.offsets)
                .map(|(t, planned)| OffsetCommit {
                    topic: t.target_topic.clone(),
                    partition: t.partition,
                    offset: t.target_offset,
                    metadata: planned.metadata.clone(),
                })
                .collect();
            (g.group_id.clone(), offsets)
        })
        .collect();
    crate::kafka::commit_group_offsets(kafka, &commits, |n| {
        crate::faults::crash_point("restore-group", n as u64);
    })?;
    Ok(())
}

/// The topic IDs of the target topics, once the brokers know the ones
/// just created (they learn of a new topic a moment after it is created).
pub(crate) fn target_topic_ids(
    kafka: &KafkaOptions,
    plan: &RestorePlan,
) -> Result<BTreeMap<String, Option<String>>> {
    let deadline = Instant::now() + kafka.request_timeout;
    let mut pause = SettlePause::new();
    let names: Vec<String> = plan.topics.iter().map(|t| t.target.clone()).collect();
    loop {
        let client = kafka.metadata_client(true)?;
        let now = crate::kafka::topic_presence(kafka, &client, &names)?;
        use crate::kafka::Presence;
        // Just created, a topic may be unknown to the broker answering for
        // a moment: that is not a cluster without topic IDs (before Kafka
        // 2.8, where every topic is there with none). Wait for all of them.
        let settled = now.values().all(|p| matches!(p, Presence::With(_)))
            || now.values().all(|p| *p == Presence::WithoutId);
        if settled {
            return Ok(now
                .into_iter()
                .map(|(t, p)| match p {
                    Presence::With(id) => (t, Some(id)),
                    _ => (t, None),
                })
                .collect());
        }
        if Instant::now() > deadline {
            let missing: Vec<&str> = now
                .iter()
                .filter(|(_, p)| !matches!(p, Presence::With(_)))
                .map(|(t, _)| t.as_str())
                .collect();
            return Err(Error::Kafka {
                context: format!("describing the target topics (brokers {})", kafka.brokers),
                message: format!(
                    "the cluster does not list {} with a topic ID yet although it has topic IDs; nothing was restored, \
                     run the same command again",
                    missing.join(", ")
                ),
            });
        }
        pause.sleep();
    }
}

/// Two restores into the same topics that start at the same moment each
/// plan before the other has committed anything. Each commits its first
/// progress record before any data, then looks again: if another
/// unfinished restore into the same topics is there now, it stops (the
/// other does too, or was refused), and the operator runs one at a time.
/// `now` is what [`progress::load_all_after`] read once its own first
/// record was visible.
pub(crate) fn refuse_concurrent(plan: &RestorePlan, now: &ProgressRecords) -> Result<()> {
    let ours: std::collections::BTreeSet<&str> = plan.selection.targets().collect();
    let others: Vec<&str> = now
        .records
        .iter()
        .filter(|r| r.restore_id != plan.restore_id && r.phase.is_unfinished())
        .filter(|r| plan.abandon.iter().all(|a| a.restore_id != r.restore_id))
        .filter(|r| r.target_topics().iter().any(|t| ours.contains(t.as_str())))
        .map(|r| r.restore_id.as_str())
        .collect();
    if others.is_empty() {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "restore {} into the same topics began at the same time as this one ({}); nothing was restored. \
         Run one restore at a time: run this command again to finish this one, or pass --abandon-unfinished",
        others.join(", "),
        plan.restore_id
    )))
}

pub(crate) fn create_topics(kafka: &KafkaOptions, plan: &RestorePlan) -> Result<Vec<String>> {
    create_topics_and(kafka, plan, Vec::new())
}

/// [`create_topics`], and `extra` (which are not reported as created).
pub(crate) fn create_topics_and(
    kafka: &KafkaOptions,
    plan: &RestorePlan,
    extra: Vec<NewTopicSpec>,
) -> Result<Vec<String>> {
    let mut specs = plan.topics_to_create();
    let created = specs.iter().map(|s| s.name.clone()).collect();
    specs.extend(extra);
    specs.push(NewTopicSpec {
        name: PROGRESS_TOPIC.into(),
        partitions: 1,
        replication_factor: plan.target_brokers.min(3),
        configs: progress::progress_topic_configs(),
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the async runtime", "", e))?;
    rt.block_on(target::create_topics(kafka, &specs))?;
    Ok(created)
}

/// Target end offsets (read_committed) of every restored partition, once
/// they are past the last restored record. The brokers write transaction
/// markers after the commit returns, and until then the last stable offset
/// still stands before the transaction.
pub(crate) fn target_ends(
    kafka: &KafkaOptions,
    plan: &RestorePlan,
    state: &ProgressState,
) -> Result<BTreeMap<String, i64>> {
    let deadline = Instant::now() + kafka.request_timeout;
    let mut pause = SettlePause::new();
    loop {
        let ends = read_ends(kafka, plan)?;
        let behind = ends.iter().find(|(k, end)| {
            state
                .partitions
                .get(*k)
                .and_then(|p| p.last_target_offset)
                .is_some_and(|last| **end <= last)
        });
        match behind {
            None => return Ok(ends),
            Some((k, end)) if Instant::now() > deadline => {
                return Err(Error::Kafka {
                    context: format!(
                        "reading the end offset of {k} (target brokers {})",
                        kafka.brokers
                    ),
                    message: format!(
                        "it stays at {end}, before the restored records; an open transaction of another producer holds it. \
                         Run the same command again once it has finished"
                    ),
                });
            }
            Some(_) => pause.sleep(),
        }
    }
}

fn read_ends(kafka: &KafkaOptions, plan: &RestorePlan) -> Result<BTreeMap<String, i64>> {
    let client = kafka.metadata_client(true)?;
    let topics: Vec<TopicInfo> = plan
        .topics
        .iter()
        .map(|t| TopicInfo {
            name: t.target.clone(),
            id: None,
            partitions: t.partitions,
            replication_factor: 1,
        })
        .collect();
    let ends = partition_offsets(kafka, &client, &topics, Edge::End)?;
    Ok(ends
        .into_iter()
        .map(|((t, p), o)| (partition_key(&t, p), o))
        .collect())
}

/// Every selected group's positions on the target, from the translations
/// and end offsets `state` holds.
pub fn translated_groups(plan: &RestorePlan, state: &ProgressState) -> Vec<GroupOutcome> {
    plan.groups
        .iter()
        .map(|g| GroupOutcome {
            group_id: g.group_id.clone(),
            offsets: g
                .offsets
                .iter()
                .map(|pos| {
                    let (i, c) = (&pos.partition, &pos.source_offset);
                    let p = &plan.partitions[*i];
                    let key = partition_key(&p.target_topic, p.partition);
                    let answered = state
                        .partitions
                        .get(&key)
                        .map(|pp| pp.translations.clone())
                        .unwrap_or_default();
                    let end = state.ends.get(&key).copied().unwrap_or(-1);
                    TranslatedOffset {
                        source_topic: p.source_topic.clone(),
                        target_topic: p.target_topic.clone(),
                        partition: p.partition,
                        source_offset: *c,
                        target_offset: translate(&answered, end, *c),
                    }
                })
                .collect(),
        })
        .collect()
}
