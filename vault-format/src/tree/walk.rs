//! Reading a tree: every leaf in offset order, or the leaf holding an offset,
//! skipping subtrees by their summaries.

use super::node::{Entry, NodeStore, Summary, TreeRoot};
use crate::error::FormatError;
use crate::id::ChunkId;

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
