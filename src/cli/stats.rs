//! `vault stats`: logical and stored bytes, dedup and compression ratios
//! for the vault, per topic and per snapshot, and what gc would free.

use clap::Args;
use serde::Serialize;
use vault::Result;
use vault::gc::{GcOptions, GcPlan};
use vault::lock::LockKind;
use vault::stats::{VaultStats, measure};

use super::args::{KeepFlags, VaultArgs};
use super::output::{format_time, human_bytes, print_json};

#[derive(Args, Debug)]
pub struct StatsArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// What gc would free with these rules (as `vault gc`); without any,
    /// what it would free keeping every snapshot.
    #[command(flatten)]
    keep: KeepFlags,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
}

/// `vault stats --json`.
#[derive(Serialize)]
struct StatsReport {
    #[serde(flatten)]
    stats: VaultStats,
    /// Bytes of packs `vault gc` with the given rules would delete (packs
    /// rewritten to keep their live chunks included), and the snapshots it
    /// would forget.
    gc_would_free_bytes: u64,
    gc_would_forget: usize,
}

pub fn run(a: &StatsArgs) -> Result<()> {
    let mut policy = vault::gc::policy::gc_policy(
        super::config::profile_keep_rules(),
        a.keep.rules()?,
        vault::catalog::GroupBy::default(),
    )?;
    if policy.is_empty() {
        // No rule: keep everything, and see only what nothing uses.
        policy.rules.within_ms = Some(u64::MAX);
    }
    let (repo, _lock) = a.vault.open_locked(LockKind::Shared, "stats")?;
    let stats = measure(&repo)?;
    // What gc frees once every pack is past its safety margin (stats
    // holds no exclusive lock, so it has no storage clock to age packs by).
    let opts = GcOptions {
        unindexed_min_age: std::time::Duration::ZERO,
        ..GcOptions::default()
    };
    let plan = GcPlan::make(&repo, &policy, &opts, None, None)?;
    let report = StatsReport {
        gc_would_free_bytes: plan.bytes_to_delete(),
        gc_would_forget: plan.forget.len(),
        stats,
    };
    if a.json {
        print_json(&report);
        return Ok(());
    }
    let s = &report.stats;
    println!(
        "{} snapshots: {} of records held, {} stored in {} distinct chunks ({} in packs); dedup {:.1}x, compression {:.1}x",
        s.snapshots,
        human_bytes(s.logical_bytes),
        human_bytes(s.stored.sealed_bytes),
        s.stored.chunks,
        human_bytes(s.pack_bytes),
        s.dedup_ratio,
        s.compression_ratio
    );
    println!(
        "gc would free {} and forget {} snapshots",
        human_bytes(report.gc_would_free_bytes),
        report.gc_would_forget
    );
    println!(
        "\n{:<40} {:>9} {:>12} {:>12} {:>8} {:>8}",
        "topic", "snapshots", "latest", "stored", "dedup", "compr"
    );
    for t in &s.topics {
        println!(
            "{:<40} {:>9} {:>12} {:>12} {:>7.1}x {:>7.1}x",
            t.topic,
            t.snapshots,
            human_bytes(t.latest_logical_bytes),
            human_bytes(t.stored.sealed_bytes),
            t.dedup_ratio,
            t.compression_ratio
        );
    }
    println!(
        "\n{:<18} {:<20} {:>12} {:>12} {:>12}",
        "snapshot", "time (UTC)", "records", "held", "added"
    );
    for r in &s.per_snapshot {
        println!(
            "{:<18} {:<20} {:>12} {:>12} {:>12}",
            &r.id[..16],
            format_time(r.time_ms),
            r.records,
            human_bytes(r.logical_bytes),
            human_bytes(r.bytes_added)
        );
    }
    Ok(())
}
