//! `vault restore`: a faithful restore with exact consumer-group offset
//! translation, exactly once across crashes.
//!
//! [`RestorePlan::make`] checks everything and writes nothing; [`execute`]
//! creates the missing topics, then produces the records in transactions
//! that each also carry a progress record (see [`progress`]), and finally
//! commits the translated group offsets. A rerun of the same command
//! resumes after the last committed transaction.

pub mod data;
pub mod decode;
pub mod distributed;
pub mod options;
pub mod pin;
pub mod plan;
pub mod produce;
pub mod progress;
pub mod resume;
pub mod select;
pub mod sink;
pub mod steps;
pub mod target;
pub mod translate;
pub mod window;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub use options::RestoreOptions;
pub use plan::RestorePlan;
pub use select::{GroupSelection, RestoreRequest, RestoreSettings};
pub use steps::{GroupOutcome, TranslatedOffset, translated_groups};
pub use window::TimeWindow;

use produce::TxnProducer;
use progress::{Phase, ProgressState, SINGLE_PROGRESS_VERSION};
use steps::{commit_groups, create_topics, refuse_concurrent, target_ends, target_topic_ids};

use crate::error::{Error, Result};
use crate::now_ms;
use crate::repository::{Indexed, Repository};

#[derive(Clone, Debug)]
pub struct RestoreOutcome {
    pub restore_id: String,
    /// Records on the target from this restore, across all runs.
    pub records: u64,
    pub bytes: u64,
    /// Records this run produced.
    pub records_this_run: u64,
    pub transactions: u64,
    /// This run continued an interrupted one.
    pub resumed: bool,
    /// An earlier run had already finished; nothing was written.
    pub already_complete: bool,
    pub topics_created: Vec<String>,
    pub groups: Vec<GroupOutcome>,
    pub duration: Duration,
    /// What the operator should know about this run.
    pub warnings: Vec<String>,
}

/// Restores what `plan` says. Safe to run again after any failure or kill.
pub fn execute(
    repo: &Repository<Indexed>,
    plan: &RestorePlan,
    opts: &RestoreOptions,
) -> Result<RestoreOutcome> {
    let started = Instant::now();
    let kafka = &opts.kafka;
    let mut warnings = Vec::new();
    for old in &plan.abandon {
        resume::abandon(kafka, old)?;
        warnings.extend(pin::unpin(repo, &old.restore_id));
    }
    // The producer's transactional start needs no topic, and the pin
    // neither: overlap the three. The pin is durable before the first
    // progress record can make this restore one a rerun must resume.
    let (created, producer, pinned) = std::thread::scope(|s| {
        let starting = s.spawn(|| TxnProducer::start(kafka, &plan.restore_id));
        let pinning = s.spawn(|| pin::pin_snapshot(repo, plan, kafka));
        let created = create_topics(kafka, plan);
        let producer = starting.join().expect("producer start panicked");
        (
            created,
            producer,
            pinning.join().expect("pin write panicked"),
        )
    });
    warnings.extend(pinned?);
    let mut pin_guard = pin::PinUntilRecorded {
        repo,
        restore_id: &plan.restore_id,
        recorded: false,
    };
    let (created, producer) = (created?, producer?);
    crate::timings::mark("topics created, producer started, snapshot pinned");
    let target_ids = target_topic_ids(kafka, plan)?;
    let recorded = progress::load(kafka, &plan.restore_id)?;
    // A record of this restore on the target, of any phase: the pins of
    // that id are not this run's alone to take back.
    pin_guard.recorded = recorded.is_some();
    let loaded = match recorded {
        // The records it counts went with a target topic deleted since.
        Some(old) if old.is_stale(&target_ids) => {
            warnings.push(format!(
                "restore {} counted records in a target topic that was deleted or created again since; \
                 it starts over",
                plan.restore_id
            ));
            None
        }
        Some(old) if old.phase == Phase::Abandoned => None,
        Some(old) if old.workers.is_some() && old.phase != Phase::Done => {
            return Err(Error::Usage(format!(
                "restore {} is being done by the workers of run {}; run `vault restore ... --workers {}` \
                 to finish it (or pass --abandon-unfinished to start over)",
                plan.restore_id,
                old.workers.as_deref().unwrap_or_default(),
                old.workers.as_deref().unwrap_or_default()
            )));
        }
        other => other,
    };
    let resumed = loaded.is_some();
    let recorded_ids: BTreeMap<String, String> = target_ids
        .iter()
        .filter_map(|(t, id)| Some((t.clone(), id.clone()?)))
        .collect();
    let mut state = match loaded {
        Some(mut s) => {
            if s.version == 0 {
                // Begun by an older vault: from now on its record says what
                // it restores, so later runs can tell it apart.
                s.version = SINGLE_PROGRESS_VERSION;
                s.vault_id = plan.vault_id.clone();
                s.selection = Some(plan.selection.clone());
                s.target_topic_ids = recorded_ids;
            }
            s
        }
        None => {
            // Committed before any record, so a killed run is always found
            // by the next one, whatever snapshot `latest` means by then.
            let fresh = ProgressState {
                version: SINGLE_PROGRESS_VERSION,
                restore_id: plan.restore_id.clone(),
                vault_id: plan.vault_id.clone(),
                snapshot_id: plan.snapshot_id.to_hex(),
                selection: Some(plan.selection.clone()),
                target_topic_ids: recorded_ids,
                started_ms: now_ms(),
                ..ProgressState::default()
            };
            producer.begin()?;
            producer.commit(&fresh)?;
            pin_guard.recorded = true;
            // Workers of a distributed restore of the same request that
            // began at the same moment: theirs is the restore.
            let now = progress::load_all_after(kafka, &plan.restore_id, fresh.started_ms)?;
            if now
                .of(&plan.restore_id)?
                .is_some_and(|s| s.workers.is_some() && s.started_ms >= fresh.started_ms)
            {
                return Err(Error::Usage(format!(
                    "workers with --workers began restore {} at the same moment as this run; nothing was \
                     restored by this run. Let them finish (or join them with --workers)",
                    plan.restore_id
                )));
            }
            refuse_concurrent(plan, &now)?;
            fresh
        }
    };
    crate::timings::mark("progress loaded or recorded");
    let already_complete = state.phase == Phase::Done;
    let before: u64 = state.partitions.values().map(|p| p.records).sum();

    if state.phase == Phase::Data {
        data::restore_records(repo, plan, opts, &producer, &mut state)?;
        crate::timings::mark("records restored");
        // Every record is committed: the end offsets answer the positions
        // no restored record reached.
        state.ends = target_ends(kafka, plan, &state)?;
        // Without groups to commit, the restore is done in the same step.
        state.phase = if plan.groups.is_empty() {
            Phase::Done
        } else {
            Phase::Groups
        };
        producer.begin()?;
        producer.commit(&state)?;
    }
    let groups = translated_groups(plan, &state);
    if state.phase == Phase::Groups {
        commit_groups(kafka, plan, &groups)?;
        state.phase = Phase::Done;
        producer.begin()?;
        producer.commit(&state)?;
    }
    if let Some(pb) = &opts.progress {
        pb.finish_and_clear();
    }
    warnings.extend(pin::unpin(repo, &plan.restore_id));
    let records: u64 = state.partitions.values().map(|p| p.records).sum();
    Ok(RestoreOutcome {
        restore_id: plan.restore_id.clone(),
        records,
        bytes: state.partitions.values().map(|p| p.bytes).sum(),
        records_this_run: records - before,
        transactions: state.transactions,
        resumed,
        already_complete,
        topics_created: created,
        groups,
        duration: started.elapsed(),
        warnings,
    })
}
