//! `vault diff A B`: what snapshot B holds beyond snapshot A, per
//! partition, and which consumer-group offsets moved.

use clap::Args;
use vault::Result;
use vault::inspect::diff;

use super::args::VaultArgs;
use super::output::{human_bytes, print_json};

#[derive(Args, Debug)]
pub struct DiffArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// The older snapshot.
    a: String,
    /// The newer snapshot.
    b: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(a: &DiffArgs) -> Result<()> {
    let repo = a.vault.unlock()?;
    let ma = repo.read_snapshot(&repo.resolve_snapshot(&a.a)?)?;
    let mb = repo.read_snapshot(&repo.resolve_snapshot(&a.b)?)?;
    let d = diff(&ma, &mb);
    if a.json {
        print_json(&d);
        return Ok(());
    }
    for c in &d.partitions {
        let range = |r: Option<(i64, i64)>| r.map_or("-".to_string(), |(f, t)| format!("{f}..{t}"));
        println!(
            "{}/{}: {}{}{}{}",
            c.topic,
            c.partition,
            c.change,
            if c.added.is_some() {
                format!(
                    ", offsets {} ({} records, {})",
                    range(c.added),
                    c.records_added,
                    human_bytes(c.bytes_added.max(0).cast_unsigned())
                )
            } else {
                String::new()
            },
            if c.deleted_by_retention.is_some() {
                format!(
                    ", retention deleted {} on the cluster",
                    range(c.deleted_by_retention)
                )
            } else {
                String::new()
            },
            if c.never_backed_up.is_some() {
                format!(
                    ", offsets {} were deleted before any snapshot read them",
                    range(c.never_backed_up)
                )
            } else {
                String::new()
            }
        );
    }
    for g in &d.groups {
        let o = |x: Option<i64>| x.map_or("-".to_string(), |v| v.to_string());
        println!(
            "group {} on {}/{}: {} -> {}",
            g.group,
            g.topic,
            g.partition,
            o(g.from),
            o(g.to)
        );
    }
    Ok(())
}
