//! Records as the tests produce, read back and compare them.

use std::time::Duration;

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, OwnedHeaders, Timestamp};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::*;

/// A record as the tests produce and compare it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestRecord {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// (type, ms): type 0 none, 1 CreateTime, 2 LogAppendTime.
    pub timestamp: (u8, i64),
}

impl TestRecord {
    pub fn new(partition: i32, key: Option<&[u8]>, value: Option<&[u8]>) -> TestRecord {
        TestRecord {
            partition,
            offset: -1,
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            headers: vec![],
            timestamp: (1, 0),
        }
    }

    pub fn header(mut self, k: &str, v: Option<&[u8]>) -> TestRecord {
        self.headers.push((k.to_string(), v.map(<[u8]>::to_vec)));
        self
    }

    pub fn at(mut self, ts: i64) -> TestRecord {
        self.timestamp = (1, ts);
        self
    }
}

pub fn producer(cluster: Cluster, extra: &[(&str, &str)]) -> FutureProducer {
    let mut c = cluster.config();
    c.set("message.max.bytes", "16000000").set("linger.ms", "5");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create().expect("producer")
}

fn headers_of(r: &TestRecord) -> Option<OwnedHeaders> {
    if r.headers.is_empty() {
        return None;
    }
    let mut h = OwnedHeaders::new();
    for (k, v) in &r.headers {
        h = h.insert(Header {
            key: k,
            value: v.as_deref(),
        });
    }
    Some(h)
}

/// Produces records in order (each acknowledged before the next is sent,
/// so offsets within a partition follow the slice order).
pub async fn produce_with(p: &FutureProducer, topic: &str, records: &[TestRecord]) {
    for r in records {
        let mut fr: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).partition(r.partition);
        if let Some(k) = &r.key {
            fr = fr.key(k.as_slice());
        }
        if let Some(v) = &r.value {
            fr = fr.payload(v.as_slice());
        }
        if r.timestamp.0 == 1 && r.timestamp.1 > 0 {
            fr = fr.timestamp(r.timestamp.1);
        }
        if let Some(h) = headers_of(r) {
            fr = fr.headers(h);
        }
        p.send(fr, Duration::from_secs(30))
            .await
            .unwrap_or_else(|(e, _)| panic!("produce to {topic}: {e}"));
    }
}

pub async fn produce(cluster: Cluster, topic: &str, records: &[TestRecord]) {
    produce_with(&producer(cluster, &[]), topic, records).await;
}

/// Produces many small records fast (not one round trip each).
pub async fn produce_bulk(
    cluster: Cluster,
    topic: &str,
    partitions: i32,
    n: usize,
    value_size: usize,
    seed: u64,
) {
    let p = producer(
        cluster,
        &[
            ("linger.ms", "20"),
            ("batch.size", "1000000"),
            ("compression.type", "lz4"),
        ],
    );
    let mut pending = Vec::new();
    let mut x = seed.max(1);
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut value = format!("{{\"n\":{i},\"seed\":{seed},\"r\":{x},\"pad\":\"").into_bytes();
        // Random letters: about as compressible as real payloads (zstd ~1.6x).
        while value.len() < value_size - 2 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            value.push(b'a' + (x % 26) as u8);
        }
        value.extend_from_slice(b"\"}");
        let key = format!("k{}", i % 1000);
        let fr = FutureRecord::to(topic)
            .partition((i % partitions as usize) as i32)
            .key(key.as_bytes())
            .payload(&value[..])
            .timestamp(1_700_000_000_000 + i as i64);
        pending.push(p.send_result(fr).expect("queue"));
        if pending.len() >= 10_000 {
            for f in pending.drain(..) {
                f.await.expect("delivery").expect("produce");
            }
        }
    }
    for f in pending {
        f.await.expect("delivery").expect("produce");
    }
}

