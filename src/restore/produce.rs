//! The transactional producer restore writes through. Records and the
//! progress record of a batch commit together or not at all.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::Message;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};

use super::progress::{PROGRESS_TOPIC, ProgressState};
use super::sink::{OutRecord, RecordSink};
use crate::error::{Error, Result};
use crate::kafka::KafkaOptions;
use crate::kafka::produce_ffi::{Produce, TopicHandle, flush_step, produce};

/// How long the producer sleeps when no delivery report was waiting,
/// before it tries again to queue a record or finish a flush.
const REPORT_WAIT: Duration = Duration::from_micros(500);

/// A flush takes a step every this many [`TxnProducer::serve_reports`].
const FLUSH_STEP_EVERY: usize = 8;

/// Collects what delivery reports say: the target offsets of marked
/// records, and the first failure.
#[derive(Default)]
pub(crate) struct DeliveryLog {
    first_error: Mutex<Option<String>>,
    marked: Mutex<Vec<(usize, i64)>>,
    /// Highest target offset acknowledged, per plan partition.
    last: Mutex<Vec<i64>>,
}

/// How much a producer may hold queued: the decoder blocks behind it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct QueueBudget {
    pub kib: u32,
    pub records: u32,
}

impl QueueBudget {
    /// A restore's one producer: 68 MiB, room for the largest record vault
    /// produces (64 MiB; librdkafka refuses a record bigger than the whole
    /// queue), and 100 000 records (librdkafka's own default count). With
    /// 32 MiB and 50 000, small records (~500 B) hit the count first and
    /// restore waited on a full queue for 0.6-1.4 s of 7-8
    /// (docs/benchmarks.md § Small records). Each queued record costs
    /// librdkafka a few hundred bytes besides its payload; peak RSS stays
    /// under 160 MiB (§ Restore memory).
    pub const WHOLE: QueueBudget = QueueBudget {
        kib: 69_632,
        records: 100_000,
    };
    /// One of a worker's per-partition producers (4 in flight by default):
    /// what every producer had before, so a worker's memory is unchanged.
    /// A record bigger than this is refused with an error (see `send`).
    pub const PER_PARTITION: QueueBudget = QueueBudget {
        kib: 32_768,
        records: 50_000,
    };
}

/// The delivery tag of a progress record: it answers no slot and is no
/// restored record. A tag, not the topic's name, tells it apart, because
/// reading the name back costs a C string scan on every delivery report.
const PROGRESS_TAG: usize = usize::MAX;

/// What a record's delivery report must say: which plan partition it
/// belongs to and which translation slot it answers (0: none, n: slot n-1).
fn tag(part: usize, mark: usize) -> usize {
    (part << 32) | mark
}

impl ClientContext for DeliveryLog {}

impl ProducerContext for DeliveryLog {
    /// See [`tag`].
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, tag: usize) {
        let (part, mark) = (tag >> 32, tag & 0xffff_ffff);
        match result {
            Ok(_) if tag == PROGRESS_TAG => {}
            Ok(m) => {
                if mark > 0 {
                    self.marked.lock().unwrap().push((mark - 1, m.offset()));
                }
                let mut last = self.last.lock().unwrap();
                if last.len() <= part {
                    last.resize(part + 1, -1);
                }
                last[part] = last[part].max(m.offset());
            }
            Err((e, m)) => {
                let mut first = self.first_error.lock().unwrap();
                if first.is_none() {
                    *first = Some(format!("{}/{}: {e}", m.topic(), m.partition()));
                }
            }
        }
    }
}

/// The transactional producer. The thread that sends records also serves
/// their delivery reports: a thread of its own for them measured slower,
/// because every message was then freed by another thread than the one
/// that allocated it (docs/benchmarks.md § Small records).
pub(crate) struct TxnProducer {
    /// Handles of the topics records go to; declared before the producer,
    /// so they are released before it is.
    topics: Mutex<Vec<(String, Arc<TopicHandle>)>>,
    producer: BaseProducer<DeliveryLog>,
    kafka: KafkaOptions,
    restore_id: String,
    /// Where its progress records go: the topic and partition.
    progress_at: (String, i32),
    timeout: Duration,
    budget: QueueBudget,
    /// A record did not fit the queue at all: the caller may start again
    /// with a larger budget (the open transaction is then aborted).
    too_small: std::sync::atomic::AtomicBool,
}

impl TxnProducer {
    /// Creates the producer and fences any earlier run of the same restore:
    /// `init_transactions` aborts the transaction a killed run left open.
    pub fn start(kafka: &KafkaOptions, restore_id: &str) -> Result<TxnProducer> {
        TxnProducer::start_at(kafka, restore_id, PROGRESS_TOPIC, 0, QueueBudget::WHOLE)
    }

