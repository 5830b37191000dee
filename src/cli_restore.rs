//! `vault restore`: argument handling and output.

use serde_json::json;
use vault::restore::{GroupSelection, RestoreOptions, RestorePlan, RestoreRequest, TimeWindow};
use vault::{Error, Result};

use crate::cli::{RestoreArgs, human_bytes, progress_bar, runtime};

fn pair(s: &str, flag: &str, example: &str) -> Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() && !v.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(Error::Usage(format!("{flag} {s:?}: expected {example}"))),
    }
}

pub fn restore(a: RestoreArgs) -> Result<()> {
    let kafka = a.client.options(&a.brokers)?;
    let window = TimeWindow {
        from_ms: a
            .from_time
            .as_deref()
            .map(|t| vault::time::parse_time(t, "--from-time"))
            .transpose()?,
        to_ms: a
            .to_time
            .as_deref()
            .map(|t| vault::time::parse_time(t, "--to-time"))
            .transpose()?,
    };
    if let (Some(f), Some(t)) = (window.from_ms, window.to_ms)
        && f >= t
    {
        return Err(Error::Usage("--from-time must be before --to-time".into()));
    }
    let req = RestoreRequest {
        snapshot: a.snapshot_id.clone(),
        topics: a.topics.clone(),
        renames: a
            .renames
            .iter()
            .map(|r| pair(r, "--rename", "SRC=DST"))
            .collect::<Result<_>>()?,
        window,
        groups: GroupSelection::parse(&a.consumer_groups),
        topic_configs: a
            .topic_configs
            .iter()
            .map(|c| pair(c, "--topic-config", "KEY=VALUE, e.g. retention.ms=-1"))
            .collect::<Result<_>>()?,
        source: a.source.clone(),
        abandon_unfinished: a.abandon_unfinished,
    };
    let (repo, _lock) = a
        .vault
        .open_locked(vault::lock::LockKind::Shared, "restore")?;
    let rt = runtime()?;
    let plan = rt.block_on(RestorePlan::make(&repo, &kafka, &req))?;
    drop(rt);
    for w in &plan.warnings {
        eprintln!("vault: warning: {w}");
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
        eprintln!("vault: warning: {w}");
    }
    let groups: Vec<_> = out
        .groups
        .iter()
        .map(|g| {
            json!({
                "group": g.group_id,
                "offsets": g.offsets.iter().map(|o| json!({
                    "source_topic": o.source_topic,
                    "topic": o.target_topic,
                    "partition": o.partition,
                    "source_offset": o.source_offset,
                    "target_offset": o.target_offset,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    if a.json {
        println!(
            "{}",
            json!({
                "restore_id": out.restore_id,
                "snapshot_id": plan.snapshot_id.to_hex(),
                "topics": plan.topics.iter().map(|t| json!({
                    "source": t.source, "target": t.target, "partitions": t.partitions,
                    "created": out.topics_created.contains(&t.target),
                })).collect::<Vec<_>>(),
                "records": out.records,
                "bytes": out.bytes,
                "records_this_run": out.records_this_run,
                "transactions": out.transactions,
                "resumed": out.resumed,
                "already_complete": out.already_complete,
                "consumer_groups": groups,
                "duration_ms": out.duration.as_millis() as u64,
                "abandoned": plan.abandon.iter().map(|r| r.restore_id.clone()).collect::<Vec<_>>(),
                "warnings": plan.warnings.iter().chain(&out.warnings).collect::<Vec<_>>(),
            })
        );
        return Ok(());
    }
    if out.already_complete {
        eprintln!(
            "restore {} had already finished; nothing was written",
            out.restore_id
        );
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
    eprintln!(
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
    );
    Ok(())
}

fn print_plan(plan: &RestorePlan, as_json: bool) {
    let records = |target: &str| -> u64 {
        plan.partitions
            .iter()
            .filter(|p| p.target_topic == target)
            .filter_map(|p| p.root)
            .map(|r| r.summary.records)
            .sum()
    };
    if as_json {
        println!(
            "{}",
            json!({
                "dry_run": true,
                "restore_id": plan.restore_id,
                "resumes": plan.resumes,
                "would_abandon": plan.abandon.iter().map(|r| r.restore_id.clone()).collect::<Vec<_>>(),
                "snapshot_id": plan.snapshot_id.to_hex(),
                "topics": plan.topics.iter().map(|t| json!({
                    "source": t.source, "target": t.target, "partitions": t.partitions,
                    "create": t.create.as_ref().map(|c| json!({
                        "replication_factor": c.replication_factor,
                        "configs": c.configs.iter().cloned().collect::<std::collections::BTreeMap<_,_>>(),
                    })),
                    "records_in_snapshot": records(&t.target),
                })).collect::<Vec<_>>(),
                "consumer_groups": plan.groups.iter().map(|g| json!({
                    "group": g.group_id,
                    "offsets": g.offsets.iter().map(|o| json!({
                        "topic": plan.partitions[o.partition].target_topic,
                        "partition": plan.partitions[o.partition].partition,
                        "source_offset": o.source_offset,
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
                "warnings": plan.warnings,
            })
        );
        return;
    }
    println!(
        "dry run: restore snapshot {} (nothing written)",
        &plan.snapshot_id.to_hex()[..16]
    );
    for t in &plan.topics {
        println!(
            "  {} -> {} ({} partitions, {} records in the snapshot){}",
            t.source,
            t.target,
            t.partitions,
            records(&t.target),
            match &t.create {
                Some(c) => format!(", create with replication factor {}", c.replication_factor),
                None => ", existing topic".to_string(),
            }
        );
    }
    for g in &plan.groups {
        println!(
            "  group {}: {} positions to translate",
            g.group_id,
            g.offsets.len()
        );
    }
}
