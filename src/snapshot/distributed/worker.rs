//! What a worker of a distributed snapshot is asked to do, and what it
//! did: shared by the steps of a run (start, read, commit, topics gone),
//! so none of them reaches back into the parent module for them.

use std::time::Duration;

use vault_format::ObjectId;
use vault_format::manifest::SnapshotManifest;

/// What a worker was asked to do, beyond the snapshot request.
pub struct WorkerOptions {
    /// The run's name (`--workers NAME`).
    pub name: String,
    pub tags: Vec<String>,
    pub data_horizon_ms: Option<u64>,
    /// Pipeline threads.
    pub threads: usize,
    pub stall_timeout: Duration,
    /// Partitions read together in one pass of the pipeline.
    pub partitions_per_batch: usize,
    /// How often a worker with nothing to do looks at the run again.
    pub poll_interval: Duration,
    pub progress: Option<indicatif::ProgressBar>,
    /// A worker that starts this soon after its run was committed (a pod
    /// scheduled late, a retried one) reports that snapshot instead of
    /// starting the next run alone.
    pub rejoin_window: Duration,
    /// A worker the group gives no assignment for this long fails, saying
    /// why (a missing group ACL, an unreachable coordinator).
    pub join_timeout: Duration,
}

/// What one worker did.
#[derive(Clone, Debug)]
pub struct WorkerOutcome {
    pub snapshot: ObjectId,
    pub manifest: SnapshotManifest,
    /// This worker wrote the manifest (others may have written the same).
    pub committed_here: bool,
    /// The partitions whose parts this worker wrote.
    pub partitions_done_here: Vec<(String, u32)>,
    /// Partitions this worker read but another finished first.
    pub partitions_duplicated: usize,
    pub records_read: u64,
    pub bytes_read: u64,
    pub bytes_added: u64,
    /// Packs no index object listed that this worker indexed: a dead
    /// worker's last ones (or a live one's not yet indexed; listing a pack
    /// twice is harmless).
    pub packs_adopted: usize,
    pub duration: Duration,
    pub warnings: Vec<String>,
}
