//! Which interrupted multipart uploads are dead: those whose holder holds
//! no vault lock any more. Reading the locks is this module's part; the
//! backend keeps the upload records and aborts what it is told
//! ([`Storage::clean_up_uploads`]; docs/design.md § Object storage).

use super::info::decode;
use crate::error::{Error, Result};
use crate::host::Holder;
use crate::storage::{Dir, Listed, ObjectName, Storage};

/// The upload records in `uploads/`: only names and sizes of vault's own
/// (32 hex digits, a few hundred bytes) count.
fn listed_records(storage: &dyn Storage) -> Result<Vec<Listed>> {
    Ok(storage
        .list(Dir::Uploads)?
        .into_iter()
        .filter(|l| {
            l.name.len() == 32 && l.name.bytes().all(|b| b.is_ascii_hexdigit()) && l.size <= 4096
        })
        .collect())
}

/// Aborts the uploads of processes that hold no vault lock any more (they
/// died mid-upload). The caller holds a lock itself, so its own uploads
/// count as live.
///
/// The records are listed before the locks: an uploader takes its lock
/// before it records an upload, so a record listed first has a holder
/// whose lock the later listing sees while it lives. A lock that vanishes
/// between listing and reading it was being refreshed (its successor is
/// already written), so the locks are listed again. If any lock cannot be
/// read, its holder is unknown and nothing is aborted this time.
pub fn abort_dead_uploads(storage: &dyn Storage) -> Result<usize> {
    let records = listed_records(storage)?;
    if records.is_empty() {
        return Ok(0);
    }
    'list: for _ in 0..20 {
        let mut holders = Vec::new();
        for l in storage.list(Dir::Locks)? {
            match storage.get(&ObjectName::new(Dir::Locks, &l.name)) {
                Ok(body) => match decode(&body) {
                    Some(info) => holders.push(info.holder),
                    None => return Ok(0),
                },
                Err(Error::NotFound(_)) => continue 'list,
                Err(e) => return Err(e),
            }
        }
        return storage.clean_up_uploads(&records, &|h: &Holder| holders.contains(h));
    }
    // The locks kept changing: leave the uploads for another time.
    Ok(0)
}
