//! Talking to Kafka: client configuration, topic selection, and the reads
//! that make up a consistent cut (committed group offsets, then the log
//! start and end offsets of every selected partition in one request each).

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, ConfigSource, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::Consumer;
use rdkafka::metadata::Metadata;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use regex::Regex;

use crate::error::{Error, Result};

mod admin_ffi;
mod context;
mod describe;
pub use context::{ClientLog, MetadataClient, creation_error};
mod group_offsets;
pub use describe::{PartitionDescription, TopicDescription, describe_topics};
pub use group_offsets::{OffsetCommit, commit_group_offsets, group_offsets};

/// How to reach a cluster: bootstrap servers plus any librdkafka property,
/// given as `-X key=value` like kcat does (security.protocol, sasl.*, ssl.*).
#[derive(Clone)]
pub struct KafkaOptions {
    pub brokers: String,
    pub properties: Vec<(String, String)>,
    /// How long one metadata or offsets request may take before vault gives up.
    pub request_timeout: Duration,
    /// What the operator should hear about these settings.
    pub warnings: Vec<String>,
}

/// Secret settings are shown as `****`.
impl std::fmt::Debug for KafkaOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let props: Vec<(&str, &str)> = self
            .properties
            .iter()
            .map(|(k, v)| {
                let shown = if crate::secrets::is_secret_key(k) {
                    "****"
                } else {
                    v.as_str()
                };
                (k.as_str(), shown)
            })
            .collect();
        f.debug_struct("KafkaOptions")
            .field("brokers", &self.brokers)
            .field("properties", &props)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

impl KafkaOptions {
    pub fn new(brokers: impl Into<String>) -> KafkaOptions {
        KafkaOptions {
            brokers: brokers.into(),
            properties: Vec::new(),
            request_timeout: Duration::from_secs(30),
            warnings: Vec::new(),
        }
    }

    /// Parses `key=value` as given to `-X`. A secret's value is
    /// registered, so no message ever shows it.
    pub fn parse_property(s: &str) -> Result<(String, String)> {
        match s.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                let k = k.trim().to_string();
                if crate::secrets::is_secret_key(&k) {
                    crate::secrets::register(v);
                }
                Ok((k, v.to_string()))
            }
            // The text may hold a secret without its `=`: never echo it.
            _ => Err(Error::Usage(
                "-X takes key=value, e.g. -X security.protocol=SASL_SSL".into(),
            )),
        }
    }

    /// The client settings of a librdkafka properties file, as kcat's
    /// `-F` reads it: `key=value` lines, `#` comments and blank lines.
    pub fn read_properties_file(path: &std::path::Path) -> Result<Vec<(String, String)>> {
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| Error::io("reading the client properties file", path, e))?,
        );
        let mut out = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            // `key = value`, as Java properties files allow.
            let line = match line.split_once('=') {
                Some((k, v)) => format!("{}={}", k.trim(), v.trim()),
                None => line.to_string(),
            };
            let p = KafkaOptions::parse_property(&line).map_err(|_| {
                Error::Usage(format!(
                    "{} line {}: expected key=value",
                    path.display(),
                    n + 1
                ))
            })?;
            out.push(p);
        }
        Ok(out)
    }

    /// The options for `brokers` from kcat-style settings: a properties
    /// file (`-F`), then a SASL password file, then each `-X key=value`,
    /// later ones winning.
    pub fn from_settings(
        brokers: &str,
        properties_file: Option<&std::path::Path>,
        sasl_password_file: Option<&std::path::Path>,
        properties: &[String],
    ) -> Result<KafkaOptions> {
        let mut o = KafkaOptions::new(brokers);
        if let Some(f) = properties_file {
            o.properties.extend(KafkaOptions::read_properties_file(f)?);
        }
        if let Some(f) = sasl_password_file {
            o.properties
                .push(KafkaOptions::secret_from_file("sasl.password", f)?);
        }
        for p in properties {
            let (k, v) = KafkaOptions::parse_property(p)?;
            if k == "sasl.password" {
                o.warnings.push(
                    "-X sasl.password puts the password on the command line, where `ps` shows it; \
                     use --sasl-password-file (or -F) instead"
                        .into(),
                );
            }
            o.properties.push((k, v));
        }
        Ok(o)
    }

    /// A secret setting read from a file's first line (`--sasl-password-file`),
    /// so that it never sits on a command line where `ps` shows it.
    pub fn secret_from_file(key: &str, path: &std::path::Path) -> Result<(String, String)> {
        let secret = crate::password::read_password_file(path)?;
        let value = String::from_utf8(secret.to_vec())
            .map_err(|_| Error::Usage(format!("{}: the secret is not UTF-8", path.display())))?;
        crate::secrets::register(&value);
        Ok((key.to_string(), value))
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
    pub fn metadata_client(&self, read_committed: bool) -> Result<MetadataClient> {
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
        c.create_with_context(ClientLog::default())
            .map_err(|e| self.kafka_err("creating a Kafka client", creation_error(&e)))
    }

    pub fn admin(&self) -> Result<AdminClient<DefaultClientContext>> {
        self.client_config()
            .create()
            .map_err(|e| self.kafka_err("creating a Kafka admin client", creation_error(&e)))
    }

    /// The cluster's metadata. Asks again each second up to the request
    /// timeout, but stops at once when the cluster refuses the client's
    /// credentials or TLS, and says so.
    pub fn fetch_metadata(&self, client: &MetadataClient) -> Result<Metadata> {
        let deadline = std::time::Instant::now() + self.request_timeout;
        loop {
            let step = Duration::from_secs(1).min(self.request_timeout);
            match client.fetch_metadata(None, step) {
                Ok(md) => return Ok(md),
                Err(e) => {
                    // Serves librdkafka's error events (a consumer hears of
                    // them only when polled); nothing is assigned, so no
                    // record can come.
                    let _ = client.poll(Duration::ZERO);
                    let refused = client.context().refused();
                    if refused || std::time::Instant::now() >= deadline {
                        return Err(match client.context().last_error() {
                            Some(why) if refused => Error::Kafka {
                                context: format!("connecting to {}", self.brokers),
                                message: format!(
                                    "{why}; check the credentials and TLS settings (-F, -X, --sasl-password-file)"
                                ),
                            },
                            Some(why) => {
                                self.kafka_err("reading cluster metadata", format!("{e} ({why})"))
                            }
                            None => self.kafka_err("reading cluster metadata", e),
                        });
                    }
                }
            }
        }
    }

    pub fn cluster_id(&self, client: &MetadataClient) -> Option<String> {
        client
            .client()
            .fetch_cluster_id(self.request_timeout)
            .filter(|id| !id.is_empty())
    }
}

