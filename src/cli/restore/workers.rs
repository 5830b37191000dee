//! `vault restore --workers NAME`: one worker of a restore several
//! processes do together (see `vault::restore::distributed`).

use std::time::Duration;

use serde::Serialize;
use vault::Result;
use vault::kafka::KafkaOptions;
use vault::lock::LockKind;
use vault::restore::distributed::{self, WorkerOptions};
use vault::restore::{GroupOutcome, RestoreOptions, RestorePlan, RestoreRequest};

use super::super::output::{info, print_json, runtime, warn};
use super::args::RestoreArgs;

/// `vault restore --workers NAME --json`.
#[derive(Serialize)]
struct WorkerReport<'a> {
    restore_id: &'a str,
    run: &'a str,
    snapshot_id: String,
    partitions: usize,
    /// Target partitions this worker restored (`topic/partition`).
    partitions_done_here: &'a [String],
    records_here: u64,
    /// Records the whole restore put on the target, across all workers and runs.
    records: u64,
    groups_committed_here: bool,
    already_complete: bool,
    topics_created: &'a [String],
    consumer_groups: &'a [GroupOutcome],
    duration_ms: u64,
    warnings: &'a [String],
}

pub(super) fn run(
    a: &RestoreArgs,
    name: &str,
    kafka: KafkaOptions,
    req: &RestoreRequest,
) -> Result<()> {
    vault::kafka::check_run_name(name)?;
    let (repo, _lock) = a
        .vault
        .open_locked(LockKind::Shared, &format!("restore --workers {name}"))?;
    let rt = runtime()?;
    let plan = rt.block_on(RestorePlan::make(&repo, &kafka, req))?;
    drop(rt);
    for w in &plan.warnings {
        warn(w);
    }
    let ropts = RestoreOptions {
        kafka,
        workers: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2),
        transaction_bytes: a.transaction_mib << 20,
        progress: None,
    };
    let opts = WorkerOptions {
        name: name.to_string(),
        partitions_in_flight: a.partitions_in_flight,
        session_timeout: Duration::from_secs(a.session_timeout),
        poll_interval: Duration::from_secs(1),
        join_timeout: Duration::from_secs(60).max(Duration::from_secs(a.session_timeout) * 3),
    };
    let out = distributed::work(&repo, &plan, &ropts, &opts)?;
    for w in out.warnings.iter().skip(plan.warnings.len()) {
        warn(w);
    }
    if a.json {
        print_json(&WorkerReport {
            restore_id: &out.restore_id,
            run: name,
            snapshot_id: plan.snapshot_id.to_hex(),
            partitions: plan.partitions.len(),
            partitions_done_here: &out.partitions_done_here,
            records_here: out.records_here,
            records: out.records,
            groups_committed_here: out.groups_committed_here,
            already_complete: out.already_complete,
            topics_created: &out.topics_created,
            consumer_groups: &out.groups,
            duration_ms: u64::try_from(out.duration.as_millis()).unwrap_or(u64::MAX),
            warnings: &out.warnings,
        });
    } else {
        info(&format!(
            "restore {} of run {name} is complete{}: this worker restored {} of {} partitions ({} records); \
             the restore holds {} records, {} consumer groups committed, {:.1} s",
            out.restore_id,
            if out.already_complete {
                " (it was before this worker started)"
            } else {
                ""
            },
            out.partitions_done_here.len(),
            plan.partitions.len(),
            out.records_here,
            out.records,
            out.groups.len(),
            out.duration.as_secs_f64()
        ));
    }
    Ok(())
}
