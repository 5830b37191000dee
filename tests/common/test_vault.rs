//! A vault on disk, driven through the real `vault` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use vault::storage::{Dir, ObjectName, Storage};

use super::*;

/// A `vault` run's standard error, as text for an assertion's message.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A vault on the backend under test ([`Backend::current`]), driven
/// through the real binary. Its passphrase and cache live in a temporary
/// directory.
pub struct TestVault {
    pub dir: tempfile::TempDir,
    pub backend: Backend,
    /// What `--vault` gets: a path, or an `s3://` / `az://` URL.
    pub location: String,
    pub password_file: PathBuf,
    pub cache: PathBuf,
}

impl TestVault {
    pub fn init() -> TestVault {
        TestVault::init_with(&[])
    }

    /// `vault init` with extra arguments (e.g. a small pack size).
    pub fn init_with(extra: &[&str]) -> TestVault {
        TestVault::init_on(Backend::current(), extra)
    }

    /// `vault init` on a given backend, whatever this run tests.
    pub fn init_on(backend: Backend, extra: &[&str]) -> TestVault {
        let v = TestVault::uninitialised(backend);
        let mut args = vec!["init", "--kdf-memory-mib", "8"];
        args.extend_from_slice(extra);
        let o = v.run(&args);
        assert!(
            o.status.success(),
            "init: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        v
    }

    /// A location for a vault, with its passphrase file, before `init`.
    pub fn uninitialised(backend: Backend) -> TestVault {
        let dir = tempfile::tempdir().unwrap();
        let location = backend.new_location(dir.path());
        let password_file = dir.path().join("pw");
        let cache = dir.path().join("cache");
        std::fs::write(&password_file, "test passphrase\n").unwrap();
        TestVault {
            dir,
            backend,
            location,
            password_file,
            cache,
        }
    }

    /// Runs `vault <cmd> --vault … --password-file … <rest>`.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_vault"));
        // Commands of two words (`repair index`) take their options after both.
        let words = if matches!(args[0], "repair" | "key") {
            2
        } else {
            1
        };
        let (command, args) = args.split_at(words);
        c.args(command)
            .arg("--vault")
            .arg(&self.location)
            .arg("--password-file")
            .arg(&self.password_file)
            .args(args)
            .envs(self.backend.env())
            .env("KVAULT_CACHE_DIR", &self.cache)
            .env_remove("KVAULT_PASSWORD")
            .env_remove("KVAULT_PASSWORD_FILE");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run vault")
    }

