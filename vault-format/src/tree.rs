//! Per-partition snapshot trees.
//!
//! A tree covers one partition's records in offset order. Its leaves are data
//! chunks; its nodes are chunks too (kind `TreeNode`), so they are deduplicated,
//! compressed and encrypted like data. Every entry carries a [`Summary`] so a
//! reader can seek by offset or by time without reading data.
//!
//! Nodes fill left to right with a fixed fan-out and are sealed as soon as
//! they are full, so the shape depends only on the sequence of leaves:
//! appending rewrites only the right spine, and every full subtree is shared
//! with earlier snapshots. See `docs/format.md` § Trees.

use crate::error::{FormatError, Result};
use crate::id::ChunkId;
use crate::wire::{Reader, Writer};

/// Default entries per node.
pub const DEFAULT_FANOUT: usize = 128;
/// Deepest tree a reader accepts (128^16 leaves is far beyond any partition).
pub const MAX_LEVEL: u8 = 16;

/// A run of offsets missing inside a data chunk: record `index` (0-based,
/// never 0) sits `skip` offsets after where contiguous offsets would put it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gap {
    pub index: u32,
    pub skip: u64,
}

/// What a tree entry says about everything below it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    pub first_offset: i64,
    pub last_offset: i64,
    pub records: u64,
    /// Key, value and header bytes, as Kafka counts them.
    pub bytes: u64,
    pub min_ts: i64,
    pub max_ts: i64,
}

impl Summary {
    fn merge(a: Summary, b: Summary) -> Summary {
        Summary {
            first_offset: a.first_offset.min(b.first_offset),
            last_offset: a.last_offset.max(b.last_offset),
            records: a.records + b.records,
            bytes: a.bytes + b.bytes,
            min_ts: a.min_ts.min(b.min_ts),
            max_ts: a.max_ts.max(b.max_ts),
        }
    }

    fn of(entries: &[Entry]) -> Summary {
        entries
            .iter()
            .map(|e| e.summary)
            .reduce(Summary::merge)
            .expect("non-empty node")
    }

    /// Whether any record in range could have a timestamp in `[from, to]`.
    pub fn overlaps_time(&self, from: Option<i64>, to: Option<i64>) -> bool {
        from.is_none_or(|f| self.max_ts >= f) && to.is_none_or(|t| self.min_ts <= t)
    }
}

/// A data chunk's statistics, as the chunker produces them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeafStats {
    pub first_offset: i64,
    pub last_offset: i64,
    pub records: u64,
    pub bytes: u64,
    pub min_ts: i64,
    pub max_ts: i64,
    pub gaps: Vec<Gap>,
}

impl LeafStats {
    /// The offset of every record in the chunk, in order.
    pub fn offsets(&self) -> impl Iterator<Item = i64> + '_ {
        let mut gi = 0;
        let mut next = self.first_offset;
        (0..self.records as u32).map(move |i| {
            if gi < self.gaps.len() && self.gaps[gi].index == i {
                next += self.gaps[gi].skip as i64;
                gi += 1;
            }
            let o = next;
            next += 1;
            o
        })
    }

    pub fn summary(&self) -> Summary {
        Summary {
            first_offset: self.first_offset,
            last_offset: self.last_offset,
            records: self.records,
            bytes: self.bytes,
            min_ts: self.min_ts,
            max_ts: self.max_ts,
        }
    }

    pub fn into_entry(self, chunk: ChunkId) -> Entry {
        Entry {
            id: chunk,
            summary: self.summary(),
            gaps: self.gaps,
        }
    }
}

/// One entry of a node: a data chunk (level 0) or a child node (level > 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub id: ChunkId,
    pub summary: Summary,
    /// Only at level 0; empty when the chunk's offsets are contiguous.
    pub gaps: Vec<Gap>,
}

impl Entry {
    pub fn leaf_stats(&self) -> LeafStats {
        let s = self.summary;
        LeafStats {
            first_offset: s.first_offset,
            last_offset: s.last_offset,
            records: s.records,
            bytes: s.bytes,
            min_ts: s.min_ts,
            max_ts: s.max_ts,
            gaps: self.gaps.clone(),
        }
    }
}

/// A tree node: `level` 0 holds data chunks, higher levels hold nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeNode {
    pub level: u8,
    pub entries: Vec<Entry>,
}

