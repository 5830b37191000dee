//! `vault gc`: forget the snapshots no keep rule holds, then free what no
//! kept snapshot references. `vault forget` forgets one snapshot.
//!
//! [`GcPlan::make`] decides and measures without changing anything (that
//! is `--dry-run`); [`execute`] changes the vault in an order that keeps
//! every kept snapshot readable after a crash at any point:
//!
//! 1. delete the manifests of forgotten snapshots;
//! 2. repack: copy the live chunks of sparse packs into new packs, with
//!    their index objects (chunks are then listed twice, which is harmless);
//! 3. rewrite each index object that lists a pack about to go, then delete
//!    the old object;
//! 4. delete the packs no index object lists any more.
//!
//! A crash leaves at worst unlisted packs and duplicate index entries; the
//! next gc finishes the job. gc holds the vault's exclusive lock throughout
//! and looks at the locks again immediately before each step (see
//! [`crate::lock`]); a pack that no index object lists is deleted only once
//! it is older, by the storage's own clock, than a safety margin, so a
//! running snapshot's packs that are written but not yet indexed survive
//! even a lock that failed.

pub mod mark;
pub mod policy;
pub mod rules;

use std::collections::{HashMap, HashSet};

use vault_format::index::IndexObject;
use vault_format::{ObjectId, PackId};

pub use policy::{Decision, EveryScope, KeepPolicy, Scope, SnapshotInfo};
pub use rules::{KeepRules, Origin};

use crate::error::{Error, Result};
use crate::faults::crash_point;
use crate::lock::VaultLock;
use crate::pack_writer::PackWriter;
use crate::repository::{Indexed, Repository};
use crate::storage::{Dir, ObjectName};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PackUse {
    pub size: u64,
    /// Sealed bytes of all the pack's chunks, and of the live ones.
    pub chunk_bytes: u64,
    pub live_bytes: u64,
    pub live_chunks: u64,
    pub chunks: u64,
}

#[derive(Clone, Debug)]
pub struct GcPlan {
    pub decisions: Vec<Decision>,
    pub forget: Vec<ObjectId>,
    /// Packs with no live chunk.
    pub delete_packs: Vec<PackId>,
    /// Packs whose live share is below the threshold.
    pub repack: Vec<PackId>,
    /// Pack files no index object lists (left by a killed command), old
    /// enough to delete.
    pub orphan_packs: Vec<String>,
    /// Unlisted pack files younger than the safety margin: maybe a running
    /// command's, written and not yet indexed. Left alone.
    pub young_orphan_packs: Vec<String>,
    /// Unlisted pack files whose trailer is damaged: reported, left alone.
    pub damaged_orphan_packs: Vec<String>,
    /// Indexed packs that look dead or sparse but are younger than the
    /// safety margin: left whole. A snapshot committed moments ago may
    /// not be in gc's listing yet (a store or file system whose listings
    /// lag its writes: an NFS mount's attribute cache, an eventually
    /// consistent store), and its new chunks live in the youngest packs.
    pub young_packs: Vec<PackId>,
    /// Groups with no snapshot for a week while their source has newer
    /// ones (its selection changed): their own rules keep their snapshots
    /// forever, which the operator should know. (group, newest time)
    pub quiet_groups: Vec<(crate::catalog::GroupKey, u64)>,
    pub pack_use: HashMap<PackId, PackUse>,
    /// Every index object with the packs it lists, so execute reads only
    /// the objects that concern the packs it moves or deletes.
    pub index_objects: Vec<(ObjectId, Vec<PackId>)>,
    pub marked: mark::MarkStats,
    /// Unfinished restores' pins: the live ones keep their snapshots; the
    /// expired ones (and those of snapshots gone) are removed by execute.
    pub pins: crate::restore::pin::Pins,
}

impl GcPlan {
    /// Bytes freed by deleting packs, before the repacked chunks are written again.
    pub fn bytes_to_delete(&self) -> u64 {
        self.delete_packs
            .iter()
            .chain(&self.repack)
            .filter_map(|p| self.pack_use.get(p))
            .map(|u| u.size)
            .sum()
    }

    pub fn bytes_to_rewrite(&self) -> u64 {
        self.repack
            .iter()
            .filter_map(|p| self.pack_use.get(p))
            .map(|u| u.live_bytes)
            .sum()
    }

