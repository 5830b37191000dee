//! Makes a Kafka "estate" for bench/partitions.sh: many topics with many
//! partitions, a few records in each, and a few hundred consumer groups
//! with committed positions, as a real cluster has. One process, so a
//! 10,000-partition estate takes seconds rather than a JVM start per topic.
//!
//!     cargo run --release --example make_estate -- BROKERS PREFIX TOPICS PARTITIONS_PER_TOPIC \
//!         RECORDS_PER_PARTITION GROUPS
//!
//! Topics are PREFIX.tNNN; records are small JSON values (200-800 B) with
//! two headers; group g commits a position in every partition of topic
//! g % TOPICS. Running it again on a filled estate adds nothing.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let [_, brokers, prefix, topics, per_topic, records, groups] = a.as_slice() else {
        eprintln!(
            "usage: make_estate BROKERS PREFIX TOPICS PARTITIONS_PER_TOPIC RECORDS_PER_PARTITION GROUPS"
        );
        std::process::exit(2);
    };
    let n: usize = topics.parse().unwrap();
    let per: i32 = per_topic.parse().unwrap();
    let records: i64 = records.parse().unwrap();
    let groups: usize = groups.parse().unwrap();
    let names: Vec<String> = (0..n).map(|t| format!("{prefix}.t{t:03}")).collect();

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let specs: Vec<NewTopic<'_>> = names
        .iter()
        .map(|t| NewTopic::new(t, per, TopicReplication::Fixed(1)).set("retention.ms", "-1"))
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(120)));
    let mut created = 0;
    for chunk in specs.chunks(50) {
        for r in rt.block_on(admin.create_topics(chunk, &opts)).unwrap() {
            match r {
                Ok(_) => created += 1,
                Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((t, e)) => panic!("creating {t}: {e}"),
            }
        }
    }
    eprintln!("make_estate: {created} topics created of {n}");

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "kvault-make-estate")
        .create()
        .unwrap();
    // Topic metadata settles a moment after creation.
    let mut filled = true;
    for t in &names {
        for p in 0..per {
            let (_, hi) = loop {
                match consumer.fetch_watermarks(t, p, Duration::from_secs(10)) {
                    Ok(w) => break w,
                    Err(_) => std::thread::sleep(Duration::from_millis(200)),
                }
            };
            if hi < records {
                filled = false;
            }
        }
        if !filled {
            break;
        }
    }
    if !filled {
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("linger.ms", "50")
            .set("batch.size", "1000000")
            .set("compression.type", "lz4")
            .set("queue.buffering.max.kbytes", "1048576")
            .set("queue.buffering.max.messages", "1000000")
            .create()
            .unwrap();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut sent = 0u64;
        for t in &names {
            for p in 0..per {
                for i in 0..records {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let len = 200 + (x % 600) as usize;
                    let value = format!(
                        "{{\"id\":{i},\"partition\":{p},\"user\":\"user-{}\",\"pad\":\"{}\"}}",
                        x % 5000,
                        "x".repeat(len.saturating_sub(60))
                    );
                    let key = format!("user-{}", x % 5000);
                    let headers = OwnedHeaders::new()
                        .insert(Header {
                            key: "content-type",
                            value: Some("application/json"),
                        })
                        .insert(Header {
                            key: "source",
                            value: Some("edge-7"),
                        });
                    let mut rec = BaseRecord::to(t)
                        .partition(p)
                        .key(&key)
                        .payload(&value)
                        .headers(headers);
                    loop {
                        match producer.send(rec) {
                            Ok(()) => break,
                            Err((_, r)) => {
                                rec = r;
                                producer.poll(Duration::from_millis(10));
                            }
                        }
                    }
                    sent += 1;
                }
            }
            producer.poll(Duration::ZERO);
        }
        producer.flush(Duration::from_secs(300)).unwrap();
        eprintln!("make_estate: {sent} records produced");
    }

    for g in 0..groups {
        let topic = &names[g % n];
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", format!("{prefix}-group-{g:03}"))
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in 0..per {
            let at = (records * (1 + i64::try_from(g % 3).unwrap())) / 4;
            tpl.add_partition_offset(topic, p, Offset::Offset(at))
                .unwrap();
        }
        c.commit(&tpl, CommitMode::Sync).unwrap();
    }
    eprintln!("make_estate: {groups} groups committed");
}
