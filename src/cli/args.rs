//! Arguments more than one command takes: how to find and unlock a vault,
//! and how to reach a Kafka cluster.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use vault::Result;
use vault::kafka::KafkaOptions;
use vault::lock::{LockKind, VaultLock};
use vault::password;
use vault::repository::{Indexed, Open, Repository};
use vault::storage::Storage;
use vault::storage::location::{StorageOptions, VaultLocation};

/// How to find and unlock a vault; every command that opens one takes these.
#[derive(Args, Debug, Clone)]
pub struct VaultArgs {
    /// Where the vault lives: a directory (PATH or file:///PATH), or
    /// s3://BUCKET/PREFIX, az://CONTAINER/PREFIX, gs://BUCKET/PREFIX.
    #[arg(long, value_name = "PATH|URL", env = "KVAULT_REPO")]
    pub vault: String,
    /// A setting of the vault's object store, e.g. endpoint=http://127.0.0.1:9000
    /// or region=eu-west-1 (also KVAULT_STORAGE_KEY=VALUE); repeatable.
    /// Credentials come from the cloud's usual environment and profiles.
    #[arg(long = "storage-option", value_name = "KEY=VALUE")]
    pub storage_options: Vec<String>,
    /// File whose first line is the passphrase (else KVAULT_PASSWORD_FILE,
    /// KVAULT_PASSWORD, or a prompt on a terminal).
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Where the local index cache lives [default: ~/.cache/kvault].
    #[arg(long, value_name = "DIR", env = "KVAULT_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// How long to wait for a conflicting lock (a running gc, or for gc
    /// the running snapshots and restores) before giving up. The default
    /// outlasts the 10 minutes a lock of a dead process on another host
    /// must be watched before it counts as stale.
    #[arg(long, default_value_t = vault::lock::DEFAULT_WAIT.as_secs(), value_name = "SECS")]
    pub lock_wait: u64,
}

impl VaultArgs {
    pub fn location(&self) -> Result<VaultLocation> {
        VaultLocation::parse(&self.vault)
    }

    pub fn storage_options(&self) -> Result<StorageOptions> {
        StorageOptions::from_env_and_args(&self.storage_options)
    }

    pub fn storage(&self) -> Result<Arc<dyn Storage>> {
        self.location()?.open(&self.storage_options()?)
    }

    pub fn passphrase(&self, confirm: bool) -> Result<password::Passphrase> {
        password::passphrase(self.password_file.as_deref(), confirm)
    }

    /// Opens and unlocks the vault.
    pub fn unlock(&self) -> Result<Repository<Open>> {
        let repo = Repository::open(self.storage()?)?;
        vault::timings::mark("opened the vault (config read)");
        let passphrase = self.passphrase(false)?;
        let repo = repo.unlock(&passphrase);
        vault::timings::mark("unlocked (key derivation)");
        repo
    }

    /// Unlocks, takes a vault lock (waiting for a running gc), then loads
    /// the index, so the index it sees is the one gc left behind.
    pub fn open_locked(
        &self,
        kind: LockKind,
        command: &str,
    ) -> Result<(Repository<Indexed>, VaultLock)> {
        let repo = self.unlock()?;
        let lock = VaultLock::acquire(
            Arc::clone(repo.storage()),
            kind,
            command,
            Duration::from_secs(self.lock_wait),
        )?;
        vault::timings::mark("locked");
        let repo = repo.index(&self.cache_dir())?;
        vault::timings::mark("index loaded");
        for w in repo.take_warnings() {
            super::output::warn(&w);
        }
        Ok((repo, lock))
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.cache_dir
            .clone()
            .unwrap_or_else(vault::host::default_cache_dir)
    }
}

/// librdkafka settings, as kcat takes them; secrets from files, never
/// from the command line.
#[derive(Args, Debug, Clone)]
pub struct ClientSettings {
    /// Any librdkafka property, as kcat takes it: -X security.protocol=SASL_SSL.
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    pub properties: Vec<String>,
    /// A librdkafka properties file (key=value lines), as kcat's -F; -X wins over it.
    #[arg(short = 'F', value_name = "FILE")]
    pub properties_file: Option<PathBuf>,
    /// File whose first line is the SASL password (sets sasl.password).
    #[arg(long, value_name = "FILE", env = "KVAULT_SASL_PASSWORD_FILE")]
    pub sasl_password_file: Option<PathBuf>,
}

impl ClientSettings {
    /// The options for `brokers`: the configuration profile's client
    /// settings, the properties file, then the password file, then each
    /// -X, later ones winning.
    pub fn options(&self, brokers: &str) -> Result<KafkaOptions> {
        let mut o = KafkaOptions::from_settings(
            brokers,
            self.properties_file.as_deref(),
            self.sasl_password_file.as_deref(),
            &self.properties,
        )?;
        // Under everything the command line gives (the file, the password
        // file and -X come later in the list, so they win).
        let mut layered: Vec<(String, String)> =
            super::config::profile_client_properties().to_vec();
        layered.append(&mut o.properties);
        o.properties = layered;
        for w in &o.warnings {
            super::output::warn(w);
        }
        Ok(o)
    }
}

/// gc's keep rules, as `vault gc` and `vault stats` take them. They add
/// to the profile's (`vault::gc::rules`), never replace them.
#[derive(Args, Debug, Clone)]
pub struct KeepFlags {
    /// Keep the N newest snapshots.
    #[arg(long, default_value_t = 0, value_name = "N")]
    keep_last: usize,
    /// Keep the newest snapshot of each of the last N hours that have one.
    #[arg(long, default_value_t = 0, value_name = "N")]
    keep_hourly: usize,
    /// … of each of the last N days (UTC).
    #[arg(long, default_value_t = 0, value_name = "N")]
    keep_daily: usize,
    /// … of each of the last N weeks (Monday to Sunday, UTC).
    #[arg(long, default_value_t = 0, value_name = "N")]
    keep_weekly: usize,
    /// … of each of the last N months.
    #[arg(long, default_value_t = 0, value_name = "N")]
    keep_monthly: usize,
    /// Keep every snapshot younger than this: 12h, 30d, 2w, 1y.
    #[arg(long, value_name = "DURATION")]
    keep_within: Option<String>,
    /// Keep every snapshot with this tag (repeatable).
    #[arg(long = "keep-tag", value_name = "T")]
    keep_tags: Vec<String>,
}

impl KeepFlags {
    pub fn rules(&self) -> Result<vault::gc::KeepRules> {
        keep_rules(
            [
                self.keep_last,
                self.keep_hourly,
                self.keep_daily,
                self.keep_weekly,
                self.keep_monthly,
            ],
            self.keep_within.as_deref(),
            &self.keep_tags,
        )
    }
}

/// The rules of `--keep-last … --keep-monthly`, `--keep-within` and `--keep-tag`.
pub fn keep_rules(
    [last, hourly, daily, weekly, monthly]: [usize; 5],
    within: Option<&str>,
    tags: &[String],
) -> Result<vault::gc::KeepRules> {
    Ok(vault::gc::KeepRules {
        last,
        hourly,
        daily,
        weekly,
        monthly,
        within_ms: within.map(vault::time::parse_duration).transpose()?,
        tags: tags.to_vec(),
    })
}
