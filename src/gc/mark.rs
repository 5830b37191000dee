//! Marking: every chunk a set of snapshot trees reaches, in the index
//! cache's on-disk mark set. Trees share subtrees across snapshots, so a
//! node already marked is not walked again.

use vault_format::ChunkId;
use vault_format::object::ObjectKind;
use vault_format::record::{RecordIter, RecordValue};
use vault_format::tree::{Entry, TreeRoot};

use crate::error::{Error, FormatContext, Result};
use crate::repository::{Indexed, Repository};

#[derive(Clone, Debug, Default)]
pub struct MarkStats {
    pub nodes: u64,
    pub data_chunks: u64,
    pub value_chunks: u64,
    /// Shows the count on a terminal while marking runs.
    pub progress: Option<indicatif::ProgressBar>,
}

impl MarkStats {
    pub fn total(&self) -> u64 {
        self.nodes + self.data_chunks + self.value_chunks
    }

    fn tick(&self) {
        if let Some(pb) = &self.progress {
            let n = self.total();
            if n.is_multiple_of(4096) {
                pb.set_message(format!("gc: marking, {n} chunks in use so far"));
            }
        }
    }
}

/// Marks everything `root` reaches. Fails at the first unreadable chunk:
/// gc must never sweep on the strength of a partial mark.
pub(crate) fn mark_tree(
    repo: &Repository<Indexed>,
    root: &TreeRoot,
    stats: &mut MarkStats,
) -> Result<()> {
    walk(repo, root.id, root.level, stats)
}

fn walk(repo: &Repository<Indexed>, id: ChunkId, level: u8, stats: &mut MarkStats) -> Result<()> {
    if !repo.index_cache().mark(&id)? {
        return Ok(());
    }
    stats.nodes += 1;
    stats.tick();
    let node = repo.read_tree_node(&id)?;
    if node.level != level {
        return Err(Error::format(
            format!("walking tree node {id}"),
            vault_format::FormatError::malformed("tree node", "level does not match its parent"),
        ));
    }
    for e in &node.entries {
        if level == 0 {
            if repo.index_cache().mark(&e.id)? {
                stats.data_chunks += 1;
                stats.tick();
                for part in value_chunks(repo, e)? {
                    if repo.index_cache().mark(&part)? {
                        stats.value_chunks += 1;
                    }
                }
            }
        } else {
            walk(repo, e.id, level - 1, stats)?;
        }
    }
    Ok(())
}

/// The value chunks a data chunk's records refer to. A record's value goes
/// to value chunks only when longer than the external threshold, so a chunk
/// whose records carry fewer payload bytes than that cannot refer to any,
/// and is not read.
pub(crate) fn value_chunks(repo: &Repository<Indexed>, leaf: &Entry) -> Result<Vec<ChunkId>> {
    let threshold = repo.config().chunker.external_value_threshold() as u64;
    if leaf.summary.bytes <= threshold {
        return Ok(Vec::new());
    }
    let plain = repo.read_chunk(&leaf.id, ObjectKind::DataChunk)?;
    let mut out = Vec::new();
    for r in RecordIter::new(&plain) {
        let r = r.ctx(|| format!("decoding data chunk {}", leaf.id))?;
        if let RecordValue::External(e) = r.value {
            out.extend(e.parts.iter().map(|(id, _)| *id));
        }
    }
    Ok(out)
}
