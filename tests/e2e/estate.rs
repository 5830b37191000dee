//! The cluster estate beside the topics: every snapshot records the
//! cluster's ACLs, client quotas, SCRAM users and dynamic broker configs,
//! and `vault ls --metadata` shows them; a part the principal may not read
//! says so, never "none".

use crate::common;

use std::time::{Duration, Instant};

use common::{
    Cluster, SaslLogin, TestVault, create_topic, kafka_acls, kafka_configs, kafka_tool_on,
    make_scram_user, unique_topic,
};
use serde_json::Value;

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
    kafka_configs(
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
    let _producer = ConfigCleanup::of_user(&user, "producer_byte_rate");
    let _request = ConfigCleanup::of_user(&user, "request_percentage");
    let v = TestVault::init();
    make_scram_user(Cluster::Source, v.dir.path(), &user);

    let principal = format!("User:{user}");
    let m = snapshot_until(&v, &topic, |m| {
        m["acls"]["items"]
            .as_array()
            .is_some_and(|a| a.iter().filter(|a| a["principal"] == principal).count() == 2)
            && has(m, "quotas", |q| {
                q["entity"] == serde_json::json!([format!("user={user}")])
            })
            && has(m, "scram_users", |u| u["user"] == user.as_str())
    })
    .await;
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
    // The cluster resource has ACLs already (scripts/kafka allows the SASL
    // user), so this user may do nothing on it; the DENY says so whatever
    // other ACLs there are. An authorizer takes a moment to see an ACL.
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
        assert!(
            m[part]["items"].is_null(),
            "no list where nothing was read: {m}"
        );
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

/// An estate restore brings back every ACL, quota and user of the source
/// cluster, the other tests' too: the tests that restore one take turns,
/// so one's deliberate conflict on the target is not another's.
static ESTATE_RESTORES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Whether `user` with `password` logs in to `cluster`'s SASL_SSL listener.
fn logs_in(cluster: Cluster, user: &str, password: &str, topic: &str) -> bool {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", common::sasl_brokers(cluster))
        .set("security.protocol", "SASL_SSL")
        .set("sasl.mechanism", "SCRAM-SHA-512")
        .set("sasl.username", user)
        .set("sasl.password", password)
        .set("ssl.ca.location", common::test_env("KVAULT_TEST_CA_FILE"))
        .set("log_level", "0")
        .create()
        .unwrap();
    consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .is_ok()
}

/// A snapshot of the target in a vault of its own, to read the target's
/// estate back with `ls --metadata`.
fn target_estate(topic: &str) -> Value {
    let v = TestVault::init();
    let brokers = Cluster::Target.brokers();
    v.json(&["snapshot", "--brokers", &brokers, "--topics", topic]);
    v.json(&["ls", "latest", "--metadata"])
}

/// [`target_estate`] until `ready` holds (what a restore just wrote takes
/// a moment to reach the broker's metadata), or the last one after 30 s.
async fn target_estate_until(topic: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = target_estate(topic);
        if ready(&m) || Instant::now() > deadline {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Deletes a config (`--delete-config KEY` and its entity) on both
/// clusters when the test ends, passed or failed: a quota or config left
/// different on the target would refuse every later estate restore of the
/// source.
struct ConfigCleanup(Vec<String>);

impl ConfigCleanup {
    fn of_user(user: &str, key: &str) -> ConfigCleanup {
        ConfigCleanup(
            [
                "--delete-config",
                key,
                "--entity-type",
                "users",
                "--entity-name",
                user,
            ]
            .map(String::from)
            .to_vec(),
        )
    }
}

impl Drop for ConfigCleanup {
    fn drop(&mut self) {
        let mut args = vec!["--alter"];
        args.extend(self.0.iter().map(String::as_str));
        for cluster in [Cluster::Source, Cluster::Target] {
            let _ = kafka_tool_on(cluster, "kafka.admin.ConfigCommand", &args);
        }
    }
}

/// Snapshots `topic` of the source into `v` until the estate it records
/// satisfies `ready`: an ACL, quota or user just made takes a moment to
/// reach every broker's authorizer and metadata. Returns `ls --metadata`.
async fn snapshot_until(v: &TestVault, topic: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        v.snapshot(&[topic]);
        let m = v.json(&["ls", "latest", "--metadata"]);
        if ready(&m) {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "the estate never showed what the test made: {m}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Whether the listing's part holds an item for which `f` is true.
fn has(m: &Value, part: &str, f: impl Fn(&Value) -> bool) -> bool {
    m[part]["items"].as_array().is_some_and(|i| i.iter().any(f))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_estate_restore_brings_back_acls_quotas_and_a_user_who_logs_in() {
    let _turn = ESTATE_RESTORES.lock().await;
    let topic = unique_topic("estate-src");
    let renamed = format!("{topic}-dr");
    create_topic(Cluster::Source, &topic, 2, &[]).await;
    common::produce_bulk(Cluster::Source, &topic, 2, 200, 300, 7).await;
    let user = format!("{topic}-app");
    let principal = format!("User:{user}");
    let prefix = format!("{topic}-group-");
    let literal = [
        "--allow-principal",
        &principal,
        "--operation",
        "Read",
        "--topic",
        &topic,
    ];
    let prefixed = [
        "--allow-principal",
        &principal,
        "--operation",
        "Read",
        "--resource-pattern-type",
        "prefixed",
        "--group",
        &prefix,
    ];
    kafka_acls(Cluster::Source, &[&["--add"][..], &literal].concat());
    kafka_acls(Cluster::Source, &[&["--add"][..], &prefixed].concat());
    kafka_configs(
        Cluster::Source,
        &[
            "--add-config",
            "consumer_byte_rate=4096000",
            "--entity-type",
            "users",
            "--entity-name",
            &user,
        ],
    );
    let v = TestVault::init();
    let login = make_scram_user(Cluster::Source, v.dir.path(), &user);
    let password = std::fs::read_to_string(&login.password_file).unwrap();
    snapshot_until(&v, &topic, |m| {
        m["acls"]["items"]
            .as_array()
            .is_some_and(|a| a.iter().filter(|a| a["principal"] == principal).count() == 2)
            && has(m, "quotas", |q| {
                q["entity"] == serde_json::json!([format!("user={user}")])
            })
            && has(m, "scram_users", |u| u["user"] == user.as_str())
    })
    .await;
    kafka_acls(Cluster::Source, &[&["--remove"][..], &literal].concat());
    kafka_acls(Cluster::Source, &[&["--remove"][..], &prefixed].concat());

    let passwords = v.dir.path().join("scram-passwords");
    std::fs::write(&passwords, format!("# restored users\n{user}={password}\n")).unwrap();
    let passwords = passwords.to_str().unwrap().to_string();
    let rename = format!("{topic}={renamed}");
    let args = [
        "--estate",
        "--rename",
        &rename,
        "--scram-passwords",
        &passwords,
    ];

    // The dry run lists every change and writes nothing.
    let plan = v.restore("latest", &[&args[..], &["--dry-run"]].concat());
    let changes = plan["estate"]["changes"].to_string();
    assert!(
        changes.contains(&format!("topic:{renamed} (literal) {principal} read")),
        "{plan}"
    );
    assert!(
        changes.contains(&format!(
            "set SCRAM user {user} (SCRAM-SHA-512, 4096 iterations)"
        )),
        "{plan}"
    );
    assert!(
        !logs_in(Cluster::Target, &user, &password, &renamed),
        "the dry run made the user"
    );

    let out = v.restore("latest", &args);
    let done = &out["estate"]["done"];
    assert!(done["acls_created"].as_u64().unwrap() >= 2, "{out}");
    assert!(done["users_set"].as_u64().unwrap() >= 1, "{out}");
    assert_eq!(
        common::content(&common::consume_all(Cluster::Target, &renamed, 2)),
        common::content(&common::consume_all(Cluster::Source, &topic, 2)),
        "the records came back too"
    );

    let m = target_estate_until(&renamed, |m| {
        m["acls"]["items"]
            .as_array()
            .is_some_and(|a| a.iter().filter(|a| a["principal"] == principal).count() >= 2)
            && has(m, "quotas", |q| {
                q["entity"] == serde_json::json!([format!("user={user}")])
            })
    })
    .await;
    let acls = items(&m["acls"], "target ACLs");
    let ours: Vec<&Value> = acls
        .iter()
        .filter(|a| a["principal"] == principal)
        .collect();
    assert!(
        ours.iter().any(|a| a["resource_type"] == "topic"
            && a["resource_name"] == renamed
            && a["pattern_type"] == "literal"),
        "the literal ACL follows the rename: {ours:?}"
    );
    assert!(
        !ours.iter().any(|a| a["resource_name"] == topic),
        "the old name is not given an ACL: {ours:?}"
    );
    assert!(
        ours.iter().any(|a| a["resource_type"] == "group"
            && a["resource_name"] == prefix
            && a["pattern_type"] == "prefixed"),
        "{ours:?}"
    );
    let quotas = items(&m["quotas"], "target quotas");
    assert!(
        quotas.iter().any(
            |q| q["entity"] == serde_json::json!([format!("user={user}")])
                && q["values"] == serde_json::json!([["consumer_byte_rate", 4096000.0]])
        ),
        "{quotas:?}"
    );
    // The user logs in on the target with the supplied password, and not
    // with another.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !logs_in(Cluster::Target, &user, &password, &renamed) {
        assert!(
            Instant::now() < deadline,
            "{user} cannot log in to the target"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(!logs_in(
        Cluster::Target,
        &user,
        "not-the-password",
        &renamed
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_that_would_overwrite_a_different_quota_is_refused_with_nothing_changed() {
    let _turn = ESTATE_RESTORES.lock().await;
    let topic = unique_topic("estate-conflict");
    create_topic(Cluster::Source, &topic, 1, &[]).await;
    common::produce_bulk(Cluster::Source, &topic, 1, 20, 100, 3).await;
    let user = format!("{topic}-app");
    let principal = format!("User:{user}");
    let acl = [
        "--allow-principal",
        &principal,
        "--operation",
        "Write",
        "--topic",
        &topic,
    ];
    kafka_acls(Cluster::Source, &[&["--add"][..], &acl].concat());
    let quota = |cluster: Cluster, rate: &str| {
        kafka_configs(
            cluster,
            &[
                "--add-config",
                &format!("producer_byte_rate={rate}"),
                "--entity-type",
                "users",
                "--entity-name",
                &user,
            ],
        );
    };
    let _cleanup = ConfigCleanup::of_user(&user, "producer_byte_rate");
    quota(Cluster::Source, "1000");
    let v = TestVault::init();
    snapshot_until(&v, &topic, |m| {
        has(m, "acls", |a| a["principal"] == principal)
            && has(m, "quotas", |q| {
                q["entity"] == serde_json::json!([format!("user={user}")])
            })
    })
    .await;
    kafka_acls(Cluster::Source, &[&["--remove"][..], &acl].concat());
    // The target already holds another quota for the same user.
    quota(Cluster::Target, "5000");

    // The target's quota takes a moment to show.
    let deadline = Instant::now() + Duration::from_secs(30);
    let plan = loop {
        let plan = v.restore("latest", &["--estate", "--dry-run"]);
        if plan["estate"]["conflicts"].to_string().contains("5000") || Instant::now() > deadline {
            break plan;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let conflicts = plan["estate"]["conflicts"].to_string();
    assert!(
        conflicts.contains(&format!("user={user}"))
            && conflicts.contains("5000")
            && conflicts.contains("1000"),
        "{plan}"
    );

    let brokers = Cluster::Target.brokers();
    let o = v.run(&[
        "restore",
        "--snapshot-id",
        "latest",
        "--brokers",
        &brokers,
        "--estate",
    ]);
    let err = common::stderr(&o);
    assert!(!o.status.success(), "a conflicting restore went ahead");
    assert!(
        err.contains("--merge") && err.contains(&format!("user={user}")),
        "{err}"
    );
    assert!(
        !common::topic_exists(Cluster::Target, &topic),
        "the topic was created"
    );
    let probe = format!("{topic}-probe");
    create_topic(Cluster::Target, &probe, 1, &[]).await;
    let m = target_estate(&probe);
    assert!(
        !items(&m["acls"], "target ACLs")
            .iter()
            .any(|a| a["principal"] == principal),
        "an ACL was created: {m}"
    );
    let q = |m: &Value| {
        items(&m["quotas"], "target quotas")
            .iter()
            .find(|q| q["entity"] == serde_json::json!([format!("user={user}")]))
            .map(|q| q["values"].clone())
    };
    assert_eq!(
        q(&m),
        Some(serde_json::json!([["producer_byte_rate", 5000.0]]))
    );

    // Told to merge, the snapshot's quota wins.
    v.restore("latest", &["--estate", "--merge"]);
    let m = target_estate_until(&topic, |m| {
        q(m) == Some(serde_json::json!([["producer_byte_rate", 1000.0]]))
    })
    .await;
    assert_eq!(
        q(&m),
        Some(serde_json::json!([["producer_byte_rate", 1000.0]]))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_wide_broker_configs_are_restored_only_where_asked() {
    let _turn = ESTATE_RESTORES.lock().await;
    const NAME: &str = "log.cleaner.io.max.bytes.per.second";
    let _cleanup = ConfigCleanup(
        [
            "--delete-config",
            NAME,
            "--entity-type",
            "brokers",
            "--entity-default",
        ]
        .map(String::from)
        .to_vec(),
    );
    let topic = unique_topic("estate-configs");
    create_topic(Cluster::Source, &topic, 1, &[]).await;
    create_topic(Cluster::Target, &topic, 1, &[]).await;
    kafka_configs(
        Cluster::Source,
        &[
            "--add-config",
            &format!("{NAME}=987654321.0"),
            "--entity-type",
            "brokers",
            "--entity-default",
        ],
    );
    let v = TestVault::init();
    snapshot_until(&v, &topic, |m| {
        has(m, "broker_configs", |c| {
            c["scope"] == "cluster default" && c["configs"].to_string().contains(NAME)
        })
    })
    .await;
    let default_of = |m: &Value| -> Option<Value> {
        items(&m["broker_configs"], "broker configs")
            .iter()
            .find(|c| c["scope"] == "cluster default")
            .and_then(|c| {
                c["configs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|e| e[0] == NAME)
                    .cloned()
            })
    };
    let m = v.json(&["ls", "latest", "--metadata"]);
    assert!(default_of(&m).is_some(), "recorded: {m}");

    // --estate leaves configs alone; --with configs restores them.
    let plan = v.restore("latest", &["--estate", "--dry-run"]);
    assert!(
        !plan["estate"]["changes"].to_string().contains(NAME),
        "{plan}"
    );
    let plan = v.restore("latest", &["--with", "configs", "--dry-run"]);
    assert!(
        plan["estate"]["changes"].to_string().contains(NAME),
        "{plan}"
    );
    assert_eq!(
        default_of(&target_estate(&topic)),
        None,
        "the dry run changed nothing"
    );
    let out = v.restore("latest", &["--with", "configs"]);
    assert!(
        out["estate"]["done"]["configs_set"].as_u64().unwrap() >= 1,
        "{out}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(there) = default_of(&target_estate(&topic)) {
            assert_eq!(
                there[1].as_str().unwrap().parse::<f64>().unwrap(),
                987654321.0
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the config did not reach the target"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
