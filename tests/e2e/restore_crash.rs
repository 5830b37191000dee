//! A restore killed at several points (at a crash point right after a
//! commit, with kill -9 in the middle of a transaction, and between the
//! group commits) and started again: every record lands exactly once and
//! the groups resume at the right record.

use crate::common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{
    Cluster, TestVault, commit_group, committed, consume_all, content, content_from, create_topic,
    high_watermarks, produce_bulk, unique_topic,
};

const PARTITIONS: i32 = 4;
const RECORDS: usize = 40_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_restore_resumes_exactly_once() {
    let topic = unique_topic("rcrash");
    create_topic(Cluster::Source, &topic, PARTITIONS, &[]).await;
    produce_bulk(Cluster::Source, &topic, PARTITIONS, RECORDS, 1024, 11).await;
    let tag = unique_topic("cg");
    let groups: Vec<(String, i64)> = [0, 1234, 5000, 9999, 10_000]
        .iter()
        .map(|o| (format!("{tag}-{o}"), *o))
        .collect();
    for (g, o) in &groups {
        let offsets: Vec<(i32, i64)> = (0..PARTITIONS).map(|p| (p, *o)).collect();
        commit_group(Cluster::Source, g, &topic, &offsets);
    }
    let v = TestVault::init();
    v.snapshot(&[&topic]);
    let brokers = Cluster::Target.brokers();
    let args = [
        "restore",
        "--snapshot-id",
        "latest",
        "--brokers",
        &brokers,
        "--transaction-mib",
        "2",
        "--json",
    ];

    // 1. Dies right after its third transaction commits.
    let o = v
        .command(&args)
        .env("KVAULT_CRASH_AT", "restore-commit:3")
        .output()
        .unwrap();
    assert!(!o.status.success(), "the crash point was never reached");
    let after_first = high_watermarks(Cluster::Target, &topic, PARTITIONS);
    assert!(after_first > 0);

    // 2. kill -9 while a transaction is open: records beyond the last commit
    // are on the target, uncommitted.
    let mut child = v
        .command(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while high_watermarks(Cluster::Target, &topic, PARTITIONS) < after_first + 3000 {
        assert!(Instant::now() < deadline, "the second run made no progress");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the second run ended early"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    // 3. Dies after every record is in and the first group is committed.
    let o = v
        .command(&args)
        .env("KVAULT_CRASH_AT", "restore-group:1")
        .output()
        .unwrap();
    assert!(
        !o.status.success(),
        "the group crash point was never reached: {}",
        String::from_utf8_lossy(&o.stderr)
    );

    // 4. Finishes.
    let out = v.restore("latest", &["--transaction-mib", "2"]);
    assert_eq!(out["resumed"], true, "{out}");
    assert_eq!(out["records"], RECORDS as u64);

    let src = consume_all(Cluster::Source, &topic, PARTITIONS);
    let dst = consume_all(Cluster::Target, &topic, PARTITIONS);
    assert_eq!(dst.len(), RECORDS, "every record exactly once");
    assert_eq!(content(&dst), content(&src));
    assert!(
        high_watermarks(Cluster::Target, &topic, PARTITIONS) > i64::try_from(RECORDS).unwrap(),
        "the killed runs left aborted records and markers behind, which readers skip"
    );
    for (g, o) in &groups {
        for p in 0..PARTITIONS {
            let at = committed(Cluster::Target, g, &topic, p).expect("group committed");
            assert_eq!(
                content_from(&dst, p, at),
                content_from(&src, p, *o),
                "group {g} partition {p}"
            );
        }
    }
}

/// Killed, then a newer snapshot commits, then the same command runs again
/// with `--snapshot-id latest`: it must finish the restore it started (the
/// older snapshot), not write the newer one's records on top of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_latest_restore_finishes_its_own_snapshot_after_a_new_one() {
    const N: usize = 12_000;
    let topic = unique_topic("rlatest");
    create_topic(Cluster::Source, &topic, PARTITIONS, &[]).await;
    produce_bulk(Cluster::Source, &topic, PARTITIONS, N, 1024, 21).await;
    let group = unique_topic("cg-latest");
    let offsets: Vec<(i32, i64)> = (0..PARTITIONS).map(|p| (p, 777)).collect();
    commit_group(Cluster::Source, &group, &topic, &offsets);
    let v = TestVault::init();
    let first = v.snapshot(&[&topic])["id"].as_str().unwrap().to_string();
    let at_first = consume_all(Cluster::Source, &topic, PARTITIONS);

    let target = unique_topic("rlatest-dr");
    let brokers = Cluster::Target.brokers();
    let rename = format!("{topic}={target}");
    let args = [
        "restore",
        "--snapshot-id",
        "latest",
        "--brokers",
        &brokers,
        "--rename",
        &rename,
        "--transaction-mib",
        "1",
        "--json",
    ];
    let o = v
        .command(&args)
        .env("KVAULT_CRASH_AT", "restore-commit:2")
        .output()
        .unwrap();
    assert!(!o.status.success(), "the crash point was never reached");
    assert!(high_watermarks(Cluster::Target, &target, PARTITIONS) > 0);

    // More records, and a newer snapshot that holds them.
    produce_bulk(Cluster::Source, &topic, PARTITIONS, 4_000, 1024, 22).await;
    let second = v.snapshot(&[&topic])["id"].as_str().unwrap().to_string();
    assert_ne!(first, second);

    // Another selection of groups is not the same restore: refused.
    let mut other = args.to_vec();
    other.extend_from_slice(&["--consumer-groups", "none"]);
    let o = v.command(&other).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("unfinished") && err.contains("--abandon-unfinished"),
        "{err}"
    );

    // The same command resumes the first snapshot's restore.
    let o = v.command(&args).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(out["snapshot_id"], first.as_str(), "{out}");
    assert_eq!(out["resumed"], true, "{out}");
    assert_eq!(out["records"], N as u64, "{out}");

    let dst = consume_all(Cluster::Target, &target, PARTITIONS);
    assert_eq!(
        dst.len(),
        N,
        "every record of the first snapshot exactly once"
    );
    assert_eq!(content(&dst), content(&at_first));
    for p in 0..PARTITIONS {
        let at = committed(Cluster::Target, &group, &target, p).expect("group committed");
        assert_eq!(
            content_from(&dst, p, at),
            content_from(&at_first, p, 777),
            "partition {p}"
        );
    }

    // Run again, it is the same finished restore: nothing is written.
    let again = v.command(&args).output().unwrap();
    assert!(again.status.success());
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["already_complete"], true, "{again}");
    assert_eq!(consume_all(Cluster::Target, &target, PARTITIONS).len(), N);
}