    /// Applies `policy`, marks what the kept snapshots reach and measures
    /// every pack. Changes nothing in the vault.
    /// `lock` is gc's own (its object's time is the storage's "now");
    /// without one, no unindexed pack counts as old enough to delete
    /// unless `opts.unindexed_min_age` is zero.
    pub fn make(
        repo: &Repository<Indexed>,
        policy: &KeepPolicy,
        opts: &GcOptions,
        lock: Option<&VaultLock>,
        progress: Option<indicatif::ProgressBar>,
    ) -> Result<GcPlan> {
        let (now_ms, repack_below) = (opts.now_ms, opts.repack_below);
        // gc must know what every pack holds before it deletes anything.
        let damaged = repo.sync_index()?;
        if let Some((id, e)) = damaged.first() {
            return Err(Error::Damaged(format!(
                "index object {id} is damaged ({e}); gc needs every index object to know what the packs \
                 hold before it deletes anything. Run `vault repair index` first, then gc"
            )));
        }
        let mut infos = Vec::new();
        let mut roots = HashMap::new();
        let ids = repo.snapshot_ids()?;
        // Unfinished restores' snapshots stay, whatever the rules say.
        let pins = crate::restore::pin::read_pins(repo, now_ms, &ids)?;
        for id in ids {
            let m = repo.read_snapshot(&id)?;
            let r: Vec<_> = m
                .topics
                .iter()
                .flat_map(|t| &t.partitions)
                .filter_map(|p| p.root)
                .collect();
            roots.insert(id, r);
            infos.push(SnapshotInfo {
                id,
                time_ms: m.time_ms,
                group: policy.group_by.key(&m),
                history: crate::catalog::GroupBy::SourceAndSelection.key(&m),
                tags: m.tags,
                pinned_by: pins.reasons(&id),
            });
        }
        let decisions = policy.apply(&infos, now_ms)?;
        let quiet_groups = quiet_groups(&infos);
        let forget: Vec<ObjectId> = decisions
            .iter()
            .filter(|d| !d.keep())
            .map(|d| d.id)
            .collect();

        let cache = repo.index_cache();
        cache.clear_marks()?;
        let mut marked = mark::MarkStats {
            progress,
            ..mark::MarkStats::default()
        };
        for d in decisions.iter().filter(|d| d.keep()) {
            for root in &roots[&d.id] {
                mark::mark_tree(repo, root, &mut marked)?;
            }
        }
        // A distributed snapshot in progress continues its plan's trees and
        // has finished parts: a run resumed after this gc finds them whole.
        for root in crate::snapshot::distributed::roots_in_use(repo)? {
            mark::mark_tree(repo, &root, &mut marked)?;
        }

        if let Some(pb) = &marked.progress {
            pb.set_message(format!(
                "gc: {} chunks in use; measuring packs",
                marked.total()
            ));
        }
        // Measure each pack from the index objects, one object at a time.
        let listed_packs = repo.storage().list(Dir::Packs)?;
        let sizes: HashMap<String, u64> = listed_packs
            .iter()
            .map(|l| (l.name.clone(), l.size))
            .collect();
        let mut index_objects: Vec<(ObjectId, Vec<PackId>)> = repo
            .storage()
            .list(Dir::Index)?
            .into_iter()
            .filter_map(|l| ObjectId::from_hex(&l.name).ok())
            .map(|id| (id, Vec::new()))
            .collect();
        let mut pack_use: HashMap<PackId, PackUse> = HashMap::new();
        let mut counted: HashSet<PackId> = HashSet::new();
        for (oid, listed) in &mut index_objects {
            let index = repo.read_index(oid)?;
            listed.extend(index.packs.iter().map(|(p, _)| *p));
            for (pack, entries) in &index.packs {
                // A pack listed twice (after a crash) is counted once.
                if !counted.insert(*pack) {
                    continue;
                }
                let mut u = PackUse {
                    size: sizes.get(&pack.to_hex()).copied().unwrap_or(0),
                    ..PackUse::default()
                };
                for e in entries {
                    u.chunks += 1;
                    u.chunk_bytes += u64::from(e.sealed_len);
                    if cache.is_marked(&e.id)? {
                        u.live_chunks += 1;
                        u.live_bytes += u64::from(e.sealed_len);
                    }
                }
                pack_use.insert(*pack, u);
            }
        }
        // "Now" by the storage's clock: gc's own lock was written (refreshed)
        // within the minute. Another host's lock could carry any time.
        let storage_now = match lock {
            Some(lock) => storage_time_of(repo, lock)?,
            None => None,
        };
        // A pack's age by the storage's clock; unknown counts as new.
        let modified: HashMap<&str, std::time::SystemTime> = listed_packs
            .iter()
            .filter_map(|l| l.modified.map(|m| (l.name.as_str(), m)))
            .collect();
        let young = |name: &str| {
            let age = match (storage_now, modified.get(name)) {
                (Some(now), Some(m)) => now.duration_since(*m).unwrap_or_default(),
                _ => std::time::Duration::ZERO,
            };
            !opts.unindexed_min_age.is_zero() && age < opts.unindexed_min_age
        };
        let mut delete_packs = Vec::new();
        let mut repack = Vec::new();
        let mut young_packs = Vec::new();
        for (pack, u) in &pack_use {
            if !sizes.contains_key(&pack.to_hex()) {
                continue; // already gone
            }
            let sparse = u.live_bytes < u.chunk_bytes
                && (u.live_bytes as f64) < repack_below * u.chunk_bytes as f64;
            if (u.live_chunks == 0 || sparse) && young(&pack.to_hex()) {
                young_packs.push(*pack);
                continue;
            }
            if u.live_chunks == 0 {
                delete_packs.push(*pack);
            } else if sparse {
                repack.push(*pack);
            }
        }
        delete_packs.sort();
        repack.sort();
        young_packs.sort();
        let mut orphan_packs = Vec::new();
        let mut young_orphan_packs = Vec::new();
        let mut damaged_orphan_packs = Vec::new();
        for l in &listed_packs {
            if !PackId::from_hex(&l.name).is_ok_and(|p| !pack_use.contains_key(&p)) {
                continue;
            }
            let age = match (storage_now, l.modified) {
                (Some(now), Some(m)) => now.duration_since(m).unwrap_or_default(),
                _ => std::time::Duration::ZERO,
            };
            if !opts.unindexed_min_age.is_zero() && age < opts.unindexed_min_age {
                young_orphan_packs.push(l.name.clone());
                continue;
            }
            // A damaged pack is left for the operator to look at: it may
            // be the only trace of an index object that was lost.
            let pack = PackId::from_hex(&l.name).expect("checked above");
            match repo.read_pack_trailer(&pack, l.size) {
                Ok(_) => orphan_packs.push(l.name.clone()),
                Err(Error::Format { .. }) => damaged_orphan_packs.push(l.name.clone()),
                Err(e) => return Err(e),
            }
        }
        orphan_packs.sort();
        young_orphan_packs.sort();
        Ok(GcPlan {
            decisions,
            forget,
            delete_packs,
            repack,
            orphan_packs,
            young_orphan_packs,
            damaged_orphan_packs,
            young_packs,
            quiet_groups,
            pack_use,
            index_objects,
            marked,
            pins,
        })
    }
}