/// Every record of a topic as a read_committed consumer sees it now.
pub fn consume_all(cluster: Cluster, topic: &str, partitions: i32) -> Vec<TestRecord> {
    let consumer: BaseConsumer = cluster
        .config()
        .set("group.id", unique_topic("test-reader"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("fetch.message.max.bytes", "16000000")
        .create()
        .expect("consumer");
    let mut ends = Vec::new();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        let (lo, hi) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .expect("watermarks");
        ends.push(hi);
        tpl.add_partition_offset(topic, p, Offset::Offset(lo))
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let pos = consumer.position().unwrap();
        let done = pos.elements().iter().all(|e| match e.offset() {
            Offset::Offset(o) => o >= ends[e.partition() as usize],
            _ => ends[e.partition() as usize] == 0,
        });
        if done {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out consuming {topic}"
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let timestamp = match m.timestamp() {
                    Timestamp::NotAvailable => (0, -1),
                    Timestamp::CreateTime(t) => (1, t),
                    Timestamp::LogAppendTime(t) => (2, t),
                };
                let headers = m
                    .headers()
                    .map(|h| {
                        (0..h.count())
                            .map(|i| h.get(i))
                            .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(TestRecord {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().map(<[u8]>::to_vec),
                    headers,
                    timestamp,
                });
            }
            Some(Err(e)) => eprintln!("consume {topic}: {e}"),
            None => {}
        }
    }
    out.sort_by_key(|r| (r.partition, r.offset));
    out
}

/// What a consumer of the group would read next: the records of
/// `partition` at or after `from`, without their offsets.
pub fn content_from(records: &[TestRecord], partition: i32, from: i64) -> Vec<TestRecord> {
    content(
        records
            .iter()
            .filter(|r| r.partition == partition && r.offset >= from),
    )
}

/// Records with their offsets blanked: what must match across clusters.
pub fn content<'a>(records: impl IntoIterator<Item = &'a TestRecord>) -> Vec<TestRecord> {
    records
        .into_iter()
        .map(|r| TestRecord {
            offset: -1,
            ..r.clone()
        })
        .collect()
}

/// An 8 MiB value that does not compress: larger than any chunk.
pub fn big_value() -> Vec<u8> {
    (0..8 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// One record of every field kind over partitions 0, 1 and 3 (2 stays
/// empty): duplicate and null headers, null versus empty keys and values,
/// a tombstone, the 8 MiB `big` value, an old timestamp.
pub fn field_kind_records(big: &[u8]) -> Vec<TestRecord> {
    vec![
        TestRecord::new(0, Some(b"k"), Some(b"v"))
            .header("dup", Some(b"1"))
            .header("dup", Some(b"2"))
            .header("null", None)
            .at(1_600_000_000_000),
        TestRecord::new(0, None, Some(b"null key")),
        TestRecord::new(0, Some(b""), Some(b"empty key")),
        TestRecord::new(0, Some(b"tombstone"), None),
        TestRecord::new(0, Some(b"empty value"), Some(b"")),
        TestRecord::new(0, None, None).header("", Some(b"")),
        TestRecord::new(1, Some(b"big"), Some(big)).header("h", Some(b"x")),
        TestRecord::new(1, Some(b"after big"), Some(b"small")),
        TestRecord::new(3, Some(b"old"), Some(b"1970")).at(1),
    ]
}

/// Transactions of three records each to partition 0 of `topic`, keyed
/// `t{i}-{j}`; transaction i commits when `commits[i]`, else aborts.
pub async fn produce_transactions(cluster: Cluster, topic: &str, commits: &[bool]) {
    use rdkafka::producer::Producer;
    let p = producer(cluster, &[("transactional.id", &unique_topic("tx"))]);
    p.init_transactions(Duration::from_secs(30)).unwrap();
    for (i, commit) in commits.iter().enumerate() {
        p.begin_transaction().unwrap();
        let recs: Vec<TestRecord> = (0..3)
            .map(|j| TestRecord::new(0, Some(format!("t{i}-{j}").as_bytes()), Some(b"x")))
            .collect();
        produce_with(&p, topic, &recs).await;
        if *commit {
            p.commit_transaction(Duration::from_secs(30)).unwrap();
        } else {
            p.abort_transaction(Duration::from_secs(30)).unwrap();
        }
    }
}
