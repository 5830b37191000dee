use super::*;

pub fn sample() -> SnapshotManifest {
    SnapshotManifest {
        time_ms: 1_795_000_000_000,
        parent: Some(ObjectId([9; 32])),
        source: "p9kxO-TTRQaFndOb8pCP3Q".into(),
        source_cluster_id: "p9kxO-TTRQaFndOb8pCP3Q".into(),
        selection: Selection {
            topics: vec![],
            regex: Some("ord.*".into()),
            exclude: Some("orders-tmp".into()),
        },
        hostname: "backup-host".into(),
        tags: vec!["nightly".into()],
        read_committed: true,
        topics: vec![TopicSnapshot {
            name: "orders".into(),
            topic_id: Some(TopicId([7; 16])),
            replication_factor: 3,
            configs: vec![("cleanup.policy".into(), "compact".into())],
            partitions: vec![
                PartitionSnapshot {
                    partition: 0,
                    log_start_offset: 0,
                    end_offset: 0,
                    root: None,
                },
                PartitionSnapshot {
                    partition: 1,
                    log_start_offset: 5,
                    end_offset: 100,
                    root: Some(TreeRoot {
                        id: ChunkId([4; 32]),
                        level: 1,
                        summary: Summary {
                            first_offset: 5,
                            last_offset: 99,
                            records: 90,
                            bytes: 9000,
                            min_ts: -1,
                            max_ts: 77,
                        },
                    }),
                },
            ],
        }],
        groups: vec![GroupSnapshot {
            group_id: "billing".into(),
            protocol_type: "consumer".into(),
            state: "Empty".into(),
            offsets: vec![GroupOffset {
                topic: "orders".into(),
                partition: 1,
                offset: 42,
                metadata: Some("".into()),
                leader_epoch: Some(0),
            }],
        }],
        estate: Some(crate::estate::tests::sample()),
        stats: SnapshotStats {
            records_read: 90,
            bytes_read: 9000,
            bytes_added: 3000,
            chunks_added: 2,
            duration_ms: 1500,
        },
    }
}

#[test]
fn round_trips() {
    let m = sample();
    assert_eq!(SnapshotManifest::decode(&m.encode()).unwrap(), m);
    assert_eq!(m.total_records(), 90);
}

#[test]
fn truncations_fail() {
    let b = sample().encode();
    for n in 0..b.len() {
        assert!(SnapshotManifest::decode(&b[..n]).is_err());
    }
}

#[test]
fn an_empty_source_or_an_unknown_version_is_refused() {
    let mut m = sample();
    m.source = String::new();
    assert!(SnapshotManifest::decode(&m.encode()).is_err());
    assert!(SnapshotManifest::decode_version(4, &sample().encode()).is_err());
    assert!(SnapshotManifest::decode_version(0, &sample().encode()).is_err());
}

#[test]
fn no_estate_and_an_estate_differ() {
    let mut m = sample();
    m.estate = None;
    let back = SnapshotManifest::decode(&m.encode()).unwrap();
    assert_eq!(back.estate, None);
    m.estate = Some(crate::estate::ClusterEstate::not_read("no authorizer"));
    assert_eq!(SnapshotManifest::decode(&m.encode()).unwrap(), m);
}
