//! Continuous mode (`vault snapshot --every`): a snapshot each interval,
//! gc on the keep rules, a recovery point per snapshot, Prometheus metrics
//! in a file and over HTTP, and a clean stop on SIGTERM.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::Stdio;
use std::sync::mpsc::channel;
use std::time::Duration;

use common::{Cluster, TestRecord, TestVault, create_topic, produce, unique_topic};

fn batch(from: usize, n: usize) -> Vec<TestRecord> {
    (from..from + n)
        .map(|i| {
            TestRecord::new(
                i32::try_from(i % 2).unwrap(),
                Some(format!("k{i}").as_bytes()),
                Some(format!("v{i}").as_bytes()),
            )
        })
        .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_get(port: u16, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// The samples of a Prometheus text file, parsed by the reference parser
/// (prometheus_client, installed by scripts/storage).
fn parse_prometheus(path: &std::path::Path) -> serde_json::Value {
    let python = std::env::var("KVAULT_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("KVAULT_TEST_PYTHON is not set: run the suite with scripts/test, or eval \"$(scripts/storage start)\"")
    });
    let script = "import json,sys\n\
        from prometheus_client.parser import text_string_to_metric_families\n\
        out = {}\n\
        for f in text_string_to_metric_families(open(sys.argv[1]).read()):\n\
        \x20   for s in f.samples:\n\
        \x20       out[s.name] = s.value\n\
        print(json.dumps(out))\n";
    let o = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(path)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "the parser refused the file: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_every_interval_and_stops_cleanly_on_sigterm() {
    let topic = unique_topic("every");
    create_topic(Cluster::Source, &topic, 2, &[]).await;
    produce(Cluster::Source, &topic, &batch(0, 100)).await;
    let v = TestVault::init();
    let dir = tempfile::tempdir().unwrap();
    let prom = dir.path().join("vault.prom");
    let port = free_port();
    let brokers = Cluster::Source.brokers();
    let addr = format!("127.0.0.1:{port}");
    let mut child = v
        .command(&[
            "snapshot",
            "--brokers",
            &brokers,
            "--topics",
            &topic,
            "--every",
            "2s",
            "--keep-last",
            "2",
            "--metrics-file",
            prom.to_str().unwrap(),
            "--metrics-addr",
            &addr,
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = channel();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let _ = tx.send(serde_json::from_str::<serde_json::Value>(&line).unwrap());
        }
    });
    // Three intervals, with new records between them.
    let mut reports = Vec::new();
    for i in 0..3 {
        let r = rx
            .recv_timeout(Duration::from_secs(90))
            .expect("a snapshot each interval");
        reports.push(r);
        if i < 2 {
            produce(Cluster::Source, &topic, &batch(100 + 50 * i, 50)).await;
        }
    }
    assert_eq!(reports[0]["records_read"], 100, "{reports:?}");
    for r in &reports {
        assert!(r["rpo_ms"].as_u64().unwrap() > 0, "{r}");
        assert!(
            r["committed_ms"].as_u64().unwrap() >= r["time_ms"].as_u64().unwrap(),
            "{r}"
        );
    }
    assert!(
        reports[2]["gc_forgotten"].as_u64().unwrap() >= 1,
        "keep-last 2 forgets the first: {reports:?}"
    );
    let served = http_get(port, "/metrics");
    assert!(served.starts_with("HTTP/1.1 200"), "{served}");
    assert!(
        served.contains("vault_snapshot_last_success_timestamp_seconds"),
        "{served}"
    );
    assert!(http_get(port, "/other").starts_with("HTTP/1.1 404"));

    // SIGTERM: it stops between snapshots, exit 0.
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status}");
    reader.join().unwrap();
    reports.extend(rx.try_iter());

    // Everything produced before the last interval is in the vault, whole.
    let total: u64 = reports
        .iter()
        .map(|r| r["records_read"].as_u64().unwrap())
        .sum();
    assert!(total >= 150, "{reports:?}");
    let snapshots = v.json(&["snapshots"]);
    assert_eq!(
        snapshots.as_array().unwrap().len(),
        2,
        "keep-last 2: {snapshots}"
    );
    assert_eq!(v.json(&["check", "--read-data"])["ok"], true);

    // The metrics file, read by Prometheus' own parser.
    let m = parse_prometheus(&prom);
    assert_eq!(m["vault_snapshots_total"], reports.len() as f64, "{m}");
    assert_eq!(m["vault_snapshot_records_read_total"], total as f64, "{m}");
    assert!(
        m["vault_snapshot_bytes_stored_total"].as_f64().unwrap() > 0.0,
        "{m}"
    );
    assert!(m["vault_gc_runs_total"].as_f64().unwrap() >= 3.0, "{m}");
    assert!(
        m["vault_snapshot_rpo_seconds"].as_f64().unwrap() > 0.0,
        "{m}"
    );
    assert_eq!(m["vault_errors_total"], 0.0, "{m}");
    let last = m["vault_snapshot_last_success_timestamp_seconds"]
        .as_f64()
        .unwrap();
    assert!(
        (last - vault::now_ms() as f64 / 1000.0).abs() < 120.0,
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_snapshot_writes_its_metrics_file() {
    let topic = unique_topic("metrics");
    create_topic(Cluster::Source, &topic, 2, &[]).await;
    produce(Cluster::Source, &topic, &batch(0, 10)).await;
    let v = TestVault::init();
    let dir = tempfile::tempdir().unwrap();
    let prom = dir.path().join("vault.prom");
    v.snapshot_from(
        Cluster::Source,
        &[&topic],
        &["--metrics-file", prom.to_str().unwrap()],
    );
    let m = parse_prometheus(&prom);
    assert_eq!(m["vault_snapshots_total"], 1.0, "{m}");
    assert_eq!(m["vault_snapshot_records_read_total"], 10.0, "{m}");
    let success = m["vault_snapshot_last_success_timestamp_seconds"]
        .as_f64()
        .unwrap();
    assert!(success > 0.0, "{m}");

    // The counters count across runs, and a failed run keeps the time of
    // the last success, so a staleness alert still sees it.
    produce(Cluster::Source, &topic, &batch(10, 4)).await;
    v.snapshot_from(
        Cluster::Source,
        &[&topic],
        &["--metrics-file", prom.to_str().unwrap()],
    );
    let brokers = Cluster::Source.brokers();
    let failed = v.run(&[
        "snapshot",
        "--brokers",
        &brokers,
        "--topics",
        "no-such-topic-here",
        "--metrics-file",
        prom.to_str().unwrap(),
    ]);
    assert!(!failed.status.success());
    let m = parse_prometheus(&prom);
    assert_eq!(m["vault_snapshots_total"], 2.0, "{m}");
    assert_eq!(m["vault_snapshot_records_read_total"], 14.0, "{m}");
    assert_eq!(m["vault_errors_total"], 1.0, "{m}");
    assert!(
        m["vault_snapshot_last_success_timestamp_seconds"]
            .as_f64()
            .unwrap()
            >= success,
        "{m}"
    );
}

/// A child process that is killed when the test ends, passed or failed:
/// a continuous process left behind would run forever.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads `--every --json` lines from a running child into a channel.
fn reports_of(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<serde_json::Value> {
    let (tx, rx) = channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            let _ = tx.send(serde_json::from_str::<serde_json::Value>(&line).unwrap());
        }
    });
    rx
}

