//! Storage backends: a flat store of immutable named objects.
//!
//! Every object is written once and never modified. Two backends sit
//! behind the small [`Storage`] trait: a local directory
//! ([`local::LocalDir`]) and object storage ([`object::ObjectStorage`]:
//! S3, Azure Blob, GCS). [`location::VaultLocation`] says which.
//! Decorators such as [`Hooked`] wrap either one (docs/design.md §
//! Storage: immutable named objects).

mod api;
pub mod faulty;
mod hooked;
pub mod local;
pub mod location;
pub mod object;
pub mod options;

pub use api::{Dir, Listed, ObjectName, Storage};
pub use hooked::{Hook, Hooked, ListFilter, Op};

use crate::error::Result;

/// Checks that the store refuses to create an object that exists, which
/// locks and manifests rely on: writes one probe object twice and
/// expects the second write to be refused. Leaves nothing behind.
pub fn honours_conditional_writes(storage: &dyn Storage) -> Result<bool> {
    // At the vault's root, where nothing is listed.
    let name = ObjectName::new(
        Dir::Config,
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
