//! Looking inside snapshots without a cluster: `vault ls`, `vault cat`
//! (every field kind, bytes that are not UTF-8, offset and time seeks, a
//! key, kcat's format tokens) and `vault diff`.

use crate::common;

use common::{
    Cluster, TestRecord, TestVault, commit_group, create_topic, field_kind_records, produce,
    unique_topic,
};

fn lines(v: &TestVault, args: &[&str]) -> Vec<serde_json::Value> {
    let o = v.run(args);
    assert!(
        o.status.success(),
        "vault {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ls_cat_and_diff_show_what_snapshots_hold() {
    let topic = unique_topic("inspect");
    create_topic(Cluster::Source, &topic, 4, &[]).await;
    // Over half the default maximum chunk (1 MiB): a value chunk, so cat
    // reads an external value.
    let big: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
    let mut first = field_kind_records(&big);
    first.push(
        TestRecord::new(2, Some(&[0xff, 0xfe]), Some(&[0x80, 0x81, 0x82]))
            .header("bin", Some(&[0xc3, 0x28]))
            .at(1_700_000_000_000),
    );
    produce(Cluster::Source, &topic, &first).await;
    let group = unique_topic("inspect-group");
    commit_group(Cluster::Source, &group, &topic, &[(0, 2)]);
    let v = TestVault::init();
    let a = v.snapshot(&[&topic]);
    let a_id = a["id"].as_str().unwrap();

    // ls: partitions, offsets, records, bytes, groups.
    let ls = v.json(&["ls", a_id, "--topic", &topic]);
    let t = &ls["topics"][0];
    assert_eq!(t["topic"], topic.as_str(), "{ls}");
    assert_eq!(t["records"], first.len() as u64, "{ls}");
    assert_eq!(t["partitions"].as_array().unwrap().len(), 4, "{ls}");
    assert_eq!(t["partitions"][0]["records"], 6, "{ls}");
    assert_eq!(t["partitions"][0]["first_offset"], 0, "{ls}");
    assert_eq!(t["partitions"][2]["records"], 1, "{ls}");
    assert_eq!(t["partitions"][3]["min_timestamp"], 1, "{ls}");
    assert_eq!(
        t["group_offsets"][0],
        serde_json::json!([group, 0, 2]),
        "{ls}"
    );
    let bad = v.run(&["ls", a_id, "--topic", "no-such-topic"]);
    assert_eq!(bad.status.code(), Some(2));

    // cat: every record, every field kind, as JSON Lines.
    let all = lines(&v, &["cat", a_id, "--topic", &topic]);
    assert_eq!(all.len(), first.len());
    let rec0 = &all[0];
    assert_eq!(rec0["partition"], 0);
    assert_eq!(rec0["offset"], 0);
    assert_eq!(rec0["key"], "k");
    assert_eq!(rec0["value"], "v");
    assert_eq!(rec0["timestamp"], 1_600_000_000_000i64);
    assert_eq!(rec0["timestamp_type"], "create_time");
    assert_eq!(
        rec0["headers"],
        serde_json::json!([{"key": "dup", "value": "1"}, {"key": "dup", "value": "2"}, {"key": "null", "value": null}])
    );
    assert!(
        all.iter()
            .any(|r| r["key"].is_null() && r["value"] == "null key")
    );
    assert!(
        all.iter()
            .any(|r| r["key"] == "" && r["value"] == "empty key")
    );
    assert!(
        all.iter()
            .any(|r| r["key"] == "tombstone" && r["value"].is_null())
    );
    let binary = all.iter().find(|r| r["partition"] == 2).unwrap();
    assert_eq!(binary["key"], serde_json::json!({"base64": "//4="}));
    assert_eq!(binary["value"], serde_json::json!({"base64": "gIGC"}));
    assert_eq!(
        binary["headers"][0]["value"],
        serde_json::json!({"base64": "wyg="})
    );
    let large = all.iter().find(|r| r["key"] == "big").unwrap();
    assert_eq!(
        large["value"]["base64"].as_str().unwrap().len(),
        800_000,
        "a large value, whole"
    );

    // kcat's format tokens.
    let o = v.run(&[
        "cat",
        a_id,
        "--topic",
        &topic,
        "--partition",
        "0",
        "--limit",
        "1",
        "--format",
        "%t|%p|%o|%k|%s|%K|%S|%T|%h\\n",
    ]);
    assert!(o.status.success());
    assert_eq!(
        String::from_utf8(o.stdout).unwrap(),
        format!("{topic}|0|0|k|v|1|1|1600000000000|dup=1,dup=2,null=\n")
    );

    // More records, later timestamps; a group moves.
    let more: Vec<TestRecord> = (0..3000i64)
        .map(|i| {
            TestRecord::new(
                3,
                Some(format!("key-{}", i % 50).as_bytes()),
                Some(format!("value {i}").as_bytes()),
            )
            .at(1_750_000_000_000 + i * 1000)
        })
        .collect();
    produce(Cluster::Source, &topic, &more).await;
    commit_group(Cluster::Source, &group, &topic, &[(3, 1500)]);
    let b = v.snapshot(&[&topic]);
    let b_id = b["id"].as_str().unwrap();

    // Seek by offset: the one record at offset 2501 of partition 3 (its
    // first record is the old one at offset 0).
    let one = lines(
        &v,
        &[
            "cat",
            b_id,
            "--topic",
            &topic,
            "--partition",
            "3",
            "--from-offset",
            "2501",
            "--to-offset",
            "2502",
        ],
    );
    assert_eq!(one.len(), 1);
    assert_eq!(one[0]["offset"], 2501);
    assert_eq!(one[0]["value"], "value 2500");
    // Seek by time: [t, t + 3 s) holds three records.
    let by_time = lines(
        &v,
        &[
            "cat",
            b_id,
            "--topic",
            &topic,
            "--from-time",
            "1750000100000",
            "--to-time",
            "2025-06-15T15:08:23Z",
        ],
    );
    let values: Vec<&str> = by_time
        .iter()
        .map(|r| r["value"].as_str().unwrap())
        .collect();
    assert_eq!(
        values,
        ["value 100", "value 101", "value 102"],
        "{by_time:?}"
    );
    // A key.
    let keyed = lines(
        &v,
        &[
            "cat",
            b_id,
            "--topic",
            &topic,
            "--partition",
            "3",
            "--key",
            "key-7",
        ],
    );
    assert_eq!(keyed.len(), 60);
    assert!(keyed.iter().all(|r| r["key"] == "key-7"));

    // diff: partition 3 grew by 3000 records, the others did not; the group moved.
    let d = v.json(&["diff", a_id, b_id]);
    let parts = d["partitions"].as_array().unwrap();
    let p3 = parts.iter().find(|p| p["partition"] == 3).unwrap();
    assert_eq!(p3["change"], "added", "{d}");
    assert_eq!(p3["added"], serde_json::json!([1, 3001]), "{d}");
    assert_eq!(p3["records_added"], 3000, "{d}");
    assert!(
        parts
            .iter()
            .filter(|p| p["partition"] != 3)
            .all(|p| p["change"] == "unchanged"),
        "{d}"
    );
    let moved = d["groups"].as_array().unwrap();
    assert_eq!(moved.len(), 1, "{d}");
    assert_eq!(moved[0]["partition"], 3, "{d}");
    assert!(moved[0]["from"].is_null(), "{d}");
    assert_eq!(moved[0]["to"], 1500, "{d}");

    // stats: both snapshots hold partition 0..2's records, stored once.
    let st = v.json(&["stats"]);
    assert_eq!(st["snapshots"], 2, "{st}");
    let t = &st["topics"][0];
    assert_eq!(t["snapshots"], 2, "{st}");
    let a_bytes = held_bytes(&v, a_id);
    let b_bytes = held_bytes(&v, b_id);
    assert_eq!(t["logical_bytes"], a_bytes + b_bytes, "{st}");
    assert_eq!(t["latest_logical_bytes"], b_bytes, "{st}");
    assert!(
        st["dedup_ratio"].as_f64().unwrap() > 1.0,
        "shared chunks count once: {st}"
    );
    assert!(st["compression_ratio"].as_f64().unwrap() > 1.0, "{st}");
    assert!(
        st["stored"]["sealed_bytes"].as_u64().unwrap() <= st["pack_bytes"].as_u64().unwrap(),
        "{st}"
    );
    assert_eq!(st["gc_would_free_bytes"], 0, "nothing is garbage yet: {st}");
    assert_eq!(st["per_snapshot"].as_array().unwrap().len(), 2, "{st}");
    let keep_one = v.json(&["stats", "--keep-last", "1"]);
    assert_eq!(keep_one["gc_would_forget"], 1, "{keep_one}");
}

/// The record bytes a snapshot holds, as `ls` says.
fn held_bytes(v: &TestVault, id: &str) -> u64 {
    v.json(&["ls", id])["topics"][0]["bytes"].as_u64().unwrap()
}
