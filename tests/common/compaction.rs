//! Topics the source cluster's log cleaner compacts while a test waits.

use std::time::Duration;

use super::*;

/// A one-partition topic on the source that the log cleaner compacts
/// quickly, filled with `rounds` overwrites of `keys` keys (`key{k}` =
/// `r{round}`). Pass it to [`compact`] to wait for the cleaner.
pub async fn compactable_topic(name: &str, rounds: usize, keys: usize) {
    create_topic(
        Cluster::Source,
        name,
        1,
        &[
            ("cleanup.policy", "compact"),
            ("segment.ms", "100"),
            ("min.cleanable.dirty.ratio", "0.001"),
            ("delete.retention.ms", "86400000"),
        ],
    )
    .await;
    let mut recs = Vec::new();
    for round in 0..rounds {
        for k in 0..keys {
            recs.push(TestRecord::new(
                0,
                Some(format!("key{k}").as_bytes()),
                Some(format!("r{round}").as_bytes()),
            ));
        }
    }
    produce(Cluster::Source, name, &recs).await;
}

/// Waits until the source cluster's log cleaner has compacted `topic`
/// (partition 0) below `below` records and settled; returns what is left.
/// The topic needs a small `segment.ms`; a record keyed `roll` is produced
/// every half second to roll segments.
pub async fn compact(topic: &str, below: usize) -> Vec<TestRecord> {
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        produce(
            Cluster::Source,
            topic,
            &[TestRecord::new(0, Some(b"roll"), Some(b"x"))],
        )
        .await;
        if consume_all(Cluster::Source, topic, 1).len() < below {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the log cleaner never compacted {topic}"
        );
    }
    // With no more writes the cleaner settles; wait until two reads agree.
    let mut want = consume_all(Cluster::Source, topic, 1);
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let again = consume_all(Cluster::Source, topic, 1);
        if again == want {
            return want;
        }
        want = again;
        assert!(
            std::time::Instant::now() < deadline,
            "the log cleaner never settled on {topic}"
        );
    }
}
