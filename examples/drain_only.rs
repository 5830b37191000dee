//! Consumer speed alone (no framing, no packing): how fast rdkafka's
//! BaseConsumer drains a topic in this process. A diagnostic for
//! docs/benchmarks.md.
//!
//!     cargo run --release --example drain_only -- BROKERS TOPIC PARTITIONS

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (brokers, topic, parts) = (&args[1], &args[2], args[3].parse::<i32>().unwrap());
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("group.id", "kvault-drain-only")
        .set("enable.auto.commit", "false");
    for kv in &args[4..] {
        let (k, v) = kv.split_once('=').unwrap();
        c.set(k, v);
    }
    let consumer: BaseConsumer = c.create().unwrap();
    let mut tpl = TopicPartitionList::new();
    let mut ends = 0i64;
    for p in 0..parts {
        let (lo, hi) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .unwrap();
        ends += hi - lo;
        tpl.add_partition_offset(topic, p, Offset::Offset(lo))
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let t = Instant::now();
    let (mut n, mut bytes) = (0i64, 0usize);
    while n < ends {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            n += 1;
            bytes += m.payload().map_or(0, <[u8]>::len);
        }
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "{n} records, {} MiB in {s:.2} s: {:.0} MiB/s",
        bytes >> 20,
        bytes as f64 / 1048576.0 / s
    );
}
