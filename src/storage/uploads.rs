//! Multipart uploads that a crash may leave behind.
//!
//! An interrupted multipart upload is invisible (no object appears), but
//! the store keeps its parts, and bills for them, until it is aborted. So
//! each upload is recorded in `uploads/` for as long as it runs: the
//! object it will become, its upload id and the process uploading it. A
//! record whose process holds no vault lock any more belongs to a dead
//! upload; the next snapshot or gc aborts it and deletes the record.
//! Uploaders always hold a lock, so a live upload is never aborted.

use serde::{Deserialize, Serialize};

use super::object::ObjectStorage;
use super::{Kind, Listed, ObjectName, Storage};
use crate::error::{Error, Result};
use crate::lock::Holder;

/// What `uploads/<name>` says (JSON; docs/format.md § Uploads).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadRecord {
    /// The object being uploaded, relative to the vault's root.
    pub path: String,
    pub upload_id: String,
    /// The process uploading it.
    pub holder: Holder,
    /// When it started, by the uploader's clock (shown to people only).
    pub time_ms: u64,
}

impl UploadRecord {
    pub(crate) fn new(name: &ObjectName, upload_id: &str) -> UploadRecord {
        UploadRecord {
            path: name.path(),
            upload_id: upload_id.to_string(),
            holder: Holder::this_process(),
            time_ms: crate::now_ms(),
        }
    }

    /// The record's own name: one per upload.
    fn object_name(&self) -> ObjectName {
        let digest = blake3::hash(format!("{}\n{}", self.path, self.upload_id).as_bytes());
        ObjectName::new(Kind::Uploads, digest.to_hex()[..32].to_string())
    }
}

/// Records an upload before its first part is sent.
pub(crate) fn record(storage: &ObjectStorage, r: &UploadRecord) -> Result<()> {
    let body = serde_json::to_vec(r)
        .map_err(|e| Error::Internal(format!("encoding an upload record: {e}")))?;
    storage.put_if_absent(&r.object_name(), &body)?;
    Ok(())
}

/// Drops the record of an upload that completed or was aborted. A record
/// left by a failure here names an upload that no longer exists; cleaning
/// it up later costs one request.
pub(crate) fn forget(storage: &ObjectStorage, r: &UploadRecord) {
    let _ = storage.delete(&r.object_name());
}

/// Aborts every recorded upload (of `listed`) that `live` says nobody is
/// running, and deletes its record. Returns how many were aborted.
pub(crate) fn clean_up(
    storage: &ObjectStorage,
    listed: &[Listed],
    live: &dyn Fn(&UploadRecord) -> bool,
) -> Result<usize> {
    let mut aborted = 0;
    for l in listed {
        let name = ObjectName::new(Kind::Uploads, &l.name);
        let body = match storage.get(&name) {
            Ok(b) => b,
            // Finished and forgotten since the listing.
            Err(Error::NotFound(_)) => continue,
            Err(e) => return Err(e),
        };
        let Ok(r) = serde_json::from_slice::<UploadRecord>(&body) else {
            continue;
        };
        // A record is named after what it says; one that is not was not
        // written by vault for this upload.
        if r.object_name() != name || live(&r) {
            continue;
        }
        storage.abort_upload(&r)?;
        let _ = storage.delete(&name);
        aborted += 1;
    }
    Ok(aborted)
}

/// The upload records in `uploads/`: only names and sizes of vault's own
/// (32 hex digits, a few hundred bytes) count.
fn listed_records(storage: &dyn Storage) -> Result<Vec<Listed>> {
    Ok(storage
        .list(Kind::Uploads)?
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
        for l in storage.list(Kind::Locks)? {
            match storage.get(&ObjectName::new(Kind::Locks, &l.name)) {
                Ok(body) => match crate::lock::decode(&body) {
                    Some(info) => holders.push(info.holder),
                    None => return Ok(0),
                },
                Err(Error::NotFound(_)) => continue 'list,
                Err(e) => return Err(e),
            }
        }
        return storage.clean_up_uploads(&records, &|r: &UploadRecord| holders.contains(&r.holder));
    }
    // The locks kept changing: leave the uploads for another time.
    Ok(0)
}
