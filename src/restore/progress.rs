//! Restore progress, kept on the target cluster.
//!
//! Each restore transaction carries, next to its records, one record in the
//! compacted topic [`PROGRESS_TOPIC`] keyed by the restore id: where every
//! partition stands and the group translations found so far. Both commit or
//! abort together, so after a crash the last committed progress record says
//! exactly which records are on the target. See docs/design.md § Restore.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::kafka::{Edge, KafkaOptions, TopicInfo, partition_offsets};

/// The compacted topic that holds every restore's progress on a target cluster.
pub const PROGRESS_TOPIC: &str = "_kvault_restore_progress";

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
    pub restore_id: String,
    pub snapshot_id: String,
    pub phase: Phase,
    pub partitions: BTreeMap<String, PartitionProgress>,
    /// Target end offsets once every record is restored (phase `groups` on).
    pub ends: BTreeMap<String, i64>,
    pub transactions: u64,
    pub started_ms: u64,
}

pub fn partition_key(topic: &str, partition: u32) -> String {
    format!("{topic}/{partition}")
}

impl ProgressState {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("progress serializes")
    }

    pub fn decode(bytes: &[u8]) -> Result<ProgressState> {
        serde_json::from_slice(bytes).map_err(|e| Error::Kafka {
            context: format!("reading restore progress from topic {PROGRESS_TOPIC}"),
            message: format!(
                "unreadable progress record ({e}); it was not written by this vault version"
            ),
        })
    }
}

/// The last committed progress record for `restore_id`, if any. Call after
/// `init_transactions`, which aborts what a killed run left open.
pub fn load(kafka: &KafkaOptions, restore_id: &str) -> Result<Option<ProgressState>> {
    let client = kafka.metadata_client(true)?;
    let md = client
        .fetch_metadata(Some(PROGRESS_TOPIC), kafka.request_timeout)
        .map_err(|e| kafka_err(kafka, e))?;
    let exists = md
        .topics()
        .iter()
        .any(|t| t.error().is_none() && !t.partitions().is_empty());
    if !exists {
        return Ok(None);
    }
    let mut c = kafka.client_config();
    c.set("group.id", "kvault-restore-progress")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        // A short read at startup: answer fast rather than wait for data.
        .set("fetch.wait.max.ms", "10")
        .set("fetch.error.backoff.ms", "10");
    let consumer: BaseConsumer = c.create().map_err(|e| kafka_err(kafka, e))?;
    // The same ListOffsets reads as the snapshot's cut; a failed one is an
    // error, never "no progress" (which would restore everything again).
    let topic = [TopicInfo {
        name: PROGRESS_TOPIC.to_string(),
        partitions: 1,
        replication_factor: 1,
    }];
    let key = (PROGRESS_TOPIC.to_string(), 0);
    let end = partition_offsets(kafka, &client, &topic, Edge::End)?[&key];
    let start = partition_offsets(kafka, &client, &topic, Edge::Start)?[&key];
    if end <= start {
        return Ok(None);
    }
    let mut tpl = TopicPartitionList::new();
    // An explicit offset spares the consumer its own offset lookup.
    tpl.add_partition_offset(PROGRESS_TOPIC, 0, Offset::Offset(start))
        .map_err(|e| kafka_err(kafka, e))?;
    consumer.assign(&tpl).map_err(|e| kafka_err(kafka, e))?;
    let key = restore_id.as_bytes();
    let mut last = None;
    let deadline = Instant::now() + kafka.request_timeout * 2;
    loop {
        if Instant::now() > deadline {
            return Err(kafka_err(kafka, "timed out reading the progress topic"));
        }
        match consumer.poll(Duration::from_millis(20)) {
            None => continue,
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => return Err(kafka_err(kafka, e)),
            Some(Ok(m)) => {
                if m.key() == Some(key) {
                    last = m.payload().map(<[u8]>::to_vec);
                }
                if m.offset() + 1 >= end {
                    break;
                }
            }
        }
    }
    // Closing the clients takes a round of goodbyes nobody needs to wait for.
    std::thread::spawn(move || drop((consumer, client)));
    last.map(|b| ProgressState::decode(&b)).transpose()
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
