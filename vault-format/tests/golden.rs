//! Golden vectors: fixed inputs encoded by this crate must give exactly the
//! bytes in `tests/vectors/v3.txt`, and those bytes must decode back. The
//! vectors are the executable half of `docs/format.md`.
//!
//! After a deliberate format change: `KVAULT_UPDATE_GOLDEN=1 cargo test -p vault-format --test golden`,
//! then review the diff of v3.txt together with the spec. Bytes an older
//! format wrote stay here as constants that must keep decoding.

use std::collections::BTreeMap;

use vault_format::chunker::{ChunkerParams, Gear, RecordChunker};
use vault_format::compress::{Compression, Compressor, decompress_framed};
use vault_format::config::VaultConfig;
use vault_format::estate::{
    AclEntry, BrokerConfigs, ClusterEstate, Part, QuotaEntry, QuotaValue, ScramUser,
};
use vault_format::id::hex_encode;
use vault_format::index::IndexObject;
use vault_format::keys::{KdfParams, KeyFile, MasterKey};
use vault_format::manifest::{
    GroupOffset, GroupSnapshot, PartitionSnapshot, Selection, SnapshotManifest, SnapshotStats,
    TopicSnapshot,
};
use vault_format::object::{ObjectKind, open_object, seal_object};
use vault_format::pack::{PackBuilder, open_blob, open_pack};
use vault_format::pin::RestorePin;
use vault_format::planes::RecordPlanes;
use vault_format::record::{Record, RecordHeader, RecordValue, TimestampType, decode_records};
use vault_format::run::{PlannedPartition, RunCommit, RunPart, RunPlan};
use vault_format::streams::{RecordStreams, join, split};
use vault_format::tree::{Gap, Summary, TreeNode, TreeRoot};
use vault_format::{ChunkId, ObjectId, PackId, TopicId, VaultId};

/// The body of [`manifest`] as format 1 wrote it (header version 1): no
/// source, selection or topic IDs.
const MANIFEST_V1_BODY: &str = "a0eee6cf8b010000000e736f757263652d636c757374657204686f737401056461696c790101066f726465727301010c726574656e74696f6e2e6d73022d310100c801d60101090909090909090909090909090909090909090909090909090909090909090900c801d401063cd00fe20f010762696c6c696e6708636f6e73756d657205456d70747901066f726465727300ce010000063cac02030c";

/// The body of [`manifest`] as format 2 wrote it (header version 2): no
/// cluster estate.
const MANIFEST_V2_BODY: &str = "a0eee6cf8b010000000e736f757263652d636c75737465720e736f757263652d636c757374657201066f7264657273000004686f737401056461696c790101066f7264657273010c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c01010c726574656e74696f6e2e6d73022d310100c801d60101090909090909090909090909090909090909090909090909090909090909090900c801d401063cd00fe20f010762696c6c696e6708636f6e73756d657205456d70747901066f726465727300ce010000063cac02030c";

/// [`run_plan`] as format 2 wrote it (header version 1): its template is a
/// version 2 manifest.
const RUN_PLAN_V1_BODY: &str = "076e696768746c79777777777777777777777777777777770068e5cf8b010000c601a0eee6cf8b010000000e736f757263652d636c75737465720e736f757263652d636c757374657201066f7264657273000004686f737401056461696c790101066f7264657273010c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c01010c726574656e74696f6e2e6d73022d310100c801d60101090909090909090909090909090909090909090909090909090909090909090900c801d401063cd00fe20f010762696c6c696e6708636f6e73756d657205456d70747901066f726465727300ce010000063cac02030c010001000a0180b0f1fb1c01306f72646572732f303a206f66667365747320302e2e3520776572652064656c6574656420627920726574656e74696f6e";

/// The crate's directory, looked up when the test runs: a test binary
/// built from another checkout of the same tree (CI and developers share
/// a target directory) must still read this checkout's files.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

fn vectors_path() -> std::path::PathBuf {
    manifest_dir().join("tests/vectors/v3.txt")
}

fn master() -> MasterKey {
    MasterKey([0x11; 32])
}
fn vault() -> VaultId {
    VaultId([0x22; 16])
}

