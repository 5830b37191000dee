//! Which topics a command works on: names or patterns, resolved against
//! what the cluster lists and describes.

use rdkafka::metadata::Metadata;
use regex::Regex;

use super::context::MetadataClient;
use super::describe::{TopicDescription, describe_topics};
use super::options::KafkaOptions;
use super::retry::{RETRY_PAUSE, is_getting_ready};
use crate::error::{Error, Result};

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
pub(crate) struct ListedTopic {
    pub name: String,
    /// The metadata error the cluster gave for it, if any.
    pub error: Option<String>,
}

impl ListedTopic {
    pub(crate) fn from_metadata(md: &Metadata) -> Vec<ListedTopic> {
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
    pub(crate) fn pick(&self, listed: &[ListedTopic]) -> Result<Vec<String>> {
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
    pub(crate) fn resolve(&self, descriptions: Vec<TopicDescription>) -> Result<Vec<TopicInfo>> {
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
