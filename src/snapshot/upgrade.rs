//! Carrying a format 1 history forward.
//!
//! Format 1 manifests hold no topic IDs, so nothing proves that a topic a
//! format 1 snapshot holds is the one the cluster has now under that name.
//! Starting a new history would be safe for the new snapshot, but the
//! records Kafka's retention has deleted since would then live only in the
//! format 1 snapshots, and leave the vault when gc forgets those.
//!
//! So the proof is asked of the records themselves: the last record the
//! old snapshot holds of a partition must still be in Kafka at the same
//! offset, with the same key, value, headers and timestamp. A topic is
//! adopted when at least one partition proves it and none contradicts it;
//! when none can be checked (retention deleted every one of them), it
//! starts a new history and the warning says which snapshot keeps the
//! older records.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::history::PartitionBase;
use crate::error::{Error, Result};
use crate::kafka::KafkaOptions;
use crate::reader::{StoredRecord, chunk_records, leaves};
use crate::repository::{Indexed, Repository};

/// What the last record of an old partition history says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proof {
    Same,
    Different,
    /// Kafka no longer has that offset (retention, compaction).
    Gone,
}

/// Partition bases by (topic, partition).
pub(crate) type Adopted = HashMap<(String, u32), PartitionBase>;

/// Records at given offsets, as the cluster has them now (for the proof
/// that a format 1 history continues).
pub trait RecordLookup {
    /// The record at each (topic, partition, offset) the cluster still has.
    fn records_at(
        &self,
        wanted: &[(String, u32, i64)],
    ) -> Result<HashMap<(String, u32), StoredRecord>>;
}

/// [`RecordLookup`] on a Kafka cluster.
pub(crate) struct KafkaRecords<'a> {
    pub kafka: &'a KafkaOptions,
    pub read_committed: bool,
}

impl RecordLookup for KafkaRecords<'_> {
    fn records_at(
        &self,
        wanted: &[(String, u32, i64)],
    ) -> Result<HashMap<(String, u32), StoredRecord>> {
        fetch_records(self.kafka, self.read_committed, wanted)
    }
}

/// No record can be looked up (a plan for records that never came from a
/// cluster, as in tests): a format 1 history is never proven.
pub struct NoRecords;

impl RecordLookup for NoRecords {
    fn records_at(&self, _: &[(String, u32, i64)]) -> Result<HashMap<(String, u32), StoredRecord>> {
        Ok(HashMap::new())
    }
}

/// The format 1 bases that the records prove, and a warning per topic.
pub(crate) fn adopt(
    repo: &Repository<Indexed>,
    records: &dyn RecordLookup,
    candidates: &HashMap<String, Vec<(u32, PartitionBase)>>,
    log_start: &HashMap<(String, u32), i64>,
    end: &HashMap<(String, u32), i64>,
) -> Result<(Adopted, Vec<String>)> {
    let mut adopted = HashMap::new();
    let mut warnings = Vec::new();
    if candidates.is_empty() {
        return Ok((adopted, warnings));
    }
    // The partitions whose last held record Kafka may still have.
    let mut wanted: Vec<(String, u32, i64)> = Vec::new();
    for (topic, parts) in candidates {
        for (p, base) in parts {
            let Some(root) = base.root else { continue };
            let key = (topic.clone(), *p);
            let last = root.summary.last_offset;
            if log_start[&key] <= last && last < end[&key] {
                wanted.push((topic.clone(), *p, last));
            }
        }
    }
    let fetched = records.records_at(&wanted)?;
    for (topic, parts) in candidates {
        let mut proofs = Vec::new();
        for (p, base) in parts {
            let Some(root) = base.root else { continue };
            let key = (topic.clone(), *p);
            let proof = match fetched.get(&key) {
                None => Proof::Gone,
                Some(kafka_record) => {
                    let held = last_record(repo, &root)?;
                    if held.as_ref() == Some(kafka_record) {
                        Proof::Same
                    } else {
                        Proof::Different
                    }
                }
            };
            proofs.push(proof);
        }
        let short = parts
            .first()
            .map(|(_, b)| b.snapshot.to_hex()[..16].to_string())
            .unwrap_or_default();
        if proofs.contains(&Proof::Same) && !proofs.contains(&Proof::Different) {
            for (p, base) in parts {
                adopted.insert((topic.clone(), *p), *base);
            }
            warnings.push(format!(
                "topic {topic}: snapshot {short} predates topic IDs; its last records are still in Kafka \
                 unchanged, so this snapshot continues its history (from now on by topic ID)"
            ));
        } else if proofs.contains(&Proof::Different) {
            warnings.push(format!(
                "topic {topic}: the records snapshot {short} holds differ from the cluster's at the same \
                 offsets: it was deleted and created again. It starts a new history and is read from its \
                 log start; snapshot {short} and older keep the old topic's records"
            ));
        } else {
            warnings.push(format!(
                "topic {topic}: snapshot {short} predates topic IDs and Kafka no longer has the records \
                 that would prove it is the same topic, so it starts a new history, read from its log \
                 start. Records Kafka has deleted are only in snapshot {short} and older: keep them \
                 (gc rules that keep it, e.g. a long enough --keep-within) as long as you need those records"
            ));
        }
    }
    Ok((adopted, warnings))
}

