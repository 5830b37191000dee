//! A vault damaged one byte at a time: every read either fails with an
//! error or returns exactly the data that was written. Never wrong data.
//! (No Kafka needed: the vault is filled through the engine, on the
//! backend under test, `KVAULT_TEST_BACKEND`.)

use crate::common;

use std::sync::Arc;

use common::{Backend, all_objects, init_repo, open_repo, overwrite};

use vault::pack_writer::PackWriter;
use vault::repository::Repository;
use vault::storage::{Dir, Storage};
use vault_format::chunker::{Gear, RecordChunker};
use vault_format::manifest::{
    PartitionSnapshot, Selection, SnapshotManifest, SnapshotStats, TopicSnapshot,
};
use vault_format::object::ObjectKind;
use vault_format::record::{Record, RecordValue, TimestampType, decode_records};
use vault_format::tree::{TreeBuilder, walk_leaves};

const PASS: &[u8] = b"tamper test passphrase";

fn values() -> Vec<Vec<u8>> {
    (0..3000u32)
        .map(|i| format!("value {i} {}", i.wrapping_mul(2_654_435_761)).into_bytes())
        .collect()
}

/// Creates a vault holding one snapshot of one partition with `values()`;
/// returns its storage.
fn fill(dir: &tempfile::TempDir) -> Arc<dyn Storage> {
    let storage = Backend::current().create_storage(dir.path());
    let mut cfg = vault_format::config::VaultConfig::new(Default::default(), 0);
    cfg.chunker = vault_format::chunker::ChunkerParams {
        min: 1024,
        avg: 4096,
        max: 16384,
    };
    cfg.tree_fanout = 4;
    // Small enough for several packs: record streams compress these to
    // about a fifth.
    cfg.pack_target_size = 6 << 10;
    let cache = tempfile::tempdir().unwrap();
    let repo = init_repo(storage.clone(), PASS, Some(cfg), cache.path());
    let gear = Gear::new(&repo.keys().chunker, repo.config().chunker).unwrap();
    let mut w = PackWriter::new(&repo).unwrap();
    let mut tree = TreeBuilder::new(repo.config().tree_fanout as usize);
    let mut chunker = RecordChunker::new(&gear, None);
    let mut cut = Vec::new();
    let vals = values();
    for (i, v) in (0i64..).zip(vals.iter()) {
        let r = Record {
            timestamp: i,
            timestamp_type: TimestampType::CreateTime,
            key: None,
            value: RecordValue::Inline(v),
            headers: vec![],
        };
        chunker.push(&r, 2 * i, &mut cut).unwrap();
    }
    chunker.finish(&mut cut);
    for c in cut {
        let id = w.add(ObjectKind::DataChunk, &c.plaintext).unwrap();
        tree.push_leaf(c.stats.into_entry(id), &mut w).unwrap();
    }
    let root = tree.finish(&mut w).unwrap();
    w.flush().unwrap();
    let manifest = SnapshotManifest {
        time_ms: 1,
        parent: None,
        source: "c".into(),
        source_cluster_id: "c".into(),
        selection: Selection::default(),
        hostname: "h".into(),
        tags: vec![],
        read_committed: true,
        topics: vec![TopicSnapshot {
            name: "t".into(),
            topic_id: Some(vault_format::TopicId([3; 16])),
            replication_factor: 1,
            configs: vec![],
            partitions: vec![PartitionSnapshot {
                partition: 0,
                log_start_offset: 0,
                end_offset: 6000,
                root,
            }],
        }],
        groups: vec![],
        estate: None,
        stats: SnapshotStats::default(),
    };
    repo.write_snapshot(&manifest).unwrap();
    storage
}

/// Reads everything back through a fresh index cache.
fn read_all(storage: &Arc<dyn Storage>) -> vault::Result<Vec<Vec<u8>>> {
    let cache = tempfile::tempdir().unwrap();
    let repo = open_repo(Arc::clone(storage), PASS, cache.path())?;
    let mut out = Vec::new();
    for id in repo.snapshot_ids()? {
        let m = repo.read_snapshot(&id)?;
        let root = m.topics[0].partitions[0].root.expect("root");
        let mut reader = vault::repository::indexed::TreeReader { repo: &repo };
        let mut chunks = Vec::new();
        walk_leaves(&root, &mut reader, &mut |_| true, &mut |e| {
            chunks.push(e.clone());
            Ok(())
        })?;
        for e in chunks {
            let plain = repo.read_chunk(&e.id, ObjectKind::DataChunk)?;
            for r in decode_records(&plain).map_err(|e| vault::Error::format("decoding", e))? {
                match r.value {
                    RecordValue::Inline(v) => out.push(v.to_vec()),
                    _ => panic!("unexpected value form"),
                }
            }
        }
    }
    Ok(out)
}

