//! The documented exit codes (README): 0 success, 1 failure, 2 bad usage,
//! 3 damaged vault data. Each from the real binary, no Kafka needed.

use crate::common;

use common::TestVault;

fn code(v: &TestVault, args: &[&str]) -> Option<i32> {
    v.run(args).status.code()
}

#[test]
fn each_exit_code_means_what_the_readme_says() {
    let v = TestVault::init();
    // 0: it worked.
    assert_eq!(code(&v, &["snapshots"]), Some(0));
    // 2: the command line asks for something that cannot be done.
    assert_eq!(code(&v, &["gc"]), Some(2), "gc without a keep rule");
    assert_eq!(
        code(&v, &["gc", "--keep-last", "1", "--group-by", "topics"]),
        Some(2)
    );
    assert_eq!(
        code(
            &v,
            &["snapshot", "--brokers", "127.0.0.1:1", "--topic-regex", "("]
        ),
        Some(2),
        "a broken regex"
    );
    // gc's keep rules on `snapshot` prune only in continuous mode.
    for [flag, value] in [
        ["--keep-last", "1"],
        ["--keep-within", "1d"],
        ["--keep-tag", "t"],
        ["--prune-groups", "all"],
    ] {
        assert_eq!(
            code(
                &v,
                &[
                    "snapshot",
                    "--brokers",
                    "127.0.0.1:1",
                    "--topics",
                    "a",
                    flag,
                    value
                ]
            ),
            Some(2),
            "{flag} without --every"
        );
    }
    // 1: a failure that is neither (a wrong passphrase, nothing to restore).
    let wrong = v.dir.path().join("wrong");
    std::fs::write(&wrong, "not the passphrase\n").unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_vault"))
        .args(["snapshots", "--vault"])
        .arg(&v.location)
        .envs(v.backend.env())
        .arg("--password-file")
        .arg(&wrong)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        code(
            &v,
            &[
                "restore",
                "--snapshot-id",
                "latest",
                "--brokers",
                "127.0.0.1:1"
            ]
        ),
        Some(1),
        "no snapshot to restore"
    );
    // 3: the vault holds damage.
    let junk = vault::storage::ObjectName::new(vault::storage::Dir::Keys, "junk");
    assert!(v.storage().put_if_absent(&junk, b"not a key file").unwrap());
    assert_eq!(code(&v, &["check"]), Some(3));
}
