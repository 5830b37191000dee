//! Talking to Kafka: client configuration, topic selection, and the reads
//! that make up a consistent cut (committed group offsets, then the log
//! start and end offsets of every selected partition in one request each).

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::admin::{AdminOptions, ConfigSource, ResourceSpecifier};
use rdkafka::consumer::Consumer;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::error::Result;

mod admin_ffi;
mod context;
mod describe;
pub(crate) mod produce_ffi;
pub use context::{ClientLog, wait_for_closing_clients};
pub(crate) use context::{Detached, MetadataClient, creation_error};
mod group_offsets;
mod membership;
pub use membership::{GroupMember, check_run_name};
mod options;
mod selection;
pub use describe::Presence;
pub(crate) use describe::{describe_topics, topic_presence};
pub use group_offsets::group_offsets;
pub(crate) use group_offsets::{OffsetCommit, commit_group_offsets};
pub use options::KafkaOptions;
pub(crate) use selection::ListedTopic;
pub use selection::{TopicInfo, TopicSelection};

/// A partition number as Kafka's client API takes it. vault's partition
/// numbers came from Kafka, which counts them in an i32.
pub(crate) fn kafka_partition(p: u32) -> i32 {
    i32::try_from(p).expect("Kafka partition numbers fit in an i32")
}

/// A partition number Kafka answered with, for a partition vault named
/// (never the -1 of "unassigned").
pub(crate) fn vault_partition(p: i32) -> u32 {
    u32::try_from(p).expect("Kafka answered about a real partition")
}

/// The topics' non-default configuration (dynamic topic configs).
pub(crate) async fn dynamic_topic_configs(
    opts: &KafkaOptions,
    topics: &[TopicInfo],
) -> Result<HashMap<String, Vec<(String, String)>>> {
    let admin = opts.admin()?;
    let specs: Vec<ResourceSpecifier<'_>> = topics
        .iter()
        .map(|t| ResourceSpecifier::Topic(&t.name))
        .collect();
    let mut out = HashMap::new();
    for chunk in specs.chunks(100) {
        let res = admin
            .describe_configs(
                chunk,
                &AdminOptions::new().request_timeout(Some(opts.request_timeout)),
            )
            .await
            .map_err(|e| opts.kafka_err("reading topic configs", e))?;
        for r in res {
            let r = r.map_err(|e| opts.kafka_err("reading topic configs", e))?;
            let rdkafka::admin::OwnedResourceSpecifier::Topic(name) = r.specifier else {
                continue;
            };
            let mut entries: Vec<(String, String)> = r
                .entries
                .into_iter()
                .filter(|e| e.source == ConfigSource::DynamicTopic && !e.is_sensitive)
                .filter_map(|e| Some((e.name, e.value?)))
                .collect();
            entries.sort();
            out.insert(name, entries);
        }
    }
    Ok(out)
}

/// Which offset of each partition to ask for.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Edge {
    /// The log start offset.
    Start,
    /// The end: the last stable offset under read_committed, else the high watermark.
    End,
}

/// Log start or end offsets of every partition of `topics`, in one
/// ListOffsets round (librdkafka batches it per broker).
pub(crate) fn partition_offsets(
    opts: &KafkaOptions,
    client: &MetadataClient,
    topics: &[TopicInfo],
    edge: Edge,
) -> Result<HashMap<(String, u32), i64>> {
    let mut tpl = TopicPartitionList::new();
    let at = match edge {
        Edge::Start => Offset::Beginning,
        Edge::End => Offset::End,
    };
    for t in topics {
        for p in 0..t.partitions {
            tpl.add_partition_offset(&t.name, kafka_partition(p), at)
                .map_err(|e| opts.kafka_err("listing offsets", e))?;
        }
    }
    let res = retry_transient(opts, || {
        let res = client.offsets_for_times(tpl.clone(), opts.request_timeout)?;
        // A partition whose leader is still settling after a restart
        // answers with an error of its own: ask again.
        match res.elements().iter().find_map(|e| e.error().err()) {
            Some(e) if e.rdkafka_error_code().is_some_and(is_getting_ready) => Err(e),
            _ => Ok(res),
        }
    })
    .map_err(|e| opts.kafka_err("listing partition offsets", e))?;
    let mut out = HashMap::new();
    for e in res.elements() {
        e.error().map_err(|err| {
            opts.kafka_err(
                &format!("listing offsets of {}/{}", e.topic(), e.partition()),
                err,
            )
        })?;
        let o = match e.offset() {
            Offset::Offset(o) => o,
            other => {
                return Err(opts.kafka_err(
                    &format!("listing offsets of {}/{}", e.topic(), e.partition()),
                    format!("unexpected offset {other:?}"),
                ));
            }
        };
        out.insert((e.topic().to_string(), vault_partition(e.partition())), o);
    }
    Ok(out)
}

/// Whether `code` means the cluster is still getting ready: a fresh or
/// restarted broker loads its group coordinator, and its partition leaders
/// settle their epochs, for a few seconds.
fn is_getting_ready(code: rdkafka::types::RDKafkaErrorCode) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        code,
        C::CoordinatorLoadInProgress
            | C::CoordinatorNotAvailable
            | C::NotCoordinator
            | C::LeaderNotAvailable
            | C::NotLeaderForPartition
            | C::UnknownLeaderEpoch
            | C::FencedLeaderEpoch
            | C::OffsetNotAvailable
    )
}

/// How long to wait before asking a cluster that is getting ready again.
const RETRY_PAUSE: Duration = Duration::from_millis(250);

/// The pauses between looks at a cluster while something settles (a new
/// topic's ID, a commit's markers): each look makes a new client, so soon
/// at first (10 ms), then less often (doubling up to 200 ms).
pub(crate) struct SettlePause(Duration);

impl SettlePause {
    pub(crate) fn new() -> SettlePause {
        SettlePause(Duration::from_millis(10))
    }

    /// Sleeps for the next pause.
    pub(crate) fn sleep(&mut self) {
        std::thread::sleep(self.0);
        self.0 = (self.0 * 2).min(Duration::from_millis(200));
    }
}

/// Runs `f` again while the cluster answers that it is still getting ready,
/// up to the request timeout.
pub(crate) fn retry_transient<T>(
    opts: &KafkaOptions,
    mut f: impl FnMut() -> rdkafka::error::KafkaResult<T>,
) -> rdkafka::error::KafkaResult<T> {
    let deadline = std::time::Instant::now() + opts.request_timeout;
    loop {
        match f() {
            Err(e)
                if e.rdkafka_error_code().is_some_and(is_getting_ready)
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(RETRY_PAUSE);
            }
            other => return other,
        }
    }
}
