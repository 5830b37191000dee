//! The restore's own record in `_kvault_restore_progress`: which run does
//! it, and, once the group offsets are committed, that it is done.

use std::time::Duration;

use super::super::plan::RestorePlan;
use super::super::produce::TxnProducer;
use super::super::progress::{self, Phase, ProgressState};
use super::worker::Worker;
use crate::error::{Error, Result};

/// Pins the snapshot, then claims the restore for this run: commits its
/// own record if it is new (or stale, or abandoned), or finds it is this
/// run's already. Returns the start time of the record this worker works
/// on.
pub(super) fn claim_restore(
    worker: &Worker<'_>,
    own: Option<ProgressState>,
    warnings: &mut Vec<String>,
) -> Result<u64> {
    let (plan, opts, kafka) = (worker.plan, worker.opts, worker.kafka());
    // Before the restore's own record can make this an unfinished restore
    // that a rerun must resume: see `restore::pin`.
    warnings.extend(super::super::pin::pin_snapshot(worker.repo, plan, kafka)?);
    // The restore's own record, committed before any record is written so
    // a single process never takes it for one of its own. `claimed` is its
    // start time: the restore this worker works on.
    let claimed = match own {
        Some(s) if s.is_stale(&worker.target_ids) || s.phase == Phase::Abandoned => {
            claim(kafka, plan, &worker.fresh(&plan.restore_id, None, None))?
        }
        Some(s) if s.workers.as_deref() != Some(opts.name.as_str()) => {
            return Err(Error::Usage(format!(
                "restore {} was begun by {}; finish it the same way (or pass --abandon-unfinished to a \
                 single `vault restore` to start over)",
                plan.restore_id,
                match &s.workers {
                    Some(w) => format!("the workers of run {w} (--workers {w})"),
                    None => "a single process (without --workers)".to_string(),
                }
            )));
        }
        Some(s) => s.started_ms,
        None => claim(kafka, plan, &worker.fresh(&plan.restore_id, None, None))?,
    };
    Ok(claimed)
}

/// Commits a new restore's own record, then reads it back once it is
/// visible: a single `vault restore` of the same restore that began at the
/// same moment wrote its own record after this one, and this worker leaves
/// it the restore. Returns the start time of the record that stands.
fn claim(
    kafka: &crate::kafka::KafkaOptions,
    plan: &RestorePlan,
    state: &ProgressState,
) -> Result<u64> {
    let started = commit_own_record(kafka, state)?;
    let now = progress::load_all_after(kafka, &plan.restore_id, started)?;
    if now
        .of(&plan.restore_id)?
        .is_some_and(|n| n.workers != state.workers && n.started_ms >= started)
    {
        return Err(Error::Usage(format!(
            "a `vault restore` of the same snapshot and topics began at the same moment as this worker \
             (restore {}); nothing was written by this worker. Let that one finish",
            plan.restore_id
        )));
    }
    super::super::steps::refuse_concurrent(plan, &now)?;
    Ok(started)
}

/// Commits the restore's own record. Every worker has the same
/// transactional id for it, so two committing at once fence each other:
/// the one fenced looks again and is content when the record it meant to
/// write (or a later phase of it) is there. Returns the start time of the
/// record that stands: another worker's, when this one settled for it.
pub(super) fn commit_own_record(
    kafka: &crate::kafka::KafkaOptions,
    state: &ProgressState,
) -> Result<u64> {
    let mut last = None;
    for _ in 0..5 {
        let attempt = TxnProducer::start(kafka, &state.restore_id).and_then(|p| {
            p.begin()?;
            p.commit(state)
        });
        match attempt {
            Ok(()) => return Ok(state.started_ms),
            Err(e) => last = Some(e),
        }
        // The record it meant to write, by another worker of its run: not
        // an older one of the same run that named topics since recreated.
        if let Some(now) = progress::load(kafka, &state.restore_id)?
            && now.workers == state.workers
            && now.target_topic_ids == state.target_topic_ids
            && (now.phase == state.phase || now.phase == Phase::Done)
        {
            return Ok(now.started_ms);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(last.expect("five attempts failed"))
}
