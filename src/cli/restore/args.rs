//! The arguments of `vault restore`, one process or `--workers`.

use clap::Args;
use vault::Result;
use vault::restore::{RestoreRequest, RestoreSettings};

use super::super::args::{ClientSettings, VaultArgs};

#[derive(Args, Debug)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub(super) vault: VaultArgs,
    /// Restore together with every other worker started with the same NAME
    /// (on this host or others): the consumer group kvault-restore-NAME-ID
    /// shares the target partitions out, each restored exactly once in its
    /// own transactions; the last worker commits the group offsets.
    #[arg(long, value_name = "NAME")]
    pub(super) workers: Option<String>,
    /// With --workers: partitions one worker restores at once.
    #[arg(long, default_value_t = 4, value_name = "N", requires = "workers")]
    pub(super) partitions_in_flight: usize,
    /// With --workers: a worker silent this long is taken for dead and its
    /// partitions go to the others.
    #[arg(long, default_value_t = 10, value_name = "SECS", requires = "workers")]
    pub(super) session_timeout: u64,
    /// The snapshot: `latest`, an id, or a unique prefix of one.
    #[arg(long, value_name = "ID")]
    snapshot_id: String,
    /// Bootstrap servers of the target cluster, HOST:PORT[,HOST:PORT...].
    #[arg(long, value_name = "HOST:PORT", env = "KVAULT_TARGET_BROKERS")]
    pub(super) brokers: String,
    #[command(flatten)]
    pub(super) client: ClientSettings,
    /// Topics to restore, comma-separated [default: every topic in the snapshot].
    #[arg(long, value_delimiter = ',')]
    topics: Vec<String>,
    /// Restore topic SRC into topic DST (repeatable).
    #[arg(long = "rename", value_name = "SRC=DST")]
    renames: Vec<String>,
    /// Only records with a timestamp at or after this (RFC 3339 or epoch ms).
    #[arg(long, value_name = "TIME")]
    from_time: Option<String>,
    /// Only records with a timestamp before this (RFC 3339 or epoch ms).
    #[arg(long, value_name = "TIME")]
    to_time: Option<String>,
    /// Consumer groups whose offsets to translate and commit: all, none, or g1,g2.
    #[arg(long, default_value = "all", value_name = "all|none|G1,G2")]
    consumer_groups: String,
    /// A config for the topics restore creates, over the backed-up ones
    /// (repeatable), e.g. --topic-config retention.ms=-1.
    #[arg(long = "topic-config", value_name = "KEY=VALUE")]
    topic_configs: Vec<String>,
    /// Show what would be restored and change nothing.
    #[arg(long)]
    pub(super) dry_run: bool,
    /// With `--snapshot-id latest`: the source (cluster id or --source
    /// name) whose snapshot is meant, when the vault holds several.
    #[arg(long, value_name = "NAME")]
    source: Option<String>,
    /// Leave an unfinished restore into the same topics (its committed
    /// records stay) and start this one, instead of refusing.
    #[arg(long)]
    abandon_unfinished: bool,
    /// Commit a transaction after this many MiB of records.
    #[arg(long, default_value_t = 256, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub(super) transaction_mib: u64,
    /// Restore the cluster estate with the records: the ACLs, client
    /// quotas and SCRAM users the snapshot recorded (the same as --with
    /// records,acls,quotas,users).
    #[arg(long)]
    pub(super) estate: bool,
    /// The parts to restore, comma-separated: records (topics, records and
    /// group offsets), acls, quotas, users, configs (the cluster-wide
    /// dynamic broker configs) [default: records].
    #[arg(long, value_delimiter = ',', value_name = "PARTS")]
    pub(super) with: Vec<String>,
    /// SCRAM passwords for the users restored: one USER=PASSWORD per line.
    /// A user without one is reported and not created.
    #[arg(long, value_name = "FILE")]
    pub(super) scram_passwords: Option<std::path::PathBuf>,
    /// Overwrite what the target holds differently (a quota, a user's
    /// password) instead of refusing the restore.
    #[arg(long)]
    pub(super) merge: bool,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    pub(super) json: bool,
}

impl RestoreArgs {
    /// What the operator asked for, checked; nothing is asked of the vault
    /// or the cluster yet.
    pub(super) fn request(&self) -> Result<RestoreRequest> {
        RestoreRequest::from_settings(&RestoreSettings {
            snapshot: &self.snapshot_id,
            topics: &self.topics,
            renames: &self.renames,
            from_time: self.from_time.as_deref(),
            to_time: self.to_time.as_deref(),
            consumer_groups: &self.consumer_groups,
            topic_configs: &self.topic_configs,
            source: self.source.as_deref(),
            abandon_unfinished: self.abandon_unfinished,
        })
    }
}
