//! `vault check`: trees, index and packs verified, every damaged object named.

use clap::Args;
use serde::Serialize;
use vault::check::CheckOptions;
use vault::lock::LockKind;
use vault::{Error, Result};

use super::args::VaultArgs;
use super::output::{print_json, spinner};

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

/// `vault check --json`.
#[derive(Serialize)]
struct CheckReport {
    ok: bool,
    snapshots: usize,
    index_objects: usize,
    packs: usize,
    chunks_checked: u64,
    chunks_read: u64,
    /// One line per damaged object.
    problems: Vec<String>,
    /// Snapshots that cannot be fully restored, with their problems.
    affected_snapshots: Vec<AffectedSnapshot>,
}

#[derive(Serialize)]
struct AffectedSnapshot {
    id: String,
    problems: Vec<String>,
}

/// `--read-data-subset 10%` as a share (0.1).
fn share(subset: Option<&str>, all: bool) -> Result<f64> {
    match (subset, all) {
        (_, true) => Ok(1.0),
        (None, false) => Ok(0.0),
        (Some(s), false) => s
            .trim_end_matches('%')
            .parse::<f64>()
            .ok()
            .filter(|p| (0.0..=100.0).contains(p))
            .map(|p| p / 100.0)
            .ok_or_else(|| {
                Error::Usage(format!(
                    "--read-data-subset {s:?}: expected a percentage such as 10%"
                ))
            }),
    }
}

pub fn run(a: &CheckArgs) -> Result<()> {
    let read_data = share(a.read_data_subset.as_deref(), a.read_data)?;
    let (repo, _lock) = a.vault.open_locked(LockKind::Shared, "check")?;
    let progress = spinner(!a.json);
    let r = vault::check::run(
        &repo,
        CheckOptions {
            read_data,
            progress: progress.clone(),
        },
    )?;
    if let Some(pb) = progress {
        pb.finish_and_clear();
    }
    if a.json {
        print_json(&CheckReport {
            ok: r.is_ok(),
            snapshots: r.snapshots,
            index_objects: r.index_objects,
            packs: r.packs,
            chunks_checked: r.chunks_checked,
            chunks_read: r.chunks_read,
            problems: r.problems.clone(),
            affected_snapshots: r
                .affected
                .iter()
                .map(|(id, p)| AffectedSnapshot {
                    id: id.to_hex(),
                    problems: p.iter().cloned().collect(),
                })
                .collect(),
        });
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
        super::output::info(&format!(
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
        ));
    }
    if r.is_ok() {
        Ok(())
    } else {
        Err(Error::Damaged(format!(
            "vault check: {} problems found, {} snapshots affected",
            r.problems.len(),
            r.affected.len()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_data_shares() {
        assert_eq!(share(None, false).unwrap(), 0.0);
        assert_eq!(share(Some("10%"), false).unwrap(), 0.1);
        assert_eq!(share(None, true).unwrap(), 1.0);
        assert!(share(Some("150%"), false).is_err());
        assert!(share(Some("ten"), false).is_err());
    }
}
