//! Where restored records go: the [`RecordSink`] the data phase writes
//! through. The Kafka transactional producer is one (`produce.rs`);
//! [`MemorySink`] is another, for tests: it numbers records as a partition
//! log would, so the offset translation can be tested without a broker.

use std::collections::BTreeMap;

use super::progress::ProgressState;
use crate::error::Result;

/// One record to send, borrowed from a decoded chunk.
pub struct OutRecord<'a> {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: &'a [vault_format::record::RecordHeader<'a>],
}

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
