//! Building a tree from leaves, and appending to one: only the right
//! spine is rewritten, every full subtree is shared.

use super::node::{Entry, NodeStore, TreeNode, TreeRoot};
use crate::error::FormatError;

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
