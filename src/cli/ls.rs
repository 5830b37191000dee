//! `vault ls SNAPSHOT`: what a snapshot holds, without a cluster.

use clap::Args;
use serde::Serialize;
use vault::Result;
use vault::inspect::{TopicListing, describe};

use super::args::VaultArgs;
use super::output::{format_time, human_bytes, print_json};

#[derive(Args, Debug)]
pub struct LsArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// The snapshot: `latest`, an id, or a unique prefix of one.
    snapshot: String,
    /// Only this topic.
    #[arg(long)]
    topic: Option<String>,
    /// Show what the snapshot recorded of the cluster beside the records:
    /// topic configs and partition counts, ACLs, client quotas, SCRAM users
    /// and dynamic broker configs (a part vault could not read says why).
    #[arg(long)]
    metadata: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// `vault ls --json`.
#[derive(Serialize)]
struct LsReport {
    id: String,
    time: String,
    time_ms: u64,
    source: String,
    topics: Vec<TopicListing>,
}

fn time_range(min: Option<i64>, max: Option<i64>) -> String {
    match (min, max) {
        (Some(a), Some(b)) if a >= 0 && b >= 0 => format!(
            "{} .. {}",
            format_time(a.cast_unsigned()),
            format_time(b.cast_unsigned())
        ),
        _ => "-".into(),
    }
}

pub fn run(a: &LsArgs) -> Result<()> {
    let repo = a.vault.unlock()?;
    let id = repo.resolve_snapshot(&a.snapshot)?;
    let m = repo.read_snapshot(&id)?;
    if a.metadata {
        let listing = vault::estate::EstateListing::of(&m);
        if a.json {
            print_json(&listing);
        } else {
            println!(
                "snapshot {id} taken {} of {}",
                format_time(m.time_ms),
                m.source
            );
            print!("{}", listing.to_text());
        }
        return Ok(());
    }
    let topics = describe(&m, a.topic.as_deref())?;
    if a.json {
        print_json(&LsReport {
            id: id.to_hex(),
            time: format_time(m.time_ms),
            time_ms: m.time_ms,
            source: m.source.clone(),
            topics,
        });
        return Ok(());
    }
    println!(
        "snapshot {id} taken {} of {}",
        format_time(m.time_ms),
        m.source
    );
    for t in &topics {
        println!(
            "\n{}  ({} records, {}, {} partitions)",
            t.topic,
            t.records,
            human_bytes(t.bytes),
            t.partitions.len()
        );
        println!(
            "  {:>9}  {:>23}  {:>23}  {:>10}  {:>10}  time range",
            "partition", "log start .. end (cut)", "held offsets", "records", "bytes"
        );
        for p in &t.partitions {
            let held = match (p.first_offset, p.last_offset) {
                (Some(f), Some(l)) => format!("{f} .. {l}"),
                _ => "-".into(),
            };
            println!(
                "  {:>9}  {:>23}  {:>23}  {:>10}  {:>10}  {}",
                p.partition,
                format!("{} .. {}", p.log_start_offset, p.end_offset),
                held,
                p.records,
                human_bytes(p.bytes),
                time_range(p.min_timestamp, p.max_timestamp)
            );
        }
        for (g, p, o) in &t.group_offsets {
            println!("  group {g}: partition {p} at offset {o}");
        }
    }
    Ok(())
}
