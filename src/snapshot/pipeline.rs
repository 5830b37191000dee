//! The snapshot data path, a bounded pipeline:
//!
//! ```text
//! reader thread        source → frame → chunk (per partition, on record boundaries)
//!   │ bounded channel of chunk jobs, numbered in order
//! worker threads       keyed hash → index lookup → zstd
//!   │ bounded channel of sealed-ready chunks
//! packer (caller)      reorder → dedup → encrypt → pack → tree leaves
//! ```
//!
//! Memory is bounded by the two channels, one pending chunk per partition
//! and the source's own buffer (librdkafka's prefetch queue), whatever the
//! topic size. The records come through the [`RecordSource`] seam, so the
//! whole path runs without Kafka in tests.

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::ProgressBar;
use vault_format::ChunkId;
use vault_format::chunker::Gear;
use vault_format::compress::{Compression, Compressor};
use vault_format::object::ObjectKind;
use vault_format::tree::{LeafStats, TreeBuilder, TreeRoot};

pub use super::drain::{DeletedRange, DrainStats};
use super::drain::{Drain, Job, PIPELINE_STOPPED};
use super::plan::PartitionPlan;
use super::source::RecordSource;
use crate::error::{Error, FormatContext, Result};
use crate::lock::VaultLock;
use crate::pack_writer::{PackWriter, WriteStats};
use crate::repository::{Indexed, Repository};

struct Ready {
    seq: u64,
    kind: ObjectKind,
    id: ChunkId,
    /// `None` when the vault already had the chunk, so it was not compressed.
    framed: Option<Vec<u8>>,
    plain_len: usize,
    leaf: Option<(usize, LeafStats)>,
}

pub struct PipelineOutput {
    pub roots: Vec<Option<TreeRoot>>,
    pub drained: DrainStats,
    pub written: WriteStats,
}

pub struct PipelineOptions {
    pub workers: usize,
    /// Give up when no record arrives for this long while partitions remain.
    pub stall_timeout: Duration,
    pub progress: Option<ProgressBar>,
    /// Records and bytes earlier passes read, so the progress bar counts on.
    pub progress_base: (u64, u64),
}

/// Runs the pipeline over `parts`, reading from `source` (not yet
/// started). Returns the new tree root of every partition, in order.
pub fn run(
    repo: &Repository<Indexed>,
    source: &mut (dyn RecordSource + Send),
    parts: &[PartitionPlan],
    opts: &PipelineOptions,
    lock: &VaultLock,
) -> Result<PipelineOutput> {
    let mut writer = PackWriter::new(repo)?.guarded_by(lock);
    let mut out = run_into(repo, source, parts, opts, &mut writer)?;
    writer.flush()?;
    out.written = writer.stats();
    Ok(out)
}

/// [`run`] into a pack writer the caller keeps and flushes, so several
/// passes over a plan's partitions fill the same packs. The output's
/// `written` is the writer's stats so far.
pub fn run_into(
    repo: &Repository<Indexed>,
    source: &mut (dyn RecordSource + Send),
    parts: &[PartitionPlan],
    opts: &PipelineOptions,
    writer: &mut PackWriter<'_>,
) -> Result<PipelineOutput> {
    let gear = Gear::new(&repo.keys().chunker, repo.config().chunker)
        .ctx(|| "setting up the chunker".into())?;
    let workers = opts.workers.max(1);
    let (job_tx, job_rx) = sync_channel::<Job>(4 * workers);
    let (ready_tx, ready_rx) = sync_channel::<Result<Ready>>(4 * workers);
    let job_rx = Arc::new(Mutex::new(job_rx));

    std::thread::scope(|s| {
        let drain = Drain::new(
            parts,
            &gear,
            repo.keys(),
            job_tx,
            opts.progress.clone().map(|pb| (pb, opts.progress_base)),
        );
        let reader = s.spawn(|| drain.run(source, opts.stall_timeout));
        for _ in 0..workers {
            let (rx, tx) = (Arc::clone(&job_rx), ready_tx.clone());
            let compression = repo.config().compression;
            s.spawn(move || work(repo, compression, &rx, &tx));
        }
        drop(ready_tx);
        // Only the workers may hold the job queue: if the packer fails (a
        // full disk), they stop, the queue closes, and the reader's next
        // send fails instead of blocking forever.
        drop(job_rx);
        let packed = pack(repo, parts, ready_rx, writer);
        let drained = reader.join().expect("reader thread panicked");
        // The reader's error explains a packer that ran dry, and vice versa.
        match (drained, packed) {
            (Ok(d), Ok((roots, written))) => Ok(PipelineOutput {
                roots,
                drained: d,
                written,
            }),
            // The reader only stops because the packer did: its error says why.
            (Err(Error::Internal(m)), Err(e)) if m == PIPELINE_STOPPED => Err(e),
            (Err(e), _) => Err(e),
            (_, Err(e)) => Err(e),
        }
    })
}