fn record() -> Record<'static> {
    Record {
        timestamp: 1_700_000_000_123,
        timestamp_type: TimestampType::CreateTime,
        key: Some(b"order-17"),
        value: RecordValue::Inline(b"{\"amount\":42}"),
        headers: vec![
            RecordHeader {
                key: b"trace",
                value: Some(b"abc"),
            },
            RecordHeader {
                key: b"trace",
                value: None,
            },
        ],
    }
}

fn tombstone() -> Record<'static> {
    Record {
        timestamp: -1,
        timestamp_type: TimestampType::NotAvailable,
        key: Some(b""),
        value: RecordValue::Null,
        headers: vec![],
    }
}

fn node() -> TreeNode {
    TreeNode {
        level: 0,
        entries: vec![
            TreeNodeEntry::leaf(0x01, 100, 104, 4, vec![Gap { index: 2, skip: 1 }]),
            TreeNodeEntry::leaf(0x02, 105, 106, 2, vec![]),
        ],
    }
}

struct TreeNodeEntry;
impl TreeNodeEntry {
    fn leaf(
        b: u8,
        first: i64,
        last: i64,
        records: u64,
        gaps: Vec<Gap>,
    ) -> vault_format::tree::Entry {
        vault_format::tree::Entry {
            id: ChunkId([b; 32]),
            summary: Summary {
                first_offset: first,
                last_offset: last,
                records,
                bytes: 10 * records,
                min_ts: 1000,
                max_ts: 1009,
            },
            gaps,
        }
    }
}

fn manifest() -> SnapshotManifest {
    SnapshotManifest {
        time_ms: 1_700_000_100_000,
        parent: None,
        source: "source-cluster".into(),
        source_cluster_id: "source-cluster".into(),
        selection: Selection {
            topics: vec!["orders".into()],
            regex: None,
            exclude: None,
        },
        hostname: "host".into(),
        tags: vec!["daily".into()],
        read_committed: true,
        topics: vec![TopicSnapshot {
            name: "orders".into(),
            topic_id: Some(TopicId([0x0c; 16])),
            replication_factor: 1,
            configs: vec![("retention.ms".into(), "-1".into())],
            partitions: vec![PartitionSnapshot {
                partition: 0,
                log_start_offset: 100,
                end_offset: 107,
                root: Some(TreeRoot {
                    id: ChunkId([0x09; 32]),
                    level: 0,
                    summary: node().summary(),
                }),
            }],
        }],
        groups: vec![GroupSnapshot {
            group_id: "billing".into(),
            protocol_type: "consumer".into(),
            state: "Empty".into(),
            offsets: vec![GroupOffset {
                topic: "orders".into(),
                partition: 0,
                offset: 103,
                metadata: None,
                leader_epoch: None,
            }],
        }],
        estate: Some(estate()),
        stats: SnapshotStats {
            records_read: 6,
            bytes_read: 60,
            bytes_added: 300,
            chunks_added: 3,
            duration_ms: 12,
        },
    }
}

/// A cluster estate with every part read (`estate.not_read.body` is one
/// with none).
fn estate() -> ClusterEstate {
    ClusterEstate {
        acls: Part::Read(vec![
            AclEntry {
                resource_type: 2,
                resource_name: "orders".into(),
                pattern_type: 3,
                principal: "User:billing".into(),
                host: "*".into(),
                operation: 3,
                permission: 3,
            },
            AclEntry {
                resource_type: 2,
                resource_name: "orders-".into(),
                pattern_type: 4,
                principal: "User:audit".into(),
                host: "*".into(),
                operation: 8,
                permission: 2,
            },
        ]),
        quotas: Part::Read(vec![QuotaEntry {
            entity: vec![
                ("user".into(), Some("billing".into())),
                ("client-id".into(), None),
            ],
            values: vec![("producer_byte_rate".into(), QuotaValue(1048576.5))],
        }]),
        scram_users: Part::Read(vec![ScramUser {
            name: "billing".into(),
            credentials: vec![(1, 8192), (2, 4096)],
        }]),
        broker_configs: Part::Read(vec![
            BrokerConfigs {
                broker: None,
                entries: vec![("log.retention.ms".into(), Some("604800000".into()))],
            },
            BrokerConfigs {
                broker: Some(1),
                entries: vec![("listener.name.x.ssl.keystore.password".into(), None)],
            },
        ]),
    }
}

