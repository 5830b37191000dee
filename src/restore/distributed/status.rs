//! The distributed restores on a target, as `vault status` shows them.

use super::super::progress::{self, Phase};
use crate::error::Result;

/// A distributed restore on a target cluster, as `vault status` shows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RestoreStatus {
    pub restore_id: String,
    /// The run's name (`--workers NAME`).
    pub run: String,
    pub snapshot_id: String,
    pub phase: Phase,
    pub started_ms: u64,
    /// Partitions restored, of the partitions begun (a partition has no
    /// record until a worker first takes it).
    pub partitions_done: usize,
    pub partitions_begun: usize,
    /// Workers that committed partitions (`host/pid`).
    pub workers: Vec<String>,
    pub records: u64,
    pub bytes: u64,
}

/// The distributed restores from vault `vault_id` on the target `kafka`.
pub fn restores_in_progress(
    kafka: &crate::kafka::KafkaOptions,
    vault_id: &str,
) -> Result<Vec<RestoreStatus>> {
    let mut out = Vec::new();
    for own in progress::load_all(kafka)?.records {
        let Some(run) = own.workers.clone() else {
            continue;
        };
        if own.vault_id != vault_id || !own.phase.is_unfinished() {
            continue;
        }
        let topic = progress::partition_progress_topic(&own.restore_id);
        let slots: Vec<i32> = (0..progress::partition_count(kafka, &topic)?).collect();
        let parts = if slots.is_empty() {
            Vec::new()
        } else {
            progress::read_records(kafka, &topic, &slots)?.partition_records
        };
        let workers: std::collections::BTreeSet<String> =
            parts.iter().filter_map(|p| p.worker.clone()).collect();
        out.push(RestoreStatus {
            restore_id: own.restore_id.clone(),
            run,
            snapshot_id: own.snapshot_id.clone(),
            phase: own.phase,
            started_ms: own.started_ms,
            partitions_done: parts.iter().filter(|p| p.phase == Phase::Done).count(),
            partitions_begun: parts.len(),
            workers: workers.into_iter().collect(),
            records: parts
                .iter()
                .flat_map(|p| p.partitions.values())
                .map(|p| p.records)
                .sum(),
            bytes: parts
                .iter()
                .flat_map(|p| p.partitions.values())
                .map(|p| p.bytes)
                .sum(),
        });
    }
    Ok(out)
}
