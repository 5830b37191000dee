//! `vault snapshot` without `--every` or `--workers`: one snapshot.

use serde::Serialize;
use vault::Result;
use vault::kafka::KafkaOptions;
use vault::lock::LockKind;
use vault::metrics::SnapshotMetrics;
use vault::snapshot::{
    CUT_MAX_AGE, HorizonOverride, KafkaSource, SnapshotOutcome, SnapshotRequest,
};

use super::args::SnapshotArgs;
use crate::cli::output::{human_bytes, print_json, progress_bar, runtime, warn};

/// `vault snapshot --json`.
#[derive(Serialize)]
struct SnapshotReport {
    /// The new snapshot's id.
    id: String,
    parent: Option<String>,
    /// The history's source: the cluster id, or the `--source` name.
    source: String,
    source_cluster_id: String,
    selection: String,
    topics: Vec<String>,
    partitions: usize,
    consumer_groups: usize,
    /// Records and key/value/header bytes read from Kafka in this run.
    records_read: u64,
    bytes_read: u64,
    /// Bytes written to packs in this run (compressed, encrypted).
    bytes_added: u64,
    chunks_added: u64,
    chunks_deduplicated: u64,
    /// bytes_read / bytes_added (0 when nothing was added).
    dedup_ratio: f64,
    /// Records the snapshot holds, earlier runs' included.
    records_total: u64,
    duration_ms: u64,
    warnings: Vec<String>,
}

/// One snapshot, reported; with `--metrics-file`, its metrics added to the file's.
pub(super) fn run(
    a: &SnapshotArgs,
    kafka: &KafkaOptions,
    request: &SnapshotRequest,
    horizon: HorizonOverride,
) -> Result<()> {
    let taken = take(a, kafka, request, horizon);
    if let Some(path) = &a.metrics_file {
        let previous = std::fs::read_to_string(path).ok();
        let m = one_shot_metrics(
            previous.as_deref(),
            taken.as_ref().ok().map(|(out, _, _)| out),
        );
        // The snapshot's outcome is what matters; a metrics file that
        // cannot be written is only a warning.
        if let Err(e) = vault::metrics::write_file(path, &m.render()) {
            warn(&e.to_string());
        }
    }
    let (out, partitions, plan_warnings) = taken?;
    // The plan's warnings were printed before; these arose while reading.
    for w in out.warnings.iter().skip(plan_warnings) {
        warn(w);
    }
    let ratio = if out.bytes_added > 0 {
        out.bytes_read as f64 / out.bytes_added as f64
    } else {
        0.0
    };
    if a.json {
        let m = &out.manifest;
        print_json(&SnapshotReport {
            id: out.id.to_hex(),
            parent: m.parent.map(|p| p.to_hex()),
            source: m.source.clone(),
            source_cluster_id: m.source_cluster_id.clone(),
            selection: m.selection.to_string(),
            topics: m.topics.iter().map(|t| t.name.clone()).collect(),
            partitions,
            consumer_groups: m.groups.len(),
            records_read: out.records_read,
            bytes_read: out.bytes_read,
            bytes_added: out.bytes_added,
            chunks_added: out.chunks_added,
            chunks_deduplicated: out.chunks_deduplicated,
            dedup_ratio: ratio,
            records_total: m.total_records(),
            duration_ms: u64::try_from(out.duration.as_millis()).unwrap_or(u64::MAX),
            warnings: out.warnings.clone(),
        });
    } else {
        println!("{}", out.id);
        crate::cli::output::info(&format!(
            "snapshot {} committed: {} records ({}) read from {} partitions, {} added to the vault{}, {} consumer groups, {:.1} s",
            &out.id.to_hex()[..16],
            out.records_read,
            human_bytes(out.bytes_read),
            partitions,
            human_bytes(out.bytes_added),
            if out.bytes_added > 0 {
                format!(" (read/added {ratio:.1}x)")
            } else {
                String::new()
            },
            out.manifest.groups.len(),
            out.duration.as_secs_f64()
        ));
    }
    Ok(())
}

/// Takes one snapshot; returns it with the number of partitions read and
/// of the plan's warnings (printed already).
fn take(
    a: &SnapshotArgs,
    kafka: &KafkaOptions,
    request: &SnapshotRequest,
    horizon: HorizonOverride,
) -> Result<(SnapshotOutcome, usize, usize)> {
    let rt = runtime()?;
    let storage = a.vault.storage()?;
    let prepared =
        vault::snapshot::prepare(&rt, kafka, request, storage.as_ref(), CUT_MAX_AGE, || {
            a.vault.open_locked(LockKind::Shared, "snapshot").map(Some)
        });
    let ((repo, lock), mut cut) = match prepared {
        Ok(p) => p.expect("opening the vault gives up only with an error"),
        Err(e) => {
            // Do not wait for cluster requests nobody needs any more.
            rt.shutdown_background();
            return Err(e);
        }
    };
    let plan = cut.plan(&repo)?;
    vault::timings::mark("planned (cut, configs, groups)");
    for w in &plan.warnings {
        warn(w);
    }
    let mut source = KafkaSource::new(kafka, plan.read_committed)?;
    let opts = a.snapshot_options(
        horizon.resolve(repo.config()),
        progress_bar(plan.records_to_read(), !a.json),
    );
    let out = vault::snapshot::execute(&repo, &plan, &opts, &lock, &mut source)?;
    vault::timings::mark("snapshot committed");
    drop(source);
    vault::timings::mark("consumer closed");
    drop(lock);
    vault::timings::mark("lock released");
    drop(repo);
    vault::timings::mark("index closed");
    drop(rt);
    vault::timings::mark("runtime stopped");
    Ok((out, plan.partitions.len(), plan.warnings.len()))
}

/// The metrics of a single `vault snapshot --metrics-file`, added to those
/// the file holds from earlier runs (so counters count across runs, and a
/// failed run keeps the last success time).
fn one_shot_metrics(previous: Option<&str>, out: Option<&SnapshotOutcome>) -> SnapshotMetrics {
    let mut m = previous.map(SnapshotMetrics::parse).unwrap_or_default();
    match out {
        Some(o) => {
            m.snapshots += 1;
            m.records_read += o.records_read;
            m.bytes_read += o.bytes_read;
            m.bytes_stored += o.bytes_added;
            m.last_duration_s = o.duration.as_secs_f64();
            let now = vault::now_ms();
            m.last_success_s = now as f64 / 1000.0;
            m.last_rpo_s = now.saturating_sub(o.manifest.time_ms) as f64 / 1000.0;
        }
        None => m.errors += 1,
    }
    m
}
