//! The object-storage backend: S3, Azure Blob and GCS through Apache
//! Arrow's `object_store`, behind the same [`Storage`] trait as the local
//! directory.
//!
//! * `put_if_absent` is a conditional write (`If-None-Match: *` on S3 and
//!   Azure, a generation precondition on GCS): the store itself refuses a
//!   second writer, which locks and manifests rely on. `vault init` checks
//!   that the store honours it
//!   ([`honours_conditional_writes`](crate::storage::honours_conditional_writes)).
//! * Objects of `multipart_threshold` bytes or more go up as multipart
//!   uploads, `concurrency` parts at a time. Each upload is recorded in
//!   `uploads/` while it runs, so one a crash interrupted is aborted later
//!   (docs/design.md § Object storage). An upload becomes visible only
//!   when completed, whole.
//! * Every request is retried on 5xx, throttling, timeouts and dropped
//!   connections, with exponential backoff and jitter, for up to
//!   `retry_timeout`; after that the command fails and commits nothing.
//!
//! The trait is synchronous; requests run on this backend's own tokio
//! runtime, so a caller may be a plain thread or a task of another runtime.

use std::future::Future;
use std::sync::Arc;

use futures_util::TryStreamExt;
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig};

mod cloud;
mod connect;
mod multipart;
mod retry;
mod uploads;

pub use cloud::Cloud;
pub(crate) use retry::Tuning;
use retry::{backoff, interrupted_in_transit};

use super::options::StorageOptions;
use super::{Dir, Listed, ObjectName, Storage};
use crate::error::{Error, Result};
use crate::host::Holder;

/// A vault in a bucket (or container) of an object store.
pub struct ObjectStorage {
    /// The URL, for messages.
    url: String,
    store: Arc<dyn ObjectStore>,
    multipart: Arc<dyn MultipartStore>,
    /// The vault's folder in the bucket ("" for the bucket's root).
    prefix: String,
    tuning: Tuning,
    /// Taken on drop: shutting a runtime down may not block.
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for ObjectStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ObjectStorage({})", self.url)
    }
}

impl Drop for ObjectStorage {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl ObjectStorage {
    /// Connects to the vault in `bucket` of `cloud`, under `prefix` (no
    /// leading or trailing `/`; "" for the bucket's root). No request is
    /// made yet.
    pub fn open(
        cloud: Cloud,
        bucket: &str,
        prefix: &str,
        options: &StorageOptions,
    ) -> Result<ObjectStorage> {
        let url = cloud.url(bucket, prefix);
        let tuning = options.tuning()?;
        let retry = RetryConfig {
            max_retries: tuning.max_retries,
            retry_timeout: tuning.retry_timeout,
            ..RetryConfig::default()
        };
        let (store, multipart) = connect::connect(cloud, bucket, retry, options, &url)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("vault-storage")
            .enable_all()
            .build()
            .map_err(|e| Error::Internal(format!("starting the storage runtime: {e}")))?;
        Ok(ObjectStorage {
            url,
            store,
            multipart,
            prefix: prefix.to_string(),
            tuning,
            runtime: Some(runtime),
        })
    }

    fn path(&self, name: &ObjectName) -> Path {
        self.path_of(&name.path())
    }

    fn path_of(&self, rel: &str) -> Path {
        if self.prefix.is_empty() {
            Path::from(rel)
        } else {
            Path::from(format!("{}/{rel}", self.prefix))
        }
    }

    /// Runs a request on the backend's runtime and waits for it. Works
    /// from any thread, including one inside another tokio runtime.
    fn run<T: Send + 'static>(&self, f: impl Future<Output = T> + Send + 'static) -> Result<T> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.runtime
            .as_ref()
            .expect("runtime lives as long as the storage")
            .spawn(async move {
                let _ = tx.send(f.await);
            });
        rx.recv()
            .map_err(|_| Error::Internal("a storage request was dropped unfinished".into()))
    }

    fn err(&self, context: &str, e: &object_store::Error) -> Error {
        let text = e.to_string();
        if [
            "NoSuchBucket",
            "ContainerNotFound",
            "specified bucket does not exist",
        ]
        .iter()
        .any(|m| text.contains(m))
        {
            return Error::Usage(format!(
                "{context}: the bucket (or container) of {} does not exist, or these \
                 credentials cannot see it; create it first (docs/operator-guide.md § Object storage)",
                self.url
            ));
        }
        match e {
            object_store::Error::NotFound { .. } => {
                Error::NotFound(format!("{context}: not found in the vault at {}", self.url))
            }
            _ => Error::Storage {
                context: format!("{context} ({})", self.url),
                message: crate::secrets::scrub(&text),
            },
        }
    }

    /// An unconditional PUT (of a pack, whose name is random).
    fn put_plain(&self, name: &ObjectName, data: &[u8]) -> Result<()> {
        let path = self.path(name);
        let store = Arc::clone(&self.store);
        let payload = PutPayload::from(data.to_vec());
        self.run(async move { store.put(&path, payload).await })?
            .map(|_| ())
            .map_err(|e| self.err(&format!("writing {name}"), &e))
    }

    /// A PUT that only creates: `If-None-Match: *` (S3, Azure) or a
    /// generation precondition (GCS). object_store does not retry such a
    /// request once it may have reached the server (a timeout, a cut
    /// connection); vault does, because it can tell what happened: if the
    /// object then exists with these very bytes, an earlier attempt
    /// landed and the write is done.
    fn put_conditional(&self, name: &ObjectName, data: &[u8]) -> Result<bool> {
        let started = std::time::Instant::now();
        let mut attempt = 0usize;
        loop {
            attempt += 1;
            let path = self.path(name);
            let store = Arc::clone(&self.store);
            let payload = PutPayload::from(data.to_vec());
            let put = self.run(async move {
                let opts = PutOptions {
                    mode: PutMode::Create,
                    ..PutOptions::default()
                };
                store.put_opts(&path, payload, opts).await
            })?;
            let retry = match put {
                Ok(_) => return Ok(true),
                Err(
                    object_store::Error::AlreadyExists { .. }
                    | object_store::Error::Precondition { .. },
                ) => match self.get(name) {
                    Ok(existing) => return Ok(existing == data),
                    // Refused, yet not there: S3 answers 409 to a
                    // conditional write racing another one; try again.
                    Err(Error::NotFound(_)) => true,
                    Err(e) => return Err(e),
                },
                Err(e) if interrupted_in_transit(&e) => {
                    if attempt > self.tuning.max_retries
                        || started.elapsed() > self.tuning.retry_timeout
                    {
                        return Err(self.err(&format!("writing {name}"), &e));
                    }
                    true
                }
                Err(e) => return Err(self.err(&format!("writing {name}"), &e)),
            };
            if retry && attempt > self.tuning.max_retries {
                return Err(Error::Storage {
                    context: format!("writing {name} ({})", self.url),
                    message: "the store kept refusing the write of an object it does not hold"
                        .into(),
                });
            }
            std::thread::sleep(backoff(attempt));
        }
    }
}

