//! The `vault` command line: a thin layer over the `vault` library. Each
//! command is a file of its own (a folder for one with several modes:
//! `snapshot/`, `restore/`), holding its arguments, its calls into the
//! library and its output (a table for people, a typed `--json` report
//! for scripts). Commands share only `args`, `output` and `config` (the
//! profile file), never each other.

mod args;
mod cat;
mod check;
mod completions;
pub mod config;
mod diff;
mod forget;
mod gc;
mod init;
mod key;
mod ls;
pub mod output;
mod repair;
mod restore;
mod snapshot;
mod snapshots;
mod stats;
mod status;

use clap::{CommandFactory, Parser, Subcommand};
use vault::Result;

#[derive(Parser, Debug)]
#[command(
    name = "vault",
    version,
    about = "Encrypted, deduplicated, offset-exact backups of Apache Kafka topics",
    after_help = "Environment: KVAULT_REPO (--vault), KVAULT_PASSWORD_FILE, KVAULT_PASSWORD, \
                  KVAULT_SASL_PASSWORD_FILE, KVAULT_CACHE_DIR.\n\
                  The KVAULT_ prefix keeps clear of HashiCorp Vault's VAULT_* variables.\n\
                  Exit codes: 0 success, 1 failure, 2 bad usage, 3 damaged vault data."
)]
pub struct Cli {
    /// A configuration file with named profiles [default:
    /// ~/.config/kvault/config.toml, then /etc/kvault/config.toml].
    #[arg(long, global = true, value_name = "FILE", env = "KVAULT_CONFIG")]
    config: Option<std::path::PathBuf>,
    /// The profile of the configuration file to use [default: `default`].
    #[arg(long, global = true, value_name = "NAME", env = "KVAULT_PROFILE")]
    profile: Option<String>,
    /// text, or json: one JSON object per log line on standard error, for
    /// log shippers (reports on standard output are unchanged).
    #[arg(long, global = true, default_value = "text", value_name = "text|json", env = "KVAULT_LOG_FORMAT",
          value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a new, empty vault.
    Init(init::InitArgs),
    /// Back up Kafka topics: a consistent, incremental, deduplicated snapshot.
    // gc's keep flags (the group clap names after `KeepFlags`) prune only
    // in continuous mode.
    #[command(mut_group("KeepFlags", |g| g.requires("every")))]
    Snapshot(snapshot::SnapshotArgs),
    /// Restore a snapshot into a Kafka cluster, with consumer-group offsets translated.
    Restore(restore::RestoreArgs),
    /// Forget snapshots by keep rules and free the space nothing kept uses.
    Gc(gc::GcArgs),
    /// Forget one snapshot; the next gc frees its data.
    Forget(forget::ForgetArgs),
    /// Verify the vault: trees, index and packs (and chunk contents with --read-data).
    Check(check::CheckArgs),
    /// List the vault's snapshots, grouped as gc counts them.
    Snapshots(snapshots::SnapshotsArgs),
    /// List what a snapshot holds: topics, partitions, offset and time ranges, groups.
    Ls(ls::LsArgs),
    /// Print records of a snapshot (JSON Lines or a kcat -f format), without a cluster.
    Cat(cat::CatArgs),
    /// Show what snapshot B holds beyond snapshot A, per partition, and the group offsets that moved.
    Diff(diff::DiffArgs),
    /// Show logical and stored bytes, dedup and compression ratios per topic and snapshot, and what gc would free.
    Stats(stats::StatsArgs),
    /// Print a shell completion script: vault completions bash > /etc/bash_completion.d/vault
    Completions(completions::CompletionsArgs),
    /// Print the man page (or write one per command with --dir).
    Man(completions::ManArgs),
    /// Show the distributed snapshots in progress: workers, partitions done, bytes and rate.
    Status(status::StatusArgs),
    /// Manage the key files that unlock a vault.
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Repair a damaged vault.
    #[command(subcommand)]
    Repair(repair::RepairCommand),
}

pub fn run(cli: Cli) -> Result<()> {
    output::init_logging(cli.log_format == "json");
    match cli.command {
        Command::Init(a) => init::run(&a),
        Command::Snapshot(a) => snapshot::run(&a),
        Command::Restore(a) => restore::run(&a),
        Command::Gc(a) => gc::run(&a),
        Command::Forget(a) => forget::run(&a),
        Command::Check(a) => check::run(&a),
        Command::Snapshots(a) => snapshots::run(&a),
        Command::Status(a) => status::run(&a),
        Command::Ls(a) => ls::run(&a),
        Command::Stats(a) => stats::run(&a),
        Command::Completions(a) => completions::completions(&a, Cli::command()),
        Command::Man(a) => completions::man(&a, Cli::command()),
        Command::Cat(a) => cat::run(&a),
        Command::Diff(a) => diff::run(&a),
        Command::Key(c) => key::run(c),
        Command::Repair(c) => repair::run(c),
    }
}
