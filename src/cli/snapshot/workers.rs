//! `vault snapshot --workers NAME`: one worker of a snapshot several
//! processes take together (see `vault::snapshot::distributed`).

use std::time::Duration;

use serde::Serialize;
use vault::Result;
use vault::kafka::{GroupMember, KafkaOptions};
use vault::lock::LockKind;
use vault::snapshot::distributed::{self, Found, WorkerOptions};
use vault::snapshot::{CUT_MAX_AGE, HorizonOverride, KafkaSource, RecordSource, SnapshotRequest};
use vault_format::ObjectId;
use vault_format::manifest::SnapshotManifest;

use super::args::{SnapshotArgs, pipeline_threads};
use crate::cli::output::{human_bytes, print_json, progress_bar, runtime, warn};

/// `vault snapshot --workers NAME --json`.
#[derive(Serialize)]
struct WorkerReport {
    /// The snapshot the run committed (the same for every worker).
    id: String,
    run: String,
    /// This worker took the cut and wrote the plan.
    planned_here: bool,
    /// This worker wrote the manifest (a second writer writes the same object).
    committed_here: bool,
    /// Partitions of the run, and those this worker finished (`topic/partition`).
    partitions: usize,
    partitions_done_here: Vec<String>,
    /// Partitions this worker read that another worker finished first.
    partitions_duplicated: usize,
    /// This worker's share.
    records_read: u64,
    bytes_read: u64,
    bytes_added: u64,
    /// Packs other workers wrote and did not index (they died or lost the
    /// partition), which this worker indexed instead of writing them again.
    packs_adopted: usize,
    /// The whole snapshot's.
    snapshot_records_read: u64,
    snapshot_bytes_added: u64,
    duration_ms: u64,
    warnings: Vec<String>,
}

