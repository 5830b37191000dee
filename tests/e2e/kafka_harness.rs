//! Proves the test harness itself: the local source cluster is a real Kafka
//! that rdkafka can produce to and consume from, and that kcat (a client vault
//! did not write) sees the same records.

use crate::common;

use std::process::Command;
use std::time::Duration;

use common::{Cluster, create_topic, unique_topic};
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_and_consume_on_the_real_source_cluster() {
    let topic = unique_topic("harness");
    create_topic(Cluster::Source, &topic, 3, &[]).await;

    let producer: FutureProducer = Cluster::Source
        .config()
        .set("enable.idempotence", "true")
        .create()
        .expect("producer");
    let n: i32 = 30;
    for i in 0..n {
        let key = format!("k{i}");
        let value = format!("v{i}");
        let headers = OwnedHeaders::new().insert(Header {
            key: "h",
            value: Some(&i.to_be_bytes()[..]),
        });
        producer
            .send(
                FutureRecord::to(&topic)
                    .partition(i % 3)
                    .key(&key)
                    .payload(&value)
                    .timestamp(1_700_000_000_000 + i64::from(i))
                    .headers(headers),
                Duration::from_secs(10),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("produce {i}: {e}"));
    }

    let consumer: StreamConsumer = Cluster::Source
        .config()
        .set("group.id", unique_topic("harness-group"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[&topic]).expect("subscribe");

    let mut seen = Vec::new();
    while seen.len() < usize::try_from(n).unwrap() {
        let msg = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .expect("timed out waiting for records")
            .expect("consume error");
        let key = String::from_utf8(msg.key().unwrap().to_vec()).unwrap();
        let value = String::from_utf8(msg.payload().unwrap().to_vec()).unwrap();
        let i: i32 = key[1..].parse().unwrap();
        assert_eq!(value, format!("v{i}"));
        assert_eq!(msg.partition(), i % 3);
        assert_eq!(
            msg.timestamp().to_millis(),
            Some(1_700_000_000_000 + i64::from(i))
        );
        let h = msg.headers().expect("headers").get(0);
        assert_eq!((h.key, h.value), ("h", Some(&i.to_be_bytes()[..])));
        seen.push(i);
    }
    seen.sort();
    assert_eq!(seen, (0..n).collect::<Vec<_>>());

    // An independent client reads the same count back.
    let out = Command::new("kcat")
        .args([
            "-b",
            &Cluster::Source.brokers(),
            "-C",
            "-t",
            &topic,
            "-e",
            "-q",
            "-f",
            "%k\n",
        ])
        .output()
        .expect("kcat must be installed (scripts/test installs it)");
    assert!(
        out.status.success(),
        "kcat failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = String::from_utf8(out.stdout).unwrap();
    assert_eq!(lines.lines().count(), usize::try_from(n).unwrap());
}
