//! A secured cluster: snapshot and restore through the clusters' SASL_SSL
//! listeners (SCRAM-SHA-512 over TLS, made by scripts/kafka), with the
//! password in a file, and the password never in any output, file, lock
//! or manifest vault writes.

use crate::common;

use std::path::{Path, PathBuf};

use common::{
    Cluster, TestVault, consume_all, content, create_topic, produce_bulk, sasl_brokers,
    test_env as env, unique_topic,
};

/// Every file below `dir` that holds `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(p) = todo.pop() {
        let Ok(meta) = std::fs::metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                todo.push(e.unwrap().path());
            }
        } else if let Ok(bytes) = std::fs::read(&p)
            && bytes.windows(needle.len()).any(|w| w == needle)
        {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_and_restore_over_sasl_ssl_never_show_the_password() {
    let password_file = PathBuf::from(env("KVAULT_TEST_SASL_PASSWORD_FILE"));
    let password = std::fs::read_to_string(&password_file)
        .unwrap()
        .trim()
        .to_string();
    assert!(password.len() >= 16);
    let topic = unique_topic("secured");
    create_topic(Cluster::Source, &topic, 2, &[]).await;
    produce_bulk(Cluster::Source, &topic, 2, 3000, 512, 61).await;

    let v = TestVault::init();
    // The client settings in a properties file, as kcat -F reads them; the
    // password in a file of its own.
    let props = v.dir.path().join("client.properties");
    std::fs::write(
        &props,
        format!(
            "# the secured listener\nsecurity.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n\
             sasl.username={}\nssl.ca.location={}\n",
            env("KVAULT_TEST_SASL_USER"),
            env("KVAULT_TEST_CA_FILE")
        ),
    )
    .unwrap();
    let props = props.to_str().unwrap().to_string();
    let pw = password_file.to_str().unwrap().to_string();
    let mut outputs: Vec<std::process::Output> = Vec::new();

    let src = sasl_brokers(Cluster::Source);
    let snap = v
        .command(&[
            "snapshot",
            "--brokers",
            &src,
            "-F",
            &props,
            "--sasl-password-file",
            &pw,
            "--topics",
            &topic,
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        snap.status.success(),
        "{}",
        String::from_utf8_lossy(&snap.stderr)
    );
    outputs.push(snap);

    let target = unique_topic("secured-dr");
    let rename = format!("{topic}={target}");
    let dst = sasl_brokers(Cluster::Target);
    let restore = v
        .command(&[
            "restore",
            "--snapshot-id",
            "latest",
            "--brokers",
            &dst,
            "-F",
            &props,
            "--sasl-password-file",
            &pw,
            "--rename",
            &rename,
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        restore.status.success(),
        "{}",
        String::from_utf8_lossy(&restore.stderr)
    );
    outputs.push(restore);
    assert_eq!(
        content(&consume_all(Cluster::Target, &target, 2)),
        content(&consume_all(Cluster::Source, &topic, 2))
    );

    // Failures that print errors: the password on the command line with a
    // wrong user, a misspelt secret setting, and a broken properties file.
    let wrong_user = v
        .command(&[
            "snapshot",
            "--brokers",
            &src,
            "-F",
            &props,
            "-X",
            "sasl.username=nobody",
            "-X",
            &format!("sasl.password={password}"),
            "--topics",
            &topic,
            "--json",
        ])
        .output()
        .unwrap();
    assert!(!wrong_user.status.success());
    let err = String::from_utf8_lossy(&wrong_user.stderr).to_string();
    assert!(err.contains("SASL authentication error"), "says why: {err}");
    outputs.push(wrong_user);
    let misspelt = v
        .command(&[
            "snapshot",
            "--brokers",
            &src,
            "-X",
            &format!("sasl.pasword={password}"),
            "--topics",
            &topic,
        ])
        .output()
        .unwrap();
    assert!(!misspelt.status.success());
    outputs.push(misspelt);
    let broken = v.dir.path().join("broken.properties");
    std::fs::write(&broken, format!("sasl.password {password}\n")).unwrap();
    let broken_run = v
        .command(&[
            "snapshot",
            "--brokers",
            &src,
            "-F",
            broken.to_str().unwrap(),
            "--topics",
            &topic,
        ])
        .output()
        .unwrap();
    assert_eq!(broken_run.status.code(), Some(2));
    outputs.push(broken_run);

    for (i, o) in outputs.iter().enumerate() {
        for (what, bytes) in [("stdout", &o.stdout), ("stderr", &o.stderr)] {
            assert!(
                !String::from_utf8_lossy(bytes).contains(&password),
                "run {i} printed the password on {what}"
            );
        }
    }
    let in_files: Vec<PathBuf> = files_holding(&v.local_path(), password.as_bytes())
        .into_iter()
        .chain(files_holding(&v.cache, password.as_bytes()))
        .collect();
    assert!(in_files.is_empty(), "the password is in {in_files:?}");
}
