//! `vault restore`: a snapshot into a Kafka cluster, exactly once, with
//! consumer-group offsets translated.

use std::collections::BTreeMap;

use clap::Args;
use serde::Serialize;
use vault::Result;
use vault::lock::LockKind;
use vault::restore::{GroupOutcome, RestoreOptions, RestorePlan, RestoreRequest, RestoreSettings};

use super::args::{ClientSettings, VaultArgs};
use super::output::{human_bytes, print_json, progress_bar, runtime, warn};

#[derive(Args, Debug)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub(super) vault: VaultArgs,
    /// Restore together with every other worker started with the same NAME
    /// (on this host or others): the consumer group kvault-restore-NAME-ID
    /// shares the target partitions out, each restored exactly once in its
    /// own transactions; the last worker commits the group offsets.
    #[arg(long, value_name = "NAME")]
    workers: Option<String>,
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
    brokers: String,
    #[command(flatten)]
    client: ClientSettings,
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
    dry_run: bool,
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
    /// Print a JSON summary instead of text.
    #[arg(long)]
    pub(super) json: bool,
}

/// `vault restore --json`.
#[derive(Serialize)]
struct RestoreReport<'a> {
    restore_id: &'a str,
    snapshot_id: String,
    topics: Vec<TopicReport<'a>>,
    /// Records and bytes on the target from this restore, all runs together.
    records: u64,
    bytes: u64,
    records_this_run: u64,
    transactions: u64,
    /// This run continued one an earlier run began.
    resumed: bool,
    /// An earlier run had finished it; nothing was written.
    already_complete: bool,
    consumer_groups: &'a [GroupOutcome],
    duration_ms: u64,
    /// Unfinished restores this run left (--abandon-unfinished).
    abandoned: Vec<&'a str>,
    warnings: Vec<&'a str>,
}

#[derive(Serialize)]
struct TopicReport<'a> {
    source: &'a str,
    target: &'a str,
    partitions: u32,
    created: bool,
}

/// `vault restore --dry-run --json`.
#[derive(Serialize)]
struct PlanReport<'a> {
    dry_run: bool,
    restore_id: &'a str,
    resumes: bool,
    would_abandon: Vec<&'a str>,
    snapshot_id: String,
    topics: Vec<PlannedTopic<'a>>,
    consumer_groups: Vec<PlannedGroup<'a>>,
    warnings: &'a [String],
}

#[derive(Serialize)]
struct PlannedTopic<'a> {
    source: &'a str,
    target: &'a str,
    partitions: u32,
    /// How a topic restore creates is made (null: it exists).
    create: Option<NewTopic<'a>>,
    records_in_snapshot: u64,
}

#[derive(Serialize)]
struct NewTopic<'a> {
    replication_factor: u32,
    configs: BTreeMap<&'a str, &'a str>,
}

#[derive(Serialize)]
struct PlannedGroup<'a> {
    group: &'a str,
    offsets: Vec<PlannedOffset<'a>>,
}

#[derive(Serialize)]
struct PlannedOffset<'a> {
    topic: &'a str,
    partition: u32,
    source_offset: i64,
}

