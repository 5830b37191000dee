//! `vault restore --dry-run`: the plan, shown; nothing is written.

use std::collections::BTreeMap;

use serde::Serialize;
use vault::estate::EstatePlan;
use vault::restore::RestorePlan;

use super::super::output::print_json;
use super::estate::{EstateReport, print_estate_plan};

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
    #[serde(skip_serializing_if = "Option::is_none")]
    estate: Option<EstateReport<'a>>,
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

pub(super) fn print_plan(plan: &RestorePlan, as_json: bool, estate: Option<&EstatePlan>) {
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
            estate: estate.map(|e| EstateReport::of(e, None)),
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
    if let Some(e) = estate {
        print_estate_plan(e);
    }
}
