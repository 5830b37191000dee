//! Consumer group offsets, read and committed for many groups at once on
//! one client (see `admin_ffi`): every group's committed offsets for a
//! snapshot, the translated offsets for a restore.

use rdkafka::consumer::Consumer;
use rdkafka::metadata::Metadata;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaErrorCode;
use vault_format::manifest::{GroupOffset, GroupSnapshot};

use super::admin_ffi::{GroupOp, GroupRequest, run_per_group};
use super::options::KafkaOptions;
use super::retry::{is_getting_ready, retry_transient};
use super::selection::TopicInfo;
use crate::error::Result;

/// Every consumer group with an offset committed on one of `topics`, with
/// its committed offsets there, sorted by group id. `md` is the cluster's
/// metadata, read just before; `client` is a `metadata_client`.
pub fn group_offsets(
    opts: &KafkaOptions,
    client: &crate::kafka::MetadataClient,
    md: &Metadata,
    topics: &[TopicInfo],
) -> Result<Vec<GroupSnapshot>> {
    if topics.is_empty() {
        return Ok(Vec::new());
    }
    wait_for_group_coordinators(opts, client, md)?;
    let list = retry_transient(opts, || client.fetch_group_list(None, opts.request_timeout))
        .map_err(|e| opts.kafka_err("listing consumer groups", e))?;
    let groups: Vec<_> = list
        .groups()
        .iter()
        .filter(|g| !g.name().starts_with("kvault-"))
        .collect();
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<&str> = groups.iter().map(|g| g.name()).collect();
    // Asking every group about every selected partition cost groups ×
    // partitions entries (900 groups of a 10,000-partition estate: 9
    // million, almost all empty). So, in two rounds:
    // 1. each group's own commits (no partition list): which selected
    //    topics it uses at all;
    // 2. for each group, every partition of those topics, as before: with
    //    require_stable, so a commit inside an open transaction (even the
    //    first on a partition) is waited for, never left out.
    // A group whose very first commit on a selected topic is still inside
    // an open transaction is not seen by round 1 (Kafka lists no offset
    // for it yet): that window is one transaction long.
    let discovery: Vec<(&str, Option<&TopicPartitionList>)> =
        names.iter().map(|n| (*n, None)).collect();
    let used: Vec<Vec<&TopicInfo>> = committed_offsets_raw(opts, client, &discovery)?
        .into_iter()
        .map(|parts| {
            topics
                .iter()
                .filter(|t| parts.iter().any(|p| p.topic == t.name))
                .collect()
        })
        .collect();
    let lists: Vec<TopicPartitionList> = used
        .iter()
        .map(|ts| {
            let mut tpl = TopicPartitionList::new();
            for t in ts {
                tpl.add_partition_range(&t.name, 0, super::kafka_partition(t.partitions) - 1);
            }
            tpl
        })
        .collect();
    let asked: Vec<(&str, Option<&TopicPartitionList>)> = names
        .iter()
        .zip(&lists)
        .filter(|(_, l)| l.count() > 0)
        .map(|(n, l)| (*n, Some(l)))
        .collect();
    let mut answers = committed_offsets(opts, client, &asked)?.into_iter();
    let committed: Vec<Vec<GroupOffset>> = lists
        .iter()
        .map(|l| {
            if l.count() > 0 {
                answers.next().expect("one answer per group asked")
            } else {
                Vec::new()
            }
        })
        .collect();
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

/// Kafka's ListGroups leaves out, without an error, the groups of every
/// `__consumer_offsets` partition whose coordinator is not serving yet: for
/// a few seconds after a broker starts, a snapshot would find no groups at
/// all. An offset read for a group id that lives on a partition succeeds
/// only once that partition's coordinator serves (it is retried until
/// then), so one such read per partition makes the list that follows whole.
fn wait_for_group_coordinators(
    opts: &KafkaOptions,
    client: &crate::kafka::MetadataClient,
    md: &Metadata,
) -> Result<()> {
    let partitions = md
        .topics()
        .iter()
        .find(|t| t.name() == OFFSETS_TOPIC && t.error().is_none())
        .map_or(0, |t| t.partitions().len());
    // No offsets topic: no group has ever committed an offset.
    if partitions == 0 {
        return Ok(());
    }
    let probes = probe_group_ids(partitions);
    let requests: Vec<(&str, Option<&TopicPartitionList>)> =
        probes.iter().map(|n| (n.as_str(), None)).collect();
    committed_offsets(opts, client, &requests).map(|_| ())
}

const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// One group id per `__consumer_offsets` partition, `kvault-probe-N`
/// (never listed: vault skips its own `kvault-` groups).
fn probe_group_ids(partitions: usize) -> Vec<String> {
    let mut ids: Vec<Option<String>> = vec![None; partitions];
    let mut missing = partitions;
    let mut n = 0u64;
    while missing > 0 {
        let id = format!("kvault-probe-{n}");
        let slot = &mut ids[offsets_partition(&id, partitions)];
        if slot.is_none() {
            *slot = Some(id);
            missing -= 1;
        }
        n += 1;
    }
    ids.into_iter().flatten().collect()
}

/// The `__consumer_offsets` partition Kafka places `group` on:
/// abs(Java `String.hashCode`) modulo the partition count.
fn offsets_partition(group: &str, partitions: usize) -> usize {
    let hash = group
        .encode_utf16()
        .fold(0i32, |h, u| h.wrapping_mul(31).wrapping_add(i32::from(u)));
    // Kafka's Utils.abs maps i32::MIN to 0.
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    usize::try_from(abs).expect("an absolute value") % partitions
}

/// The committed offsets of each of `groups` on the partitions of `tpl`,
/// in the order of `groups`. Read with require_stable (what a read_committed
/// consumer would resume from), retrying while a coordinator is loading.
fn committed_offsets(
    opts: &KafkaOptions,
    client: &crate::kafka::MetadataClient,
    groups: &[(&str, Option<&TopicPartitionList>)],
) -> Result<Vec<Vec<GroupOffset>>> {
    Ok(committed_offsets_raw(opts, client, groups)?
        .into_iter()
        .map(|partitions| {
            partitions
                .into_iter()
                // No commit comes back as an invalid offset (-1001) or -1;
                // a partition number no topic has (a client's bad commit)
                // is no position either.
                .filter(|p| p.offset >= 0 && p.partition >= 0)
                .map(|p| GroupOffset {
                    topic: p.topic,
                    partition: super::vault_partition(p.partition),
                    offset: p.offset,
                    metadata: p.metadata,
                    leader_epoch: None,
                })
                .collect()
        })
        .collect())
}

/// Each group's answer as librdkafka gives it, partitions without an
/// offset included (with `None` for the list, errors on single partitions
/// are dropped rather than failing the read).
fn committed_offsets_raw(
    opts: &KafkaOptions,
    client: &crate::kafka::MetadataClient,
    groups: &[(&str, Option<&TopicPartitionList>)],
) -> Result<Vec<Vec<super::admin_ffi::PartitionResult>>> {
    let requests: Vec<GroupRequest<'_>> = groups
        .iter()
        .map(|(group, partitions)| GroupRequest {
            group,
            partitions: *partitions,
        })
        .collect();
    // An unstable offset belongs to a transaction about to end.
    let retryable = |c| is_getting_ready(c) || c == RDKafkaErrorCode::UnstableOffsetCommit;
    run_per_group(
        opts,
        client,
        GroupOp::ListOffsets,
        &requests,
        retryable,
        |_| {},
        (
            "reading the offsets",
            "check --brokers and that the cluster is reachable",
        ),
    )
}

/// One offset to commit for a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OffsetCommit {
    pub topic: String,
    pub partition: u32,
    pub offset: i64,
    pub metadata: Option<String>,
}

