//! `vault gc`: forget snapshots by keep rules, then free what nothing kept uses.

use std::collections::HashMap;

use clap::Args;
use serde::Serialize;
use vault::Result;
use vault::catalog::GroupBy;
use vault::gc::{GcOptions, GcPlan};
use vault::lock::LockKind;
use vault::time::parse_duration;

use super::args::{KeepFlags, VaultArgs};
use super::output::{format_time, human_bytes, print_json, spinner};

#[derive(Args, Debug)]
pub struct GcArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// Keep rules; they add to the profile's keep block (a snapshot any
    /// rule keeps is kept).
    #[command(flatten)]
    keep: KeepFlags,
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
    /// The safety margin, by the storage's clock: a pack file no index
    /// object lists (left by a killed command) is deleted, and a dead or
    /// sparse pack deleted or repacked, only once it is this old. A
    /// running snapshot's newest packs are not indexed yet, and a snapshot
    /// committed moments ago may be missing from a listing that lags.
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

/// `vault gc --json`.
#[derive(Serialize)]
struct GcReport {
    dry_run: bool,
    /// Every snapshot with its group and why it is kept (no reason: forgotten).
    snapshots: Vec<SnapshotDecision>,
    forgotten: Vec<String>,
    packs_to_delete: usize,
    packs_to_repack: usize,
    /// Packs no index lists, old enough to delete.
    orphan_packs: usize,
    /// Packs no index lists, younger than --unindexed-min-age: left.
    young_orphan_packs: usize,
    /// Dead or sparse packs younger than --unindexed-min-age: left.
    young_packs: usize,
    /// Packs no index lists whose trailer is damaged: left for the operator.
    damaged_orphan_packs: Vec<String>,
    /// Groups with no snapshot for a week while their cluster has newer ones.
    quiet_groups: Vec<QuietGroup>,
    bytes_to_delete: u64,
    bytes_to_rewrite: u64,
    live_chunks: u64,
    /// The outcome (null on a dry run).
    packs_deleted: Option<usize>,
    packs_repacked: Option<usize>,
    packs_written: Option<u64>,
    index_objects_rewritten: Option<usize>,
    bytes_freed: Option<i64>,
    uploads_aborted: Option<usize>,
    /// Restore pins that had expired (or whose snapshot was gone), removed.
    pins_removed: Option<usize>,
}

#[derive(Serialize)]
struct SnapshotDecision {
    id: String,
    group: Group,
    keep: bool,
    reasons: Vec<String>,
}

#[derive(Serialize)]
struct Group {
    source: Option<String>,
    selection: Option<String>,
}

#[derive(Serialize)]
struct QuietGroup {
    group: String,
    newest: String,
}

pub fn run(a: &GcArgs) -> Result<()> {
    let policy = vault::gc::policy::gc_policy(
        super::config::profile_keep_rules(),
        a.keep.rules()?,
        GroupBy::parse(&a.group_by)?,
    )?;
    let now = match &a.now {
        Some(t) => u64::try_from(vault::time::parse_time(t, "--now")?).unwrap_or(0),
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
    let spinner = spinner(!a.json);
    let plan = GcPlan::make(&repo, &policy, &opts, Some(&lock), spinner.clone())?;
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
    if a.json {
        print_json(&GcReport {
            dry_run: a.dry_run,
            snapshots: plan
                .decisions
                .iter()
                .map(|d| SnapshotDecision {
                    id: d.id.to_hex(),
                    group: Group {
                        source: d.group.source.clone(),
                        selection: d.group.selection.as_ref().map(ToString::to_string),
                    },
                    keep: d.keep(),
                    reasons: d.reasons.clone(),
                })
                .collect(),
            forgotten: plan.forget.iter().map(|i| i.to_hex()).collect(),
            packs_to_delete: plan.delete_packs.len(),
            packs_to_repack: plan.repack.len(),
            orphan_packs: plan.orphan_packs.len(),
            young_orphan_packs: plan.young_orphan_packs.len(),
            young_packs: plan.young_packs.len(),
            damaged_orphan_packs: plan.damaged_orphan_packs.clone(),
            quiet_groups: plan
                .quiet_groups
                .iter()
                .map(|(g, t)| QuietGroup {
                    group: g.to_string(),
                    newest: format_time(*t),
                })
                .collect(),
            bytes_to_delete: plan.bytes_to_delete(),
            bytes_to_rewrite: plan.bytes_to_rewrite(),
            live_chunks: plan.marked.total(),
            packs_deleted: outcome.as_ref().map(|o| o.packs_deleted),
            packs_repacked: outcome.as_ref().map(|o| o.packs_repacked),
            packs_written: outcome.as_ref().map(|o| o.packs_written),
            index_objects_rewritten: outcome.as_ref().map(|o| o.index_objects_rewritten),
            bytes_freed: outcome.as_ref().map(|o| o.bytes_freed),
            uploads_aborted: outcome.as_ref().map(|o| o.uploads_aborted),
            pins_removed: outcome.as_ref().map(|o| o.pins_removed),
        });
        return Ok(());
    }
    let times: HashMap<_, _> = plan
        .decisions
        .iter()
        .filter_map(|d| Some((d.id, repo.read_snapshot(&d.id).ok()?.time_ms)))
        .collect();
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
        super::output::info(&format!(
            "note: {g} has had no snapshot since {}, while its cluster has newer ones (its topic selection \
             changed?); its own keep rules keep its snapshots. Forget them with `vault forget`, or count \
             them with the rest using --group-by cluster",
            format_time(*t)
        ));
    }
    for p in &plan.damaged_orphan_packs {
        super::output::warn(&format!(
            "pack {p} is damaged and no index lists it; gc left it alone (look at it, then delete it)"
        ));
    }
    if !plan.young_orphan_packs.is_empty() {
        super::output::info(&format!(
            "left {} pack files that no index lists and that are younger than --unindexed-min-age {}: \
             a running command may still index them",
            plan.young_orphan_packs.len(),
            a.unindexed_min_age
        ));
    }
    if !plan.young_packs.is_empty() {
        super::output::info(&format!(
            "left {} packs whose data no kept snapshot uses (or uses little of) because they are younger \
             than --unindexed-min-age {}: a snapshot committed moments ago may not be listed yet. \
             A later gc frees them",
            plan.young_packs.len(),
            a.unindexed_min_age
        ));
    }
    match &outcome {
        None => super::output::info(&format!(
            "dry run: would forget {} snapshots, delete {} packs and repack {} ({} to delete, {} to rewrite); nothing changed",
            plan.forget.len(),
            plan.delete_packs.len() + plan.orphan_packs.len(),
            plan.repack.len(),
            human_bytes(plan.bytes_to_delete()),
            human_bytes(plan.bytes_to_rewrite())
        )),
        Some(o) => super::output::info(&format!(
            "forgot {} snapshots, deleted {} packs (repacked {} into {}), rewrote {} index objects, freed {}",
            o.snapshots_forgotten,
            o.packs_deleted,
            o.packs_repacked,
            o.packs_written,
            o.index_objects_rewritten,
            human_bytes(u64::try_from(o.bytes_freed).unwrap_or(0))
        )),
    }
    if let Some(o) = &outcome
        && o.uploads_aborted > 0
    {
        super::output::info(&format!(
            "aborted {} multipart uploads that interrupted vault processes left unfinished",
            o.uploads_aborted
        ));
    }
    Ok(())
}
