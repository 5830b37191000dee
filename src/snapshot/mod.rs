//! `vault snapshot`: a consistent, incremental, deduplicated backup.
//!
//! [`prepare()`] opens the vault while it takes the cut, and
//! [`EarlyCut::plan`] works out what to read; [`execute`] reads it through
//! the pipeline, writes packs and index objects, and commits by writing the
//! manifest last. Until then nothing refers to the new data, so an
//! interrupted snapshot commits nothing and the next run dedups against
//! the chunks that were already written.

mod consumer;
pub mod distributed;
mod drain;
pub mod history;
pub mod horizon;
mod memory_source;
pub mod pipeline;
pub mod plan;
mod prepare;
pub mod source;
pub mod upgrade;

use std::time::{Duration, Instant};

use vault_format::ObjectId;
use vault_format::manifest::{PartitionSnapshot, SnapshotManifest, SnapshotStats, TopicSnapshot};

pub use horizon::HorizonOverride;
pub use memory_source::MemorySource;
pub use plan::{Cut, PartitionPlan, SnapshotPlan, SnapshotRequest};
pub use prepare::{CUT_MAX_AGE, Cluster, EarlyCut, prepare};
pub use source::{KafkaSource, RecordSource, SourceEvent};

use crate::error::Result;
use crate::lock::VaultLock;
use crate::now_ms;
use crate::repository::{Indexed, Repository};

pub struct SnapshotOptions {
    pub tags: Vec<String>,
    pub workers: usize,
    pub stall_timeout: Duration,
    pub progress: Option<indicatif::ProgressBar>,
    /// Leave out records older than this (the data horizon); `None` keeps all.
    pub data_horizon_ms: Option<u64>,
    /// Partitions read together in one pass; `None`: as many as
    /// [`partitions_per_pass`] allows for the vault's chunk size.
    pub partitions_per_pass: Option<usize>,
}

/// The result of a committed snapshot.
#[derive(Debug, Clone)]
pub struct SnapshotOutcome {
    pub id: ObjectId,
    pub manifest: SnapshotManifest,
    pub records_read: u64,
    pub bytes_read: u64,
    /// Bytes written to packs (compressed, encrypted).
    pub bytes_added: u64,
    pub chunks_added: u64,
    pub chunks_deduplicated: u64,
    pub duration: Duration,
    pub warnings: Vec<String>,
}

/// What the partitions read at once may hold in their chunkers: each
/// holds its records until a chunk boundary, up to the largest chunk (1 MiB
/// by default). Reading every partition of a 10,000-partition estate at
/// once would hold gigabytes; passes of [`partitions_per_pass`] hold this.
const PASS_BUFFER_BYTES: u64 = 96 << 20;

/// How many partitions with records to read one pass reads together.
pub fn partitions_per_pass(max_chunk: u32) -> usize {
    usize::try_from(PASS_BUFFER_BYTES / u64::from(max_chunk.max(1)))
        .unwrap_or(usize::MAX)
        .clamp(8, 4096)
}

/// Runs the pipeline over `parts` in passes of at most
/// [`partitions_per_pass`] partitions that have records to read, into one
/// pack writer. Partitions with nothing to read keep their base tree and
/// cost no pass. The output is as one pass over all of them would give.
fn read_in_passes(
    repo: &Repository<Indexed>,
    source: &mut (dyn RecordSource + Send),
    parts: &[PartitionPlan],
    opts: &pipeline::PipelineOptions,
    per_pass: usize,
    lock: &VaultLock,
) -> Result<pipeline::PipelineOutput> {
    let mut writer = crate::pack_writer::PackWriter::new(repo)?.guarded_by(lock);
    let mut out = pipeline::PipelineOutput {
        roots: parts.iter().map(|p| p.base_root).collect(),
        drained: pipeline::DrainStats {
            per_partition: vec![(0, 0); parts.len()],
            ..Default::default()
        },
        written: Default::default(),
    };
    let to_read: Vec<usize> = (0..parts.len())
        .filter(|i| parts[*i].records_to_read() > 0)
        .collect();
    for pass in to_read.chunks(per_pass) {
        let pass_parts: Vec<PartitionPlan> = pass.iter().map(|i| parts[*i].clone()).collect();
        let opts = pipeline::PipelineOptions {
            workers: opts.workers,
            stall_timeout: opts.stall_timeout,
            progress: opts.progress.clone(),
            progress_base: (out.drained.records, out.drained.bytes),
        };
        let got = pipeline::run_into(repo, source, &pass_parts, &opts, &mut writer)?;
        for (k, root) in got.roots.into_iter().enumerate() {
            out.roots[pass[k]] = root;
            out.drained.per_partition[pass[k]] = got.drained.per_partition[k];
        }
        out.drained.records += got.drained.records;
        out.drained.bytes += got.drained.bytes;
        out.drained
            .deleted
            .extend(
                got.drained
                    .deleted
                    .into_iter()
                    .map(|d| pipeline::DeletedRange {
                        part: pass[d.part],
                        ..d
                    }),
            );
    }
    writer.flush()?;
    out.written = writer.stats();
    Ok(out)
}

