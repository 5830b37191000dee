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

mod builder;
mod node;
mod walk;

pub use builder::TreeBuilder;
pub use node::{
    DEFAULT_FANOUT, Entry, Gap, LeafStats, MAX_LEVEL, NodeStore, Summary, TreeNode, TreeRoot,
};
pub use walk::{seek_offset, walk_leaves};

#[cfg(test)]
pub(crate) mod tests;
