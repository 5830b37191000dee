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
pub mod pin;
pub mod plan;
pub mod produce;
pub mod progress;
pub mod resume;
pub mod select;
pub mod sink;
pub mod target;
pub mod translate;
pub mod window;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub use plan::RestorePlan;
pub use select::{GroupSelection, RestoreRequest, RestoreSettings};
pub use window::TimeWindow;

use produce::TxnProducer;
use progress::{
    PROGRESS_TOPIC, Phase, ProgressRecords, ProgressState, SINGLE_PROGRESS_VERSION, partition_key,
};
use target::NewTopicSpec;
use translate::translate;

use crate::error::{Error, Result};
use crate::kafka::{Edge, KafkaOptions, OffsetCommit, SettlePause, TopicInfo, partition_offsets};
use crate::now_ms;
use crate::repository::{Indexed, Repository};

pub struct RestoreOptions {
    pub kafka: KafkaOptions,
    /// Decode threads.
    pub workers: usize,
    /// A transaction commits after this many payload bytes (or 10 s).
    pub transaction_bytes: u64,
    pub progress: Option<indicatif::ProgressBar>,
}

/// One group position on the target.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TranslatedOffset {
    pub source_topic: String,
    #[serde(rename = "topic")]
    pub target_topic: String,
    pub partition: u32,
    pub source_offset: i64,
    pub target_offset: i64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct GroupOutcome {
    #[serde(rename = "group")]
    pub group_id: String,
    pub offsets: Vec<TranslatedOffset>,
}

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

/// Commits every selected group's translated positions on the target.
pub(crate) fn commit_groups(
    kafka: &KafkaOptions,
    plan: &RestorePlan,
    groups: &[GroupOutcome],
) -> Result<()> {
    // `translated_groups` keeps the plan's order, group by group and offset by offset.
    let commits: Vec<(String, Vec<OffsetCommit>)> = groups
        .iter()
        .zip(&plan.groups)
        .map(|(g, planned)| {
            let offsets = g
                .offsets
                .iter()
                .zip(&planned.offsets)
                .map(|(t, planned)| OffsetCommit {
                    topic: t.target_topic.clone(),
                    partition: t.partition,
                    offset: t.target_offset,
                    metadata: planned.metadata.clone(),
                })
                .collect();
            (g.group_id.clone(), offsets)
        })
        .collect();
    crate::kafka::commit_group_offsets(kafka, &commits, |n| {
        crate::faults::crash_point("restore-group", n as u64);
    })?;
    Ok(())
}

/// The topic IDs of the target topics, once the brokers know the ones
/// just created (they learn of a new topic a moment after it is created).
pub(crate) fn target_topic_ids(
    kafka: &KafkaOptions,
    plan: &RestorePlan,
) -> Result<BTreeMap<String, Option<String>>> {
    let deadline = Instant::now() + kafka.request_timeout;
    let mut pause = SettlePause::new();
    let names: Vec<String> = plan.topics.iter().map(|t| t.target.clone()).collect();
    loop {
        let client = kafka.metadata_client(true)?;
        let now = crate::kafka::topic_presence(kafka, &client, &names)?;
        use crate::kafka::Presence;
        // Just created, a topic may be unknown to the broker answering for
        // a moment: that is not a cluster without topic IDs (before Kafka
        // 2.8, where every topic is there with none). Wait for all of them.
        let settled = now.values().all(|p| matches!(p, Presence::With(_)))
            || now.values().all(|p| *p == Presence::WithoutId);
        if settled {
            return Ok(now
                .into_iter()
                .map(|(t, p)| match p {
                    Presence::With(id) => (t, Some(id)),
                    _ => (t, None),
                })
                .collect());
        }
        if Instant::now() > deadline {
            let missing: Vec<&str> = now
                .iter()
                .filter(|(_, p)| !matches!(p, Presence::With(_)))
                .map(|(t, _)| t.as_str())
                .collect();
            return Err(Error::Kafka {
                context: format!("describing the target topics (brokers {})", kafka.brokers),
                message: format!(
                    "the cluster does not list {} with a topic ID yet although it has topic IDs; nothing was restored, \
                     run the same command again",
                    missing.join(", ")
                ),
            });
        }
        pause.sleep();
    }
}

