//! The clusters' SASL_SSL listeners (SCRAM-SHA-512 over TLS, made by
//! scripts/kafka): the user `vault`, or a SCRAM user a test makes, as a
//! principal an ACL can take a permission from. The PLAINTEXT listener's
//! principal is a super user, so ACLs never bind it.

use std::path::{Path, PathBuf};

use super::{Cluster, kafka_configs, kafka_tool_on};

pub fn test_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: start the clusters with `eval \"$(scripts/kafka start)\"`")
    })
}

pub fn sasl_brokers(c: Cluster) -> String {
    test_env(match c {
        Cluster::Source => "KVAULT_TEST_SOURCE_SASL_BROKERS",
        Cluster::Target => "KVAULT_TEST_TARGET_SASL_BROKERS",
    })
}

/// How vault reaches a cluster's SASL_SSL listener as one user: the client
/// properties file (`-F`) and the password file (`--sasl-password-file`).
pub struct SaslLogin {
    pub properties: PathBuf,
    pub password_file: PathBuf,
}

impl SaslLogin {
    /// As the user `vault` that scripts/kafka made.
    pub fn vault_user(dir: &Path) -> SaslLogin {
        SaslLogin::write(
            dir,
            &test_env("KVAULT_TEST_SASL_USER"),
            Path::new(&test_env("KVAULT_TEST_SASL_PASSWORD_FILE")),
        )
    }

    /// As `user`, whose password is in `password_file`.
    pub fn write(dir: &Path, user: &str, password_file: &Path) -> SaslLogin {
        let properties = dir.join(format!("client-{user}.properties"));
        std::fs::write(
            &properties,
            format!(
                "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n\
                 sasl.username={user}\nssl.ca.location={}\n",
                test_env("KVAULT_TEST_CA_FILE")
            ),
        )
        .unwrap();
        SaslLogin {
            properties,
            password_file: password_file.to_path_buf(),
        }
    }

    /// The vault arguments that connect as this user to `cluster`.
    pub fn args(&self, cluster: Cluster) -> Vec<String> {
        vec![
            "--brokers".into(),
            sasl_brokers(cluster),
            "-F".into(),
            self.properties.to_str().unwrap().into(),
            "--sasl-password-file".into(),
            self.password_file.to_str().unwrap().into(),
        ]
    }
}

/// Makes a SCRAM-SHA-512 user on `cluster` with a random password, written
/// to a file in `dir`.
pub fn make_scram_user(cluster: Cluster, dir: &Path, user: &str) -> SaslLogin {
    let password = format!("pw-{user}-{}", std::process::id());
    let password_file = dir.join(format!("{user}.password"));
    std::fs::write(&password_file, &password).unwrap();
    kafka_configs(
        cluster,
        &[
            "--add-config",
            &format!("SCRAM-SHA-512=[iterations=4096,password={password}]"),
            "--entity-type",
            "users",
            "--entity-name",
            user,
        ],
    );
    SaslLogin::write(dir, user, &password_file)
}

/// Runs kafka-acls against `cluster` with `args`, and asserts it worked.
pub fn kafka_acls(cluster: Cluster, args: &[&str]) {
    let mut all = vec!["--force"];
    all.extend_from_slice(args);
    let o = kafka_tool_on(cluster, "org.apache.kafka.tools.AclCommand", &all);
    assert!(
        o.status.success(),
        "kafka-acls {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}