/// Reads what `plan` says, then commits the snapshot, unless `lock` (the
/// shared lock the snapshot runs under) was lost meanwhile.
pub fn execute(
    repo: &Repository<Indexed>,
    plan: &SnapshotPlan,
    opts: &SnapshotOptions,
    lock: &VaultLock,
    source: &mut (dyn RecordSource + Send),
) -> Result<SnapshotOutcome> {
    crate::faults::pause_point("snapshot-planned");
    let started = Instant::now();
    let time_ms = now_ms();
    // Chunks an interrupted run already wrote are reused, not written again;
    // the parts of its unfinished uploads are thrown away.
    repo.adopt_orphan_packs()?;
    // Housekeeping: a failure here must not cost the backup.
    let uploads_aborted = crate::lock::abort_dead_uploads(repo.storage().as_ref());
    crate::timings::mark("orphan packs adopted, dead uploads aborted");
    let popts = pipeline::PipelineOptions {
        workers: opts.workers,
        stall_timeout: opts.stall_timeout,
        progress: opts.progress.clone(),
        progress_base: (0, 0),
    };
    let per_pass = opts
        .partitions_per_pass
        .unwrap_or_else(|| partitions_per_pass(repo.config().chunker.max))
        .max(1);
    let out = read_in_passes(repo, source, &plan.partitions, &popts, per_pass, lock)?;
    crate::timings::mark("records read and packed");
    if let Some(pb) = &opts.progress {
        pb.finish_and_clear();
    }

    // The data horizon drops whole leading chunks older than the cutoff.
    let mut roots = out.roots;
    let horizon_bytes =
        horizon::apply_to_roots(repo, &mut roots, time_ms, opts.data_horizon_ms, lock)?;
    let mut topics = Vec::new();
    let mut roots = roots.into_iter();
    let mut parts = plan.partitions.iter().enumerate();
    for (t, configs) in &plan.topics {
        let mut partitions = Vec::new();
        for _ in 0..t.partitions {
            let (i, p) = parts.next().expect("one plan per partition");
            let root = roots.next().expect("one root per partition");
            // Retention that struck after the cut moved the real log start.
            let log_start = out
                .drained
                .deleted
                .iter()
                .filter(|d| d.part == i)
                .map(|d| d.to)
                .fold(p.log_start, i64::max);
            partitions.push(PartitionSnapshot {
                partition: p.partition,
                log_start_offset: log_start,
                end_offset: p.end,
                root,
            });
        }
        topics.push(TopicSnapshot {
            name: t.name.clone(),
            topic_id: t.id,
            replication_factor: t.replication_factor,
            configs: configs.clone(),
            partitions,
        });
    }
    let mut warnings = plan.warnings.clone();
    match uploads_aborted {
        Ok(0) => {}
        Ok(n) => warnings.push(format!(
            "aborted {n} multipart uploads that an interrupted vault process left unfinished"
        )),
        Err(e) => warnings.push(format!(
            "could not abort the uploads interrupted vault processes left unfinished ({e}); \
             the next snapshot or gc tries again"
        )),
    }
    // Damage met on the way (an unreadable pack no index lists).
    warnings.extend(repo.take_warnings());
    for d in &out.drained.deleted {
        let p = &plan.partitions[d.part];
        warnings.push(format!(
            "{}/{}: offsets {}..{} were deleted by retention after the cut and before vault read them; \
             they are not in this snapshot",
            p.topic, p.partition, d.from, d.to
        ));
    }
    let duration = started.elapsed();
    let manifest = SnapshotManifest {
        time_ms,
        parent: plan.parent,
        source: plan.source.clone(),
        source_cluster_id: plan.cluster_id.clone(),
        selection: plan.selection.clone(),
        hostname: crate::host::hostname(),
        tags: opts.tags.clone(),
        read_committed: plan.read_committed,
        topics,
        groups: plan.groups.clone(),
        estate: plan.estate.clone(),
        stats: SnapshotStats {
            records_read: out.drained.records,
            bytes_read: out.drained.bytes,
            bytes_added: out.written.pack_bytes_written + horizon_bytes,
            chunks_added: out.written.chunks_added,
            duration_ms: duration.as_millis() as u64,
        },
    };
    // The commit point. A snapshot whose lock lapsed may refer to chunks a
    // gc has deleted since: it commits nothing.
    lock.check()?;
    let id = repo.write_snapshot(&manifest)?;
    // Lost while the manifest was written (a pause at the worst moment):
    // take the commit back rather than leave a snapshot gc may have gutted.
    if let Err(e) = lock.check() {
        let _ = repo.storage().delete(&crate::storage::ObjectName::new(
            crate::storage::Dir::Snapshots,
            id.to_hex(),
        ));
        return Err(e);
    }
    Ok(SnapshotOutcome {
        id,
        records_read: out.drained.records,
        bytes_read: out.drained.bytes,
        bytes_added: out.written.pack_bytes_written + horizon_bytes,
        chunks_added: out.written.chunks_added,
        chunks_deduplicated: out.written.chunks_deduplicated,
        duration,
        warnings,
        manifest,
    })
}
