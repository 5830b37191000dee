//! `vault snapshot`: a consistent, incremental, deduplicated backup.

use clap::Args;
use serde::Serialize;
use vault::Result;
use vault::kafka::TopicSelection;
use vault::lock::LockKind;
use vault::snapshot::{
    HorizonOverride, KafkaSource, SnapshotOptions, SnapshotPlan, SnapshotRequest,
};

use super::args::{ClientSettings, VaultArgs};
use super::output::{human_bytes, print_json, progress_bar, runtime, warn};

#[derive(Args, Debug)]
pub struct SnapshotArgs {
    #[command(flatten)]
    pub(super) vault: VaultArgs,
    /// Bootstrap servers, HOST:PORT[,HOST:PORT...].
    #[arg(long, value_name = "HOST:PORT", env = "KVAULT_BROKERS")]
    brokers: String,
    #[command(flatten)]
    client: ClientSettings,
    /// Topics to back up, comma-separated (internal topics only when named here).
    #[arg(long, value_delimiter = ',', conflicts_with = "topic_regex")]
    topics: Vec<String>,
    /// Back up the topics whose names match this regular expression.
    #[arg(long, value_name = "RE")]
    topic_regex: Option<String>,
    /// Leave out the topics whose names match this regular expression.
    #[arg(long, value_name = "RE")]
    exclude: Option<String>,
    /// A tag for the snapshot (repeatable); `vault gc --keep-tag` keeps tagged snapshots.
    #[arg(long = "tag", value_name = "T")]
    pub(super) tags: Vec<String>,
    /// Also back up records of open and aborted transactions (default: read_committed).
    #[arg(long)]
    read_uncommitted: bool,
    /// Name this source instead of using its cluster id: needed when the
    /// cluster gives no cluster id or topic IDs. Use the same name on every run.
    #[arg(long, value_name = "NAME")]
    source: Option<String>,
    /// Leave out records older than this (e.g. 90d), overriding the vault's
    /// data horizon; `none` keeps everything.
    #[arg(long, value_name = "DURATION|none")]
    data_horizon: Option<String>,
    /// Take the snapshot together with every other worker started with the
    /// same NAME (on this host or others): the consumer group
    /// kvault-snapshot-NAME-HASH shares the partitions out, and whichever worker
    /// finishes last commits. Every worker exits 0 once it is committed.
    #[arg(long, value_name = "NAME")]
    workers: Option<String>,
    /// With --workers: a worker silent this long is taken for dead and its
    /// partitions go to the others.
    #[arg(long, default_value_t = 10, value_name = "SECS", requires = "workers")]
    pub(super) session_timeout: u64,
    /// With --workers: partitions one worker reads in one pass (each is
    /// committed as a part when its pass ends).
    #[arg(long, default_value_t = 8, value_name = "N", requires = "workers")]
    pub(super) partitions_per_batch: usize,
    /// With --workers: a worker started this soon after its run was
    /// committed (a pod scheduled late) reports that snapshot instead of
    /// starting the next run.
    #[arg(long, default_value_t = 600, value_name = "SECS", requires = "workers")]
    pub(super) rejoin_window: u64,
    /// Take a snapshot every DURATION (e.g. 5m), keeping the process, its
    /// cache and its settings warm; SIGTERM or Ctrl-C between snapshots
    /// exits 0 (during one, it finishes first; a second signal stops at
    /// once, committing nothing of it). Prints a JSON line per snapshot with --json.
    #[arg(long, value_name = "DURATION", conflicts_with = "workers")]
    pub(super) every: Option<String>,
    #[command(flatten)]
    pub(super) keep: super::snapshot_every::KeepArgs,
    /// Write Prometheus text metrics to this file after each snapshot (the
    /// node_exporter textfile collector convention).
    #[arg(long, value_name = "PATH")]
    pub(super) metrics_file: Option<std::path::PathBuf>,
    /// With --every: serve the metrics on http://HOST:PORT/metrics.
    #[arg(long, value_name = "HOST:PORT", requires = "every")]
    pub(super) metrics_addr: Option<String>,
    /// Fail when the cluster delivers nothing for this many seconds.
    #[arg(long, default_value_t = 120, value_name = "SECS")]
    pub(super) stall_timeout: u64,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    pub(super) json: bool,
}

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

