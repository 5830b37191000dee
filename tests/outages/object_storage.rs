//! A vault on a real S3 server (moto, started by `scripts/storage`) under
//! the faults an object store has: a store that ignores conditional
//! writes, an outage in the middle of a snapshot, 503s and throttling,
//! and a kill -9 in the middle of a multipart upload. After each, `check
//! --read-data` is clean and no record is lost.
//!
//! These tests change the one shared server, so they take turns (with
//! the rest of `tests/outages`), and the README's test command runs them
//! once, whatever the backend.

use crate::common;

use std::io::{Read, Write};
use std::time::Duration;

use crate::serial;
use common::{
    Backend, Cluster, TestVault, consume_all, create_topic, produce_bulk, stderr, unique_topic,
};
use vault::storage::Dir;

fn endpoint() -> String {
    std::env::var("KVAULT_TEST_S3_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "KVAULT_TEST_S3_ENDPOINT is not set: run `scripts/test`, or \
             `eval \"$(scripts/storage start)\"` and cargo test again"
        )
    })
}

/// A plain HTTP GET to the S3 server (its fault controls, or a listing);
/// returns the body.
pub(crate) fn http_get(path_and_query: &str) -> String {
    let addr = endpoint().trim_start_matches("http://").to_string();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{path_and_query}: {out}");
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

pub(crate) fn faults(query: &str) {
    http_get(&format!("/__vault_test__/faults?{query}"));
}

/// Runs `scripts/storage ARG` (s3-down, s3-up).
fn storage_script(arg: &str) {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/storage");
    let o = std::process::Command::new(script)
        .arg(arg)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "scripts/storage {arg}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Clears injected faults and brings the server back even if a test fails
/// half-way, so one failure does not cascade into the next test.
pub(crate) struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        storage_script("s3-up");
        faults("count=0&ignore_conditions=0");
    }
}

/// `check --read-data` passes and the latest snapshot holds exactly the
/// topic's records.
fn assert_whole(v: &TestVault, topic: &str, partitions: i32) {
    let o = v.run(&["check", "--read-data"]);
    assert!(o.status.success(), "check --read-data: {}", stderr(&o));
    assert_eq!(
        v.records("latest", topic),
        consume_all(Cluster::Source, topic, partitions),
        "a record was lost or changed"
    );
}

