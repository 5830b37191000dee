//! Shared helpers of the integration tests. Each test binary (`offline`,
//! `e2e`, `outages`) includes this module once, as `crate::common`. The
//! Kafka helpers here run against the real clusters that `scripts/kafka
//! start` (or the README's test command) starts.
#![allow(dead_code)]
// Test data is made in small, known ranges (partitions, counts, offsets),
// where Kafka's i32 and Rust's usize meet without a check.
#![allow(clippy::cast_possible_wrap, clippy::cast_sign_loss)]

mod backend;
mod compaction;
mod groups;
mod records;
mod repository;
mod sasl;
mod test_vault;

#[allow(unused_imports)]
pub use backend::*;
#[allow(unused_imports)]
pub use compaction::*;
#[allow(unused_imports)]
pub use groups::*;
#[allow(unused_imports)]
pub use records::*;
#[allow(unused_imports)]
pub use repository::*;
#[allow(unused_imports)]
pub use sasl::*;
#[allow(unused_imports)]
pub use test_vault::*;

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// Which of the two local clusters a test talks to.
#[derive(Clone, Copy, Debug)]
pub enum Cluster {
    Source,
    Target,
}

impl Cluster {
    fn var(self) -> &'static str {
        match self {
            Cluster::Source => "KVAULT_TEST_SOURCE_BROKERS",
            Cluster::Target => "KVAULT_TEST_TARGET_BROKERS",
        }
    }

    /// Bootstrap servers of the cluster. A test that needs a broker and finds
    /// none fails, loudly and with the fix, rather than skipping.
    pub fn brokers(self) -> String {
        match std::env::var(self.var()) {
            Ok(v) if !v.trim().is_empty() => v,
            _ => panic!(
                "{} is not set: this test needs the local Kafka clusters.\n\
                 Run the whole suite with `scripts/test`, or start them with\n\
                 `eval \"$(scripts/kafka start)\"` and run cargo test again.",
                self.var()
            ),
        }
    }

    pub fn config(self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.brokers());
        c
    }
}

/// A topic name no other test (or earlier run) has used.
pub fn unique_topic(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Creates a topic and waits until the broker has it. Unless `configs` says
/// otherwise, retention is infinite: the tests use fixed timestamps from
/// 2023, which the default 7-day retention would delete at once.
pub async fn create_topic(cluster: Cluster, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> = cluster.config().create().expect("admin client");
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    if !configs.iter().any(|(k, _)| *k == "retention.ms") {
        topic = topic.set("retention.ms", "-1");
    }
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let res = admin
        .create_topics([&topic], &opts)
        .await
        .expect("create_topics");
    for r in res {
        r.unwrap_or_else(|(t, e)| panic!("creating topic {t}: {e}"));
    }
}

/// Deletes a topic and waits until the cluster no longer lists it.
pub async fn delete_topic(cluster: Cluster, name: &str) {
    let admin: AdminClient<DefaultClientContext> = cluster.config().create().expect("admin client");
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for r in admin
        .delete_topics(&[name], &opts)
        .await
        .expect("delete_topics")
    {
        r.unwrap_or_else(|(t, e)| panic!("deleting topic {t}: {e}"));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while topic_exists(cluster, name) {
        assert!(
            std::time::Instant::now() < deadline,
            "{name} is still listed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates a topic again right after deleting it: the cluster may need a
/// moment before the name is free.
pub async fn recreate_topic(cluster: Cluster, name: &str, partitions: i32) {
    delete_topic(cluster, name).await;
    let admin: AdminClient<DefaultClientContext> = cluster.config().create().expect("admin client");
    let topic =
        NewTopic::new(name, partitions, TopicReplication::Fixed(1)).set("retention.ms", "-1");
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let res = admin
            .create_topics([&topic], &opts)
            .await
            .expect("create_topics");
        match res.into_iter().next().expect("one result") {
            Ok(_) => return,
            Err((t, e)) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "creating {t} again: {e}"
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

/// Deletes the records of `topic`/`partition` below `before` (as retention would).
pub async fn delete_records(cluster: Cluster, topic: &str, partition: i32, before: i64) {
    use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
    let admin: AdminClient<DefaultClientContext> = cluster.config().create().expect("admin client");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(before))
        .unwrap();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let res = admin
        .delete_records(&tpl, &opts)
        .await
        .expect("delete_records");
    for e in res.elements() {
        e.error().expect("records deleted");
    }
}

/// Runs a Kafka command-line tool class through `scripts/kafka tool`.
pub fn kafka_tool(args: &[&str]) -> std::process::Output {
    let script = std::path::Path::new(
        &std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    )
    .join("scripts/kafka");
    std::process::Command::new(script)
        .arg("tool")
        .args(args)
        .output()
        .expect("run scripts/kafka tool")
}

/// Runs the Kafka tool `class` against `cluster` (`--bootstrap-server`
/// first, then `args`); returns its output.
pub fn kafka_tool_on(cluster: Cluster, class: &str, args: &[&str]) -> std::process::Output {
    let brokers = cluster.brokers();
    let mut all = vec![class, "--bootstrap-server", &brokers];
    all.extend_from_slice(args);
    kafka_tool(&all)
}

/// `kafka-configs --alter ARGS` on `cluster`; asserts it worked.
pub fn kafka_configs(cluster: Cluster, args: &[&str]) {
    let mut all = vec!["--alter"];
    all.extend_from_slice(args);
    let o = kafka_tool_on(cluster, "kafka.admin.ConfigCommand", &all);
    assert!(
        o.status.success(),
        "kafka-configs {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Sum of the high watermarks of a topic's partitions.
pub fn high_watermarks(cluster: Cluster, topic: &str, partitions: i32) -> i64 {
    let c: BaseConsumer = cluster
        .config()
        .set("group.id", "kvault-test-watermarks")
        .create()
        .expect("consumer");
    (0..partitions)
        .map(|p| {
            c.fetch_watermarks(topic, p, Duration::from_secs(10))
                .map(|(_, hi)| hi)
                .unwrap_or(0)
        })
        .sum()
}

/// Whether the cluster has `topic`.
pub fn topic_exists(cluster: Cluster, topic: &str) -> bool {
    let c: BaseConsumer = cluster
        .config()
        .set("group.id", "kvault-test-metadata")
        .create()
        .expect("consumer");
    let md = c
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("metadata");
    md.topics().iter().any(|t| t.name() == topic)
}