/// A distributed snapshot's plan, with [`manifest`] as its template.
fn run_plan() -> RunPlan {
    let template = manifest();
    let n: usize = template.topics.iter().map(|t| t.partitions.len()).sum();
    RunPlan {
        name: "nightly".into(),
        plan_id: [0x77; 16],
        created_ms: 1_700_000_000_000,
        template,
        partitions: (0..i64::try_from(n).unwrap())
            .map(|i| PlannedPartition {
                read_from: 10 * i,
                retention_gap: (i == 0).then_some((0, 5)),
            })
            .collect(),
        data_horizon_ms: Some(7_776_000_000),
        warnings: vec!["orders/0: offsets 0..5 were deleted by retention".into()],
    }
}

fn run_part() -> RunPart {
    RunPart {
        plan_id: [0x77; 16],
        index: 0,
        root: manifest().topics[0].partitions[0].root,
        log_start_offset: 7,
        deleted: vec![(5, 7)],
        records_read: 90,
        bytes_read: 9000,
        bytes_added: 4000,
        chunks_added: 3,
        started_ms: 1_700_000_000_100,
        finished_ms: 1_700_000_000_900,
        worker: "backup-host/4242".into(),
        topic_gone: None,
    }
}

/// A part of a partition whose topic was deleted while the run read it.
fn run_part_gone() -> RunPart {
    RunPart {
        index: 1,
        root: None,
        records_read: 0,
        bytes_read: 0,
        bytes_added: 0,
        chunks_added: 0,
        deleted: vec![],
        topic_gone: Some("topic orders was deleted during the run".into()),
        ..run_part()
    }
}

fn restore_pin() -> RestorePin {
    RestorePin {
        restore_id: "5d41402abc4b2a76b9719d911017c592".into(),
        snapshot: ObjectId([0x99; 32]),
        target_cluster: "dr-cluster-id".into(),
        target_topics: vec!["orders".into()],
        holder: "restore-host/77".into(),
        written_ms: 1_700_000_000_000,
        expires_ms: 1_701_209_600_000,
    }
}

fn run_commit() -> RunCommit {
    RunCommit {
        plan_id: [0x77; 16],
        snapshot: ObjectId([0x88; 32]),
    }
}

