//! Multipart uploads of large packs: parts several at a time, each upload
//! recorded in `uploads/` while it runs (docs/design.md § Object storage).

use std::sync::Arc;

use object_store::PutPayload;

use super::ObjectStorage;
use super::uploads::UploadRecord;
use crate::error::Result;
use crate::storage::ObjectName;
use crate::storage::Storage;

impl ObjectStorage {
    /// Uploads `data` in parts, several at a time, recorded in `uploads/`
    /// while it runs. Nothing is visible under `name` until it completes.
    pub(super) fn put_multipart(&self, name: &ObjectName, data: &[u8]) -> Result<()> {
        let path = self.path(name);
        let mp = Arc::clone(&self.multipart);
        let p = path.clone();
        let id = self
            .run(async move { mp.create_multipart(&p).await })?
            .map_err(|e| self.err(&format!("starting the upload of {name}"), &e))?;
        let record = UploadRecord::new(name, &id);
        if let Err(e) = self.record_upload(&record) {
            // Unrecorded, it could never be cleaned up later: abort it now.
            let (mp, p, uid) = (Arc::clone(&self.multipart), path.clone(), id.clone());
            let _ = self.run(async move { mp.abort_multipart(&p, &uid).await });
            return Err(e);
        }
        let part_size = usize::try_from(self.tuning.part_size).unwrap_or(usize::MAX);
        let parts: Vec<Vec<u8>> = data.chunks(part_size).map(<[u8]>::to_vec).collect();
        let (mp, p, uid) = (Arc::clone(&self.multipart), path.clone(), id.clone());
        let concurrency = self.tuning.concurrency;
        let uploaded = self.run(async move {
            let mut set = tokio::task::JoinSet::new();
            let mut ids = vec![None; parts.len()];
            let mut next = parts.into_iter().enumerate();
            loop {
                while set.len() < concurrency {
                    let Some((i, part)) = next.next() else { break };
                    let (mp, p, uid) = (Arc::clone(&mp), p.clone(), uid.clone());
                    set.spawn(async move {
                        mp.put_part(&p, &uid, i, PutPayload::from(part))
                            .await
                            .map(|id| (i, id))
                    });
                }
                let Some(done) = set.join_next().await else {
                    break;
                };
                let (i, part_id) = done.map_err(|e| object_store::Error::Generic {
                    store: "vault",
                    source: Box::new(e),
                })??;
                ids[i] = Some(part_id);
            }
            let ids: Vec<_> = ids
                .into_iter()
                .map(|i| i.expect("every part uploaded"))
                .collect();
            // The fault tests' kill -9 between the last part and completion.
            crate::faults::crash_point("multipart-before-complete", 1);
            mp.complete_multipart(&p, &uid, ids).await
        })?;
        match uploaded {
            Ok(_) => {
                self.forget_upload(&record);
                Ok(())
            }
            // A completion whose reply was lost is retried and then finds
            // no upload: the object is there, whole, and the write is done.
            Err(_) if self.size(name).is_ok_and(|size| size == data.len() as u64) => {
                self.forget_upload(&record);
                Ok(())
            }
            Err(e) => {
                // Leave nothing half-made: abort now; the record stays for
                // a later run if even that fails.
                let (mp, p) = (Arc::clone(&self.multipart), path);
                if let Ok(Ok(())) = self.run(async move { mp.abort_multipart(&p, &id).await }) {
                    self.forget_upload(&record);
                }
                Err(self.err(&format!("uploading {name}"), &e))
            }
        }
    }

    /// Aborts an upload a record names (it was interrupted).
    pub(super) fn abort_upload(&self, record: &UploadRecord) -> Result<()> {
        let path = self.path_of(&record.path);
        let id = record.upload_id.clone();
        let mp = Arc::clone(&self.multipart);
        match self.run(async move { mp.abort_multipart(&path, &id).await })? {
            // Already completed or aborted: nothing is left to abort.
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(&format!("aborting the upload of {}", record.path), &e)),
        }
    }
}
