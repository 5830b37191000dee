//! The reader's side of the pipeline: events from a [`RecordSource`] become
//! framed records, cut into chunks per partition, sent to the workers in
//! order. It knows nothing of Kafka.

use std::sync::mpsc::SyncSender;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use vault_format::ChunkId;
use vault_format::chunker::{CutChunk, Gear, RecordChunker};
use vault_format::keys::SubKeys;
use vault_format::object::ObjectKind;
use vault_format::record::{ExternalValue, Record, RecordValue};
use vault_format::tree::LeafStats;

use super::plan::PartitionPlan;
use super::source::{RecordSource, SourceEvent};
use crate::error::{Error, FormatContext, Result};

/// One chunk on its way to a pack.
pub(super) struct Job {
    pub seq: u64,
    pub kind: ObjectKind,
    /// Known for value chunks (the record that refers to them needs it first).
    pub id: Option<ChunkId>,
    pub plaintext: Vec<u8>,
    /// For data chunks: the partition and the tree leaf they become.
    pub leaf: Option<(usize, LeafStats)>,
}

/// What the reader saw.
#[derive(Clone, Debug, Default)]
pub struct DrainStats {
    pub records: u64,
    /// Key, value and header bytes of the records read.
    pub bytes: u64,
    /// Offsets retention deleted after the cut and before they were read.
    pub deleted: Vec<DeletedRange>,
    /// Records and bytes read, per partition of the plan.
    pub per_partition: Vec<(u64, u64)>,
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
pub(super) const PIPELINE_STOPPED: &str = "snapshot pipeline stopped";

/// The reader: one chunker per partition and the queue to the workers.
pub(super) struct Drain<'a> {
    parts: &'a [PartitionPlan],
    gear: &'a Gear,
    keys: &'a SubKeys,
    tx: SyncSender<Job>,
    seq: u64,
    chunkers: Vec<RecordChunker<'a>>,
    done: Vec<bool>,
    remaining: usize,
    cut: Vec<CutChunk>,
    /// Values longer than this go to value chunks of their own.
    external_threshold: usize,
    stats: DrainStats,
    /// The bar, and what earlier passes read (records, bytes).
    progress: Option<(ProgressBar, (u64, u64))>,
    last_event: Instant,
}

