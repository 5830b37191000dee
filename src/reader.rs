//! Reading records back out of a snapshot tree, in offset order, with
//! large values reassembled from their value chunks.

use vault_format::ChunkId;
use vault_format::object::ObjectKind;
use vault_format::record::{
    ExternalValue, Record, RecordHeader, RecordIter, RecordValue, TimestampType,
};
use vault_format::tree::{Entry, Summary, TreeRoot, walk_leaves};

use crate::error::{Error, FormatContext, Result};
use crate::repository::indexed::TreeReader;
use crate::repository::{Indexed, Repository};

/// A record as restore produces it: owned, with its source offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    pub offset: i64,
    pub timestamp: i64,
    pub timestamp_type: TimestampType,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// Walks a tree's leaves one at a time, in offset order, holding one node
/// per level: memory stays flat however many leaves the tree has (a
/// million 1 KiB chunks are 100 MiB of entries, a cursor a few nodes).
pub struct LeafCursor<'r> {
    repo: &'r Repository<Indexed>,
    keep: Box<dyn Fn(&Summary) -> bool + Send + 'r>,
    root: Option<TreeRoot>,
    /// Each level's node being walked and the index of its next entry.
    stack: Vec<(vault_format::tree::TreeNode, usize)>,
}

impl<'r> LeafCursor<'r> {
    /// The leaves of `root` whose summaries `keep` accepts (a subtree
    /// whose summary it rejects is not read).
    pub fn new(
        repo: &'r Repository<Indexed>,
        root: TreeRoot,
        keep: Box<dyn Fn(&Summary) -> bool + Send + 'r>,
    ) -> LeafCursor<'r> {
        LeafCursor {
            repo,
            keep,
            root: Some(root),
            stack: Vec::new(),
        }
    }

    fn push(&mut self, id: &ChunkId, level: u8) -> Result<()> {
        let node = self.repo.read_tree_node(id)?;
        if node.level != level {
            return Err(Error::format(
                format!("walking tree node {id}"),
                vault_format::FormatError::malformed(
                    "tree node",
                    "level does not match its parent",
                ),
            ));
        }
        self.stack.push((node, 0));
        Ok(())
    }
}

impl Iterator for LeafCursor<'_> {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        if let Some(root) = self.root.take()
            && (self.keep)(&root.summary)
            && let Err(e) = self.push(&root.id, root.level)
        {
            return Some(Err(e));
        }
        loop {
            let (node, next) = self.stack.last_mut()?;
            let Some(e) = node.entries.get(*next).cloned() else {
                self.stack.pop();
                continue;
            };
            *next += 1;
            if !(self.keep)(&e.summary) {
                continue;
            }
            let level = node.level;
            if level == 0 {
                return Some(Ok(e));
            }
            if let Err(err) = self.push(&e.id, level - 1) {
                self.stack.clear();
                return Some(Err(err));
            }
        }
    }
}

/// The data chunk entries of a tree that `keep` accepts, in offset order.
pub fn leaves(
    repo: &Repository<Indexed>,
    root: &TreeRoot,
    keep: &mut dyn FnMut(&Summary) -> bool,
) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    walk_leaves(root, &mut TreeReader { repo }, keep, &mut |e| {
        out.push(e.clone());
        Ok(())
    })?;
    Ok(out)
}

/// Decodes one data chunk into records with their offsets.
pub(crate) fn chunk_records(repo: &Repository<Indexed>, leaf: &Entry) -> Result<Vec<StoredRecord>> {
    let plain = repo.read_chunk(&leaf.id, ObjectKind::DataChunk)?;
    let stats = leaf.leaf_stats();
    let mut offsets = stats.offsets();
    let mut out = Vec::with_capacity(stats.records as usize);
    for r in RecordIter::new(&plain) {
        let r = r.ctx(|| format!("decoding data chunk {}", leaf.id))?;
        let offset = offsets.next().ok_or_else(|| count_mismatch(&leaf.id))?;
        out.push(own(repo, r, offset)?);
    }
    if out.len() as u64 != stats.records {
        return Err(count_mismatch(&leaf.id));
    }
    Ok(out)
}

pub(crate) fn count_mismatch(id: &ChunkId) -> Error {
    Error::format(
        format!("decoding data chunk {id}"),
        vault_format::FormatError::malformed(
            "data chunk",
            "record count differs from its tree entry",
        ),
    )
}

/// Reassembles a value kept in value chunks, checking each part's length.
pub(crate) fn external_value(repo: &Repository<Indexed>, e: &ExternalValue) -> Result<Vec<u8>> {
    let mut v = Vec::with_capacity(e.len as usize);
    for (id, len) in &e.parts {
        let part = repo.read_chunk(id, ObjectKind::ValueChunk)?;
        if part.len() != *len as usize {
            return Err(Error::format(
                format!("reading value chunk {id}"),
                vault_format::FormatError::malformed(
                    "value chunk",
                    "length differs from the record's",
                ),
            ));
        }
        v.extend_from_slice(&part);
    }
    Ok(v)
}

fn own(repo: &Repository<Indexed>, r: Record<'_>, offset: i64) -> Result<StoredRecord> {
    let value = match r.value {
        RecordValue::Null => None,
        RecordValue::Inline(v) => Some(v.to_vec()),
        RecordValue::External(e) => Some(external_value(repo, &e)?),
    };
    Ok(StoredRecord {
        offset,
        timestamp: r.timestamp,
        timestamp_type: r.timestamp_type,
        key: r.key.map(<[u8]>::to_vec),
        value,
        headers: r
            .headers
            .into_iter()
            .map(|RecordHeader { key, value }| (key.to_vec(), value.map(<[u8]>::to_vec)))
            .collect(),
    })
}

/// Every record of a partition's tree (tests and small tools; restore
/// streams chunk by chunk instead).
pub fn all_records(repo: &Repository<Indexed>, root: &TreeRoot) -> Result<Vec<StoredRecord>> {
    let mut out = Vec::new();
    for leaf in leaves(repo, root, &mut |_| true)? {
        out.extend(chunk_records(repo, &leaf)?);
    }
    Ok(out)
}