/// Commits each group's offsets without joining the group (Kafka refuses
/// this while the group has active members), then
/// reads every group back and checks it holds exactly what was committed.
/// `committed(n)` is told each time the n-th group's commit is acknowledged.
pub(crate) fn commit_group_offsets(
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
                let mut e = tpl.add_partition(&o.topic, super::kafka_partition(o.partition));
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
            partitions: Some(tpl),
        })
        .collect();
    let client = opts.metadata_client(true)?;
    run_per_group(
        opts,
        &client,
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
    // Each group on its own partitions only (not the union of all groups').
    let back_requests: Vec<(&str, Option<&TopicPartitionList>)> = commits
        .iter()
        .zip(&lists)
        .map(|((g, _), tpl)| (g.as_str(), Some(tpl)))
        .collect();
    let back = committed_offsets(opts, &client, &back_requests)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_land_where_kafka_puts_them() {
        // Java: "hello".hashCode() == 99162322, and
        // "polygenelubricants".hashCode() == Integer.MIN_VALUE.
        assert_eq!(offsets_partition("hello", 50), 99162322 % 50);
        assert_eq!(offsets_partition("polygenelubricants", 50), 0);
        assert_eq!(offsets_partition("", 50), 0);
        // Negative hashes and non-ASCII ids (UTF-16 code units), checked
        // against Java 17's String.hashCode.
        assert_eq!(offsets_partition("kvault-probe-0", 50), 7);
        assert_eq!(offsets_partition("kvault-probe-7", 50), 0);
        assert_eq!(offsets_partition("bench-group-1", 50), 0);
        assert_eq!(offsets_partition("Ünïcödé-gruppe", 50), 15);
        for p in [1, 3, 50, 200] {
            let ids = probe_group_ids(p);
            assert_eq!(ids.len(), p);
            let mut hit: Vec<usize> = ids.iter().map(|i| offsets_partition(i, p)).collect();
            hit.sort();
            assert_eq!(hit, (0..p).collect::<Vec<_>>());
        }
    }
}
