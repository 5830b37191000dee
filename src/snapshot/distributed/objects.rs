//! The run objects of distributed snapshots in `runs/` (docs/format.md §
//! Run objects). Names:
//!
//! ```text
//! runs/<run>.plan                    the plan (one per run name at a time)
//! runs/<run>.<plan>.part.<index>     a finished partition of that plan
//! runs/<run>.<plan>.commit           the plan was committed as this snapshot
//! ```
//!
//! `<run>` is the keyed hash of the run's name (so listings do not show
//! it), `<plan>` the plan's random id: a part or commit always names the
//! plan it belongs to, and never counts for another plan of the same name.

use std::collections::BTreeMap;

use vault_format::ObjectId;
use vault_format::id::hex_encode;
use vault_format::object::ObjectKind;
use vault_format::run::{RunCommit, RunPart, RunPlan};
use vault_format::tree::TreeRoot;

use crate::error::{Error, FormatContext, Result};
use crate::repository::{HoldsKeys, Repository};
use crate::storage::{Dir, ObjectName};

/// The run objects of one run name.
pub struct RunObjects<'r, S: HoldsKeys> {
    repo: &'r Repository<S>,
    key: String,
}

/// What one listing of `runs/` says about a plan.
#[derive(Debug, Default)]
pub struct PlanListing {
    pub plan_present: bool,
    pub committed: bool,
    /// The indices of the parts listed.
    pub parts: Vec<u32>,
}

