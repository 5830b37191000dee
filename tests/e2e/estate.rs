//! The cluster estate beside the topics: every snapshot records the
//! cluster's ACLs, client quotas, SCRAM users and dynamic broker configs,
//! and `vault ls --metadata` shows them; a part the principal may not read
//! says so, never "none".

use crate::common;

use std::time::{Duration, Instant};

use common::{
    Cluster, SaslLogin, TestVault, create_topic, kafka_acls, kafka_tool, make_scram_user,
    unique_topic,
};
use serde_json::Value;

fn alter_config(cluster: Cluster, args: &[&str]) {
    let brokers = cluster.brokers();
    let mut all = vec![
        "kafka.admin.ConfigCommand",
        "--bootstrap-server",
        &brokers,
        "--alter",
    ];
    all.extend_from_slice(args);
    let o = kafka_tool(&all);
    assert!(
        o.status.success(),
        "kafka-configs {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn items<'a>(part: &'a Value, what: &str) -> &'a Vec<Value> {
    assert_eq!(part["read"], true, "{what} read: {part}");
    part["items"].as_array().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_snapshot_records_acls_quotas_users_and_broker_configs() {
    let topic = unique_topic("estate");
    create_topic(Cluster::Source, &topic, 2, &[("retention.ms", "86400000")]).await;
    let user = format!("{topic}-app");
    let prefix = format!("{topic}-group-");
    kafka_acls(
        Cluster::Source,
        &[
            "--add",
            "--allow-principal",
            &format!("User:{user}"),
            "--operation",
            "Read",
            "--topic",
            &topic,
        ],
    );
    kafka_acls(
        Cluster::Source,
        &[
            "--add",
            "--allow-principal",
            &format!("User:{user}"),
            "--operation",
            "Read",
            "--resource-pattern-type",
            "prefixed",
            "--group",
            &prefix,
        ],
    );
    alter_config(
        Cluster::Source,
        &[
            "--add-config",
            "producer_byte_rate=1048576,request_percentage=12.5",
            "--entity-type",
            "users",
            "--entity-name",
            &user,
        ],
    );
    let v = TestVault::init();
    make_scram_user(Cluster::Source, v.dir.path(), &user);

    v.snapshot(&[&topic]);
    let m = v.json(&["ls", "latest", "--metadata"]);
    assert_eq!(m["recorded"], true, "{m}");
    let t = &m["topics"][0];
    assert_eq!(
        (t["topic"].as_str(), t["partitions"].as_u64()),
        (Some(topic.as_str()), Some(2))
    );
    assert!(t["configs"].to_string().contains("86400000"), "{t}");

    let acls = items(&m["acls"], "ACLs");
    let ours: Vec<&Value> = acls
        .iter()
        .filter(|a| a["principal"] == format!("User:{user}"))
        .collect();
    assert_eq!(ours.len(), 2, "{acls:?}");
    assert!(ours.iter().any(|a| a["resource_type"] == "topic"
        && a["resource_name"] == topic
        && a["pattern_type"] == "literal"
        && a["operation"] == "read"
        && a["permission"] == "allow"));
    assert!(ours.iter().any(|a| a["resource_type"] == "group"
        && a["resource_name"] == prefix
        && a["pattern_type"] == "prefixed"));

    let quotas = items(&m["quotas"], "quotas");
    let q = quotas
        .iter()
        .find(|q| q["entity"] == serde_json::json!([format!("user={user}")]))
        .unwrap_or_else(|| panic!("no quota for {user}: {quotas:?}"));
    assert_eq!(
        q["values"],
        serde_json::json!([
            ["producer_byte_rate", 1048576.0],
            ["request_percentage", 12.5]
        ])
    );

    let users = items(&m["scram_users"], "SCRAM users");
    let u = users.iter().find(|u| u["user"] == user.as_str()).unwrap();
    assert_eq!(
        u["mechanisms"],
        serde_json::json!([["SCRAM-SHA-512", 4096]])
    );

    let configs = items(&m["broker_configs"], "broker configs");
    assert_eq!(configs[0]["scope"], "cluster default", "{configs:?}");
    assert!(
        configs.iter().any(|c| c["scope"] == "broker 1"),
        "{configs:?}"
    );

    // The words an operator reads say the same.
    let text = v.run(&["ls", "latest", "--metadata"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&format!("allow User:{user} topic:{topic} literal read")),
        "{text}"
    );
    assert!(
        text.contains(&format!("user={user}  producer_byte_rate=1048576")),
        "{text}"
    );

    for (pattern, resource, name) in [
        ("literal", "--topic", &topic),
        ("prefixed", "--group", &prefix),
    ] {
        kafka_acls(
            Cluster::Source,
            &[
                "--remove",
                "--allow-principal",
                &format!("User:{user}"),
                "--operation",
                "Read",
                "--resource-pattern-type",
                pattern,
                resource,
                name,
            ],
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_that_may_not_read_the_estate_records_not_read_with_why() {
    let topic = unique_topic("estate-denied");
    create_topic(Cluster::Source, &topic, 1, &[]).await;
    let v = TestVault::init();
    let user = format!("{topic}-backup");
    let login: SaslLogin = make_scram_user(Cluster::Source, v.dir.path(), &user);
    let principal = format!("User:{user}");
    let deny = |op: &str| {
        kafka_acls(
            Cluster::Source,
            &[
                op,
                "--deny-principal",
                &principal,
                "--operation",
                "Describe",
                "--operation",
                "DescribeConfigs",
                "--cluster",
            ],
        );
    };
    deny("--add");
    let mut args: Vec<String> = vec!["snapshot".into()];
    args.extend(login.args(Cluster::Source));
    args.extend(["--topics".into(), topic.clone()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // The ACL takes a moment to reach the broker's authorizer: until then
    // the snapshot reads the ACLs, and is dropped.
    let deadline = Instant::now() + Duration::from_secs(30);
    let m = loop {
        v.json(&args);
        let m = v.json(&["ls", "latest", "--metadata"]);
        if m["acls"]["read"] == false || Instant::now() > deadline {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    deny("--remove");
    assert_eq!(m["recorded"], true, "{m}");
    for part in ["acls", "scram_users", "broker_configs"] {
        assert_eq!(m[part]["read"], false, "{part}: {m}");
        assert!(m[part]["items"].as_array().unwrap().is_empty());
        let why = m[part]["not_read"].as_str().unwrap();
        assert!(why.contains("not authorized"), "{part}: {why}");
    }
    // vault asks for quotas itself, over PLAINTEXT only: it says so.
    let why = m["quotas"]["not_read"].as_str().unwrap();
    assert!(why.contains("SASL_SSL"), "{why}");
    // The words an operator reads say it too.
    let text = v.run(&["ls", "latest", "--metadata"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("ACLs: not read: not authorized"), "{text}");
}