pub fn run(a: &SnapshotArgs) -> Result<()> {
    let kafka = a.client.options(&a.brokers)?;
    let request = SnapshotRequest {
        selection: TopicSelection::new(
            a.topics.clone(),
            a.topic_regex.as_deref(),
            a.exclude.as_deref(),
        )?,
        read_committed: !a.read_uncommitted,
        source: a.source.clone(),
    };
    let data_horizon = HorizonOverride::from_flag(a.data_horizon.as_deref())?;
    if let Some(every) = &a.every {
        return super::snapshot_every::run(a, every, &kafka, &request, data_horizon);
    }
    if let Some(name) = &a.workers {
        return super::snapshot_workers::run(a, name, &kafka, &request, data_horizon);
    }
    let taken = take(a, &kafka, &request, data_horizon);
    if let Some(path) = &a.metrics_file {
        let previous = std::fs::read_to_string(path).ok();
        let m = super::snapshot_every::one_shot_metrics(
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
        super::output::info(&format!(
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

/// A cut read while the vault opened is used only if the vault opened and
/// locked within this long; after a wait for the lock it is read again.
const CUT_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(2);

/// The names of the vault's snapshot manifests.
fn snapshot_names(
    storage: &dyn vault::storage::Storage,
) -> Result<std::collections::BTreeSet<String>> {
    Ok(storage
        .list(vault::storage::Kind::Snapshots)?
        .into_iter()
        .map(|l| l.name)
        .collect())
}

/// Takes one snapshot; returns it with the number of partitions read and
/// of the plan's warnings (printed already).
fn take(
    a: &SnapshotArgs,
    kafka: &vault::kafka::KafkaOptions,
    request: &SnapshotRequest,
    data_horizon: HorizonOverride,
) -> Result<(vault::snapshot::SnapshotOutcome, usize, usize)> {
    let rt = runtime()?;
    // The key derivation is CPU and the cut is round trips to the cluster:
    // one does not need the other, so they overlap (docs/benchmarks.md §
    // Fixed cost). The cut is only offsets; the lock guards the vault. The
    // snapshots listed first tell whether one committed meanwhile.
    let listed = snapshot_names(a.vault.storage()?.as_ref())?;
    let started = std::time::Instant::now();
    // How long the vault took to open and lock: a long wait (behind a gc)
    // makes the cut old. The cut's own duration does not: at thousands of
    // partitions it takes seconds, and reading it again would only double
    // them.
    let locked_after = std::sync::Mutex::new(None);
    let (tx, mut opened) = tokio::sync::oneshot::channel();
    let both = std::thread::scope(|s| {
        s.spawn(|| {
            let o = a.vault.open_locked(LockKind::Shared, "snapshot");
            *locked_after.lock().expect("lock time") = Some(started.elapsed());
            // The receiver waits for it on every path; a failed send is harmless.
            let _ = tx.send(o);
        });
        rt.block_on(async {
            let cut = vault::snapshot::Cut::read(kafka, request);
            tokio::pin!(cut);
            tokio::select! {
                // A vault that does not open (a wrong passphrase) is
                // reported at once, not after the cluster's timeouts.
                o = &mut opened => {
                    let (repo, lock) = o.expect("the vault opener ended")?;
                    Ok((repo, lock, cut.await?))
                }
                c = &mut cut => {
                    // The vault's error first, as when it opened first.
                    let (repo, lock) = opened.await.expect("the vault opener ended")?;
                    Ok((repo, lock, c?))
                }
            }
        })
    });
    let (repo, lock, cut) = match both {
        Ok(b) => b,
        Err(e) => {
            // Do not wait for cluster requests nobody needs any more.
            rt.shutdown_background();
            return Err(e);
        }
    };
    // A snapshot that committed after the cut began (snapshots share the
    // lock) may hold more than this cut: newer offsets, new topics or
    // partitions. Or the lock was long in coming (behind a gc) and the cut
    // is old. Either way, under the lock a fresh cut is read, as it always
    // was before the overlap.
    let waited = locked_after
        .into_inner()
        .expect("lock time")
        .unwrap_or_else(|| started.elapsed());
    let stale = waited > CUT_MAX_AGE || snapshot_names(repo.storage().as_ref())? != listed;
    let cut = if stale {
        rt.block_on(vault::snapshot::Cut::read(kafka, request))?
    } else {
        cut
    };
    let mut plan = SnapshotPlan::from_kafka_cut(&repo, kafka, cut, request)?;
    if plan.behind_base && !stale {
        // Not expected once the list is unchanged; a fresh cut tells a
        // cluster that lost records from a race nobody foresaw.
        let cut = rt.block_on(vault::snapshot::Cut::read(kafka, request))?;
        plan = SnapshotPlan::from_kafka_cut(&repo, kafka, cut, request)?;
    }
    vault::timings::mark("planned (cut, configs, groups)");
    for w in &plan.warnings {
        warn(w);
    }
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let mut source = KafkaSource::new(kafka, plan.read_committed)?;
    let opts = SnapshotOptions {
        tags: a.tags.clone(),
        workers,
        stall_timeout: std::time::Duration::from_secs(a.stall_timeout),
        progress: progress_bar(plan.records_to_read(), !a.json),
        data_horizon_ms: data_horizon.resolve(repo.config()),
        partitions_per_pass: None,
    };
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
