//! The storage seam itself: the folders of a vault, object names, and the
//! [`Storage`] trait every backend (and every decorator) implements. A
//! leaf: it names nothing of the backends, so they, the decorators and the
//! lock code can all build on it without reaching back into each other.

use std::fmt;

use crate::error::{Error, Result};
use crate::host::Holder;

/// The folders of a vault (what an object is lives in its header, as
/// `vault_format::header::ObjectKind`). Packs are fanned out by the first two hex digits
/// of their name so no directory grows huge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dir {
    /// `config` only.
    Config,
    Keys,
    Packs,
    Index,
    Snapshots,
    Locks,
    /// Multipart uploads in progress (object storage only).
    Uploads,
    /// The plans and parts of distributed snapshots in progress.
    Runs,
}

impl Dir {
    pub fn dir(self) -> &'static str {
        match self {
            Dir::Config => "",
            Dir::Keys => "keys",
            Dir::Packs => "packs",
            Dir::Index => "index",
            Dir::Snapshots => "snapshots",
            Dir::Locks => "locks",
            Dir::Uploads => "uploads",
            Dir::Runs => "runs",
        }
    }

    /// The folders `init` makes (a local vault creates them up front); the
    /// others appear when first written: the config, multipart uploads and
    /// the runs of distributed snapshots.
    pub(crate) const MADE_BY_INIT: [Dir; 5] = [
        Dir::Keys,
        Dir::Packs,
        Dir::Index,
        Dir::Snapshots,
        Dir::Locks,
    ];
}

/// A named object: its kind and its name (lowercase hex, or `config`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ObjectName {
    pub kind: Dir,
    pub name: String,
}

impl ObjectName {
    pub fn new(kind: Dir, name: impl Into<String>) -> ObjectName {
        ObjectName {
            kind,
            name: name.into(),
        }
    }

    pub fn config() -> ObjectName {
        ObjectName::new(Dir::Config, "config")
    }

    /// The path below the vault root, `/`-separated.
    pub fn path(&self) -> String {
        match self.kind {
            Dir::Config => self.name.clone(),
            Dir::Packs => format!(
                "packs/{}/{}",
                &self.name[..2.min(self.name.len())],
                self.name
            ),
            k => format!("{}/{}", k.dir(), self.name),
        }
    }
}

impl fmt::Display for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

/// An object as listed: its name, size in bytes and when the storage
/// says it was written (by the storage's clock, which may not be ours).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    pub size: u64,
    pub modified: Option<std::time::SystemTime>,
}

/// Immutable named objects.
pub trait Storage: Send + Sync + fmt::Debug {
    /// Writes `data` under `name` atomically and durably unless an object of
    /// that name exists. Returns `false` (and writes nothing) if it existed.
    fn put_if_absent(&self, name: &ObjectName, data: &[u8]) -> Result<bool>;

    fn get(&self, name: &ObjectName) -> Result<Vec<u8>>;

    /// `len` bytes from `offset`; fewer only if the object is shorter (the
    /// caller checks, since a short read of a pack means damage).
    fn get_range(&self, name: &ObjectName, offset: u64, len: u64) -> Result<Vec<u8>>;

    /// The object's size in bytes.
    fn size(&self, name: &ObjectName) -> Result<u64>;

    /// All objects of a kind (temporary files of interrupted writes excluded).
    fn list(&self, kind: Dir) -> Result<Vec<Listed>>;

    /// Removes an object; removing a missing one is not an error.
    fn delete(&self, name: &ObjectName) -> Result<()>;

    /// Whether the storage holds an object.
    fn exists(&self, name: &ObjectName) -> Result<bool>;

    /// A human-readable location, for messages.
    fn location(&self) -> String;

    /// How many requests are worth having in flight at once (uploads,
    /// reads): a disk wants few, an object store many to hide latency.
    fn concurrency(&self) -> usize {
        2
    }

    /// Aborts the interrupted multipart uploads of the `listed` records
    /// whose holder `live` says is not running any more; returns how many.
    /// Only object storage has any.
    fn clean_up_uploads(&self, listed: &[Listed], live: &dyn Fn(&Holder) -> bool) -> Result<usize> {
        let _ = (listed, live);
        Ok(0)
    }

    /// Readies the storage for a new vault, which `init` then writes: the
    /// caller has seen no config, and this refuses storage that holds
    /// anything else of a vault and makes what the backend needs before
    /// the first write. The default, for a store without real folders
    /// (object storage), only checks that the folders are empty.
    fn prepare_new_vault(&self) -> Result<()> {
        for kind in Dir::MADE_BY_INIT.into_iter().chain([Dir::Uploads]) {
            if !self.list(kind)?.is_empty() {
                return Err(Error::Usage(format!(
                    "{} already holds objects under {}/; choose a new prefix for the vault",
                    self.location(),
                    kind.dir()
                )));
            }
        }
        Ok(())
    }

    /// Removes what a failed `init` wrote after
    /// [`prepare_new_vault`](Self::prepare_new_vault). Once the config is
    /// there the vault is finished and nothing is removed; before, the
    /// storage held no vault, so nothing in it is anyone's data. Best
    /// effort: `init`'s own error is the one to report.
    fn remove_unfinished_vault(&self) {
        if self.exists(&ObjectName::config()).unwrap_or(true) {
            return;
        }
        for kind in Dir::MADE_BY_INIT {
            for l in self.list(kind).unwrap_or_default() {
                let _ = self.delete(&ObjectName::new(kind, l.name));
            }
        }
    }
}
