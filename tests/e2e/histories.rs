//! Histories that never mix: ordinary operator events that once made vault
//! lose or mix up records without a word. A recreated topic, two clusters
//! in one vault, a topic the cluster cannot describe, and retention that
//! strikes while a snapshot runs. (A restore resumed after a newer
//! snapshot is in `restore_crash.rs`.)

use crate::common;

use std::time::{Duration, Instant};
use vault::storage::{Dir, ObjectName};

use common::{
    Cluster, SaslLogin, TestRecord, TestVault, consume_all, content, create_topic, delete_records,
    delete_topic, kafka_acls, produce, recreate_topic, unique_topic,
};

fn records(prefix: &str, partitions: i32, n: usize) -> Vec<TestRecord> {
    (0i32..)
        .take(n)
        .map(|i| {
            TestRecord::new(
                i % partitions,
                Some(format!("{prefix}-k{i}").as_bytes()),
                Some(format!("{prefix}-v{i}").as_bytes()),
            )
            .at(1_700_000_000_000 + i64::from(i))
        })
        .collect()
}

fn values(records: &[TestRecord]) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = records.iter().filter_map(|r| r.value.clone()).collect();
    v.sort();
    v
}

fn warnings(out: &serde_json::Value) -> String {
    out["warnings"].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_topic_starts_a_new_history() {
    let topic = unique_topic("recreated");
    create_topic(Cluster::Source, &topic, 2, &[]).await;
    let old = records("old", 2, 100);
    produce(Cluster::Source, &topic, &old).await;
    let v = TestVault::init();
    let first = v.snapshot(&[&topic]);

    // The same name, a new topic, more records than the old one had: its
    // end offsets are past the old ones, so only the topic ID tells.
    recreate_topic(Cluster::Source, &topic, 2).await;
    let new = records("new", 2, 300);
    produce(Cluster::Source, &topic, &new).await;
    let second = v.snapshot(&[&topic]);
    assert!(
        warnings(&second).contains("deleted and created again"),
        "{second}"
    );
    assert_eq!(second["records_read"], 300, "read from offset 0: {second}");

    let held = v.records(second["id"].as_str().unwrap(), &topic);
    assert_eq!(
        values(&held),
        values(&new),
        "the new topic's records, all of them"
    );
    assert!(held.iter().any(|r| r.offset == 0));
    let kept = v.records(first["id"].as_str().unwrap(), &topic);
    assert_eq!(
        values(&kept),
        values(&old),
        "the old snapshot keeps the old topic"
    );

    // A restore of the new snapshot gives the new topic's records.
    let target = unique_topic("recreated-dr");
    let rename = format!("{topic}={target}");
    v.restore(
        second["id"].as_str().unwrap(),
        &["--rename", &rename, "--consumer-groups", "none"],
    );
    assert_eq!(
        values(&consume_all(Cluster::Target, &target, 2)),
        values(&new)
    );

    // A read_uncommitted snapshot never builds on the read_committed one.
    let ru = v.json(&[
        "snapshot",
        "--brokers",
        &Cluster::Source.brokers(),
        "--topics",
        &topic,
        "--read-uncommitted",
    ]);
    assert!(warnings(&ru).contains("isolation level"), "{ru}");
    assert_eq!(ru["records_read"], 300, "{ru}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clusters_in_one_vault_keep_their_own_snapshots() {
    // The harness's two clusters stand for two production clusters.
    let a = unique_topic("cluster-a");
    let b = unique_topic("cluster-b");
    create_topic(Cluster::Source, &a, 1, &[]).await;
    create_topic(Cluster::Target, &b, 1, &[]).await;
    let v = TestVault::init();
    // A, then B, then A, then B: B is always the newer one.
    let mut ids = Vec::new();
    for round in 0..2 {
        produce(Cluster::Source, &a, &records(&format!("a{round}"), 1, 20)).await;
        ids.push(v.snapshot_from(Cluster::Source, &[&a], &[])["id"].clone());
        produce(Cluster::Target, &b, &records(&format!("b{round}"), 1, 20)).await;
        ids.push(v.snapshot_from(Cluster::Target, &[&b], &[])["id"].clone());
    }

    let listed = v.json(&["snapshots"]);
    let groups: std::collections::BTreeSet<String> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["group"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(groups.len(), 2, "one group per cluster: {listed}");

    let dry = v.run(&["gc", "--keep-last", "1", "--dry-run"]);
    let text = String::from_utf8_lossy(&dry.stdout);
    assert_eq!(text.matches("keep ").count(), 2, "{text}");
    assert_eq!(text.matches("cluster ").count(), 2, "group headers: {text}");

    let gc = v.json(&["gc", "--keep-last", "1"]);
    let forgotten: Vec<String> = gc["forgotten"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect();
    assert_eq!(forgotten.len(), 2, "{gc}");
    assert!(forgotten.contains(&ids[0].as_str().unwrap().to_string()));
    assert!(forgotten.contains(&ids[1].as_str().unwrap().to_string()));

    // `latest` is ambiguous between the two; with a topic or --source it is not.
    let o = v.run(&[
        "restore",
        "--snapshot-id",
        "latest",
        "--brokers",
        &Cluster::Target.brokers(),
        "--dry-run",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--source"));

    // Both newest snapshots restore, each into the other cluster.
    let a_dr = unique_topic("cluster-a-dr");
    let rename = format!("{a}={a_dr}");
    let out = v.restore_into(
        Cluster::Target,
        "latest",
        &[
            "--topics",
            &a,
            "--rename",
            &rename,
            "--consumer-groups",
            "none",
        ],
    );
    assert_eq!(out["snapshot_id"], ids[2], "{out}");
    assert_eq!(
        content(&consume_all(Cluster::Target, &a_dr, 1)),
        content(&consume_all(Cluster::Source, &a, 1))
    );
    let b_dr = unique_topic("cluster-b-dr");
    let rename = format!("{b}={b_dr}");
    let source_b = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == ids[3])
        .unwrap()["source"]
        .as_str()
        .unwrap()
        .to_string();
    let out = v.restore_into(
        Cluster::Source,
        "latest",
        &[
            "--source",
            &source_b,
            "--rename",
            &rename,
            "--consumer-groups",
            "none",
        ],
    );
    assert_eq!(out["snapshot_id"], ids[3], "{out}");
    assert_eq!(
        content(&consume_all(Cluster::Source, &b_dr, 1)),
        content(&consume_all(Cluster::Target, &b, 1))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selected_topic_the_cluster_cannot_describe_fails_the_snapshot() {
    let ok = unique_topic("described");
    let denied = unique_topic("undescribed");
    create_topic(Cluster::Source, &ok, 1, &[]).await;
    create_topic(Cluster::Source, &denied, 1, &[]).await;
    produce(Cluster::Source, &ok, &records("ok", 1, 5)).await;
    produce(Cluster::Source, &denied, &records("no", 1, 5)).await;
    // Denied to a real principal, the SASL user: the PLAINTEXT listener's
    // principal is a super user on the test clusters.
    let deny = [
        "--deny-principal",
        "User:vault",
        "--operation",
        "Describe",
        "--topic",
        denied.as_str(),
    ];
    let acl = |op: &str| {
        let mut args = vec![op];
        args.extend_from_slice(&deny);
        kafka_acls(Cluster::Source, &args);
    };
    acl("--add");
    let v = TestVault::init();
    let login = SaslLogin::vault_user(v.dir.path());
    let sasl = login.args(Cluster::Source);
    let as_vault_user = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = vec!["snapshot".into()];
        args.extend(sasl.iter().cloned());
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let topics = format!("{ok},{denied}");
    // The ACL takes a moment to reach the broker's authorizer.
    let deadline = Instant::now() + Duration::from_secs(30);
    let o = loop {
        let args = as_vault_user(&["--topics", &topics]);
        let o = v.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        if !o.status.success() || Instant::now() > deadline {
            break o;
        }
        // The denial had not reached the broker: that snapshot was fine, drop it.
        for f in v.objects(Dir::Snapshots) {
            v.storage().delete(&f).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(&denied) && err.contains("uthoriz"), "{err}");
    assert!(err.contains("--exclude"), "says how to go on: {err}");
    assert!(v.objects(Dir::Snapshots).is_empty(), "nothing committed");

    // Left out on purpose, the rest is backed up.
    let args = as_vault_user(&["--topics", &topics, "--exclude", &denied]);
    let out = v.json(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out["topics"], serde_json::json!([ok]), "{out}");

    acl("--remove");
    delete_topic(Cluster::Source, &denied).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_between_the_cut_and_the_read_is_reported() {
    let topic = unique_topic("retained");
    create_topic(Cluster::Source, &topic, 1, &[]).await;
    let all = records("r", 1, 1000);
    produce(Cluster::Source, &topic, &all).await;
    let v = TestVault::init();
    let pause = v.dir.path().join("paused");
    let mut child = v
        .command(&[
            "snapshot",
            "--brokers",
            &Cluster::Source.brokers(),
            "--topics",
            &topic,
            "--json",
        ])
        .env(
            "KVAULT_PAUSE_AT",
            format!("snapshot-planned:{}", pause.display()),
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !pause.exists() {
        assert!(Instant::now() < deadline, "the snapshot never paused");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the snapshot ended early"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The cut is taken; now retention deletes the first 600 records.
    delete_records(Cluster::Source, &topic, 0, 600).await;
    std::fs::remove_file(&pause).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(warnings(&out).contains("0..600"), "{out}");
    let id = out["id"].as_str().unwrap();
    let held = v.records(id, &topic);
    assert_eq!(held.len(), 400);
    assert_eq!(held[0].offset, 600);
    let repo = v.open();
    let m = repo
        .read_snapshot(&vault_format::ObjectId::from_hex(id).unwrap())
        .unwrap();
    assert_eq!(
        m.topics[0].partitions[0].log_start_offset, 600,
        "the manifest records the real log start"
    );
}

/// Rewrites snapshot `id` of `v` as format 1 wrote it: header version 1,
/// no source, selection or topic IDs. Returns the new id.
fn downgrade_to_format_1(v: &TestVault, id: &str) -> String {
    use vault_format::object::{ObjectKind, seal_object_version};
    use vault_format::wire::Writer;
    let repo = v.open();
    let old = vault_format::ObjectId::from_hex(id).unwrap();
    let m = repo.read_snapshot(&old).unwrap();
    let mut w = Writer::new();
    w.u64(m.time_ms)
        .u8(0)
        .str(&m.source_cluster_id)
        .str(&m.hostname);
    w.varint(m.tags.len() as u64);
    for t in &m.tags {
        w.str(t);
    }
    w.u8(u8::from(m.read_committed))
        .varint(m.topics.len() as u64);
    for t in &m.topics {
        w.str(&t.name)
            .varint(u64::from(t.replication_factor))
            .varint(t.configs.len() as u64);
        for (k, val) in &t.configs {
            w.str(k).str(val);
        }
        w.varint(t.partitions.len() as u64);
        for p in &t.partitions {
            w.varint(u64::from(p.partition))
                .zigzag(p.log_start_offset)
                .zigzag(p.end_offset);
            match &p.root {
                None => w.u8(0),
                Some(r) => {
                    let s = r.summary;
                    w.u8(1)
                        .raw(&r.id.0)
                        .u8(r.level)
                        .zigzag(s.first_offset)
                        .zigzag(s.last_offset)
                        .varint(s.records)
                        .varint(s.bytes)
                        .zigzag(s.min_ts)
                        .zigzag(s.max_ts)
                }
            };
        }
    }
    w.varint(0); // no groups
    let s = &m.stats;
    w.varint(s.records_read)
        .varint(s.bytes_read)
        .varint(s.bytes_added)
        .varint(s.chunks_added)
        .varint(s.duration_ms);
    let body = w.into_inner();
    let new = repo.keys().object_id(&body);
    let sealed = seal_object_version(
        repo.keys(),
        &repo.vault_id(),
        ObjectKind::Snapshot,
        1,
        &new.0,
        &body,
        [7; 16],
        vault_format::compress::Compression(None),
    )
    .unwrap();
    let storage = v.storage();
    storage
        .delete(&ObjectName::new(Dir::Snapshots, id))
        .unwrap();
    assert!(
        storage
            .put_if_absent(&ObjectName::new(Dir::Snapshots, new.to_hex()), &sealed)
            .unwrap()
    );
    let back = repo.read_snapshot(&new).unwrap();
    assert!(back.topics.iter().all(|t| t.topic_id.is_none()));
    new.to_hex()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_format_1_history_is_carried_forward_when_its_records_prove_it() {
    let topic = unique_topic("upgraded");
    create_topic(Cluster::Source, &topic, 2, &[]).await;
    let first = records("f", 2, 400);
    produce(Cluster::Source, &topic, &first).await;
    let v = TestVault::init();
    let s1 = v.snapshot(&[&topic]);
    let old = downgrade_to_format_1(&v, s1["id"].as_str().unwrap());

    // Retention deletes part of partition 0; new records arrive.
    delete_records(Cluster::Source, &topic, 0, 150).await;
    let more = records("m", 2, 60);
    produce(Cluster::Source, &topic, &more).await;
    let s2 = v.snapshot(&[&topic]);
    assert!(warnings(&s2).contains("continues its history"), "{s2}");
    assert_eq!(s2["records_read"], 60, "only the new records: {s2}");
    let held = v.records(s2["id"].as_str().unwrap(), &topic);
    let mut want = first.clone();
    want.extend(more.clone());
    assert_eq!(
        values(&held),
        values(&want),
        "the records Kafka deleted stay in the new snapshot"
    );

    // The same, but the topic was recreated meanwhile: not adopted.
    let s3 = v.snapshot(&[&topic]);
    let again = downgrade_to_format_1(&v, s3["id"].as_str().unwrap());
    let _ = (old, again);
    recreate_topic(Cluster::Source, &topic, 2).await;
    let newer = records("n", 2, 700);
    produce(Cluster::Source, &topic, &newer).await;
    let s4 = v.snapshot(&[&topic]);
    assert!(warnings(&s4).contains("deleted and created again"), "{s4}");
    assert_eq!(
        values(&v.records(s4["id"].as_str().unwrap(), &topic)),
        values(&newer)
    );
}
