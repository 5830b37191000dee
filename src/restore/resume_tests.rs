//! Which restore a request resumes, refuses or starts: every case an
//! operator meets, with no cluster.

use super::*;
use crate::restore::progress::PartitionProgress;
use vault_format::manifest::{Selection, SnapshotManifest, SnapshotStats};

fn entry(b: u8) -> CatalogEntry {
    CatalogEntry {
        id: ObjectId([b; 32]),
        manifest: SnapshotManifest {
            time_ms: u64::from(b),
            parent: None,
            source: "A".into(),
            source_cluster_id: "A".into(),
            selection: Selection::default(),
            hostname: "h".into(),
            tags: vec![],
            read_committed: true,
            topics: vec![],
            groups: vec![],
            estate: None,
            stats: SnapshotStats::default(),
        },
    }
}

fn sel(groups: &[&str]) -> RestoreSelection {
    RestoreSelection {
        topics: vec![("orders".into(), "orders".into())],
        from_ms: None,
        to_ms: None,
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

fn record(snapshot: u8, phase: Phase, selection: RestoreSelection) -> ProgressState {
    let mut partitions = BTreeMap::new();
    partitions.insert(
        "orders/0".to_string(),
        PartitionProgress {
            records: 5,
            ..PartitionProgress::default()
        },
    );
    ProgressState {
        version: 1,
        restore_id: format!("r{snapshot}"),
        vault_id: "v".into(),
        snapshot_id: ObjectId([snapshot; 32]).to_hex(),
        selection: Some(selection),
        target_topic_ids: [("orders".to_string(), "id1".to_string())].into(),
        phase,
        partitions,
        ..ProgressState::default()
    }
}

fn ids(id: &str) -> BTreeMap<String, Option<String>> {
    [("orders".to_string(), Some(id.to_string()))].into()
}

fn run(
    records: &[ProgressState],
    requested: u8,
    latest: bool,
    groups: &[&str],
    current: &BTreeMap<String, Option<String>>,
) -> Result<Resolution> {
    let entries = vec![entry(1), entry(2)];
    let req = Request {
        vault: VaultId([9; 16]),
        requested: ObjectId([requested; 32]),
        latest,
        abandon_unfinished: false,
        records,
        unreadable: &[],
        entries: &entries,
        current_ids: current,
    };
    let wanted = sel(groups);
    resolve(&req, &move |_| Ok(wanted.clone()))
}

#[test]
fn latest_resumes_the_unfinished_restore_of_the_older_snapshot() {
    let recs = vec![record(1, Phase::Data, sel(&["g"]))];
    let r = run(&recs, 2, true, &["g"], &ids("id1")).unwrap();
    assert_eq!(r.snapshot, ObjectId([1; 32]));
    assert_eq!((r.restore_id.as_str(), r.resumes), ("r1", true));
    assert_eq!(r.warnings.len(), 1);
}

#[test]
fn another_snapshot_or_selection_is_refused() {
    let recs = vec![record(1, Phase::Data, sel(&["g"]))];
    let e = run(&recs, 2, false, &["g"], &ids("id1")).unwrap_err();
    assert!(e.to_string().contains("--abandon-unfinished"), "{e}");
    let e = run(&recs, 1, true, &["g", "h"], &ids("id1")).unwrap_err();
    assert!(e.to_string().contains("unfinished"), "{e}");
}

#[test]
fn a_recreated_target_topic_makes_the_record_stale() {
    let recs = vec![record(1, Phase::Data, sel(&["g"]))];
    let r = run(&recs, 2, false, &["g"], &ids("id2")).unwrap();
    assert_eq!(r.snapshot, ObjectId([2; 32]));
    assert!(!r.resumes);
}

#[test]
fn abandoning_starts_the_request_and_marks_the_rest() {
    let recs = vec![record(1, Phase::Data, sel(&["g"]))];
    let entries = vec![entry(1), entry(2)];
    let current = ids("id1");
    let req = Request {
        vault: VaultId([9; 16]),
        requested: ObjectId([2; 32]),
        latest: false,
        abandon_unfinished: true,
        records: &recs,
        unreadable: &[],
        entries: &entries,
        current_ids: &current,
    };
    let r = resolve(&req, &|_| Ok(sel(&[]))).unwrap();
    assert_eq!(r.snapshot, ObjectId([2; 32]));
    assert_eq!(r.abandon.len(), 1);
}

#[test]
fn a_finished_latest_restore_is_not_run_again_on_a_newer_snapshot() {
    let recs = vec![record(1, Phase::Done, sel(&["g"]))];
    let r = run(&recs, 2, true, &["g"], &ids("id1")).unwrap();
    assert_eq!(r.snapshot, ObjectId([1; 32]));
    assert_eq!((r.restore_id.as_str(), r.resumes), ("r1", true));
    // Named explicitly, the newer snapshot is restored, with a warning.
    let r = run(&recs, 2, false, &["g"], &ids("id1")).unwrap();
    assert_eq!((r.snapshot, r.resumes), (ObjectId([2; 32]), false));
    assert_eq!(r.warnings.len(), 1);
    // The same snapshot again with other groups is another restore
    // into the same topics: warned about too.
    let r = run(&recs, 1, false, &["h"], &ids("id1")).unwrap();
    assert!(!r.resumes);
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
}

#[test]
fn abandoned_and_unrelated_restores_do_not_matter() {
    let mut other = record(1, Phase::Data, sel(&[]));
    other.selection = Some(RestoreSelection {
        topics: vec![("payments".into(), "payments".into())],
        ..sel(&[])
    });
    let recs = vec![other, record(1, Phase::Abandoned, sel(&["g"]))];
    let r = run(&recs, 2, false, &["g"], &ids("id1")).unwrap();
    assert_eq!((r.snapshot, r.resumes), (ObjectId([2; 32]), false));
}

#[test]
fn a_restore_begun_by_an_older_vault_is_resumed_by_its_old_id() {
    let vault = VaultId([9; 16]);
    let snapshot = ObjectId([1; 32]);
    let mut old = record(1, Phase::Data, sel(&["g"]));
    old.version = 0;
    old.selection = None;
    old.target_topic_ids.clear();
    old.restore_id = legacy_restore_id(&vault, &snapshot, &sel(&["g"]));
    let r = run(&[old.clone()], 1, false, &["g"], &ids("id1")).unwrap();
    assert_eq!(
        (r.restore_id.clone(), r.resumes),
        (old.restore_id.clone(), true)
    );
    // Finished by the older vault: the same command writes nothing new.
    old.phase = Phase::Done;
    let r = run(&[old.clone()], 1, false, &["g"], &ids("id1")).unwrap();
    assert_eq!((r.restore_id, r.resumes), (old.restore_id, true));
}

#[test]
fn an_unreadable_record_is_ignored_unless_it_is_this_restores() {
    let entries = vec![entry(1), entry(2)];
    let current = ids("id1");
    let vault = VaultId([9; 16]);
    let mine = restore_id(&vault, &ObjectId([2; 32]), &sel(&[]));
    for (key, ok) in [("someone-else", true), (mine.as_str(), false)] {
        let unreadable = [Unreadable {
            key: key.to_string(),
            error: "junk".into(),
        }];
        let req = Request {
            vault,
            requested: ObjectId([2; 32]),
            latest: false,
            abandon_unfinished: false,
            records: &[],
            unreadable: &unreadable,
            entries: &entries,
            current_ids: &current,
        };
        let r = resolve(&req, &|_| Ok(sel(&[])));
        assert_eq!(r.is_ok(), ok, "{key}: {r:?}");
    }
}
