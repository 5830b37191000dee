//! The arguments of `vault snapshot`, which its three modes (one snapshot,
//! `--every`, `--workers`) share, and what they make of them.

use std::time::Duration;

use clap::Args;
use vault::catalog::GroupKey;
use vault::gc::{EveryScope, KeepPolicy};
use vault::kafka::TopicSelection;
use vault::snapshot::{HorizonOverride, SnapshotOptions, SnapshotRequest};
use vault::{Error, Result};

use crate::cli::args::{ClientSettings, KeepFlags, VaultArgs};

#[derive(Args, Debug)]
pub struct SnapshotArgs {
    #[command(flatten)]
    pub(super) vault: VaultArgs,
    /// Bootstrap servers, HOST:PORT[,HOST:PORT...].
    #[arg(long, value_name = "HOST:PORT", env = "KVAULT_BROKERS")]
    pub(super) brokers: String,
    #[command(flatten)]
    pub(super) client: ClientSettings,
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
    pub(super) tags: Vec<String>,
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
    /// Take the snapshot together with every other worker started with the
    /// same NAME (on this host or others): the consumer group
    /// kvault-snapshot-NAME-HASH shares the partitions out, and whichever worker
    /// finishes last commits. Every worker exits 0 once it is committed.
    #[arg(long, value_name = "NAME")]
    pub(super) workers: Option<String>,
    /// With --workers: a worker silent this long is taken for dead and its
    /// partitions go to the others.
    #[arg(long, default_value_t = 10, value_name = "SECS", requires = "workers")]
    pub(super) session_timeout: u64,
    /// With --workers: partitions one worker reads in one pass (each is
    /// committed as a part when its pass ends).
    #[arg(long, default_value_t = 8, value_name = "N", requires = "workers")]
    pub(super) partitions_per_batch: usize,
    /// With --workers: a worker started this soon after its run was
    /// committed (a pod scheduled late) reports that snapshot instead of
    /// starting the next run.
    #[arg(long, default_value_t = 600, value_name = "SECS", requires = "workers")]
    pub(super) rejoin_window: u64,
    /// Take a snapshot every DURATION (e.g. 5m), keeping the process, its
    /// cache and its settings warm; SIGTERM or Ctrl-C between snapshots
    /// exits 0 (during one, it finishes first; a second signal stops at
    /// once, committing nothing of it). Prints a JSON line per snapshot with --json.
    #[arg(long, value_name = "DURATION", conflicts_with = "workers")]
    pub(super) every: Option<String>,
    /// Write Prometheus text metrics to this file after each snapshot (the
    /// node_exporter textfile collector convention).
    #[arg(long, value_name = "PATH")]
    pub(super) metrics_file: Option<std::path::PathBuf>,
    /// With --every: serve the metrics on http://HOST:PORT/metrics.
    #[arg(long, value_name = "HOST:PORT", requires = "every")]
    pub(super) metrics_addr: Option<String>,
    /// Fail when the cluster delivers nothing for this many seconds.
    #[arg(long, default_value_t = 120, value_name = "SECS")]
    pub(super) stall_timeout: u64,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    pub(super) json: bool,
    /// Last: its help heading holds every flag declared after it.
    #[command(flatten)]
    pub(super) keep: KeepArgs,
}

impl SnapshotArgs {
    /// What the snapshot reads: the topics, the isolation level, the source.
    pub(super) fn request(&self) -> Result<SnapshotRequest> {
        Ok(SnapshotRequest {
            selection: TopicSelection::new(
                self.topics.clone(),
                self.topic_regex.as_deref(),
                self.exclude.as_deref(),
            )?,
            read_committed: !self.read_uncommitted,
            source: self.source.clone(),
        })
    }

    /// `--data-horizon`, against the vault's own.
    pub(super) fn horizon(&self) -> Result<HorizonOverride> {
        HorizonOverride::from_flag(self.data_horizon.as_deref())
    }

    /// The options of one snapshot (not a worker's) whose data horizon
    /// is `horizon_ms`.
    pub(super) fn snapshot_options(
        &self,
        horizon_ms: Option<u64>,
        progress: Option<indicatif::ProgressBar>,
    ) -> SnapshotOptions {
        SnapshotOptions {
            tags: self.tags.clone(),
            workers: pipeline_threads(),
            stall_timeout: Duration::from_secs(self.stall_timeout),
            progress,
            data_horizon_ms: horizon_ms,
            partitions_per_pass: None,
        }
    }
}

/// The pipeline's threads: one a core.
pub(super) fn pipeline_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

/// gc's keep rules, on `vault snapshot --every`: the same flags as
/// `vault gc` takes (`KeepFlags`), which need `--every` here, and whose
/// groups they prune. They add to the profile's keep block
/// (`vault::gc::rules`).
#[derive(Args, Debug)]
pub struct KeepArgs {
    // After each snapshot (with --every), as `vault gc` would.
    #[command(flatten, next_help_heading = "Keep rules (with --every)")]
    rules: KeepFlags,
    /// With --every: whose snapshots the keep rules prune. `own` (the
    /// default): this process's source and selection, and only snapshots
    /// with no tag but its own --tag. `all`: every group in the vault,
    /// each counted on its own, as `vault gc` does.
    #[arg(
        long,
        default_value = "own",
        value_name = "own|all",
        requires = "every"
    )]
    prune_groups: String,
}

impl KeepArgs {
    /// The policy for the snapshots of `group` (a source-and-selection key)
    /// taken with `own_tags`, or `None` if no rule is given anywhere.
    pub(super) fn policy(
        &self,
        group: GroupKey,
        own_tags: &[String],
    ) -> Result<Option<KeepPolicy>> {
        let flags = self.rules.rules()?;
        let scope = match self.prune_groups.as_str() {
            "own" => EveryScope::Own {
                group,
                tags: own_tags.to_vec(),
            },
            "all" => EveryScope::Vault,
            other => {
                return Err(Error::Usage(format!(
                    "--prune-groups {other:?}: expected own (this process's source and selection) or all"
                )));
            }
        };
        vault::gc::policy::every_policy(crate::cli::config::profile_keep_rules(), flags, scope)
    }
}
