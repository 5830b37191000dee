//! Membership in a Kafka consumer group, used only to share work out.
//!
//! Distributed snapshots and restores (`--workers NAME`) let the cluster's
//! group coordinator decide which worker handles which partition: every
//! worker subscribes to the same topics in the same group, with the
//! cooperative-sticky assignor, and handles the partitions it is assigned.
//! Membership, failure detection (the session timeout) and reassignment all
//! come from Kafka. The member never reads records through the group: the
//! partitions it is assigned are paused at once, and the work itself is done
//! by other clients that know exactly which offsets to read.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;

use super::{KafkaOptions, creation_error};
use crate::error::{Error, Result};

/// A worker's wait for its group's coordinator to answer at all. After a
/// rebalance an empty assignment is ordinary (more workers than partitions
/// left); a group that never answered (generation 0) for `timeout` is a
/// broker or an ACL problem, and the worker fails saying so.
pub struct JoinWait {
    pub group: String,
    pub started: Instant,
    pub timeout: Duration,
}

impl JoinWait {
    /// Called while the member is not settled: fails if the group never
    /// answered within the timeout, else pauses before the next look.
    /// `waited_for` names what did not come ("assignment", "answer") and
    /// `kept` what the failure leaves in place.
    pub fn pause_unsettled(
        &self,
        generation: u64,
        last_error: Option<String>,
        waited_for: &str,
        kept: &str,
    ) -> Result<()> {
        if generation == 0 && self.started.elapsed() > self.timeout {
            return Err(Error::Kafka {
                context: format!("joining the consumer group {}", self.group),
                message: format!(
                    "no {waited_for} from the group coordinator in {} s ({}); check the brokers and that \
                     this client may join the group (a group ACL); {kept}",
                    self.timeout.as_secs(),
                    last_error.unwrap_or_else(|| "the client reported no error".into())
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(200));
        Ok(())
    }
}

/// A run name (`--workers NAME`) becomes part of a consumer group id and of
/// messages: letters, digits, '.', '_' and '-' only.
pub fn check_run_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "--workers {name:?}: a run name is 1 to 200 letters, digits, '.', '_' or '-'"
        )))
    }
}

/// What the group member thread shares with the worker.
#[derive(Default)]
struct Shared {
    assigned: Mutex<Assignment>,
    last_error: Mutex<Option<String>>,
}

#[derive(Clone, Debug)]
struct Assignment {
    partitions: BTreeSet<(String, u32)>,
    /// Rebalances seen so far (each assign or revoke).
    changes: u64,
    changed_at: Instant,
}

impl Default for Assignment {
    fn default() -> Assignment {
        Assignment {
            partitions: BTreeSet::new(),
            changes: 0,
            changed_at: Instant::now(),
        }
    }
}

struct MemberContext {
    shared: Arc<Shared>,
}

impl ClientContext for MemberContext {
    fn error(&self, error: KafkaError, reason: &str) {
        *self.shared.last_error.lock().expect("member error") =
            Some(format!("{error}: {}", crate::secrets::scrub(reason)));
    }
}

impl ConsumerContext for MemberContext {
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            // The member only holds the assignment; it must not fetch.
            let _ = consumer.pause(tpl);
        }
        let partitions = consumer
            .assignment()
            .map(|tpl| {
                tpl.elements()
                    .iter()
                    .filter_map(|e| {
                        Some((e.topic().to_string(), u32::try_from(e.partition()).ok()?))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut a = self.shared.assigned.lock().expect("assignment");
        a.partitions = partitions;
        a.changes += 1;
        a.changed_at = Instant::now();
    }
}

/// One worker's membership in the group `group`.
pub struct GroupMember {
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl GroupMember {
    /// Joins `group`, subscribed to `topics`. A member that stops
    /// heartbeating for `session_timeout` (a killed worker) loses its
    /// partitions to the others.
    pub fn join(
        kafka: &KafkaOptions,
        group: &str,
        topics: &[String],
        session_timeout: Duration,
    ) -> Result<GroupMember> {
        let session_ms = session_timeout.as_millis().max(1000);
        let c = kafka.client_config_with(|c| {
            c.set("group.id", group)
                .set("partition.assignment.strategy", "cooperative-sticky")
                .set("session.timeout.ms", session_ms.to_string())
                .set(
                    "heartbeat.interval.ms",
                    (session_ms / 5).max(100).to_string(),
                )
                .set("enable.auto.commit", "false")
                .set("enable.auto.offset.store", "false")
                // Paused at once; were a fetch to slip through, it finds nothing.
                .set("auto.offset.reset", "latest");
        });
        let shared = Arc::new(Shared::default());
        let consumer: BaseConsumer<MemberContext> = c
            .create_with_context(MemberContext {
                shared: Arc::clone(&shared),
            })
            .map_err(|e| Error::Kafka {
                context: format!(
                    "joining the consumer group {group} (brokers {})",
                    kafka.brokers
                ),
                message: creation_error(&e),
            })?;
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&names).map_err(|e| Error::Kafka {
            context: format!(
                "joining the consumer group {group} (brokers {})",
                kafka.brokers
            ),
            message: e.to_string(),
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("group-member".into())
                .spawn(move || {
                    // Rebalances are served from poll; heartbeats run in
                    // librdkafka's own threads. Its errors (a broker away
                    // for a moment) also reach the error callback.
                    while !stop.load(Ordering::Relaxed) {
                        let _ = consumer.poll(Duration::from_millis(100));
                    }
                    // Leaving at once lets the others take the partitions
                    // without waiting out the session timeout.
                    consumer.unsubscribe();
                    let _ = consumer.poll(Duration::from_millis(100));
                })
                .map_err(|e| Error::io("starting the group member thread", "", e))?
        };
        Ok(GroupMember {
            shared,
            stop,
            thread: Some(thread),
        })
    }

    /// Counts the rebalances this member has seen.
    pub fn generation(&self) -> u64 {
        self.shared.assigned.lock().expect("assignment").changes
    }

    /// The partitions the group assigned to this member now.
    pub fn assigned(&self) -> BTreeSet<(String, u32)> {
        self.shared
            .assigned
            .lock()
            .expect("assignment")
            .partitions
            .clone()
    }

    /// Whether the assignment has stood unchanged for `quiet` since the
    /// first rebalance: workers started together join within moments of
    /// each other, and each should start on its own share, not on the
    /// whole set the first one to join is given for an instant.
    pub fn settled(&self, quiet: Duration) -> bool {
        let a = self.shared.assigned.lock().expect("assignment");
        a.changes > 0 && a.changed_at.elapsed() >= quiet
    }

    /// The last trouble the client reported, to explain a wait.
    pub fn last_error(&self) -> Option<String> {
        self.shared.last_error.lock().expect("member error").clone()
    }
}

impl Drop for GroupMember {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
