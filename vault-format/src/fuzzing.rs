//! Entry points for the fuzz targets in `fuzz/` and for the test that
//! replays their seed corpus, so both exercise exactly the same decoders.
//! Each takes arbitrary bytes and must return (never panic, never hang).

use crate::VaultId;
use crate::config::VaultConfig;
use crate::estate::ClusterEstate;
use crate::index::IndexObject;
use crate::keys::{KeyFile, MasterKey, SubKeys};
use crate::manifest::SnapshotManifest;
use crate::object::{ObjectKind, open_object};
use crate::pack::{open_pack, parse_trailer};
use crate::record::decode_records;
use crate::run::{RunCommit, RunPart, RunPlan};
use crate::tree::TreeNode;

fn keys() -> SubKeys {
    MasterKey([0x5a; 32]).sub_keys()
}

/// A whole pack file (header, footer, sealed trailer), then the trailer
/// body parser on its own, since the fuzzer cannot forge an AEAD tag.
pub fn pack(data: &[u8]) {
    let _ = open_pack(&keys(), &VaultId([1; 16]), data);
    if data.len() >= 8 {
        let (len, body) = data.split_at(8);
        let pack_len = u64::from_le_bytes(len.try_into().expect("8 bytes"));
        let _ = parse_trailer(body, body.len() + 16, pack_len);
    }
}

pub fn index_object(data: &[u8]) {
    let _ = IndexObject::decode(data);
    let _ = open_object(
        &keys(),
        &VaultId([1; 16]),
        ObjectKind::Index,
        &[0; 32],
        data,
    );
}

pub fn tree_node(data: &[u8]) {
    if let Ok(n) = TreeNode::decode(data) {
        // Whatever decodes re-encodes to the same bytes.
        assert_eq!(n.encode(), data);
    }
}

pub fn manifest(data: &[u8]) {
    if let Ok(m) = SnapshotManifest::decode(data) {
        assert_eq!(m.encode(), data);
    }
    // Format 1 and 2 bodies are still read.
    let _ = SnapshotManifest::decode_version(1, data);
    let _ = SnapshotManifest::decode_version(2, data);
    let _ = open_object(
        &keys(),
        &VaultId([1; 16]),
        ObjectKind::Snapshot,
        &[0; 32],
        data,
    );
}

/// The cluster estate a version 3 manifest carries.
pub fn cluster_estate(data: &[u8]) {
    if let Ok(e) = ClusterEstate::decode(data) {
        assert_eq!(e.encode(), data);
    }
}

/// Key files, with the cheapest Argon2 settings a decoded file may ask for.
pub fn key_file(data: &[u8]) {
    if let Ok(k) = KeyFile::decode(data) {
        assert_eq!(k.encode(), data);
        if k.kdf.m_cost <= 64 && k.kdf.t_cost <= 2 {
            let _ = k.unwrap_key(b"fuzz");
        }
    }
}

pub fn record_framing(data: &[u8]) {
    if let Ok(recs) = decode_records(data) {
        let mut again = Vec::new();
        for r in &recs {
            r.encode_into(&mut again);
        }
        assert_eq!(again, data);
    }
}

pub fn config(data: &[u8]) {
    if let Ok(c) = VaultConfig::decode(data) {
        assert_eq!(c.encode(), data);
    }
}

/// The plan, part and commit objects of a distributed snapshot, and the
/// restore pins that share their folder: whatever decodes
/// re-encodes to the same bytes.
pub fn run_objects(data: &[u8]) {
    if let Ok(p) = RunPlan::decode(data) {
        assert_eq!(p.encode(), data);
    }
    // Format 2's plans are still read.
    let _ = RunPlan::decode_version(1, data);
    if let Ok(p) = RunPart::decode(data) {
        assert_eq!(p.encode(), data);
    }
    if let Ok(c) = RunCommit::decode(data) {
        assert_eq!(c.encode(), data);
    }
    if let Ok(p) = crate::pin::RestorePin::decode(data) {
        assert_eq!(p.encode(), data);
    }
}

/// Record streams (tag 2, the filter data chunks were compressed through
/// before the planes): see [`filter_round_trips`].
pub fn record_streams(data: &[u8]) {
    use crate::streams::{RecordStreams, join, split};
    filter_round_trips(data, split, join, RecordStreams::to_bytes);
}

/// Record planes (tag 3, what data chunks are compressed through now):
/// see [`filter_round_trips`].
pub fn record_planes(data: &[u8]) {
    use crate::planes::{RecordPlanes, join, split};
    filter_round_trips(data, split, join, RecordPlanes::to_bytes);
}

/// A compression filter of framed records (`split` into an encoding,
/// `join` back): bytes that join into records split back into the very
/// same bytes, and framed records split and join back to themselves. The
/// first two bytes say how long the joined records must be.
fn filter_round_trips<E: Default>(
    data: &[u8],
    split: fn(&[u8], &mut E) -> crate::Result<()>,
    join: fn(&[u8], usize) -> crate::Result<Vec<u8>>,
    to_bytes: fn(&E) -> Vec<u8>,
) {
    let mut e = E::default();
    if data.len() >= 2 {
        let rows_len = usize::from(u16::from_le_bytes([data[0], data[1]]));
        if let Ok(rows) = join(&data[2..], rows_len) {
            split(&rows, &mut e).expect("joined records split");
            assert_eq!(to_bytes(&e), &data[2..]);
        }
    }
    if split(data, &mut e).is_ok() {
        assert_eq!(
            join(&to_bytes(&e), data.len()).expect("split records join"),
            data
        );
    }
}

/// A decoder entry point: arbitrary bytes in, no panic out.
pub type Target = fn(&[u8]);

/// Every target, by the name of its file in `fuzz/fuzz_targets/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("pack", pack),
    ("index_object", index_object),
    ("tree_node", tree_node),
    ("manifest", manifest),
    ("cluster_estate", cluster_estate),
    ("key_file", key_file),
    ("record_framing", record_framing),
    ("config", config),
    ("run_objects", run_objects),
    ("record_streams", record_streams),
    ("record_planes", record_planes),
];
