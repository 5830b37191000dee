//! Which history a partition continues: the base a new snapshot appends to.
//!
//! A partition's records are a history only as long as the same topic of
//! the same cluster wrote them, read at the same isolation level. A topic
//! deleted and created again under its name has a new Kafka topic ID and
//! offsets that start again at 0; two clusters may hold topics of the same
//! name; read_uncommitted holds records read_committed leaves out. So a
//! partition builds on an earlier snapshot only when all of these match:
//!
//! * the source (the cluster id, or the name given with `--source`),
//! * the cluster id, where both snapshots know one,
//! * the topic ID (a format 1 snapshot knows none, so nothing builds on it),
//! * the isolation level.
//!
//! Anything else starts a new history, read from the log start, with a
//! warning that says why. Older snapshots keep what they hold.

use std::collections::HashMap;

use vault_format::ObjectId;
use vault_format::manifest::SnapshotManifest;
use vault_format::tree::TreeRoot;

use crate::kafka::TopicInfo;

/// The identity of the snapshot being planned.
#[derive(Clone, Debug)]
pub(crate) struct CutIdentity<'a> {
    pub source: &'a str,
    /// Empty when the cluster gave none.
    pub cluster_id: &'a str,
    pub read_committed: bool,
}

/// What a partition builds on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PartitionBase {
    /// The earlier snapshot's cut for the partition.
    pub end: i64,
    pub root: Option<TreeRoot>,
    /// The snapshot it comes from.
    pub snapshot: ObjectId,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Bases {
    /// The newest earlier snapshot of the same source (for the manifest's
    /// `parent` field; partitions may build on older ones).
    pub parent: Option<ObjectId>,
    pub partitions: HashMap<(String, u32), PartitionBase>,
    /// Topics whose newest snapshot of the source is a format 1 one (no
    /// topic ID) that matches in everything else: their partitions' bases
    /// there, to be adopted only once their records prove it is the same
    /// topic (see `super::upgrade`).
    pub format_1: HashMap<String, Vec<(u32, PartitionBase)>>,
    pub warnings: Vec<String>,
}

fn same_cluster(a: &str, b: &str) -> bool {
    a.is_empty() || b.is_empty() || a == b
}

/// Finds the base of every partition of `topics` among `earlier`.
pub(crate) fn find_bases(
    earlier: &[(ObjectId, SnapshotManifest)],
    cut: &CutIdentity<'_>,
    topics: &[TopicInfo],
) -> Bases {
    let mut same_source: Vec<&(ObjectId, SnapshotManifest)> = earlier
        .iter()
        .filter(|(_, m)| m.source == cut.source)
        .collect();
    // Newest first.
    same_source.sort_by_key(|(id, m)| std::cmp::Reverse((m.time_ms, *id)));
    let mut bases = Bases {
        parent: same_source.first().map(|(id, _)| *id),
        ..Bases::default()
    };
    for t in topics {
        let mut found_any = false;
        for (id, m) in &same_source {
            let Some(prev) = m.topics.iter().find(|p| p.name == t.name) else {
                continue;
            };
            let continues = same_cluster(&m.source_cluster_id, cut.cluster_id)
                && m.read_committed == cut.read_committed
                && prev.topic_id == t.id;
            if !continues {
                continue;
            }
            for p in &prev.partitions {
                let key = (t.name.clone(), p.partition);
                if p.partition < t.partitions && !bases.partitions.contains_key(&key) {
                    found_any = true;
                    bases.partitions.insert(
                        key,
                        PartitionBase {
                            end: p.end_offset,
                            root: p.root,
                            snapshot: *id,
                        },
                    );
                }
            }
        }
        if found_any {
            continue;
        }
        if let Some(candidates) = format_1_candidates(&same_source, cut, t) {
            bases.format_1.insert(t.name.clone(), candidates);
        } else if let Some(w) = why_new(&same_source, cut, t) {
            bases.warnings.push(w);
        }
    }
    bases
}

/// The bases a format 1 snapshot offers `t`: when the newest snapshot of
/// the source holding it has no topic ID and matches in cluster and
/// isolation level.
fn format_1_candidates(
    same_source: &[&(ObjectId, SnapshotManifest)],
    cut: &CutIdentity<'_>,
    t: &TopicInfo,
) -> Option<Vec<(u32, PartitionBase)>> {
    let (id, m, prev) = same_source.iter().find_map(|(id, m)| {
        m.topics
            .iter()
            .find(|p| p.name == t.name)
            .map(|p| (id, m, p))
    })?;
    let fits = prev.topic_id.is_none()
        && t.id.is_some()
        && same_cluster(&m.source_cluster_id, cut.cluster_id)
        && m.read_committed == cut.read_committed;
    fits.then(|| {
        prev.partitions
            .iter()
            .filter(|p| p.partition < t.partitions)
            .map(|p| {
                (
                    p.partition,
                    PartitionBase {
                        end: p.end_offset,
                        root: p.root,
                        snapshot: *id,
                    },
                )
            })
            .collect()
    })
}