impl TreeNode {
    pub fn summary(&self) -> Summary {
        Summary::of(&self.entries)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(16 + self.entries.len() * 80);
        w.u8(self.level).varint(self.entries.len() as u64);
        for e in &self.entries {
            let s = e.summary;
            w.raw(&e.id.0)
                .varint(s.records)
                .zigzag(s.first_offset)
                .varint(s.last_offset.wrapping_sub(s.first_offset) as u64)
                .varint(s.bytes)
                .zigzag(s.min_ts)
                .varint(s.max_ts.wrapping_sub(s.min_ts) as u64);
            if self.level == 0 {
                w.varint(e.gaps.len() as u64);
                for g in &e.gaps {
                    w.varint(u64::from(g.index)).varint(g.skip);
                }
            }
        }
        w.into_inner()
    }

    /// Decodes and checks a node: offsets strictly increase across entries,
    /// each leaf's gaps agree with its first and last offset and its count.
    pub fn decode(bytes: &[u8]) -> Result<TreeNode> {
        let bad = |d: &str| FormatError::malformed("tree node", d.to_string());
        let mut r = Reader::new(bytes, "tree node");
        let level = r.u8()?;
        if level > MAX_LEVEL {
            return Err(bad("level too deep"));
        }
        let n = r.count(32 + 6)?;
        if n == 0 {
            return Err(bad("empty node"));
        }
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            let id = ChunkId(r.array()?);
            let records = r.varint()?;
            let first_offset = r.zigzag()?;
            let span = r.varint()?;
            let bytes = r.varint()?;
            let min_ts = r.zigzag()?;
            let ts_span = r.varint()?;
            let last_offset = i64::try_from(span)
                .ok()
                .and_then(|s| first_offset.checked_add(s))
                .ok_or_else(|| bad("offset overflow"))?;
            let max_ts = i64::try_from(ts_span)
                .ok()
                .and_then(|s| min_ts.checked_add(s))
                .ok_or_else(|| bad("timestamp overflow"))?;
            if records == 0 || records - 1 > span {
                return Err(bad("record count does not fit the offset range"));
            }
            let mut gaps = Vec::new();
            if level == 0 {
                let ng = r.count(2)?;
                let mut prev = 0u32;
                let mut skipped = 0u64;
                for _ in 0..ng {
                    let index = u32::try_from(r.varint()?).map_err(|_| bad("gap index"))?;
                    let skip = r.varint()?;
                    if index <= prev || u64::from(index) >= records || skip == 0 {
                        return Err(bad("gaps out of order"));
                    }
                    skipped = skipped
                        .checked_add(skip)
                        .ok_or_else(|| bad("gap overflow"))?;
                    prev = index;
                    gaps.push(Gap { index, skip });
                }
                if records - 1 + skipped != span {
                    return Err(bad("gaps do not match the offset range"));
                }
            }
            let e = Entry {
                id,
                summary: Summary {
                    first_offset,
                    last_offset,
                    records,
                    bytes,
                    min_ts,
                    max_ts,
                },
                gaps,
            };
            if let Some(prev) = entries.last().map(|p: &Entry| p.summary.last_offset)
                && e.summary.first_offset <= prev
            {
                return Err(bad("entries out of offset order"));
            }
            entries.push(e);
        }
        r.finish()?;
        Ok(TreeNode { level, entries })
    }
}

/// Where a tree's nodes are stored. The engine implements this over its
/// packs, with its own error type (an unreachable storage is not a damaged
/// tree); tests implement it over a map.
pub trait NodeStore {
    /// The store's error; the tree's own format errors convert into it.
    type Error: From<FormatError>;
    fn put_node(&mut self, node: &TreeNode) -> std::result::Result<ChunkId, Self::Error>;
    fn get_node(&mut self, id: &ChunkId) -> std::result::Result<TreeNode, Self::Error>;
}

/// The root of a partition's tree, as the snapshot manifest records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreeRoot {
    pub id: ChunkId,
    pub level: u8,
    pub summary: Summary,
}

/// Builds a tree from leaves, or appends to an existing one.
pub struct TreeBuilder {
    fanout: usize,
    /// `levels[i]`: entries of level i not yet sealed into a node.
    levels: Vec<Vec<Entry>>,
    last_offset: Option<i64>,
}

