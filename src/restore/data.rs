//! Restore's data phase: every record of the plan, in transactions, each
//! closed by a progress record. Records go to a [`RecordSink`]: the Kafka
//! transactional producer in production, [`MemorySink`] in tests, which
//! numbers records as a partition log would, so the offset translation
//! can be tested without a broker.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::{Duration, Instant};

use vault_format::record::{RecordIter, RecordValue};

use super::RestoreOptions;
use super::decode::{self, DecodeJob, DecodedChunk};
use super::plan::RestorePlan;
use super::produce::OutRecord;
use super::progress::{PartitionProgress, ProgressState, partition_key};
use super::translate::OffsetTranslator;
use crate::error::{FormatContext, Result};
use crate::reader::{LeafCursor, count_mismatch};
use crate::repository::{Indexed, Repository};

/// A transaction commits after at most this long, whatever its size.
const TRANSACTION_MAX_AGE: Duration = Duration::from_secs(10);

/// Where restored records go: a transactional log per target partition.
/// Records and the progress record of one transaction commit together.
pub trait RecordSink {
    fn begin(&self) -> Result<()>;
    /// Queues one record of plan partition `part`. `mark` is 0, or a
    /// translation slot + 1 whose target offset [`RecordSink::flush`] reports.
    fn send(
        &self,
        part: usize,
        topic: &str,
        partition: u32,
        record: &OutRecord<'_>,
        mark: usize,
    ) -> Result<()>;
    /// Serves delivery reports without waiting.
    fn poll(&self);
    /// Waits until every queued record is acknowledged; returns the target
    /// offsets of the marked records, `(slot, offset)`.
    fn flush(&self) -> Result<Vec<(usize, i64)>>;
    /// The highest acknowledged target offset of plan partition `part`.
    fn last_offset(&self, part: usize) -> Option<i64>;
    /// Adds the progress record to the open transaction and commits it.
    fn commit(&self, state: &ProgressState) -> Result<()>;
    /// Aborts the open transaction (best effort).
    fn abort(&self);
}

/// Restores every record of `plan` that `state` does not count yet,
/// committing progress into `state` as transactions close.
pub fn restore_records(
    repo: &Repository<Indexed>,
    plan: &RestorePlan,
    opts: &RestoreOptions,
    sink: &dyn RecordSink,
    state: &mut ProgressState,
) -> Result<()> {
    let mut phase = DataPhase::new(plan, opts, sink, state);
    let jobs = phase.jobs(repo);
    sink.begin()?;
    // On object storage each read is a ranged GET, mostly latency: more
    // readers than cores keep enough requests in flight, and a deeper
    // read-ahead lets each read cover several neighbouring chunks
    // (decode.rs): 2 MiB of chunks per reader, whatever the vault's chunk
    // size, so a vault of large chunks does not hold more. On a disk, 16
    // decoded chunks (4 MiB at the default chunk size) ride out the
    // producer's bursts.
    let concurrency = repo.storage().concurrency();
    let readers = opts.workers.max(concurrency);
    let avg_chunk = (repo.config().chunker.avg as usize).max(1);
    let depth = if concurrency > 2 {
        (readers * (2 << 20) / avg_chunk).max(2 * readers)
    } else {
        16
    };
    let result = decode::run_ordered(repo, jobs, readers, depth, &mut |chunk| {
        phase.consume(&chunk)
    });
    let result = result.and_then(|()| phase.checkpoint());
    // The last checkpoint opened a transaction that stays empty; a failed
    // one is aborted (a rerun's init_transactions would abort it anyway).
    sink.abort();
    result
}

/// The data phase's state between chunks.
struct DataPhase<'a> {
    plan: &'a RestorePlan,
    opts: &'a RestoreOptions,
    sink: &'a dyn RecordSink,
    /// The committed progress.
    state: &'a mut ProgressState,
    keys: Vec<String>,
    /// Progress including the open transaction.
    pending: Vec<PartitionProgress>,
    translators: Vec<OffsetTranslator>,
    /// Translation slots of the open transaction: (partition, wanted range).
    slots: Vec<(usize, Range<usize>)>,
    txn_bytes: u64,
    txn_started: Instant,
}

