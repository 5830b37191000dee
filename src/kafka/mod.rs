//! Talking to Kafka: client configuration, topic selection, and the reads
//! that make up a consistent cut (committed group offsets, then the log
//! start and end offsets of every selected partition in one request each).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, ConfigSource, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::metadata::Metadata;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use regex::Regex;

use crate::error::{Error, Result};

mod admin_ffi;
mod group_offsets;
pub use group_offsets::{OffsetCommit, commit_group_offsets, group_offsets};

/// How to reach a cluster: bootstrap servers plus any librdkafka property,
/// given as `-X key=value` like kcat does (security.protocol, sasl.*, ssl.*).
#[derive(Clone, Debug)]
pub struct KafkaOptions {
    pub brokers: String,
    pub properties: Vec<(String, String)>,
    /// How long one metadata or offsets request may take before vault gives up.
    pub request_timeout: Duration,
}

impl KafkaOptions {
    pub fn new(brokers: impl Into<String>) -> KafkaOptions {
        KafkaOptions {
            brokers: brokers.into(),
            properties: Vec::new(),
            request_timeout: Duration::from_secs(30),
        }
    }

    /// Parses `key=value` as given to `-X`.
    pub fn parse_property(s: &str) -> Result<(String, String)> {
        match s.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
            _ => Err(Error::Usage(format!(
                "-X {s:?}: expected key=value, e.g. -X security.protocol=SASL_SSL"
            ))),
        }
    }

    /// A client config with vault's defaults, then the user's `-X` properties
    /// (which win).
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        c.set("client.id", "kvault");
        // An unreachable cluster should fail in bounded time, not retry forever.
        c.set("socket.connection.setup.timeout.ms", "10000");
        c.set("log_level", "3");
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }

    /// A client config with vault's defaults, then `tune`'s settings for
    /// one kind of client, then the user's `-X` properties, which win over both.
    pub fn client_config_with(&self, tune: impl FnOnce(&mut ClientConfig)) -> ClientConfig {
        let mut c = self.client_config();
        tune(&mut c);
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }

    fn kafka_err(&self, context: &str, e: impl std::fmt::Display) -> Error {
        Error::Kafka {
            context: format!("{context} (brokers {})", self.brokers),
            message: format!("{e}; check --brokers and that the cluster is reachable"),
        }
    }

    /// A consumer used only for metadata and offset queries. It never joins
    /// its group; having one lets it carry per-group admin calls safely
    /// (see `admin_ffi::run_per_group`).
    pub fn metadata_client(&self, read_committed: bool) -> Result<BaseConsumer> {
        let mut c = self.client_config();
        c.set("group.id", "kvault-metadata");
        c.set("enable.auto.commit", "false");
        c.set(
            "isolation.level",
            if read_committed {
                "read_committed"
            } else {
                "read_uncommitted"
            },
        );
        c.create()
            .map_err(|e| self.kafka_err("creating a Kafka client", e))
    }

    pub fn admin(&self) -> Result<AdminClient<DefaultClientContext>> {
        self.client_config()
            .create()
            .map_err(|e| self.kafka_err("creating a Kafka admin client", e))
    }

    pub fn fetch_metadata(&self, client: &BaseConsumer) -> Result<Metadata> {
        client
            .fetch_metadata(None, self.request_timeout)
            .map_err(|e| self.kafka_err("reading cluster metadata", e))
    }

    pub fn cluster_id(&self, client: &BaseConsumer) -> String {
        client
            .client()
            .fetch_cluster_id(self.request_timeout)
            .unwrap_or_default()
    }
}

/// A topic as the cluster describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub partitions: u32,
    pub replication_factor: u32,
}

/// Which topics a command works on.
#[derive(Clone, Debug, Default)]
pub struct TopicSelection {
    pub topics: Vec<String>,
    pub regex: Option<Regex>,
    pub exclude: Option<Regex>,
}

impl TopicSelection {
    /// Internal topics (`__consumer_offsets`, `__transaction_state`, …) are
    /// only taken when named in `topics`.
    pub fn select(&self, md: &Metadata) -> Result<Vec<TopicInfo>> {
        let mut all = BTreeMap::new();
        for t in md.topics() {
            if t.error().is_some() {
                continue;
            }
            let rf = t
                .partitions()
                .iter()
                .map(|p| p.replicas().len())
                .max()
                .unwrap_or(1) as u32;
            all.insert(
                t.name().to_string(),
                TopicInfo {
                    name: t.name().to_string(),
                    partitions: t.partitions().len() as u32,
                    replication_factor: rf,
                },
            );
        }
        let mut out = Vec::new();
        if !self.topics.is_empty() {
            for name in &self.topics {
                let t = all.get(name).ok_or_else(|| {
                    Error::Usage(format!("topic {name:?} does not exist on the cluster"))
                })?;
                out.push(t.clone());
            }
        } else {
            for (name, t) in &all {
                let internal = name.starts_with("__");
                let wanted = self.regex.as_ref().is_none_or(|r| r.is_match(name));
                if !internal && wanted {
                    out.push(t.clone());
                }
            }
        }
        if let Some(ex) = &self.exclude {
            out.retain(|t| !ex.is_match(&t.name));
        }
        if out.is_empty() {
            return Err(Error::Usage(
                "no topic matches the selection (--topics / --topic-regex / --exclude)".into(),
            ));
        }
        Ok(out)
    }
}

/// The topics' non-default configuration (dynamic topic configs).
pub async fn topic_configs(
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
            let name = match r.specifier {
                rdkafka::admin::OwnedResourceSpecifier::Topic(n) => n,
                _ => continue,
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
pub enum Edge {
    /// The log start offset.
    Start,
    /// The end: the last stable offset under read_committed, else the high watermark.
    End,
}

/// Log start or end offsets of every partition of `topics`, in one
/// ListOffsets round (librdkafka batches it per broker).
pub fn partition_offsets(
    opts: &KafkaOptions,
    client: &BaseConsumer,
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
            tpl.add_partition_offset(&t.name, p as i32, at)
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
        out.insert((e.topic().to_string(), e.partition() as u32), o);
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

/// Runs `f` again while the cluster answers that it is still getting ready,
/// up to the request timeout.
pub fn retry_transient<T>(
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