impl TreeBuilder {
    pub fn new(fanout: usize) -> TreeBuilder {
        assert!(fanout >= 2, "fan-out must be at least 2");
        TreeBuilder {
            fanout,
            levels: vec![Vec::new()],
            last_offset: None,
        }
    }

    /// Reopens a finished tree for appending: the right spine is unsealed
    /// again, which is exactly the builder's state before `finish`.
    ///
    /// A spine node was sealed eagerly (and stays sealed) exactly when its
    /// subtree is complete: it is full and so is every node down its right
    /// edge. Nodes sealed by `finish` always have an incomplete right edge.
    pub fn reopen<S: NodeStore + ?Sized>(
        root: Option<&TreeRoot>,
        fanout: usize,
        store: &mut S,
    ) -> std::result::Result<TreeBuilder, S::Error> {
        let mut b = TreeBuilder::new(fanout);
        let Some(root) = root else { return Ok(b) };
        b.last_offset = Some(root.summary.last_offset);
        // The right spine, top-down, with the entry that points at each node.
        let mut spine = vec![(
            Entry {
                id: root.id,
                summary: root.summary,
                gaps: vec![],
            },
            store.get_node(&root.id)?,
        )];
        if spine[0].1.level != root.level {
            return Err(FormatError::malformed(
                "tree node",
                "root level does not match the manifest",
            )
            .into());
        }
        while let Some((_, node)) = spine.last()
            && node.level > 0
        {
            let last = node.entries.last().expect("non-empty node").clone();
            let child = store.get_node(&last.id)?;
            if child.level + 1 != node.level {
                return Err(FormatError::malformed(
                    "tree node",
                    "child level is not one below its parent",
                )
                .into());
            }
            spine.push((last, child));
        }
        let mut complete = vec![false; spine.len()];
        let mut below = true;
        for (i, (_, node)) in spine.iter().enumerate().rev() {
            below = below && node.entries.len() == fanout;
            complete[i] = below;
        }
        b.levels = vec![Vec::new(); root.level as usize + 2];
        for (i, (entry, mut node)) in spine.into_iter().enumerate() {
            let level = node.level as usize;
            if complete[i] {
                b.levels[level + 1].push(entry);
                break;
            }
            if level > 0 {
                node.entries.pop();
            }
            b.levels[level] = node.entries;
        }
        Ok(b)
    }

    pub fn last_offset(&self) -> Option<i64> {
        self.last_offset
    }

    /// Appends the entry of a data chunk. Its offsets must follow the tree's.
    pub fn push_leaf<S: NodeStore + ?Sized>(
        &mut self,
        entry: Entry,
        store: &mut S,
    ) -> std::result::Result<(), S::Error> {
        if let Some(last) = self.last_offset
            && entry.summary.first_offset <= last
        {
            return Err(FormatError::Encode {
                what: "tree",
                detail: format!(
                    "leaf starting at offset {} does not follow {last}",
                    entry.summary.first_offset
                ),
            }
            .into());
        }
        self.last_offset = Some(entry.summary.last_offset);
        self.push(0, entry, store)
    }

    fn push<S: NodeStore + ?Sized>(
        &mut self,
        level: usize,
        entry: Entry,
        store: &mut S,
    ) -> std::result::Result<(), S::Error> {
        if self.levels.len() <= level {
            self.levels.resize(level + 1, Vec::new());
        }
        self.levels[level].push(entry);
        if self.levels[level].len() == self.fanout {
            let entries = std::mem::take(&mut self.levels[level]);
            let e = seal(level, entries, store)?;
            self.push(level + 1, e, store)?;
        }
        Ok(())
    }

    /// Seals the right spine and returns the root (`None` for an empty tree).
    pub fn finish<S: NodeStore + ?Sized>(
        mut self,
        store: &mut S,
    ) -> std::result::Result<Option<TreeRoot>, S::Error> {
        let mut level = 0;
        while level < self.levels.len() {
            let above_empty = self.levels[level + 1..].iter().all(Vec::is_empty);
            let entries = std::mem::take(&mut self.levels[level]);
            if entries.is_empty() {
                level += 1;
                continue;
            }
            if above_empty {
                if level > 0 && entries.len() == 1 {
                    // The single child is the root.
                    let e = &entries[0];
                    return Ok(Some(TreeRoot {
                        id: e.id,
                        level: level as u8 - 1,
                        summary: e.summary,
                    }));
                }
                let node = TreeNode {
                    level: level as u8,
                    entries,
                };
                let summary = node.summary();
                let id = store.put_node(&node)?;
                return Ok(Some(TreeRoot {
                    id,
                    level: level as u8,
                    summary,
                }));
            }
            let e = seal(level, entries, store)?;
            self.push(level + 1, e, store)?;
            level += 1;
        }
        Ok(None)
    }
}

