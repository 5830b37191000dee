//! A vault and its index cache are private to their owner, whatever the
//! umask of the process that writes them.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::{Cluster, TestRecord, TestVault, create_topic, produce, unique_topic};

/// Runs `command` under umask 000, the most permissive there is.
fn with_open_umask(command: &Command) -> Command {
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg("umask 000; exec \"$0\" \"$@\"")
        .arg(command.get_program())
        .args(command.get_args());
    for (k, v) in command.get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    sh
}

fn open_bits(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(p) = todo.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        if meta.permissions().mode() & 0o077 != 0 {
            out.push(format!("{} {:o}", p.display(), meta.permissions().mode()));
        }
        if meta.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                todo.push(e.unwrap().path());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vault_and_its_cache_have_no_group_or_other_bits() {
    let topic = unique_topic("private");
    create_topic(Cluster::Source, &topic, 1, &[]).await;
    produce(
        Cluster::Source,
        &topic,
        &[TestRecord::new(0, Some(b"k"), Some(b"secret"))],
    )
    .await;
    // A vault made under umask 000 (TestVault's own is made under the
    // test's umask; this one from scratch).
    let v = TestVault::init();
    std::fs::remove_dir_all(v.local_path()).unwrap();
    let init = with_open_umask(&v.command(&["init", "--kdf-memory-mib", "8"]))
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let brokers = Cluster::Source.brokers();
    let snap =
        with_open_umask(&v.command(&["snapshot", "--brokers", &brokers, "--topics", &topic]))
            .output()
            .unwrap();
    assert!(
        snap.status.success(),
        "{}",
        String::from_utf8_lossy(&snap.stderr)
    );
    assert!(
        !v.objects(vault::storage::Dir::Packs).is_empty()
            && !v.objects(vault::storage::Dir::Snapshots).is_empty()
    );

    assert_eq!(
        open_bits(&v.local_path()),
        Vec::<String>::new(),
        "the vault"
    );
    let vault_caches: Vec<_> = std::fs::read_dir(&v.cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!vault_caches.is_empty());
    for c in vault_caches {
        let bits = std::fs::metadata(&c).unwrap().permissions().mode();
        assert_eq!(
            bits & 0o077,
            0,
            "the index cache {} is {bits:o}",
            c.display()
        );
    }
}

#[test]
fn a_bare_relative_path_works_and_a_failed_init_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "a passphrase\n").unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_vault"))
            .current_dir(dir.path())
            .args(args)
            .env("KVAULT_CACHE_DIR", dir.path().join("cache"))
            .output()
            .unwrap()
    };
    // A bad option fails before anything exists.
    let o = run(&[
        "init",
        "--vault",
        "backups",
        "--password-file",
        "pw",
        "--data-horizon",
        "90 parsecs",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        !dir.path().join("backups").exists(),
        "a failed init left a directory"
    );
    // An empty passphrase file fails too, and leaves nothing.
    std::fs::write(dir.path().join("empty"), "\n").unwrap();
    let o = run(&["init", "--vault", "backups", "--password-file", "empty"]);
    assert!(!o.status.success());
    assert!(!dir.path().join("backups").exists());
    // A bare relative name is a vault in the working directory.
    let o = run(&[
        "init",
        "--vault",
        "backups",
        "--password-file",
        "pw",
        "--kdf-memory-mib",
        "8",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(dir.path().join("backups/config").exists());
    let o = run(&["snapshots", "--vault", "backups", "--password-file", "pw"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