/// The progress topic with a record vault cannot read, an unfinished
/// restore left on purpose (`--abandon-unfinished`), and a target topic
/// deleted and created again after a finished restore.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_abandoned_and_recreated_targets_are_handled() {
    const N: usize = 6_000;
    let topic = unique_topic("rjunk");
    create_topic(Cluster::Source, &topic, PARTITIONS, &[]).await;
    produce_bulk(Cluster::Source, &topic, PARTITIONS, N, 1024, 31).await;
    let v = TestVault::init();
    v.snapshot(&[&topic]);

    // Junk under another key: ignored with a warning.
    common::produce(
        Cluster::Target,
        "_kvault_restore_progress",
        &[common::TestRecord::new(
            0,
            Some(b"junk-key"),
            Some(b"not json"),
        )],
    )
    .await;

    let target = unique_topic("rjunk-dr");
    let rename = format!("{topic}={target}");
    let brokers = Cluster::Target.brokers();
    let base = [
        "restore",
        "--snapshot-id",
        "latest",
        "--brokers",
        &brokers,
        "--rename",
        &rename,
        "--transaction-mib",
        "1",
        "--consumer-groups",
        "none",
        "--json",
    ];
    let o = v
        .command(&base)
        .env("KVAULT_CRASH_AT", "restore-commit:2")
        .output()
        .unwrap();
    assert!(!o.status.success(), "the crash point was never reached");
    let committed_before = settled_count(&target);
    assert!(committed_before > 0);

    // Another window is another restore: refused, then left on purpose.
    let mut other = base.to_vec();
    other.extend_from_slice(&["--from-time", "1700000000000"]);
    let o = v.command(&other).output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    other.push("--abandon-unfinished");
    let o = v.command(&other).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("junk-key"), "the junk is reported: {err}");
    let out: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(out["abandoned"].as_array().unwrap().len(), 1, "{out}");
    assert_eq!(out["records"], N as u64);
    // What the abandoned run committed stays, as documented.
    assert_eq!(
        consume_all(Cluster::Target, &target, PARTITIONS).len(),
        N + committed_before
    );

    // The operator deletes and recreates the target to start clean: the
    // finished restore's record is stale, and the same command restores again.
    common::recreate_topic(Cluster::Target, &target, PARTITIONS).await;
    let mut same = base.to_vec();
    same.extend_from_slice(&["--from-time", "1700000000000"]);
    let o = v.command(&same).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(out["already_complete"], false, "{out}");
    let dst = consume_all(Cluster::Target, &target, PARTITIONS);
    assert_eq!(dst.len(), N);
    assert_eq!(
        content(&dst),
        content(&consume_all(Cluster::Source, &topic, PARTITIONS))
    );
}

