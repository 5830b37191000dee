//! Restore's data phase: every record of the plan, in transactions, each
//! closed by a progress record. Records go to a [`RecordSink`]: the Kafka
//! transactional producer in production, [`MemorySink`] in tests.
//!
//! [`MemorySink`]: super::sink::MemorySink

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::{Duration, Instant};

use vault_format::record::{RecordIter, RecordValue};

use super::decode::{self, DecodeJob, DecodedChunk};
use super::options::RestoreOptions;
use super::plan::RestorePlan;
use super::progress::{PartitionProgress, ProgressState, partition_key};
use super::sink::{OutRecord, RecordSink};
use super::translate::OffsetTranslator;
use crate::error::{FormatContext, Result};
use crate::reader::{LeafCursor, count_mismatch};
use crate::repository::{Indexed, Repository};

/// A transaction commits after at most this long, whatever its size.
const TRANSACTION_MAX_AGE: Duration = Duration::from_secs(10);

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
