//! `vault gc`, `vault forget` and `vault check`: argument handling and output.

use clap::Args;
use serde_json::json;
use vault::check::CheckOptions;
use vault::gc::{GcOptions, GcPlan, KeepPolicy};
use vault::lock::LockKind;
use vault::time::parse_duration;
use vault::{Error, Result};

use crate::cli::{VaultArgs, format_time, human_bytes};

#[derive(Args, Debug)]
pub struct GcArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// Keep the N newest snapshots.
    #[arg(long, default_value_t = 0, value_name = "N")]
    keep_last: usize,
    /// Keep the newest snapshot of each of the last N hours that have one.
    #[arg(long, default_value_t = 0, value_name = "N")]
    keep_hourly: usize,
    /// … of each of the last N days (UTC).
    #[arg(long, default_value_t = 0, value_name = "N")]
    keep_daily: usize,
    /// … of each of the last N weeks (Monday to Sunday, UTC).
    #[arg(long, default_value_t = 0, value_name = "N")]
    keep_weekly: usize,
    /// … of each of the last N months.
    #[arg(long, default_value_t = 0, value_name = "N")]
    keep_monthly: usize,
    /// Keep every snapshot younger than this: 12h, 30d, 2w, 1y.
    #[arg(long, value_name = "DURATION")]
    keep_within: Option<String>,
    /// Keep every snapshot with this tag (repeatable).
    #[arg(long = "keep-tag", value_name = "T")]
    keep_tags: Vec<String>,
    /// Count the keep rules per group: cluster,topics (each source and
    /// topic selection on its own), cluster, or none (all snapshots together).
    #[arg(
        long,
        default_value = "cluster,topics",
        value_name = "cluster,topics|cluster|none"
    )]
    group_by: String,
    /// Repack packs whose live share is below this percentage.
    #[arg(long, default_value_t = 50, value_name = "PCT", value_parser = clap::value_parser!(u8).range(0..=100))]
    repack_below: u8,
    /// Delete a pack file that no index object lists (left by a killed
    /// command) only once it is this old by the storage's clock: a running
    /// snapshot's newest packs are not indexed yet.
    #[arg(long, default_value = "1h", value_name = "DURATION")]
    unindexed_min_age: String,
    /// Show what would be forgotten and freed; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// The clock the keep rules measure from (RFC 3339 or epoch ms) [default: now].
    #[arg(long, value_name = "TIME", hide = true)]
    now: Option<String>,
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// Also read every chunk, decrypt it and verify it against its id.
    #[arg(long, conflicts_with = "read_data_subset")]
    read_data: bool,
    /// Read only this share of the chunks, e.g. 10%.
    #[arg(long, value_name = "PCT%")]
    read_data_subset: Option<String>,
    #[arg(long)]
    json: bool,
}

