//! A full disk in the middle of a snapshot and of a gc: each fails with
//! the operating system's "no space left" error, commits nothing half
//! written, and the vault stays readable; with space again, both succeed.
//! The disk is a storage wrapper that refuses writes past a byte budget, as
//! a full file system would (no root or tmpfs needed).

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{
    Cluster, TestVault, consume_all, create_topic, open_repo, produce_bulk, unique_topic,
};
use vault::kafka::{KafkaOptions, TopicSelection};
use vault::lock::{LockKind, VaultLock};
use vault::repository::Indexed;
use vault::snapshot::{SnapshotOptions, SnapshotPlan, SnapshotRequest};
use vault::storage::local::LocalDir;
use vault::storage::{Hooked, Op};
use vault::{Error, Repository, Result};

/// A local vault directory on a disk with `free` bytes free: a write that
/// does not fit fails as a full file system's does.
fn full_disk(root: &std::path::Path, free: u64) -> Hooked<LocalDir> {
    let left = AtomicU64::new(free);
    let root = root.to_path_buf();
    Hooked::new(Arc::new(LocalDir::open(&root)), move |op: &Op<'_>| {
        let Op::PutIfAbsent { name, data } = *op else {
            return Ok(());
        };
        let need = data.len() as u64;
        let ok = left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |l| l.checked_sub(need))
            .is_ok();
        if !ok {
            return Err(Error::io(
                format!("writing {name}"),
                root.join(name.path()),
                std::io::Error::from_raw_os_error(28), // ENOSPC
            ));
        }
        Ok(())
    })
}

fn open_on(v: &TestVault, free: u64) -> Repository<Indexed> {
    let disk = full_disk(&v.local_path(), free);
    let pass = vault::password::read_password_file(&v.password_file).unwrap();
    open_repo(Arc::new(disk), &pass, &v.cache.join("full-disk")).unwrap()
}

async fn snapshot(repo: &Repository<Indexed>, topic: &str) -> Result<()> {
    let kafka = KafkaOptions::new(Cluster::Source.brokers());
    let request = SnapshotRequest {
        selection: TopicSelection::topics(&[topic]),
        read_committed: true,
        source: None,
    };
    let plan = SnapshotPlan::make(repo, &kafka, &request).await?;
    let mut source = vault::snapshot::KafkaSource::new(&kafka, true)?;
    let opts = SnapshotOptions {
        tags: vec![],
        workers: 2,
        stall_timeout: Duration::from_secs(60),
        progress: None,
        data_horizon_ms: None,
        partitions_per_pass: None,
    };
    // The lock lives beside the full disk, as another process's would.
    let lock = VaultLock::acquire(
        Arc::new(LocalDir::open(lock_dir(repo))),
        LockKind::Shared,
        "snapshot",
        Duration::from_secs(10),
    )?;
    tokio::task::block_in_place(|| vault::snapshot::execute(repo, &plan, &opts, &lock, &mut source))
        .map(|_| ())
}

/// The vault directory behind a repository opened by [`open_on`].
fn lock_dir(repo: &Repository<Indexed>) -> std::path::PathBuf {
    std::path::PathBuf::from(repo.storage().location())
}

fn no_space(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if source.raw_os_error() == Some(28))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_loudly_and_leaves_the_vault_whole() {
    let topic = unique_topic("fulldisk");
    create_topic(Cluster::Source, &topic, 4, &[]).await;
    produce_bulk(Cluster::Source, &topic, 4, 8000, 1024, 41).await;
    // Small packs of small chunks, so that later the first snapshot's dead
    // tree nodes share a pack with live chunks and gc has a repack to do:
    // with 256 KiB chunks a 1 MiB pack holds a handful, and the tree nodes
    // may land in a pack of their own (vaults' chunkers are keyed at random).
    let v = TestVault::init_with(&["--pack-size-mib", "1", "--avg-chunk-kib", "64"]);

    // The disk fills up after about 2 MiB of an ~5 MiB snapshot.
    let e = snapshot(&open_on(&v, 2 << 20), &topic).await.unwrap_err();
    assert!(no_space(&e), "not the disk's error: {e}");
    assert!(e.to_string().contains("No space left on device"), "{e}");
    assert!(
        v.objects(vault::storage::Dir::Snapshots).is_empty(),
        "a snapshot was committed"
    );
    let o = v.run(&["check", "--read-data"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // With space again the snapshot completes, reusing what was written.
    let s = v.snapshot(&[&topic]);
    assert_eq!(s["records_read"], 8000);
    assert_eq!(
        v.records("latest", &topic),
        consume_all(Cluster::Source, &topic, 4)
    );

    // gc that needs to write (repacking) on a full disk fails before it
    // deletes anything a kept snapshot needs.
    produce_bulk(Cluster::Source, &topic, 4, 2000, 1024, 42).await;
    v.snapshot(&[&topic]);
    let want = v.records("latest", &topic);
    let repo = open_on(&v, 0);
    let policy = vault::gc::KeepPolicy::from(vault::gc::KeepRules {
        last: 1,
        ..Default::default()
    });
    let opts = vault::gc::GcOptions {
        repack_below: 1.0,
        // Nothing else writes: the packs just written may go at once.
        unindexed_min_age: Duration::ZERO,
        ..Default::default()
    };
    let plan = vault::gc::GcPlan::make(&repo, &policy, &opts, None, None).unwrap();
    let lock = VaultLock::acquire(
        Arc::new(LocalDir::open(v.local_path())),
        LockKind::Exclusive,
        "gc",
        Duration::from_secs(10),
    )
    .unwrap();
    assert!(
        !plan.repack.is_empty(),
        "the test needs gc to have packs to repack"
    );
    let e = vault::gc::execute(&repo, &plan, &lock).unwrap_err();
    drop(lock);
    assert!(no_space(&e), "not the disk's error: {e}");
    drop(repo);
    let o = v.run(&["check", "--read-data"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(v.records("latest", &topic), want);
    // And with space it finishes.
    let g = v.json(&[
        "gc",
        "--group-by",
        "cluster",
        "--keep-last",
        "1",
        "--repack-below",
        "100",
    ]);
    assert!(g["bytes_freed"].as_i64().unwrap() >= 0, "{g}");
    assert_eq!(v.records("latest", &topic), want);
}