/// Two restores into the same topics that start at the same moment each
/// plan before the other has committed anything. Each commits its first
/// progress record before any data, then looks again: if another
/// unfinished restore into the same topics is there now, it stops (the
/// other does too, or was refused), and the operator runs one at a time.
/// `now` is what [`progress::load_all_after`] read once its own first
/// record was visible.
pub(crate) fn refuse_concurrent(plan: &RestorePlan, now: &ProgressRecords) -> Result<()> {
    let ours: std::collections::BTreeSet<&str> = plan.selection.targets().collect();
    let others: Vec<&str> = now
        .records
        .iter()
        .filter(|r| r.restore_id != plan.restore_id && r.phase.is_unfinished())
        .filter(|r| plan.abandon.iter().all(|a| a.restore_id != r.restore_id))
        .filter(|r| r.target_topics().iter().any(|t| ours.contains(t.as_str())))
        .map(|r| r.restore_id.as_str())
        .collect();
    if others.is_empty() {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "restore {} into the same topics began at the same time as this one ({}); nothing was restored. \
         Run one restore at a time: run this command again to finish this one, or pass --abandon-unfinished",
        others.join(", "),
        plan.restore_id
    )))
}

pub(crate) fn create_topics(kafka: &KafkaOptions, plan: &RestorePlan) -> Result<Vec<String>> {
    create_topics_and(kafka, plan, Vec::new())
}

/// [`create_topics`], and `extra` (which are not reported as created).
pub(crate) fn create_topics_and(
    kafka: &KafkaOptions,
    plan: &RestorePlan,
    extra: Vec<NewTopicSpec>,
) -> Result<Vec<String>> {
    let mut specs = plan.topics_to_create();
    let created = specs.iter().map(|s| s.name.clone()).collect();
    specs.extend(extra);
    specs.push(NewTopicSpec {
        name: PROGRESS_TOPIC.into(),
        partitions: 1,
        replication_factor: plan.target_brokers.min(3),
        configs: progress::progress_topic_configs(),
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the async runtime", "", e))?;
    rt.block_on(target::create_topics(kafka, &specs))?;
    Ok(created)
}

/// Target end offsets (read_committed) of every restored partition, once
/// they are past the last restored record. The brokers write transaction
/// markers after the commit returns, and until then the last stable offset
/// still stands before the transaction.
pub(crate) fn target_ends(
    kafka: &KafkaOptions,
    plan: &RestorePlan,
    state: &ProgressState,
) -> Result<BTreeMap<String, i64>> {
    let deadline = Instant::now() + kafka.request_timeout;
    let mut pause = SettlePause::new();
    loop {
        let ends = read_ends(kafka, plan)?;
        let behind = ends.iter().find(|(k, end)| {
            state
                .partitions
                .get(*k)
                .and_then(|p| p.last_target_offset)
                .is_some_and(|last| **end <= last)
        });
        match behind {
            None => return Ok(ends),
            Some((k, end)) if Instant::now() > deadline => {
                return Err(Error::Kafka {
                    context: format!(
                        "reading the end offset of {k} (target brokers {})",
                        kafka.brokers
                    ),
                    message: format!(
                        "it stays at {end}, before the restored records; an open transaction of another producer holds it. \
                         Run the same command again once it has finished"
                    ),
                });
            }
            Some(_) => pause.sleep(),
        }
    }
}

fn read_ends(kafka: &KafkaOptions, plan: &RestorePlan) -> Result<BTreeMap<String, i64>> {
    let client = kafka.metadata_client(true)?;
    let topics: Vec<TopicInfo> = plan
        .topics
        .iter()
        .map(|t| TopicInfo {
            name: t.target.clone(),
            id: None,
            partitions: t.partitions,
            replication_factor: 1,
        })
        .collect();
    let ends = partition_offsets(kafka, &client, &topics, Edge::End)?;
    Ok(ends
        .into_iter()
        .map(|((t, p), o)| (partition_key(&t, p), o))
        .collect())
}

/// Every selected group's positions on the target, from the translations
/// and end offsets `state` holds.
pub fn translated_groups(plan: &RestorePlan, state: &ProgressState) -> Vec<GroupOutcome> {
    plan.groups
        .iter()
        .map(|g| GroupOutcome {
            group_id: g.group_id.clone(),
            offsets: g
                .offsets
                .iter()
                .map(|pos| {
                    let (i, c) = (&pos.partition, &pos.source_offset);
                    let p = &plan.partitions[*i];
                    let key = partition_key(&p.target_topic, p.partition);
                    let answered = state
                        .partitions
                        .get(&key)
                        .map(|pp| pp.translations.clone())
                        .unwrap_or_default();
                    let end = state.ends.get(&key).copied().unwrap_or(-1);
                    TranslatedOffset {
                        source_topic: p.source_topic.clone(),
                        target_topic: p.target_topic.clone(),
                        partition: p.partition,
                        source_offset: *c,
                        target_offset: translate(&answered, end, *c),
                    }
                })
                .collect(),
        })
        .collect()
}
