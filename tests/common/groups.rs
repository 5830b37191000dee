//! Consumer group offsets, committed and read the way a real consumer does.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::*;

/// A client acting for `group` without joining it.
fn group_client(cluster: Cluster, group: &str) -> BaseConsumer {
    cluster
        .config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer")
}

/// Commits `offsets` (partition, offset) for `group` on `topic`, the way a
/// consumer that stopped there would have.
pub fn commit_group(cluster: Cluster, group: &str, topic: &str, offsets: &[(i32, i64)]) {
    commit_group_with_metadata(cluster, group, topic, offsets, None);
}

/// [`commit_group`] with the metadata string a client may commit along.
pub fn commit_group_with_metadata(
    cluster: Cluster,
    group: &str,
    topic: &str,
    offsets: &[(i32, i64)],
    metadata: Option<&str>,
) {
    use rdkafka::consumer::CommitMode;
    let c = group_client(cluster, group);
    let mut tpl = TopicPartitionList::new();
    for (p, o) in offsets {
        let mut e = tpl.add_partition(topic, *p);
        e.set_offset(Offset::Offset(*o)).unwrap();
        if let Some(m) = metadata {
            e.set_metadata(m);
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while let Err(e) = c.commit(&tpl, CommitMode::Sync) {
        assert!(std::time::Instant::now() < deadline, "commit {group}: {e}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The offset `group` has committed on `topic`/`partition`, if any.
pub fn committed(cluster: Cluster, group: &str, topic: &str, partition: i32) -> Option<i64> {
    committed_with_metadata(cluster, group, topic, partition).map(|(o, _)| o)
}

/// The offset and metadata `group` has committed on `topic`/`partition`.
pub fn committed_with_metadata(
    cluster: Cluster,
    group: &str,
    topic: &str,
    partition: i32,
) -> Option<(i64, String)> {
    let c = group_client(cluster, group);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    let got = c
        .committed_offsets(tpl, Duration::from_secs(30))
        .expect("committed offsets");
    let e = &got.elements()[0];
    match e.offset() {
        Offset::Offset(o) => Some((o, e.metadata().to_string())),
        _ => None,
    }
}
