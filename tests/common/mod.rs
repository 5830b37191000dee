//! Shared helpers for the end-to-end tests: they run against the real Kafka
//! clusters that `scripts/kafka start` (or the README's test command) starts.
#![allow(dead_code)]

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;

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

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, OwnedHeaders, Timestamp};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

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

/// A vault in a temporary directory, driven through the real binary.
pub struct TestVault {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    pub password_file: PathBuf,
    pub cache: PathBuf,
}

impl TestVault {
    pub fn init() -> TestVault {
        TestVault::init_with(&[])
    }

    /// `vault init` with extra arguments (e.g. a small pack size).
    pub fn init_with(extra: &[&str]) -> TestVault {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault");
        let password_file = dir.path().join("pw");
        let cache = dir.path().join("cache");
        std::fs::write(&password_file, "test passphrase\n").unwrap();
        let v = TestVault {
            dir,
            path,
            password_file,
            cache,
        };
        let mut args = vec!["init", "--kdf-memory-mib", "8"];
        args.extend_from_slice(extra);
        let o = v.run(&args);
        assert!(
            o.status.success(),
            "init: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        v
    }

    /// Runs `vault <cmd> --vault … --password-file … <rest>`.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_vault"));
        c.arg(args[0])
            .arg("--vault")
            .arg(&self.path)
            .arg("--password-file")
            .arg(&self.password_file)
            .args(&args[1..])
            .env("KVAULT_CACHE_DIR", &self.cache)
            .env_remove("KVAULT_PASSWORD")
            .env_remove("KVAULT_PASSWORD_FILE");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run vault")
    }

    /// Runs a command that must succeed and prints JSON; returns the JSON.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        let o = self.run(&a);
        assert!(
            o.status.success(),
            "vault {args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
            panic!(
                "vault {args:?}: bad JSON ({e}): {}",
                String::from_utf8_lossy(&o.stdout)
            )
        })
    }

    /// Restores into the target cluster; returns the JSON summary.
    pub fn restore(&self, snapshot: &str, extra: &[&str]) -> serde_json::Value {
        let brokers = Cluster::Target.brokers();
        let mut args = vec!["restore", "--snapshot-id", snapshot, "--brokers", &brokers];
        args.extend_from_slice(extra);
        self.json(&args)
    }

    /// Snapshots `topics` of the source cluster; returns the JSON summary.
    pub fn snapshot(&self, topics: &[&str]) -> serde_json::Value {
        let t = topics.join(",");
        self.json(&[
            "snapshot",
            "--brokers",
            &Cluster::Source.brokers(),
            "--topics",
            &t,
        ])
    }

    pub fn open(&self) -> vault::Repository<vault::repository::Indexed> {
        let pass = vault::password::read_password_file(&self.password_file).unwrap();
        vault::Repository::open(std::sync::Arc::new(vault::storage::local::LocalDir::open(
            &self.path,
        )))
        .unwrap()
        .unlock(&pass)
        .unwrap()
        .index(&self.cache.join("inspect"))
        .unwrap()
    }

    /// The records a snapshot holds for a topic, as `TestRecord`s.
    pub fn records(&self, snapshot: &str, topic: &str) -> Vec<TestRecord> {
        let repo = self.open();
        let id = repo.resolve_snapshot(snapshot).unwrap();
        let m = repo.read_snapshot(&id).unwrap();
        let t = m
            .topics
            .iter()
            .find(|t| t.name == topic)
            .unwrap_or_else(|| panic!("{topic} not in snapshot"));
        let mut out = Vec::new();
        for p in &t.partitions {
            let Some(root) = p.root else { continue };
            for r in vault::reader::all_records(&repo, &root).unwrap() {
                out.push(TestRecord {
                    partition: p.partition as i32,
                    offset: r.offset,
                    key: r.key,
                    value: r.value,
                    headers: r
                        .headers
                        .into_iter()
                        .map(|(k, v)| (String::from_utf8(k).unwrap(), v))
                        .collect(),
                    timestamp: (r.timestamp_type as u8, r.timestamp),
                });
            }
        }
        out
    }

    /// Starts `vault snapshot` of `topic` in the background and returns once
    /// it has written `pack_bytes` of new packs, still running (the moment
    /// the fault tests strike). Output is piped.
    pub fn snapshot_in_flight(
        &self,
        topic: &str,
        extra: &[&str],
        pack_bytes: u64,
    ) -> std::process::Child {
        let brokers = Cluster::Source.brokers();
        let mut args = vec!["snapshot", "--brokers", &brokers, "--topics", topic];
        args.extend_from_slice(extra);
        // Growth, not size: a vault that already holds packs would otherwise
        // count as "mid-flight" before the snapshot has even started.
        let packs = self.path.join("packs");
        let target = dir_size(&packs) + pack_bytes;
        let mut child = self
            .command(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while dir_size(&packs) < target {
            assert!(
                std::time::Instant::now() < deadline,
                "the snapshot wrote nothing"
            );
            if let Some(status) = child.try_wait().unwrap() {
                let out = child.wait_with_output().unwrap();
                panic!(
                    "the snapshot ended ({status}) before the fault struck; \
                     stdout: {} stderr: {}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        child
    }

    /// A copy of this vault (same passphrase, its own cache), for tests
    /// that damage one.
    pub fn copy(&self) -> TestVault {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault");
        let status = Command::new("cp")
            .arg("-a")
            .arg(&self.path)
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success());
        let password_file = dir.path().join("pw");
        std::fs::copy(&self.password_file, &password_file).unwrap();
        let cache = dir.path().join("cache");
        TestVault {
            dir,
            path,
            password_file,
            cache,
        }
    }

    /// Files of one kind of vault object (`packs`, `index`, `snapshots`).
    pub fn files(&self, kind: &str) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut dirs = vec![self.path.join(kind)];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                } else if !p.file_name().unwrap().to_string_lossy().starts_with('.') {
                    out.push(p);
                }
            }
        }
        out.sort();
        out
    }

    /// Bytes the vault occupies on disk.
    pub fn size(&self) -> u64 {
        dir_size(&self.path)
    }
}