pub fn gc(a: GcArgs) -> Result<()> {
    let policy = KeepPolicy {
        last: a.keep_last,
        hourly: a.keep_hourly,
        daily: a.keep_daily,
        weekly: a.keep_weekly,
        monthly: a.keep_monthly,
        within_ms: a.keep_within.as_deref().map(parse_duration).transpose()?,
        tags: a.keep_tags.clone(),
        group_by: vault::catalog::GroupBy::parse(&a.group_by)?,
    };
    let now = match &a.now {
        Some(t) => vault::time::parse_time(t, "--now")? as u64,
        None => vault::now_ms(),
    };
    // Checked before the lock, so a typo costs no waiting.
    policy.check()?;
    let opts = GcOptions {
        now_ms: now,
        repack_below: f64::from(a.repack_below) / 100.0,
        unindexed_min_age: std::time::Duration::from_millis(parse_duration(&a.unindexed_min_age)?),
    };
    let (repo, lock) = a.vault.open_locked(LockKind::Exclusive, "gc")?;
    let spinner = crate::cli::spinner(!a.json);
    let plan = GcPlan::make(&repo, &policy, &opts, spinner.clone())?;
    if let Some(pb) = &spinner {
        pb.set_message("gc: freeing");
    }
    let outcome = if a.dry_run {
        None
    } else {
        Some(vault::gc::execute(&repo, &plan, &lock)?)
    };
    if let Some(pb) = spinner {
        pb.finish_and_clear();
    }
    let mut times = std::collections::HashMap::new();
    if !a.json || a.dry_run {
        for d in &plan.decisions {
            if let Ok(m) = repo.read_snapshot(&d.id) {
                times.insert(d.id, m.time_ms);
            }
        }
    }
    if a.json {
        println!(
            "{}",
            json!({
                "dry_run": a.dry_run,
                "snapshots": plan.decisions.iter().map(|d| json!({
                    "id": d.id.to_hex(),
                    "group": {
                        "source": d.group.source,
                        "selection": d.group.selection.as_ref().map(ToString::to_string),
                    },
                    "keep": d.keep(),
                    "reasons": d.reasons,
                })).collect::<Vec<_>>(),
                "forgotten": plan.forget.iter().map(|i| i.to_hex()).collect::<Vec<_>>(),
                "packs_to_delete": plan.delete_packs.len(),
                "packs_to_repack": plan.repack.len(),
                "orphan_packs": plan.orphan_packs.len(),
                "young_orphan_packs": plan.young_orphan_packs.len(),
                "quiet_groups": plan.quiet_groups.iter().map(|(g, t)| json!({
                    "group": g.to_string(),
                    "newest": format_time(*t),
                })).collect::<Vec<_>>(),
                "bytes_to_delete": plan.bytes_to_delete(),
                "bytes_to_rewrite": plan.bytes_to_rewrite(),
                "live_chunks": plan.marked.total(),
                "packs_deleted": outcome.as_ref().map(|o| o.packs_deleted),
                "packs_repacked": outcome.as_ref().map(|o| o.packs_repacked),
                "packs_written": outcome.as_ref().map(|o| o.packs_written),
                "index_objects_rewritten": outcome.as_ref().map(|o| o.index_objects_rewritten),
                "bytes_freed": outcome.as_ref().map(|o| o.bytes_freed),
            })
        );
        return Ok(());
    }
    let mut group = None;
    for d in &plan.decisions {
        if group != Some(&d.group) {
            println!("{}:", d.group);
            group = Some(&d.group);
        }
        let t = times
            .get(&d.id)
            .map_or_else(String::new, |t| format_time(*t));
        if d.keep() {
            println!(
                "  keep   {} {t}  ({})",
                &d.id.to_hex()[..16],
                d.reasons.join(", ")
            );
        } else {
            println!("  forget {} {t}", &d.id.to_hex()[..16]);
        }
    }
    for (g, t) in &plan.quiet_groups {
        eprintln!(
            "note: {g} has had no snapshot since {}, while its cluster has newer ones (its topic selection \
             changed?); its own keep rules keep its snapshots. Forget them with `vault forget`, or count \
             them with the rest using --group-by cluster",
            format_time(*t)
        );
    }
    if !plan.young_orphan_packs.is_empty() {
        eprintln!(
            "left {} pack files that no index lists and that are younger than --unindexed-min-age {}: \
             a running command may still index them",
            plan.young_orphan_packs.len(),
            a.unindexed_min_age
        );
    }
    match outcome {
        None => eprintln!(
            "dry run: would forget {} snapshots, delete {} packs and repack {} ({} to delete, {} to rewrite); nothing changed",
            plan.forget.len(),
            plan.delete_packs.len() + plan.orphan_packs.len(),
            plan.repack.len(),
            human_bytes(plan.bytes_to_delete()),
            human_bytes(plan.bytes_to_rewrite())
        ),
        Some(o) => eprintln!(
            "forgot {} snapshots, deleted {} packs (repacked {} into {}), rewrote {} index objects, freed {}",
            o.snapshots_forgotten,
            o.packs_deleted,
            o.packs_repacked,
            o.packs_written,
            o.index_objects_rewritten,
            human_bytes(o.bytes_freed.max(0) as u64)
        ),
    }
    Ok(())
}