/// The last record a tree holds.
fn last_record(
    repo: &Repository<Indexed>,
    root: &vault_format::tree::TreeRoot,
) -> Result<Option<StoredRecord>> {
    let last = root.summary.last_offset;
    let tail = leaves(repo, root, &mut |s| s.last_offset >= last)?;
    let Some(leaf) = tail.last() else {
        return Ok(None);
    };
    Ok(chunk_records(repo, leaf)?.pop())
}

/// The record at each (topic, partition, offset), where Kafka has one.
/// One topic at a time, so the end-of-partition events (which name only a
/// partition number) are unambiguous.
fn fetch_records(
    kafka: &KafkaOptions,
    read_committed: bool,
    wanted: &[(String, u32, i64)],
) -> Result<HashMap<(String, u32), StoredRecord>> {
    let mut out = HashMap::new();
    if wanted.is_empty() {
        return Ok(out);
    }
    let kerr = |e: rdkafka::error::KafkaError| Error::Kafka {
        context: format!(
            "reading records to check a format 1 history (brokers {})",
            kafka.brokers
        ),
        message: e.to_string(),
    };
    // The shared settings and nothing of the source's tuning for reading
    // whole logs: this reads one record a partition, one topic at a time.
    let consumer: BaseConsumer = super::consumer::consumer_config(kafka, read_committed, |_| {})
        .create()
        .map_err(|e| {
            kerr(rdkafka::error::KafkaError::ClientCreation(
                crate::kafka::creation_error(&e),
            ))
        })?;
    let mut topics: Vec<&str> = wanted.iter().map(|w| w.0.as_str()).collect();
    topics.sort_unstable();
    topics.dedup();
    for topic in topics {
        let mine: HashMap<u32, i64> = wanted
            .iter()
            .filter(|w| w.0 == topic)
            .map(|w| (w.1, w.2))
            .collect();
        let mut tpl = TopicPartitionList::new();
        for (p, o) in &mine {
            tpl.add_partition_offset(topic, crate::kafka::kafka_partition(*p), Offset::Offset(*o))
                .map_err(kerr)?;
        }
        consumer.assign(&tpl).map_err(kerr)?;
        let mut answered = std::collections::HashSet::new();
        let deadline = Instant::now() + kafka.request_timeout;
        while answered.len() < mine.len() && Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    let p = crate::kafka::vault_partition(m.partition());
                    if answered.insert(p) && mine.get(&p) == Some(&m.offset()) {
                        out.insert((topic.to_string(), p), stored(&m));
                    }
                }
                // Nothing at or after the offset (aborted records only).
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                    answered.insert(crate::kafka::vault_partition(p));
                }
                Some(Err(_)) | None => {}
            }
        }
    }
    Ok(out)
}

fn stored(m: &rdkafka::message::BorrowedMessage<'_>) -> StoredRecord {
    let (timestamp, timestamp_type) = super::consumer::timestamp_of(m);
    StoredRecord {
        offset: m.offset(),
        timestamp,
        timestamp_type,
        key: m.key().map(<[u8]>::to_vec),
        value: m.payload().map(<[u8]>::to_vec),
        headers: m
            .headers()
            .map(|h| {
                (0..h.count())
                    .map(|i| h.get(i))
                    .map(|h| (h.key.as_bytes().to_vec(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default(),
    }
}
