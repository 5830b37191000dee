//! Restore progress, kept on the target cluster.
//!
//! Each restore transaction carries, next to its records, one record in the
//! compacted topic `_kvault_restore_progress` keyed by the restore id:
//! where every partition stands and the group translations found so far.
//! Both commit or abort together, so after a crash the last committed
//! progress record says exactly which records are on the target. See
//! docs/design.md § Restore: exactly once without tracking headers.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::kafka::{Detached, Edge, KafkaOptions, SettlePause, TopicInfo, partition_offsets};

/// The compacted topic that holds every restore's progress on a target cluster.
pub(crate) const PROGRESS_TOPIC: &str = "_kvault_restore_progress";

/// `max.message.bytes` of the progress topics vault creates. A restore's
/// record holds every partition and every group translation: at 10,000
/// partitions and 50 groups it is about 14 MB of JSON (a unit test below
/// measures it), far over the broker's 1 MiB default. 64 MiB is the most
/// vault's restore producer sends (`message.max.bytes`).
pub(crate) const PROGRESS_MAX_MESSAGE_BYTES: &str = "67108864";

/// The configs of a progress topic at creation.
pub(crate) fn progress_topic_configs() -> Vec<(String, String)> {
    vec![
        ("cleanup.policy".into(), "compact".into()),
        (
            "max.message.bytes".into(),
            PROGRESS_MAX_MESSAGE_BYTES.into(),
        ),
    ]
}

/// The topic of a distributed restore's per-partition progress: one
/// partition per restored partition, so each partition's transactions are
/// the only ones that hold back its last stable offset.
pub(crate) fn partition_progress_topic(restore_id: &str) -> String {
    format!("_kvault_restore_parts-{restore_id}")
}

/// The version of the progress record this vault writes (docs/format.md
/// § Restore progress). Records without one are version 0: they name no
/// vault, selection or target topic IDs.
pub(crate) const PROGRESS_VERSION: u32 = 2;

/// The version a single-process restore writes: its records say nothing a
/// version 1 reader would misread, so older vaults can still resume it.
/// Distributed restores write [`PROGRESS_VERSION`], which older vaults
/// refuse: they would take such a record for one of their own and restore
/// every partition again next to the workers.
pub(crate) const SINGLE_PROGRESS_VERSION: u32 = 1;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Records are being restored.
    #[default]
    Data,
    /// Every record is on the target; group offsets are being committed.
    Groups,
    /// Finished.
    Done,
    /// Left unfinished on purpose (`--abandon-unfinished`); never resumed.
    Abandoned,
}

impl Phase {
    pub(crate) fn is_unfinished(self) -> bool {
        matches!(self, Phase::Data | Phase::Groups)
    }
}

/// What a restore restores: the same snapshot with the same selection is
/// the same restore, and a rerun resumes it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreSelection {
    /// (source topic, target topic), in the order the command selected them.
    pub topics: Vec<(String, String)>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// The consumer groups whose offsets are translated, sorted.
    pub groups: Vec<String>,
}

impl RestoreSelection {
    pub fn targets(&self) -> impl Iterator<Item = &str> {
        self.topics.iter().map(|(_, t)| t.as_str())
    }
}

impl std::fmt::Display for RestoreSelection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let topics: Vec<String> = self
            .topics
            .iter()
            .map(|(s, t)| {
                if s == t {
                    s.clone()
                } else {
                    format!("{s}={t}")
                }
            })
            .collect();
        write!(f, "topics {}", topics.join(","))?;
        if let Some(from) = self.from_ms {
            write!(f, ", from {}", crate::time::format_rfc3339(from))?;
        }
        if let Some(to) = self.to_ms {
            write!(f, ", to {}", crate::time::format_rfc3339(to))?;
        }
        if self.groups.is_empty() {
            write!(f, ", no consumer groups")
        } else {
            write!(f, ", consumer groups {}", self.groups.join(","))
        }
    }
}

/// One partition's progress. Keyed by `target-topic/partition`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionProgress {
    /// Every record with a lower source offset is on the target (or was
    /// outside the time window).
    pub next_source_offset: i64,
    pub records: u64,
    pub bytes: u64,
    /// Target offset of the last restored record.
    #[serde(default)]
    pub last_target_offset: Option<i64>,
    /// Committed source offset → target offset of the first restored record at or after it.
    pub translations: BTreeMap<i64, i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressState {
    /// `PROGRESS_VERSION` when this vault wrote it; 0 in records of vaults
    /// before it.
    #[serde(default)]
    pub version: u32,
    pub restore_id: String,
    /// The vault restored from (hex); empty in version 0.
    #[serde(default)]
    pub vault_id: String,
    pub snapshot_id: String,
    /// What is restored; `None` in version 0.
    #[serde(default)]
    pub selection: Option<RestoreSelection>,
    /// Target topic → its Kafka topic ID when the restore began. A topic
    /// deleted and created again since holds none of these records.
    #[serde(default)]
    pub target_topic_ids: BTreeMap<String, String>,
    pub phase: Phase,
    pub partitions: BTreeMap<String, PartitionProgress>,
    /// Target end offsets once every record is restored (phase `groups` on).
    pub ends: BTreeMap<String, i64>,
    pub transactions: u64,
    pub started_ms: u64,
    /// A distributed restore's record: the run name its workers share
    /// (`--workers NAME`). A single process never resumes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<String>,
    /// One partition's record of the distributed restore with this id:
    /// the partition's own progress, committed in its own transactions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_of: Option<String>,
    /// In a per-partition record: the worker that committed it (`host/pid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
}

