//! `vault gc`, `vault forget`, `vault check` and `vault snapshots` on vaults
//! filled from the real source cluster.

use crate::common;

use std::time::Duration;

use common::{
    Cluster, TestRecord, TestVault, consume_all, content, create_topic, overwrite, produce,
    produce_bulk, unique_topic,
};
use vault::storage::{Dir, ObjectName};

/// A vault with two snapshots of different topics: `a` (only in the
/// first) and `b` (in both).
async fn two_snapshots(init: &[&str]) -> (TestVault, String, String, serde_json::Value) {
    let a = unique_topic("gca");
    let b = unique_topic("gcb");
    create_topic(Cluster::Source, &a, 2, &[]).await;
    create_topic(Cluster::Source, &b, 2, &[]).await;
    produce_bulk(Cluster::Source, &a, 2, 6000, 1024, 21).await;
    produce_bulk(Cluster::Source, &b, 2, 3000, 1024, 22).await;
    let v = TestVault::init_with(init);
    let first = v.snapshot(&[&a, &b]);
    produce_bulk(Cluster::Source, &b, 2, 1000, 1024, 23).await;
    v.snapshot(&[&b]);
    (v, a, b, first)
}

fn snapshot_ids(v: &TestVault) -> Vec<String> {
    v.json(&["snapshots"])
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

fn check_ok(v: &TestVault, what: &str) {
    let o = v.run(&["check", "--read-data", "--json"]);
    assert!(
        o.status.success(),
        "{what}: vault check --read-data failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_frees_what_forgotten_snapshots_held_and_kept_ones_restore() {
    let (v, a, b, _) = two_snapshots(&["--pack-size-mib", "1"]).await;
    let ids = snapshot_ids(&v);
    assert_eq!(ids.len(), 2);
    let listed = v.json(&["snapshots"]);
    assert_eq!(listed[0]["topics"].as_array().unwrap().len(), 2);
    assert!(listed[0]["records"].as_u64().unwrap() >= 9000);
    assert!(listed[0]["bytes"].as_u64().unwrap() > 9_000_000);

    // No rule is an error; a dry run changes nothing.
    let o = v.run(&["gc"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("keep rule"));
    let before = v.size();
    let dry = v.json(&[
        "gc",
        "--group-by",
        "cluster",
        "--keep-last",
        "1",
        // Nothing else writes here: the packs just written may go at once.
        "--unindexed-min-age",
        "0s",
        "--dry-run",
    ]);
    assert_eq!(dry["forgotten"].as_array().unwrap().len(), 1);
    assert!(dry["bytes_to_delete"].as_u64().unwrap() > 0);
    assert_eq!(v.size(), before);
    assert_eq!(snapshot_ids(&v).len(), 2);

    // Forgetting the first snapshot frees topic a, which only it held.
    let a_bytes: u64 = 6000 * 1024;
    let g = v.json(&[
        "gc",
        "--group-by",
        "cluster",
        "--keep-last",
        "1",
        "--unindexed-min-age",
        "0s",
    ]);
    assert_eq!(g["forgotten"].as_array().unwrap().len(), 1, "{g}");
    let freed = g["bytes_freed"].as_u64().unwrap();
    let after = v.size();
    assert!(
        before - after >= freed * 9 / 10,
        "{before} -> {after}, freed {freed}"
    );
    // Topic a's data compresses ~1.6x; most of it must be gone.
    assert!(freed > a_bytes / 3, "freed only {freed} bytes: {g}");
    assert_eq!(snapshot_ids(&v).len(), 1);
    check_ok(&v, "after gc");

    // The kept snapshot restores record for record.
    let renamed = unique_topic("gcrestored");
    let out = v.restore(
        "latest",
        &[
            "--rename",
            &format!("{b}={renamed}"),
            "--consumer-groups",
            "none",
        ],
    );
    assert_eq!(out["records"], 4000);
    assert_eq!(
        content(&consume_all(Cluster::Target, &renamed, 2)),
        content(&consume_all(Cluster::Source, &b, 2))
    );
    // gc again finds nothing more to do.
    let again = v.json(&[
        "gc",
        "--group-by",
        "cluster",
        "--keep-last",
        "1",
        "--unindexed-min-age",
        "0s",
    ]);
    assert_eq!(again["packs_deleted"], 0, "{again}");
    let _ = a;

    // vault forget forgets exactly one snapshot.
    let id = snapshot_ids(&v)[0].clone();
    v.json(&["forget", &id[..10]]);
    assert!(snapshot_ids(&v).is_empty());
}

/// gc killed at every step of its work: after each kill the vault checks
/// clean and the kept snapshot still reads back in full; the next gc
/// finishes the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_killed_anywhere_leaves_a_readable_vault() {
    // Small packs of small chunks: many packs hold live and dead chunks
    // together, so the repack step has work to be killed in.
    let (v, _a, b, _) = two_snapshots(&["--pack-size-mib", "1", "--avg-chunk-kib", "64"]).await;
    let want = v.records("latest", &b);
    let points = [
        "gc-forget:1",
        "gc-repack:1",
        "gc-repack:2",
        "gc-index:1",
        "gc-index:2",
        "gc-pack:1",
        "gc-pack:3",
        "gc-pack:8",
    ];
    // --repack-below 100 repacks every pack with anything dead in it, so
    // each step has work to be killed in.
    //
    // Whether the repack step has one pack or several to do depends on how
    // the two topics' chunks interleaved into packs (fetch timing): with
    // one, the run killed at gc-repack:2 finishes everything, and nothing
    // is left for gc-index:1. So each of the kills that must happen starts
    // from a copy of the vault as the snapshots left it; the others go on
    // from wherever the previous kill left the vault.
    let pristine = v.copy();
    let must_reach = ["gc-forget:1", "gc-repack:1", "gc-index:1"];
    for point in points {
        let fresh = must_reach.contains(&point).then(|| pristine.copy());
        let v = fresh.as_ref().unwrap_or(&v);
        let o = v
            .command(&[
                "gc",
                "--group-by",
                "cluster",
                "--keep-last",
                "1",
                "--repack-below",
                "100",
                "--unindexed-min-age",
                "0s",
            ])
            .env("KVAULT_CRASH_AT", point)
            .output()
            .unwrap();
        let reached = !o.status.success();
        check_ok(v, point);
        assert_eq!(v.records("latest", &b), want, "after a kill at {point}");
        eprintln!(
            "{point}: {}",
            if reached { "killed" } else { "not reached" }
        );
        // The first kill of the forget, repack and index steps must happen,
        // or the test proves nothing about them. (A later pass can finish
        // all remaining work, so the pack step is not always reached.)
        if must_reach.contains(&point) {
            assert!(
                reached,
                "gc never reached {point}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
    // A real kill -9 at a few moments too.
    for delay_ms in [50, 150, 400] {
        let mut child = v
            .command(&[
                "gc",
                "--group-by",
                "cluster",
                "--keep-last",
                "1",
                "--repack-below",
                "100",
                "--unindexed-min-age",
                "0s",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        child.wait().unwrap();
        check_ok(&v, &format!("kill -9 after {delay_ms} ms"));
        assert_eq!(v.records("latest", &b), want);
    }
    // The next gc finishes the job (including packs a kill left unlisted:
    // nothing runs now, so they need not age first).
    v.json(&[
        "gc",
        "--unindexed-min-age",
        "0",
        "--group-by",
        "cluster",
        "--keep-last",
        "1",
        "--repack-below",
        "100",
    ]);
    let again = v.json(&[
        "gc",
        "--unindexed-min-age",
        "0",
        "--group-by",
        "cluster",
        "--keep-last",
        "1",
        "--repack-below",
        "100",
    ]);
    assert_eq!(again["packs_to_delete"], 0, "{again}");
    assert_eq!(again["young_orphan_packs"], 0, "{again}");
    assert_eq!(again["packs_to_repack"], 0, "{again}");
    assert_eq!(again["orphan_packs"], 0, "{again}");
    check_ok(&v, "the end");
    assert_eq!(v.records("latest", &b), want);
}

/// A snapshot running while gc runs: gc waits for it (and it for gc), both
/// finish, and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_and_gc_at_the_same_time_lose_nothing() {
    let (v, a, b, _) = two_snapshots(&["--pack-size-mib", "1"]).await;
    let big = unique_topic("gcbig");
    create_topic(Cluster::Source, &big, 4, &[]).await;
    produce_bulk(Cluster::Source, &big, 4, 60_000, 1024, 24).await;
    // gc starts while the snapshot is mid-flight.
    let snap = v.snapshot_in_flight(&big, &["--json"], 2 << 20);
    let gc = v
        .command(&[
            "gc",
            "--group-by",
            "cluster",
            "--keep-last",
            "1",
            "--repack-below",
            "100",
            "--json",
        ])
        .output()
        .unwrap();
    let gc_err = String::from_utf8_lossy(&gc.stderr);
    assert!(gc.status.success(), "{gc_err}");
    // Proof that the two overlapped: gc found the snapshot's lock and waited.
    assert!(
        gc_err.contains("waiting for") && gc_err.contains("snapshot"),
        "gc did not wait for the running snapshot: {gc_err}"
    );

    let s = snap.wait_with_output().unwrap();
    assert!(s.status.success(), "{}", String::from_utf8_lossy(&s.stderr));
    check_ok(&v, "after snapshot and gc");
    assert_eq!(
        v.records("latest", &big),
        consume_all(Cluster::Source, &big, 4)
    );

    // And a snapshot that starts while gc holds the vault waits for it.
    let storage = v.storage();
    let lock = ObjectName::new(Dir::Locks, "exclusive-test");
    let body = format!(
        r#"{{"kind":"exclusive","command":"gc","host":"{}","pid":{},"time_ms":{}}}"#,
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap()
            .trim(),
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );
    // The object header of docs/format.md: KVLT, kind 6 (lock), version 1.
    assert!(
        storage
            .put_if_absent(&lock, &[&b"KVLT\x06\x01"[..], body.as_bytes()].concat())
            .unwrap()
    );
    produce(
        Cluster::Source,
        &a,
        &[TestRecord::new(0, Some(b"late"), Some(b"x"))],
    )
    .await;
    let mut waiting = v
        .command(&[
            "snapshot",
            "--brokers",
            &Cluster::Source.brokers(),
            "--topics",
            &a,
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        waiting.try_wait().unwrap().is_none(),
        "the snapshot ignored gc's lock"
    );
    storage.delete(&lock).unwrap();
    let out = waiting.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("waiting for"));
    let _ = b;
}

/// Each kind of damage is found, named, and tied to the snapshot it breaks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_finds_each_kind_of_damage() {
    let (v, _, _, _) = two_snapshots(&["--pack-size-mib", "1"]).await;
    check_ok(&v, "a healthy vault");
    type Damage = fn(&TestVault);
    let cases: Vec<(&str, Damage, bool, &str)> = vec![
        (
            "a deleted pack",
            |d| d.storage().delete(&d.objects(Dir::Packs)[0]).unwrap(),
            false,
            "is missing",
        ),
        (
            "a truncated pack",
            |d| {
                let (s, p) = (d.storage(), &d.objects(Dir::Packs)[0]);
                let bytes = s.get(p).unwrap();
                overwrite(s.as_ref(), p, &bytes[..bytes.len() / 2]);
            },
            false,
            "truncated",
        ),
        (
            "a flipped byte",
            |d| {
                let (s, p) = (d.storage(), &d.objects(Dir::Packs)[0]);
                let mut bytes = s.get(p).unwrap();
                let i = bytes.len() / 3;
                bytes[i] ^= 0x01;
                overwrite(s.as_ref(), p, &bytes);
            },
            true,
            "pack",
        ),
        (
            "a missing index object",
            |d| d.storage().delete(&d.objects(Dir::Index)[0]).unwrap(),
            false,
            "repair index",
        ),
    ];
    for (what, damage, needs_read, expect) in cases {
        let d = v.copy();
        damage(&d);
        let mut args = vec!["check", "--json"];
        if needs_read {
            args.push("--read-data");
        }
        let o = d.run(&args);
        assert_eq!(o.status.code(), Some(3), "{what}: check did not fail");
        let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(r["ok"], false);
        let problems = r["problems"].to_string();
        assert!(problems.contains(expect), "{what}: {problems}");
        // A missing index object breaks no snapshot: the packs' trailers
        // still say where every chunk is, and restore reads them.
        let breaks = expect != "repair index";
        assert_eq!(
            !r["affected_snapshots"].as_array().unwrap().is_empty(),
            breaks,
            "{what}: affected snapshots: {r}"
        );
    }
}

/// With a data horizon, a new snapshot leaves out the old records (whole
/// chunks from the start of each partition), and gc frees them once no
/// kept snapshot holds them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_horizon_drops_old_records_and_gc_frees_them() {
    let topic = unique_topic("horizon");
    create_topic(Cluster::Source, &topic, 1, &[]).await;
    // 3000 records from 2023, then 200 from now.
    produce_bulk(Cluster::Source, &topic, 1, 3000, 1024, 31).await;
    let fresh: Vec<TestRecord> = (0..200)
        .map(|i| {
            TestRecord::new(
                0,
                Some(format!("new{i}").as_bytes()),
                Some(&[b'n'; 1024][..]),
            )
        })
        .collect();
    produce(Cluster::Source, &topic, &fresh).await;

    // 64 KiB chunks (256 KiB at most) bound what the straddling chunk keeps.
    let v = TestVault::init_with(&["--data-horizon", "30d", "--avg-chunk-kib", "64"]);
    let all = v.json(&[
        "snapshot",
        "--brokers",
        &Cluster::Source.brokers(),
        "--topics",
        &topic,
        "--data-horizon",
        "none",
    ]);
    assert_eq!(all["records_total"], 3200);
    // The vault's own horizon applies to the next snapshot.
    let cut = v.snapshot(&[&topic]);
    let kept = v.records("latest", &topic);
    let new_kept = kept
        .iter()
        .filter(|r| r.key.as_deref().is_some_and(|k| k.starts_with(b"new")))
        .count();
    assert_eq!(new_kept, 200, "every record inside the horizon stays");
    let old_kept = kept.len() - new_kept;
    // At most the one chunk that straddles the horizon (chunks hold at most 256 KiB).
    assert!(old_kept <= 256, "{old_kept} old records kept: {cut}");
    assert!(cut["records_total"].as_u64().unwrap() < 500);

    let g = v.json(&[
        "gc",
        "--group-by",
        "cluster",
        "--keep-last",
        "1",
        "--unindexed-min-age",
        "0s",
    ]);
    assert!(
        g["bytes_freed"].as_i64().unwrap() > 1_000_000,
        "the old records' chunks were not freed: {g}"
    );
    check_ok(&v, "after gc past the horizon");
    assert_eq!(v.records("latest", &topic), kept);
}
