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
//!
//! [`abandon`] is what `--abandon-unfinished` then does to the restores it
//! leaves.

use std::collections::BTreeMap;

use vault_format::{ObjectId, VaultId};

use super::produce::{QueueBudget, TxnProducer};
use super::progress::{self, PROGRESS_VERSION, Phase, ProgressState, RestoreSelection, Unreadable};
use crate::catalog::CatalogEntry;
use crate::error::{Error, Result};
use crate::kafka::KafkaOptions;

/// What the run does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Resolution {
    /// The snapshot to restore.
    pub snapshot: ObjectId,
    pub selection: RestoreSelection,
    /// The restore id: the continued restore's, or a new one.
    pub restore_id: String,
    /// This run continues (or reports) a restore an earlier run began.
    pub resumes: bool,
    /// Unfinished restores to mark abandoned before starting.
    pub abandon: Vec<ProgressState>,
    pub warnings: Vec<String>,
}

/// The inputs of [`resolve`], gathered by the planner.
pub(crate) struct Request<'a> {
    pub vault: VaultId,
    /// The snapshot the command names, resolved (`latest` resolved too).
    pub requested: ObjectId,
    /// The command said `latest`, so it may mean an earlier snapshot's restore.
    pub latest: bool,
    pub abandon_unfinished: bool,
    /// The progress records on the target written from this vault (and
    /// those of version 0, which name no vault).
    pub records: &'a [ProgressState],
    /// Records on the target that could not be decoded.
    pub unreadable: &'a [Unreadable],
    pub entries: &'a [CatalogEntry],
    /// Target topic → its topic ID now (`None`: the topic does not exist).
    pub current_ids: &'a BTreeMap<String, Option<String>>,
}

/// Names a restore: the vault, the snapshot and everything the selection
/// says, so the same request always gets the same id.
pub fn restore_id(vault: &VaultId, snapshot: &ObjectId, selection: &RestoreSelection) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"kvault restore v2");
    h.update(&vault.0);
    h.update(&snapshot.0);
    hash_topics_and_window(&mut h, selection);
    h.update(&(selection.groups.len() as u64).to_le_bytes());
    for g in &selection.groups {
        h.update(g.as_bytes()).update(&[0]);
    }
    h.finalize().to_hex()[..32].to_string()
}

/// The id vaults before progress version 1 gave the same request (it left
/// out the groups), so their restores can still be resumed.
pub(crate) fn legacy_restore_id(
    vault: &VaultId,
    snapshot: &ObjectId,
    selection: &RestoreSelection,
) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"kvault restore v1");
    h.update(&vault.0);
    h.update(&snapshot.0);
    hash_topics_and_window(&mut h, selection);
    h.finalize().to_hex()[..32].to_string()
}

fn hash_topics_and_window(h: &mut blake3::Hasher, selection: &RestoreSelection) {
    for (source, target) in &selection.topics {
        h.update(source.as_bytes()).update(&[0]);
        h.update(target.as_bytes()).update(&[0]);
    }
    h.update(&selection.from_ms.unwrap_or(i64::MIN).to_le_bytes());
    h.update(&selection.to_ms.unwrap_or(i64::MAX).to_le_bytes());
}

/// Decides which restore this run is. `selection_of` resolves the
/// command's options against a snapshot (its topics, renames and groups).
pub(crate) fn resolve(
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
    if let Some(newer) = unfinished.iter().find(|r| r.version > PROGRESS_VERSION) {
        return Err(Error::Usage(format!(
            "restore {} into the same topics is unfinished and was written by a newer vault (progress \
             version {}); finish it with that version",
            newer.restore_id, newer.version
        )));
    }
    let source_of = |id: &ObjectId| {
        req.entries
            .iter()
            .find(|e| e.id == *id)
            .map(|e| e.manifest.source.as_str())
    };
    // The selection `u` restores, if this command is the same request as
    // `u` (resolved against u's snapshot).
    let same_request = |u: &ProgressState| -> Option<(ObjectId, RestoreSelection)> {
        let snapshot = ObjectId::from_hex(&u.snapshot_id).ok()?;
        let source = source_of(&snapshot)?;
        // `latest` may mean the older snapshot of the same source, never
        // another source's.
        let may_mean =
            snapshot == req.requested || (req.latest && Some(source) == source_of(&req.requested));
        if !may_mean {
            return None;
        }
        let sel = selection_of(&snapshot).ok()?;
        let same = match &u.selection {
            Some(recorded) => recorded == &sel,
            // Version 0 recorded no selection; its id says what it was.
            None => u.restore_id == legacy_restore_id(&req.vault, &snapshot, &sel),
        };
        same.then_some((snapshot, sel))
    };
    let resolution = if req.abandon_unfinished {
        Resolution {
            snapshot: req.requested,
            restore_id: restore_id(&req.vault, &req.requested, &wanted),
            selection: wanted.clone(),
            resumes: false,
            abandon: unfinished.into_iter().cloned().collect(),
            warnings: Vec::new(),
        }
    } else if !unfinished.is_empty() {
        match unfinished.as_slice() {
            [u] if let Some((snapshot, selection)) = same_request(u) => {
                let mut warnings = Vec::new();
                if snapshot != req.requested {
                    warnings.push(format!(
                        "resuming the unfinished restore of snapshot {} (started from `latest`), not the newer {}; \
                         restoring both would write its records twice",
                        short(&u.snapshot_id),
                        short(&req.requested.to_hex())
                    ));
                }
                Resolution {
                    snapshot,
                    selection,
                    restore_id: u.restore_id.clone(),
                    resumes: true,
                    abandon: Vec::new(),
                    warnings,
                }
            }
            many => {
                let in_vault = |u: &ProgressState| {
                    ObjectId::from_hex(&u.snapshot_id)
                        .ok()
                        .and_then(|id| source_of(&id))
                        .is_some()
                };
                // Its snapshot is gone (forgotten by hand, or by an older
                // vault's gc, which kept no pins): running it again cannot
                // finish it, so that is not the advice.
                if let Some(u) = many.iter().find(|u| !in_vault(u)) {
                    return Err(Error::Usage(format!(
                        "{}, but its snapshot {} is no longer in this vault, so it cannot be finished. \
                         Either delete the target topics it wrote to and restore again with \
                         --abandon-unfinished, or restore into other topics (--rename); \
                         --abandon-unfinished alone writes the records it committed a second time",
                        describe(u),
                        short(&u.snapshot_id)
                    )));
                }
                let described: Vec<String> = many.iter().map(|u| describe(u)).collect();
                return Err(Error::Usage(format!(
                    "{}; to finish it, run it again as it was begun (--snapshot-id {} and the same topics, \
                     renames, time window and groups), or pass --abandon-unfinished to leave it (the \
                     records it committed stay in the topics)",
                    described.join("; "),
                    short(&many[0].snapshot_id)
                )));
            }
        }
    } else {
        finished_or_new(req, &wanted, &live, &same_request)
    };
    // A record that could not be read is ignored, unless it is this
    // restore's own: then what it counts is unknown.
    let mut resolution = resolution;
    for u in req.unreadable {
        if u.key == resolution.restore_id {
            return Err(Error::Kafka {
                context: format!("reading the progress of restore {}", u.key),
                message: format!(
                    "its record on the target is unreadable ({}); vault cannot tell which records it wrote. \
                     Restore into other topics (--rename), or delete the target topics and restore again",
                    u.error
                ),
            });
        }
        resolution.warnings.push(format!(
            "ignored an unreadable progress record {} on the target ({})",
            u.key, u.error
        ));
    }
    Ok(resolution)
}