pub fn repair_index(v: &VaultArgs, as_json: bool) -> Result<()> {
    let (repo, lock) = v.open_locked(LockKind::Exclusive, "repair index")?;
    let out = vault::repair::repair_index(&repo, &lock)?;
    // The JSON is printed either way: a script wants it most when damage stays.
    if as_json {
        println!("{}", serde_json::to_string(&out).expect("serializes"));
    } else {
        for d in &out.damaged_index_objects {
            println!("deleted damaged index object {d}");
        }
        for d in &out.damaged_packs {
            println!("left damaged pack {d}");
        }
        eprintln!(
            "indexed {} packs again from their trailers into {} index objects; deleted {} damaged index objects",
            out.packs_reindexed,
            out.index_objects_written,
            out.damaged_index_objects.len()
        );
    }
    if out.damaged_packs.is_empty() {
        Ok(())
    } else {
        Err(Error::Damaged(format!(
            "{} packs are damaged beyond repair (their trailers too); `vault check` names the snapshots they break",
            out.damaged_packs.len()
        )))
    }
}

pub fn forget(v: &VaultArgs, id: &str, as_json: bool) -> Result<()> {
    let (repo, _lock) = v.open_locked(LockKind::Shared, "forget")?;
    let id = vault::gc::forget(&repo, id)?;
    if as_json {
        println!("{}", json!({ "forgotten": id.to_hex() }));
    } else {
        println!("forgot snapshot {id}; `vault gc` frees its data");
    }
    Ok(())
}

pub fn check(a: CheckArgs) -> Result<()> {
    let share = match (&a.read_data_subset, a.read_data) {
        (_, true) => 1.0,
        (Some(s), _) => {
            let pct: f64 = s
                .trim_end_matches('%')
                .parse()
                .ok()
                .filter(|p| (0.0..=100.0).contains(p))
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "--read-data-subset {s:?}: expected a percentage such as 10%"
                    ))
                })?;
            pct / 100.0
        }
        (None, false) => 0.0,
    };
    let (repo, _lock) = a.vault.open_locked(LockKind::Shared, "check")?;
    let progress = crate::cli::spinner(!a.json);
    let r = vault::check::run(
        &repo,
        CheckOptions {
            read_data: share,
            progress: progress.clone(),
        },
    )?;
    if let Some(pb) = progress {
        pb.finish_and_clear();
    }
    if a.json {
        println!(
            "{}",
            json!({
                "ok": r.is_ok(),
                "snapshots": r.snapshots,
                "index_objects": r.index_objects,
                "packs": r.packs,
                "chunks_checked": r.chunks_checked,
                "chunks_read": r.chunks_read,
                "problems": r.problems,
                "affected_snapshots": r.affected.iter().map(|(id, p)| json!({
                    "id": id.to_hex(), "problems": p,
                })).collect::<Vec<_>>(),
            })
        );
    } else {
        for p in &r.problems {
            println!("damaged: {p}");
        }
        for (id, p) in &r.affected {
            println!(
                "snapshot {} cannot be fully restored ({} problems)",
                &id.to_hex()[..16],
                p.len()
            );
        }
        eprintln!(
            "checked {} snapshots, {} index objects, {} packs, {} chunks ({} read and verified): {}",
            r.snapshots,
            r.index_objects,
            r.packs,
            r.chunks_checked,
            r.chunks_read,
            if r.is_ok() {
                "no problems".to_string()
            } else {
                format!("{} problems", r.problems.len())
            }
        );
    }
    if r.is_ok() {
        Ok(())
    } else {
        Err(Error::format(
            "vault check",
            vault_format::FormatError::malformed(
                "vault",
                format!(
                    "{} problems found, {} snapshots affected",
                    r.problems.len(),
                    r.affected.len()
                ),
            ),
        ))
    }
}
