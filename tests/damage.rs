//! Damage that cannot spread: one bad index object, pack or key file makes
//! `check` say so, and blocks nothing that does not need it.

mod common;

use common::{Cluster, TestVault, consume_all, content, create_topic, produce_bulk, unique_topic};

fn flip_byte(path: &std::path::Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x20;
    std::fs::write(path, bytes).unwrap();
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_damaged_index_object_blocks_nothing_else() {
    let topic = unique_topic("damaged-index");
    create_topic(Cluster::Source, &topic, 2, &[]).await;
    produce_bulk(Cluster::Source, &topic, 2, 8000, 1024, 51).await;
    let v = TestVault::init_with(&["--pack-size-mib", "1"]);
    v.snapshot(&[&topic]);
    let want = consume_all(Cluster::Source, &topic, 2);

    // A copy with a fresh cache, as on a new host, and one flipped byte.
    let d = v.copy();
    assert!(d.files("index").len() > 1);
    flip_byte(&d.files("index")[0]);

    // Restore still works: the packs' trailers stand in for the bad object.
    let target = unique_topic("damaged-index-dr");
    let rename = format!("{topic}={target}");
    let o = d.run(&[
        "restore",
        "--snapshot-id",
        "latest",
        "--brokers",
        &Cluster::Target.brokers(),
        "--rename",
        &rename,
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("damaged"),
        "the damage is reported: {}",
        stderr(&o)
    );
    assert_eq!(
        content(&consume_all(Cluster::Target, &target, 2)),
        content(&want)
    );

    // check names it (exit 3) and runs to the end.
    let o = d.run(&["check", "--json"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(r["problems"].to_string().contains("repair index"), "{r}");

    // gc will not delete anything on a partial index.
    let o = d.run(&["gc", "--keep-last", "1"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("repair index"));

    // repair rewrites the index from the packs; then all is well again.
    let r = d.json(&["repair", "index"]);
    assert_eq!(
        r["damaged_index_objects"].as_array().unwrap().len(),
        1,
        "{r}"
    );
    let o = d.run(&["check", "--read-data"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let g = d.json(&["gc", "--keep-last", "1"]);
    assert_eq!(g["snapshots"].as_array().unwrap().len(), 1, "{g}");

    // A junk file where a pack should be: reported and left alone.
    let junk_pack = d.path.join("packs/ee").join("ee".repeat(16));
    std::fs::create_dir_all(junk_pack.parent().unwrap()).unwrap();
    std::fs::write(&junk_pack, b"not a pack").unwrap();
    let s = d.run(&[
        "snapshot",
        "--brokers",
        &Cluster::Source.brokers(),
        "--topics",
        &topic,
        "--json",
    ]);
    assert!(s.status.success(), "{}", stderr(&s));
    assert!(stderr(&s).contains("left alone"), "{}", stderr(&s));
    assert!(junk_pack.exists());
    let o = d.run(&["check", "--json"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(r["problems"].to_string().contains(&"ee".repeat(16)), "{r}");
    // repair cannot mend it and says so (exit 3); the operator removes it.
    let o = d.run(&["repair", "index", "--json"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(junk_pack.exists());
    std::fs::remove_file(&junk_pack).unwrap();
    let o = d.run(&["check", "--read-data"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(d.records("latest", &topic).len(), want.len());
}

#[test]
fn a_junk_key_file_locks_nobody_out() {
    let v = TestVault::init();
    std::fs::write(v.path.join("keys").join("0000junk"), b"KVLT\x02\x01garbage").unwrap();
    let o = v.run(&["snapshots", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = v.run(&["check", "--json"]);
    assert_eq!(o.status.code(), Some(3));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(r["problems"].to_string().contains("0000junk"), "{r}");
}

/// What vault reads from pack trailers (for check, or around a damaged
/// index object) serves reads only: never dedup, and never past the run,
/// since gc may delete such a pack as an orphan without touching the
/// cache, and a snapshot that deduplicated against it would lose data.
#[test]
fn chunks_read_from_trailers_are_never_deduplicated_against() {
    let v = TestVault::init();
    let repo = v.open();
    let pack = common::unindexed_pack(&repo, &v.path, std::time::Duration::from_secs(7200));
    let chunk = repo.keys().chunk_id(b"records of a snapshot still running");
    let cache = repo.index_cache();

    vault::check::run(&repo, Default::default()).unwrap();
    assert!(!cache.contains(&chunk).unwrap(), "check left a dedup entry");
    assert!(
        cache.get(&chunk).unwrap().is_none(),
        "check left a read entry"
    );

    // A damaged index object: its packs are read from their trailers.
    std::fs::write(v.path.join("index").join("ab".repeat(32)), b"junk").unwrap();
    let damaged = repo.sync_index().unwrap();
    assert_eq!(damaged.len(), 1);
    assert!(cache.get(&chunk).unwrap().is_some(), "found for reading");
    assert!(!cache.contains(&chunk).unwrap(), "but not for dedup");

    // gc deletes the pack as an old orphan; the next sync forgets it.
    std::fs::remove_file(&pack).unwrap();
    repo.sync_index().unwrap();
    assert!(cache.get(&chunk).unwrap().is_none());
}