/// Why a topic that earlier snapshots of the source hold starts a new
/// history; `None` when none holds it (a first snapshot needs no warning).
fn why_new(
    same_source: &[&(ObjectId, SnapshotManifest)],
    cut: &CutIdentity<'_>,
    t: &TopicInfo,
) -> Option<String> {
    let (id, m, prev) = same_source.iter().find_map(|(id, m)| {
        m.topics
            .iter()
            .find(|p| p.name == t.name)
            .map(|p| (id, m, p))
    })?;
    let short = &id.to_hex()[..16];
    let reason = if !same_cluster(&m.source_cluster_id, cut.cluster_id) {
        format!(
            "snapshot {short} read it from cluster {}, this cluster is {}",
            m.source_cluster_id, cut.cluster_id
        )
    } else if prev.topic_id != t.id {
        match (prev.topic_id, t.id) {
            (Some(old), Some(new)) => format!(
                "its topic ID changed from {} (snapshot {short}) to {}: it was deleted and created again",
                old.to_kafka_string(),
                new.to_kafka_string()
            ),
            (None, Some(_)) => format!(
                "snapshot {short} was written without topic IDs (by an older vault), so vault cannot tell it is the same topic"
            ),
            _ => format!("snapshot {short} knew its topic ID, this cluster gives none"),
        }
    } else {
        format!(
            "snapshot {short} was taken {}, this one {}; a snapshot never builds on another isolation level",
            isolation(m.read_committed),
            isolation(cut.read_committed)
        )
    };
    Some(format!(
        "topic {}: {reason}. It starts a new history and is read from its log start; earlier snapshots keep what they hold",
        t.name
    ))
}

