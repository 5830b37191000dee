//! vault's own settings for an object store, and the retries vault does
//! itself (object_store retries the rest).

use std::time::Duration;

/// vault's own settings for an object store (storage options of the same
/// names).
#[derive(Clone, Debug)]
pub(crate) struct Tuning {
    /// How long one request is retried before the command fails.
    pub retry_timeout: Duration,
    pub max_retries: usize,
    /// Objects this large or larger are uploaded in parts.
    pub multipart_threshold: u64,
    pub part_size: u64,
    /// Requests in flight at once: parts of one upload, packs being
    /// uploaded, chunks being read.
    pub concurrency: usize,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            retry_timeout: Duration::from_secs(180),
            max_retries: 10,
            multipart_threshold: 32 << 20,
            part_size: 8 << 20,
            concurrency: 8,
        }
    }
}

/// Whether a request failed in transit (timed out, or its connection was
/// cut) after the server may have acted on it.
pub(super) fn interrupted_in_transit(e: &object_store::Error) -> bool {
    use object_store::client::{HttpError, HttpErrorKind};
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(h) = s.downcast_ref::<HttpError>() {
            return matches!(
                h.kind(),
                HttpErrorKind::Timeout | HttpErrorKind::Interrupted
            );
        }
        source = s.source();
    }
    false
}

/// Exponential backoff with jitter: about 100 ms, 200 ms... up to 5 s.
pub(super) fn backoff(attempt: usize) -> Duration {
    let base = (100u64 << attempt.min(6)).min(5_000);
    let jitter = u64::from(crate::host::random_bytes::<2>()[0]) * base / 512;
    Duration::from_millis(base / 2 + jitter)
}
