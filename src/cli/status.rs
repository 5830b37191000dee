//! `vault status`: the distributed snapshots in progress in a vault, with
//! their workers, the partitions done, bytes and rate, and with `--brokers`
//! the distributed restores from this vault running on that target. It
//! takes no lock and changes nothing, so it can watch a run from anywhere.

use clap::Args;
use serde::Serialize;
use vault::Result;
use vault::snapshot::distributed::plans_in_progress;

use vault::restore::distributed::{RestoreStatus, restores_in_progress};

use super::args::{ClientSettings, VaultArgs};
use super::output::{RunStatus, format_time, human_bytes, print_json};

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// Also show the distributed restores from this vault on this target
    /// cluster (their progress lives there, not in the vault).
    #[arg(long, value_name = "HOST:PORT", env = "KVAULT_TARGET_BROKERS")]
    brokers: Option<String>,
    #[command(flatten)]
    client: ClientSettings,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// `vault status --json`.
#[derive(Serialize)]
struct StatusReport {
    /// Distributed snapshots in progress (`vault snapshot --workers NAME`).
    snapshots: Vec<RunStatus>,
    /// Distributed restores in progress on the target (`--brokers`).
    restores: Vec<RestoreRun>,
}

#[derive(Serialize)]
struct RestoreRun {
    #[serde(flatten)]
    status: RestoreStatus,
    started: String,
    bytes_per_second: f64,
}

pub fn run(a: &StatusArgs) -> Result<()> {
    let repo = a.vault.unlock()?;
    let runs: Vec<RunStatus> = plans_in_progress(&repo)?
        .iter()
        .map(RunStatus::of)
        .collect();
    let restores: Vec<RestoreRun> = match &a.brokers {
        Some(b) => restores_in_progress(&a.client.options(b)?, &repo.vault_id().to_hex())?
            .into_iter()
            .map(|status| {
                let secs = vault::now_ms().saturating_sub(status.started_ms) as f64 / 1000.0;
                RestoreRun {
                    started: format_time(status.started_ms),
                    bytes_per_second: if secs > 0.0 {
                        status.bytes as f64 / secs
                    } else {
                        0.0
                    },
                    status,
                }
            })
            .collect(),
        None => Vec::new(),
    };
    if a.json {
        print_json(&StatusReport {
            snapshots: runs,
            restores,
        });
        return Ok(());
    }
    for r in &restores {
        let s = &r.status;
        println!(
            "restore run {} ({}): {} of the {} partitions begun are done, {} records ({}) restored, started {}; \
             workers so far: {}",
            s.run,
            s.restore_id,
            s.partitions_done,
            s.partitions_begun,
            s.records,
            human_bytes(s.bytes),
            r.started,
            s.workers.join(", ")
        );
    }
    if runs.is_empty() {
        println!("no distributed snapshot in progress in {}", a.vault.vault);
        return Ok(());
    }
    for r in &runs {
        println!(
            "snapshot run {}: {}/{} partitions done, {} read ({}/s), {} added; started {} by {}; workers so far: {}",
            r.run,
            r.partitions_done,
            r.partitions,
            human_bytes(r.bytes_read),
            human_bytes(r.bytes_read * 1000 / vault::now_ms().saturating_sub(r.started_ms).max(1)),
            human_bytes(r.bytes_added),
            r.started,
            r.planned_by,
            if r.workers.is_empty() {
                "none has finished a partition yet".to_string()
            } else {
                r.workers.join(", ")
            }
        );
    }
    Ok(())
}
