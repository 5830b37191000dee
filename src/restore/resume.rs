//! Which restore a run is: a new one, or one an earlier run left unfinished.
//!
//! A restore's progress lives on the target cluster (see [`super::progress`]),
//! keyed by its restore id. A rerun must resume *that* restore, even when
//! its command says `--snapshot-id latest` and a newer snapshot has been
//! committed since: restoring the newer one would write every record the
//! first run committed a second time. So before anything is written, the
//! target's progress records are read, and an unfinished restore of this
//! vault into any of the same target topics decides what happens:
//!
//! * the same request (`latest` or its snapshot, the same topics, window
//!   and groups): the run resumes it;
//! * anything else: the run is refused, naming the unfinished restore and
//!   how to finish it or leave it (`--abandon-unfinished`).
//!
//! A record is stale, and ignored, when a target topic it wrote to was
//! deleted or created again since (its topic ID changed): the records it
//! counts are gone with the old topic.

use std::collections::BTreeMap;

use vault_format::ObjectId;

use super::progress::{Phase, ProgressState, RestoreSelection};
use crate::catalog::CatalogEntry;
use crate::error::{Error, Result};

/// What the run does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolution {
    /// The snapshot to restore.
    pub snapshot: ObjectId,
    pub selection: RestoreSelection,
    /// The unfinished restore this run continues, if any.
    pub resumes: Option<String>,
    /// Unfinished restores to mark abandoned before starting.
    pub abandon: Vec<ProgressState>,
    pub warnings: Vec<String>,
}

/// The inputs of [`resolve`], gathered by the planner.
pub struct Request<'a> {
    /// The snapshot the command names, resolved (`latest` resolved too).
    pub requested: ObjectId,
    /// The command said `latest`, so it may mean an earlier snapshot's restore.
    pub latest: bool,
    pub abandon_unfinished: bool,
    /// The progress records on the target written from this vault (and
    /// those of version 0, which name no vault).
    pub records: &'a [ProgressState],
    pub entries: &'a [CatalogEntry],
    /// Target topic → its topic ID now (`None`: the topic does not exist).
    pub current_ids: &'a BTreeMap<String, Option<String>>,
}