/// No unfinished restore in the way: a finished one of the same request
/// run again from `latest` is that restore; otherwise a new restore, with
/// a warning for every finished one whose records are in the same topics.
fn finished_or_new(
    req: &Request<'_>,
    wanted: &RestoreSelection,
    live: &[&ProgressState],
    same_request: &dyn Fn(&ProgressState) -> Option<(ObjectId, RestoreSelection)>,
) -> Resolution {
    let finished: Vec<&ProgressState> = live
        .iter()
        .copied()
        .filter(|r| r.phase == Phase::Done)
        .collect();
    if req.latest
        && let Some((done, (snapshot, selection))) = finished
            .iter()
            .filter_map(|d| same_request(d).map(|s| (d, s)))
            .max_by_key(|(d, _)| d.started_ms)
    {
        let mut warnings = Vec::new();
        if snapshot != req.requested {
            warnings.push(format!(
                "this restore (from `latest`) already finished with snapshot {}; to restore the newer {} \
                 into these topics as well, name it with --snapshot-id (its records go after those already there)",
                short(&done.snapshot_id),
                short(&req.requested.to_hex())
            ));
        }
        return Resolution {
            snapshot,
            selection,
            restore_id: done.restore_id.clone(),
            resumes: true,
            abandon: Vec::new(),
            warnings,
        };
    }
    let id = restore_id(&req.vault, &req.requested, wanted);
    let legacy = legacy_restore_id(&req.vault, &req.requested, wanted);
    // The same request finished by an older vault: its id is the old one.
    if let Some(done) = finished
        .iter()
        .find(|d| d.selection.is_none() && d.restore_id == legacy)
    {
        return Resolution {
            snapshot: req.requested,
            selection: wanted.clone(),
            restore_id: done.restore_id.clone(),
            resumes: true,
            abandon: Vec::new(),
            warnings: Vec::new(),
        };
    }
    let warnings = finished
        .iter()
        .filter(|d| d.restore_id != id)
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
    Resolution {
        snapshot: req.requested,
        selection: wanted.clone(),
        restore_id: id,
        resumes: false,
        abandon: Vec::new(),
        warnings,
    }
}

/// Leaves an unfinished restore for good: fences its producer (aborting
/// an open transaction of a run still going) and commits its progress
/// as abandoned, so no later run resumes it. What it committed stays.
pub fn abandon(kafka: &KafkaOptions, old: &ProgressState) -> Result<()> {
    if old.workers.is_some() {
        // A distributed restore: every partition has a producer of its own,
        // and workers still running must be stopped too.
        let topic = progress::partition_progress_topic(&old.restore_id);
        for slot in 0..progress::partition_count(kafka, &topic)? {
            for part in progress::read_records(kafka, &topic, &[slot])?.partition_records {
                if part.phase.is_unfinished() {
                    let producer = TxnProducer::start_at(
                        kafka,
                        &part.restore_id,
                        &topic,
                        slot,
                        QueueBudget::PER_PARTITION,
                    )?;
                    let mut state = part.clone();
                    state.phase = Phase::Abandoned;
                    producer.begin()?;
                    producer.commit(&state)?;
                }
            }
        }
    }
    let producer = TxnProducer::start(kafka, &old.restore_id)?;
    let mut state = old.clone();
    state.phase = Phase::Abandoned;
    producer.begin()?;
    producer.commit(&state)
}

fn short(hex: &str) -> &str {
    &hex[..hex.len().min(16)]
}

fn describe(u: &ProgressState) -> String {
    let records: u64 = u.partitions.values().map(|p| p.records).sum();
    let what = match &u.selection {
        Some(sel) => sel.to_string(),
        None => format!(
            "into {}, begun by an older vault",
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
#[path = "resume_tests.rs"]
mod tests;
