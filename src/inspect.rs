//! Looking inside snapshots without a cluster: what a snapshot holds
//! ([`describe`]), how two snapshots differ ([`diff`]), and the records of a
//! partition between offsets or times ([`read_records`]), found through the
//! tree's offset and time ranges instead of reading from the start.

use vault_format::manifest::{SnapshotManifest, TopicSnapshot};
use vault_format::tree::Summary;

use crate::error::{Error, Result};
use crate::reader::{LeafCursor, StoredRecord, chunk_records};
use crate::repository::{Indexed, Repository};

/// Which records to read.
#[derive(Clone, Debug, Default)]
pub struct RecordQuery {
    pub topic: String,
    /// `None`: every partition, one after another.
    pub partition: Option<u32>,
    /// Offsets `[from, to)`.
    pub from_offset: Option<i64>,
    pub to_offset: Option<i64>,
    /// Timestamps `[from, to)` in ms.
    pub from_time: Option<i64>,
    pub to_time: Option<i64>,
    /// Only records with exactly this key.
    pub key: Option<Vec<u8>>,
    /// Stop after this many records.
    pub limit: Option<u64>,
}

impl RecordQuery {
    /// Whether a subtree with this summary can hold a wanted record.
    fn may_hold(&self, s: &Summary) -> bool {
        self.from_offset.is_none_or(|f| s.last_offset >= f)
            && self.to_offset.is_none_or(|t| s.first_offset < t)
            && self.from_time.is_none_or(|f| s.max_ts >= f)
            && self.to_time.is_none_or(|t| s.min_ts < t)
    }

    fn wants(&self, r: &StoredRecord) -> bool {
        self.from_offset.is_none_or(|f| r.offset >= f)
            && self.to_offset.is_none_or(|t| r.offset < t)
            && self.from_time.is_none_or(|f| r.timestamp >= f)
            && self.to_time.is_none_or(|t| r.timestamp < t)
            && self.key.as_ref().is_none_or(|k| r.key.as_ref() == Some(k))
    }
}

/// What [`read_records`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadStats {
    pub records: u64,
    /// Data chunks decoded (the rest of the tree was skipped).
    pub chunks_read: u64,
}

fn topic<'m>(m: &'m SnapshotManifest, name: &str) -> Result<&'m TopicSnapshot> {
    m.topics.iter().find(|t| t.name == name).ok_or_else(|| {
        let names: Vec<&str> = m.topics.iter().map(|t| t.name.as_str()).collect();
        Error::Usage(format!(
            "topic {name} is not in this snapshot (it holds {})",
            names.join(", ")
        ))
    })
}

/// Streams the records `q` asks for to `sink` (topic, partition, record),
/// partition by partition in offset order. `sink` returns false to stop.
pub fn read_records(
    repo: &Repository<Indexed>,
    m: &SnapshotManifest,
    q: &RecordQuery,
    sink: &mut dyn FnMut(&str, u32, &StoredRecord) -> Result<bool>,
) -> Result<ReadStats> {
    let t = topic(m, &q.topic)?;
    if let Some(p) = q.partition
        && p as usize >= t.partitions.len()
    {
        return Err(Error::Usage(format!(
            "topic {} has partitions 0 to {} in this snapshot; there is no partition {p}",
            t.name,
            t.partitions.len().saturating_sub(1)
        )));
    }
    let mut stats = ReadStats::default();
    if q.limit == Some(0) {
        return Ok(stats);
    }
    for p in &t.partitions {
        if q.partition.is_some_and(|want| want != p.partition) {
            continue;
        }
        let Some(root) = p.root else { continue };
        let query = q.clone();
        let cursor = LeafCursor::new(repo, root, Box::new(move |s| query.may_hold(s)));
        for leaf in cursor {
            let leaf = leaf?;
            stats.chunks_read += 1;
            for r in chunk_records(repo, &leaf)? {
                if !q.wants(&r) {
                    continue;
                }
                stats.records += 1;
                if !sink(&t.name, p.partition, &r)? || q.limit.is_some_and(|l| stats.records >= l) {
                    return Ok(stats);
                }
            }
        }
    }
    Ok(stats)
}

/// One partition of a snapshot, as `vault ls` shows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PartitionListing {
    pub partition: u32,
    /// The log start and end offsets at the cut.
    pub log_start_offset: i64,
    pub end_offset: i64,
    /// The offsets and timestamps of the records the vault holds (`None`
    /// when it holds none).
    pub first_offset: Option<i64>,
    pub last_offset: Option<i64>,
    pub min_timestamp: Option<i64>,
    pub max_timestamp: Option<i64>,
    pub records: u64,
    /// Key, value and header bytes.
    pub bytes: u64,
}

