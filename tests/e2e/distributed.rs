//! Snapshots taken by several worker processes together (`--workers NAME`),
//! sharing partitions through a Kafka consumer group: the result is the
//! snapshot one process takes of the same cut, a killed worker's partitions
//! are finished by the others, and a late worker gets a share.

use crate::common;

use std::collections::BTreeSet;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use rdkafka::producer::FutureRecord;
use vault::storage::Dir;

use common::{
    Cluster, TestRecord, TestVault, commit_group, consume_all, create_topic, producer, unique_topic,
};

/// Two topics, 24 partitions in all, with records of a few sizes and a
/// consumer group part-way through each.
async fn topic_set(prefix: &str, per_partition: i32) -> (Vec<String>, Vec<TestRecord>) {
    let topics = vec![
        unique_topic(&format!("{prefix}-a")),
        unique_topic(&format!("{prefix}-b")),
    ];
    let counts = [16, 8];
    let p = producer(Cluster::Source, &[("linger.ms", "20")]);
    let mut all = Vec::new();
    for (t, n) in topics.iter().zip(counts) {
        create_topic(Cluster::Source, t, n, &[]).await;
        let mut deliveries = Vec::new();
        for i in 0..n * per_partition {
            let part = i % n;
            let key = format!("k{}", i % 97);
            let value = format!("{t}-{i}-{}", "x".repeat(usize::try_from(i % 300).unwrap()));
            let r = TestRecord::new(part, Some(key.as_bytes()), Some(value.as_bytes()));
            let fr = FutureRecord::to(t)
                .partition(part)
                .key(key.as_bytes())
                .payload(value.as_bytes());
            deliveries.push(
                p.send_result(fr)
                    .map_err(|(e, _)| e)
                    .expect("queue a record"),
            );
            all.push(r);
        }
        for d in deliveries {
            d.await
                .expect("delivery")
                .map_err(|(e, _)| e)
                .expect("delivered");
        }
        commit_group(
            Cluster::Source,
            &format!("{prefix}-group"),
            t,
            &[(0, 5), (n - 1, 7)],
        );
    }
    (topics, all)
}

fn worker(v: &TestVault, name: &str, topics: &[String], env: &[(&str, &str)]) -> Child {
    worker_with(v, name, topics, &[], env)
}

fn worker_with(
    v: &TestVault,
    name: &str,
    topics: &[String],
    extra: &[&str],
    env: &[(&str, &str)],
) -> Child {
    let brokers = Cluster::Source.brokers();
    let t = topics.join(",");
    let mut args = vec![
        "snapshot",
        "--brokers",
        &brokers,
        "--topics",
        &t,
        "--workers",
        name,
        "--session-timeout",
        "6",
        "--partitions-per-batch",
        "4",
        "--json",
    ];
    args.extend_from_slice(extra);
    let mut c = v.command(&args);
    for (k, val) in env {
        c.env(k, val);
    }
    c.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start a worker")
}

fn finished(child: Child) -> serde_json::Value {
    let out: Output = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "a worker failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("bad JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn done_here(report: &serde_json::Value) -> BTreeSet<String> {
    report["partitions_done_here"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect()
}

/// A record's partition, key and value.
type Content = (i32, Option<Vec<u8>>, Option<Vec<u8>>);

/// The same (partition, key, value) records, in the same order per partition.
fn same_records<'a>(
    a: impl Iterator<Item = &'a TestRecord>,
    b: impl Iterator<Item = &'a TestRecord>,
) -> bool {
    let ordered = |it: &mut dyn Iterator<Item = &'a TestRecord>| {
        let mut v: Vec<Content> = it
            .map(|r| (r.partition, r.key.clone(), r.value.clone()))
            .collect();
        // Stable: the order within a partition is kept.
        v.sort_by_key(|c| c.0);
        v
    };
    let (mut a, mut b) = (a, b);
    ordered(&mut a) == ordered(&mut b)
}