/// A topic as the cluster describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    /// Its topic ID, when the cluster has them.
    pub id: Option<vault_format::TopicId>,
    pub partitions: u32,
    pub replication_factor: u32,
}

/// A topic as the cluster's topic list shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedTopic {
    pub name: String,
    /// The metadata error the cluster gave for it, if any.
    pub error: Option<String>,
}

impl ListedTopic {
    pub fn from_metadata(md: &Metadata) -> Vec<ListedTopic> {
        md.topics()
            .iter()
            .map(|t| ListedTopic {
                name: t.name().to_string(),
                error: t
                    .error()
                    .map(|e| rdkafka::types::RDKafkaErrorCode::from(e).to_string()),
            })
            .collect()
    }
}

/// Which topics a command works on.
#[derive(Clone, Debug, Default)]
pub struct TopicSelection {
    topics: Vec<String>,
    regex: Option<Pattern>,
    exclude: Option<Pattern>,
}

/// A regular expression as the operator wrote it, matched against whole names.
#[derive(Clone, Debug)]
struct Pattern {
    text: String,
    re: Regex,
}

impl Pattern {
    fn new(text: &str, flag: &str) -> Result<Pattern> {
        let re = Regex::new(&format!("^(?:{text})$"))
            .map_err(|e| Error::Usage(format!("{flag} {text:?}: {e}")))?;
        Ok(Pattern {
            text: text.to_string(),
            re,
        })
    }

    fn is_match(&self, name: &str) -> bool {
        self.re.is_match(name)
    }
}

impl TopicSelection {
    /// Named topics, or a regular expression over topic names (matched
    /// against whole names), less the names `exclude` matches.
    pub fn new(
        topics: Vec<String>,
        regex: Option<&str>,
        exclude: Option<&str>,
    ) -> Result<TopicSelection> {
        if !topics.is_empty() && regex.is_some() {
            return Err(Error::Usage(
                "--topics and --topic-regex select topics in two ways; give one".into(),
            ));
        }
        Ok(TopicSelection {
            topics,
            regex: regex
                .map(|r| Pattern::new(r, "--topic-regex"))
                .transpose()?,
            exclude: exclude.map(|e| Pattern::new(e, "--exclude")).transpose()?,
        })
    }

    /// The named topics.
    pub fn topics(topics: &[&str]) -> TopicSelection {
        TopicSelection {
            topics: topics.iter().map(|t| t.to_string()).collect(),
            ..TopicSelection::default()
        }
    }

