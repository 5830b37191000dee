//! Multipart uploads that a crash may leave behind.
//!
//! An interrupted multipart upload is invisible (no object appears), but
//! the store keeps its parts, and bills for them, until it is aborted. So
//! each upload is recorded in `uploads/` for as long as it runs: the
//! object it will become, its upload id and the process uploading it. A
//! record whose process holds no vault lock any more belongs to a dead
//! upload; the next snapshot or gc aborts it and deletes the record.
//! Uploaders always hold a lock, so a live upload is never aborted. Which
//! holders hold a lock is the lock code's to say
//! ([`crate::lock::abort_dead_uploads`]); this module only keeps the
//! records and aborts what it is told is dead.

use serde::{Deserialize, Serialize};

use super::ObjectStorage;
use crate::error::{Error, Result};
use crate::host::Holder;
use crate::storage::{Dir, Listed, ObjectName, Storage};

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
        ObjectName::new(Dir::Uploads, digest.to_hex()[..32].to_string())
    }
}

// Methods of the backend, as in `multipart.rs`, so that the backend's
// own module never names this one (a child naming its parent is fine; the
// two naming each other is an import circle).
impl ObjectStorage {
    /// Records an upload before its first part is sent.
    pub(super) fn record_upload(&self, r: &UploadRecord) -> Result<()> {
        let body = serde_json::to_vec(r)
            .map_err(|e| Error::Internal(format!("encoding an upload record: {e}")))?;
        self.put_if_absent(&r.object_name(), &body)?;
        Ok(())
    }

    /// Drops the record of an upload that completed or was aborted. A
    /// record left by a failure here names an upload that no longer
    /// exists; cleaning it up later costs one request.
    pub(super) fn forget_upload(&self, r: &UploadRecord) {
        let _ = self.delete(&r.object_name());
    }

    /// Aborts every recorded upload (of `listed`) whose holder `live` says
    /// is not running, and deletes its record. Returns how many were
    /// aborted.
    pub(super) fn abort_uploads_of_the_dead(
        &self,
        listed: &[Listed],
        live: &dyn Fn(&Holder) -> bool,
    ) -> Result<usize> {
        let mut aborted = 0;
        for l in listed {
            let name = ObjectName::new(Dir::Uploads, &l.name);
            let body = match self.get(&name) {
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
            if r.object_name() != name || live(&r.holder) {
                continue;
            }
            self.abort_upload(&r)?;
            let _ = self.delete(&name);
            aborted += 1;
        }
        Ok(aborted)
    }
}
