//! `vault restore` from the source cluster's snapshots into the target
//! cluster: records match, consumer groups resume at the right record,
//! other targets work, and bad input writes nothing.

use crate::common;

use common::{
    Cluster, TestRecord, TestVault, commit_group, commit_group_with_metadata, committed,
    committed_with_metadata, consume_all, content, content_from, create_topic, produce,
    topic_exists, unique_topic,
};

/// Field kinds, aborted transactions and an 8 MiB record; kcat reads the
/// target once too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_match_for_every_field_kind() {
    let topic = unique_topic("rfields");
    create_topic(
        Cluster::Source,
        &topic,
        4,
        &[("max.message.bytes", "10485760")],
    )
    .await;
    let big = common::big_value();
    let records = common::field_kind_records(&big);
    produce(Cluster::Source, &topic, &records).await;

    // Committed and aborted transactions.
    let txn = unique_topic("rtxn");
    create_topic(Cluster::Source, &txn, 1, &[]).await;
    common::produce_transactions(Cluster::Source, &txn, &[true, false, true, false]).await;

    let v = TestVault::init();
    v.snapshot(&[&topic, &txn]);
    let out = v.restore("latest", &[]);
    assert_eq!(out["records"], 15, "{out}");
    assert_eq!(out["already_complete"], false);

    let src = consume_all(Cluster::Source, &topic, 4);
    let dst = consume_all(Cluster::Target, &topic, 4);
    assert_eq!(content(&dst), content(&src));
    let src_txn = consume_all(Cluster::Source, &txn, 1);
    let dst_txn = consume_all(Cluster::Target, &txn, 1);
    assert_eq!(content(&dst_txn), content(&src_txn));
    assert_eq!(dst_txn.len(), 6, "aborted records stay out");

    // A client vault did not write, reading only committed records.
    let kcat = std::process::Command::new("kcat")
        .args([
            "-C",
            "-b",
            &Cluster::Target.brokers(),
            "-t",
            &txn,
            "-e",
            "-q",
        ])
        .args(["-X", "isolation.level=read_committed", "-f", "%k=%s@%T\\n"])
        .output()
        .expect("kcat runs");
    assert!(kcat.status.success());
    let want: String = src_txn
        .iter()
        .map(|r| {
            format!(
                "{}={}@{}\n",
                String::from_utf8_lossy(r.key.as_deref().unwrap()),
                String::from_utf8_lossy(r.value.as_deref().unwrap()),
                r.timestamp.1
            )
        })
        .collect();
    assert_eq!(String::from_utf8_lossy(&kcat.stdout), want);

    // Running it again writes nothing.
    let again = v.restore("latest", &[]);
    assert_eq!(again["already_complete"], true);
    assert_eq!(again["records_this_run"], 0);
    assert_eq!(consume_all(Cluster::Target, &topic, 4).len(), src.len());
}

/// Groups at the start, inside, at the end, on a compaction gap, on a
/// transaction marker and just after one: on the target each reads exactly
/// what it had not read on the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_resume_at_the_right_record() {
    // Transactions: offsets 0-2 committed, 3 marker, 4-6 aborted, 7 marker, 8-9 plain.
    let txn = unique_topic("gtxn");
    create_topic(Cluster::Source, &txn, 1, &[]).await;
    common::produce_transactions(Cluster::Source, &txn, &[true, false]).await;
    produce(
        Cluster::Source,
        &txn,
        &[
            TestRecord::new(0, Some(b"p0"), Some(b"y")),
            TestRecord::new(0, Some(b"p1"), Some(b"y")),
        ],
    )
    .await;

    // Compaction leaves gaps where overwritten records were.
    let compacted = unique_topic("gcompact");
    common::compactable_topic(&compacted, 4, 10).await;
    let left = common::compact(&compacted, 40).await;
    // The first offset the cleaner removed, inside the surviving range.
    let gap = left
        .windows(2)
        .find(|w| w[1].offset > w[0].offset + 1)
        .map(|w| w[0].offset + 1)
        .or_else(|| (left[0].offset > 0).then_some(0))
        .expect("compaction left a gap");
    let compacted_end = left.last().unwrap().offset + 1;

    let positions: Vec<(&str, &str, i64)> = vec![
        ("start", txn.as_str(), 0),
        ("inside", txn.as_str(), 1),
        ("on-marker", txn.as_str(), 3),
        ("after-marker", txn.as_str(), 4),
        ("after-abort", txn.as_str(), 8),
        ("end", txn.as_str(), 10),
        ("gap", compacted.as_str(), gap),
        ("compacted-end", compacted.as_str(), compacted_end),
    ];
    let tag = unique_topic("g");
    for (name, topic, offset) in &positions {
        commit_group(
            Cluster::Source,
            &format!("{tag}-{name}"),
            topic,
            &[(0, *offset)],
        );
    }

    let v = TestVault::init();
    v.snapshot(&[&txn, &compacted]);
    let out = v.restore("latest", &[]);
    assert_eq!(
        out["consumer_groups"].as_array().unwrap().len(),
        positions.len(),
        "{out}"
    );

    let src = [
        (txn.as_str(), consume_all(Cluster::Source, &txn, 1)),
        (
            compacted.as_str(),
            consume_all(Cluster::Source, &compacted, 1),
        ),
    ];
    let dst = [
        (txn.as_str(), consume_all(Cluster::Target, &txn, 1)),
        (
            compacted.as_str(),
            consume_all(Cluster::Target, &compacted, 1),
        ),
    ];
    assert_eq!(
        content(&dst[1].1),
        content(&src[1].1),
        "the compacted topic matches"
    );
    for (name, topic, offset) in &positions {
        let group = format!("{tag}-{name}");
        let at = committed(Cluster::Target, &group, topic, 0)
            .unwrap_or_else(|| panic!("{group} has no offset on the target"));
        let s = &src.iter().find(|(t, _)| t == topic).unwrap().1;
        let d = &dst.iter().find(|(t, _)| t == topic).unwrap().1;
        assert_eq!(
            content_from(d, 0, at),
            content_from(s, 0, *offset),
            "group {name} (source offset {offset}, target offset {at})"
        );
    }
}

