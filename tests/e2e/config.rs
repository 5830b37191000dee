//! The configuration file: a profile's defaults, the environment over the
//! profile, flags over both, and secrets only as files.

use crate::common;

use std::process::{Command, Output};

use common::{Cluster, TestRecord, TestVault, create_topic, produce, unique_topic};

fn vault(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vault"));
    c.args(args)
        .env_remove("KVAULT_REPO")
        .env_remove("KVAULT_PASSWORD")
        .env_remove("KVAULT_PASSWORD_FILE")
        .env_remove("KVAULT_BROKERS")
        .env_remove("KVAULT_CONFIG")
        .env_remove("KVAULT_PROFILE")
        // No operator's own ~/.config/kvault is read.
        .env("HOME", "/nonexistent");
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_gives_defaults_that_the_environment_and_flags_override() {
    let (a, b) = (unique_topic("profile-a"), unique_topic("profile-b"));
    for t in [&a, &b] {
        create_topic(Cluster::Source, t, 1, &[]).await;
        produce(
            Cluster::Source,
            t,
            &[TestRecord::new(0, Some(b"k"), Some(b"v"))],
        )
        .await;
    }
    let (prod, other) = (TestVault::init(), TestVault::init());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[profile.default]
vault = "/nonexistent/default-vault"

[profile.prod]
vault = "{vault}"
password_file = "{pw}"
cache_dir = "{cache}"
brokers = "{brokers}"
topics = ["{a}"]
[profile.prod.client]
"client.id" = "kvault-profile-test"
[profile.prod.keep]
last = 1

[profile.leaky]
vault = "{vault}"
password = "hunter2hunter2"
"#,
            vault = prod.location,
            pw = prod.password_file.display(),
            cache = dir.path().join("cache").display(),
            brokers = Cluster::Source.brokers(),
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();

    // The profile alone: vault, passphrase, brokers and topics from it.
    let first = json(&vault(
        &["snapshot", "--config", cfg, "--profile", "prod", "--json"],
        &[],
    ));
    assert_eq!(first["topics"], serde_json::json!([a]), "{first}");
    // KVAULT_PROFILE picks it too, and a flag replaces the profile's topics.
    let second = json(&vault(
        &["snapshot", "--config", cfg, "--topics", &b, "--json"],
        &[("KVAULT_PROFILE", "prod")],
    ));
    assert_eq!(second["topics"], serde_json::json!([b]), "{second}");
    // The environment wins over the profile: another vault.
    let third = json(&vault(
        &["snapshot", "--config", cfg, "--profile", "prod", "--json"],
        &[
            ("KVAULT_REPO", other.location.as_str()),
            (
                "KVAULT_PASSWORD_FILE",
                other.password_file.to_str().unwrap(),
            ),
        ],
    ));
    assert_eq!(third["topics"], serde_json::json!([a]), "{third}");
    assert_eq!(other.json(&["snapshots"]).as_array().unwrap().len(), 1);
    // A flag wins over the environment and the profile.
    let listed = json(&vault(
        &[
            "snapshots",
            "--config",
            cfg,
            "--profile",
            "prod",
            "--vault",
            &other.location,
            "--json",
        ],
        &[(
            "KVAULT_PASSWORD_FILE",
            other.password_file.to_str().unwrap(),
        )],
    ));
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(prod.json(&["snapshots"]).as_array().unwrap().len(), 2);
    // The profile's keep rules are gc's defaults.
    let gc = json(&vault(
        &["gc", "--config", cfg, "--profile", "prod", "--json"],
        &[],
    ));
    assert_eq!(
        gc["forgotten"].as_array().unwrap().len(),
        0,
        "one snapshot per topic set: {gc}"
    );

    // A global option before the command does not hide the command.
    let listed = json(&vault(
        &[
            "--log-format",
            "json",
            "snapshots",
            "--config",
            cfg,
            "--profile",
            "prod",
            "--json",
        ],
        &[],
    ));
    assert_eq!(listed.as_array().unwrap().len(), 2);

    // Without --profile the `default` profile is used.
    let o = vault(&["snapshots", "--config", cfg], &[]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/default-vault"));
    // A typo in the file is reported by line, without quoting the line.
    let typo = dir.path().join("typo.toml");
    std::fs::write(
        &typo,
        "[profile.x]\nvault = \"/v\"\npasword = \"hunter2hunter2\"\n",
    )
    .unwrap();
    let o = vault(
        &[
            "snapshots",
            "--config",
            typo.to_str().unwrap(),
            "--profile",
            "x",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("line 3") && !err.contains("hunter2"), "{err}");

    // Secrets only as files; an unknown profile is named.
    let o = vault(&["snapshots", "--config", cfg, "--profile", "leaky"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("password_file"));
    assert!(!String::from_utf8_lossy(&o.stderr).contains("hunter2"));
    let o = vault(&["snapshots", "--config", cfg, "--profile", "nope"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("prod"),
        "lists the profiles"
    );
}

/// The profile's keep rules and the command line's add up: `gc --profile
/// prod --keep-tag release` keeps what the profile's rules keep *and* the
/// tagged snapshots. A smaller number on the command line than in the
/// profile is refused, naming both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_flags_add_to_the_profiles_keep_rules() {
    let topic = unique_topic("profile-keep");
    create_topic(Cluster::Source, &topic, 1, &[]).await;
    let v = TestVault::init();
    for i in 0..3 {
        produce(
            Cluster::Source,
            &topic,
            &[TestRecord::new(
                0,
                Some(b"k"),
                Some(format!("v{i}").as_bytes()),
            )],
        )
        .await;
        let tag: &[&str] = if i == 0 { &["--tag", "release"] } else { &[] };
        v.snapshot_from(Cluster::Source, &[&topic], tag);
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[profile.prod]\nvault = \"{}\"\npassword_file = \"{}\"\n[profile.prod.keep]\nwithin = \"30d\"\nlast = 2\n",
            v.location,
            v.password_file.display()
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let gc = json(&vault(
        &[
            "gc",
            "--config",
            cfg,
            "--profile",
            "prod",
            "--keep-tag",
            "release",
            "--dry-run",
            "--json",
        ],
        &[],
    ));
    assert_eq!(
        gc["forgotten"],
        serde_json::json!([]),
        "the profile's within keeps all: {gc}"
    );
    let tagged = gc["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| {
            d["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r == "tag release")
        })
        .expect("the tag rule applies too");
    assert!(
        tagged["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "within"),
        "{tagged}"
    );

    // A smaller count on the command line than the profile's: refused.
    let o = vault(
        &[
            "gc",
            "--config",
            cfg,
            "--profile",
            "prod",
            "--keep-last",
            "1",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--keep-last 1") && err.contains("profile prod's keep.last = 2"),
        "{err}"
    );
    // A larger one is no ambiguity: it keeps more.
    let gc = json(&vault(
        &[
            "gc",
            "--config",
            cfg,
            "--profile",
            "prod",
            "--keep-last",
            "3",
            "--json",
        ],
        &[],
    ));
    assert_eq!(gc["forgotten"], serde_json::json!([]), "{gc}");
    assert_eq!(v.json(&["snapshots"]).as_array().unwrap().len(), 3);
}
