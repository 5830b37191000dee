//! A broker restart in the middle of `vault snapshot`: the snapshot waits
//! for the broker to come back and completes with every record; and a
//! snapshot right after a restart still finds every consumer group. This
//! test restarts the shared source cluster, so it lives in `tests/outages`
//! and takes its turn there.

use crate::common;

use std::path::Path;
use std::process::Command;

use crate::serial;
use common::{
    Cluster, TestVault, commit_group, consume_all, create_topic, produce_bulk, unique_topic,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_survives_a_broker_restart() {
    let _turn = serial();
    let topic = unique_topic("restart");
    create_topic(Cluster::Source, &topic, 8, &[]).await;
    produce_bulk(Cluster::Source, &topic, 8, 150_000, 2048, 5).await;
    let groups: Vec<String> = (0..20).map(|i| unique_topic(&format!("rg{i}"))).collect();
    for (i, g) in (0i32..).zip(groups.iter()) {
        commit_group(Cluster::Source, g, &topic, &[(i % 8, 10 + i64::from(i))]);
    }
    let v = TestVault::init_with(&["--pack-size-mib", "1"]);
    let child = v.snapshot_in_flight(&topic, &["--stall-timeout", "90", "--json"], 1 << 20);
    // Looked up at run time: the binary may have been built from another checkout.
    let root = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf());
    let script = root.join("scripts/kafka");
    restart_source(&script);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the snapshot failed across the restart: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["records_read"], 150_000);
    assert_eq!(
        v.records("latest", &topic),
        consume_all(Cluster::Source, &topic, 8)
    );
    assert_eq!(s["consumer_groups"], 20, "{s}");

    // For a few seconds after a broker starts, Kafka lists no groups at all
    // (their coordinators are not serving yet), without an error. A
    // snapshot taken then must still capture every group.
    restart_source(&script);
    let after = v.snapshot(&[&topic]);
    assert_eq!(after["records_read"], 0, "{after}");
    assert_eq!(after["consumer_groups"], 20, "{after}");
}

fn restart_source(script: &Path) {
    let restart = Command::new(script)
        .args(["restart", "source"])
        .output()
        .unwrap();
    assert!(
        restart.status.success(),
        "restart failed: {}",
        String::from_utf8_lossy(&restart.stderr)
    );
}
