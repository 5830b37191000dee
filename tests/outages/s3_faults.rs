//! Seeded fault schedules on a real S3 server (docs/reliability.md § A
//! storage that fails on purpose): moto's fault controls
//! (`scripts/s3_server.py`) fail requests at a seeded rate, either before
//! they reach the store (`error`) or after they landed (`lost-reply`: the
//! object is written, the client sees a 500). Under each schedule a
//! snapshot, a restore, gc and check run through the real binary; then,
//! with the faults off, the vault must be whole: `check --read-data`
//! clean, every snapshot reads back exactly the source's records below
//! its cut, the tagged first snapshot is still there, and the restore
//! (run again if it failed) put every record on the target once.
//!
//! `KVAULT_CHAOS_S3_SCHEDULES` (default 2) schedules per kind, from seed
//! `KVAULT_CHAOS_SEED` (default 1); `scripts/chaos` runs more.

use crate::common;
use crate::object_storage::{Restore, faults, http_get};
use crate::serial;
use common::{
    Backend, Cluster, TestRecord, TestVault, consume_all, content, create_topic, produce_bulk,
    stderr, unique_topic,
};

const PARTITIONS: i32 = 2;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The records of `source` below the cut of snapshot `id`.
fn below_cut(v: &TestVault, id: &str, source: &[TestRecord]) -> Vec<TestRecord> {
    let repo = v.open();
    let m = repo
        .read_snapshot(&repo.resolve_snapshot(id).unwrap())
        .unwrap();
    let cut: Vec<(i32, i64)> = m.topics[0]
        .partitions
        .iter()
        .map(|p| (i32::try_from(p.partition).unwrap(), p.end_offset))
        .collect();
    source
        .iter()
        .filter(|r| {
            cut.iter()
                .any(|(p, end)| *p == r.partition && r.offset < *end)
        })
        .cloned()
        .collect()
}

fn ids(v: &TestVault) -> Vec<String> {
    v.json(&["snapshots"])
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_s3_faults_lose_nothing() {
    let _turn = serial();
    let _restore = Restore;
    let schedules = env_u64("KVAULT_CHAOS_S3_SCHEDULES", 2);
    let first = env_u64("KVAULT_CHAOS_SEED", 1);
    let topic = unique_topic("s3-faults");
    create_topic(Cluster::Source, &topic, PARTITIONS, &[]).await;
    produce_bulk(Cluster::Source, &topic, PARTITIONS, 600, 400, first).await;
    let v = TestVault::init_on(
        Backend::S3,
        &["--pack-size-mib", "1", "--avg-chunk-kib", "4"],
    );
    let brokers = Cluster::Source.brokers();
    let target_brokers = Cluster::Target.brokers();
    let s0 = v.json(&[
        "snapshot",
        "--brokers",
        &brokers,
        "--topics",
        &topic,
        "--tag",
        "first",
    ])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let s0_records = content(&v.records(&s0, &topic));
    let mut problems = Vec::new();
    for kind in ["error", "lost-reply"] {
        let (mut injected, mut ok, mut failed, mut lost) = (0u64, 0u64, 0u64, 0u64);
        for seed in first..first + schedules {
            produce_bulk(Cluster::Source, &topic, PARTITIONS, 80, 400, seed * 31).await;
            let source = consume_all(Cluster::Source, &topic, PARTITIONS);
            // 5 to 25% of requests fail: enough to exhaust some retries.
            let rate = 0.05 + (seed % 5) as f64 * 0.05;
            let lost_reply = if kind == "lost-reply" {
                "&lost_reply=1&methods=PUT,POST,DELETE"
            } else {
                ""
            };
            faults(&format!(
                "count=1000000&status=500&rate={rate}&seed={seed}{lost_reply}"
            ));
            let plan = format!("{kind} rate {rate} seed {seed}");
            // Few retries: the faults must get through to vault, not only
            // to the client's retry loop.
            let retries = (seed % 3).to_string();
            let faulted = |args: &[&str]| {
                v.command(args)
                    .env("KVAULT_STORAGE_MAX_RETRIES", &retries)
                    .output()
                    .unwrap()
            };
            let snap = faulted(&[
                "snapshot",
                "--brokers",
                &brokers,
                "--topics",
                &topic,
                "--json",
            ]);
            let target = format!("{topic}-{kind}-{seed}");
            let rename = format!("{topic}={target}");
            let restore_args = [
                "restore",
                "--snapshot-id",
                &s0,
                "--brokers",
                &target_brokers,
                "--topics",
                &topic,
                "--rename",
                &rename,
                "--json",
            ];
            let restore = faulted(&restore_args);
            let gc = faulted(&[
                "gc",
                "--keep-last",
                "2",
                "--keep-tag",
                "first",
                // Nothing else writes: gc deletes and repacks under the
                // faults too, not only forgets.
                "--unindexed-min-age",
                "0s",
            ]);
            let check = faulted(&["check", "--read-data"]);
            injected += http_get("/__vault_test__/faults?report=1")
                .trim()
                .parse::<u64>()
                .unwrap_or(0);
            faults("count=0");
            for o in [&snap, &restore, &gc, &check] {
                if o.status.success() {
                    ok += 1;
                } else {
                    failed += 1;
                    let err = stderr(o);
                    if err.contains("panicked") || err.trim().is_empty() {
                        problems.push(format!(
                            "{plan}: a command failed without a clear error: {err}"
                        ));
                    }
                }
            }

            // Faults off: the vault is whole.
            let o = v.run(&["check", "--read-data"]);
            if !o.status.success() {
                problems.push(format!("{plan}: check --read-data: {}", stderr(&o)));
            }
            let now = ids(&v);
            if !now.contains(&s0) {
                problems.push(format!("{plan}: the tagged snapshot is gone"));
            }
            if snap.status.success() {
                let id: serde_json::Value = serde_json::from_slice(&snap.stdout).unwrap();
                if !now.iter().any(|i| i == id["id"].as_str().unwrap()) {
                    problems.push(format!(
                        "{plan}: the newest snapshot, reported made, is gone"
                    ));
                }
            }
            for id in &now {
                let want = below_cut(&v, id, &source);
                let got = v.records(id, &topic);
                if want != got {
                    lost += want.len().abs_diff(got.len()) as u64;
                    problems.push(format!("{plan}: snapshot {id} reads back wrong"));
                }
            }
            if !restore.status.success() {
                let again = v.run(&restore_args);
                if !again.status.success() {
                    problems.push(format!(
                        "{plan}: the restore run again failed: {}",
                        stderr(&again)
                    ));
                }
            }
            let restored = content(&consume_all(Cluster::Target, &target, PARTITIONS));
            let mut want = s0_records.clone();
            let mut got = restored;
            want.sort_by_key(|r| r.partition);
            got.sort_by_key(|r| r.partition);
            if want != got {
                lost += want.len().abs_diff(got.len()) as u64;
                problems.push(format!(
                    "{plan}: the restore put {} records on the target, the snapshot holds {}",
                    got.len(),
                    want.len()
                ));
            }
        }
        println!(
            "\nchaos s3 faults {kind:<10} schedules {schedules:>3}  requests failed {injected:>5}  commands ok {ok:>3} failed {failed:>3}  records lost {lost}"
        );
    }
    assert!(problems.is_empty(), "{problems:#?}");
}
