//! Where a snapshot's records come from: the seam between Kafka and the
//! pipeline. [`KafkaSource`] reads a cluster; [`super::MemorySource`] serves
//! records held in memory, so the pipeline, tree building, incremental
//! append and retention handling can be tested without a broker.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Headers;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaErrorCode;
use vault_format::record::{Record, RecordHeader, RecordValue};

use super::plan::PartitionPlan;
use crate::error::{Error, Result};
use crate::kafka::KafkaOptions;

/// What a source tells the pipeline.
pub enum SourceEvent<'a> {
    /// A record of the plan's partition `part`, below its cut, in offset order.
    Record {
        part: usize,
        offset: i64,
        record: Record<'a>,
    },
    /// The partition has no more records below its cut.
    Done { part: usize },
    /// Retention deleted `[from, to)` after the cut, before it was read.
    Deleted { part: usize, from: i64, to: i64 },
}

/// A source of records for the partitions of a plan.
pub trait RecordSource {
    /// Starts reading each unfinished partition of `parts` at its
    /// `read_from`, up to its cut (`end`).
    fn start(&mut self, parts: &[PartitionPlan]) -> Result<()>;

    /// Waits up to `timeout` for what happens next and hands each event to
    /// `sink`. Returning without an event is fine; the caller asks again.
    fn poll(
        &mut self,
        timeout: Duration,
        sink: &mut dyn FnMut(SourceEvent<'_>) -> Result<()>,
    ) -> Result<()>;

    /// The last trouble the source met, to explain a stall.
    fn last_error(&self) -> Option<String>;
}

/// One partition as a source follows it.
#[derive(Clone, Debug)]
struct Followed {
    topic: String,
    partition: i32,
    end: i64,
    /// After the last record delivered.
    next: i64,
    done: bool,
}

/// Records from a Kafka cluster, read with one consumer that never joins
/// its group.
pub struct KafkaSource {
    /// Made when there is something to read: a snapshot with nothing new
    /// never pays for a consumer's start and close (docs/benchmarks.md §
    /// Fixed cost).
    consumer: Option<BaseConsumer>,
    config: rdkafka::ClientConfig,
    brokers: String,
    request_timeout: Duration,
    parts: Vec<Followed>,
    /// Plan index by topic, then by partition: looked up once per message,
    /// so without building a key.
    index: HashMap<String, Vec<Option<usize>>>,
    last_position_check: Instant,
    last_error: Option<String>,
}

impl KafkaSource {
    pub fn new(kafka: &KafkaOptions, read_committed: bool) -> Result<KafkaSource> {
        let c = super::consumer::consumer_config(kafka, read_committed, |c| {
            // Beyond the shared settings: this consumer reads whole logs fast.
            c.set("enable.auto.offset.store", "false")
                // Bounds librdkafka's prefetch queue (the pipeline bounds the rest).
                .set("queued.max.messages.kbytes", "32768")
                .set("max.partition.fetch.bytes", "4194304")
                .set("check.crcs", "false")
                // librdkafka stops fetching for a whole second (the default) once its
                // queue is full; the pipeline drains in bursts, so that second was
                // two thirds of a snapshot's time. Resume fetching quickly instead.
                .set("fetch.queue.backoff.ms", "20")
                // A snapshot reads in passes (a new assignment each), and the
                // broker holds a fetch of partitions already read to their
                // end for fetch.wait.max.ms (500 ms by default) before the
                // next pass's partitions can be fetched: 1,000 partitions
                // took 5.4 s with the default, 0.6 s with this. Nothing
                // here waits for new records, so a short wait costs nothing.
                .set("fetch.wait.max.ms", "20");
        });
        Ok(KafkaSource {
            consumer: None,
            config: c,
            brokers: kafka.brokers.clone(),
            request_timeout: kafka.request_timeout,
            parts: Vec::new(),
            index: HashMap::new(),
            last_position_check: Instant::now(),
            last_error: None,
        })
    }

    fn consumer(&self) -> &BaseConsumer {
        self.consumer
            .as_ref()
            .expect("the source is started before it is read")
    }

    fn part_of(&self, topic: &str, partition: i32) -> Option<usize> {
        let at = usize::try_from(partition).ok()?;
        *self.index.get(topic)?.get(at)?
    }