fn isolation(read_committed: bool) -> &'static str {
    if read_committed {
        "read_committed"
    } else {
        "read_uncommitted (--read-uncommitted)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vault_format::{ChunkId, TopicId};

    fn tid(b: u8) -> Option<TopicId> {
        Some(TopicId([b; 16]))
    }

    use vault_format::manifest::{PartitionSnapshot, Selection, SnapshotStats, TopicSnapshot};
    use vault_format::tree::Summary;

    fn root(b: u8) -> Option<TreeRoot> {
        Some(TreeRoot {
            id: ChunkId([b; 32]),
            level: 0,
            summary: Summary {
                first_offset: 0,
                last_offset: 9,
                records: 10,
                bytes: 100,
                min_ts: 0,
                max_ts: 9,
            },
        })
    }

    fn manifest(
        time_ms: u64,
        source: &str,
        cluster: &str,
        read_committed: bool,
        topics: &[(&str, Option<TopicId>, u32, i64)],
    ) -> SnapshotManifest {
        SnapshotManifest {
            time_ms,
            parent: None,
            source: source.into(),
            source_cluster_id: cluster.into(),
            selection: Selection::default(),
            hostname: "h".into(),
            tags: vec![],
            read_committed,
            topics: topics
                .iter()
                .map(|(name, id, parts, end)| TopicSnapshot {
                    name: (*name).into(),
                    topic_id: *id,
                    replication_factor: 1,
                    configs: vec![],
                    partitions: (0..*parts)
                        .map(|p| PartitionSnapshot {
                            partition: p,
                            log_start_offset: 0,
                            end_offset: *end,
                            root: root(time_ms as u8),
                        })
                        .collect(),
                })
                .collect(),
            groups: vec![],
            estate: None,
            stats: SnapshotStats::default(),
        }
    }

    fn topic(name: &str, id: Option<TopicId>, partitions: u32) -> TopicInfo {
        TopicInfo {
            name: name.into(),
            id,
            partitions,
            replication_factor: 1,
        }
    }

    const CUT: CutIdentity<'static> = CutIdentity {
        source: "A",
        cluster_id: "A",
        read_committed: true,
    };

    fn oid(b: u8) -> ObjectId {
        ObjectId([b; 32])
    }

    #[test]
    fn the_newest_snapshot_of_the_same_topic_is_the_base() {
        let earlier = vec![
            (
                oid(1),
                manifest(1, "A", "A", true, &[("orders", tid(1), 2, 10)]),
            ),
            (
                oid(2),
                manifest(2, "A", "A", true, &[("orders", tid(1), 2, 20)]),
            ),
        ];
        let b = find_bases(&earlier, &CUT, &[topic("orders", tid(1), 3)]);
        assert_eq!(b.parent, Some(oid(2)));
        assert_eq!(b.partitions[&("orders".to_string(), 0)].end, 20);
        assert_eq!(b.partitions[&("orders".to_string(), 1)].snapshot, oid(2));
        // A partition added since has no base.
        assert!(!b.partitions.contains_key(&("orders".to_string(), 2)));
        assert!(b.warnings.is_empty());
    }

    #[test]
    fn a_recreated_topic_starts_a_new_history() {
        let earlier = vec![(
            oid(1),
            manifest(1, "A", "A", true, &[("orders", tid(1), 1, 10)]),
        )];
        let b = find_bases(&earlier, &CUT, &[topic("orders", tid(2), 1)]);
        assert!(b.partitions.is_empty());
        assert_eq!(b.warnings.len(), 1);
        assert!(
            b.warnings[0].contains("deleted and created again"),
            "{:?}",
            b.warnings
        );
    }

    #[test]
    fn another_source_or_cluster_is_another_history() {
        let earlier = vec![
            (
                oid(1),
                manifest(5, "B", "B", true, &[("orders", tid(1), 1, 10)]),
            ),
            (
                oid(2),
                manifest(6, "A", "X", true, &[("orders", tid(1), 1, 10)]),
            ),
        ];
        let b = find_bases(&earlier, &CUT, &[topic("orders", tid(1), 1)]);
        assert!(b.partitions.is_empty());
        assert_eq!(b.parent, Some(oid(2)));
        assert!(b.warnings[0].contains("from cluster X"), "{:?}", b.warnings);
        // Source B's snapshot is no reason for a warning.
        let cut_c = CutIdentity { source: "C", ..CUT };
        let b = find_bases(&earlier, &cut_c, &[topic("orders", tid(1), 1)]);
        assert!(b.partitions.is_empty() && b.warnings.is_empty() && b.parent.is_none());
    }

    #[test]
    fn isolation_levels_never_mix_but_an_older_match_still_counts() {
        let earlier = vec![
            (
                oid(1),
                manifest(1, "A", "A", true, &[("orders", tid(1), 1, 10)]),
            ),
            (
                oid(2),
                manifest(2, "A", "A", false, &[("orders", tid(1), 1, 20)]),
            ),
        ];
        let b = find_bases(&earlier, &CUT, &[topic("orders", tid(1), 1)]);
        assert_eq!(b.partitions[&("orders".to_string(), 0)].snapshot, oid(1));
        let ru = CutIdentity {
            read_committed: false,
            ..CUT
        };
        let only_rc = vec![earlier[0].clone()];
        let b = find_bases(&only_rc, &ru, &[topic("orders", tid(1), 1)]);
        assert!(b.partitions.is_empty());
        assert!(
            b.warnings[0].contains("isolation level"),
            "{:?}",
            b.warnings
        );
    }

    #[test]
    fn format_1_snapshots_are_only_candidates() {
        let earlier = vec![(
            oid(1),
            manifest(1, "A", "A", true, &[("orders", None, 2, 10)]),
        )];
        let b = find_bases(&earlier, &CUT, &[topic("orders", tid(1), 2)]);
        assert!(b.partitions.is_empty() && b.warnings.is_empty());
        assert_eq!(b.format_1["orders"].len(), 2);
        // Another isolation level is no candidate at all.
        let ru = CutIdentity {
            read_committed: false,
            ..CUT
        };
        let b = find_bases(&earlier, &ru, &[topic("orders", tid(1), 2)]);
        assert!(b.format_1.is_empty());
        assert_eq!(b.warnings.len(), 1);
    }

    #[test]
    fn a_named_source_without_ids_continues_by_name() {
        let cut = CutIdentity {
            source: "legacy",
            cluster_id: "",
            read_committed: true,
        };
        let earlier = vec![(
            oid(1),
            manifest(1, "legacy", "", true, &[("orders", None, 1, 10)]),
        )];
        let b = find_bases(&earlier, &cut, &[topic("orders", None, 1)]);
        assert_eq!(b.partitions.len(), 1);
    }
}