/// Parts written so far by the run in progress.
fn parts_written(v: &TestVault) -> usize {
    v.objects(Dir::Runs)
        .iter()
        .filter(|o| o.name.contains(".part."))
        .count()
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every worker's share adds up to the run's partitions, each exactly once.
fn assert_shares(reports: &[&serde_json::Value], partitions: usize) {
    let mut seen = BTreeSet::new();
    for r in reports {
        for p in done_here(r) {
            assert!(seen.insert(p.clone()), "{p} was finished twice");
        }
    }
    assert_eq!(seen.len(), partitions, "{reports:?}");
    let ids: BTreeSet<&str> = reports.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids.len(),
        1,
        "every worker reports the one snapshot: {ids:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_take_the_snapshot_one_process_takes() {
    let (topics, records) = topic_set("dist-same", 250).await;
    let one = TestVault::init();
    // Same keys, so the same records make the same chunks and trees.
    let many = one.copy();
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let single = one.snapshot(&names);

    let run = &unique_topic("same");
    let workers: Vec<Child> = (0..3).map(|_| worker(&many, run, &topics, &[])).collect();
    let reports: Vec<serde_json::Value> = workers.into_iter().map(finished).collect();
    assert_shares(&reports.iter().collect::<Vec<_>>(), 24);
    assert!(
        reports.iter().filter(|r| r["planned_here"] == true).count() == 1,
        "one worker took the cut: {reports:?}"
    );
    assert!(
        reports.iter().all(|r| !done_here(r).is_empty()),
        "every worker got a share: {reports:?}"
    );

    // The same trees, partition by partition, and the same group offsets.
    let (a, b) = (one.open(), many.open());
    let ma = a
        .read_snapshot(&a.resolve_snapshot(single["id"].as_str().unwrap()).unwrap())
        .unwrap();
    let id = reports[0]["id"].as_str().unwrap();
    let mb = b.read_snapshot(&b.resolve_snapshot(id).unwrap()).unwrap();
    assert_eq!(ma.topics, mb.topics, "partitions, cuts and trees");
    assert_eq!(ma.groups, mb.groups, "group offsets");
    assert!(!mb.groups.is_empty());
    assert_eq!(mb.stats.records_read, records.len() as u64);
    assert!(
        many.objects(Dir::Runs)
            .iter()
            .all(|o| o.name.ends_with(".commit")),
        "the run's plan and parts are gone"
    );

    // And it restores record for record.
    let restored = many.restore(id, &["--topics", &topics.join(",")]);
    assert_eq!(restored["records"], records.len() as u64, "{restored}");
    for (t, n) in topics.iter().zip([16, 8]) {
        let back = consume_all(Cluster::Target, t, n);
        let want = records
            .iter()
            .filter(|r| r.value.as_ref().unwrap().starts_with(t.as_bytes()));
        assert!(
            same_records(back.iter(), want),
            "{t} restored record for record"
        );
    }
    let check = many.json(&["check", "--read-data"]);
    assert_eq!(check["ok"], true, "{check}");

    // A worker that starts moments after the commit (a pod scheduled
    // late) reports that snapshot rather than starting the next one alone.
    let late = finished(worker(&many, run, &topics, &[]));
    assert_eq!(late["id"], id, "{late}");
    assert!(done_here(&late).is_empty(), "{late}");
    assert_eq!(many.json(&["snapshots"]).as_array().unwrap().len(), 1);

    // Within the same window, the same NAME with other options (one topic
    // only, and a tag) is another run, not a late member of that one: it
    // takes a snapshot of its own, with its own selection and tag.
    let other = finished(worker_with(
        &many,
        run,
        &topics[..1],
        &["--tag", "pre-upgrade"],
        &[],
    ));
    assert_ne!(other["id"], id, "{other}");
    assert_eq!(other["planned_here"], true, "{other}");
    let listed = many.json(&["snapshots"]);
    let tagged = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == other["id"])
        .expect("the new snapshot is listed");
    assert_eq!(
        tagged["tags"],
        serde_json::json!(["pre-upgrade"]),
        "{tagged}"
    );
}

