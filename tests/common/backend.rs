//! Which storage the vault under test lives on: `KVAULT_TEST_BACKEND` =
//! `local` (the default), `s3` (moto) or `azure` (Azurite). The README's
//! test command runs the vault's end-to-end tests once per backend, with
//! the servers `scripts/storage start` runs on loopback.

use std::sync::Arc;

use vault::storage::location::{StorageOptions, VaultLocation};
use vault::storage::{Dir, ObjectName, Storage};

/// The bucket (S3) and container (Azure) `scripts/storage start` creates.
pub const TEST_BUCKET: &str = "vault-tests";
/// Azurite's well-known development account (public, documented by Microsoft).
const AZURITE_ACCOUNT: &str = "devstoreaccount1";
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Local,
    S3,
    Azure,
}

impl Backend {
    /// The backend this run of the tests is for. An unknown name fails
    /// rather than silently testing the local directory.
    pub fn current() -> Backend {
        match std::env::var("KVAULT_TEST_BACKEND").as_deref() {
            Err(_) | Ok("" | "local") => Backend::Local,
            Ok("s3") => Backend::S3,
            Ok("azure") => Backend::Azure,
            Ok(other) => panic!("KVAULT_TEST_BACKEND={other}: expected local, s3 or azure"),
        }
    }

    pub fn is_local(self) -> bool {
        self == Backend::Local
    }

    fn endpoint(self) -> String {
        let var = match self {
            Backend::Local => unreachable!("a local vault has no endpoint"),
            Backend::S3 => "KVAULT_TEST_S3_ENDPOINT",
            Backend::Azure => "KVAULT_TEST_AZURE_ENDPOINT",
        };
        match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => v,
            _ => panic!(
                "{var} is not set: KVAULT_TEST_BACKEND={self:?} needs the local object stores.\n\
                 Run the whole suite with `scripts/test`, or start them with\n\
                 `eval \"$(scripts/storage start)\"` and run cargo test again."
            ),
        }
    }

    /// The storage settings the vault needs, as `KVAULT_STORAGE_*` would
    /// give them (lowercase keys). Short retries: a test of an outage
    /// should not wait three minutes.
    pub fn options(self) -> Vec<(String, String)> {
        let pairs: Vec<(&str, String)> = match self {
            Backend::Local => Vec::new(),
            Backend::S3 => vec![
                ("endpoint", self.endpoint()),
                ("allow_http", "true".into()),
                ("region", "us-east-1".into()),
                ("aws_access_key_id", "vault-test".into()),
                ("aws_secret_access_key", "vault-test-secret".into()),
                ("retry_timeout", "20s".into()),
            ],
            Backend::Azure => vec![
                (
                    "azure_storage_endpoint",
                    format!("{}/{AZURITE_ACCOUNT}", self.endpoint()),
                ),
                ("allow_http", "true".into()),
                ("azure_storage_account_name", AZURITE_ACCOUNT.into()),
                ("azure_storage_account_key", AZURITE_KEY.into()),
                ("retry_timeout", "20s".into()),
            ],
        };
        pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    /// The same settings as environment variables for a `vault` process.
    pub fn env(self) -> Vec<(String, String)> {
        self.options()
            .into_iter()
            .map(|(k, v)| (format!("KVAULT_STORAGE_{}", k.to_ascii_uppercase()), v))
            .collect()
    }

    /// A fresh vault location: `dir/vault` locally, a new prefix of the
    /// test bucket otherwise.
    pub fn new_location(self, dir: &std::path::Path) -> String {
        match self {
            Backend::Local => dir.join("vault").to_str().unwrap().to_string(),
            Backend::S3 => format!("s3://{TEST_BUCKET}/{}", unique_prefix()),
            Backend::Azure => format!("az://{TEST_BUCKET}/{}", unique_prefix()),
        }
    }

    /// Empty storage for a vault an in-process test makes itself.
    pub fn create_storage(self, dir: &std::path::Path) -> Arc<dyn Storage> {
        match self {
            Backend::Local => {
                Arc::new(vault::storage::local::LocalDir::create(dir.join("vault")).unwrap())
            }
            _ => self.storage(&self.new_location(dir)),
        }
    }

    /// The storage of the vault at `location`, as `vault` itself opens it.
    pub fn storage(self, location: &str) -> Arc<dyn Storage> {
        let opts = self.options();
        let pairs: Vec<(&str, &str)> = opts.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        VaultLocation::parse(location)
            .unwrap()
            .open(&StorageOptions::from_pairs(&pairs))
            .unwrap()
    }
}

fn unique_prefix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "t-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Every object of a vault (config, keys, packs, index, snapshots, locks,
/// uploads), by name.
pub fn all_objects(storage: &dyn Storage) -> Vec<ObjectName> {
    let mut out = Vec::new();
    if storage.exists(&ObjectName::config()).unwrap() {
        out.push(ObjectName::config());
    }
    for kind in [
        Dir::Keys,
        Dir::Packs,
        Dir::Index,
        Dir::Snapshots,
        Dir::Locks,
        Dir::Uploads,
        Dir::Runs,
    ] {
        for l in storage.list(kind).unwrap() {
            out.push(ObjectName::new(kind, l.name));
        }
    }
    out
}

/// Replaces an object's bytes, as damage or an intruder would: the store
/// keeps immutable objects, so this deletes and writes it again.
pub fn overwrite(storage: &dyn Storage, name: &ObjectName, bytes: &[u8]) {
    storage.delete(name).unwrap();
    assert!(storage.put_if_absent(name, bytes).unwrap());
}

/// Flips one byte in the middle of an object.
pub fn flip_byte(storage: &dyn Storage, name: &ObjectName) {
    let mut bytes = storage.get(name).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x20;
    overwrite(storage, name, &bytes);
}