    /// Runs a command that must succeed and prints JSON; returns the JSON.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        let o = self.run(&a);
        assert!(
            o.status.success(),
            "vault {args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
            panic!(
                "vault {args:?}: bad JSON ({e}): {}",
                String::from_utf8_lossy(&o.stdout)
            )
        })
    }

    /// Restores into the target cluster; returns the JSON summary.
    pub fn restore(&self, snapshot: &str, extra: &[&str]) -> serde_json::Value {
        let brokers = Cluster::Target.brokers();
        let mut args = vec!["restore", "--snapshot-id", snapshot, "--brokers", &brokers];
        args.extend_from_slice(extra);
        self.json(&args)
    }

    /// Restores into `cluster`; returns the JSON summary.
    pub fn restore_into(
        &self,
        cluster: Cluster,
        snapshot: &str,
        extra: &[&str],
    ) -> serde_json::Value {
        let brokers = cluster.brokers();
        let mut args = vec!["restore", "--snapshot-id", snapshot, "--brokers", &brokers];
        args.extend_from_slice(extra);
        self.json(&args)
    }

    /// Snapshots `topics` of `cluster`; returns the JSON summary.
    pub fn snapshot_from(
        &self,
        cluster: Cluster,
        topics: &[&str],
        extra: &[&str],
    ) -> serde_json::Value {
        let t = topics.join(",");
        let brokers = cluster.brokers();
        let mut args = vec!["snapshot", "--brokers", &brokers, "--topics", &t];
        args.extend_from_slice(extra);
        self.json(&args)
    }

    /// Snapshots `topics` of the source cluster; returns the JSON summary.
    pub fn snapshot(&self, topics: &[&str]) -> serde_json::Value {
        let t = topics.join(",");
        self.json(&[
            "snapshot",
            "--brokers",
            &Cluster::Source.brokers(),
            "--topics",
            &t,
        ])
    }

    /// The vault's directory; for tests of what only a local disk has
    /// (file modes, mtimes, a full file system).
    pub fn local_path(&self) -> PathBuf {
        assert!(
            self.backend.is_local(),
            "this test needs a local vault (run it with KVAULT_TEST_BACKEND=local)"
        );
        PathBuf::from(&self.location)
    }

    /// The vault's storage, opened as `vault` opens it.
    pub fn storage(&self) -> Arc<dyn Storage> {
        self.backend.storage(&self.location)
    }

    pub fn open(&self) -> vault::Repository<vault::repository::Indexed> {
        let pass = vault::password::read_password_file(&self.password_file).unwrap();
        open_repo(self.storage(), &pass, &self.cache.join("inspect")).unwrap()
    }

    /// The records a snapshot holds for a topic, as `TestRecord`s.
    pub fn records(&self, snapshot: &str, topic: &str) -> Vec<TestRecord> {
        let repo = self.open();
        let id = repo.resolve_snapshot(snapshot).unwrap();
        let m = repo.read_snapshot(&id).unwrap();
        let t = m
            .topics
            .iter()
            .find(|t| t.name == topic)
            .unwrap_or_else(|| panic!("{topic} not in snapshot"));
        let mut out = Vec::new();
        for p in &t.partitions {
            let Some(root) = p.root else { continue };
            for r in vault::reader::all_records(&repo, &root).unwrap() {
                out.push(TestRecord {
                    partition: p.partition as i32,
                    offset: r.offset,
                    key: r.key,
                    value: r.value,
                    headers: r
                        .headers
                        .into_iter()
                        .map(|(k, v)| (String::from_utf8(k).unwrap(), v))
                        .collect(),
                    timestamp: (r.timestamp_type as u8, r.timestamp),
                });
            }
        }
        out
    }

    /// Starts `vault snapshot` of `topic` in the background and returns once
    /// it has written `pack_bytes` of new packs, still running (the moment
    /// the fault tests strike). Output is piped.
    pub fn snapshot_in_flight(
        &self,
        topic: &str,
        extra: &[&str],
        pack_bytes: u64,
    ) -> std::process::Child {
        let brokers = Cluster::Source.brokers();
        let mut args = vec!["snapshot", "--brokers", &brokers, "--topics", topic];
        args.extend_from_slice(extra);
        // Growth, not size: a vault that already holds packs would otherwise
        // count as "mid-flight" before the snapshot has even started.
        let storage = self.storage();
        let pack_size = || -> u64 {
            storage
                .list(Dir::Packs)
                .unwrap()
                .iter()
                .map(|l| l.size)
                .sum()
        };
        let target = pack_size() + pack_bytes;
        let mut child = self
            .command(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while pack_size() < target {
            assert!(
                std::time::Instant::now() < deadline,
                "the snapshot wrote nothing"
            );
            if let Some(status) = child.try_wait().unwrap() {
                let out = child.wait_with_output().unwrap();
                panic!(
                    "the snapshot ended ({status}) before the fault struck; \
                     stdout: {} stderr: {}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(if self.backend.is_local() {
                10
            } else {
                50
            }));
        }
        child
    }

    /// A copy of this vault (same passphrase, its own cache), for tests
    /// that damage one.
    pub fn copy(&self) -> TestVault {
        self.copy_to(self.backend)
    }

    /// A copy of this vault on `backend`, object by object, as an
    /// operator moving a vault would make it.
    pub fn copy_to(&self, backend: Backend) -> TestVault {
        let copy = TestVault::uninitialised(backend);
        std::fs::copy(&self.password_file, &copy.password_file).unwrap();
        if self.backend.is_local() && backend.is_local() {
            let status = Command::new("cp")
                .arg("-a")
                .arg(&self.location)
                .arg(&copy.location)
                .status()
                .unwrap();
            assert!(status.success());
        } else {
            if backend.is_local() {
                std::fs::create_dir_all(&copy.location).unwrap();
            }
            let (from, to) = (self.storage(), copy.storage());
            for name in all_objects(from.as_ref()) {
                assert!(to.put_if_absent(&name, &from.get(&name).unwrap()).unwrap());
            }
        }
        copy
    }

    /// The objects of one kind (packs, index, snapshots...), sorted.
    pub fn objects(&self, kind: Dir) -> Vec<ObjectName> {
        let mut out: Vec<ObjectName> = self
            .storage()
            .list(kind)
            .unwrap()
            .into_iter()
            .map(|l| ObjectName::new(kind, l.name))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Bytes the vault's objects hold.
    pub fn size(&self) -> u64 {
        let storage = self.storage();
        all_objects(storage.as_ref())
            .iter()
            .map(|n| storage.size(n).unwrap())
            .sum()
    }
}

pub fn dir_size(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        dir_size(&p)
                    } else {
                        e.metadata().map(|m| m.len()).unwrap_or(0)
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

/// A real pack (a running snapshot's, say) that no index lists.
pub fn unindexed_pack(
    repo: &vault::Repository<vault::repository::Indexed>,
    storage: &dyn Storage,
) -> ObjectName {
    use vault_format::compress::{Compression, Compressor};
    use vault_format::object::ObjectKind;
    use vault_format::pack::PackBuilder;
    let id = vault_format::PackId(vault::host::random_bytes());
    let mut b = PackBuilder::new(repo.keys(), repo.vault_id(), id, 1 << 20);
    let chunk = b"records of a snapshot still running";
    b.add(
        ObjectKind::DataChunk,
        repo.keys().chunk_id(chunk),
        chunk,
        &mut Compressor::new(Compression(None)).unwrap(),
    )
    .unwrap();
    let (_, bytes, _) = b.finish().unwrap();
    let name = ObjectName::new(Dir::Packs, id.to_hex());
    assert!(storage.put_if_absent(&name, &bytes).unwrap());
    name
}

/// Makes a local vault's object look written `age` ago (object stores set
/// their own times; tests of the grace period run on a local vault).
pub fn age_object(root: &Path, name: &ObjectName, age: Duration) {
    age_file(&root.join(name.path()), age);
}

pub fn age_file(path: &std::path::Path, age: Duration) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(std::time::SystemTime::now() - age).unwrap();
}