    fn done(
        &mut self,
        i: usize,
        sink: &mut dyn FnMut(SourceEvent<'_>) -> Result<()>,
    ) -> Result<()> {
        if self.parts[i].done {
            return Ok(());
        }
        self.parts[i].done = true;
        let mut t = TopicPartitionList::new();
        t.add_partition(&self.parts[i].topic, self.parts[i].partition);
        // Stop fetching what the snapshot does not need.
        let _ = self.consumer().pause(&t);
        sink(SourceEvent::Done { part: i })
    }

    /// Past the last record, positions move over transaction markers and
    /// aborted records that are never delivered.
    fn check_positions(
        &mut self,
        sink: &mut dyn FnMut(SourceEvent<'_>) -> Result<()>,
    ) -> Result<()> {
        self.last_position_check = Instant::now();
        let Ok(pos) = self.consumer().position() else {
            return Ok(());
        };
        let mut reached = Vec::new();
        for e in pos.elements() {
            if let (Some(i), Offset::Offset(o)) =
                (self.part_of(e.topic(), e.partition()), e.offset())
                && !self.parts[i].done
                && o >= self.parts[i].end
            {
                reached.push(i);
            }
        }
        for i in reached {
            self.done(i, sink)?;
        }
        Ok(())
    }

    /// A partition's next offset is gone: retention deleted it after the
    /// cut. Kafka's consumer stops such a partition (`auto.offset.reset=
    /// error`) and does not say which one; this asks for every unfinished
    /// partition's log start and end in one round each, reports the deleted
    /// ranges, and assigns each unfinished partition again where it must go
    /// on: its new log start, or where it stood.
    fn skip_deleted(&mut self, sink: &mut dyn FnMut(SourceEvent<'_>) -> Result<()>) -> Result<()> {
        let open: Vec<usize> = (0..self.parts.len())
            .filter(|&i| !self.parts[i].done)
            .collect();
        let lows = self.edge(&open, Offset::Beginning)?;
        let highs = self.edge(&open, Offset::End)?;
        let mut reassign = TopicPartitionList::new();
        let mut unassign = TopicPartitionList::new();
        let mut emptied = Vec::new();
        for &i in &open {
            let p = self.parts[i].clone();
            let key = (p.topic.clone(), p.partition);
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
            unassign.add_partition(&p.topic, p.partition);
            let at = if p.next < low {
                sink(SourceEvent::Deleted {
                    part: i,
                    from: p.next,
                    to: low.min(p.end),
                })?;
                if low >= p.end {
                    emptied.push(i);
                    continue;
                }
                low
            } else {
                p.next
            };
            // A partition stopped by the reset cannot be seeked; it is
            // assigned again instead.
            reassign
                .add_partition_offset(&p.topic, p.partition, Offset::Offset(at))
                .map_err(kafka_err("assigning partitions"))?;
        }
        self.consumer()
            .incremental_unassign(&unassign)
            .and_then(|()| self.consumer().incremental_assign(&reassign))
            .map_err(kafka_err("resuming partitions after a reset"))?;
        for i in emptied {
            self.done(i, sink)?;
        }
        Ok(())
    }

    fn edge(&self, open: &[usize], at: Offset) -> Result<HashMap<(String, i32), i64>> {
        let mut tpl = TopicPartitionList::new();
        for &i in open {
            tpl.add_partition_offset(&self.parts[i].topic, self.parts[i].partition, at)
                .map_err(kafka_err("listing offsets"))?;
        }
        let res = self
            .consumer()
            .offsets_for_times(tpl, self.request_timeout)
            .map_err(kafka_err("listing the log start and end after a reset"))?;
        let mut out = HashMap::new();
        for e in res.elements() {
            if let Offset::Offset(o) = e.offset() {
                out.insert((e.topic().to_string(), e.partition()), o);
            }
        }
        Ok(out)
    }
}

/// At most this many messages are taken from librdkafka's queue in one
/// [`RecordSource::poll`].
const POLL_BATCH: usize = 1024;

fn kafka_err(context: &str) -> impl Fn(KafkaError) -> Error + '_ {
    move |e| Error::Kafka {
        context: context.to_string(),
        message: e.to_string(),
    }
}

fn record_of<'m>(m: &'m rdkafka::message::BorrowedMessage<'m>) -> Record<'m> {
    let (timestamp, timestamp_type) = super::consumer::timestamp_of(m);
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

impl RecordSource for KafkaSource {
    fn start(&mut self, parts: &[PartitionPlan]) -> Result<()> {
        // An error of an earlier pass explains nothing about this one.
        self.last_error = None;
        self.parts = parts
            .iter()
            .map(|p| Followed {
                topic: p.topic.clone(),
                partition: i32::try_from(p.partition).unwrap_or(i32::MAX),
                end: p.end,
                next: p.read_from,
                done: p.read_from >= p.end,
            })
            .collect();
        self.index = HashMap::new();
        for (i, p) in self.parts.iter().enumerate() {
            let slots = self.index.entry(p.topic.clone()).or_default();
            let Ok(at) = usize::try_from(p.partition) else {
                continue;
            };
            if slots.len() <= at {
                slots.resize(at + 1, None);
            }
            slots[at] = Some(i);
        }
        let mut tpl = TopicPartitionList::new();
        for p in self.parts.iter().filter(|p| !p.done) {
            tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(p.next))
                .map_err(kafka_err("assigning partitions"))?;
        }
        if tpl.count() == 0 {
            return Ok(());
        }
        if self.consumer.is_none() {
            let consumer: BaseConsumer = self.config.create().map_err(|e| Error::Kafka {
                context: format!("creating a consumer for {}", self.brokers),
                message: crate::kafka::creation_error(&e),
            })?;
            // The leaders of every topic, once: a snapshot reads in passes,
            // and a pass whose topics the client has not met yet waits for
            // a metadata round and a fetch backoff before its first fetch
            // (1,000 partitions in 11 passes took 9.4 s without this look
            // and 0.6 s with it, both with the short fetch.wait.max.ms of
            // the config). A failed look only costs that wait.
            let _ = consumer.fetch_metadata(None, self.request_timeout);
            self.consumer = Some(consumer);
        }
        self.consumer()
            .assign(&tpl)
            .map_err(kafka_err("assigning partitions"))
    }

    fn poll(
        &mut self,
        timeout: Duration,
        sink: &mut dyn FnMut(SourceEvent<'_>) -> Result<()>,
    ) -> Result<()> {
        // Not started, or started with nothing to read.
        let Some(consumer) = self.consumer.as_ref() else {
            return Ok(());
        };
        let mut check = false;
        let mut reached = Vec::new();
        let mut reset = false;
        // One wait, then whatever else is already queued: a poll per
        // message is most of a small record's cost outside librdkafka.
        let mut wait = timeout;
        for _ in 0..POLL_BATCH {
            match consumer.poll(wait) {
                Some(Ok(m)) => {
                    if let Some(i) = self.part_of(m.topic(), m.partition()) {
                        let p = &mut self.parts[i];
                        let offset = m.offset();
                        if !p.done {
                            if offset >= p.end {
                                reached.push(i);
                            } else {
                                p.next = offset + 1;
                                let last = offset >= p.end - 1;
                                sink(SourceEvent::Record {
                                    part: i,
                                    offset,
                                    record: record_of(&m),
                                })?;
                                if last {
                                    reached.push(i);
                                    break;
                                }
                            }
                        }
                    }
                }
                Some(Err(KafkaError::PartitionEOF(_))) => {
                    check = true;
                    break;
                }
                Some(Err(KafkaError::MessageConsumption(RDKafkaErrorCode::AutoOffsetReset))) => {
                    reset = true;
                    break;
                }
                Some(Err(e)) => {
                    self.last_error = Some(e.to_string());
                    break;
                }
                None => break,
            }
            wait = Duration::ZERO;
        }
        for i in reached {
            self.done(i, sink)?;
        }
        if reset {
            self.skip_deleted(sink)?;
        }
        if check || self.last_position_check.elapsed() > Duration::from_millis(500) {
            self.check_positions(sink)?;
        }
        Ok(())
    }

    fn last_error(&self) -> Option<String> {
        self.last_error.clone()
    }
}