fn work(
    repo: &Repository<Indexed>,
    compression: Compression,
    rx: &Mutex<Receiver<Job>>,
    tx: &SyncSender<Result<Ready>>,
) {
    let mut compressor = match Compressor::new(compression) {
        Ok(c) => c,
        Err(e) => {
            let _ = tx.send(Err(Error::format("starting zstd", e)));
            return;
        }
    };
    loop {
        let Ok(job) = rx.lock().expect("job queue poisoned").recv() else {
            return;
        };
        let result = (|| {
            let id = job
                .id
                .unwrap_or_else(|| repo.keys().chunk_id(&job.plaintext));
            let framed = if repo.index_cache().contains(&id)? {
                None
            } else {
                // Room for the worst case, so zstd never makes the vector grow.
                let mut f =
                    Vec::with_capacity(zstd::zstd_safe::compress_bound(job.plaintext.len()) + 16);
                compressor
                    .compress_object_into(job.kind, &job.plaintext, &mut f)
                    .ctx(|| format!("compressing chunk {id}"))?;
                Some(f)
            };
            Ok(Ready {
                seq: job.seq,
                kind: job.kind,
                id,
                framed,
                plain_len: job.plaintext.len(),
                leaf: job.leaf,
            })
        })();
        if tx.send(result).is_err() {
            return;
        }
    }
}

fn pack(
    repo: &Repository<Indexed>,
    parts: &[PartitionPlan],
    rx: Receiver<Result<Ready>>,
    writer: &mut PackWriter<'_>,
) -> Result<(Vec<Option<TreeRoot>>, WriteStats)> {
    let fanout = repo.config().tree_fanout as usize;
    let mut trees: HashMap<usize, TreeBuilder> = HashMap::new();
    let mut waiting: BTreeMap<u64, Ready> = BTreeMap::new();
    let mut next = 0u64;
    for r in rx {
        let r = r?;
        waiting.insert(r.seq, r);
        while let Some(r) = waiting.remove(&next) {
            next += 1;
            match &r.framed {
                Some(f) => {
                    writer.add_compressed(r.kind, r.id, f, r.plain_len)?;
                }
                None => writer.confirm_present(&r.id)?,
            }
            if let Some((i, stats)) = r.leaf {
                let b =
                    match trees.entry(i) {
                        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::hash_map::Entry::Vacant(e) => e.insert(
                            TreeBuilder::reopen(parts[i].base_root.as_ref(), fanout, writer)?,
                        ),
                    };
                b.push_leaf(stats.into_entry(r.id), writer)?;
            }
        }
    }
    if !waiting.is_empty() {
        return Err(Error::Internal(
            "the snapshot pipeline stopped early".into(),
        ));
    }
    let mut roots = Vec::with_capacity(parts.len());
    for (i, p) in parts.iter().enumerate() {
        roots.push(match trees.remove(&i) {
            Some(b) => b.finish(writer)?,
            None => p.base_root,
        });
    }
    Ok((roots, writer.stats()))
}