/// When the storage last wrote `lock`'s object, by the storage's clock.
fn storage_time_of(
    repo: &Repository<Indexed>,
    lock: &VaultLock,
) -> Result<Option<std::time::SystemTime>> {
    // A refresh between reading the name and listing renames it: once more.
    for _ in 0..2 {
        let name = lock.name();
        let listed = repo.storage().list(Dir::Locks)?;
        if let Some(l) = listed.iter().find(|l| l.name == name.name) {
            return Ok(l.modified);
        }
    }
    Ok(None)
}

/// Groups whose newest snapshot is a week older than their source's newest.
fn quiet_groups(infos: &[SnapshotInfo]) -> Vec<(crate::catalog::GroupKey, u64)> {
    const WEEK_MS: u64 = 7 * 86_400_000;
    let mut newest_group: HashMap<&crate::catalog::GroupKey, u64> = HashMap::new();
    let mut newest_source: HashMap<&Option<String>, u64> = HashMap::new();
    for i in infos {
        let g = newest_group.entry(&i.group).or_default();
        *g = (*g).max(i.time_ms);
        let s = newest_source.entry(&i.group.source).or_default();
        *s = (*s).max(i.time_ms);
    }
    let mut out: Vec<_> = newest_group
        .into_iter()
        .filter(|(g, t)| t.saturating_add(WEEK_MS) < newest_source[&g.source])
        .map(|(g, t)| (g.clone(), t))
        .collect();
    out.sort();
    out
}