/// Decides which restore this run is. `selection_of` resolves the
/// command's options against a snapshot (its topics, renames and groups).
pub fn resolve(
    req: &Request<'_>,
    selection_of: &dyn Fn(&ObjectId) -> Result<RestoreSelection>,
) -> Result<Resolution> {
    let wanted = selection_of(&req.requested)?;
    let overlaps = |r: &ProgressState| {
        let theirs = r.target_topics();
        wanted.targets().any(|t| theirs.contains(t))
    };
    let live: Vec<&ProgressState> = req
        .records
        .iter()
        .filter(|r| !r.is_stale(req.current_ids) && overlaps(r))
        .collect();
    let unfinished: Vec<&ProgressState> = live
        .iter()
        .copied()
        .filter(|r| r.phase.is_unfinished())
        .collect();
    let fresh = |warnings| Resolution {
        snapshot: req.requested,
        selection: wanted.clone(),
        resumes: None,
        abandon: Vec::new(),
        warnings,
    };
    if req.abandon_unfinished {
        let mut r = fresh(Vec::new());
        r.abandon = unfinished.into_iter().cloned().collect();
        return Ok(r);
    }
    // The same request as `u`, resolved against u's snapshot.
    let same_request = |u: &ProgressState| -> bool {
        let Some(sel) = &u.selection else {
            return false;
        };
        let Ok(snapshot) = ObjectId::from_hex(&u.snapshot_id) else {
            return false;
        };
        let source_of = |id: &ObjectId| {
            req.entries
                .iter()
                .find(|e| e.id == *id)
                .map(|e| e.manifest.source.as_str())
        };
        let Some(source) = source_of(&snapshot) else {
            return false;
        };
        // `latest` may mean the older snapshot of the same source, never
        // another source's.
        let may_mean =
            snapshot == req.requested || (req.latest && Some(source) == source_of(&req.requested));
        may_mean && selection_of(&snapshot).is_ok_and(|s| &s == sel)
    };
    match unfinished.as_slice() {
        [] => {}
        [u] if same_request(u) => {
            let snapshot = ObjectId::from_hex(&u.snapshot_id).expect("checked above");
            let mut warnings = Vec::new();
            if snapshot != req.requested {
                warnings.push(format!(
                    "resuming the unfinished restore of snapshot {} (started from `latest`), not the newer {}; \
                     restoring both would write its records twice",
                    short(&u.snapshot_id),
                    short(&req.requested.to_hex())
                ));
            }
            return Ok(Resolution {
                snapshot,
                selection: u.selection.clone().expect("checked above"),
                resumes: Some(u.restore_id.clone()),
                abandon: Vec::new(),
                warnings,
            });
        }
        many => {
            let described: Vec<String> = many.iter().map(|u| describe(u)).collect();
            return Err(Error::Usage(format!(
                "{}; run that restore again with the same options to finish it, or pass \
                 --abandon-unfinished to leave it (the records it committed stay in the topics)",
                described.join("; ")
            )));
        }
    }
    // A finished restore of the same request: with `latest`, the command is
    // that restore run again, and there is nothing left to do.
    let finished: Vec<&ProgressState> = live
        .iter()
        .copied()
        .filter(|r| r.phase == Phase::Done)
        .collect();
    if req.latest
        && let Some(done) = finished
            .iter()
            .filter(|d| same_request(d))
            .max_by_key(|d| d.started_ms)
    {
        let snapshot = ObjectId::from_hex(&done.snapshot_id).expect("checked by same_request");
        let mut warnings = Vec::new();
        if snapshot != req.requested {
            warnings.push(format!(
                "this restore (from `latest`) already finished with snapshot {}; to restore the newer {} \
                 into these topics as well, name it with --snapshot-id (its records go after those already there)",
                short(&done.snapshot_id),
                short(&req.requested.to_hex())
            ));
        }
        return Ok(Resolution {
            snapshot,
            selection: done.selection.clone().expect("checked by same_request"),
            resumes: Some(done.restore_id.clone()),
            abandon: Vec::new(),
            warnings,
        });
    }
    let warnings = finished
        .iter()
        .filter(|d| ObjectId::from_hex(&d.snapshot_id).ok() != Some(req.requested))
        .map(|d| {
            format!(
                "{} already hold(s) the {} records restore {} wrote from snapshot {}; this restore writes its records after them",
                d.target_topics().into_iter().collect::<Vec<_>>().join(","),
                d.partitions.values().map(|p| p.records).sum::<u64>(),
                d.restore_id,
                short(&d.snapshot_id)
            )
        })
        .collect();
    Ok(fresh(warnings))
}

fn short(hex: &str) -> &str {
    &hex[..hex.len().min(16)]
}

fn describe(u: &ProgressState) -> String {
    let records: u64 = u.partitions.values().map(|p| p.records).sum();
    let what = match &u.selection {
        Some(sel) => sel.to_string(),
        None => format!(
            "into {} (written by an older vault)",
            u.target_topics().into_iter().collect::<Vec<_>>().join(",")
        ),
    };
    format!(
        "restore {} of snapshot {} ({what}) is unfinished on the target: {records} records committed in {} transactions",
        u.restore_id,
        short(&u.snapshot_id),
        u.transactions
    )
}

#[cfg(test)]
mod tests {
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
            requested: ObjectId([requested; 32]),
            latest,
            abandon_unfinished: false,
            records,
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
        assert_eq!(r.resumes.as_deref(), Some("r1"));
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
        assert_eq!(r.resumes, None);
    }

    #[test]
    fn abandoning_starts_the_request_and_marks_the_rest() {
        let recs = vec![record(1, Phase::Data, sel(&["g"]))];
        let entries = vec![entry(1), entry(2)];
        let current = ids("id1");
        let req = Request {
            requested: ObjectId([2; 32]),
            latest: false,
            abandon_unfinished: true,
            records: &recs,
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
        assert_eq!(r.resumes.as_deref(), Some("r1"));
        // Named explicitly, the newer snapshot is restored, with a warning.
        let r = run(&recs, 2, false, &["g"], &ids("id1")).unwrap();
        assert_eq!((r.snapshot, r.resumes), (ObjectId([2; 32]), None));
        assert_eq!(r.warnings.len(), 1);
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
        assert_eq!((r.snapshot, r.resumes), (ObjectId([2; 32]), None));
    }
}