pub fn run(a: &RestoreArgs) -> Result<()> {
    let kafka = a.client.options(&a.brokers)?;
    let req = RestoreRequest::from_settings(&RestoreSettings {
        snapshot: &a.snapshot_id,
        topics: &a.topics,
        renames: &a.renames,
        from_time: a.from_time.as_deref(),
        to_time: a.to_time.as_deref(),
        consumer_groups: &a.consumer_groups,
        topic_configs: &a.topic_configs,
        source: a.source.as_deref(),
        abandon_unfinished: a.abandon_unfinished,
    })?;
    // A dry run plans the same restore either way and writes nothing, so
    // it never starts a worker.
    if let Some(name) = &a.workers
        && !a.dry_run
    {
        return super::restore_workers::run(a, name, kafka, &req);
    }
    let (repo, _lock) = a.vault.open_locked(LockKind::Shared, "restore")?;
    let rt = runtime()?;
    let plan = rt.block_on(RestorePlan::make(&repo, &kafka, &req))?;
    vault::timings::mark("planned");
    drop(rt);
    for w in &plan.warnings {
        warn(w);
    }
    if a.dry_run {
        print_plan(&plan, a.json);
        return Ok(());
    }
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let opts = RestoreOptions {
        kafka,
        workers,
        transaction_bytes: a.transaction_mib << 20,
        progress: progress_bar(0, !a.json),
    };
    let out = vault::restore::execute(&repo, &plan, &opts)?;
    for w in &out.warnings {
        warn(w);
    }
    if a.json {
        print_json(&RestoreReport {
            restore_id: &out.restore_id,
            snapshot_id: plan.snapshot_id.to_hex(),
            topics: plan
                .topics
                .iter()
                .map(|t| TopicReport {
                    source: &t.source,
                    target: &t.target,
                    partitions: t.partitions,
                    created: out.topics_created.contains(&t.target),
                })
                .collect(),
            records: out.records,
            bytes: out.bytes,
            records_this_run: out.records_this_run,
            transactions: out.transactions,
            resumed: out.resumed,
            already_complete: out.already_complete,
            consumer_groups: &out.groups,
            duration_ms: u64::try_from(out.duration.as_millis()).unwrap_or(u64::MAX),
            abandoned: plan.abandon.iter().map(|r| r.restore_id.as_str()).collect(),
            warnings: plan
                .warnings
                .iter()
                .chain(&out.warnings)
                .map(String::as_str)
                .collect(),
        });
        return Ok(());
    }
    if out.already_complete {
        super::output::info(&format!(
            "restore {} had already finished; nothing was written",
            out.restore_id
        ));
    }
    for g in &out.groups {
        for o in &g.offsets {
            println!(
                "group {} {}/{}: source offset {} -> target offset {}",
                g.group_id, o.target_topic, o.partition, o.source_offset, o.target_offset
            );
        }
    }
    let secs = out.duration.as_secs_f64();
    super::output::info(&format!(
        "restored snapshot {} into {}: {} records ({}){} in {} transactions, {} consumer groups, {:.1} s{}",
        &plan.snapshot_id.to_hex()[..16],
        plan.topics
            .iter()
            .map(|t| t.target.as_str())
            .collect::<Vec<_>>()
            .join(","),
        out.records,
        human_bytes(out.bytes),
        if out.resumed {
            format!(", {} of them in this run", out.records_this_run)
        } else {
            String::new()
        },
        out.transactions,
        out.groups.len(),
        secs,
        if secs > 0.0 && out.records_this_run > 0 {
            format!(", {:.0} records/s", out.records_this_run as f64 / secs)
        } else {
            String::new()
        }
    ));
    Ok(())
}

fn print_plan(plan: &RestorePlan, as_json: bool) {
    let records = |target: &str| -> u64 {
        plan.partitions
            .iter()
            .filter(|p| p.target_topic == target)
            .filter_map(|p| p.root)
            .map(|r| r.summary.records)
            .sum()
    };
    if as_json {
        print_json(&PlanReport {
            dry_run: true,
            restore_id: &plan.restore_id,
            resumes: plan.resumes,
            would_abandon: plan.abandon.iter().map(|r| r.restore_id.as_str()).collect(),
            snapshot_id: plan.snapshot_id.to_hex(),
            topics: plan
                .topics
                .iter()
                .map(|t| PlannedTopic {
                    source: &t.source,
                    target: &t.target,
                    partitions: t.partitions,
                    create: t.create.as_ref().map(|c| NewTopic {
                        replication_factor: c.replication_factor,
                        configs: c
                            .configs
                            .iter()
                            .map(|(k, v)| (k.as_str(), v.as_str()))
                            .collect(),
                    }),
                    records_in_snapshot: records(&t.target),
                })
                .collect(),
            consumer_groups: plan
                .groups
                .iter()
                .map(|g| PlannedGroup {
                    group: &g.group_id,
                    offsets: g
                        .offsets
                        .iter()
                        .map(|o| PlannedOffset {
                            topic: &plan.partitions[o.partition].target_topic,
                            partition: plan.partitions[o.partition].partition,
                            source_offset: o.source_offset,
                        })
                        .collect(),
                })
                .collect(),
            warnings: &plan.warnings,
        });
        return;
    }
    println!(
        "dry run: restore snapshot {} (nothing written)",
        &plan.snapshot_id.to_hex()[..16]
    );
    for t in &plan.topics {
        println!(
            "  {} -> {} ({} partitions, {} records in the snapshot){}",
            t.source,
            t.target,
            t.partitions,
            records(&t.target),
            match &t.create {
                Some(c) => format!(", create with replication factor {}", c.replication_factor),
                None => ", existing topic".to_string(),
            }
        );
    }
    for g in &plan.groups {
        println!(
            "  group {}: {} positions to translate",
            g.group_id,
            g.offsets.len()
        );
    }
}
