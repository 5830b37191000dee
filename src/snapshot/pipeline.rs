//! The snapshot data path, a bounded pipeline:
//!
//! ```text
//! reader thread        consume → frame → chunk (per partition, on record boundaries)
//!   │ bounded channel of chunk jobs, numbered in order
//! worker threads       keyed hash → index lookup → zstd
//!   │ bounded channel of sealed-ready chunks
//! packer (caller)      reorder → dedup → encrypt → pack → tree leaves
//! ```
//!
//! Memory is bounded by the two channels, one pending chunk per partition
//! and librdkafka's prefetch queue, whatever the topic size.

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Timestamp};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaErrorCode;
use vault_format::ChunkId;
use vault_format::chunker::{CutChunk, Gear, RecordChunker};
use vault_format::compress::{Compression, Compressor};
use vault_format::keys::SubKeys;
use vault_format::object::ObjectKind;
use vault_format::record::{ExternalValue, Record, RecordHeader, RecordValue, TimestampType};
use vault_format::tree::{LeafStats, TreeBuilder, TreeRoot};

use super::plan::PartitionPlan;
use crate::error::{Error, FormatContext, Result};
use crate::lock::VaultLock;
use crate::pack_writer::{PackWriter, WriteStats};
use crate::repository::{Indexed, Repository};

/// One chunk on its way to a pack.
struct Job {
    seq: u64,
    kind: ObjectKind,
    /// Known for value chunks (the record that refers to them needs it first).
    id: Option<ChunkId>,
    plaintext: Vec<u8>,
    /// For data chunks: the partition and the tree leaf they become.
    leaf: Option<(usize, LeafStats)>,
}

struct Ready {
    seq: u64,
    kind: ObjectKind,
    id: ChunkId,
    /// `None` when the vault already had the chunk, so it was not compressed.
    framed: Option<Vec<u8>>,
    plain_len: usize,
    leaf: Option<(usize, LeafStats)>,
}

/// What the reader saw.
#[derive(Clone, Debug, Default)]
pub struct DrainStats {
    pub records: u64,
    /// Key, value and header bytes of the records read.
    pub bytes: u64,
    /// Offsets retention deleted after the cut and before they were read.
    pub deleted: Vec<DeletedRange>,
}

/// A range of offsets `[from, to)` of a partition (its index in the plan)
/// that retention deleted while the snapshot ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeletedRange {
    pub part: usize,
    pub from: i64,
    pub to: i64,
}

/// The reader's error when the rest of the pipeline has stopped.
const PIPELINE_STOPPED: &str = "snapshot pipeline stopped";

pub struct PipelineOutput {
    pub roots: Vec<Option<TreeRoot>>,
    pub drained: DrainStats,
    pub written: WriteStats,
}

pub struct PipelineOptions {
    pub workers: usize,
    /// How long one metadata request may take.
    pub request_timeout: Duration,
    /// Give up when no record arrives for this long while partitions remain.
    pub stall_timeout: Duration,
    pub progress: Option<ProgressBar>,
}