pub(crate) fn partition_key(topic: &str, partition: u32) -> String {
    format!("{topic}/{partition}")
}

impl ProgressState {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("progress serializes")
    }

    /// Parses a record, of any version: fields a newer vault added are
    /// ignored, and the caller decides what a newer version means.
    pub fn parse(bytes: &[u8]) -> std::result::Result<ProgressState, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }

    /// The target topics this restore writes to.
    pub(crate) fn target_topics(&self) -> std::collections::BTreeSet<String> {
        match &self.selection {
            Some(sel) => sel.targets().map(str::to_string).collect(),
            // Version 0: the partition keys name the targets.
            None => self
                .partitions
                .keys()
                .filter_map(|k| k.rsplit_once('/').map(|(t, _)| t.to_string()))
                .collect(),
        }
    }

    /// Whether a target topic this restore wrote to is gone or was created
    /// again since (its topic ID differs): then the records it counts are
    /// not on the target any more. `current` maps topic → its topic ID now.
    pub(crate) fn is_stale(&self, current: &BTreeMap<String, Option<String>>) -> bool {
        self.target_topic_ids.iter().any(|(topic, id)| {
            current
                .get(topic)
                .is_some_and(|now| now.as_ref() != Some(id))
        })
    }
}

/// The last committed progress record for `restore_id`, if any. Call after
/// `init_transactions`, which aborts what a killed run left open.
pub fn load(kafka: &KafkaOptions, restore_id: &str) -> Result<Option<ProgressState>> {
    Ok(load_all(kafka)?.of(restore_id)?.cloned())
}

/// Every restore's record, read once the record of `restore_id` that started
/// at or after `started_ms` is visible: a transaction's commit returns
/// before the brokers have written its markers, and until then a reader
/// still sees the record before it. Once it is visible, so is every
/// committed record at a lower offset (one partition, read up to its last
/// stable offset): of two restores committing at once, the one whose record
/// came second sees the first. Gives up after the request timeout and
/// returns what it sees: start times are stamped before the commits, so a
/// record stamped earlier can legitimately be the one that stands (workers
/// of one run settling for each other's record, clocks of two hosts).
pub(crate) fn load_all_after(
    kafka: &KafkaOptions,
    restore_id: &str,
    started_ms: u64,
) -> Result<ProgressRecords> {
    let deadline = Instant::now() + kafka.request_timeout;
    let mut pause = SettlePause::new();
    loop {
        let all = load_all(kafka)?;
        let visible = all
            .of(restore_id)?
            .is_some_and(|s| s.started_ms >= started_ms);
        if visible || Instant::now() > deadline {
            return Ok(all);
        }
        pause.sleep();
    }
}

/// A progress record that could not be decoded: its key and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Unreadable {
    pub key: String,
    pub error: String,
}

/// Every restore's last committed progress record on a target, and the
/// records that could not be read.
#[derive(Clone, Debug, Default)]
pub(crate) struct ProgressRecords {
    /// One per restore.
    pub records: Vec<ProgressState>,
    /// The per-partition records of distributed restores.
    pub partition_records: Vec<ProgressState>,
    pub unreadable: Vec<Unreadable>,
}

impl ProgressRecords {
    /// The last committed record of `restore_id`, if any; an error if it
    /// cannot be read or was written by a newer vault.
    pub(crate) fn of(&self, restore_id: &str) -> Result<Option<&ProgressState>> {
        if let Some(u) = self.unreadable.iter().find(|u| u.key == restore_id) {
            return Err(Error::Kafka {
                context: format!("reading restore progress from topic {PROGRESS_TOPIC}"),
                message: format!(
                    "the record of restore {restore_id} is unreadable ({}); it was not written by this vault version",
                    u.error
                ),
            });
        }
        let Some(state) = self.records.iter().find(|s| s.restore_id == restore_id) else {
            return Ok(None);
        };
        if state.version > PROGRESS_VERSION {
            return Err(Error::Usage(format!(
                "restore {restore_id} was written by a newer vault (progress version {}, this one reads up to \
                 {PROGRESS_VERSION}); finish it with that version",
                state.version
            )));
        }
        Ok(Some(state))
    }
}

/// The last committed progress record of every restore on the target.
/// Before `init_transactions` a killed run's open transaction holds the
/// topic's last stable offset back; its earlier, committed records are
/// still read, and every restore commits one before writing any record.
pub(crate) fn load_all(kafka: &KafkaOptions) -> Result<ProgressRecords> {
    read_records(kafka, PROGRESS_TOPIC, &[0])
}

