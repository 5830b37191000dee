//! `vault repair index`: rewrites the index from the packs.
//!
//! Index objects are only a table of contents: every pack's encrypted
//! trailer lists what the pack holds. Repair writes new index objects for
//! every pack that no readable index object lists, then deletes the
//! damaged index objects, in that order, so a crash at any point leaves at
//! worst packs listed twice (harmless). A pack whose trailer is damaged too
//! is reported and left alone.

use serde::Serialize;
use vault_format::ObjectId;
use vault_format::index::IndexObject;

use crate::error::{Error, Result};
use crate::lock::VaultLock;
use crate::repository::{Indexed, Repository};
use crate::storage::{Dir, ObjectName};

/// What `vault repair index` did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RepairOutcome {
    /// Index objects that could not be read, now deleted.
    pub damaged_index_objects: Vec<String>,
    /// Packs indexed again from their trailers.
    pub packs_reindexed: usize,
    pub index_objects_written: usize,
    /// Packs whose trailer is damaged as well: left alone, not indexed.
    pub damaged_packs: Vec<String>,
    /// Damaged index objects kept because a damaged pack may be listed
    /// only there (remove or restore those packs, then repair again).
    pub kept_damaged_index_objects: Vec<String>,
}

/// Repairs the index of `repo` under `lock`, the vault's exclusive lock.
pub fn repair_index(repo: &Repository<Indexed>, lock: &VaultLock) -> Result<RepairOutcome> {
    let mut out = RepairOutcome::default();
    let damaged = repo.sync_index()?;
    let mut reindex = Vec::new();
    for (pack, size) in repo.unindexed_packs()? {
        match repo.read_pack_trailer(&pack, size) {
            Ok(entries) => reindex.push((pack, entries)),
            Err(e @ Error::Format { .. }) => {
                out.damaged_packs.push(format!("{pack}: {e}"));
            }
            Err(e) => return Err(e),
        }
    }
    lock.recheck()?;
    let mut written = std::collections::HashSet::new();
    for batch in reindex.chunks(64) {
        lock.check()?;
        let index = IndexObject {
            packs: batch.to_vec(),
        };
        let id = repo.write_index(&index)?;
        repo.index_cache().insert_object(&id, &index)?;
        written.insert(id);
        out.index_objects_written += 1;
        out.packs_reindexed += batch.len();
    }
    // The new objects are durable: the damaged ones can go. One whose
    // content came out the same was rewritten in place (same name) and
    // stays. While a pack's trailer is damaged too, the damaged objects
    // stay: one of them may be the only record of what that pack holds.
    if !out.damaged_packs.is_empty() {
        out.kept_damaged_index_objects = damaged.iter().map(|(id, _)| id.to_hex()).collect();
        return Ok(out);
    }
    lock.recheck()?;
    for (id, e) in &damaged {
        lock.check()?;
        if !written.contains(id) {
            repo.storage()
                .delete(&ObjectName::new(Dir::Index, id.to_hex()))?;
        }
        out.damaged_index_objects.push(format!("{id}: {e}"));
    }
    let _: Vec<(ObjectId, String)> = repo.sync_index()?;
    Ok(out)
}