    /// [`Self::start`], with progress records going to `topic`'s `partition`.
    pub fn start_at(
        kafka: &KafkaOptions,
        restore_id: &str,
        topic: &str,
        partition: i32,
        budget: QueueBudget,
    ) -> Result<TxnProducer> {
        let c = kafka.client_config_with(|c| {
            c.set("transactional.id", format!("kvault-restore-{restore_id}"))
                .set("enable.idempotence", "true")
                .set("acks", "all")
                // What an operator would pick for a bulk load: big batches, lz4.
                .set("linger.ms", "20")
                .set("batch.size", "1000000")
                .set("batch.num.messages", "100000")
                .set("compression.type", "lz4")
                // Records up to 64 MiB (the topic's max.message.bytes still applies).
                .set("message.max.bytes", "67108864")
                // Bounds the producer's queue; the decoder blocks behind it.
                .set("queue.buffering.max.kbytes", budget.kib.to_string())
                .set("queue.buffering.max.messages", budget.records.to_string())
                .set("transaction.timeout.ms", "300000")
                // Connect to the brokers as soon as they are known. With
                // sparse connections the transactional init often found no
                // broker up yet and retried on librdkafka's 500 ms timer.
                .set("enable.sparse.connections", "false");
        });
        let producer: BaseProducer<DeliveryLog> =
            c.create_with_context(DeliveryLog::default()).map_err(|e| {
                kerr(
                    kafka,
                    "creating the restore producer",
                    crate::kafka::creation_error(&e),
                )
            })?;
        let timeout = kafka.request_timeout * 2;
        producer
            .init_transactions(timeout)
            .map_err(|e| kerr(kafka, "starting the restore transaction", e))?;
        Ok(TxnProducer {
            topics: Mutex::new(Vec::new()),
            producer,
            kafka: kafka.clone(),
            restore_id: restore_id.to_string(),
            progress_at: (topic.to_string(), partition),
            timeout,
            budget,
            too_small: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Whether a record was refused for being bigger than this producer's
    /// whole queue ([`QueueBudget::PER_PARTITION`]); [`QueueBudget::WHOLE`]
    /// holds every record vault produces.
    pub fn queue_too_small(&self) -> bool {
        self.too_small.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn begin(&self) -> Result<()> {
        self.producer
            .begin_transaction()
            .map_err(|e| kerr(&self.kafka, "beginning a transaction", e))
    }

    /// Queues one record of plan partition `part`; waits while the
    /// producer's queue is full. `mark` is 0, or a translation slot + 1.
    pub fn send(
        &self,
        part: usize,
        topic: &str,
        partition: u32,
        r: &OutRecord<'_>,
        mark: usize,
    ) -> Result<()> {
        for hdr in r.headers {
            if std::str::from_utf8(hdr.key).is_err() {
                return Err(Error::Usage(format!(
                    "{topic}/{partition} offset {}: a header key is not UTF-8, which Kafka clients cannot produce",
                    r.offset
                )));
            }
        }
        let handle = self.topic(topic)?;
        let m = Produce {
            partition: crate::kafka::kafka_partition(partition),
            key: r.key,
            value: r.value,
            timestamp: r.timestamp.max(0),
            headers: r.headers,
            opaque: tag(part, mark),
        };
        let rk = self.producer.client().native_ptr();
        loop {
            match produce(rk, &handle, &m) {
                Ok(()) => return Ok(()),
                // An empty queue that has no room: the record is bigger
                // than the whole queue and would wait forever.
                Err(RDKafkaErrorCode::QueueFull) if self.producer.in_flight_count() == 0 => {
                    self.too_small
                        .store(true, std::sync::atomic::Ordering::SeqCst);
                    return Err(Error::Usage(format!(
                        "{topic}/{partition} offset {}: a record of {} bytes does not fit the producer's queue \
                         ({} MiB); vault produces records up to 64 MiB",
                        r.offset,
                        r.key.map_or(0, <[u8]>::len) + r.value.map_or(0, <[u8]>::len),
                        self.budget.kib / 1024
                    )));
                }
                // Delivery reports free room as the brokers acknowledge.
                Err(RDKafkaErrorCode::QueueFull) => self.serve_reports(),
                Err(e) => {
                    return Err(kerr(
                        &self.kafka,
                        &format!("producing to {topic}/{partition}"),
                        e,
                    ));
                }
            }
        }
    }

    /// The handle of `topic`, taken on first use.
    fn topic(&self, topic: &str) -> Result<Arc<TopicHandle>> {
        let mut topics = self.topics.lock().unwrap();
        if let Some((_, h)) = topics.iter().find(|(t, _)| t == topic) {
            return Ok(Arc::clone(h));
        }
        let h = TopicHandle::new(self.producer.client().native_ptr(), topic)
            .map(Arc::new)
            .ok_or_else(|| {
                kerr(
                    &self.kafka,
                    &format!("producing to {topic}"),
                    "librdkafka refused a handle on the topic",
                )
            })?;
        topics.push((topic.to_string(), Arc::clone(&h)));
        Ok(h)
    }

    /// Serves a waiting delivery report, or sleeps briefly if none is
    /// waiting. rdkafka's `poll` with a timeout waits all of it out (it
    /// returns only at the deadline, spinning through the last
    /// millisecond): with 100 ms slices every flush took 100 ms, with 1 ms
    /// slices the spinning took 13% of the restore's samples.
    fn serve_reports(&self) {
        let before = self.producer.in_flight_count();
        self.producer.poll(Duration::ZERO);
        if self.producer.in_flight_count() == before {
            std::thread::sleep(REPORT_WAIT);
        }
    }

    /// Serves delivery reports without waiting.
    pub fn poll(&self) {
        self.producer.poll(Duration::ZERO);
    }

    /// Waits until every queued record is acknowledged; returns the target
    /// offsets of the marked records, `(slot, offset)`.
    pub fn flush(&self) -> Result<Vec<(usize, i64)>> {
        let deadline = Instant::now() + self.timeout;
        let rk = self.producer.client().native_ptr();
        loop {
            match flush_step(rk) {
                Ok(()) => break,
                // Each step also wakes every broker thread to send at once:
                // serve a few reports between steps rather than wake them
                // every half millisecond.
                Err(RDKafkaErrorCode::OperationTimedOut) if Instant::now() < deadline => {
                    for _ in 0..FLUSH_STEP_EVERY {
                        self.serve_reports();
                    }
                }
                Err(e) => {
                    return Err(kerr(
                        &self.kafka,
                        "waiting for the brokers to acknowledge records",
                        e,
                    ));
                }
            }
        }
        if let Some(e) = self.producer.context().first_error.lock().unwrap().take() {
            return Err(kerr(&self.kafka, "producing records", e));
        }
        Ok(std::mem::take(
            &mut *self.producer.context().marked.lock().unwrap(),
        ))
    }

    /// The highest acknowledged target offset of plan partition `part`, if any.
    pub fn last_offset(&self, part: usize) -> Option<i64> {
        let last = self.producer.context().last.lock().unwrap();
        last.get(part).copied().filter(|o| *o >= 0)
    }

    /// Adds the progress record to the open transaction and commits it.
    pub fn commit(&self, state: &ProgressState) -> Result<()> {
        let value = state.encode();
        let (topic, partition) = &self.progress_at;
        let rec: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(topic, PROGRESS_TAG)
                .partition(*partition)
                .key(self.restore_id.as_bytes())
                .payload(&value[..]);
        self.producer
            .send(rec)
            .map_err(|(e, _)| kerr(&self.kafka, "writing restore progress", e))?;
        self.flush()?;
        self.producer
            .commit_transaction(self.timeout)
            .map_err(|e| kerr(&self.kafka, "committing a restore transaction", e))
    }

    /// Best effort: the next run's `init_transactions` aborts it anyway.
    pub fn abort(&self) {
        let _ = self.producer.abort_transaction(self.timeout);
    }
}

fn kerr(kafka: &KafkaOptions, context: &str, e: impl std::fmt::Display) -> Error {
    Error::Kafka {
        context: format!("{context} (target brokers {})", kafka.brokers),
        message: format!(
            "{e}; nothing of the open transaction is kept, and running the same command again resumes after the last committed one"
        ),
    }
}

impl RecordSink for TxnProducer {
    fn begin(&self) -> Result<()> {
        TxnProducer::begin(self)
    }

    fn send(
        &self,
        part: usize,
        topic: &str,
        partition: u32,
        record: &OutRecord<'_>,
        mark: usize,
    ) -> Result<()> {
        TxnProducer::send(self, part, topic, partition, record, mark)
    }

    fn poll(&self) {
        TxnProducer::poll(self);
    }

    fn flush(&self) -> Result<Vec<(usize, i64)>> {
        TxnProducer::flush(self)
    }

    fn last_offset(&self, part: usize) -> Option<i64> {
        TxnProducer::last_offset(self, part)
    }

    fn commit(&self, state: &ProgressState) -> Result<()> {
        TxnProducer::commit(self, state)
    }

    fn abort(&self) {
        TxnProducer::abort(self);
    }
}