/// Runs the pipeline over `parts`, consuming with `consumer` (not yet
/// assigned). Returns the new tree root of every partition, in order.
pub fn run(
    repo: &Repository<Indexed>,
    consumer: BaseConsumer,
    parts: &[PartitionPlan],
    opts: &PipelineOptions,
    lock: &VaultLock,
) -> Result<PipelineOutput> {
    let gear = Gear::new(&repo.keys().chunker, repo.config().chunker)
        .ctx(|| "setting up the chunker".into())?;
    let workers = opts.workers.max(1);
    let (job_tx, job_rx) = sync_channel::<Job>(4 * workers);
    let (ready_tx, ready_rx) = sync_channel::<Result<Ready>>(4 * workers);
    let job_rx = Arc::new(Mutex::new(job_rx));

    std::thread::scope(|s| {
        let reader = s.spawn(|| drain(consumer, parts, &gear, repo.keys(), job_tx, opts));
        for _ in 0..workers {
            let (rx, tx) = (Arc::clone(&job_rx), ready_tx.clone());
            let compression = repo.config().compression;
            s.spawn(move || work(repo, compression, rx, tx));
        }
        drop(ready_tx);
        // Only the workers may hold the job queue: if the packer fails (a
        // full disk), they stop, the queue closes, and the reader's next
        // send fails instead of blocking forever.
        drop(job_rx);
        let packed = pack(repo, parts, ready_rx, lock);
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

fn record_of<'m>(m: &'m rdkafka::message::BorrowedMessage<'m>) -> Record<'m> {
    let (timestamp, timestamp_type) = match m.timestamp() {
        Timestamp::NotAvailable => (-1, TimestampType::NotAvailable),
        Timestamp::CreateTime(t) => (t, TimestampType::CreateTime),
        Timestamp::LogAppendTime(t) => (t, TimestampType::LogAppendTime),
    };
    let headers = m
        .headers()
        .map(|h| {
            (0..h.count())
                .map(|i| h.get(i))
                .map(|h| RecordHeader {
                    key: h.key.as_bytes(),
                    value: h.value,
                })
                .collect()
        })
        .unwrap_or_default();
    Record {
        timestamp,
        timestamp_type,
        key: m.key(),
        value: m.payload().map_or(RecordValue::Null, RecordValue::Inline),
        headers,
    }
}

struct PartitionState<'g> {
    chunker: RecordChunker<'g>,
    done: bool,
    /// The offset the next record must have at least: after the last one read.
    next: i64,
}

fn drain(
    consumer: BaseConsumer,
    parts: &[PartitionPlan],
    gear: &Gear,
    keys: &SubKeys,
    tx: SyncSender<Job>,
    opts: &PipelineOptions,
) -> Result<DrainStats> {
    let mut stats = DrainStats::default();
    let mut seq = 0u64;
    let mut send = |kind, id, plaintext, leaf| -> Result<()> {
        let job = Job {
            seq,
            kind,
            id,
            plaintext,
            leaf,
        };
        seq += 1;
        tx.send(job)
            .map_err(|_| Error::Internal(PIPELINE_STOPPED.into()))
    };
    let index: HashMap<(&str, i32), usize> = parts
        .iter()
        .enumerate()
        .map(|(i, p)| ((p.topic.as_str(), p.partition as i32), i))
        .collect();
    let mut states: Vec<PartitionState<'_>> = parts
        .iter()
        .map(|p| PartitionState {
            chunker: RecordChunker::new(gear, p.base_root.map(|r| r.summary.last_offset)),
            done: p.read_from >= p.end,
            next: p.read_from,
        })
        .collect();
    let mut remaining = states.iter().filter(|s| !s.done).count();
    if remaining == 0 {
        return Ok(stats);
    }
    let mut tpl = TopicPartitionList::new();
    for (p, s) in parts.iter().zip(&states) {
        if !s.done {
            tpl.add_partition_offset(&p.topic, p.partition as i32, Offset::Offset(p.read_from))
                .map_err(|e| Error::Kafka {
                    context: "assigning partitions".into(),
                    message: e.to_string(),
                })?;
        }
    }
    consumer.assign(&tpl).map_err(|e| Error::Kafka {
        context: "assigning partitions".into(),
        message: e.to_string(),
    })?;

    let threshold = gear.params().external_value_threshold();
    let mut cut: Vec<CutChunk> = Vec::new();
    let mut last_progress = Instant::now();
    let mut last_position_check = Instant::now();
    let mut last_error: Option<String> = None;

    let finish = |i: usize,
                  states: &mut Vec<PartitionState<'_>>,
                  cut: &mut Vec<CutChunk>,
                  remaining: &mut usize| {
        states[i].chunker.finish(cut);
        states[i].done = true;
        *remaining -= 1;
        let mut t = TopicPartitionList::new();
        t.add_partition(&parts[i].topic, parts[i].partition as i32);
        // Stop fetching what the snapshot does not need.
        let _ = consumer.pause(&t);
    };

    while remaining > 0 {
        // One clock read per message: it showed up in profiles.
        let now = Instant::now();
        let mut check_positions = now - last_position_check > Duration::from_millis(500);
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let Some(&i) = index.get(&(m.topic(), m.partition())) else {
                    continue;
                };
                if states[i].done {
                    continue;
                }
                let offset = m.offset();
                if offset >= parts[i].end {
                    finish(i, &mut states, &mut cut, &mut remaining);
                } else {
                    let mut record = record_of(&m);
                    if let RecordValue::Inline(v) = record.value
                        && v.len() > threshold
                    {
                        let mut parts_out = Vec::new();
                        let mut rest = v;
                        for n in gear.split_value(v) {
                            let (piece, tail) = rest.split_at(n);
                            rest = tail;
                            let id = keys.chunk_id(piece);
                            parts_out.push((id, n as u32));
                            send(ObjectKind::ValueChunk, Some(id), piece.to_vec(), None)?;
                        }
                        record.value = RecordValue::External(ExternalValue {
                            len: v.len() as u64,
                            parts: parts_out,
                        });
                    }
                    stats.records += 1;
                    stats.bytes += record.payload_len();
                    states[i].next = offset + 1;
                    states[i]
                        .chunker
                        .push(&record, offset, &mut cut)
                        .ctx(|| format!("framing {}/{}", parts[i].topic, parts[i].partition))?;
                    if offset >= parts[i].end - 1 {
                        finish(i, &mut states, &mut cut, &mut remaining);
                    }
                }
                for c in cut.drain(..) {
                    send(ObjectKind::DataChunk, None, c.plaintext, Some((i, c.stats)))?;
                }
                last_progress = now;
                if let Some(pb) = opts.progress.as_ref().filter(|_| stats.records % 4096 == 0) {
                    pb.set_position(stats.records);
                    let secs = pb.elapsed().as_secs_f64().max(0.001);
                    pb.set_message(format!(
                        "{} MiB, {:.0} MiB/s",
                        stats.bytes >> 20,
                        stats.bytes as f64 / 1048576.0 / secs
                    ));
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) => check_positions = true,
            Some(Err(KafkaError::MessageConsumption(RDKafkaErrorCode::AutoOffsetReset))) => {
                for i in skip_deleted(&consumer, parts, &states, &mut stats, opts)? {
                    finish(i, &mut states, &mut cut, &mut remaining);
                    for c in cut.drain(..) {
                        send(ObjectKind::DataChunk, None, c.plaintext, Some((i, c.stats)))?;
                    }
                }
                last_progress = now;
            }
            Some(Err(e)) => last_error = Some(e.to_string()),
            None => {}
        }
        if check_positions {
            last_position_check = now;
            // Past the last record, positions move over transaction markers
            // and aborted records that are never delivered.
            if let Ok(pos) = consumer.position() {
                for e in pos.elements() {
                    if let (Some(&i), Offset::Offset(o)) =
                        (index.get(&(e.topic(), e.partition())), e.offset())
                        && !states[i].done
                        && o >= parts[i].end
                    {
                        finish(i, &mut states, &mut cut, &mut remaining);
                        for c in cut.drain(..) {
                            send(ObjectKind::DataChunk, None, c.plaintext, Some((i, c.stats)))?;
                        }
                        last_progress = now;
                    }
                }
            }
        }
        if now.saturating_duration_since(last_progress) > opts.stall_timeout {
            let waiting: Vec<String> = parts
                .iter()
                .zip(&states)
                .filter(|(_, s)| !s.done)
                .take(5)
                .map(|(p, _)| format!("{}/{}", p.topic, p.partition))
                .collect();
            return Err(Error::Kafka {
                context: format!(
                    "no progress for {} s while reading {}",
                    opts.stall_timeout.as_secs(),
                    waiting.join(", ")
                ),
                message: last_error.unwrap_or_else(|| "the cluster delivered no records".into())
                    + "; nothing was committed, run the snapshot again when the cluster is healthy",
            });
        }
    }
    Ok(stats)
}

/// A partition's next offset is gone: retention deleted it after the cut.
/// Kafka's consumer stops such a partition (`auto.offset.reset=error`) and
/// does not say which one; this asks for every unfinished partition's log
/// start and end in one round each, records the deleted ranges, and
/// assigns each unfinished partition again where it must go on: its new
/// log start, or where it stood. Returns the partitions retention emptied
/// up to the cut, which are done.
fn skip_deleted(
    consumer: &BaseConsumer,
    parts: &[PartitionPlan],
    states: &[PartitionState<'_>],
    stats: &mut DrainStats,
    opts: &PipelineOptions,
) -> Result<Vec<usize>> {
    let open: Vec<usize> = (0..parts.len()).filter(|&i| !states[i].done).collect();
    let edge = |at: Offset| -> Result<HashMap<(String, i32), i64>> {
        let mut tpl = TopicPartitionList::new();
        for &i in &open {
            tpl.add_partition_offset(&parts[i].topic, parts[i].partition as i32, at)
                .map_err(kafka_err("listing offsets"))?;
        }
        let res = consumer
            .offsets_for_times(tpl, opts.request_timeout)
            .map_err(kafka_err("listing the log start and end after a reset"))?;
        let mut out = HashMap::new();
        for e in res.elements() {
            if let Offset::Offset(o) = e.offset() {
                out.insert((e.topic().to_string(), e.partition()), o);
            }
        }
        Ok(out)
    };
    let lows = edge(Offset::Beginning)?;
    let highs = edge(Offset::End)?;
    let mut done = Vec::new();
    let mut reassign = TopicPartitionList::new();
    let mut unassign = TopicPartitionList::new();
    for &i in &open {
        let (p, s) = (&parts[i], &states[i]);
        let key = (p.topic.clone(), p.partition as i32);
        let (Some(&low), Some(&high)) = (lows.get(&key), highs.get(&key)) else {
            return Err(Error::Kafka {
                context: format!("reading {}/{} after a reset", p.topic, p.partition),
                message: "the cluster gave no log start or end for it; nothing was committed, \
                          run the snapshot again"
                    .into(),
            });
        };
        if high < p.end {
            return Err(Error::Kafka {
                context: format!("reading {}/{}", p.topic, p.partition),
                message: format!(
                    "its log now ends at {high}, before the cut at {}: the cluster lost records it had \
                     (an unclean leader election?). Nothing was committed; run the snapshot again",
                    p.end
                ),
            });
        }
        let at = if s.next < low {
            stats.deleted.push(DeletedRange {
                part: i,
                from: s.next,
                to: low.min(p.end),
            });
            if low >= p.end {
                done.push(i);
                unassign.add_partition(&p.topic, p.partition as i32);
                continue;
            }
            low
        } else {
            s.next
        };
        // A partition stopped by the reset cannot be seeked; it is
        // assigned again instead.
        unassign.add_partition(&p.topic, p.partition as i32);
        reassign
            .add_partition_offset(&p.topic, p.partition as i32, Offset::Offset(at))
            .map_err(kafka_err("assigning partitions"))?;
    }
    consumer
        .incremental_unassign(&unassign)
        .and_then(|()| consumer.incremental_assign(&reassign))
        .map_err(kafka_err("resuming partitions after a reset"))?;
    Ok(done)
}

fn kafka_err(context: &str) -> impl Fn(KafkaError) -> Error + '_ {
    move |e| Error::Kafka {
        context: context.to_string(),
        message: e.to_string(),
    }
}

fn work(
    repo: &Repository<Indexed>,
    compression: Compression,
    rx: Arc<Mutex<Receiver<Job>>>,
    tx: SyncSender<Result<Ready>>,
) {
    let mut compressor = match Compressor::new(compression) {
        Ok(c) => c,
        Err(e) => {
            let _ = tx.send(Err(Error::format("starting zstd", e)));
            return;
        }
    };
    loop {
        let job = match rx.lock().expect("job queue poisoned").recv() {
            Ok(j) => j,
            Err(_) => return,
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
                    .compress_into(&job.plaintext, &mut f)
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
    lock: &VaultLock,
) -> Result<(Vec<Option<TreeRoot>>, WriteStats)> {
    let mut writer = PackWriter::new(repo)?.guarded_by(lock);
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
                            TreeBuilder::reopen(parts[i].base_root.as_ref(), fanout, &mut writer)?,
                        ),
                    };
                b.push_leaf(stats.into_entry(r.id), &mut writer)?;
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
            Some(b) => b.finish(&mut writer)?,
            None => p.base_root,
        });
    }
    writer.flush()?;
    Ok((roots, writer.stats()))
}