/// The last committed record of each key in the given partitions of a
/// progress topic (nothing if the topic does not exist). Each partition is
/// read up to its last stable offset.
pub(crate) fn read_records(
    kafka: &KafkaOptions,
    progress_topic: &str,
    partitions: &[i32],
) -> Result<ProgressRecords> {
    let client = kafka.metadata_client(true)?;
    let md = client
        .fetch_metadata(Some(progress_topic), kafka.request_timeout)
        .map_err(|e| kafka_err(kafka, e))?;
    let highest = partitions.iter().copied().max().unwrap_or(0);
    let exists = md.topics().iter().any(|t| {
        t.error().is_none() && t.partitions().len() > usize::try_from(highest).unwrap_or(0)
    });
    if !exists {
        return Ok(ProgressRecords::default());
    }
    let mut c = kafka.client_config();
    c.set("group.id", "kvault-restore-progress")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        // A short read at startup: answer fast rather than wait for data.
        .set("fetch.wait.max.ms", "10")
        .set("fetch.error.backoff.ms", "10");
    let consumer: BaseConsumer = c
        .create()
        .map_err(|e| kafka_err(kafka, crate::kafka::creation_error(&e)))?;
    let consumer = Detached::new(consumer);
    // The same ListOffsets reads as the snapshot's cut; a failed one is an
    // error, never "no progress" (which would restore everything again).
    let topic = [TopicInfo {
        name: progress_topic.to_string(),
        id: None,
        partitions: crate::kafka::vault_partition(highest) + 1,
        replication_factor: 1,
    }];
    let ends = partition_offsets(kafka, &client, &topic, Edge::End)?;
    let starts = partition_offsets(kafka, &client, &topic, Edge::Start)?;
    let mut tpl = TopicPartitionList::new();
    let mut remaining: BTreeMap<i32, i64> = BTreeMap::new();
    for &p in partitions {
        let key = (progress_topic.to_string(), crate::kafka::vault_partition(p));
        let (start, end) = (starts[&key], ends[&key]);
        if end > start {
            // An explicit offset spares the consumer its own offset lookup.
            tpl.add_partition_offset(progress_topic, p, Offset::Offset(start))
                .map_err(|e| kafka_err(kafka, e))?;
            remaining.insert(p, end);
        }
    }
    if remaining.is_empty() {
        return Ok(ProgressRecords::default());
    }
    consumer.assign(&tpl).map_err(|e| kafka_err(kafka, e))?;
    // Compaction keeps the last record per key; so does this map.
    let mut last: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
    let deadline = Instant::now() + kafka.request_timeout * 2;
    while !remaining.is_empty() {
        if Instant::now() > deadline {
            return Err(kafka_err(kafka, "timed out reading the progress topic"));
        }
        match consumer.poll(Duration::from_millis(20)) {
            None => {}
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                remaining.remove(&p);
            }
            Some(Err(e)) => return Err(kafka_err(kafka, e)),
            Some(Ok(m)) => {
                if let Some(k) = m.key() {
                    last.insert(k.to_vec(), m.payload().map(<[u8]>::to_vec));
                }
                if remaining
                    .get(&m.partition())
                    .is_some_and(|end| m.offset() + 1 >= *end)
                {
                    remaining.remove(&m.partition());
                }
            }
        }
    }
    let mut out = ProgressRecords::default();
    for (key, value) in last {
        // A tombstone (null value) deletes the key.
        let Some(value) = value else { continue };
        match ProgressState::parse(&value) {
            Ok(state) if state.part_of.is_some() => out.partition_records.push(state),
            Ok(state) => out.records.push(state),
            Err(error) => out.unreadable.push(Unreadable {
                key: String::from_utf8_lossy(&key).into_owned(),
                error,
            }),
        }
    }
    Ok(out)
}

/// How many partitions `topic` has on the target (0 if it does not exist).
pub(crate) fn partition_count(kafka: &KafkaOptions, topic: &str) -> Result<i32> {
    let client = kafka.metadata_client(true)?;
    let md = client
        .fetch_metadata(Some(topic), kafka.request_timeout)
        .map_err(|e| kafka_err(kafka, e))?;
    Ok(md
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| i32::try_from(t.partitions().len()).unwrap_or(i32::MAX))
        .max()
        .unwrap_or(0))
}

/// Whether `topic` exists on the target.
pub(crate) fn topic_exists(kafka: &KafkaOptions, topic: &str) -> Result<bool> {
    Ok(partition_count(kafka, topic)? > 0)
}

fn kafka_err(kafka: &KafkaOptions, e: impl std::fmt::Display) -> Error {
    Error::Kafka {
        context: format!(
            "reading restore progress from topic {PROGRESS_TOPIC} (brokers {})",
            kafka.brokers
        ),
        message: e.to_string(),
    }
}

#[cfg(test)]
#[path = "progress_tests.rs"]
mod tests;