/// Every vector, by name. Values are lowercase hex.
fn compute() -> BTreeMap<&'static str, String> {
    let keys = master().sub_keys();
    let mut v = BTreeMap::new();
    v.insert("subkey.chunk_id", hex_encode(&keys.chunk_id));
    v.insert("subkey.chunker", hex_encode(&keys.chunker));
    v.insert("subkey.encryption", hex_encode(&keys.encryption));
    v.insert("subkey.object_id", hex_encode(&keys.object_id));
    v.insert("chunk_id.hello", keys.chunk_id(b"hello kafka").to_hex());
    v.insert(
        "aead_key.pack66",
        hex_encode(&keys.aead_key(b"pack", &[0x66; 16])),
    );

    let kf = KeyFile::wrap(
        vault(),
        &master(),
        b"golden passphrase",
        KdfParams {
            m_cost: 64,
            t_cost: 1,
            p_cost: 1,
        },
        [0x33; 32],
        [0x44; 12],
        1_700_000_000_000,
    )
    .unwrap();
    v.insert("keyfile", hex_encode(&kf.encode()));

    let mut frame = Vec::new();
    record().encode_into(&mut frame);
    tombstone().encode_into(&mut frame);
    v.insert("records.framed", hex_encode(&frame));
    let mut streams = RecordStreams::default();
    split(&frame, &mut streams).unwrap();
    let encoded = streams.to_bytes();
    v.insert("records.streams", hex_encode(&encoded));
    // The record_streams fuzz target's seed: the joined length, then the streams.
    let mut seed = u16::try_from(frame.len()).unwrap().to_le_bytes().to_vec();
    seed.extend_from_slice(&encoded);
    v.insert("records.streams.seed", hex_encode(&seed));
    let mut planes = RecordPlanes::default();
    vault_format::planes::split(&frame, &mut planes).unwrap();
    let encoded = planes.to_bytes();
    v.insert("records.planes", hex_encode(&encoded));
    // The record_planes fuzz target's seed: the joined length, then the
    // planes of the record twice and the tombstone, so that a key shares
    // a prefix with the one before it.
    let mut twice = Vec::new();
    record().encode_into(&mut twice);
    record().encode_into(&mut twice);
    tombstone().encode_into(&mut twice);
    vault_format::planes::split(&twice, &mut planes).unwrap();
    let mut seed = u16::try_from(twice.len()).unwrap().to_le_bytes().to_vec();
    seed.extend_from_slice(&planes.to_bytes());
    v.insert("records.planes.seed", hex_encode(&seed));

    let mut cfg = VaultConfig::new(vault(), 1_700_000_000_000);
    // The sizes a vault made before 256 KiB became the default holds; the
    // vector stays as it was written.
    cfg.chunker = ChunkerParams {
        min: 16 << 10,
        avg: 64 << 10,
        max: 256 << 10,
    };
    cfg.data_horizon_ms = Some(7_776_000_000);
    v.insert("config.body", hex_encode(&cfg.encode()));
    let sealed = seal_object(
        &keys,
        &vault(),
        ObjectKind::Config,
        b"config",
        &cfg.encode(),
        [0x55; 16],
        Compression(None),
    )
    .unwrap();
    v.insert("config.sealed", hex_encode(&sealed));

    let mut pb = PackBuilder::new(&keys, vault(), PackId([0x66; 16]), 1024);
    let mut raw = Compressor::new(Compression(None)).unwrap();
    pb.add(
        ObjectKind::DataChunk,
        keys.chunk_id(&frame),
        &frame,
        &mut raw,
    )
    .unwrap();
    let node_bytes = node().encode();
    pb.add(
        ObjectKind::TreeNode,
        keys.chunk_id(&node_bytes),
        &node_bytes,
        &mut raw,
    )
    .unwrap();
    let (pack, pack_bytes, entries) = pb.finish().unwrap();
    v.insert("pack", hex_encode(&pack_bytes));

    let index = IndexObject {
        packs: vec![(pack, entries)],
    };
    v.insert("index.body", hex_encode(&index.encode()));
    v.insert("tree.node", hex_encode(&node_bytes));
    v.insert("estate.body", hex_encode(&estate().encode()));
    v.insert(
        "estate.not_read.body",
        hex_encode(&ClusterEstate::not_read("not authorized").encode()),
    );
    v.insert("manifest.body", hex_encode(&manifest().encode()));
    v.insert(
        "manifest.object_id",
        keys.object_id(&manifest().encode()).to_hex(),
    );

    v.insert("run.plan.body", hex_encode(&run_plan().encode()));
    v.insert("run.part.body", hex_encode(&run_part().encode()));
    v.insert("run.commit.body", hex_encode(&run_commit().encode()));
    v.insert("run.part.gone.body", hex_encode(&run_part_gone().encode()));
    v.insert("restore.pin.body", hex_encode(&restore_pin().encode()));

    // Chunk boundaries for a fixed record stream with small sizes.
    let gear = Gear::new(
        &keys.chunker,
        ChunkerParams {
            min: 256,
            avg: 1024,
            max: 4096,
        },
    )
    .unwrap();
    let mut ch = RecordChunker::new(&gear, None);
    let mut out = Vec::new();
    for i in 0..400u32 {
        let value = format!("value {i} {}", i.wrapping_mul(2_654_435_761));
        let r = Record {
            timestamp: i64::from(i),
            timestamp_type: TimestampType::CreateTime,
            key: None,
            value: RecordValue::Inline(value.as_bytes()),
            headers: vec![],
        };
        ch.push(&r, i64::from(i), &mut out).unwrap();
    }
    ch.finish(&mut out);
    let cuts: Vec<String> = out.iter().map(|c| c.stats.records.to_string()).collect();
    v.insert(
        "chunker.records_per_chunk",
        hex_encode(cuts.join(",").as_bytes()),
    );
    v
}