/// A renamed topic, a non-empty target topic, and a time window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_into_a_non_empty_topic_over_a_time_window() {
    let topic = unique_topic("window");
    create_topic(Cluster::Source, &topic, 2, &[]).await;
    let recs: Vec<TestRecord> = (0..40)
        .map(|i| {
            TestRecord::new(i % 2, Some(format!("k{i}").as_bytes()), Some(b"v"))
                .at(1_700_000_000_000 + i as i64 * 1000)
        })
        .collect();
    produce(Cluster::Source, &topic, &recs).await;
    let group = unique_topic("wgroup");
    // Partition 0 read up to offset 3 (before the window), partition 1 to 15
    // (inside), with the metadata string a client may commit along.
    commit_group_with_metadata(
        Cluster::Source,
        &group,
        &topic,
        &[(0, 3), (1, 15)],
        Some("host-7 generation 3"),
    );

    let renamed = unique_topic("renamed");
    create_topic(Cluster::Target, &renamed, 3, &[]).await;
    let existing: Vec<TestRecord> = (0..5)
        .map(|i| TestRecord::new(i % 2, Some(b"existing"), Some(b"e")).at(1_600_000_000_000))
        .collect();
    produce(Cluster::Target, &renamed, &existing).await;

    let v = TestVault::init();
    v.snapshot(&[&topic]);
    // Records 10..30 by time: timestamps 1_700_000_010_000 ..= 1_700_000_029_000.
    let out = v.restore(
        "latest",
        &[
            "--rename",
            &format!("{topic}={renamed}"),
            "--from-time",
            "2023-11-14T22:13:30Z",
            "--to-time",
            "1700000030000",
        ],
    );
    assert_eq!(out["records"], 20, "{out}");
    assert_eq!(out["topics"][0]["created"], false);
    assert!(
        !topic_exists(Cluster::Target, &topic),
        "the rename is obeyed"
    );

    let dst = consume_all(Cluster::Target, &renamed, 3);
    let src = consume_all(Cluster::Source, &topic, 2);
    for p in 0..2 {
        let want: Vec<TestRecord> = existing
            .iter()
            .filter(|r| r.partition == p)
            .cloned()
            .chain(
                src.iter()
                    .filter(|r| r.partition == p)
                    .filter(|r| (1_700_000_010_000..1_700_000_030_000).contains(&r.timestamp.1))
                    .cloned(),
            )
            .collect();
        let got: Vec<TestRecord> = dst.iter().filter(|r| r.partition == p).cloned().collect();
        assert_eq!(content(&got), content(&want), "partition {p}");
        // The group reads on from the first restored record at or after its source offset.
        let (at, metadata) = committed_with_metadata(Cluster::Target, &group, &renamed, p).unwrap();
        assert_eq!(metadata, "host-7 generation 3", "partition {p}");
        let source_pos = if p == 0 { 3 } else { 15 };
        let want_next: Vec<TestRecord> = src
            .iter()
            .filter(|r| r.partition == p && r.offset >= source_pos)
            .filter(|r| (1_700_000_010_000..1_700_000_030_000).contains(&r.timestamp.1))
            .cloned()
            .collect();
        assert_eq!(
            content_from(&dst, p, at),
            content(&want_next),
            "group on partition {p}"
        );
    }
}

