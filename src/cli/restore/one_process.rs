//! `vault restore` in one process: the plan, then the records and the
//! group offsets, with a report of what was restored.

use serde::Serialize;
use vault::Result;
use vault::kafka::KafkaOptions;
use vault::lock::LockKind;
use vault::restore::{GroupOutcome, RestoreOptions, RestorePlan, RestoreRequest};

use std::collections::BTreeMap;

use vault::estate::{EstateOutcome, EstatePlan, apply_estate, check_conflicts, plan_estate};

use super::super::output::{human_bytes, info, print_json, progress_bar, runtime, warn};
use super::args::RestoreArgs;
use super::dry_run::print_plan;
use super::estate::{EstateReport, RestoreParts, print_estate_plan, read_passwords};

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
    /// The ACLs, quotas and users restored (--estate, --with).
    #[serde(skip_serializing_if = "Option::is_none")]
    estate: Option<EstateReport<'a>>,
    warnings: Vec<&'a str>,
}

/// `vault restore --with acls,... --json` without the records.
#[derive(Serialize)]
struct EstateOnlyReport<'a> {
    dry_run: bool,
    snapshot_id: String,
    estate: EstateReport<'a>,
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
pub(super) fn run(
    a: &RestoreArgs,
    kafka: &KafkaOptions,
    req: &RestoreRequest,
    parts: RestoreParts,
) -> Result<()> {
    let (repo, _lock) = a.vault.open_locked(LockKind::Shared, "restore")?;
    let rt = runtime()?;
    let plan = if parts.records {
        Some(rt.block_on(RestorePlan::make(&repo, kafka, req))?)
    } else {
        None
    };
    vault::timings::mark("planned");
    drop(rt);
    let snapshot_id = match &plan {
        Some(p) => p.snapshot_id,
        None => {
            vault::catalog::resolve_in(&repo, &req.snapshot, &req.topics, req.source.as_deref())?
        }
    };
    // The estate is planned against the target as it is now, before
    // anything is written: a conflict refuses the whole restore.
    let renames: BTreeMap<String, String> = req.renames.iter().cloned().collect();
    let passwords = read_passwords(a.scram_passwords.as_deref())?;
    let manifest = if parts.estate.any() {
        Some(repo.read_snapshot(&snapshot_id)?)
    } else {
        None
    };
    let plan_the_estate = || -> Result<EstatePlan> {
        match &manifest {
            Some(m) => plan_estate(kafka, m, parts.estate, &renames, &passwords),
            None => Ok(EstatePlan::default()),
        }
    };
    let mut estate_plan = plan_the_estate()?;
    if let Some(plan) = &plan {
        for w in &plan.warnings {
            warn(w);
        }
    }
    if a.dry_run {
        match &plan {
            Some(plan) => print_plan(plan, a.json, parts.estate.any().then_some(&estate_plan)),
            None if a.json => print_json(&EstateOnlyReport {
                dry_run: true,
                snapshot_id: snapshot_id.to_hex(),
                estate: EstateReport::of(&estate_plan, None),
            }),
            None => {
                println!(
                    "dry run: restore the estate of snapshot {} (nothing written)",
                    &snapshot_id.to_hex()[..16]
                );
                print_estate_plan(&estate_plan);
            }
        }
        return Ok(());
    }
    // Conflicts refuse before anything is written, records included.
    check_conflicts(&estate_plan, a.merge)?;
    for n in &estate_plan.not_restored {
        warn(n);
    }
    let Some(plan) = plan else {
        let done = apply_estate(kafka, &estate_plan)?;
        if a.json {
            print_json(&EstateOnlyReport {
                dry_run: false,
                snapshot_id: snapshot_id.to_hex(),
                estate: EstateReport::of(&estate_plan, Some(&done)),
            });
        } else {
            info(&format!(
                "restored the estate of snapshot {}: {} ACLs created, {} quota entities set, {} SCRAM credentials set, {} cluster configs set",
                &snapshot_id.to_hex()[..16],
                done.acls_created,
                done.quotas_set,
                done.users_set,
                done.configs_set
            ));
        }
        return Ok(());
    };
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let opts = RestoreOptions {
        kafka: kafka.clone(),
        workers,
        transaction_bytes: a.transaction_mib << 20,
        progress: progress_bar(0, !a.json),
    };
    let out = vault::restore::execute(&repo, &plan, &opts)?;
    for w in &out.warnings {
        warn(w);
    }
    // The estate after the records: an ACL written first could take from
    // the restoring principal a right the records still need (a topic
    // with an ACL is closed to everyone it does not name), and the
    // records' own refusals (another restore running) come before any of
    // it is written.
    let estate_done: Option<EstateOutcome> = if parts.estate.any() {
        // Planned again: the records may have taken hours, and what the
        // target holds now is what a conflict is judged against.
        let finish = |e: vault::Error| {
            // The records are in: say so, and the command that finishes
            // the estate alone, for this very snapshot.
            let with: Vec<&str> = [
                ("acls", parts.estate.acls),
                ("quotas", parts.estate.quotas),
                ("users", parts.estate.users),
                ("configs", parts.estate.configs),
            ]
            .iter()
            .filter(|(_, on)| *on)
            .map(|(n, _)| *n)
            .collect();
            vault::Error::Kafka {
                context: format!(
                    "restore {}: the records and group offsets are restored ({} records), the estate is not",
                    out.restore_id, out.records
                ),
                message: format!(
                    "{e}\nfinish it with `vault restore --snapshot-id {} --with {} [--merge]` \
                     (and the same --brokers, --rename and --scram-passwords)",
                    plan.snapshot_id.to_hex(),
                    with.join(",")
                ),
            }
        };
        let again = plan_the_estate().map_err(finish)?;
        check_conflicts(&again, a.merge).map_err(finish)?;
        let done = apply_estate(kafka, &again).map_err(finish)?;
        estate_plan = again;
        Some(done)
    } else {
        None
    };
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
            estate: estate_done
                .as_ref()
                .map(|d| EstateReport::of(&estate_plan, Some(d))),
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
    if let Some(d) = &estate_done {
        info(&format!(
            "estate: {} ACLs created, {} quota entities set, {} SCRAM credentials set, {} cluster configs set",
            d.acls_created, d.quotas_set, d.users_set, d.configs_set
        ));
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
