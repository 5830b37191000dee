//! `vault snapshots`: the vault's snapshots, grouped as gc counts them.

use std::collections::BTreeMap;

use clap::Args;
use serde::Serialize;
use vault::Result;
use vault::catalog::{CatalogEntry, GroupBy};

use super::args::VaultArgs;
use super::output::{format_time, human_bytes, print_json};

#[derive(Args, Debug)]
pub struct SnapshotsArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// List the distributed snapshots in progress instead (plans whose
    /// workers are running, or all died: the next run of the same NAME
    /// resumes them; `vault forget --plan NAME` drops one).
    #[arg(long)]
    in_progress: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// One snapshot in `vault snapshots --json` (an array of these).
#[derive(Serialize)]
struct SnapshotItem {
    id: String,
    time: String,
    time_ms: u64,
    parent: Option<String>,
    source: String,
    source_cluster_id: String,
    selection: String,
    /// The gc group it belongs to (source and selection).
    group: String,
    read_committed: bool,
    topics: Vec<String>,
    /// Topic name → its Kafka topic ID (null in format 1 snapshots).
    topic_ids: BTreeMap<String, Option<String>>,
    records: u64,
    bytes: u64,
    tags: Vec<String>,
}

pub fn run(a: &SnapshotsArgs) -> Result<()> {
    let repo = a.vault.unlock()?;
    if a.in_progress {
        let runs: Vec<super::output::RunStatus> =
            vault::snapshot::distributed::plans_in_progress(&repo)?
                .iter()
                .map(super::output::RunStatus::of)
                .collect();
        if a.json {
            print_json(&runs);
        } else if runs.is_empty() {
            println!("no distributed snapshot in progress in {}", a.vault.vault);
        } else {
            for r in &runs {
                println!(
                    "{}  run {}  {}/{} partitions done  {} topics  planned by {}",
                    r.started,
                    r.run,
                    r.partitions_done,
                    r.partitions,
                    r.topics.len(),
                    r.planned_by
                );
            }
        }
        return Ok(());
    }
    let list = vault::catalog::list(&repo)?;
    let group_by = GroupBy::default();
    if a.json {
        let items: Vec<SnapshotItem> = list
            .iter()
            .map(|e| {
                let m = &e.manifest;
                SnapshotItem {
                    id: e.id.to_hex(),
                    time: format_time(m.time_ms),
                    time_ms: m.time_ms,
                    parent: m.parent.map(|p| p.to_hex()),
                    source: m.source.clone(),
                    source_cluster_id: m.source_cluster_id.clone(),
                    selection: m.selection.to_string(),
                    group: group_by.key(m).to_string(),
                    read_committed: m.read_committed,
                    topics: m.topics.iter().map(|t| t.name.clone()).collect(),
                    topic_ids: m
                        .topics
                        .iter()
                        .map(|t| (t.name.clone(), t.topic_id.map(|i| i.to_kafka_string())))
                        .collect(),
                    records: m.total_records(),
                    bytes: m.total_bytes(),
                    tags: m.tags.clone(),
                }
            })
            .collect();
        print_json(&items);
        return Ok(());
    }
    if list.is_empty() {
        println!("no snapshots in {}", a.vault.vault);
        return Ok(());
    }
    // One table per group: the snapshots gc's keep rules count together.
    let mut groups: BTreeMap<_, Vec<&CatalogEntry>> = BTreeMap::new();
    for e in &list {
        groups.entry(group_by.key(&e.manifest)).or_default().push(e);
    }
    for (i, (key, entries)) in groups.iter().enumerate() {
        if i > 0 {
            println!();
        }
        println!("{key}:");
        println!(
            "  {:<16}  {:<20}  {:>12}  {:>10}  {:<20}  topics",
            "id", "time (UTC)", "records", "bytes", "tags"
        );
        for e in entries {
            let m = &e.manifest;
            let topics: Vec<_> = m.topics.iter().map(|t| t.name.as_str()).collect();
            println!(
                "  {:<16}  {:<20}  {:>12}  {:>10}  {:<20}  {}{}",
                &e.id.to_hex()[..16],
                format_time(m.time_ms),
                m.total_records(),
                human_bytes(m.total_bytes()),
                m.tags.join(","),
                topics.join(","),
                if m.read_committed {
                    ""
                } else {
                    " (read_uncommitted)"
                }
            );
        }
    }
    Ok(())
}