impl<'a> DataPhase<'a> {
    fn new(
        plan: &'a RestorePlan,
        opts: &'a RestoreOptions,
        sink: &'a dyn RecordSink,
        state: &'a mut ProgressState,
    ) -> DataPhase<'a> {
        let keys: Vec<String> = plan
            .partitions
            .iter()
            .map(|p| partition_key(&p.target_topic, p.partition))
            .collect();
        let pending: Vec<PartitionProgress> = keys
            .iter()
            .map(|k| state.partitions.get(k).cloned().unwrap_or_default())
            .collect();
        let translators = plan
            .partitions
            .iter()
            .zip(&pending)
            .map(|(p, c)| OffsetTranslator::new(p.group_offsets.clone(), &c.translations))
            .collect();
        DataPhase {
            plan,
            opts,
            sink,
            state,
            keys,
            pending,
            translators,
            slots: Vec::new(),
            txn_bytes: 0,
            txn_started: Instant::now(),
        }
    }

    /// The chunks still to restore, interleaved across partitions so all of
    /// them progress together. Each partition's leaves are walked lazily,
    /// so memory does not grow with the snapshot.
    fn jobs<'r>(&self, repo: &'r Repository<Indexed>) -> Interleave<'r> {
        let window = self.plan.window;
        let mut cursors = Vec::new();
        let mut total = 0;
        for (i, p) in self.plan.partitions.iter().enumerate() {
            let Some(root) = p.root else { continue };
            let from = self.pending[i].next_source_offset;
            // For the progress bar: the records still to go, about.
            total += root.summary.records.saturating_sub(self.pending[i].records);
            let keep = Box::new(move |s: &vault_format::tree::Summary| {
                s.last_offset >= from && window.overlaps(s.min_ts, s.max_ts)
            });
            cursors.push((i, LeafCursor::new(repo, root, keep)));
        }
        if let Some(pb) = &self.opts.progress {
            pb.set_length(total);
        }
        Interleave { cursors, turn: 0 }
    }

    /// Sends one decoded chunk's records; closes the transaction when it is
    /// big or old enough.
    fn consume(&mut self, chunk: &DecodedChunk) -> Result<()> {
        let p = &self.plan.partitions[chunk.part];
        let window = self.plan.window;
        let stats = chunk.leaf.leaf_stats();
        let n = stats.records;
        let mut offsets = stats.offsets();
        let mut external = chunk.external.iter().peekable();
        let mut seen = 0;
        for (i, r) in RecordIter::new(&chunk.plain).enumerate() {
            let r = r.ctx(|| format!("decoding data chunk {}", chunk.leaf.id))?;
            let offset = offsets
                .next()
                .ok_or_else(|| count_mismatch(&chunk.leaf.id))?;
            seen += 1;
            let value = match &r.value {
                RecordValue::Null => None,
                RecordValue::Inline(v) => Some(*v),
                RecordValue::External(_) => match external.next_if(|(at, _)| *at == i) {
                    Some((_, v)) => Some(&v[..]),
                    None => return Err(count_mismatch(&chunk.leaf.id)),
                },
            };
            let progress = &mut self.pending[chunk.part];
            if offset < progress.next_source_offset || !window.contains(r.timestamp) {
                continue;
            }
            let mark = match self.translators[chunk.part].claim(offset) {
                Some(range) => {
                    self.slots.push((chunk.part, range));
                    self.slots.len()
                }
                None => 0,
            };
            let out = OutRecord {
                offset,
                timestamp: r.timestamp,
                key: r.key,
                value,
                headers: &r.headers,
            };
            self.sink
                .send(chunk.part, &p.target_topic, p.partition, &out, mark)?;
            let len = r.payload_len();
            progress.next_source_offset = offset + 1;
            progress.records += 1;
            progress.bytes += len;
            self.txn_bytes += len;
        }
        if seen != n {
            return Err(count_mismatch(&chunk.leaf.id));
        }
        self.sink.poll();
        if let Some(pb) = &self.opts.progress {
            pb.inc(n);
            let secs = pb.elapsed().as_secs_f64().max(0.001);
            let bytes: u64 = self.pending.iter().map(|p| p.bytes).sum();
            pb.set_message(format!(
                "{} MiB, {:.0} MiB/s",
                bytes >> 20,
                bytes as f64 / 1_048_576.0 / secs
            ));
        }
        if self.txn_bytes >= self.opts.transaction_bytes
            || self.txn_started.elapsed() >= TRANSACTION_MAX_AGE
        {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// Commits the open transaction with its progress record, then opens
    /// the next one.
    fn checkpoint(&mut self) -> Result<()> {
        for (slot, offset) in self.sink.flush()? {
            let (part, range) = &self.slots[slot];
            for c in &self.translators[*part].wanted()[range.clone()] {
                self.pending[*part].translations.insert(*c, offset);
            }
        }
        self.slots.clear();
        for (part, progress) in self.pending.iter_mut().enumerate() {
            if let Some(o) = self.sink.last_offset(part) {
                progress.last_target_offset = Some(o);
            }
        }
        let mut next = self.state.clone();
        next.transactions += 1;
        next.partitions = self
            .keys
            .iter()
            .cloned()
            .zip(self.pending.iter().cloned())
            .collect::<BTreeMap<_, _>>();
        self.sink.commit(&next)?;
        crate::faults::crash_point("restore-commit", next.transactions);
        *self.state = next;
        self.txn_bytes = 0;
        self.txn_started = Instant::now();
        self.sink.begin()
    }
}

/// One leaf of each partition in turn, until all are walked.
struct Interleave<'r> {
    /// (plan partition index, its cursor)
    cursors: Vec<(usize, LeafCursor<'r>)>,
    turn: usize,
}

impl Iterator for Interleave<'_> {
    type Item = Result<DecodeJob>;

    fn next(&mut self) -> Option<Result<DecodeJob>> {
        while !self.cursors.is_empty() {
            let at = self.turn % self.cursors.len();
            let (part, cursor) = &mut self.cursors[at];
            match cursor.next() {
                Some(leaf) => {
                    self.turn = at + 1;
                    return Some(leaf.map(|leaf| DecodeJob { part: *part, leaf }));
                }
                None => {
                    self.cursors.remove(at);
                    self.turn = at;
                }
            }
        }
        None
    }
}