fn load() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(vectors_path()).unwrap_or_default();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (k, v) = l.split_once(" = ").expect("`name = hex` lines");
            (k.to_string(), v.to_string())
        })
        .collect()
}

#[test]
fn encoders_match_the_golden_vectors() {
    let now = compute();
    if std::env::var_os("KVAULT_UPDATE_GOLDEN").is_some() {
        let mut text = String::from(
            "# vault format v3 golden vectors; see vault-format/tests/golden.rs and docs/format.md\n",
        );
        for (k, v) in &now {
            text.push_str(&format!("{k} = {v}\n"));
        }
        std::fs::write(vectors_path(), text).unwrap();
        return;
    }
    let want = load();
    assert_eq!(
        want.len(),
        now.len(),
        "vector set changed; see the header of golden.rs"
    );
    for (k, v) in &now {
        assert_eq!(
            want.get(*k),
            Some(v),
            "vector {k} differs from {}",
            vectors_path().display()
        );
    }
}

fn bytes(name: &str) -> Vec<u8> {
    vault_format::id::hex_decode(&load()[name]).unwrap()
}

#[test]
fn golden_bytes_decode() {
    let keys = master().sub_keys();
    let kf = KeyFile::decode(&bytes("keyfile")).unwrap();
    assert_eq!(kf.unwrap_key(b"golden passphrase").unwrap().0, master().0);

    assert_eq!(
        RunPlan::decode(&bytes("run.plan.body")).unwrap(),
        run_plan()
    );
    assert_eq!(
        RunPart::decode(&bytes("run.part.body")).unwrap(),
        run_part()
    );
    assert_eq!(
        RunCommit::decode(&bytes("run.commit.body")).unwrap(),
        run_commit()
    );
    assert_eq!(
        RunPart::decode(&bytes("run.part.gone.body")).unwrap(),
        run_part_gone()
    );
    assert_eq!(
        RestorePin::decode(&bytes("restore.pin.body")).unwrap(),
        restore_pin()
    );

    let frame = bytes("records.framed");
    assert_eq!(decode_records(&frame).unwrap(), vec![record(), tombstone()]);
    assert_eq!(join(&bytes("records.streams"), frame.len()).unwrap(), frame);
    assert_eq!(
        vault_format::planes::join(&bytes("records.planes"), frame.len()).unwrap(),
        frame
    );

    let body = open_object(
        &keys,
        &vault(),
        ObjectKind::Config,
        b"config",
        &bytes("config.sealed"),
    )
    .unwrap();
    assert_eq!(
        VaultConfig::decode(&body).unwrap().data_horizon_ms,
        Some(7_776_000_000)
    );

    let pack_bytes = bytes("pack");
    let (pack, entries) = open_pack(&keys, &vault(), &pack_bytes).unwrap();
    assert_eq!(pack, PackId([0x66; 16]));
    let e = entries[0];
    let plain = open_blob(
        &keys,
        &vault(),
        &pack,
        &e,
        &pack_bytes[e.offset as usize..][..e.sealed_len as usize],
    )
    .unwrap();
    assert_eq!(plain, frame);

    assert_eq!(
        IndexObject::decode(&bytes("index.body")).unwrap().packs[0].1,
        entries
    );
    assert_eq!(TreeNode::decode(&bytes("tree.node")).unwrap(), node());
    assert_eq!(
        ClusterEstate::decode(&bytes("estate.body")).unwrap(),
        estate()
    );
    assert_eq!(
        SnapshotManifest::decode(&bytes("manifest.body")).unwrap(),
        manifest()
    );
    assert_eq!(
        ObjectId::from_hex(&load()["manifest.object_id"]).unwrap(),
        keys.object_id(&manifest().encode())
    );
}

#[test]
fn format_1_manifests_still_decode() {
    let body = vault_format::id::hex_decode(MANIFEST_V1_BODY).unwrap();
    let m = SnapshotManifest::decode_version(1, &body).unwrap();
    let mut want = manifest();
    // What format 1 did not record: no topic IDs; the cluster id is the
    // source and the topic names stand in for the selection.
    want.topics[0].topic_id = None;
    want.estate = None;
    assert_eq!(m, want);
    // A version 1 body is not a version 2 one.
    assert!(SnapshotManifest::decode(&body).is_err());
}

