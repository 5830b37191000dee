//! Damage that cannot spread: one bad index object, pack or key file makes
//! `check` say so, and blocks nothing that does not need it.

use crate::common;

use common::{
    Cluster, TestVault, consume_all, content, create_topic, flip_byte, overwrite, produce_bulk,
    stderr, unique_topic,
};
use vault::storage::{Dir, ObjectName};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_damaged_index_object_blocks_nothing_else() {
    let topic = unique_topic("damaged-index");
    create_topic(Cluster::Source, &topic, 2, &[]).await;
    // Enough records for several index objects (one per 4 packs of 1 MiB),
    // whatever sizes the vault's random chunker key gives its chunks.
    produce_bulk(Cluster::Source, &topic, 2, 24000, 1024, 51).await;
    let v = TestVault::init_with(&["--pack-size-mib", "1"]);
    v.snapshot(&[&topic]);
    let want = consume_all(Cluster::Source, &topic, 2);

    // A copy with a fresh cache, as on a new host, and one flipped byte.
    let d = v.copy();
    assert!(d.objects(Dir::Index).len() > 1);
    flip_byte(d.storage().as_ref(), &d.objects(Dir::Index)[0]);

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
    let storage = d.storage();
    let junk_pack = ObjectName::new(Dir::Packs, "ee".repeat(16));
    assert!(storage.put_if_absent(&junk_pack, b"not a pack").unwrap());
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
    assert!(storage.exists(&junk_pack).unwrap());
    let o = d.run(&["check", "--json"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(r["problems"].to_string().contains(&"ee".repeat(16)), "{r}");
    // repair cannot mend it and says so (exit 3); the operator removes it.
    let o = d.run(&["repair", "index", "--json"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(storage.exists(&junk_pack).unwrap());
    storage.delete(&junk_pack).unwrap();
    let o = d.run(&["check", "--read-data"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(d.records("latest", &topic).len(), want.len());
}

#[test]
fn a_junk_key_file_locks_nobody_out() {
    let v = TestVault::init();
    let junk = ObjectName::new(Dir::Keys, "0000junk");
    assert!(
        v.storage()
            .put_if_absent(&junk, b"KVLT\x02\x01garbage")
            .unwrap()
    );
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
    let storage = v.storage();
    let pack = common::unindexed_pack(&repo, storage.as_ref());
    let chunk = repo.keys().chunk_id(b"records of a snapshot still running");
    let cache = repo.index_cache();

    vault::check::run(&repo, Default::default()).unwrap();
    assert!(!cache.contains(&chunk).unwrap(), "check left a dedup entry");
    assert!(
        cache.get(&chunk).unwrap().is_none(),
        "check left a read entry"
    );

    // A damaged index object: its packs are read from their trailers.
    let junk = ObjectName::new(Dir::Index, "ab".repeat(32));
    overwrite(storage.as_ref(), &junk, b"junk");
    let damaged = repo.sync_index().unwrap();
    assert_eq!(damaged.len(), 1);
    assert!(cache.get(&chunk).unwrap().is_some(), "found for reading");
    assert!(!cache.contains(&chunk).unwrap(), "but not for dedup");

    // gc deletes the pack as an old orphan; the next sync forgets it.
    storage.delete(&pack).unwrap();
    repo.sync_index().unwrap();
    assert!(cache.get(&chunk).unwrap().is_none());
}
