//! `vault restore` in one process: the plan, then the records and the
//! group offsets, with a report of what was restored.

use serde::Serialize;
use vault::Result;
use vault::kafka::KafkaOptions;
use vault::lock::LockKind;
use vault::restore::{GroupOutcome, RestoreOptions, RestorePlan, RestoreRequest};

use super::super::output::{human_bytes, info, print_json, progress_bar, runtime, warn};
use super::args::RestoreArgs;
use super::dry_run::print_plan;

/// `vault restore --json`.
#[derive(Serialize)]
struct RestoreReport<'a> {
    restore_id: &'a str,
    snapshot_id: String,
    topics: Vec<TopicReport<'a>>,
    /// Records and bytes on the target from this restore, all runs together.
    records: u64,
    bytes: u64,
    records_this_run: u64,
    transactions: u64,
    /// This run continued one an earlier run began.
    resumed: bool,
    /// An earlier run had finished it; nothing was written.
    already_complete: bool,
    consumer_groups: &'a [GroupOutcome],
    duration_ms: u64,
    /// Unfinished restores this run left (--abandon-unfinished).
    abandoned: Vec<&'a str>,
    warnings: Vec<&'a str>,
}

#[derive(Serialize)]
struct TopicReport<'a> {
    source: &'a str,
    target: &'a str,
    partitions: u32,
    created: bool,
}

/// Plans the restore and, unless it is a dry run, restores it in this
/// process alone.
pub(super) fn run(a: &RestoreArgs, kafka: KafkaOptions, req: &RestoreRequest) -> Result<()> {
    let (repo, _lock) = a.vault.open_locked(LockKind::Shared, "restore")?;
    let rt = runtime()?;
    let plan = rt.block_on(RestorePlan::make(&repo, &kafka, req))?;
    vault::timings::mark("planned");
    drop(rt);
    for w in &plan.warnings {
        warn(w);
    }
    if a.dry_run {
        print_plan(&plan, a.json);
        return Ok(());
    }
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let opts = RestoreOptions {
        kafka,
        workers,
        transaction_bytes: a.transaction_mib << 20,
        progress: progress_bar(0, !a.json),
    };
    let out = vault::restore::execute(&repo, &plan, &opts)?;
    for w in &out.warnings {
        warn(w);
    }
    if a.json {
        print_json(&RestoreReport {
            restore_id: &out.restore_id,
            snapshot_id: plan.snapshot_id.to_hex(),
            topics: plan
                .topics
                .iter()
                .map(|t| TopicReport {
                    source: &t.source,
                    target: &t.target,
                    partitions: t.partitions,
                    created: out.topics_created.contains(&t.target),
                })
                .collect(),
            records: out.records,
            bytes: out.bytes,
            records_this_run: out.records_this_run,
            transactions: out.transactions,
            resumed: out.resumed,
            already_complete: out.already_complete,
            consumer_groups: &out.groups,
            duration_ms: u64::try_from(out.duration.as_millis()).unwrap_or(u64::MAX),
            abandoned: plan.abandon.iter().map(|r| r.restore_id.as_str()).collect(),
            warnings: plan
                .warnings
                .iter()
                .chain(&out.warnings)
                .map(String::as_str)
                .collect(),
        });
        return Ok(());
    }
    if out.already_complete {
        info(&format!(
            "restore {} had already finished; nothing was written",
            out.restore_id
        ));
    }
    for g in &out.groups {
        for o in &g.offsets {
            println!(
                "group {} {}/{}: source offset {} -> target offset {}",
                g.group_id, o.target_topic, o.partition, o.source_offset, o.target_offset
            );
        }
    }
    let secs = out.duration.as_secs_f64();
    info(&format!(
        "restored snapshot {} into {}: {} records ({}){} in {} transactions, {} consumer groups, {:.1} s{}",
        &plan.snapshot_id.to_hex()[..16],
        plan.topics
            .iter()
            .map(|t| t.target.as_str())
            .collect::<Vec<_>>()
            .join(","),
        out.records,
        human_bytes(out.bytes),
        if out.resumed {
            format!(", {} of them in this run", out.records_this_run)
        } else {
            String::new()
        },
        out.transactions,
        out.groups.len(),
        secs,
        if secs > 0.0 && out.records_this_run > 0 {
            format!(", {:.0} records/s", out.records_this_run as f64 / secs)
        } else {
            String::new()
        }
    ));
    Ok(())
}