impl Storage for ObjectStorage {
    fn put_if_absent(&self, name: &ObjectName, data: &[u8]) -> Result<bool> {
        if name.kind == Dir::Packs {
            // Packs are named at random: nobody else ever writes the name,
            // so they need no condition, and a plain PUT is one object_store
            // retries even after a timeout or a cut connection.
            if data.len() as u64 >= self.tuning.multipart_threshold {
                self.put_multipart(name, data)?;
            } else {
                self.put_plain(name, data)?;
            }
            return Ok(true);
        }
        self.put_conditional(name, data)
    }

    fn get(&self, name: &ObjectName) -> Result<Vec<u8>> {
        let path = self.path(name);
        let store = Arc::clone(&self.store);
        self.run(async move { store.get(&path).await?.bytes().await })?
            .map(|b| b.to_vec())
            .map_err(|e| self.err(&format!("reading {name}"), &e))
    }

    fn get_range(&self, name: &ObjectName, offset: u64, len: u64) -> Result<Vec<u8>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let path = self.path(name);
        let store = Arc::clone(&self.store);
        let end = offset.saturating_add(len);
        match self.run(async move { store.get_range(&path, offset..end).await })? {
            Ok(b) => Ok(b.to_vec()),
            Err(e) => {
                // A range starting at or past the end: the object is
                // shorter than asked, which the caller reports as damage.
                if !matches!(e, object_store::Error::NotFound { .. })
                    && self.size(name).is_ok_and(|size| offset >= size)
                {
                    return Ok(Vec::new());
                }
                Err(self.err(&format!("reading {name} at {offset}"), &e))
            }
        }
    }

    fn size(&self, name: &ObjectName) -> Result<u64> {
        let path = self.path(name);
        let store = Arc::clone(&self.store);
        self.run(async move { store.head(&path).await })?
            .map(|m| m.size)
            .map_err(|e| self.err(&format!("reading the size of {name}"), &e))
    }

    fn list(&self, kind: Dir) -> Result<Vec<Listed>> {
        if kind == Dir::Config {
            return Ok(Vec::new());
        }
        let dir = self.path_of(kind.dir());
        let store = Arc::clone(&self.store);
        let metas = self
            .run(async move { store.list(Some(&dir)).try_collect::<Vec<_>>().await })?
            .map_err(|e| self.err(&format!("listing {}", kind.dir()), &e))?;
        let dir = self.path_of(kind.dir());
        // Only names of the vault's own shape count: `packs/xx/<name>`,
        // `<dir>/<name>`. Anything else (a console's folder marker, a
        // person's notes) is not vault's, and a name of the wrong shape
        // would be read under a path where it is not.
        let mut out: Vec<Listed> = metas
            .into_iter()
            .filter_map(|m| {
                let parts: Vec<String> = m
                    .location
                    .prefix_match(&dir)?
                    .map(|p| p.as_ref().to_string())
                    .collect();
                let name = match (kind, parts.as_slice()) {
                    (Dir::Packs, [fan, name]) if name.get(..2) == Some(fan.as_str()) => name,
                    (Dir::Packs, _) => return None,
                    (_, [name]) => name,
                    _ => return None,
                };
                (!name.is_empty() && !name.starts_with('.')).then(|| Listed {
                    name: name.clone(),
                    size: m.size,
                    modified: Some(m.last_modified.into()),
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn delete(&self, name: &ObjectName) -> Result<()> {
        let path = self.path(name);
        let store = Arc::clone(&self.store);
        match self.run(async move { store.delete(&path).await })? {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(&format!("deleting {name}"), &e)),
        }
    }

    fn exists(&self, name: &ObjectName) -> Result<bool> {
        let path = self.path(name);
        let store = Arc::clone(&self.store);
        match self.run(async move { store.head(&path).await })? {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.err(&format!("looking for {name}"), &e)),
        }
    }

    fn location(&self) -> String {
        self.url.clone()
    }

    fn concurrency(&self) -> usize {
        self.tuning.concurrency
    }

    fn clean_up_uploads(&self, listed: &[Listed], live: &dyn Fn(&Holder) -> bool) -> Result<usize> {
        self.abort_uploads_of_the_dead(listed, live)
    }
}
