//! Argument parsing and output. Each command opens the vault to the state it
//! needs and calls into the library; nothing here touches the format.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use serde_json::json;
use vault::kafka::{KafkaOptions, TopicSelection};
use vault::lock::{LockKind, VaultLock};
use vault::repository::{Indexed, InitOptions, Open, Repository};
use vault::snapshot::{SnapshotOptions, SnapshotPlan, SnapshotRequest};
use vault::storage::local::LocalDir;
use vault::{Error, Result, password};
use vault_format::compress::Compression;
use vault_format::config::VaultConfig;
use vault_format::keys::KdfParams;

#[derive(Parser, Debug)]
#[command(
    name = "vault",
    version,
    about = "Encrypted, deduplicated, offset-exact backups of Apache Kafka topics",
    after_help = "Environment: KVAULT_REPO (--vault), KVAULT_PASSWORD_FILE, KVAULT_PASSWORD, KVAULT_CACHE_DIR.\n\
                  The KVAULT_ prefix keeps clear of HashiCorp Vault's VAULT_* variables."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a new, empty vault.
    Init(InitArgs),
    /// Back up Kafka topics: a consistent, incremental, deduplicated snapshot.
    Snapshot(SnapshotArgs),
    /// Restore a snapshot into a Kafka cluster, with consumer-group offsets translated.
    Restore(RestoreArgs),
    /// Forget snapshots by keep rules and free the space nothing kept uses.
    Gc(crate::cli_maintain::GcArgs),
    /// Forget one snapshot; the next gc frees its data.
    Forget {
        #[command(flatten)]
        vault: VaultArgs,
        /// The snapshot: an id or a unique prefix.
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Verify the vault: trees, index and packs (and chunk contents with --read-data).
    Check(crate::cli_maintain::CheckArgs),
    /// List the vault's snapshots.
    Snapshots {
        #[command(flatten)]
        vault: VaultArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Manage the key files that unlock a vault.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Repair a damaged vault.
    #[command(subcommand)]
    Repair(RepairCommand),
}

#[derive(Subcommand, Debug)]
enum RepairCommand {
    /// Rewrite damaged or missing index objects from the packs' trailers.
    Index {
        #[command(flatten)]
        vault: VaultArgs,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum KeyCommand {
    /// Add a key file: another passphrase for the same vault.
    Add {
        #[command(flatten)]
        vault: VaultArgs,
        /// File holding the new passphrase (first line).
        #[arg(long, value_name = "FILE")]
        new_password_file: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

/// How to find and unlock a vault; every command that opens one takes these.
#[derive(Args, Debug, Clone)]
pub struct VaultArgs {
    /// The vault's directory.
    #[arg(long, value_name = "PATH", env = "KVAULT_REPO")]
    vault: PathBuf,
    /// File whose first line is the passphrase (else KVAULT_PASSWORD_FILE,
    /// KVAULT_PASSWORD, or a prompt on a terminal).
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Where the local index cache lives [default: ~/.cache/kvault].
    #[arg(long, value_name = "DIR", env = "KVAULT_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// How long to wait for a conflicting lock (a running gc, or for gc
    /// the running snapshots and restores) before giving up.
    #[arg(long, default_value_t = 600, value_name = "SECS")]
    lock_wait: u64,
}

#[derive(Args, Debug)]
struct SnapshotArgs {
    #[command(flatten)]
    vault: VaultArgs,
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Topics to back up, comma-separated (internal topics only when named here).
    #[arg(long, value_delimiter = ',', conflicts_with = "topic_regex")]
    topics: Vec<String>,
    /// Back up the topics whose names match this regular expression.
    #[arg(long, value_name = "RE")]
    topic_regex: Option<String>,
    /// Leave out the topics whose names match this regular expression.
    #[arg(long, value_name = "RE")]
    exclude: Option<String>,
    /// A tag for the snapshot (repeatable); `vault gc --keep-tag` keeps tagged snapshots.
    #[arg(long = "tag", value_name = "T")]
    tags: Vec<String>,
    /// Also back up records of open and aborted transactions (default: read_committed).
    #[arg(long)]
    read_uncommitted: bool,
    /// Name this source instead of using its cluster id: needed when the
    /// cluster gives no cluster id or topic IDs. Use the same name on every run.
    #[arg(long, value_name = "NAME")]
    source: Option<String>,
    /// Leave out records older than this (e.g. 90d), overriding the vault's
    /// data horizon; `none` keeps everything.
    #[arg(long, value_name = "DURATION|none")]
    data_horizon: Option<String>,
    /// Fail when the cluster delivers nothing for this many seconds.
    #[arg(long, default_value_t = 120, value_name = "SECS")]
    stall_timeout: u64,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub vault: VaultArgs,
    /// The snapshot: `latest`, an id, or a unique prefix of one.
    #[arg(long, value_name = "ID")]
    pub snapshot_id: String,
    /// Bootstrap servers of the target cluster, HOST:PORT[,HOST:PORT...].
    #[arg(long, value_name = "HOST:PORT", env = "KVAULT_TARGET_BROKERS")]
    pub brokers: String,
    #[command(flatten)]
    pub client: ClientSettings,
    /// Topics to restore, comma-separated [default: every topic in the snapshot].
    #[arg(long, value_delimiter = ',')]
    pub topics: Vec<String>,
    /// Restore topic SRC into topic DST (repeatable).
    #[arg(long = "rename", value_name = "SRC=DST")]
    pub renames: Vec<String>,
    /// Only records with a timestamp at or after this (RFC 3339 or epoch ms).
    #[arg(long, value_name = "TIME")]
    pub from_time: Option<String>,
    /// Only records with a timestamp before this (RFC 3339 or epoch ms).
    #[arg(long, value_name = "TIME")]
    pub to_time: Option<String>,
    /// Consumer groups whose offsets to translate and commit: all, none, or g1,g2.
    #[arg(long, default_value = "all", value_name = "all|none|G1,G2")]
    pub consumer_groups: String,
    /// A config for the topics restore creates, over the backed-up ones
    /// (repeatable), e.g. --topic-config retention.ms=-1.
    #[arg(long = "topic-config", value_name = "KEY=VALUE")]
    pub topic_configs: Vec<String>,
    /// Show what would be restored and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// With `--snapshot-id latest`: the source (cluster id or --source
    /// name) whose snapshot is meant, when the vault holds several.
    #[arg(long, value_name = "NAME")]
    pub source: Option<String>,
    /// Leave an unfinished restore into the same topics (its committed
    /// records stay) and start this one, instead of refusing.
    #[arg(long)]
    pub abandon_unfinished: bool,
    /// Commit a transaction after this many MiB of records.
    #[arg(long, default_value_t = 256, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub transaction_mib: u64,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    pub json: bool,
}

/// How to reach a Kafka cluster.
#[derive(Args, Debug, Clone)]
struct KafkaArgs {
    /// Bootstrap servers, HOST:PORT[,HOST:PORT...].
    #[arg(long, value_name = "HOST:PORT", env = "KVAULT_BROKERS")]
    brokers: String,
    #[command(flatten)]
    client: ClientSettings,
}

impl KafkaArgs {
    fn options(&self) -> Result<KafkaOptions> {
        self.client.options(&self.brokers)
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
    /// The options for `brokers`: the properties file, then the password
    /// file, then each -X, later ones winning.
    pub fn options(&self, brokers: &str) -> Result<KafkaOptions> {
        let mut o = KafkaOptions::new(brokers);
        if let Some(f) = &self.properties_file {
            o.properties.extend(KafkaOptions::read_properties_file(f)?);
        }
        if let Some(f) = &self.sasl_password_file {
            o.properties
                .push(KafkaOptions::secret_from_file("sasl.password", f)?);
        }
        for p in &self.properties {
            o.properties.push(KafkaOptions::parse_property(p)?);
        }
        Ok(o)
    }
}

#[derive(Args, Debug)]
struct InitArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// zstd level for chunks (1-19); 0 stores them uncompressed.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(0..=19))]
    compression_level: i32,
    /// Target size of pack files, in MiB.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=512))]
    pack_size_mib: u32,
    /// Data horizon: new snapshots leave out records older than this (e.g.
    /// 90d), so gc can free them. Default: keep everything.
    #[arg(long, value_name = "DURATION")]
    data_horizon: Option<String>,
    /// Average chunk size in KiB (min is a quarter, max four times).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1024))]
    avg_chunk_kib: u32,
    /// Argon2id memory cost in MiB for the key file.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(8..=4096))]
    kdf_memory_mib: u32,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    json: bool,
}

impl VaultArgs {
    fn storage(&self) -> Arc<LocalDir> {
        Arc::new(LocalDir::open(&self.vault))
    }

    fn passphrase(&self, confirm: bool) -> Result<password::Passphrase> {
        password::passphrase(self.password_file.as_deref(), confirm)
    }

    /// Opens and unlocks the vault.
    pub fn unlock(&self) -> Result<Repository<Open>> {
        let repo = Repository::open(self.storage())?;
        repo.unlock(&self.passphrase(false)?)
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
            std::time::Duration::from_secs(self.lock_wait),
        )?;
        let repo = repo.index(&self.cache_dir())?;
        for w in repo.take_warnings() {
            eprintln!("vault: warning: {w}");
        }
        Ok((repo, lock))
    }

    fn cache_dir(&self) -> PathBuf {
        self.cache_dir
            .clone()
            .unwrap_or_else(vault::default_cache_dir)
    }
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Init(a) => init(a),
        Command::Snapshot(a) => snapshot(a),
        Command::Restore(a) => crate::cli_restore::restore(a),
        Command::Snapshots { vault, json } => snapshots(&vault, json),
        Command::Gc(a) => crate::cli_maintain::gc(a),
        Command::Forget { vault, id, json } => crate::cli_maintain::forget(&vault, &id, json),
        Command::Check(a) => crate::cli_maintain::check(a),
        Command::Repair(RepairCommand::Index { vault, json }) => {
            crate::cli_maintain::repair_index(&vault, json)
        }
        Command::Key(KeyCommand::Add {
            vault,
            new_password_file,
            json,
        }) => {
            let repo = vault.unlock()?;
            let new = password::read_password_file(&new_password_file)?;
            let name = repo.add_key(&new, KdfParams::DEFAULT)?;
            if json {
                println!("{}", json!({ "key_file": name }));
            } else {
                println!("added key file {name}");
            }
            Ok(())
        }
    }
}

fn init(a: InitArgs) -> Result<()> {
    let pass = a.vault.passphrase(true)?;
    if a.vault.vault.join("config").exists() {
        return Err(Error::Usage(format!(
            "a vault already exists at {}",
            a.vault.vault.display()
        )));
    }
    // Everything that can be wrong with the options fails before anything
    // is created.
    let mut config = VaultConfig::new(Default::default(), vault::now_ms());
    config.compression = Compression((a.compression_level > 0).then_some(a.compression_level));
    config.pack_target_size = a.pack_size_mib << 20;
    config.data_horizon_ms = a
        .data_horizon
        .as_deref()
        .map(vault::time::parse_duration)
        .transpose()?;
    let avg = a.avg_chunk_kib << 10;
    config.chunker = vault_format::chunker::ChunkerParams {
        min: avg / 4,
        avg,
        max: avg * 4,
    };
    let kdf = KdfParams {
        m_cost: a.kdf_memory_mib * 1024,
        ..KdfParams::DEFAULT
    };
    let existed = a.vault.vault.exists();
    let storage = Arc::new(LocalDir::create(&a.vault.vault)?);
    let repo = Repository::init(
        storage.clone(),
        &pass,
        InitOptions {
            kdf,
            config: Some(config),
        },
    );
    let repo = match repo {
        Ok(r) => r,
        Err(e) => {
            // A failed init leaves nothing behind, so the next one can run.
            storage.remove_unfinished(existed);
            return Err(e);
        }
    };
    print_init(&a.vault.vault, &repo, a.json);
    Ok(())
}

fn print_init(path: &Path, repo: &Repository<Open>, as_json: bool) {
    let c = repo.config();
    if as_json {
        println!(
            "{}",
            json!({
                "vault": path.display().to_string(),
                "vault_id": c.vault_id.to_hex(),
                "format_version": vault_format::FORMAT_VERSION,
                "chunk_sizes": { "min": c.chunker.min, "avg": c.chunker.avg, "max": c.chunker.max },
                "compression_level": c.compression.0,
                "pack_target_size": c.pack_target_size,
            })
        );
    } else {
        println!("created vault {} at {}", c.vault_id, path.display());
        println!("keep the passphrase safe: without it the vault cannot be read");
    }
}

fn snapshots(v: &VaultArgs, as_json: bool) -> Result<()> {
    let repo = v.unlock()?;
    let list = vault::catalog::list(&repo)?;
    let group_by = vault::catalog::GroupBy::default();
    if as_json {
        let items: Vec<_> = list
            .iter()
            .map(|e| {
                let m = &e.manifest;
                json!({
                    "id": e.id.to_hex(),
                    "time": format_time(m.time_ms),
                    "time_ms": m.time_ms,
                    "parent": m.parent.map(|p| p.to_hex()),
                    "source": m.source,
                    "source_cluster_id": m.source_cluster_id,
                    "selection": m.selection.to_string(),
                    "group": group_by.key(m).to_string(),
                    "read_committed": m.read_committed,
                    "topics": m.topics.iter().map(|t| t.name.clone()).collect::<Vec<_>>(),
                    "topic_ids": m.topics.iter().map(|t| (
                        t.name.clone(),
                        t.topic_id.map(|i| i.to_kafka_string()),
                    )).collect::<std::collections::BTreeMap<_, _>>(),
                    "records": m.total_records(),
                    "bytes": m.total_bytes(),
                    "tags": m.tags,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(items));
        return Ok(());
    }
    if list.is_empty() {
        println!("no snapshots in {}", v.vault.display());
        return Ok(());
    }
    // One table per group: the snapshots gc's keep rules count together.
    let mut groups: std::collections::BTreeMap<_, Vec<&vault::catalog::CatalogEntry>> =
        std::collections::BTreeMap::new();
    for e in &list {
        groups.entry(group_by.key(&e.manifest)).or_default().push(e);
    }
    for (i, (key, entries)) in groups.iter().enumerate() {
        if i > 0 {
            println!();
        }
        println!("{key}:");
        println!(
            "  {:<16}  {:<20}  {:>12}  {:>10}  {:<20}  topics",
            "id", "time (UTC)", "records", "bytes", "tags"
        );
        for e in entries {
            let m = &e.manifest;
            let topics: Vec<_> = m.topics.iter().map(|t| t.name.as_str()).collect();
            println!(
                "  {:<16}  {:<20}  {:>12}  {:>10}  {:<20}  {}{}",
                &e.id.to_hex()[..16],
                format_time(m.time_ms),
                m.total_records(),
                human_bytes(m.total_bytes()),
                m.tags.join(","),
                topics.join(","),
                if m.read_committed {
                    ""
                } else {
                    " (read_uncommitted)"
                }
            );
        }
    }
    Ok(())
}

/// RFC 3339 UTC, second precision.
pub fn format_time(ms: u64) -> String {
    vault::time::format_rfc3339(ms as i64)
}

pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the async runtime", "", e))
}

pub fn progress_bar(total: u64, enabled: bool) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !enabled || !std::io::stderr().is_terminal() {
        return None;
    }
    let pb = indicatif::ProgressBar::new(total);
    pb.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {elapsed_precise} [{wide_bar}] {human_pos}/{human_len} records, {msg}, ETA {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    Some(pb)
}

/// A spinner with a message, for work whose total is not known up front
/// (gc, check). Only on a terminal.
pub fn spinner(enabled: bool) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !enabled || !std::io::stderr().is_terminal() {
        return None;
    }
    let pb = indicatif::ProgressBar::new_spinner();
    pb.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
            .expect("valid template"),
    );
    pb.enable_steady_tick(std::time::Duration::from_millis(200));
    Some(pb)
}

fn snapshot(a: SnapshotArgs) -> Result<()> {
    let kafka = a.kafka.options()?;
    let request = SnapshotRequest {
        selection: TopicSelection::new(
            a.topics.clone(),
            a.topic_regex.as_deref(),
            a.exclude.as_deref(),
        )?,
        read_committed: !a.read_uncommitted,
        source: a.source.clone(),
    };
    let (repo, lock) = a.vault.open_locked(LockKind::Shared, "snapshot")?;
    let rt = runtime()?;
    let plan = rt.block_on(SnapshotPlan::make(&repo, &kafka, &request))?;
    for w in &plan.warnings {
        eprintln!("vault: warning: {w}");
    }
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let opts = SnapshotOptions {
        kafka,
        tags: a.tags.clone(),
        workers,
        stall_timeout: std::time::Duration::from_secs(a.stall_timeout),
        progress: progress_bar(plan.records_to_read(), !a.json),
        data_horizon_ms: match a.data_horizon.as_deref() {
            Some("none") => None,
            Some(d) => Some(vault::time::parse_duration(d)?),
            None => repo.config().data_horizon_ms,
        },
    };
    let out = vault::snapshot::execute(&repo, &plan, &opts, &lock)?;
    // The plan's warnings were printed before; these arose while reading.
    for w in out.warnings.iter().skip(plan.warnings.len()) {
        eprintln!("vault: warning: {w}");
    }
    let ratio = if out.bytes_added > 0 {
        out.bytes_read as f64 / out.bytes_added as f64
    } else {
        0.0
    };
    if a.json {
        println!(
            "{}",
            json!({
                "id": out.id.to_hex(),
                "parent": out.manifest.parent.map(|p| p.to_hex()),
                "source": out.manifest.source,
                "source_cluster_id": out.manifest.source_cluster_id,
                "selection": out.manifest.selection.to_string(),
                "topics": out.manifest.topics.iter().map(|t| t.name.clone()).collect::<Vec<_>>(),
                "partitions": plan.partitions.len(),
                "consumer_groups": out.manifest.groups.len(),
                "records_read": out.records_read,
                "bytes_read": out.bytes_read,
                "bytes_added": out.bytes_added,
                "chunks_added": out.chunks_added,
                "chunks_deduplicated": out.chunks_deduplicated,
                "dedup_ratio": ratio,
                "records_total": out.manifest.total_records(),
                "duration_ms": out.duration.as_millis() as u64,
                "warnings": out.warnings,
            })
        );
    } else {
        println!("{}", out.id);
        eprintln!(
            "snapshot {} committed: {} records ({}) read from {} partitions, {} added to the vault{}, {} consumer groups, {:.1} s",
            &out.id.to_hex()[..16],
            out.records_read,
            human_bytes(out.bytes_read),
            plan.partitions.len(),
            human_bytes(out.bytes_added),
            if out.bytes_added > 0 {
                format!(" (read/added {ratio:.1}x)")
            } else {
                String::new()
            },
            out.manifest.groups.len(),
            out.duration.as_secs_f64()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times_and_sizes() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(1_795_322_322_818), "2026-11-22T04:38:42Z");
        assert_eq!(format_time(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
    }
}
