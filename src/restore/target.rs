//! The target cluster: what it holds and creating topics. The translated
//! group offsets are committed through `kafka::commit_group_offsets`.

use std::collections::HashMap;

use rdkafka::admin::{AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::consumer::Consumer;

use crate::error::{Error, Result};
use crate::kafka::KafkaOptions;

/// What the target cluster holds, read once at planning.
#[derive(Clone, Debug)]
pub(crate) struct TargetCluster {
    pub brokers: usize,
    /// Topic name → partition count.
    pub topics: HashMap<String, u32>,
}

impl TargetCluster {
    pub fn read(
        kafka: &KafkaOptions,
        client: &crate::kafka::MetadataClient,
    ) -> Result<TargetCluster> {
        let md = kafka.fetch_metadata(client)?;
        let topics = md
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| (t.name().to_string(), t.partitions().len() as u32))
            .collect();
        Ok(TargetCluster {
            brokers: md.brokers().len().max(1),
            topics,
        })
    }
}

/// A topic restore creates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTopicSpec {
    pub name: String,
    pub partitions: u32,
    pub replication_factor: u32,
    pub configs: Vec<(String, String)>,
}

fn err(kafka: &KafkaOptions, context: &str, e: impl std::fmt::Display) -> Error {
    Error::Kafka {
        context: format!("{context} (target brokers {})", kafka.brokers),
        message: e.to_string(),
    }
}

pub async fn create_topics(kafka: &KafkaOptions, specs: &[NewTopicSpec]) -> Result<()> {
    if specs.is_empty() {
        return Ok(());
    }
    let admin = kafka.admin()?;
    let new: Vec<NewTopic<'_>> = specs
        .iter()
        .map(|s| {
            let mut t = NewTopic::new(
                &s.name,
                crate::kafka::kafka_partition(s.partitions),
                TopicReplication::Fixed(
                    i32::try_from(s.replication_factor).expect("capped at the broker count"),
                ),
            );
            for (k, v) in &s.configs {
                t = t.set(k, v);
            }
            t
        })
        .collect();
    let res = admin
        .create_topics(
            &new,
            &AdminOptions::new().operation_timeout(Some(kafka.request_timeout)),
        )
        .await
        .map_err(|e| err(kafka, "creating topics", e))?;
    for r in res {
        match r {
            Ok(_) => {}
            Err((name, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {
                // Created by an earlier, interrupted run of this restore.
                let _ = name;
            }
            Err((name, code)) => {
                return Err(err(
                    kafka,
                    &format!("creating topic {name}"),
                    format!(
                        "{code}; if a backed-up config is not valid on the target, override it with --topic-config KEY=VALUE"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Effective configuration (defaults included) of existing topics.
pub(crate) async fn effective_topic_configs(
    kafka: &KafkaOptions,
    topics: &[String],
) -> Result<HashMap<String, HashMap<String, String>>> {
    let mut out = HashMap::new();
    if topics.is_empty() {
        return Ok(out);
    }
    let admin = kafka.admin()?;
    let specs: Vec<_> = topics.iter().map(|t| ResourceSpecifier::Topic(t)).collect();
    let res = admin
        .describe_configs(
            &specs,
            &AdminOptions::new().request_timeout(Some(kafka.request_timeout)),
        )
        .await
        .map_err(|e| err(kafka, "reading topic configs", e))?;
    for r in res {
        let r = r.map_err(|e| err(kafka, "reading topic configs", e))?;
        if let rdkafka::admin::OwnedResourceSpecifier::Topic(name) = r.specifier {
            let entries = r
                .entries
                .into_iter()
                .filter_map(|e| Some((e.name, e.value?)))
                .collect();
            out.insert(name, entries);
        }
    }
    Ok(out)
}

/// The broker's default `retention.ms` for new topics (-1: forever).
pub(crate) async fn default_retention_ms(
    kafka: &KafkaOptions,
    client: &crate::kafka::MetadataClient,
) -> Result<i64> {
    let md = kafka.fetch_metadata(client)?;
    let Some(broker) = md
        .brokers()
        .first()
        .map(rdkafka::metadata::MetadataBroker::id)
    else {
        return Ok(7 * 86_400_000);
    };
    let admin = kafka.admin()?;
    let res = admin
        .describe_configs(
            &[ResourceSpecifier::Broker(broker)],
            &AdminOptions::new().request_timeout(Some(kafka.request_timeout)),
        )
        .await
        .map_err(|e| err(kafka, "reading broker configs", e))?;
    let mut ms = None;
    let mut minutes = None;
    let mut hours = None;
    for r in res.into_iter().flatten() {
        for e in r.entries {
            let v = e.value.as_deref().and_then(|v| v.parse::<i64>().ok());
            match e.name.as_str() {
                "log.retention.ms" => ms = v,
                "log.retention.minutes" => minutes = v,
                "log.retention.hours" => hours = v,
                _ => {}
            }
        }
    }
    Ok(ms
        .or(minutes.map(|m| m * 60_000))
        .or(hours.map(|h| h * 3_600_000))
        .unwrap_or(7 * 86_400_000))
}

/// The topic IDs (Kafka's base64 form) of `names` on the target; `None`
/// for a topic that does not exist there. Any other answer is an error:
/// a topic that merely could not be described is not a deleted one.
pub fn topic_ids(
    kafka: &KafkaOptions,
    names: impl IntoIterator<Item = String>,
) -> Result<std::collections::BTreeMap<String, Option<String>>> {
    let client = kafka.metadata_client(true)?;
    topic_ids_with(kafka, &client, names)
}

/// [`topic_ids`] through a client the caller keeps.
pub(crate) fn topic_ids_with(
    kafka: &KafkaOptions,
    client: &crate::kafka::MetadataClient,
    names: impl IntoIterator<Item = String>,
) -> Result<std::collections::BTreeMap<String, Option<String>>> {
    let names: Vec<String> = names.into_iter().collect();
    let described = crate::kafka::describe_topics(kafka, client, &names)?;
    let mut out: std::collections::BTreeMap<String, Option<String>> =
        names.into_iter().map(|n| (n, None)).collect();
    for d in described {
        match (&d.error, d.error_code) {
            (None, _) => {
                out.insert(d.name, d.id.map(|id| id.to_kafka_string()));
            }
            (Some(_), Some(rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
            (Some(e), _) => {
                return Err(err(
                    kafka,
                    &format!("describing target topic {}", d.name),
                    e,
                ));
            }
        }
    }
    Ok(out)
}

/// How many members a group has on the target (0 when it is empty or unknown there).
pub(crate) fn group_members(
    kafka: &KafkaOptions,
    client: &crate::kafka::MetadataClient,
    group: &str,
) -> Result<usize> {
    let list = crate::kafka::retry_transient(kafka, || {
        client.fetch_group_list(Some(group), kafka.request_timeout)
    })
    .map_err(|e| err(kafka, &format!("describing consumer group {group}"), e))?;
    Ok(list
        .groups()
        .iter()
        .filter(|g| g.name() == group)
        .map(|g| g.members().len())
        .sum())
}