fn seal<S: NodeStore + ?Sized>(
    level: usize,
    entries: Vec<Entry>,
    store: &mut S,
) -> std::result::Result<Entry, S::Error> {
    let node = TreeNode {
        level: level as u8,
        entries,
    };
    let summary = node.summary();
    let id = store.put_node(&node)?;
    Ok(Entry {
        id,
        summary,
        gaps: vec![],
    })
}

/// Visits, in offset order, every data chunk entry whose subtree `keep`
/// accepts. `keep` sees each summary on the way down, so whole subtrees
/// outside an offset range or time window are skipped without being read.
pub fn walk_leaves<S: NodeStore + ?Sized>(
    root: &TreeRoot,
    store: &mut S,
    keep: &mut dyn FnMut(&Summary) -> bool,
    visit: &mut dyn FnMut(&Entry) -> std::result::Result<(), S::Error>,
) -> std::result::Result<(), S::Error> {
    if !keep(&root.summary) {
        return Ok(());
    }
    walk(root.id, root.level, store, keep, visit)
}

fn walk<S: NodeStore + ?Sized>(
    id: ChunkId,
    level: u8,
    store: &mut S,
    keep: &mut dyn FnMut(&Summary) -> bool,
    visit: &mut dyn FnMut(&Entry) -> std::result::Result<(), S::Error>,
) -> std::result::Result<(), S::Error> {
    let node = store.get_node(&id)?;
    if node.level != level {
        return Err(FormatError::malformed("tree node", "level does not match its parent").into());
    }
    for e in &node.entries {
        if !keep(&e.summary) {
            continue;
        }
        if level == 0 {
            visit(e)?;
        } else {
            walk(e.id, level - 1, store, keep, visit)?;
        }
    }
    Ok(())
}

