//! Topics deleted while a distributed snapshot runs. A topic deleted
//! mid-run (a Kafka Streams temporary topic under `--topic-regex '.*'`)
//! is dropped from the workers' group and never assigned again, and one
//! being read stalls its batch; one deleted and created again under its
//! name would give the new topic's records at the old one's offsets. In
//! each case its partitions get a part marked `topic_gone`, and the run
//! commits without that topic, saying so, instead of waiting forever.

use std::collections::{BTreeMap, BTreeSet};

use vault_format::run::{RunPart, RunPlan};

use super::RunObjects;
use super::worker::WorkerOutcome;
use crate::error::Result;
use crate::kafka::{KafkaOptions, MetadataClient};
use crate::lock::VaultLock;
use crate::now_ms;
use crate::repository::Indexed;

/// What a worker asks the source cluster about the plan's topics.
pub trait TopicWatch {
    /// Which of `planned` (name, topic ID at the cut) the cluster no
    /// longer has: deleted, or deleted and created again (another ID).
    fn gone(&self, planned: &[(String, Option<String>)]) -> Result<Vec<String>>;
}

/// A cluster whose topics are never deleted (tests through the record-source seam).
pub struct NoTopicWatch;

impl TopicWatch for NoTopicWatch {
    fn gone(&self, _: &[(String, Option<String>)]) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
}

pub use crate::kafka::Presence;

/// Whether a topic planned with `planned_id` is gone, given what the
/// cluster says now. Only what is certain counts: a missing topic, or two
/// known IDs that differ. A cluster without topic IDs cannot tell a
/// recreated topic from the same one, so its topics are never called gone
/// while they exist.
pub fn is_gone(planned_id: Option<&str>, now: &Presence) -> bool {
    match now {
        Presence::Missing => true,
        Presence::WithoutId => false,
        Presence::With(id) => planned_id.is_some_and(|p| p != id),
    }
}

/// The real cluster, by its topic IDs, through one metadata client kept
/// for the run (a worker looks after every batch).
pub struct KafkaTopicWatch<'a> {
    kafka: &'a KafkaOptions,
    client: MetadataClient,
}

impl<'a> KafkaTopicWatch<'a> {
    pub fn new(kafka: &'a KafkaOptions) -> Result<KafkaTopicWatch<'a>> {
        Ok(KafkaTopicWatch {
            kafka,
            client: kafka.metadata_client(true)?,
        })
    }

    fn presence(&self, names: &[String]) -> Result<BTreeMap<String, Presence>> {
        crate::kafka::topic_presence(self.kafka, &self.client, names)
    }
}

impl TopicWatch for KafkaTopicWatch<'_> {
    fn gone(&self, planned: &[(String, Option<String>)]) -> Result<Vec<String>> {
        let names: Vec<String> = planned.iter().map(|(n, _)| n.clone()).collect();
        // One more look after a failed one: a broker restarting is no
        // reason to fail a worker that only wanted to make sure.
        let now = match self.presence(&names) {
            Ok(p) => p,
            Err(_) => {
                std::thread::sleep(std::time::Duration::from_secs(1));
                self.presence(&names)?
            }
        };
        Ok(planned
            .iter()
            .filter(|(name, id)| {
                is_gone(id.as_deref(), now.get(name).unwrap_or(&Presence::Missing))
            })
            .map(|(n, _)| n.clone())
            .collect())
    }
}

/// Marks the partitions among `candidates` whose topics are gone from the
/// cluster with a `topic_gone` part (create-only, so a part another worker
/// wrote first wins). Returns the parts now present for them.
pub(super) fn mark_gone(
    run: &RunObjects<'_, Indexed>,
    plan: &RunPlan,
    plans: &[crate::snapshot::PartitionPlan],
    candidates: &[u32],
    topics: &dyn TopicWatch,
    lock: &VaultLock,
) -> Result<Vec<RunPart>> {
    let mut asked: Vec<(String, Option<String>)> = Vec::new();
    for i in candidates {
        let name = &plans[*i as usize].topic;
        if asked.iter().all(|(n, _)| n != name) {
            let id = plan
                .template
                .topics
                .iter()
                .find(|t| &t.name == name)
                .and_then(|t| t.topic_id)
                .map(|id| id.to_kafka_string());
            asked.push((name.clone(), id));
        }
    }
    if asked.is_empty() {
        return Ok(Vec::new());
    }
    let gone = topics.gone(&asked)?;
    let mut out = Vec::new();
    lock.check()?;
    let now = now_ms();
    for i in candidates {
        let p = &plans[*i as usize];
        if !gone.contains(&p.topic) {
            continue;
        }
        let part = RunPart {
            plan_id: plan.plan_id,
            index: *i,
            root: None,
            log_start_offset: p.log_start,
            deleted: Vec::new(),
            records_read: 0,
            bytes_read: 0,
            bytes_added: 0,
            chunks_added: 0,
            started_ms: now,
            finished_ms: now,
            worker: format!("{}/{}", crate::host::hostname(), std::process::id()),
            topic_gone: Some(format!(
                "topic {} was deleted (or deleted and created again) while the run read it",
                p.topic
            )),
        };
        run.put_part(&part)?;
        if let Some(p) = run.read_part(plan, *i)? {
            out.push(p);
        }
    }
    Ok(out)
}

/// Warns about each topic the committed snapshot leaves out.
pub(super) fn note_gone_topics(
    parts: &BTreeMap<u32, RunPart>,
    plans: &[crate::snapshot::PartitionPlan],
    out: &mut WorkerOutcome,
) {
    let mut warned: BTreeSet<&str> = BTreeSet::new();
    for (i, p) in parts {
        let topic = plans[*i as usize].topic.as_str();
        if let Some(why) = &p.topic_gone
            && warned.insert(topic)
        {
            out.warnings
                .push(format!("{why}; the snapshot leaves topic {topic} out"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_missing_topic_or_another_known_id_is_gone() {
        let id = "AAAAAAAAAAAAAAAAAAAAAA";
        assert!(is_gone(Some(id), &Presence::Missing));
        assert!(is_gone(None, &Presence::Missing));
        assert!(is_gone(
            Some(id),
            &Presence::With("BBBBBBBBBBBBBBBBBBBBBB".into())
        ));
        assert!(!is_gone(Some(id), &Presence::With(id.into())));
        // A cluster before Kafka 2.8: no IDs, so an existing topic stays.
        assert!(!is_gone(None, &Presence::WithoutId));
        assert!(!is_gone(Some(id), &Presence::WithoutId));
        // Planned without an ID, now with one: cannot tell, so not gone.
        assert!(!is_gone(None, &Presence::With(id.into())));
    }
}
