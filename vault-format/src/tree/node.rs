//! A tree's nodes and entries, their encoding, and the store they are
//! kept in: what the builder writes and the walk reads.

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
                // Decoding bounds every skip by the entry's offset span.
                next += self.gaps[gi].skip.cast_signed();
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
                .varint(s.last_offset.wrapping_sub(s.first_offset).cast_unsigned())
                .varint(s.bytes)
                .zigzag(s.min_ts)
                .varint(s.max_ts.wrapping_sub(s.min_ts).cast_unsigned());
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