impl<'a> Drain<'a> {
    pub fn new(
        parts: &'a [PartitionPlan],
        gear: &'a Gear,
        keys: &'a SubKeys,
        tx: SyncSender<Job>,
        progress: Option<(ProgressBar, (u64, u64))>,
    ) -> Drain<'a> {
        let done: Vec<bool> = parts.iter().map(|p| p.read_from >= p.end).collect();
        Drain {
            parts,
            gear,
            keys,
            tx,
            seq: 0,
            chunkers: parts
                .iter()
                .map(|p| RecordChunker::new(gear, p.base_root.map(|r| r.summary.last_offset)))
                .collect(),
            remaining: done.iter().filter(|d| !**d).count(),
            done,
            cut: Vec::new(),
            external_threshold: gear.params().external_value_threshold(),
            stats: DrainStats {
                per_partition: vec![(0, 0); parts.len()],
                ..DrainStats::default()
            },
            progress,
            last_event: Instant::now(),
        }
    }

    /// Reads everything the plan asks for from `source`. Fails when the
    /// source delivers nothing for `stall_timeout` while partitions remain.
    pub fn run(
        mut self,
        source: &mut dyn RecordSource,
        stall_timeout: Duration,
    ) -> Result<DrainStats> {
        if self.remaining == 0 {
            return Ok(self.stats);
        }
        source.start(self.parts)?;
        while self.remaining > 0 {
            let mut events = 0;
            source.poll(Duration::from_millis(200), &mut |ev| {
                events += 1;
                self.on_event(ev)
            })?;
            let now = Instant::now();
            if events > 0 {
                self.last_event = now;
            } else if now.saturating_duration_since(self.last_event) > stall_timeout {
                return Err(self.stalled(stall_timeout, source.last_error()));
            }
        }
        Ok(self.stats)
    }

    fn stalled(&self, stall_timeout: Duration, last_error: Option<String>) -> Error {
        let waiting: Vec<String> = self
            .parts
            .iter()
            .zip(&self.done)
            .filter(|(_, d)| !**d)
            .take(5)
            .map(|(p, _)| format!("{}/{}", p.topic, p.partition))
            .collect();
        Error::Kafka {
            context: format!(
                "no progress for {} s while reading {}",
                stall_timeout.as_secs(),
                waiting.join(", ")
            ),
            message: last_error.unwrap_or_else(|| "the cluster delivered no records".into())
                + "; nothing was committed, run the snapshot again when the cluster is healthy",
        }
    }

    fn on_event(&mut self, ev: SourceEvent<'_>) -> Result<()> {
        match ev {
            SourceEvent::Record {
                part,
                offset,
                record,
            } => self.on_record(part, offset, record),
            SourceEvent::Done { part } => self.finish(part),
            SourceEvent::Deleted { part, from, to } => {
                self.stats.deleted.push(DeletedRange { part, from, to });
                Ok(())
            }
        }
    }

    fn on_record(&mut self, part: usize, offset: i64, mut record: Record<'_>) -> Result<()> {
        if self.done[part] {
            return Ok(());
        }
        if let RecordValue::Inline(v) = record.value
            && v.len() > self.external_threshold
        {
            let mut pieces = Vec::new();
            let mut rest = v;
            for n in self.gear.split_value(v) {
                let (piece, tail) = rest.split_at(n);
                rest = tail;
                let id = self.keys.chunk_id(piece);
                pieces.push((id, u32::try_from(n).expect("value chunks are small")));
                self.send(ObjectKind::ValueChunk, Some(id), piece.to_vec(), None)?;
            }
            record.value = RecordValue::External(ExternalValue {
                len: v.len() as u64,
                parts: pieces,
            });
        }
        let len = record.payload_len();
        self.stats.records += 1;
        self.stats.bytes += len;
        let counted = &mut self.stats.per_partition[part];
        counted.0 += 1;
        counted.1 += len;
        let p = &self.parts[part];
        self.chunkers[part]
            .push(&record, offset, &mut self.cut)
            .ctx(|| format!("framing {}/{}", p.topic, p.partition))?;
        self.send_cut(part)?;
        if let Some((pb, (records, bytes))) = self
            .progress
            .as_ref()
            .filter(|_| self.stats.records.is_multiple_of(4096))
        {
            let bytes = bytes + self.stats.bytes;
            pb.set_position(records + self.stats.records);
            let secs = pb.elapsed().as_secs_f64().max(0.001);
            pb.set_message(format!(
                "{} MiB, {:.0} MiB/s",
                bytes >> 20,
                bytes as f64 / 1_048_576.0 / secs
            ));
        }
        Ok(())
    }

    fn finish(&mut self, part: usize) -> Result<()> {
        if self.done[part] {
            return Ok(());
        }
        self.chunkers[part].finish(&mut self.cut);
        self.done[part] = true;
        self.remaining -= 1;
        self.send_cut(part)
    }

    fn send_cut(&mut self, part: usize) -> Result<()> {
        let cut = std::mem::take(&mut self.cut);
        for c in cut {
            self.send(
                ObjectKind::DataChunk,
                None,
                c.plaintext,
                Some((part, c.stats)),
            )?;
        }
        Ok(())
    }

    fn send(
        &mut self,
        kind: ObjectKind,
        id: Option<ChunkId>,
        plaintext: Vec<u8>,
        leaf: Option<(usize, LeafStats)>,
    ) -> Result<()> {
        let job = Job {
            seq: self.seq,
            kind,
            id,
            plaintext,
            leaf,
        };
        self.seq += 1;
        self.tx
            .send(job)
            .map_err(|_| Error::Internal(PIPELINE_STOPPED.into()))
    }
}