/// One topic of a snapshot, as `vault ls` shows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TopicListing {
    pub topic: String,
    pub topic_id: Option<String>,
    pub replication_factor: u32,
    pub configs: Vec<(String, String)>,
    pub records: u64,
    pub bytes: u64,
    pub partitions: Vec<PartitionListing>,
    /// Committed offsets of consumer groups on this topic: (group, partition, offset).
    pub group_offsets: Vec<(String, u32, i64)>,
}

/// What a snapshot holds, topic by topic (`topic` narrows it to one).
pub fn describe(m: &SnapshotManifest, only: Option<&str>) -> Result<Vec<TopicListing>> {
    if let Some(name) = only {
        topic(m, name)?;
    }
    Ok(m.topics
        .iter()
        .filter(|t| only.is_none_or(|o| o == t.name))
        .map(|t| {
            let partitions: Vec<PartitionListing> = t
                .partitions
                .iter()
                .map(|p| {
                    let s = p.root.map(|r| r.summary);
                    PartitionListing {
                        partition: p.partition,
                        log_start_offset: p.log_start_offset,
                        end_offset: p.end_offset,
                        first_offset: s.map(|s| s.first_offset),
                        last_offset: s.map(|s| s.last_offset),
                        min_timestamp: s.map(|s| s.min_ts),
                        max_timestamp: s.map(|s| s.max_ts),
                        records: s.map_or(0, |s| s.records),
                        bytes: s.map_or(0, |s| s.bytes),
                    }
                })
                .collect();
            let mut group_offsets: Vec<(String, u32, i64)> = m
                .groups
                .iter()
                .flat_map(|g| {
                    g.offsets
                        .iter()
                        .filter(|o| o.topic == t.name)
                        .map(|o| (g.group_id.clone(), o.partition, o.offset))
                })
                .collect();
            group_offsets.sort();
            TopicListing {
                topic: t.name.clone(),
                topic_id: t.topic_id.map(|id| id.to_kafka_string()),
                replication_factor: t.replication_factor,
                configs: t.configs.clone(),
                records: partitions.iter().map(|p| p.records).sum(),
                bytes: partitions.iter().map(|p| p.bytes).sum(),
                partitions,
                group_offsets,
            }
        })
        .collect())
}

/// How one partition changed from snapshot A to snapshot B.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PartitionChange {
    pub topic: String,
    pub partition: u32,
    /// `added`, `unchanged`, `restarted` (B holds another history: the
    /// topic was recreated, or the cluster lost records), `new` (only in B)
    /// or `gone` (only in A).
    pub change: &'static str,
    /// Offsets `[from, to)` B holds that A did not.
    pub added: Option<(i64, i64)>,
    pub records_added: i64,
    pub bytes_added: i64,
    /// Offsets `[from, to)` retention deleted on the cluster between the two cuts.
    pub deleted_by_retention: Option<(i64, i64)>,
    /// Offsets `[from, to)` retention deleted before any snapshot read
    /// them: in neither A nor B.
    pub never_backed_up: Option<(i64, i64)>,
}

