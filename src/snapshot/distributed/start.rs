//! How a worker starts: it finds its run's plan, or takes the cut and
//! writes the plan itself, and refuses a plan made with other options.

use vault_format::ObjectId;
use vault_format::manifest::SnapshotManifest;
use vault_format::run::RunPlan;

use super::worker::WorkerOptions;
use super::{RunObjects, template};
use crate::error::{Error, Result};
use crate::now_ms;
use crate::repository::{Indexed, Repository};
use crate::snapshot::{SnapshotPlan, SnapshotRequest};

/// What a starting worker found.
pub enum Found {
    /// The plan to work on.
    Plan {
        plan: RunPlan,
        /// This worker took the cut.
        planned_here: bool,
    },
    /// The run was committed moments ago (within `WorkerOptions::rejoin_window`):
    /// this worker started late and has nothing to do.
    Committed {
        snapshot: ObjectId,
        manifest: SnapshotManifest,
    },
}

/// Finds the plan of run `opts.name`, or takes the cut with `make` and
/// writes it as the plan if there is none. A plan made for another
/// selection, source, isolation, tags or data horizon is refused: the
/// operator finishes it with the same command or drops it.
pub fn find_or_make_plan(
    repo: &Repository<Indexed>,
    request: &SnapshotRequest,
    cluster_id: Option<&str>,
    opts: &WorkerOptions,
    make: &mut dyn FnMut() -> Result<SnapshotPlan>,
) -> Result<Found> {
    let run = RunObjects::new(repo, &opts.name);
    for _ in 0..10 {
        if let Some(plan) = run.load_plan()? {
            if let Some(id) = run.commit_of(&plan)? {
                // Committed; its last worker was stopped before removing it.
                run.clean_up(&plan)?;
                if let Some(found) = recently_committed(repo, id, request, cluster_id, opts)? {
                    return Ok(found);
                }
                continue;
            }
            check_plan_fits(&plan, request, cluster_id, opts)?;
            return Ok(Found::Plan {
                plan,
                planned_here: false,
            });
        }
        if let Some(id) = run.latest_commit()?
            && let Some(found) = recently_committed(repo, id, request, cluster_id, opts)?
        {
            return Ok(found);
        }
        let made = make()?;
        let plan = template::run_plan(
            &opts.name,
            &made,
            &opts.tags,
            opts.data_horizon_ms,
            now_ms(),
        );
        if run.create_plan(&plan)? {
            return Ok(Found::Plan {
                plan,
                planned_here: true,
            });
        }
        // Another worker wrote its plan first: work on that one.
    }
    Err(Error::Internal(format!(
        "the plan of run {} kept changing while this worker looked for it",
        opts.name
    )))
}

/// The run's last snapshot, if it was committed within the rejoin window
/// (by the committing worker's clock: the cut's time plus the run's
/// duration) *and* was taken with this worker's options. A worker with
/// other options (more topics, a tag) is another run under the same name,
/// never a late member of that one: it starts a run of its own.
fn recently_committed(
    repo: &Repository<Indexed>,
    id: ObjectId,
    request: &SnapshotRequest,
    cluster_id: Option<&str>,
    opts: &WorkerOptions,
) -> Result<Option<Found>> {
    let manifest = match repo.read_snapshot(&id) {
        Ok(m) => m,
        // Forgotten since: certainly not recent.
        Err(Error::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    if !differences(&manifest, request, cluster_id, opts).is_empty() {
        return Ok(None);
    }
    let committed_ms = manifest.time_ms + manifest.stats.duration_ms;
    let window = u64::try_from(opts.rejoin_window.as_millis()).unwrap_or(u64::MAX);
    Ok(
        (now_ms().saturating_sub(committed_ms) < window).then_some(Found::Committed {
            snapshot: id,
            manifest,
        }),
    )
}

fn check_plan_fits(
    plan: &RunPlan,
    request: &SnapshotRequest,
    cluster_id: Option<&str>,
    opts: &WorkerOptions,
) -> Result<()> {
    let mut differences = differences(&plan.template, request, cluster_id, opts);
    // A manifest does not record its horizon; a plan does.
    if plan.data_horizon_ms != opts.data_horizon_ms {
        differences.push("another data horizon".to_string());
    }
    if differences.is_empty() {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "run {} is in progress with {}; run every worker of it with the same options, \
         or drop its plan with `vault forget --plan {}`",
        opts.name,
        differences.join(", "),
        opts.name
    )))
}

/// How a run's snapshot (its plan's template, or its committed manifest)
/// differs from what this worker was asked for, but for the data horizon
/// (which only a plan records).
fn differences(
    t: &SnapshotManifest,
    request: &SnapshotRequest,
    cluster_id: Option<&str>,
    opts: &WorkerOptions,
) -> Vec<String> {
    let mut differences = Vec::new();
    let selection = request.selection.record();
    if t.selection != selection {
        differences.push(format!("topics {} (this worker: {selection})", t.selection));
    }
    if t.read_committed != request.read_committed {
        differences.push(format!(
            "{} (this worker: the other)",
            if t.read_committed {
                "read_committed"
            } else {
                "--read-uncommitted"
            }
        ));
    }
    match (&request.source, cluster_id) {
        (Some(s), _) if s.trim() != t.source => {
            differences.push(format!("source {} (this worker: {})", t.source, s.trim()));
        }
        (None, Some(c)) if c != t.source_cluster_id || t.source != t.source_cluster_id => {
            differences.push(format!(
                "cluster {} (this worker's brokers: cluster {c})",
                t.source_cluster_id
            ));
        }
        // A named source is still one cluster: a worker pointed at another
        // (the DR cluster) would find every topic "changed".
        (Some(_), Some(c)) if !t.source_cluster_id.is_empty() && c != t.source_cluster_id => {
            differences.push(format!(
                "cluster {} (this worker's brokers: cluster {c})",
                t.source_cluster_id
            ));
        }
        _ => {}
    }
    if t.tags != opts.tags {
        differences.push(format!(
            "tags [{}] (this worker: [{}])",
            t.tags.join(","),
            opts.tags.join(",")
        ));
    }
    differences
}