    /// The selection as a snapshot manifest records it.
    pub fn record(&self) -> vault_format::manifest::Selection {
        let mut topics = self.topics.clone();
        topics.sort();
        topics.dedup();
        vault_format::manifest::Selection {
            topics,
            regex: self.regex.as_ref().map(|p| p.text.clone()),
            exclude: self.exclude.as_ref().map(|p| p.text.clone()),
        }
    }

    /// The names the selection picks from the cluster's topic list. Named
    /// topics are picked whether listed or not, so that describing them
    /// says why one is missing. Internal topics (`__consumer_offsets`, …)
    /// are only picked when named. A listed topic with a metadata error is
    /// picked like any other, so that the error is reported, not skipped.
    pub fn pick(&self, listed: &[ListedTopic]) -> Result<Vec<String>> {
        let mut out: Vec<String> = if !self.topics.is_empty() {
            let mut named = self.topics.clone();
            named.sort();
            named.dedup();
            named
        } else {
            let mut names: Vec<String> = listed
                .iter()
                .map(|t| t.name.clone())
                .filter(|n| !n.starts_with("__"))
                .filter(|n| self.regex.as_ref().is_none_or(|r| r.is_match(n)))
                .collect();
            names.sort();
            names.dedup();
            names
        };
        if let Some(ex) = &self.exclude {
            out.retain(|t| !ex.is_match(t));
        }
        if out.is_empty() {
            return Err(Error::Usage(
                "no topic matches the selection (--topics / --topic-regex / --exclude)".into(),
            ));
        }
        Ok(out)
    }

    /// The picked topics as described, or an error that names every one
    /// the cluster could not describe fully: a snapshot never leaves out a
    /// selected topic without saying so.
    pub fn resolve(&self, descriptions: Vec<TopicDescription>) -> Result<Vec<TopicInfo>> {
        let mut problems = Vec::new();
        let mut out = Vec::new();
        for d in descriptions {
            if let Some(e) = &d.error {
                if e.contains("UnknownTopicOrPartition") || e.contains("Unknown topic") {
                    problems.push(format!("topic {:?} does not exist on the cluster", d.name));
                } else {
                    problems.push(format!("topic {:?}: {e}", d.name));
                }
                continue;
            }
            let leaderless: Vec<String> = d
                .partitions
                .iter()
                .filter(|p| p.leader.is_none())
                .map(|p| p.partition.to_string())
                .collect();
            if !leaderless.is_empty() {
                problems.push(format!(
                    "topic {:?}: partition(s) {} have no leader",
                    d.name,
                    leaderless.join(",")
                ));
                continue;
            }
            if d.partitions.is_empty() {
                problems.push(format!(
                    "topic {:?}: the cluster lists no partitions",
                    d.name
                ));
                continue;
            }
            out.push(TopicInfo {
                replication_factor: d
                    .partitions
                    .iter()
                    .map(|p| p.replicas)
                    .max()
                    .unwrap_or(1)
                    .max(1),
                partitions: d.partitions.len() as u32,
                id: d.id,
                name: d.name,
            });
        }
        if !problems.is_empty() && problems.iter().all(|p| p.contains("does not exist")) {
            return Err(Error::Usage(format!(
                "{}; check --topics (vault snapshots lists what the vault holds)",
                problems.join("; ")
            )));
        }
        if !problems.is_empty() {
            let hint = if self.topics.is_empty() {
                "fix the cause, or leave the topic out with --exclude"
            } else {
                "fix the cause, or leave the topic out of --topics (or --exclude it)"
            };
            return Err(Error::Kafka {
                context: "reading the selected topics' metadata".into(),
                message: format!("{}; {hint}. Nothing was written", problems.join("; ")),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

impl TopicSelection {
    /// Describes the picked topics and resolves them, asking again while
    /// the cluster is getting ready (a leader being elected, a topic just
    /// created) for up to the request timeout.
    pub fn describe(
        &self,
        opts: &KafkaOptions,
        client: &MetadataClient,
        names: &[String],
    ) -> Result<Vec<TopicInfo>> {
        let deadline = std::time::Instant::now() + opts.request_timeout;
        loop {
            let described = describe_topics(opts, client, names)?;
            let settling = described.iter().any(|d| {
                d.error_code.is_some_and(is_getting_ready)
                    || d.partitions.iter().any(|p| p.leader.is_none())
            });
            if !settling || std::time::Instant::now() > deadline {
                return self.resolve(described);
            }
            std::thread::sleep(RETRY_PAUSE);
        }
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
