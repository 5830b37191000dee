//! A [`RecordSource`] over records held in memory: the pipeline, tree
//! building, incremental append and retention handling run without a
//! broker in tests.

use std::collections::HashMap;
use std::time::Duration;

use vault_format::record::{Record, RecordHeader, RecordValue};

use super::plan::PartitionPlan;
use super::source::{RecordSource, SourceEvent};
use crate::error::Result;
use crate::reader::StoredRecord;

/// Records held in memory, by (topic, partition), served like a cluster
/// would: from each partition's `read_from` up to its cut. A partition's
/// log may start later than `read_from` (retention struck after the cut).
#[derive(Clone, Debug, Default)]
pub struct MemorySource {
    logs: HashMap<(String, u32), Vec<StoredRecord>>,
    log_start: HashMap<(String, u32), i64>,
    /// Where each plan partition stands, while started.
    cursors: Vec<Option<MemoryCursor>>,
    /// Deleted ranges still to report, by plan partition.
    pending_deleted: Vec<(usize, i64, i64)>,
}

/// A partition being served: its plan index, the next index into its log,
/// its cut, and its log's key.
type MemoryCursor = (usize, usize, i64, (String, u32));

impl MemorySource {
    /// A source over `logs`: each partition's records in offset order.
    pub fn new(logs: HashMap<(String, u32), Vec<StoredRecord>>) -> MemorySource {
        MemorySource {
            logs,
            ..MemorySource::default()
        }
    }

    /// Retention has deleted the partition's records below `offset` (after
    /// the cut, as far as a plan made earlier knows).
    pub fn delete_before(&mut self, topic: &str, partition: u32, offset: i64) {
        self.log_start
            .insert((topic.to_string(), partition), offset);
    }
}

impl RecordSource for MemorySource {
    fn start(&mut self, parts: &[PartitionPlan]) -> Result<()> {
        self.cursors = parts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                if p.read_from >= p.end {
                    return None;
                }
                let key = (p.topic.clone(), p.partition);
                let mut from = p.read_from;
                if let Some(&start) = self.log_start.get(&key)
                    && start > from
                {
                    self.pending_deleted.push((i, from, start.min(p.end)));
                    from = start;
                }
                let log = self.logs.get(&key).map_or(&[][..], Vec::as_slice);
                let at = log.partition_point(|r| r.offset < from);
                Some((i, at, p.end, key))
            })
            .collect();
        Ok(())
    }

    fn poll(
        &mut self,
        _timeout: Duration,
        sink: &mut dyn FnMut(SourceEvent<'_>) -> Result<()>,
    ) -> Result<()> {
        for (part, from, to) in std::mem::take(&mut self.pending_deleted) {
            sink(SourceEvent::Deleted { part, from, to })?;
        }
        // Up to 64 records of each partition in turn, as a fetch would.
        for slot in &mut self.cursors {
            let Some((part, at, end, key)) = slot else {
                continue;
            };
            let log = self.logs.get(key).map_or(&[][..], Vec::as_slice);
            let mut sent = 0;
            while sent < 64 && *at < log.len() && log[*at].offset < *end {
                let r = &log[*at];
                let headers = r
                    .headers
                    .iter()
                    .map(|(k, v)| RecordHeader {
                        key: k,
                        value: v.as_deref(),
                    })
                    .collect();
                sink(SourceEvent::Record {
                    part: *part,
                    offset: r.offset,
                    record: Record {
                        timestamp: r.timestamp,
                        timestamp_type: r.timestamp_type,
                        key: r.key.as_deref(),
                        value: r
                            .value
                            .as_deref()
                            .map_or(RecordValue::Null, RecordValue::Inline),
                        headers,
                    },
                })?;
                *at += 1;
                sent += 1;
            }
            if *at >= log.len() || log[*at].offset >= *end {
                let part = *part;
                *slot = None;
                sink(SourceEvent::Done { part })?;
            }
        }
        Ok(())
    }

    fn last_error(&self) -> Option<String> {
        None
    }
}