#[test]
fn a_store_that_ignores_conditional_writes_is_refused_at_init() {
    let _turn = serial();
    let _restore = Restore;
    faults("ignore_conditions=1");
    let v = TestVault::uninitialised(Backend::S3);
    let o = v.run(&["init", "--kdf-memory-mib", "8"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("conditional") && err.contains("--unsafe-no-conditional-writes"),
        "{err}"
    );
    assert!(
        common::all_objects(v.storage().as_ref()).is_empty(),
        "a refused init left objects behind"
    );

    // The operator who accepts "one writer at a time" may go on.
    let o = v.run(&[
        "init",
        "--kdf-memory-mib",
        "8",
        "--unsafe-no-conditional-writes",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("one writer at a time"),
        "{}",
        stderr(&o)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_mid_snapshot_fails_clearly_and_the_rerun_reuses_the_packs() {
    let _turn = serial();
    let topic = unique_topic("s3-outage");
    create_topic(Cluster::Source, &topic, 4, &[]).await;
    produce_bulk(Cluster::Source, &topic, 4, 30_000, 2048, 61).await;
    let _restore = Restore;
    let v = TestVault::init_on(Backend::S3, &["--pack-size-mib", "1"]);

    // The server goes away once a few packs are up, and stays away
    // longer than vault retries.
    let child = v.snapshot_in_flight(
        &topic,
        &["--storage-option", "retry_timeout=3s", "--json"],
        3 << 20,
    );
    storage_script("s3-down");
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("s3://vault-tests/"), "names the store: {err}");
    storage_script("s3-up");
    assert!(
        v.objects(Dir::Snapshots).is_empty(),
        "a snapshot was committed without all its data"
    );
    assert!(!v.objects(Dir::Packs).is_empty());

    let s = v.snapshot(&[&topic]);
    assert_eq!(s["records_read"], 30_000);
    assert!(
        s["chunks_deduplicated"].as_u64().unwrap() > 0,
        "what the failed run uploaded was uploaded again: {s}"
    );
    assert_whole(&v, &topic, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_503s_and_throttling_are_retried() {
    let _turn = serial();
    let topic = unique_topic("s3-503");
    create_topic(Cluster::Source, &topic, 2, &[]).await;
    produce_bulk(Cluster::Source, &topic, 2, 8_000, 1024, 62).await;
    let _restore = Restore;
    let v = TestVault::init_on(Backend::S3, &["--pack-size-mib", "1"]);

    // Every third request fails with 503 SlowDown, 60 times.
    faults("status=503&count=60&every=3");
    let s = v.snapshot(&[&topic]);
    assert_eq!(s["records_read"], 8_000);
    // Throttling while reading everything back.
    faults("status=429&count=60&every=2");
    assert_whole(&v, &topic, 2);
    // And 500s while gc lists, reads and deletes.
    faults("status=500&count=30&every=2");
    let g = v.json(&["gc", "--keep-last", "1"]);
    assert_eq!(g["snapshots"].as_array().unwrap().len(), 1, "{g}");
    faults("count=0");
    let target = unique_topic("s3-503-dr");
    let rename = format!("{topic}={target}");
    v.restore("latest", &["--rename", &rename]);
    assert_eq!(
        common::content(&consume_all(Cluster::Target, &target, 2)),
        common::content(&consume_all(Cluster::Source, &topic, 2))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_upload_killed_midway_is_aborted_and_nothing_is_lost() {
    let _turn = serial();
    let topic = unique_topic("s3-kill");
    create_topic(Cluster::Source, &topic, 2, &[]).await;
    produce_bulk(Cluster::Source, &topic, 2, 20_000, 2048, 63).await;
    let _restore = Restore;
    // Packs of 12 MiB go up in parts of 5 MiB (S3's smallest).
    let v = TestVault::init_on(Backend::S3, &["--pack-size-mib", "12"]);
    let multipart = [
        "--storage-option",
        "multipart_threshold=6MiB",
        "--storage-option",
        "part_size=5MiB",
    ];

    // kill -9 after the last part of the first upload, before it completes.
    let brokers = Cluster::Source.brokers();
    let mut args = vec!["snapshot", "--brokers", &brokers, "--topics", &topic];
    args.extend(multipart);
    let o = v
        .command(&args)
        .env("KVAULT_CRASH_AT", "multipart-before-complete")
        .output()
        .unwrap();
    assert!(!o.status.success(), "the crash point was never reached");
    assert!(stderr(&o).contains("crash point"), "{}", stderr(&o));
    assert!(v.objects(Dir::Snapshots).is_empty());
    // Every pack is 12 MiB, so every one went up in parts, and the first
    // to complete was the last act of the process: none is visible, and
    // each one started (several run at once) is recorded and pending.
    assert!(
        v.objects(Dir::Packs).is_empty(),
        "an unfinished upload became visible"
    );
    let recorded = v.objects(Dir::Uploads).len();
    assert!(recorded >= 1, "the upload was not recorded");
    let prefix = v.location.trim_start_matches("s3://vault-tests/");
    let pending = http_get(&format!("/vault-tests?uploads&prefix={prefix}/"));
    assert_eq!(pending.matches("<UploadId>").count(), recorded, "{pending}");

    // gc aborts the dead uploads and forgets their records.
    let g = v.json(&["gc", "--keep-last", "1"]);
    assert_eq!(g["uploads_aborted"], recorded, "{g}");
    assert!(v.objects(Dir::Uploads).is_empty());
    let pending = http_get(&format!("/vault-tests?uploads&prefix={prefix}/"));
    assert_eq!(pending.matches("<UploadId>").count(), 0, "{pending}");

    // The next snapshot, in parts again, is whole.
    let mut args = vec![
        "snapshot",
        "--brokers",
        &brokers,
        "--topics",
        &topic,
        "--json",
    ];
    args.extend(multipart);
    let o = v.run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        v.objects(Dir::Uploads).is_empty(),
        "an upload record was left"
    );
    assert_whole(&v, &topic, 2);
}

#[test]
fn a_missing_bucket_a_wrong_key_and_a_used_prefix_are_refused_clearly() {
    let _turn = serial();
    // A bucket that does not exist: said so, and nothing is created.
    let v = TestVault::uninitialised(Backend::S3);
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_vault"))
        .args([
            "init",
            "--kdf-memory-mib",
            "8",
            "--vault",
            "s3://no-such-bucket/v",
        ])
        .arg("--password-file")
        .arg(&v.password_file)
        .envs(Backend::S3.env())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));

    // A wrong account key (Azurite checks signatures): a clear failure
    // that never shows the key.
    let v = TestVault::uninitialised(Backend::Azure);
    let wrong_key = "d3JvbmcgYWNjb3VudCBrZXkgZm9yIHRoZSB0ZXN0cw==";
    let o = v
        .command(&["init", "--kdf-memory-mib", "8"])
        .env("KVAULT_STORAGE_AZURE_STORAGE_ACCOUNT_KEY", wrong_key)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains(&v.location), "{}", stderr(&o));
    for out in [&o.stdout, &o.stderr] {
        assert!(!String::from_utf8_lossy(out).contains(wrong_key));
    }

    // A prefix that already holds objects of a vault's folders is not
    // taken over, and what is there stays.
    let v = TestVault::uninitialised(Backend::S3);
    let storage = v.storage();
    let theirs = vault::storage::ObjectName::new(Dir::Uploads, "someone-elses-file");
    assert!(storage.put_if_absent(&theirs, b"not vault's").unwrap());
    let o = v.run(&["init", "--kdf-memory-mib", "8"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("choose a new prefix"), "{}", stderr(&o));
    assert_eq!(storage.get(&theirs).unwrap(), b"not vault's");
    assert!(
        !storage
            .exists(&vault::storage::ObjectName::config())
            .unwrap()
    );
}

/// An operator moves a vault from a local disk to S3 by copying its
/// objects, and later back: each copy is the same vault, and what it
/// holds reads back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vault_copied_from_a_local_directory_to_s3_is_the_same_vault() {
    let _turn = serial();
    let topic = unique_topic("moved");
    create_topic(Cluster::Source, &topic, 2, &[]).await;
    produce_bulk(Cluster::Source, &topic, 2, 3_000, 512, 64).await;
    let local = TestVault::init_on(Backend::Local, &["--pack-size-mib", "1"]);
    let first = local.snapshot(&[&topic]);
    let moved = local.copy_to(Backend::S3);
    let listed = moved.json(&["snapshots"]);
    assert_eq!(listed[0]["id"], first["id"], "{listed}");
    assert_whole(&moved, &topic, 2);
    // And it goes on from there: the next snapshot is incremental.
    produce_bulk(Cluster::Source, &topic, 2, 1_000, 512, 65).await;
    let next = moved.snapshot(&[&topic]);
    assert_eq!(next["records_read"], 1_000, "{next}");
    assert_whole(&moved, &topic, 2);
    // And back to a directory (object stores keep no empty folders).
    let back = moved.copy_to(Backend::Local);
    assert_whole(&back, &topic, 2);
}
