//! The progress record at a real estate's size.

use super::*;

/// The largest record a restore of a real estate writes: 10,000
/// partitions over 100 topics, 50 groups with a position in every one,
/// and large offsets. It must fit the progress topics' limit.
#[test]
fn a_ten_thousand_partition_record_fits_the_progress_topic() {
    let mut state = ProgressState {
        version: PROGRESS_VERSION,
        restore_id: "0123456789abcdef0123456789abcdef".into(),
        vault_id: "ab".repeat(32),
        snapshot_id: "cd".repeat(32),
        phase: Phase::Groups,
        transactions: 123_456,
        ..ProgressState::default()
    };
    for t in 0..100 {
        let topic = format!("orders.region-{t:03}.events-v2");
        state
            .target_topic_ids
            .insert(topic.clone(), "AAAAAAAAAAAAAAAAAAAAAA".into());
        for p in 0..100u32 {
            let key = partition_key(&topic, p);
            let base = 9_000_000_000i64 + i64::from(p) * 1_000_003;
            let translations = (0..50)
                .map(|g| (base + g * 7_919, base + g * 7_907))
                .collect();
            state.partitions.insert(
                key.clone(),
                PartitionProgress {
                    next_source_offset: base + 1_000_000,
                    records: 987_654_321,
                    bytes: 987_654_321_000,
                    last_target_offset: Some(base + 999_999),
                    translations,
                },
            );
            state.ends.insert(key, base + 1_000_000);
        }
    }
    let bytes = state.encode().len();
    let limit: usize = PROGRESS_MAX_MESSAGE_BYTES.parse().unwrap();
    assert!(
        bytes < limit / 2,
        "{bytes} bytes against a limit of {limit}"
    );
    // Far over the broker's default of 1 MiB: why the topics set their own.
    assert!(bytes > 1_048_588, "{bytes}");
    assert!(
        progress_topic_configs()
            .iter()
            .any(|(k, v)| k == "max.message.bytes" && v == PROGRESS_MAX_MESSAGE_BYTES)
    );
}
