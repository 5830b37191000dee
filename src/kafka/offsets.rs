//! Partition numbers between Kafka's i32 and vault's u32, the log start
//! and end offsets of a cut, and the topics' dynamic configs.

use std::collections::HashMap;

use rdkafka::admin::{AdminOptions, ConfigSource, ResourceSpecifier};
use rdkafka::consumer::Consumer;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::context::MetadataClient;
use super::options::KafkaOptions;
use super::retry::{is_getting_ready, retry_transient};
use super::selection::TopicInfo;
use crate::error::Result;

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