/// Finds the data chunk entry holding `offset`, or the first one after it.
pub fn seek_offset<S: NodeStore + ?Sized>(
    root: &TreeRoot,
    offset: i64,
    store: &mut S,
) -> std::result::Result<Option<Entry>, S::Error> {
    if root.summary.last_offset < offset {
        return Ok(None);
    }
    let (mut id, mut level) = (root.id, root.level);
    loop {
        let node = store.get_node(&id)?;
        if node.level != level {
            return Err(
                FormatError::malformed("tree node", "level does not match its parent").into(),
            );
        }
        let Some(e) = node
            .entries
            .into_iter()
            .find(|e| e.summary.last_offset >= offset)
        else {
            return Ok(None);
        };
        if level == 0 {
            return Ok(Some(e));
        }
        id = e.id;
        level -= 1;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Nodes in memory, named by the BLAKE3 of their encoding.
    #[derive(Default)]
    pub struct MemStore {
        pub nodes: HashMap<ChunkId, Vec<u8>>,
        pub puts: usize,
    }

    impl NodeStore for MemStore {
        type Error = FormatError;
        fn put_node(&mut self, node: &TreeNode) -> Result<ChunkId> {
            let bytes = node.encode();
            let id = ChunkId(*blake3::hash(&bytes).as_bytes());
            self.puts += 1;
            self.nodes.insert(id, bytes);
            Ok(id)
        }
        fn get_node(&mut self, id: &ChunkId) -> Result<TreeNode> {
            TreeNode::decode(self.nodes.get(id).expect("node present"))
        }
    }

    fn leaf(i: i64) -> Entry {
        // Leaf i covers offsets 10i .. 10i+7 with one gap, timestamps 1000+i.
        Entry {
            id: ChunkId(*blake3::hash(&i.to_le_bytes()).as_bytes()),
            summary: Summary {
                first_offset: 10 * i,
                last_offset: 10 * i + 7,
                records: 5,
                bytes: 100,
                min_ts: 1000 + i,
                max_ts: 1000 + 2 * i,
            },
            gaps: vec![Gap { index: 2, skip: 3 }],
        }
    }

    fn build(
        leaves: std::ops::Range<i64>,
        split: &[i64],
        fanout: usize,
        store: &mut MemStore,
    ) -> Option<TreeRoot> {
        let mut root = None;
        let mut start = leaves.start;
        for &end in split.iter().chain(std::iter::once(&leaves.end)) {
            let mut b = TreeBuilder::reopen(root.as_ref(), fanout, store).unwrap();
            for i in start..end {
                b.push_leaf(leaf(i), store).unwrap();
            }
            root = b.finish(store).unwrap();
            start = end;
        }
        root
    }

    #[test]
    fn appending_gives_the_same_tree_as_building_at_once() {
        for fanout in [2, 3, 4, 8] {
            for n in 0..70 {
                let mut s1 = MemStore::default();
                let one = build(0..n, &[], fanout, &mut s1);
                for mut split in [
                    vec![n / 2],
                    vec![1.min(n), n / 3, (2 * n) / 3],
                    (0..n).collect::<Vec<_>>(),
                ] {
                    split.sort();
                    let mut s2 = MemStore::default();
                    let many = build(0..n, &split, fanout, &mut s2);
                    assert_eq!(one, many, "fanout {fanout}, n {n}, split {split:?}");
                }
            }
        }
    }

    #[test]
    fn appending_rewrites_only_the_right_spine() {
        let mut s = MemStore::default();
        let fanout = 4;
        let root = build(0..1000, &[], fanout, &mut s);
        let before = s.puts;
        let mut b = TreeBuilder::reopen(root.as_ref(), fanout, &mut s).unwrap();
        b.push_leaf(leaf(1000), &mut s).unwrap();
        b.finish(&mut s).unwrap();
        let depth = (1000f64).log(fanout as f64).ceil() as usize + 1;
        assert!(
            s.puts - before <= depth,
            "{} nodes rewritten for one leaf",
            s.puts - before
        );
    }

    #[test]
    fn root_summary_and_walks_agree() {
        let mut s = MemStore::default();
        let root = build(0..300, &[17, 200], 5, &mut s).unwrap();
        assert_eq!(root.summary.records, 300 * 5);
        assert_eq!(root.summary.first_offset, 0);
        assert_eq!(root.summary.last_offset, 2997);
        let mut seen = Vec::new();
        walk_leaves(&root, &mut s, &mut |_| true, &mut |e| {
            seen.push(e.summary.first_offset / 10);
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, (0..300).collect::<Vec<_>>());
    }

    #[test]
    fn seek_by_offset_and_time() {
        let mut s = MemStore::default();
        let root = build(0..300, &[], 4, &mut s).unwrap();
        assert_eq!(
            seek_offset(&root, 1234, &mut s).unwrap().unwrap(),
            leaf(123)
        );
        // 1238 and 1239 fall between leaves 123 and 124: the next leaf is found.
        assert_eq!(
            seek_offset(&root, 1238, &mut s).unwrap().unwrap(),
            leaf(124)
        );
        assert_eq!(seek_offset(&root, 5000, &mut s).unwrap(), None);
        // Leaves whose timestamps [1000+i, 1000+2i] meet [1100, 1150]: i in 50..=150.
        let mut nodes_read = 0usize;
        let mut seen = Vec::new();
        let mut keep = |sm: &Summary| {
            nodes_read += 1;
            sm.overlaps_time(Some(1100), Some(1150))
        };
        walk_leaves(&root, &mut s, &mut keep, &mut |e| {
            seen.push(e.summary.first_offset / 10);
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, (50..=150).collect::<Vec<_>>());
    }

    #[test]
    fn leaf_offsets_follow_gaps() {
        let l = leaf(0).leaf_stats();
        assert_eq!(l.offsets().collect::<Vec<_>>(), vec![0, 1, 5, 6, 7]);
    }

    #[test]
    fn inconsistent_nodes_are_rejected() {
        let node = TreeNode {
            level: 0,
            entries: vec![leaf(0), leaf(1)],
        };
        assert_eq!(TreeNode::decode(&node.encode()).unwrap(), node);
        let mut bad = node.clone();
        bad.entries[0].gaps.clear();
        assert!(TreeNode::decode(&bad.encode()).is_err());
        let swapped = TreeNode {
            level: 0,
            entries: vec![leaf(1), leaf(0)],
        };
        assert!(TreeNode::decode(&swapped.encode()).is_err());
    }
}
