//! The end of a run: the worker that sees every part writes the manifest
//! (the same bytes whoever writes them), and a worker that finds the run
//! committed reports that snapshot.

use std::collections::BTreeMap;
use std::time::Instant;

use vault_format::run::{RunPart, RunPlan};

use super::worker::WorkerOutcome;
use super::{RunObjects, template};
use crate::error::{Error, Result};
use crate::lock::VaultLock;
use crate::repository::{Indexed, Repository};

pub(super) fn commit(
    repo: &Repository<Indexed>,
    run: &RunObjects<'_, Indexed>,
    plan: &RunPlan,
    parts: &BTreeMap<u32, RunPart>,
    lock: &VaultLock,
    out: &mut WorkerOutcome,
    started: Instant,
) -> Result<WorkerOutcome> {
    let parts: Vec<RunPart> = parts.values().cloned().collect();
    let manifest = template::manifest(plan, &parts)?;
    lock.check()?;
    // The same bytes whoever writes them: a second commit is a no-op.
    let id = repo.write_snapshot(&manifest)?;
    run.put_commit(plan, id)?;
    run.clean_up(plan)?;
    out.snapshot = id;
    out.manifest = manifest;
    out.committed_here = true;
    out.duration = started.elapsed();
    Ok(out.clone())
}

/// The plan is committed (or gone): by whom does not matter; the commit
/// record says as what.
pub(super) fn finish_committed(
    repo: &Repository<Indexed>,
    run: &RunObjects<'_, Indexed>,
    plan: &RunPlan,
    out: &mut WorkerOutcome,
    started: Instant,
) -> Result<WorkerOutcome> {
    let Some(id) = run.commit_of(plan)? else {
        return Err(Error::Usage(format!(
            "the plan of run {} was dropped (`vault forget --plan`) while this worker worked on it; \
             nothing of it was committed",
            plan.name
        )));
    };
    // Parts written after the commit by a worker that duplicated one.
    run.clean_up(plan)?;
    out.snapshot = id;
    out.manifest = repo.read_snapshot(&id)?;
    // The committing worker saw the parts; this one says the same.
    for t in &plan.template.topics {
        if out.manifest.topics.iter().all(|m| m.name != t.name) {
            out.warnings.push(format!(
                "topic {} was deleted (or deleted and created again) while the run read it; \
                 the snapshot leaves topic {} out",
                t.name, t.name
            ));
        }
    }
    out.duration = started.elapsed();
    Ok(out.clone())
}
