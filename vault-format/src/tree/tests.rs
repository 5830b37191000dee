use super::*;
use crate::error::{FormatError, Result};
use crate::id::ChunkId;
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
    // The levels a tree of 1000 leaves has, plus the leaf level.
    let mut depth = 1;
    let mut width = 1000usize;
    while width > 1 {
        width = width.div_ceil(fanout);
        depth += 1;
    }
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