/// Every bad input fails with a clear error and a non-zero exit, and
/// creates nothing on the target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_fails_clearly_and_writes_nothing() {
    let topic = unique_topic("badin");
    create_topic(Cluster::Source, &topic, 2, &[]).await;
    produce(
        Cluster::Source,
        &topic,
        &[TestRecord::new(0, Some(b"k"), Some(b"v")).at(1_700_000_000_000)],
    )
    .await;
    let v = TestVault::init();
    v.snapshot(&[&topic]);
    let target = Cluster::Target.brokers();
    let wrong_pw = v.dir.path().join("wrong");
    std::fs::write(&wrong_pw, "not it\n").unwrap();
    let small = unique_topic("small");
    create_topic(Cluster::Target, &small, 1, &[]).await;

    let rename_small = format!("{topic}={small}");
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        (
            "unknown snapshot",
            vec!["--snapshot-id", "ffff0000", "--brokers", &target],
            "no snapshot with id",
        ),
        (
            "missing topic",
            vec![
                "--snapshot-id",
                "latest",
                "--brokers",
                &target,
                "--topics",
                "no-such-topic",
            ],
            "no-such-topic is not in any snapshot",
        ),
        (
            "unreachable target",
            vec!["--snapshot-id", "latest", "--brokers", "127.0.0.1:1"],
            "127.0.0.1:1",
        ),
        (
            "rename of a topic not in the snapshot",
            vec![
                "--snapshot-id",
                "latest",
                "--brokers",
                &target,
                "--rename",
                "nope=other",
            ],
            "--rename nope=other",
        ),
        (
            "fewer target partitions",
            vec![
                "--snapshot-id",
                "latest",
                "--brokers",
                &target,
                "--rename",
                &rename_small,
            ],
            "has 1 partitions",
        ),
        (
            "unknown group",
            vec![
                "--snapshot-id",
                "latest",
                "--brokers",
                &target,
                "--consumer-groups",
                "ghost",
            ],
            "consumer group ghost",
        ),
    ];
    for (what, args, expect) in cases {
        let mut full = vec!["restore"];
        full.extend(args);
        let o = v.run(&full);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{what}: succeeded");
        assert!(err.contains(expect), "{what}: unclear error: {err}");
        assert!(
            !topic_exists(Cluster::Target, &topic),
            "{what}: created the topic"
        );
    }
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_vault"))
        .args(["restore", "--vault"])
        .arg(&v.location)
        .envs(v.backend.env())
        .arg("--password-file")
        .arg(&wrong_pw)
        .args(["--snapshot-id", "latest", "--brokers", &target])
        .env("KVAULT_CACHE_DIR", &v.cache)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("wrong passphrase"));
    assert!(!topic_exists(Cluster::Target, &topic));
    assert_eq!(consume_all(Cluster::Target, &small, 1).len(), 0);

    // --dry-run plans and writes nothing.
    let plan = v.json(&[
        "restore",
        "--snapshot-id",
        "latest",
        "--brokers",
        &target,
        "--dry-run",
    ]);
    assert_eq!(plan["dry_run"], true);
    assert!(!topic_exists(Cluster::Target, &topic));
}

/// A group with an active member on the target is a clear error, and the
/// restore writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_group_on_the_target_is_refused() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let topic = unique_topic("busy");
    create_topic(Cluster::Source, &topic, 1, &[]).await;
    produce(
        Cluster::Source,
        &topic,
        &[TestRecord::new(0, Some(b"k"), Some(b"v")).at(1_700_000_000_000)],
    )
    .await;
    let group = unique_topic("busygroup");
    commit_group(Cluster::Source, &group, &topic, &[(0, 1)]);
    let v = TestVault::init();
    v.snapshot(&[&topic]);

    // A live member of the same group on the target, on some other topic.
    let other = unique_topic("busyother");
    create_topic(Cluster::Target, &other, 1, &[]).await;
    let member: BaseConsumer = Cluster::Target
        .config()
        .set("group.id", &group)
        .create()
        .unwrap();
    member.subscribe(&[&other]).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while member.assignment().unwrap().count() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the member never joined"
        );
        let _ = member.poll(std::time::Duration::from_millis(100));
    }

    let o = v.run(&[
        "restore",
        "--snapshot-id",
        "latest",
        "--brokers",
        &Cluster::Target.brokers(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&group) && err.contains("active member"),
        "{err}"
    );
    assert!(!topic_exists(Cluster::Target, &topic));
}
