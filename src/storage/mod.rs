//! Storage backends: a flat store of immutable named objects.
//!
//! Every object is written once and never modified. Two backends sit
//! behind the small [`Storage`] trait: a local directory
//! ([`local::LocalDir`]) and object storage ([`object::ObjectStorage`]:
//! S3, Azure Blob, GCS). [`location::VaultLocation`] says which.

pub mod local;
pub mod location;
pub mod object;
pub mod options;
pub mod uploads;

use std::fmt;

use crate::error::Result;

/// The folders of a vault. Packs are fanned out by the first two hex digits
/// of their name so no directory grows huge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
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

impl Kind {
    pub fn dir(self) -> &'static str {
        match self {
            Kind::Config => "",
            Kind::Keys => "keys",
            Kind::Packs => "packs",
            Kind::Index => "index",
            Kind::Snapshots => "snapshots",
            Kind::Locks => "locks",
            Kind::Uploads => "uploads",
            Kind::Runs => "runs",
        }
    }

    pub(crate) const ALL_DIRS: [Kind; 5] = [
        Kind::Keys,
        Kind::Packs,
        Kind::Index,
        Kind::Snapshots,
        Kind::Locks,
    ];
}

/// A named object: its kind and its name (lowercase hex, or `config`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ObjectName {
    pub kind: Kind,
    pub name: String,
}

impl ObjectName {
    pub fn new(kind: Kind, name: impl Into<String>) -> ObjectName {
        ObjectName {
            kind,
            name: name.into(),
        }
    }

    pub fn config() -> ObjectName {
        ObjectName::new(Kind::Config, "config")
    }

    /// The path below the vault root, `/`-separated.
    pub fn path(&self) -> String {
        match self.kind {
            Kind::Config => self.name.clone(),
            Kind::Packs => format!(
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
    fn list(&self, kind: Kind) -> Result<Vec<Listed>>;

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
    /// that `live` says nobody is running any more; returns how many. Only
    /// object storage has any.
    fn clean_up_uploads(
        &self,
        listed: &[Listed],
        live: &dyn Fn(&uploads::UploadRecord) -> bool,
    ) -> Result<usize> {
        let _ = (listed, live);
        Ok(0)
    }
}

/// Checks that the store refuses to create an object that exists, which
/// locks and manifests rely on: writes one probe object twice and
/// expects the second write to be refused. Leaves nothing behind.
pub fn honours_conditional_writes(storage: &dyn Storage) -> Result<bool> {
    // At the vault's root, where nothing is listed.
    let name = ObjectName::new(
        Kind::Config,
        format!(
            "probe-{}",
            vault_format::id::hex_encode(&crate::host::random_bytes::<8>())
        ),
    );
    let first = storage.put_if_absent(&name, b"conditional write probe: first")?;
    let second = storage.put_if_absent(&name, b"conditional write probe: second");
    let kept_first = storage
        .get(&name)
        .map(|b| b == b"conditional write probe: first");
    storage.delete(&name)?;
    Ok(first && !second? && kept_first?)
}
