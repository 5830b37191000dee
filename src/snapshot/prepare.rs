//! The start of every snapshot (`vault snapshot`, `--every`, `--workers`):
//! the cut is read while the vault opens and locks, and read again under
//! the lock if it went stale meanwhile.
//!
//! Opening is key derivation (CPU) or a wait for the lock, and the cut is
//! round trips to the cluster: one does not need the other, so they
//! overlap (docs/benchmarks.md § Fixed cost). The cut is only offsets; the
//! lock guards the vault. But a cut read before the lock is held can be
//! stale: a snapshot that committed after the cut began (snapshots share
//! the lock) may hold more than it (newer offsets, new topics or
//! partitions), or the lock was long in coming (behind a gc) and the cut is
//! old. Either way, under the lock a fresh cut is read, as it always was
//! before the overlap.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

use super::plan::{Cut, RecordLookup, SnapshotPlan, SnapshotRequest};
use super::upgrade::KafkaRecords;
use crate::error::Result;
use crate::kafka::KafkaOptions;
use crate::repository::{Indexed, Repository};
use crate::storage::Storage;

/// A cut read while the vault opened is used only if the vault opened and
/// locked within this long. The cut's own duration does not count: at
/// thousands of partitions it takes seconds, and reading it again would
/// only double them.
pub const CUT_MAX_AGE: Duration = Duration::from_secs(2);

/// The cluster a snapshot is cut from: Kafka, or a test's model of one.
pub trait Cluster {
    /// Reads the cut ([`Cut::read`] on Kafka). The future owns what it
    /// needs: it runs as a task while the vault opens.
    fn read_cut(
        &self,
        request: &SnapshotRequest,
    ) -> impl Future<Output = Result<Cut>> + Send + 'static;

    /// Answers the few record reads a format 1 history's proof needs.
    fn records(&self, read_committed: bool) -> impl RecordLookup;
}

impl Cluster for KafkaOptions {
    fn read_cut(
        &self,
        request: &SnapshotRequest,
    ) -> impl Future<Output = Result<Cut>> + Send + 'static {
        let (kafka, request) = (self.clone(), request.clone());
        async move { Cut::read(&kafka, &request).await }
    }

    fn records(&self, read_committed: bool) -> impl RecordLookup {
        KafkaRecords {
            kafka: self,
            read_committed,
        }
    }
}

/// Opens the vault with `open` while the cut is read from `cluster`, on
/// `rt`. `open` returns what the snapshot holds the vault by (a repository
/// and its lock, or only the lock of a vault already open), or `None` when
/// it gave up without an error (a signal while it waited for the lock).
/// `storage` is the vault's, listed before the cut begins, so that
/// [`EarlyCut::plan`] can tell whether a snapshot committed meanwhile;
/// `max_cut_age` is [`CUT_MAX_AGE`] but in tests.
///
/// A vault that does not open (a wrong passphrase) is reported at once,
/// not after the cluster's timeouts: the cut goes on as a task, and a
/// caller that gives up should shut `rt` down in the background.
pub fn prepare<'a, C: Cluster, T>(
    rt: &'a Runtime,
    cluster: &'a C,
    request: &'a SnapshotRequest,
    storage: &dyn Storage,
    max_cut_age: Duration,
    open: impl FnOnce() -> Result<Option<T>>,
) -> Result<Option<(T, EarlyCut<'a, C>)>> {
    let listed = snapshot_names(storage)?;
    let started = Instant::now();
    let cut = rt.spawn(cluster.read_cut(request));
    let Some(opened) = open()? else {
        return Ok(None);
    };
    // How long the vault took to open and lock: a long wait (behind a gc)
    // makes the cut old.
    let late = started.elapsed() > max_cut_age;
    Ok(Some((
        opened,
        EarlyCut {
            rt,
            cluster,
            request,
            early: Some(cut),
            late,
            listed,
        },
    )))
}

/// The cut read while the vault opened, and what tells whether it is
/// still good once the vault is locked.
pub struct EarlyCut<'a, C> {
    rt: &'a Runtime,
    cluster: &'a C,
    request: &'a SnapshotRequest,
    /// Read while the vault opened; `None` once a plan used it.
    early: Option<JoinHandle<Result<Cut>>>,
    /// The vault took longer than the cut may age to open and lock.
    late: bool,
    /// The vault's snapshots before the cut began.
    listed: BTreeSet<String>,
}

impl<C: Cluster> EarlyCut<'_, C> {
    /// The plan of the snapshot, for `repo` (opened and locked): from the
    /// early cut if it is still good, else from a fresh one. Called again
    /// (a worker whose plan another worker wrote first), it reads a fresh
    /// cut each time.
    pub fn plan(&mut self, repo: &Repository<Indexed>) -> Result<SnapshotPlan> {
        let early = match self.early.take() {
            // Too old to use whatever it says (or whatever failed it, a
            // cluster error from before a long wait behind a gc): a fresh
            // cut below.
            Some(task) if self.late => {
                task.abort();
                None
            }
            // A cluster that failed it fails the snapshot with its own
            // error, as before the overlap.
            Some(task) => Some(self.rt.block_on(task).expect("the cut task panicked")?),
            None => None,
        };
        let early = match early {
            Some(cut) if !self.late && snapshot_names(repo.storage().as_ref())? == self.listed => {
                Some(cut)
            }
            _ => None,
        };
        let records = self.cluster.records(self.request.read_committed);
        let Some(cut) = early else {
            return SnapshotPlan::from_cut(repo, self.read()?, self.request, &records);
        };
        let plan = SnapshotPlan::from_cut(repo, cut, self.request, &records)?;
        if plan.behind_base {
            // Not expected once the list is unchanged; a fresh cut tells a
            // cluster that lost records from a race nobody foresaw.
            return SnapshotPlan::from_cut(repo, self.read()?, self.request, &records);
        }
        Ok(plan)
    }

    /// A cut read now, under the vault lock.
    fn read(&self) -> Result<Cut> {
        self.rt.block_on(self.cluster.read_cut(self.request))
    }
}

/// The names of the vault's snapshot manifests.
fn snapshot_names(storage: &dyn Storage) -> Result<BTreeSet<String>> {
    Ok(storage
        .list(crate::storage::Dir::Snapshots)?
        .into_iter()
        .map(|l| l.name)
        .collect())
}