/// The records a read_committed reader sees once the last commit's markers
/// have landed. A commit returns when the coordinator has logged it; the
/// markers reach the partitions a moment later, and until then the
/// last stable offset, and so what a reader sees, lags behind.
fn settled_count(topic: &str) -> usize {
    let mut last = consume_all(Cluster::Target, topic, PARTITIONS).len();
    for _ in 0..40 {
        std::thread::sleep(std::time::Duration::from_millis(250));
        let now = consume_all(Cluster::Target, topic, PARTITIONS).len();
        if now == last {
            return now;
        }
        last = now;
    }
    panic!("the committed records of {topic} kept changing");
}

/// Killed, then a newer snapshot commits and gc runs with rules that keep
/// only the newest: the killed restore's snapshot is pinned, so gc keeps
/// it, the rerun finishes it exactly once, and once the restore is done
/// the pin is gone and the next gc may forget the snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_restore_keeps_its_snapshot_through_gc() {
    const N: usize = 12_000;
    let topic = unique_topic("rpin");
    create_topic(Cluster::Source, &topic, PARTITIONS, &[]).await;
    produce_bulk(Cluster::Source, &topic, PARTITIONS, N, 1024, 31).await;
    let v = TestVault::init();
    let first = v.snapshot(&[&topic])["id"].as_str().unwrap().to_string();
    let at_first = consume_all(Cluster::Source, &topic, PARTITIONS);
    let target = unique_topic("rpin-dr");
    let brokers = Cluster::Target.brokers();
    let rename = format!("{topic}={target}");
    let args = [
        "restore",
        "--snapshot-id",
        "latest",
        "--brokers",
        &brokers,
        "--rename",
        &rename,
        "--transaction-mib",
        "1",
        "--json",
    ];
    let o = v
        .command(&args)
        .env("KVAULT_CRASH_AT", "restore-commit:2")
        .output()
        .unwrap();
    assert!(!o.status.success(), "the crash point was never reached");

    produce_bulk(Cluster::Source, &topic, PARTITIONS, 2_000, 1024, 32).await;
    let second = v.snapshot(&[&topic])["id"].as_str().unwrap().to_string();
    let gc = v.json(&["gc", "--keep-last", "1"]);
    assert_eq!(gc["forgotten"], serde_json::json!([]), "{gc}");
    let pinned = gc["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == first.as_str())
        .expect("the first snapshot is decided on");
    assert!(
        pinned["reasons"][0]
            .as_str()
            .unwrap()
            .starts_with("pinned by unfinished restore"),
        "{pinned}"
    );

    let o = v.command(&args).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(out["snapshot_id"], first.as_str(), "{out}");
    assert_eq!(out["resumed"], true, "{out}");
    let dst = consume_all(Cluster::Target, &target, PARTITIONS);
    assert_eq!(
        dst.len(),
        N,
        "every record of the first snapshot exactly once"
    );
    assert_eq!(content(&dst), content(&at_first));

    // Done: nothing pins the first snapshot any more.
    let gc = v.json(&["gc", "--keep-last", "1"]);
    assert_eq!(gc["forgotten"], serde_json::json!([first]), "{gc}");
    assert_eq!(v.json(&["snapshots"])[0]["id"], second.as_str());
    assert!(
        v.objects(vault::storage::Dir::Runs).is_empty(),
        "no pin is left behind"
    );
}
