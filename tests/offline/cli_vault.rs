//! The `vault` binary as a user runs it: init, unlock with the right and the
//! wrong passphrase, list snapshots, add a key.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::stderr;

fn vault(args: &[&str], cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vault"))
        .args(args)
        .env("KVAULT_CACHE_DIR", cache)
        .env_remove("KVAULT_PASSWORD")
        .env_remove("KVAULT_PASSWORD_FILE")
        .env_remove("KVAULT_REPO")
        .output()
        .expect("run vault")
}

#[test]
fn init_then_unlock_with_right_and_wrong_passphrase() {
    let tmp = tempfile::tempdir().unwrap();
    let v = tmp.path().join("vault");
    let good = tmp.path().join("good");
    let bad = tmp.path().join("bad");
    let other = tmp.path().join("other");
    std::fs::write(&good, "correct horse battery staple\n").unwrap();
    std::fs::write(&bad, "wrong\n").unwrap();
    std::fs::write(&other, "second passphrase\n").unwrap();
    let vs = v.to_str().unwrap();
    let cache = tmp.path().join("cache");

    let o = vault(
        &[
            "init",
            "--vault",
            vs,
            "--password-file",
            good.to_str().unwrap(),
            "--kdf-memory-mib",
            "8",
            "--json",
        ],
        &cache,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["format_version"], 3);
    assert_eq!(j["vault_id"].as_str().unwrap().len(), 32);
    // The default chunk sizes, 64/256/1024 KiB (docs/design.md § Chunk sizes).
    assert_eq!(
        j["chunk_sizes"],
        serde_json::json!({"min": 65536, "avg": 262144, "max": 1048576}),
        "{j}"
    );

    // A second init on the same path is refused and changes nothing.
    let before = std::fs::read(v.join("config")).unwrap();
    let o = vault(
        &[
            "init",
            "--vault",
            vs,
            "--password-file",
            good.to_str().unwrap(),
        ],
        &cache,
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    assert_eq!(std::fs::read(v.join("config")).unwrap(), before);

    let o = vault(
        &[
            "snapshots",
            "--vault",
            vs,
            "--password-file",
            good.to_str().unwrap(),
            "--json",
        ],
        &cache,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap(),
        serde_json::json!([])
    );

    let o = vault(
        &[
            "snapshots",
            "--vault",
            vs,
            "--password-file",
            bad.to_str().unwrap(),
        ],
        &cache,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("wrong passphrase"), "{}", stderr(&o));
    assert!(o.stdout.is_empty());

    // A second key file opens the same vault.
    let o = vault(
        &[
            "key",
            "add",
            "--vault",
            vs,
            "--password-file",
            good.to_str().unwrap(),
            "--new-password-file",
            other.to_str().unwrap(),
        ],
        &cache,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = vault(
        &[
            "snapshots",
            "--vault",
            vs,
            "--password-file",
            other.to_str().unwrap(),
        ],
        &cache,
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn no_vault_and_no_passphrase_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let pw = tmp.path().join("pw");
    std::fs::write(&pw, "x\n").unwrap();
    let missing = tmp.path().join("nothing-here");
    let o = vault(
        &[
            "snapshots",
            "--vault",
            missing.to_str().unwrap(),
            "--password-file",
            pw.to_str().unwrap(),
        ],
        &cache,
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("vault init"), "{}", stderr(&o));

    let v = tmp.path().join("v");
    let o = vault(&["init", "--vault", v.to_str().unwrap()], &cache);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--password-file"), "{}", stderr(&o));
    assert!(!v.exists(), "a failed init left a directory behind");
}

#[test]
fn completions_and_man_pages_come_from_the_cli_definition() {
    let dir = tempfile::tempdir().unwrap();
    let o = vault(&["completions", "bash"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let bash = String::from_utf8(o.stdout).unwrap();
    assert!(bash.contains("_vault()") && bash.contains("snapshot") && bash.contains("--workers"));
    for shell in ["zsh", "fish"] {
        let o = vault(&["completions", shell], dir.path());
        assert!(o.status.success() && o.stdout.len() > 1000, "{shell}");
    }
    let bad = vault(&["completions", "tcsh"], dir.path());
    assert_eq!(bad.status.code(), Some(2));
    let o = vault(&["man"], dir.path());
    assert!(String::from_utf8(o.stdout).unwrap().starts_with(".ie"));
    let pages = dir.path().join("man");
    let o = vault(&["man", "--dir", pages.to_str().unwrap()], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    for page in [
        "vault.1",
        "vault-snapshot.1",
        "vault-restore.1",
        "vault-cat.1",
    ] {
        assert!(pages.join(page).is_file(), "{page}");
    }
}

#[test]
fn log_format_json_writes_one_json_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-vault");
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "a passphrase\n").unwrap();
    let o = vault(
        &[
            "snapshots",
            "--vault",
            missing.to_str().unwrap(),
            "--password-file",
            pw.to_str().unwrap(),
            "--log-format",
            "json",
        ],
        dir.path(),
    );
    assert!(!o.status.success(), "{}", stderr(&o));
    let lines: Vec<serde_json::Value> = stderr(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let last = lines.last().unwrap();
    assert_eq!(last["level"], "ERROR", "{last}");
    assert!(
        last["fields"]["message"]
            .as_str()
            .unwrap()
            .contains("no vault"),
        "{last}"
    );
    assert!(last["timestamp"].is_string(), "{last}");
}