pub fn dir_size(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        dir_size(&p)
                    } else {
                        e.metadata().map(|m| m.len()).unwrap_or(0)
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Waits until the source cluster's log cleaner has compacted `topic`
/// (partition 0) below `below` records and settled; returns what is left.
/// The topic needs a small `segment.ms`; a record keyed `roll` is produced
/// every half second to roll segments.
pub async fn compact(topic: &str, below: usize) -> Vec<TestRecord> {
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        produce(
            Cluster::Source,
            topic,
            &[TestRecord::new(0, Some(b"roll"), Some(b"x"))],
        )
        .await;
        if consume_all(Cluster::Source, topic, 1).len() < below {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the log cleaner never compacted {topic}"
        );
    }
    // With no more writes the cleaner settles; wait until two reads agree.
    let mut want = consume_all(Cluster::Source, topic, 1);
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let again = consume_all(Cluster::Source, topic, 1);
        if again == want {
            return want;
        }
        want = again;
        assert!(
            std::time::Instant::now() < deadline,
            "the log cleaner never settled on {topic}"
        );
    }
}

/// A client acting for `group` without joining it.
fn group_client(cluster: Cluster, group: &str) -> BaseConsumer {
    cluster
        .config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer")
}

/// Commits `offsets` (partition, offset) for `group` on `topic`, the way a
/// consumer that stopped there would have.
pub fn commit_group(cluster: Cluster, group: &str, topic: &str, offsets: &[(i32, i64)]) {
    use rdkafka::consumer::CommitMode;
    let c = group_client(cluster, group);
    let mut tpl = TopicPartitionList::new();
    for (p, o) in offsets {
        tpl.add_partition_offset(topic, *p, Offset::Offset(*o))
            .unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while let Err(e) = c.commit(&tpl, CommitMode::Sync) {
        assert!(std::time::Instant::now() < deadline, "commit {group}: {e}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The offset `group` has committed on `topic`/`partition`, if any.
pub fn committed(cluster: Cluster, group: &str, topic: &str, partition: i32) -> Option<i64> {
    let c = group_client(cluster, group);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    let got = c
        .committed_offsets(tpl, Duration::from_secs(30))
        .expect("committed offsets");
    match got.elements()[0].offset() {
        Offset::Offset(o) => Some(o),
        _ => None,
    }
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

/// A one-partition topic on the source that the log cleaner compacts
/// quickly, filled with `rounds` overwrites of `keys` keys (`key{k}` =
/// `r{round}`). Pass it to [`compact`] to wait for the cleaner.
pub async fn compactable_topic(name: &str, rounds: usize, keys: usize) {
    create_topic(
        Cluster::Source,
        name,
        1,
        &[
            ("cleanup.policy", "compact"),
            ("segment.ms", "100"),
            ("min.cleanable.dirty.ratio", "0.001"),
            ("delete.retention.ms", "86400000"),
        ],
    )
    .await;
    let mut recs = Vec::new();
    for round in 0..rounds {
        for k in 0..keys {
            recs.push(TestRecord::new(
                0,
                Some(format!("key{k}").as_bytes()),
                Some(format!("r{round}").as_bytes()),
            ));
        }
    }
    produce(Cluster::Source, name, &recs).await;
}