#[test]
fn the_vault_reads_back_what_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let storage = fill(&dir);
    assert_eq!(read_all(&storage).unwrap(), values());
    // Several packs, index objects and tree levels, or the test proves little.
    let packs = storage.list(Dir::Packs).unwrap().len();
    assert!(packs >= 3, "only {packs} packs");
}

/// Restore's lazy leaf cursor walks exactly what the tree walk visits,
/// whatever the filter (a tree of fan-out 4 has several levels here).
#[test]
fn the_leaf_cursor_walks_like_the_tree_walk() {
    let dir = tempfile::tempdir().unwrap();
    let storage = fill(&dir);
    let cache = tempfile::tempdir().unwrap();
    let repo = open_repo(storage, PASS, cache.path()).unwrap();
    let id = repo.snapshot_ids().unwrap()[0];
    let root = repo.read_snapshot(&id).unwrap().topics[0].partitions[0]
        .root
        .unwrap();
    assert!(root.level >= 1, "a tree of more than one level");
    for (from, min_ts_below) in [(0, i64::MAX), (2500, i64::MAX), (0, 1000), (5998, 3000)] {
        let keep =
            move |s: &vault_format::tree::Summary| s.last_offset >= from && s.min_ts < min_ts_below;
        let walked = vault::reader::leaves(&repo, &root, &mut { keep }).unwrap();
        let cursor: Vec<_> = vault::reader::LeafCursor::new(&repo, root, Box::new(keep))
            .collect::<vault::Result<_>>()
            .unwrap();
        assert_eq!(cursor, walked, "from {from}, min_ts below {min_ts_below}");
        assert!(from > 5000 || !cursor.is_empty());
    }
}

#[test]
fn any_flipped_byte_fails_loudly_and_never_returns_wrong_data() {
    let dir = tempfile::tempdir().unwrap();
    let storage = fill(&dir);
    let good = values();
    let mut checked = 0;
    // Every byte of small objects is a request per flip on object
    // storage: there, a spread of positions in every object is enough.
    let every_byte_below = if Backend::current().is_local() {
        512
    } else {
        128
    };
    for f in all_objects(storage.as_ref()) {
        let orig = storage.get(&f).unwrap();
        // Every byte of small files; a spread of positions in large ones,
        // always including the first and last 64 bytes.
        let positions: Vec<usize> = if orig.len() <= every_byte_below {
            (0..orig.len()).collect()
        } else {
            let mut p: Vec<usize> = (0..64).chain(orig.len() - 64..orig.len()).collect();
            p.extend((64..orig.len() - 64).step_by(orig.len() / 97 + 1));
            p
        };
        for pos in positions {
            let mut bad = orig.clone();
            bad[pos] ^= 0x04;
            overwrite(storage.as_ref(), &f, &bad);
            match read_all(&storage) {
                Err(_) => {}
                Ok(v) => assert_eq!(v, good, "flip at {f} byte {pos} returned wrong data"),
            }
            checked += 1;
        }
        overwrite(storage.as_ref(), &f, &orig);
    }
    assert!(checked > 500);
}

#[test]
fn a_swapped_or_truncated_pack_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let storage = fill(&dir);
    let s = storage.as_ref();
    let packs: Vec<_> = s
        .list(Dir::Packs)
        .unwrap()
        .into_iter()
        .map(|l| vault::storage::ObjectName::new(Dir::Packs, l.name))
        .collect();
    let (a, b) = (&packs[0], &packs[1]);
    let (ba, bb) = (s.get(a).unwrap(), s.get(b).unwrap());
    overwrite(s, a, &bb);
    overwrite(s, b, &ba);
    assert!(read_all(&storage).is_err(), "swapped packs were accepted");
    overwrite(s, a, &ba);
    overwrite(s, b, &bb);
    overwrite(s, a, &ba[..ba.len() / 2]);
    assert!(read_all(&storage).is_err(), "a truncated pack was accepted");
}

#[test]
fn a_wrong_passphrase_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let storage = fill(&dir);
    let err = Repository::open(storage)
        .unwrap()
        .unlock(b"nope")
        .err()
        .unwrap();
    assert!(err.to_string().contains("wrong passphrase"), "{err}");
}

#[test]
fn a_newer_format_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let storage = fill(&dir);
    let cfg = vault::storage::ObjectName::config();
    let mut b = storage.get(&cfg).unwrap();
    b[5] = 2;
    overwrite(storage.as_ref(), &cfg, &b);
    let err = Repository::open(storage).err().unwrap();
    assert!(err.to_string().contains("format version 2"), "{err}");
}