fn sigterm(child: &std::process::Child) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for `child` to exit, at most `limit`; kills it and fails if not.
fn exits_within(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the process did not exit within {limit:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Continuous mode prunes its own group only: a tagged manual snapshot of
/// the same topics, a snapshot of other topics and another source's
/// snapshot of the same topics all outlive `--keep-last 1 --keep-within 1s`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_prunes_only_its_own_group() {
    let (topic, other) = (unique_topic("every-own"), unique_topic("every-other"));
    for t in [&topic, &other] {
        create_topic(Cluster::Source, t, 2, &[]).await;
        produce(Cluster::Source, t, &batch(0, 20)).await;
    }
    let v = TestVault::init();
    let tagged =
        v.snapshot_from(Cluster::Source, &[&topic], &["--tag", "pre-migration"])["id"].clone();
    let other_topics = v.snapshot(&[&other])["id"].clone();
    let other_source =
        v.snapshot_from(Cluster::Source, &[&topic], &["--source", "nightly-dr"])["id"].clone();
    let brokers = Cluster::Source.brokers();
    let mut running = Running(
        v.command(&[
            "snapshot",
            "--brokers",
            &brokers,
            "--topics",
            &topic,
            "--every",
            "1s",
            "--keep-last",
            "1",
            "--keep-within",
            "1s",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    let child = &mut running.0;
    let rx = reports_of(child);
    let mut reports = Vec::new();
    for _ in 0..3 {
        reports.push(
            rx.recv_timeout(Duration::from_secs(90))
                .expect("an interval's report"),
        );
        produce(Cluster::Source, &topic, &batch(100, 5)).await;
    }
    sigterm(child);
    assert!(exits_within(child, Duration::from_secs(60)).success());
    let ids: Vec<serde_json::Value> = v
        .json(&["snapshots"])
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].clone())
        .collect();
    for (what, id) in [
        ("the tagged manual snapshot", &tagged),
        ("the snapshot of other topics", &other_topics),
        ("another source's snapshot", &other_source),
    ] {
        assert!(
            ids.contains(id),
            "{what} was forgotten: {ids:?} {reports:?}"
        );
    }
    let own = ids.len() - 3;
    assert!(
        (1..=2).contains(&own),
        "keep-last 1 within its own group: {ids:?}"
    );
    assert!(
        reports
            .iter()
            .skip(1)
            .any(|r| r["gc_forgotten"].as_u64().unwrap() >= 1),
        "its own older snapshots were pruned: {reports:?}"
    );
}

/// SIGTERM while continuous mode waits for a gc's exclusive lock stops it
/// at once, not after `--lock-wait`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_waiting_for_the_vault_lock_stops_at_once() {
    let topic = unique_topic("every-lockwait");
    create_topic(Cluster::Source, &topic, 2, &[]).await;
    produce(Cluster::Source, &topic, &batch(0, 4)).await;
    let v = TestVault::init();
    let gc = vault::lock::VaultLock::acquire(
        v.storage(),
        vault::lock::LockKind::Exclusive,
        "gc (held by the test)",
        Duration::from_secs(10),
    )
    .unwrap();
    let brokers = Cluster::Source.brokers();
    let mut running = Running(
        v.command(&[
            "snapshot",
            "--brokers",
            &brokers,
            "--topics",
            &topic,
            "--every",
            "1s",
            "--lock-wait",
            "600",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap(),
    );
    let child = &mut running.0;
    // It says it waits for the lock.
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            let _ = tx.send(line);
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = rx.recv_timeout(left).expect("it reports the wait");
        if line.contains("waiting for") {
            break;
        }
    }
    sigterm(child);
    let status = exits_within(child, Duration::from_secs(10));
    assert!(status.success(), "exit status {status}");
    assert!(v.json(&["snapshots"]).as_array().unwrap().is_empty());
    drop(gc);
}

/// While another command (a long restore, a check) holds the vault,
/// continuous mode goes on taking snapshots and skips its gc, rather
/// than adding `--lock-wait` to every recovery point.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_is_skipped_while_another_command_holds_the_vault() {
    let topic = unique_topic("every-skip");
    create_topic(Cluster::Source, &topic, 2, &[]).await;
    produce(Cluster::Source, &topic, &batch(0, 4)).await;
    let v = TestVault::init();
    let restore = vault::lock::VaultLock::acquire(
        v.storage(),
        vault::lock::LockKind::Shared,
        "restore (held by the test)",
        Duration::from_secs(10),
    )
    .unwrap();
    let brokers = Cluster::Source.brokers();
    let mut running = Running(
        v.command(&[
            "snapshot",
            "--brokers",
            &brokers,
            "--topics",
            &topic,
            "--every",
            "1s",
            "--keep-last",
            "1",
            "--lock-wait",
            "600",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    let child = &mut running.0;
    let rx = reports_of(child);
    for i in 0..2 {
        let r = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("interval {i} waited for gc's lock"));
        assert_eq!(r["gc_skipped"], true, "{r}");
        assert_eq!(r["gc_forgotten"], 0, "{r}");
    }
    drop(restore);
    // Free again: the next interval's gc runs and prunes.
    let r = rx.recv_timeout(Duration::from_secs(60)).unwrap();
    let r = if r["gc_skipped"] == true {
        rx.recv_timeout(Duration::from_secs(60)).unwrap()
    } else {
        r
    };
    assert_eq!(r["gc_skipped"], false, "{r}");
    assert!(r["gc_forgotten"].as_u64().unwrap() >= 2, "{r}");
    sigterm(child);
    assert!(exits_within(child, Duration::from_secs(60)).success());
}
