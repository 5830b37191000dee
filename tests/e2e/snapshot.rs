//! `vault snapshot` against the real source cluster: every field kind
//! round-trips, snapshots are incremental and deduplicated, and a killed
//! snapshot commits nothing.

use crate::common;

use std::time::Duration;

use common::{
    Cluster, TestRecord, TestVault, consume_all, create_topic, produce, produce_bulk, unique_topic,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_field_kind_round_trips() {
    let topic = unique_topic("fields");
    create_topic(Cluster::Source, &topic, 4, &[]).await;
    let big = common::big_value();
    let records = common::field_kind_records(&big);
    produce(Cluster::Source, &topic, &records).await;

    let log_append = unique_topic("logappend");
    create_topic(
        Cluster::Source,
        &log_append,
        1,
        &[("message.timestamp.type", "LogAppendTime")],
    )
    .await;
    produce(
        Cluster::Source,
        &log_append,
        &[TestRecord::new(0, Some(b"a"), Some(b"b")).at(5)],
    )
    .await;

    let v = TestVault::init();
    let s = v.snapshot(&[&topic, &log_append]);
    assert_eq!(s["records_read"], 10);

    let want = consume_all(Cluster::Source, &topic, 4);
    assert_eq!(want.len(), records.len());
    assert_eq!(v.records("latest", &topic), want);
    let la = v.records("latest", &log_append);
    assert_eq!(la, consume_all(Cluster::Source, &log_append, 1));
    assert_eq!(la[0].timestamp.0, 2, "LogAppendTime is kept as such");
    // The 8 MiB value went to value chunks, not one huge data chunk.
    let repo = v.open();
    let id = repo.resolve_snapshot("latest").unwrap();
    let m = repo.read_snapshot(&id).unwrap();
    let t = m.topics.iter().find(|t| t.name == topic).unwrap();
    assert_eq!(t.partitions.len(), 4);
    assert!(
        t.partitions[2].root.is_none(),
        "the empty partition has no tree"
    );
    assert_eq!(t.partitions[2].end_offset, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_keep_only_committed_records_and_their_offsets() {
    let topic = unique_topic("txn");
    create_topic(Cluster::Source, &topic, 1, &[]).await;
    common::produce_transactions(Cluster::Source, &topic, &[true, false, true, false]).await;
    let v = TestVault::init();
    v.snapshot(&[&topic]);
    let got = v.records("latest", &topic);
    let keys: Vec<String> = got
        .iter()
        .map(|r| String::from_utf8(r.key.clone().unwrap()).unwrap())
        .collect();
    assert_eq!(keys, ["t0-0", "t0-1", "t0-2", "t2-0", "t2-1", "t2-2"]);
    assert_eq!(
        got,
        consume_all(Cluster::Source, &topic, 1),
        "offsets keep the gaps of markers and aborted records"
    );
    // The cut is the end of the log, after the last (aborted) transaction's marker.
    let repo = v.open();
    let m = repo
        .read_snapshot(&repo.resolve_snapshot("latest").unwrap())
        .unwrap();
    assert_eq!(m.topics[0].partitions[0].end_offset, 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_topic_keeps_its_tombstones_and_gaps() {
    let topic = unique_topic("compact");
    common::compactable_topic(&topic, 5, 20).await;
    let mut recs = Vec::new();
    for k in 0..5 {
        recs.push(TestRecord::new(0, Some(format!("key{k}").as_bytes()), None));
    }
    produce(Cluster::Source, &topic, &recs).await;
    let want = common::compact(&topic, 80).await;
    let v = TestVault::init();
    v.snapshot(&[&topic]);
    let got = v.records("latest", &topic);
    assert_eq!(got, want);
    assert!(got.iter().any(|r| r.value.is_none()), "tombstones are kept");
    let gaps = got[0].offset > 0 || got.windows(2).any(|w| w[1].offset > w[0].offset + 1);
    assert!(
        gaps,
        "compaction removed records, so the vault's offsets must have gaps"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_partitions_and_incremental_snapshots() {
    let topic = unique_topic("wide");
    create_topic(Cluster::Source, &topic, 50, &[]).await;
    produce_bulk(Cluster::Source, &topic, 50, 20_000, 1024, 1).await;
    let v = TestVault::init();
    let first = v.snapshot(&[&topic]);
    assert_eq!(first["records_read"], 20_000);
    assert_eq!(first["partitions"], 50);
    let size1 = v.size();

    // Unchanged: no records read, metadata only.
    let again = v.snapshot(&[&topic]);
    assert_eq!(again["records_read"], 0);
    assert_eq!(again["records_total"], 20_000);
    assert!(
        v.size() - size1 < 64 * 1024,
        "an unchanged snapshot grew the vault by {}",
        v.size() - size1
    );

    // Incremental: only the new records are read, the vault grows by about their compressed size.
    produce_bulk(Cluster::Source, &topic, 50, 2_000, 1024, 2).await;
    let size2 = v.size();
    let inc = v.snapshot(&[&topic]);
    assert_eq!(inc["records_read"], 2_000);
    assert_eq!(inc["records_total"], 22_000);
    let grew = v.size() - size2;
    let per_record_first = size1 as f64 / 20_000.0;
    assert!(
        (grew as f64) < 2.0 * per_record_first * 2_000.0 + 256.0 * 1024.0,
        "incremental snapshot added {grew} bytes"
    );
    assert_eq!(
        v.records("latest", &topic),
        consume_all(Cluster::Source, &topic, 50)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_at_other_offsets_adds_almost_nothing() {
    // What a shifted copy costs is one new chunk per partition (the one that
    // holds the extra record; the chunker test shows the rest is shared) and
    // its tree nodes: about one average chunk each. With 64 KiB chunks and
    // 8 partitions of 3 MB that sits right at 2%, so each partition here
    // holds 6 MB. The default 256 KiB chunks would need partitions of
    // 25 MB to show the same; resynchronising does not depend on the size.
    const PARTITIONS: i32 = 4;
    let topic = unique_topic("orig");
    create_topic(Cluster::Source, &topic, PARTITIONS, &[]).await;
    produce_bulk(Cluster::Source, &topic, PARTITIONS, 24_000, 1024, 4).await;
    let v = TestVault::init_with(&["--avg-chunk-kib", "64"]);
    v.snapshot(&[&topic]);
    let src = v.records("latest", &topic);

    // The same records in another topic, shifted to other offsets.
    let copy = unique_topic("copy");
    create_topic(Cluster::Source, &copy, PARTITIONS, &[]).await;
    let shift: Vec<TestRecord> = (0..PARTITIONS)
        .map(|p| TestRecord::new(p, Some(b"shift"), Some(b"offsets")))
        .collect();
    common::produce(Cluster::Source, &copy, &shift).await;
    produce_copy(&copy, &src).await;
    let before = v.size();
    let c = v.snapshot(&[&copy]);
    assert_eq!(c["records_read"], 24_000 + PARTITIONS);
    let added = v.size() - before;
    let data: u64 = src
        .iter()
        .map(|r| (r.key.as_ref().map_or(0, Vec::len) + r.value.as_ref().map_or(0, Vec::len)) as u64)
        .sum();
    assert!(
        (added as f64) < 0.02 * data as f64,
        "a copy of {data} bytes added {added} bytes"
    );
    let copied = v.records("latest", &copy);
    assert_eq!(copied.len(), 24_000 + PARTITIONS as usize);
    assert!(
        copied
            .iter()
            .filter(|r| r.key.as_deref() != Some(b"shift"))
            .all(|r| r.offset >= 1),
        "the copy sits at other offsets"
    );
}

/// Copies records keeping partition, key, value, headers and timestamp.
async fn produce_copy(topic: &str, recs: &[TestRecord]) {
    use rdkafka::producer::FutureRecord;
    let p = common::producer(
        Cluster::Source,
        &[("linger.ms", "20"), ("batch.size", "1000000")],
    );
    let mut pending = Vec::new();
    for r in recs {
        let mut fr: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic)
            .partition(r.partition)
            .timestamp(r.timestamp.1);
        if let Some(k) = &r.key {
            fr = fr.key(k.as_slice());
        }
        if let Some(v) = &r.value {
            fr = fr.payload(v.as_slice());
        }
        pending.push(p.send_result(fr).expect("queue"));
    }
    for f in pending {
        f.await.expect("delivery").expect("produce");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_snapshot_commits_nothing_and_the_next_one_works() {
    let topic = unique_topic("kill");
    create_topic(Cluster::Source, &topic, 8, &[]).await;
    produce_bulk(Cluster::Source, &topic, 8, 60_000, 2048, 3).await;
    // Small packs, so some are on disk long before the snapshot could commit.
    let v = TestVault::init_with(&["--pack-size-mib", "1"]);
    // Kill it once it has written some packs (of about 75 MiB), before it commits.
    let mut child = v.snapshot_in_flight(&topic, &[], 3 << 20);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        v.objects(vault::storage::Dir::Snapshots).is_empty(),
        "a killed snapshot left a manifest"
    );

    let packs_before = v.objects(vault::storage::Dir::Packs).len();
    assert!(packs_before > 0);
    let s = v.snapshot(&[&topic]);
    assert_eq!(s["records_read"], 60_000);
    assert!(
        s["chunks_deduplicated"].as_u64().unwrap() > 0,
        "the chunks of the killed run were written again: {s}"
    );
    // Every pack on disk is listed by an index object: nothing was orphaned.
    {
        let repo = v.open();
        let known = repo.index_cache().known_packs().unwrap();
        let on_disk = repo.storage().list(vault::storage::Dir::Packs).unwrap();
        assert!(
            on_disk
                .iter()
                .all(|l| known.contains(&vault_format::PackId::from_hex(&l.name).unwrap())),
            "orphan packs remain"
        );
    }
    let list = v.json(&["snapshots"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(
        v.records("latest", &topic),
        consume_all(Cluster::Source, &topic, 8)
    );
}

#[test]
fn an_unreachable_broker_fails_clearly_and_commits_nothing() {
    let v = TestVault::init();
    let o = v.run(&[
        "snapshot",
        "--brokers",
        "127.0.0.1:1",
        "--topics",
        "x",
        "-X",
        "socket.connection.setup.timeout.ms=2000",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("127.0.0.1:1"), "{err}");
    assert!(v.objects(vault::storage::Dir::Snapshots).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_transaction_does_not_hold_the_snapshot_up() {
    use rdkafka::producer::Producer;
    let topic = unique_topic("opentxn");
    create_topic(Cluster::Source, &topic, 1, &[]).await;
    produce(
        Cluster::Source,
        &topic,
        &[TestRecord::new(0, Some(b"before"), Some(b"1"))],
    )
    .await;
    let p = common::producer(
        Cluster::Source,
        &[("transactional.id", &unique_topic("open"))],
    );
    p.init_transactions(Duration::from_secs(30)).unwrap();
    p.begin_transaction().unwrap();
    common::produce_with(&p, &topic, &[TestRecord::new(0, Some(b"open"), Some(b"2"))]).await;
    p.flush(Duration::from_secs(10)).unwrap();

    let v = TestVault::init();
    let started = std::time::Instant::now();
    let s = v.json(&[
        "snapshot",
        "--brokers",
        &Cluster::Source.brokers(),
        "--topics",
        &topic,
        "--stall-timeout",
        "20",
    ]);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the snapshot waited for the open transaction"
    );
    assert_eq!(s["records_read"], 1);
    let got = v.records("latest", &topic);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].key.as_deref(), Some(&b"before"[..]));
    p.abort_transaction(Duration::from_secs(30)).unwrap();
}