/// A restored record as [`MemorySink`] keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SunkRecord {
    /// Its offset in the target log.
    pub target_offset: i64,
    /// Its offset in the source (restore sends records in source order).
    pub source_offset: i64,
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

/// Target partition logs in memory, numbered as Kafka numbers them: each
/// record takes the next offset, and every transaction writes one control
/// marker per partition it touched (commit or abort). Aborted records keep
/// their offsets but are not visible.
#[derive(Debug, Default)]
pub struct MemorySink {
    inner: std::sync::Mutex<SinkLogs>,
}

#[derive(Debug, Default)]
struct SinkLogs {
    /// Committed records per (topic, partition).
    committed: BTreeMap<(String, u32), Vec<SunkRecord>>,
    /// Next offset per (topic, partition).
    next: BTreeMap<(String, u32), i64>,
    /// The open transaction's records, and the partitions it touched.
    open: Vec<((String, u32), SunkRecord)>,
    marks: Vec<(usize, i64)>,
    last: BTreeMap<usize, i64>,
    /// Each committed progress record.
    progress: Vec<ProgressState>,
}

impl MemorySink {
    /// Gives a target partition `n` records restore did not write (a
    /// non-empty target).
    pub fn prefill(&self, topic: &str, partition: u32, n: i64) {
        let mut l = self.inner.lock().expect("sink");
        *l.next.entry((topic.to_string(), partition)).or_default() += n;
    }

    /// The committed records of a target partition, in offset order.
    pub fn committed(&self, topic: &str, partition: u32) -> Vec<SunkRecord> {
        let l = self.inner.lock().expect("sink");
        l.committed
            .get(&(topic.to_string(), partition))
            .cloned()
            .unwrap_or_default()
    }

    /// A partition's end for read_committed readers: after the last marker.
    pub fn end(&self, topic: &str, partition: u32) -> i64 {
        let l = self.inner.lock().expect("sink");
        l.next
            .get(&(topic.to_string(), partition))
            .copied()
            .unwrap_or(0)
    }

    /// The progress records committed, oldest first.
    pub fn progress(&self) -> Vec<ProgressState> {
        self.inner.lock().expect("sink").progress.clone()
    }

    fn close(&self, commit: Option<&ProgressState>) {
        let mut l = self.inner.lock().expect("sink");
        let open = std::mem::take(&mut l.open);
        let mut touched: Vec<(String, u32)> = open.iter().map(|(k, _)| k.clone()).collect();
        touched.sort();
        touched.dedup();
        if let Some(state) = commit {
            for (k, r) in open {
                l.committed.entry(k).or_default().push(r);
            }
            l.progress.push(state.clone());
        }
        // One control marker per partition of the transaction.
        for k in touched {
            *l.next.entry(k).or_default() += 1;
        }
    }
}

impl RecordSink for MemorySink {
    fn begin(&self) -> Result<()> {
        Ok(())
    }

    fn send(
        &self,
        part: usize,
        topic: &str,
        partition: u32,
        record: &OutRecord<'_>,
        mark: usize,
    ) -> Result<()> {
        let mut l = self.inner.lock().expect("sink");
        let key = (topic.to_string(), partition);
        let next = l.next.entry(key.clone()).or_default();
        let target_offset = *next;
        *next += 1;
        if mark > 0 {
            l.marks.push((mark - 1, target_offset));
        }
        let last = l.last.entry(part).or_insert(target_offset);
        *last = (*last).max(target_offset);
        l.open.push((
            key,
            SunkRecord {
                target_offset,
                source_offset: record.offset,
                timestamp: record.timestamp,
                key: record.key.map(<[u8]>::to_vec),
                value: record.value.map(<[u8]>::to_vec),
            },
        ));
        Ok(())
    }

    fn poll(&self) {}

    fn flush(&self) -> Result<Vec<(usize, i64)>> {
        Ok(std::mem::take(&mut self.inner.lock().expect("sink").marks))
    }

    fn last_offset(&self, part: usize) -> Option<i64> {
        self.inner.lock().expect("sink").last.get(&part).copied()
    }

    fn commit(&self, state: &ProgressState) -> Result<()> {
        self.close(Some(state));
        Ok(())
    }

    fn abort(&self) {
        self.close(None);
    }
}