/// How gc decides.
#[derive(Clone, Debug)]
pub struct GcOptions {
    /// The clock the keep rules measure from (ms since the epoch).
    pub now_ms: u64,
    /// Repack packs whose live share is below this (0.0 to 1.0).
    pub repack_below: f64,
    /// A pack no index object lists is deleted only once it is this old
    /// by the storage's clock.
    pub unindexed_min_age: std::time::Duration,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            now_ms: crate::now_ms(),
            repack_below: 0.5,
            unindexed_min_age: std::time::Duration::from_secs(3600),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct GcOutcome {
    pub snapshots_forgotten: usize,
    pub packs_deleted: usize,
    pub packs_repacked: usize,
    pub packs_written: u64,
    pub index_objects_rewritten: usize,
    /// Pack bytes deleted minus pack bytes written by repacking.
    pub bytes_freed: i64,
    /// Multipart uploads of dead processes aborted (object storage).
    pub uploads_aborted: usize,
    /// Expired restore pins removed.
    pub pins_removed: usize,
}

/// Carries out `plan` under `lock`, gc's exclusive lock. See the module
/// docs for the order and why.
pub fn execute(repo: &Repository<Indexed>, plan: &GcPlan, lock: &VaultLock) -> Result<GcOutcome> {
    let mut out = GcOutcome::default();
    // 1. Forget.
    lock.recheck()?;
    for id in &plan.forget {
        lock.check()?;
        repo.storage()
            .delete(&ObjectName::new(Dir::Snapshots, id.to_hex()))?;
        out.snapshots_forgotten += 1;
        crash_point("gc-forget", out.snapshots_forgotten as u64);
    }
    // Expired pins, and pins of snapshots gone: they hold nothing.
    out.pins_removed = crate::restore::pin::remove_stale(repo, &plan.pins)?;

    // 2. Repack the live chunks of sparse packs.
    let repack: HashSet<PackId> = plan.repack.iter().copied().collect();
    let mut written = 0;
    if !repack.is_empty() {
        lock.recheck()?;
        let mut writer = PackWriter::for_repack(repo)?;
        let mut done: HashSet<PackId> = HashSet::new();
        for (oid, listed) in &plan.index_objects {
            if !listed.iter().any(|p| repack.contains(p)) {
                continue;
            }
            let index = repo.read_index(oid)?;
            for (pack, entries) in &index.packs {
                if !repack.contains(pack) || !done.insert(*pack) {
                    continue;
                }
                for e in entries {
                    if !repo.index_cache().is_marked(&e.id)? {
                        continue;
                    }
                    let plain = repo.read_chunk_at(pack, e)?;
                    writer.add_with_id(e.kind, e.id, &plain)?;
                }
                crash_point("gc-repack", done.len() as u64);
            }
        }
        writer.flush()?;
        let s = writer.stats();
        written = s.pack_bytes_written;
        out.packs_written = s.packs_written;
        out.packs_repacked = done.len();
    }

    // 3. Rewrite the index objects that list a pack about to go.
    let going: HashSet<PackId> = plan
        .delete_packs
        .iter()
        .chain(&plan.repack)
        .copied()
        .collect();
    lock.recheck()?;
    for (oid, listed) in &plan.index_objects {
        if !listed.iter().any(|p| going.contains(p)) {
            continue;
        }
        lock.check()?;
        let index = repo.read_index(oid)?;
        let kept = IndexObject {
            packs: index
                .packs
                .into_iter()
                .filter(|(p, _)| !going.contains(p))
                .collect(),
        };
        if !kept.packs.is_empty() {
            repo.write_index(&kept)?;
        }
        repo.storage()
            .delete(&ObjectName::new(Dir::Index, oid.to_hex()))?;
        out.index_objects_rewritten += 1;
        crash_point("gc-index", out.index_objects_rewritten as u64);
    }

    // 4. Delete the packs nothing lists any more.
    let mut deleted_bytes = 0;
    lock.recheck()?;
    for (n, pack) in plan.delete_packs.iter().chain(&plan.repack).enumerate() {
        if n > 0 && n % 256 == 0 {
            lock.recheck()?;
        }
        lock.check()?;
        repo.storage()
            .delete(&ObjectName::new(Dir::Packs, pack.to_hex()))?;
        deleted_bytes += plan.pack_use.get(pack).map_or(0, |u| u.size);
        out.packs_deleted += 1;
        crash_point("gc-pack", out.packs_deleted as u64);
    }
    for name in &plan.orphan_packs {
        lock.check()?;
        let size = repo
            .storage()
            .size(&ObjectName::new(Dir::Packs, name))
            .unwrap_or(0);
        repo.storage().delete(&ObjectName::new(Dir::Packs, name))?;
        deleted_bytes += size;
        out.packs_deleted += 1;
    }
    // gc holds the vault alone: an upload still recorded is a dead one's.
    lock.check()?;
    out.uploads_aborted = crate::lock::abort_dead_uploads(repo.storage().as_ref())?;
    repo.index_cache().clear_marks()?;
    repo.sync_index()?;
    out.bytes_freed = crate::time::signed_ms(deleted_bytes) - crate::time::signed_ms(written);
    Ok(out)
}

/// `vault forget ID`: forgets one snapshot; the next gc frees its data.
pub fn forget(repo: &Repository<Indexed>, wanted: &str) -> Result<ObjectId> {
    let id = repo.resolve_snapshot(wanted)?;
    repo.storage()
        .delete(&ObjectName::new(Dir::Snapshots, id.to_hex()))?;
    Ok(id)
}