/// Two vaults (a nightly to one store and to another, say) whose runs
/// share a NAME on one source cluster: each vault's workers take the whole
/// snapshot into their own vault, and neither waits for the other's parts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_vaults_under_one_run_name_each_take_the_whole_snapshot() {
    let (topics, records) = topic_set("dist-two", 60).await;
    let (a, b) = (TestVault::init(), TestVault::init());
    let run = &unique_topic("nightly");
    let workers: Vec<(usize, Child)> = [(0, &a), (0, &a), (1, &b), (1, &b)]
        .into_iter()
        .map(|(i, v)| (i, worker(v, run, &topics, &[])))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut workers = workers;
    while workers
        .iter_mut()
        .any(|(_, w)| w.try_wait().unwrap().is_none())
    {
        if Instant::now() > deadline {
            for (_, w) in &mut workers {
                let _ = w.kill();
            }
            panic!("the workers waited for parts only the other vault's workers write");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let reports: Vec<(usize, serde_json::Value)> =
        workers.into_iter().map(|(i, w)| (i, finished(w))).collect();
    for (i, v) in [(0, &a), (1, &b)] {
        let mine: Vec<&serde_json::Value> = reports
            .iter()
            .filter(|(j, _)| *j == i)
            .map(|(_, r)| r)
            .collect();
        assert_shares(&mine, 24);
        assert_eq!(
            mine[0]["snapshot_records_read"],
            records.len() as u64,
            "{mine:?}"
        );
        assert_eq!(v.json(&["snapshots"]).as_array().unwrap().len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_s_partitions_are_finished_by_the_others() {
    let (topics, records) = topic_set("dist-kill", 300).await;
    let v = TestVault::init();
    let pause = tempfile::NamedTempFile::new().unwrap().into_temp_path();
    let pause_path = pause.to_path_buf();
    drop(pause);
    let pause_at = format!("distributed-parts-ready:{}", pause_path.display());
    let run = &unique_topic("kill");
    // The victim reads its first batch, writes its packs and index objects,
    // and is killed before it writes a single part.
    let mut victim = worker(&v, run, &topics, &[("KVAULT_PAUSE_AT", &pause_at)]);
    let others: Vec<Child> = (0..2).map(|_| worker(&v, run, &topics, &[])).collect();
    wait_for(
        "the victim to read a batch",
        Duration::from_secs(120),
        || pause_path.exists(),
    );
    victim.kill().unwrap();
    let _ = victim.wait();
    let _ = std::fs::remove_file(&pause_path);

    let reports: Vec<serde_json::Value> = others.into_iter().map(finished).collect();
    assert_shares(&reports.iter().collect::<Vec<_>>(), 24);
    let id = reports[0]["id"].as_str().unwrap();
    let repo = v.open();
    let m = repo
        .read_snapshot(&repo.resolve_snapshot(id).unwrap())
        .unwrap();
    assert_eq!(m.total_records(), records.len() as u64);
    let check = v.json(&["check", "--read-data"]);
    assert_eq!(check["ok"], true, "{check}");
    let restored = v.restore(id, &["--topics", &topics.join(",")]);
    assert_eq!(restored["records"], records.len() as u64, "{restored}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_worker_gets_partitions_through_a_rebalance() {
    let (topics, records) = topic_set("dist-late", 100).await;
    let v = TestVault::init();
    let pause = tempfile::NamedTempFile::new().unwrap().into_temp_path();
    let pause_path = pause.to_path_buf();
    drop(pause);
    let pause_at = format!("distributed-loop:{}", pause_path.display());
    let run = &unique_topic("late");
    // The first worker joins, takes the cut, is given every partition, and
    // stalls before reading any.
    let first = worker(&v, run, &topics, &[("KVAULT_PAUSE_AT", &pause_at)]);
    wait_for("the first worker to plan", Duration::from_secs(60), || {
        pause_path.exists()
    });
    std::thread::sleep(Duration::from_secs(2));
    let late = worker(&v, run, &topics, &[]);
    // The group moves half the partitions to the late worker, which reads them.
    wait_for("the late worker's parts", Duration::from_secs(120), || {
        parts_written(&v) >= 12
    });
    let status = v.json(&["status"]);
    let snapshot_runs = status["snapshots"].as_array().unwrap();
    assert_eq!(snapshot_runs.len(), 1, "{status}");
    assert_eq!(snapshot_runs[0]["run"], run.as_str(), "{status}");
    assert_eq!(snapshot_runs[0]["partitions"], 24, "{status}");
    assert!(
        snapshot_runs[0]["partitions_done"].as_u64().unwrap() >= 12,
        "{status}"
    );
    // Let the first worker go: it pauses at each turn of its loop.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let release = {
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::fs::remove_file(&pause_path);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let (a, b) = (finished(first), finished(late));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    release.join().unwrap();
    assert_shares(&[&a, &b], 24);
    assert!(
        done_here(&b).len() >= 8,
        "the late worker did its share: {b}"
    );
    assert!(!done_here(&a).is_empty(), "{a}");
    let repo = v.open();
    let m = repo
        .read_snapshot(&repo.resolve_snapshot(a["id"].as_str().unwrap()).unwrap())
        .unwrap();
    assert_eq!(m.total_records(), records.len() as u64);
}

fn restore_worker(v: &TestVault, name: &str, snapshot: &str, env: &[(&str, &str)]) -> Child {
    let brokers = Cluster::Target.brokers();
    let mut c = v.command(&[
        "restore",
        "--snapshot-id",
        snapshot,
        "--brokers",
        &brokers,
        "--workers",
        name,
        "--session-timeout",
        "6",
        "--partitions-in-flight",
        "3",
        "--json",
    ]);
    for (k, val) in env {
        c.env(k, val);
    }
    c.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start a worker")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_by_three_workers_survives_a_killed_worker() {
    let (topics, records) = topic_set("dist-restore", 300).await;
    let v = TestVault::init();
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let snap = v.snapshot(&names);
    let id = snap["id"].as_str().unwrap();
    let run = &unique_topic("restore");

    // The victim dies as the first of its partitions commits a transaction,
    // with the others' transactions open.
    let victim = restore_worker(&v, run, id, &[("KVAULT_CRASH_AT", "restore-commit:1")]);
    let others: Vec<Child> = (0..2).map(|_| restore_worker(&v, run, id, &[])).collect();
    let died = victim.wait_with_output().unwrap();
    assert!(!died.status.success(), "the victim was to die mid-restore");
    // Its partitions wait for the session timeout: the restore is running.
    let status = v.json(&["status", "--brokers", &Cluster::Target.brokers()]);
    let restores = status["restores"].as_array().unwrap();
    assert_eq!(restores.len(), 1, "{status}");
    assert_eq!(restores[0]["run"], run.as_str(), "{status}");
    assert!(
        restores[0]["partitions_begun"].as_u64().unwrap() >= 1,
        "{status}"
    );
    assert!(
        !restores[0]["workers"].as_array().unwrap().is_empty(),
        "{status}"
    );
    let reports: Vec<serde_json::Value> = others.into_iter().map(finished).collect();
    let done: usize = reports
        .iter()
        .map(|r| r["partitions_done_here"].as_array().unwrap().len())
        .sum();
    assert!(
        done >= 24 - 3,
        "the survivors restored the rest: {reports:?}"
    );
    assert!(
        reports.iter().any(|r| r["groups_committed_here"] == true),
        "a worker committed the groups once every partition was done: {reports:?}"
    );

    // The rerun of the victim finds the restore complete.
    let again = finished(restore_worker(&v, run, id, &[]));
    assert_eq!(again["already_complete"], true, "{again}");
    assert_eq!(again["records"], records.len() as u64, "{again}");

    // Every record exactly once, in order.
    let mut back = Vec::new();
    for (t, n) in topics.iter().zip([16, 8]) {
        let got = consume_all(Cluster::Target, t, n);
        let want = records
            .iter()
            .filter(|r| r.value.as_ref().unwrap().starts_with(t.as_bytes()));
        let want: Vec<&TestRecord> = want.collect();
        let counts = |rs: &mut dyn Iterator<Item = &TestRecord>| {
            let mut m = std::collections::BTreeMap::new();
            for r in rs {
                *m.entry(r.partition).or_insert(0) += 1;
            }
            m
        };
        assert!(
            same_records(got.iter(), want.iter().copied()),
            "{t} restored exactly once: per partition got {:?} want {:?}; reports {reports:?}",
            counts(&mut got.iter()),
            counts(&mut want.iter().copied())
        );
        back.push((t.clone(), n, got));
    }
    // Each group resumes at the record it had reached on the source.
    let group = "dist-restore-group";
    for (t, n, got) in &back {
        for (p, source_offset) in [(0, 5usize), (n - 1, 7)] {
            let committed =
                common::committed(Cluster::Target, group, t, p).expect("group committed");
            let at = got
                .iter()
                .find(|r| r.partition == p && r.offset == committed)
                .expect("a record there");
            let source = records
                .iter()
                .filter(|r| r.partition == p && r.value.as_ref().unwrap().starts_with(t.as_bytes()))
                .nth(source_offset)
                .unwrap();
            assert_eq!(at.value, source.value, "{group} on {t}/{p}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_whose_workers_all_died_is_resumed_or_dropped() {
    let (topics, records) = topic_set("dist-died", 100).await;
    let v = TestVault::init();
    let pause = tempfile::NamedTempFile::new().unwrap().into_temp_path();
    let pause_path = pause.to_path_buf();
    drop(pause);
    let pause_at = format!("distributed-parts-ready:{}", pause_path.display());
    // Kills the only worker of `run` once its first batch is read.
    let die = |run: &str| {
        let mut w = worker(&v, run, &topics, &[("KVAULT_PAUSE_AT", &pause_at)]);
        wait_for("a batch", Duration::from_secs(120), || pause_path.exists());
        w.kill().unwrap();
        let _ = w.wait();
        let _ = std::fs::remove_file(&pause_path);
    };

    let run = &unique_topic("died");
    die(run);
    let listed = v.json(&["snapshots", "--in-progress"]);
    let runs = listed.as_array().unwrap();
    assert_eq!(runs.len(), 1, "{listed}");
    assert_eq!(runs[0]["run"], run.as_str(), "{listed}");
    assert_eq!(runs[0]["partitions"], 24, "{listed}");
    // A gc in between keeps what the plan continues and has done.
    v.json(&["gc", "--keep-last", "1", "--unindexed-min-age", "0s"]);
    // The same command again resumes the plan and commits it.
    let resumed = finished(worker(&v, run, &topics, &[]));
    assert_eq!(done_here(&resumed).len(), 24, "{resumed}");
    let repo = v.open();
    let m = repo
        .read_snapshot(
            &repo
                .resolve_snapshot(resumed["id"].as_str().unwrap())
                .unwrap(),
        )
        .unwrap();
    assert_eq!(m.total_records(), records.len() as u64);
    assert_eq!(v.json(&["check", "--read-data"])["ok"], true);

    // Or the operator drops it.
    let other = &unique_topic("dropped");
    die(other);
    let dropped = v.json(&["forget", "--plan", other]);
    assert_eq!(dropped["dropped_plan"], other.as_str(), "{dropped}");
    assert_eq!(dropped["partitions"], 24, "{dropped}");
    assert!(
        v.json(&["snapshots", "--in-progress"])
            .as_array()
            .unwrap()
            .is_empty()
    );
    let o = v.run(&["forget", "--plan", other]);
    assert_eq!(o.status.code(), Some(2), "nothing left to drop");
}

/// A record bigger than a worker's per-partition producer queue (32 MiB)
/// is restored under `--workers` too: the partition starts again with a
/// producer that holds it, and nothing is written twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_over_32_mib_is_restored_by_workers() {
    let topic = unique_topic("dist-huge");
    create_topic(
        Cluster::Source,
        &topic,
        2,
        &[("max.message.bytes", "52428800")],
    )
    .await;
    let huge: Vec<u8> = (0..40 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let records = vec![
        TestRecord::new(0, Some(b"before"), Some(b"small")),
        TestRecord::new(0, Some(b"huge"), Some(&huge)),
        TestRecord::new(0, Some(b"after"), Some(b"small")),
        TestRecord::new(1, Some(b"other"), Some(b"partition")),
    ];
    let p = producer(Cluster::Source, &[("message.max.bytes", "60000000")]);
    common::produce_with(&p, &topic, &records).await;
    let v = TestVault::init();
    let id = v.snapshot(&[&topic])["id"].as_str().unwrap().to_string();
    let run = &unique_topic("huge");
    let out = finished(restore_worker(&v, run, &id, &[]));
    assert_eq!(out["records"], 4, "{out}");
    let back = consume_all(Cluster::Target, &topic, 2);
    assert_eq!(back.len(), 4, "every record exactly once");
    let got = back
        .iter()
        .find(|r| r.key.as_deref() == Some(b"huge".as_slice()))
        .expect("the huge record is there");
    assert!(
        got.value.as_deref() == Some(huge.as_slice()),
        "byte for byte"
    );
}

/// Removes `path` over and over until told to stop: a worker paused at a
/// pause point pauses again at each turn of its loop.
fn keep_releasing(
    path: std::path::PathBuf,
) -> (
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    std::thread::JoinHandle<()>,
) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let handle = {
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::fs::remove_file(&path);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    (stop, handle)
}

/// Waits for `child` at most `limit`, killing it (and failing) if it hangs.
fn finished_within(mut child: Child, limit: Duration, what: &str) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what} did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

/// A topic deleted after the run's cut and before any worker read it (a
/// Kafka Streams temporary topic under `--topic-regex '.*'`) is dropped
/// from the group and never assigned: the run commits without it, with a
/// warning, instead of waiting forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_deleted_mid_run_is_left_out_with_a_warning() {
    let (topics, records) = topic_set("dist-gone", 40).await;
    let v = TestVault::init();
    let pause = tempfile::NamedTempFile::new().unwrap().into_temp_path();
    let pause_path = pause.to_path_buf();
    drop(pause);
    let pause_at = format!("distributed-loop:{}", pause_path.display());
    let run = &unique_topic("gone");
    let w = worker(&v, run, &topics, &[("KVAULT_PAUSE_AT", &pause_at)]);
    wait_for("the worker to plan", Duration::from_secs(60), || {
        pause_path.exists()
    });
    common::delete_topic(Cluster::Source, &topics[1]).await;
    let (stop, release) = keep_releasing(pause_path);
    let out = finished_within(w, Duration::from_secs(150), "the worker");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    release.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let warned = report["warnings"].as_array().unwrap().iter().any(|w| {
        let w = w.as_str().unwrap();
        w.contains(&topics[1]) && w.contains("leaves topic")
    });
    assert!(warned, "{report}");
    let repo = v.open();
    let m = repo
        .read_snapshot(
            &repo
                .resolve_snapshot(report["id"].as_str().unwrap())
                .unwrap(),
        )
        .unwrap();
    let names: Vec<&str> = m.topics.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        vec![topics[0].as_str()],
        "only the topic still there"
    );
    let kept = records
        .iter()
        .filter(|r| r.value.as_ref().unwrap().starts_with(topics[0].as_bytes()))
        .count();
    assert_eq!(m.total_records(), kept as u64);
    assert!(
        m.groups
            .iter()
            .all(|g| g.offsets.iter().all(|o| o.topic != topics[1])),
        "no group offsets of the deleted topic"
    );
    assert_eq!(v.json(&["check", "--read-data"])["ok"], true);
}

/// A target topic deleted and created again while a distributed restore
/// writes into it: the records before are gone with the old topic, so the
/// restore must not report success nor commit offsets past the new
/// topic's log. It fails, saying what happened and what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_topic_recreated_mid_restore_fails_the_restore() {
    let (topics, _) = topic_set("dist-recreated", 30).await;
    let v = TestVault::init();
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let id = v.snapshot(&names)["id"].as_str().unwrap().to_string();
    let pause = tempfile::NamedTempFile::new().unwrap().into_temp_path();
    let pause_path = pause.to_path_buf();
    drop(pause);
    let pause_at = format!("distributed-restore-batch:{}", pause_path.display());
    let run = &unique_topic("recreated");
    let w = restore_worker(&v, run, &id, &[("KVAULT_PAUSE_AT", &pause_at)]);
    wait_for("the worker's first batch", Duration::from_secs(60), || {
        pause_path.exists()
    });
    common::recreate_topic(Cluster::Target, &topics[1], 8).await;
    let (stop, release) = keep_releasing(pause_path);
    let out = finished_within(w, Duration::from_secs(150), "the restore worker");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    release.join().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a restore into a recreated topic reported success"
    );
    assert!(
        err.contains(&topics[1])
            && err.contains("deleted and created again")
            && err.contains("Delete topic"),
        "{err}"
    );
    let group = "dist-recreated-group";
    assert_eq!(
        common::committed(Cluster::Target, group, &topics[1], 7),
        None,
        "no group offsets were committed"
    );
}
