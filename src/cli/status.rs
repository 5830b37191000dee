//! `vault status`: the distributed snapshots in progress in a vault, with
//! their workers, the partitions done, bytes and rate, and with `--brokers`
//! the distributed restores from this vault running on that target. It
//! takes no lock and changes nothing, so it can watch a run from anywhere.

use std::collections::BTreeSet;

use clap::Args;
use serde::Serialize;
use vault::Result;
use vault::snapshot::distributed::{PlanInProgress, plans_in_progress};

use vault::restore::distributed::{RestoreStatus, restores_in_progress};

use super::args::{ClientSettings, VaultArgs};
use super::output::{format_time, human_bytes, print_json};

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

#[derive(Serialize)]
pub(super) struct RunStatus {
    /// The run's name (`--workers NAME`).
    pub run: String,
    pub started: String,
    pub started_ms: u64,
    /// Who took the cut.
    pub planned_by: String,
    pub topics: Vec<String>,
    pub partitions: usize,
    pub partitions_done: usize,
    /// Workers that have finished partitions (`host/pid`).
    pub workers: Vec<String>,
    /// Read so far by the finished partitions, and the rate since the cut.
    pub records_read: u64,
    pub bytes_read: u64,
    pub bytes_added: u64,
    pub bytes_per_second: f64,
}

impl RunStatus {
    pub(super) fn of(p: &PlanInProgress) -> RunStatus {
        let t = &p.plan.template;
        let bytes_read: u64 = p.parts.values().map(|x| x.bytes_read).sum();
        let elapsed_s = vault::now_ms().saturating_sub(p.plan.created_ms) as f64 / 1000.0;
        let workers: BTreeSet<String> = p.parts.values().map(|x| x.worker.clone()).collect();
        RunStatus {
            run: p.plan.name.clone(),
            started: format_time(p.plan.created_ms),
            started_ms: p.plan.created_ms,
            planned_by: t.hostname.clone(),
            topics: t.topics.iter().map(|t| t.name.clone()).collect(),
            partitions: p.total_partitions(),
            partitions_done: p.parts.len(),
            workers: workers.into_iter().collect(),
            records_read: p.parts.values().map(|x| x.records_read).sum(),
            bytes_read,
            bytes_added: p.parts.values().map(|x| x.bytes_added).sum(),
            bytes_per_second: if elapsed_s > 0.0 {
                bytes_read as f64 / elapsed_s
            } else {
                0.0
            },
        }
    }
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