#[test]
fn format_2_manifests_still_decode() {
    let body = vault_format::id::hex_decode(MANIFEST_V2_BODY).unwrap();
    let m = SnapshotManifest::decode_version(2, &body).unwrap();
    let mut want = manifest();
    // Format 2 recorded no cluster estate: none, not an empty one.
    want.estate = None;
    assert_eq!(m, want);
    // A version 2 body is not a version 3 one.
    assert!(SnapshotManifest::decode(&body).is_err());
}

#[test]
fn format_2_run_plans_still_decode() {
    let body = vault_format::id::hex_decode(RUN_PLAN_V1_BODY).unwrap();
    let p = RunPlan::decode_version(1, &body).unwrap();
    let mut want = run_plan();
    want.template.estate = None;
    assert_eq!(p, want);
    assert!(
        RunPlan::decode(&body).is_err(),
        "a version 1 body is not a version 2 one"
    );
}

#[test]
fn zstd_framing_decodes() {
    // Encoding with zstd may differ between zstd versions; decoding may not.
    let text = b"kafka kafka kafka kafka kafka kafka kafka kafka".repeat(20);
    let framed = Compression(Some(3)).compress_framed(&text).unwrap();
    assert_eq!(framed[0], 1, "compressible text is stored with zstd");
    assert_eq!(decompress_framed(&framed, "t").unwrap(), text);
}

/// `records.framed` thirty times over, compressed through its record
/// streams (tag 2) by zstd 1.5.7 at level 1. Encoders may change; this
/// must keep decoding.
const RECORDS_ZSTD: &str = "02d40cb50d28b52ffd60b5053800003cb205f0018603040100a005f6a1abfef962090d020504050000f7010005f803009174166069440873097c0000406f726465722d31370100e551850ba40000687b22616d6f756e74223a34327d010076a0ce2f8d0000407472616365616263020076408109850b";

#[test]
fn record_streams_decode() {
    let frame = bytes("records.framed").repeat(30);
    let stored = vault_format::id::hex_decode(RECORDS_ZSTD).unwrap();
    assert_eq!(decompress_framed(&stored, "chunk").unwrap(), frame);
    let mut again = Vec::new();
    Compressor::new(Compression(Some(1)))
        .unwrap()
        .compress_records_into(&frame, &mut again)
        .unwrap();
    assert_eq!(again[0], 3, "framed records go through their planes");
    assert_eq!(decompress_framed(&again, "chunk").unwrap(), frame);
    if std::env::var_os("KVAULT_PRINT_VECTORS").is_some() {
        println!(
            "RECORD_PLANES_ZSTD = {}",
            vault_format::id::hex_encode(&again)
        );
    }
}

/// `records.framed` thirty times over, compressed through its record
/// planes (tag 3) by zstd 1.5.7 at level 1. Encoders may change; this must
/// keep decoding.
const RECORD_PLANES_ZSTD: &str = "03d40cfe0d28b52ffd60fe05a000003c3c3cac023c003c001e00003c007800f00186034400001005000100ef74584c000018f6f7f801003ec11064000028a1abfef962010024508b164400001009010100ef7458e2010000f200000d44000010020001003f0116540000180504050100f2d40d017c0000406f726465722d31370100e551850ba40000687b22616d6f756e74223a34327d010076a0ce2f8d0000407472616365616263020076408109850b";

#[test]
fn record_planes_decode() {
    let frame = bytes("records.framed").repeat(30);
    let stored = vault_format::id::hex_decode(RECORD_PLANES_ZSTD).unwrap();
    assert_eq!(stored[0], 3);
    assert_eq!(decompress_framed(&stored, "chunk").unwrap(), frame);
    // One byte changed anywhere is refused or, at worst, caught by the
    // chunk id a reader checks afterwards; it never panics.
    for i in 0..stored.len() {
        let mut bad = stored.clone();
        bad[i] ^= 0x40;
        if let Ok(rows) = decompress_framed(&bad, "chunk") {
            assert_ne!(
                rows, frame,
                "byte {i} changed and the same records came back"
            );
        }
    }
}
