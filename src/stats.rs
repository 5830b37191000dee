//! `vault stats`: how much the vault holds and what it costs. Logical bytes
//! (the records' key, value and header bytes, as Kafka counts them),
//! stored bytes (sealed chunks in packs), the dedup ratio (logical bytes
//! over the record bytes of the distinct data chunks) and the compression ratio
//! (plain over sealed bytes of those chunks), for the whole vault, per
//! topic and per snapshot.
//!
//! Every tree is walked once per topic: a subtree already seen for that
//! topic (a partition unchanged since the previous snapshot) is skipped,
//! so the walk costs about one pass over the distinct tree nodes.

use std::collections::{BTreeMap, HashSet};

use vault_format::ChunkId;
use vault_format::tree::TreeRoot;

use crate::error::Result;
use crate::repository::{Indexed, Repository};

/// Sizes of a set of distinct chunks.
///
/// The dedup ratio is the record bytes all snapshots hold over the record
/// bytes of the distinct data chunks; the compression ratio is the plain
/// bytes of the distinct chunks over their sealed bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ChunkBytes {
    pub chunks: u64,
    pub plain_bytes: u64,
    pub sealed_bytes: u64,
    /// The record bytes (key, value, headers) of the distinct data chunks:
    /// what the vault would hold with each record stored once.
    pub record_bytes: u64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct TopicStats {
    pub topic: String,
    pub snapshots: usize,
    /// Record bytes over all the snapshots that hold the topic.
    pub logical_bytes: u64,
    /// The topic's newest snapshot's record bytes.
    pub latest_logical_bytes: u64,
    /// The distinct chunks its trees refer to (data chunks, value chunks
    /// and tree nodes), some of them shared with other topics.
    pub stored: ChunkBytes,
    pub dedup_ratio: f64,
    pub compression_ratio: f64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct SnapshotStatsRow {
    pub id: String,
    pub time_ms: u64,
    pub records: u64,
    pub logical_bytes: u64,
    /// What this snapshot's run added to the vault (packs written).
    pub bytes_added: u64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct VaultStats {
    pub snapshots: usize,
    pub logical_bytes: u64,
    /// Distinct chunks any snapshot refers to.
    pub stored: ChunkBytes,
    /// The pack files, whole (chunks no snapshot needs any more included).
    pub pack_bytes: u64,
    pub dedup_ratio: f64,
    pub compression_ratio: f64,
    pub topics: Vec<TopicStats>,
    pub per_snapshot: Vec<SnapshotStatsRow>,
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Adds the chunks of `root`'s tree not yet in `seen` to `bytes`.
fn walk(
    repo: &Repository<Indexed>,
    root: &TreeRoot,
    seen: &mut HashSet<ChunkId>,
    bytes: &mut ChunkBytes,
) -> Result<()> {
    let count =
        |id: &ChunkId, seen: &mut HashSet<ChunkId>, bytes: &mut ChunkBytes| -> Result<bool> {
            if !seen.insert(*id) {
                return Ok(false);
            }
            if let Some(loc) = repo.locate(id)? {
                bytes.chunks += 1;
                bytes.plain_bytes += u64::from(loc.entry.plain_len);
                bytes.sealed_bytes += u64::from(loc.entry.sealed_len);
            }
            Ok(true)
        };
    let mut stack = vec![(root.id, root.level)];
    while let Some((id, level)) = stack.pop() {
        if !count(&id, seen, bytes)? {
            continue;
        }
        let node = repo.read_tree_node(&id)?;
        for e in &node.entries {
            if level > 0 {
                stack.push((e.id, level - 1));
            } else if count(&e.id, seen, bytes)? {
                bytes.record_bytes += e.summary.bytes;
                for v in crate::gc::mark::value_chunks(repo, e)? {
                    count(&v, seen, bytes)?;
                }
            }
        }
    }
    Ok(())
}

/// Measures the vault.
pub fn measure(repo: &Repository<Indexed>) -> Result<VaultStats> {
    let entries = crate::catalog::list(repo)?;
    let mut all_seen = HashSet::new();
    let mut all = ChunkBytes::default();
    let mut topics: BTreeMap<String, (TopicStats, HashSet<ChunkId>, u64)> = BTreeMap::new();
    let mut per_snapshot = Vec::new();
    for e in &entries {
        let m = &e.manifest;
        per_snapshot.push(SnapshotStatsRow {
            id: e.id.to_hex(),
            time_ms: m.time_ms,
            records: m.total_records(),
            logical_bytes: m.total_bytes(),
            bytes_added: m.stats.bytes_added,
        });
        for t in &m.topics {
            let (stats, seen, newest) = topics.entry(t.name.clone()).or_insert_with(|| {
                (
                    TopicStats {
                        topic: t.name.clone(),
                        snapshots: 0,
                        logical_bytes: 0,
                        latest_logical_bytes: 0,
                        stored: ChunkBytes::default(),
                        dedup_ratio: 0.0,
                        compression_ratio: 0.0,
                    },
                    HashSet::new(),
                    0,
                )
            });
            let bytes: u64 = t
                .partitions
                .iter()
                .filter_map(|p| p.root)
                .map(|r| r.summary.bytes)
                .sum();
            stats.snapshots += 1;
            stats.logical_bytes += bytes;
            if m.time_ms >= *newest {
                *newest = m.time_ms;
                stats.latest_logical_bytes = bytes;
            }
            for root in t.partitions.iter().filter_map(|p| p.root) {
                walk(repo, &root, seen, &mut stats.stored)?;
                walk(repo, &root, &mut all_seen, &mut all)?;
            }
        }
    }
    let logical: u64 = per_snapshot.iter().map(|s| s.logical_bytes).sum();
    let pack_bytes = repo
        .storage()
        .list(crate::storage::Dir::Packs)?
        .iter()
        .map(|l| l.size)
        .sum();
    Ok(VaultStats {
        snapshots: entries.len(),
        logical_bytes: logical,
        stored: all,
        pack_bytes,
        // Record bytes over record bytes: framing and tree nodes, which are
        // in the plain bytes, do not make a vault of one snapshot look
        // worse than 1x.
        dedup_ratio: ratio(logical, all.record_bytes),
        compression_ratio: ratio(all.plain_bytes, all.sealed_bytes),
        topics: topics
            .into_values()
            .map(|(mut t, _, _)| {
                t.dedup_ratio = ratio(t.logical_bytes, t.stored.record_bytes);
                t.compression_ratio = ratio(t.stored.plain_bytes, t.stored.sealed_bytes);
                t
            })
            .collect(),
        per_snapshot,
    })
}
