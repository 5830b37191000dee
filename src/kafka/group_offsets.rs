//! Consumer group offsets, read and committed for many groups at once
//! through one admin client (see `admin_ffi`): every group's committed
//! offsets for a snapshot, the translated offsets for a restore.

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaErrorCode;
use vault_format::manifest::{GroupOffset, GroupSnapshot};

use super::admin_ffi::{GroupOp, GroupRequest, run_per_group};
use super::{KafkaOptions, TopicInfo, is_getting_ready, retry_transient};
use crate::error::Result;

/// Every consumer group with an offset committed on one of `topics`, with
/// its committed offsets there, sorted by group id.
pub fn group_offsets(
    opts: &KafkaOptions,
    client: &BaseConsumer,
    topics: &[TopicInfo],
) -> Result<Vec<GroupSnapshot>> {
    let list = retry_transient(opts, || client.fetch_group_list(None, opts.request_timeout))
        .map_err(|e| opts.kafka_err("listing consumer groups", e))?;
    let groups: Vec<_> = list
        .groups()
        .iter()
        .filter(|g| !g.name().starts_with("kvault-"))
        .collect();
    if groups.is_empty() || topics.is_empty() {
        return Ok(Vec::new());
    }
    let mut tpl = TopicPartitionList::new();
    for t in topics {
        tpl.add_partition_range(&t.name, 0, t.partitions as i32 - 1);
    }
    let names: Vec<&str> = groups.iter().map(|g| g.name()).collect();
    let committed = committed_offsets(opts, &names, &tpl)?;
    let mut out: Vec<GroupSnapshot> = groups
        .iter()
        .zip(committed)
        .filter(|(_, offsets)| !offsets.is_empty())
        .map(|(g, offsets)| GroupSnapshot {
            group_id: g.name().to_string(),
            protocol_type: g.protocol_type().to_string(),
            state: g.state().to_string(),
            offsets,
        })
        .collect();
    out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    Ok(out)
}

/// The committed offsets of each of `groups` on the partitions of `tpl`,
/// in the order of `groups`. Read with require_stable (what a read_committed
/// consumer would resume from), retrying while a coordinator is loading.
fn committed_offsets(
    opts: &KafkaOptions,
    groups: &[&str],
    tpl: &TopicPartitionList,
) -> Result<Vec<Vec<GroupOffset>>> {
    let requests: Vec<GroupRequest<'_>> = groups
        .iter()
        .map(|g| GroupRequest {
            group: g,
            partitions: tpl,
        })
        .collect();
    // An unstable offset belongs to a transaction about to end.
    let retryable = |c| is_getting_ready(c) || c == RDKafkaErrorCode::UnstableOffsetCommit;
    let answers = run_per_group(
        opts,
        GroupOp::ListOffsets,
        &requests,
        retryable,
        |_| {},
        (
            "reading the offsets",
            "check --brokers and that the cluster is reachable",
        ),
    )?;
    Ok(answers
        .into_iter()
        .map(|partitions| {
            partitions
                .into_iter()
                // No commit comes back as an invalid offset (-1001) or -1.
                .filter(|p| p.offset >= 0)
                .map(|p| GroupOffset {
                    topic: p.topic,
                    partition: p.partition as u32,
                    offset: p.offset,
                    metadata: p.metadata,
                    leader_epoch: None,
                })
                .collect()
        })
        .collect())
}

/// One offset to commit for a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetCommit {
    pub topic: String,
    pub partition: u32,
    pub offset: i64,
    pub metadata: Option<String>,
}

/// Commits each group's offsets without joining the group (Kafka accepts
/// this only while the group has no active members on those topics), then
/// reads every group back and checks it holds exactly what was committed.
/// `committed(n)` is told each time the n-th group's commit is acknowledged.
pub fn commit_group_offsets(
    opts: &KafkaOptions,
    commits: &[(String, Vec<OffsetCommit>)],
    committed: impl FnMut(usize),
) -> Result<()> {
    if commits.is_empty() {
        return Ok(());
    }
    let lists = commits
        .iter()
        .map(|(group, offsets)| {
            let mut tpl = TopicPartitionList::new();
            for o in offsets {
                let mut e = tpl.add_partition(&o.topic, o.partition as i32);
                e.set_offset(Offset::Offset(o.offset)).map_err(|e| {
                    opts.kafka_err(&format!("building the commit of group {group}"), e)
                })?;
                if let Some(m) = &o.metadata {
                    e.set_metadata(m.as_str());
                }
            }
            Ok(tpl)
        })
        .collect::<Result<Vec<_>>>()?;
    let requests: Vec<GroupRequest<'_>> = commits
        .iter()
        .zip(&lists)
        .map(|((group, _), tpl)| GroupRequest {
            group,
            partitions: tpl,
        })
        .collect();
    run_per_group(
        opts,
        GroupOp::AlterOffsets,
        &requests,
        is_getting_ready,
        committed,
        (
            "committing the offsets",
            "the group must have no active consumers on the target",
        ),
    )?;

    // Read back: a commit the cluster acknowledged but does not hold would
    // make a consumer resume at the wrong record.
    let names: Vec<&str> = commits.iter().map(|(g, _)| g.as_str()).collect();
    let mut all = TopicPartitionList::new();
    for (_, offsets) in commits {
        for o in offsets {
            if all.find_partition(&o.topic, o.partition as i32).is_none() {
                all.add_partition(&o.topic, o.partition as i32);
            }
        }
    }
    let back = committed_offsets(opts, &names, &all)?;
    for ((group, offsets), got) in commits.iter().zip(back) {
        for o in offsets {
            let found = got
                .iter()
                .find(|g| g.topic == o.topic && g.partition == o.partition);
            // Kafka keeps no metadata as an empty string.
            let same_metadata = |g: &GroupOffset| {
                g.metadata.as_deref().unwrap_or("") == o.metadata.as_deref().unwrap_or("")
            };
            let ok = found.is_some_and(|g| g.offset == o.offset && same_metadata(g));
            if !ok {
                return Err(opts.kafka_err(
                    &format!("checking the committed offsets of group {group}"),
                    format!(
                        "{}/{} reads back as {:?}, not offset {} with metadata {:?}",
                        o.topic,
                        o.partition,
                        found.map(|g| (g.offset, &g.metadata)),
                        o.offset,
                        o.metadata
                    ),
                ));
            }
        }
    }
    Ok(())
}