pub(super) fn run(
    a: &SnapshotArgs,
    name: &str,
    kafka: &KafkaOptions,
    request: &SnapshotRequest,
    data_horizon: HorizonOverride,
) -> Result<()> {
    vault::kafka::check_run_name(name)?;
    let rt = runtime()?;
    let storage = a.vault.storage()?;
    let command = format!("snapshot --workers {name}");
    // The cut is read while the vault opens, as for one snapshot; only the
    // worker that finds no plan uses it.
    let prepared =
        vault::snapshot::prepare(&rt, kafka, request, storage.as_ref(), CUT_MAX_AGE, || {
            a.vault.open_locked(LockKind::Shared, &command).map(Some)
        });
    let ((repo, lock), mut cut) = match prepared {
        Ok(p) => p.expect("opening the vault gives up only with an error"),
        Err(e) => {
            // Do not wait for cluster requests nobody needs any more.
            rt.shutdown_background();
            return Err(e);
        }
    };
    let opts = WorkerOptions {
        name: name.to_string(),
        tags: a.tags.clone(),
        data_horizon_ms: data_horizon.resolve(repo.config()),
        threads: pipeline_threads(),
        stall_timeout: Duration::from_secs(a.stall_timeout),
        partitions_per_batch: a.partitions_per_batch,
        poll_interval: Duration::from_secs(1),
        progress: progress_bar(0, !a.json),
        rejoin_window: Duration::from_secs(a.rejoin_window),
        join_timeout: Duration::from_secs(60).max(Duration::from_secs(a.session_timeout) * 3),
    };
    let found = kafka.current_cluster_id().and_then(|cluster_id| {
        distributed::find_or_make_plan(&repo, request, cluster_id.as_deref(), &opts, &mut || {
            cut.plan(&repo)
        })
    });
    // The early cut is used, or never will be (the plan was another
    // worker's): no exit below waits for the cluster requests left of it.
    drop(cut);
    rt.shutdown_background();
    let found = found?;
    let (plan, planned_here) = match &found {
        Found::Plan { plan, planned_here } => (plan, *planned_here),
        Found::Committed { snapshot, manifest } => {
            return report_late(a, name, *snapshot, manifest);
        }
    };
    if planned_here {
        for w in &plan.warnings {
            warn(w);
        }
    }
    let topics: Vec<String> = plan
        .template
        .topics
        .iter()
        .map(|t| t.name.clone())
        .collect();
    let member = GroupMember::join(
        kafka,
        &distributed::group_name(&repo.vault_id(), plan),
        &topics,
        Duration::from_secs(a.session_timeout),
    )?;
    let read_committed = plan.template.read_committed;
    let mut source = || -> Result<Box<dyn RecordSource + Send>> {
        Ok(Box::new(KafkaSource::new(kafka, read_committed)?))
    };
    // A topic of the plan deleted (or created again) since the cut is
    // left out of the snapshot with a warning, never read at the wrong offsets.
    let topics_now = distributed::KafkaTopicWatch::new(kafka)?;
    let out = distributed::work(&repo, plan, &member, &topics_now, &mut source, &opts, &lock)?;
    // Leaving the group now lets the rest finish without waiting for us.
    drop(member);
    if let Some(pb) = &opts.progress {
        pb.finish_and_clear();
    }
    for w in out.warnings.iter().skip(plan.warnings.len()) {
        warn(w);
    }
    let done: Vec<String> = out
        .partitions_done_here
        .iter()
        .map(|(t, p)| format!("{t}/{p}"))
        .collect();
    if a.json {
        print_json(&WorkerReport {
            id: out.snapshot.to_hex(),
            run: name.to_string(),
            planned_here,
            committed_here: out.committed_here,
            partitions: plan.partitions.len(),
            partitions_done_here: done,
            partitions_duplicated: out.partitions_duplicated,
            records_read: out.records_read,
            bytes_read: out.bytes_read,
            bytes_added: out.bytes_added,
            packs_adopted: out.packs_adopted,
            snapshot_records_read: out.manifest.stats.records_read,
            snapshot_bytes_added: out.manifest.stats.bytes_added,
            duration_ms: u64::try_from(out.duration.as_millis()).unwrap_or(u64::MAX),
            warnings: out.warnings.clone(),
        });
    } else {
        println!("{}", out.snapshot);
        crate::cli::output::info(&format!(
            "snapshot {} of run {name} committed{}: this worker read {} of {} partitions, {} records ({}), added {}; \
             the snapshot read {} records in {:.1} s",
            &out.snapshot.to_hex()[..16],
            if out.committed_here {
                " by this worker"
            } else {
                ""
            },
            done.len(),
            plan.partitions.len(),
            out.records_read,
            human_bytes(out.bytes_read),
            human_bytes(out.bytes_added),
            out.manifest.stats.records_read,
            out.duration.as_secs_f64()
        ));
    }
    Ok(())
}

/// A worker that started after its run was committed: it reports that
/// snapshot (exit 0) rather than starting the next run alone.
fn report_late(a: &SnapshotArgs, name: &str, id: ObjectId, m: &SnapshotManifest) -> Result<()> {
    if a.json {
        print_json(&WorkerReport {
            id: id.to_hex(),
            run: name.to_string(),
            planned_here: false,
            committed_here: false,
            partitions: m.topics.iter().map(|t| t.partitions.len()).sum(),
            partitions_done_here: Vec::new(),
            partitions_duplicated: 0,
            records_read: 0,
            bytes_read: 0,
            bytes_added: 0,
            packs_adopted: 0,
            snapshot_records_read: m.stats.records_read,
            snapshot_bytes_added: m.stats.bytes_added,
            duration_ms: 0,
            warnings: vec![format!(
                "run {name} was committed as {} moments before this worker started; it had nothing to do",
                id.to_hex()
            )],
        });
    } else {
        println!("{id}");
        crate::cli::output::info(&format!(
            "run {name} was committed as snapshot {} moments before this worker started (--rejoin-window); nothing to do",
            &id.to_hex()[..16]
        ));
    }
    Ok(())
}