/// A group's committed offset that moved between A and B.
#[derive(Clone, Debug, serde::Serialize)]
pub struct GroupChange {
    pub group: String,
    pub topic: String,
    pub partition: u32,
    pub from: Option<i64>,
    pub to: Option<i64>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct SnapshotDiff {
    pub partitions: Vec<PartitionChange>,
    pub groups: Vec<GroupChange>,
}

/// Per partition, what B holds beyond A; and which group offsets moved.
pub fn diff(a: &SnapshotManifest, b: &SnapshotManifest) -> SnapshotDiff {
    use std::collections::BTreeMap;
    let mut partitions = Vec::new();
    let find = |m: &SnapshotManifest, t: &str, p: u32| {
        m.topics.iter().find(|x| x.name == t).and_then(|x| {
            x.partitions
                .get(p as usize)
                .map(|pp| (x.topic_id, pp.clone()))
        })
    };
    for tb in &b.topics {
        for pb in &tb.partitions {
            let sb = pb.root.map(|r| r.summary);
            let (records_b, bytes_b) = sb.map_or((0, 0), |s| (s.records, s.bytes));
            let mut c = PartitionChange {
                topic: tb.name.clone(),
                partition: pb.partition,
                change: "new",
                added: None,
                records_added: i64::try_from(records_b).unwrap_or(i64::MAX),
                bytes_added: i64::try_from(bytes_b).unwrap_or(i64::MAX),
                deleted_by_retention: None,
                never_backed_up: None,
            };
            if let Some((id_a, pa)) = find(a, &tb.name, pb.partition) {
                let sa = pa.root.map(|r| r.summary);
                let (records_a, bytes_a) = sa.map_or((0, 0), |s| (s.records, s.bytes));
                // A snapshot without topic IDs (format 1, or a named source)
                // cannot tell: only two different IDs prove another history.
                let same_topic = match (id_a, tb.topic_id) {
                    (Some(x), Some(y)) => x == y,
                    _ => true,
                };
                let same_history = same_topic && pb.end_offset >= pa.end_offset;
                if same_history {
                    c.change = if pb.end_offset > pa.end_offset {
                        "added"
                    } else {
                        "unchanged"
                    };
                    // What B holds beyond A: from A's end, or from B's log
                    // start if retention took the rest before B read it.
                    let from = pa.end_offset.max(pb.log_start_offset.min(pb.end_offset));
                    c.added = (pb.end_offset > pa.end_offset).then_some((from, pb.end_offset));
                    c.never_backed_up = (from > pa.end_offset).then_some((pa.end_offset, from));
                    c.records_added = i64::try_from(records_b).unwrap_or(i64::MAX)
                        - i64::try_from(records_a).unwrap_or(i64::MAX);
                    c.bytes_added = i64::try_from(bytes_b).unwrap_or(i64::MAX)
                        - i64::try_from(bytes_a).unwrap_or(i64::MAX);
                    // Of what A held, what the cluster deleted since.
                    let to = pb.log_start_offset.min(pa.end_offset);
                    c.deleted_by_retention =
                        (to > pa.log_start_offset).then_some((pa.log_start_offset, to));
                } else {
                    c.change = "restarted";
                    c.added = Some((pb.log_start_offset, pb.end_offset));
                }
            }
            partitions.push(c);
        }
    }
    for ta in &a.topics {
        for pa in &ta.partitions {
            if find(b, &ta.name, pa.partition).is_none() {
                partitions.push(PartitionChange {
                    topic: ta.name.clone(),
                    partition: pa.partition,
                    change: "gone",
                    added: None,
                    records_added: 0,
                    bytes_added: 0,
                    deleted_by_retention: None,
                    never_backed_up: None,
                });
            }
        }
    }
    let offsets = |m: &SnapshotManifest| -> BTreeMap<(String, String, u32), i64> {
        m.groups
            .iter()
            .flat_map(|g| {
                g.offsets
                    .iter()
                    .map(move |o| ((g.group_id.clone(), o.topic.clone(), o.partition), o.offset))
            })
            .collect()
    };
    let (oa, ob) = (offsets(a), offsets(b));
    let mut keys: Vec<&(String, String, u32)> = oa.keys().chain(ob.keys()).collect();
    keys.sort();
    keys.dedup();
    let groups = keys
        .into_iter()
        .filter(|k| oa.get(*k) != ob.get(*k))
        .map(|k| GroupChange {
            group: k.0.clone(),
            topic: k.1.clone(),
            partition: k.2,
            from: oa.get(k).copied(),
            to: ob.get(k).copied(),
        })
        .collect();
    SnapshotDiff { partitions, groups }
}

#[cfg(test)]
mod tests {
    use vault_format::TopicId;
    use vault_format::manifest::{PartitionSnapshot, SnapshotManifest, TopicSnapshot};

    use super::diff;

    fn manifest(id: Option<TopicId>, log_start: i64, end: i64) -> SnapshotManifest {
        SnapshotManifest {
            time_ms: 0,
            parent: None,
            source: "c".into(),
            source_cluster_id: "c".into(),
            selection: Default::default(),
            hostname: "h".into(),
            tags: vec![],
            read_committed: true,
            topics: vec![TopicSnapshot {
                name: "t".into(),
                topic_id: id,
                replication_factor: 1,
                configs: vec![],
                partitions: vec![PartitionSnapshot {
                    partition: 0,
                    log_start_offset: log_start,
                    end_offset: end,
                    root: None,
                }],
            }],
            groups: vec![],
            estate: None,
            stats: Default::default(),
        }
    }

    #[test]
    fn retention_past_the_older_cut_is_a_gap_not_an_addition() {
        let id = Some(TopicId([1; 16]));
        let d = diff(&manifest(id, 0, 100), &manifest(id, 150, 200));
        let c = &d.partitions[0];
        assert_eq!(c.change, "added");
        assert_eq!(c.added, Some((150, 200)));
        assert_eq!(c.never_backed_up, Some((100, 150)));
        assert_eq!(c.deleted_by_retention, Some((0, 100)));
    }

    #[test]
    fn a_missing_topic_id_is_unknown_and_two_different_ids_restart() {
        let d = diff(
            &manifest(None, 0, 100),
            &manifest(Some(TopicId([1; 16])), 0, 120),
        );
        assert_eq!(d.partitions[0].change, "added");
        assert_eq!(d.partitions[0].added, Some((100, 120)));
        let d = diff(
            &manifest(Some(TopicId([1; 16])), 0, 100),
            &manifest(Some(TopicId([2; 16])), 0, 120),
        );
        assert_eq!(d.partitions[0].change, "restarted");
    }
}