impl<'r, S: HoldsKeys> RunObjects<'r, S> {
    pub fn new(repo: &'r Repository<S>, name: &str) -> RunObjects<'r, S> {
        let id = repo
            .keys()
            .object_id(format!("kvault snapshot run\0{name}").as_bytes());
        RunObjects {
            repo,
            key: id.to_hex()[..32].to_string(),
        }
    }

    fn plan_name(&self) -> String {
        format!("{}.plan", self.key)
    }

    fn prefix(&self, plan_id: &[u8; 16]) -> String {
        format!("{}.{}.", self.key, hex_encode(plan_id))
    }

    fn part_name(&self, plan_id: &[u8; 16], index: u32) -> String {
        format!("{}part.{index:06}", self.prefix(plan_id))
    }

    fn commit_name(&self, plan_id: &[u8; 16]) -> String {
        format!("{}commit", self.prefix(plan_id))
    }

    /// The plan of this run name, if one is in progress.
    pub fn load_plan(&self) -> Result<Option<RunPlan>> {
        self.repo
            .get_run_object(ObjectKind::RunPlan, &self.plan_name())?
            .map(|(v, b)| {
                RunPlan::decode_version(v, &b)
                    .ctx(|| format!("decoding run plan {}", self.plan_name()))
            })
            .transpose()
    }

    /// Writes `plan` unless another worker wrote one first; returns whether
    /// this one was written. Then removes what earlier plans of the name
    /// left (stray parts, and commit records but the newest, which a late
    /// worker reads).
    pub fn create_plan(&self, plan: &RunPlan) -> Result<bool> {
        if !self
            .repo
            .put_run_object(ObjectKind::RunPlan, &self.plan_name(), &plan.encode())?
        {
            return Ok(false);
        }
        let ours = self.prefix(&plan.plan_id);
        let mut commits = Vec::new();
        for l in self.repo.storage().list(Dir::Runs)? {
            if !l.name.starts_with(&format!("{}.", self.key))
                || l.name == self.plan_name()
                || l.name.starts_with(&ours)
            {
                continue;
            }
            if l.name.ends_with(".commit") {
                commits.push(l);
            } else {
                self.repo
                    .storage()
                    .delete(&ObjectName::new(Dir::Runs, &l.name))?;
            }
        }
        commits.sort_by_key(|l| l.modified);
        commits.pop();
        for l in commits {
            self.repo
                .storage()
                .delete(&ObjectName::new(Dir::Runs, &l.name))?;
        }
        Ok(true)
    }

    /// The snapshot the newest commit record of this name names.
    pub fn latest_commit(&self) -> Result<Option<ObjectId>> {
        let mut commits: Vec<_> = self
            .repo
            .storage()
            .list(Dir::Runs)?
            .into_iter()
            .filter(|l| {
                l.name.starts_with(&format!("{}.", self.key)) && l.name.ends_with(".commit")
            })
            .collect();
        commits.sort_by_key(|l| l.modified);
        let Some(newest) = commits.pop() else {
            return Ok(None);
        };
        let Some((_, body)) = self
            .repo
            .get_run_object(ObjectKind::RunCommit, &newest.name)?
        else {
            return Ok(None);
        };
        let c = RunCommit::decode(&body).ctx(|| format!("decoding run commit {}", newest.name))?;
        Ok(Some(c.snapshot))
    }

    /// One listing of `runs/`, read for `plan`.
    pub fn list(&self, plan: &RunPlan) -> Result<PlanListing> {
        let prefix = self.prefix(&plan.plan_id);
        let mut out = PlanListing::default();
        for l in self.repo.storage().list(Dir::Runs)? {
            if l.name == self.plan_name() {
                out.plan_present = true;
            } else if let Some(rest) = l.name.strip_prefix(&prefix) {
                if rest == "commit" {
                    out.committed = true;
                } else if let Some(i) = rest.strip_prefix("part.").and_then(|i| i.parse().ok()) {
                    out.parts.push(i);
                }
            }
        }
        Ok(out)
    }

    pub fn read_part(&self, plan: &RunPlan, index: u32) -> Result<Option<RunPart>> {
        let name = self.part_name(&plan.plan_id, index);
        let Some((_, body)) = self.repo.get_run_object(ObjectKind::RunPart, &name)? else {
            return Ok(None);
        };
        let part = RunPart::decode(&body).ctx(|| format!("decoding run part {name}"))?;
        if part.plan_id != plan.plan_id || part.index != index {
            return Err(Error::Damaged(format!(
                "run part runs/{name} does not describe the partition its name says"
            )));
        }
        Ok(Some(part))
    }

    /// Writes a finished partition's part unless one is there (another
    /// worker finished the same partition first); returns whether it was.
    pub fn put_part(&self, part: &RunPart) -> Result<bool> {
        self.repo.put_run_object(
            ObjectKind::RunPart,
            &self.part_name(&part.plan_id, part.index),
            &part.encode(),
        )
    }

    /// Takes a part back (its writer lost its lock while writing it).
    pub fn delete_part(&self, plan: &RunPlan, index: u32) -> Result<()> {
        self.repo.storage().delete(&ObjectName::new(
            Dir::Runs,
            self.part_name(&plan.plan_id, index),
        ))
    }

    pub fn put_commit(&self, plan: &RunPlan, snapshot: ObjectId) -> Result<()> {
        let c = RunCommit {
            plan_id: plan.plan_id,
            snapshot,
        };
        self.repo.put_run_object(
            ObjectKind::RunCommit,
            &self.commit_name(&plan.plan_id),
            &c.encode(),
        )?;
        Ok(())
    }

    /// The snapshot `plan` was committed as, if it was.
    pub fn commit_of(&self, plan: &RunPlan) -> Result<Option<ObjectId>> {
        let name = self.commit_name(&plan.plan_id);
        let Some((_, body)) = self.repo.get_run_object(ObjectKind::RunCommit, &name)? else {
            return Ok(None);
        };
        let c = RunCommit::decode(&body).ctx(|| format!("decoding run commit {name}"))?;
        if c.plan_id != plan.plan_id {
            return Err(Error::Damaged(format!(
                "run commit runs/{name} names another plan"
            )));
        }
        Ok(Some(c.snapshot))
    }

    /// Removes `plan` and its parts, keeping its commit record (if any) for
    /// workers still looking; the next plan of the name removes that.
    pub fn clean_up(&self, plan: &RunPlan) -> Result<()> {
        let storage = self.repo.storage();
        // The plan goes first: once it is gone, nobody starts work for it.
        if self.load_plan()?.is_some_and(|p| p.plan_id == plan.plan_id) {
            storage.delete(&ObjectName::new(Dir::Runs, self.plan_name()))?;
        }
        let prefix = self.prefix(&plan.plan_id);
        for l in storage.list(Dir::Runs)? {
            if l.name.starts_with(&prefix) && !l.name.ends_with(".commit") {
                storage.delete(&ObjectName::new(Dir::Runs, &l.name))?;
            }
        }
        Ok(())
    }

    /// Drops the plan in progress and everything of its name (`vault forget
    /// --plan`). Returns the plan dropped.
    pub fn drop_plan(&self) -> Result<Option<RunPlan>> {
        let plan = self.load_plan()?;
        let storage = self.repo.storage();
        for l in storage.list(Dir::Runs)? {
            if l.name.starts_with(&format!("{}.", self.key)) && l.name != self.plan_name() {
                storage.delete(&ObjectName::new(Dir::Runs, &l.name))?;
            }
        }
        storage.delete(&ObjectName::new(Dir::Runs, self.plan_name()))?;
        Ok(plan)
    }
}

/// A plan in progress, with the parts finished so far.
#[derive(Clone, Debug)]
pub struct PlanInProgress {
    pub plan: RunPlan,
    pub parts: BTreeMap<u32, RunPart>,
}

impl PlanInProgress {
    pub fn total_partitions(&self) -> usize {
        self.plan.partitions.len()
    }
}

/// Every plan in progress in the vault, with its parts (`vault status`,
/// `vault snapshots --in-progress`, and gc, which keeps what they use).
pub fn plans_in_progress<S: HoldsKeys>(repo: &Repository<S>) -> Result<Vec<PlanInProgress>> {
    let listed = repo.storage().list(Dir::Runs)?;
    let mut out = Vec::new();
    for l in listed.iter().filter(|l| l.name.ends_with(".plan")) {
        let Some((version, body)) = repo.get_run_object(ObjectKind::RunPlan, &l.name)? else {
            continue;
        };
        let plan = RunPlan::decode_version(version, &body)
            .ctx(|| format!("decoding run plan {}", l.name))?;
        let run = RunObjects::new(repo, &plan.name);
        let mut parts = BTreeMap::new();
        for i in run.list(&plan)?.parts {
            if let Some(p) = run.read_part(&plan, i)? {
                parts.insert(i, p);
            }
        }
        out.push(PlanInProgress { plan, parts });
    }
    Ok(out)
}

/// The trees plans in progress use: the roots they continue and the roots
/// of their finished parts. gc keeps them, so a run resumed after a gc
/// finds every chunk its plan and parts refer to.
pub fn roots_in_use<S: HoldsKeys>(repo: &Repository<S>) -> Result<Vec<TreeRoot>> {
    let mut roots = Vec::new();
    for p in plans_in_progress(repo)? {
        roots.extend(
            p.plan
                .template
                .topics
                .iter()
                .flat_map(|t| &t.partitions)
                .filter_map(|p| p.root),
        );
        roots.extend(p.parts.values().filter_map(|p| p.root));
    }
    Ok(roots)
}
