//! The common object header and the sealing of standalone objects (config
//! body, index objects, snapshot manifests). See `docs/format.md` § Objects.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

use crate::compress::{Compression, decompress_framed};
use crate::error::{FormatError, Result};
use crate::id::VaultId;
use crate::keys::SubKeys;
use crate::wire::{Reader, Writer};

pub use crate::header::{Header, MAGIC, ObjectKind};

/// Associated data of a standalone object: the header, its salt, the vault
/// id and the object's name, so it cannot be moved to another name or vault.
fn object_ad(header: [u8; 6], salt: &[u8; 16], vault: &VaultId, name: &[u8]) -> Vec<u8> {
    let mut w = Writer::with_capacity(48 + name.len());
    w.raw(&header).raw(salt).raw(&vault.0).bytes(name);
    w.into_inner()
}

/// Seals `body` as a standalone object of `kind` named `name`.
/// Layout: `header || salt[16] || AES-256-GCM(compressed body)`.
pub fn seal_object(
    keys: &SubKeys,
    vault: &VaultId,
    kind: ObjectKind,
    name: &[u8],
    body: &[u8],
    salt: [u8; 16],
    compression: Compression,
) -> Result<Vec<u8>> {
    seal_object_version(
        keys,
        vault,
        kind,
        kind.current_version(),
        name,
        body,
        salt,
        compression,
    )
}

/// [`seal_object`] with an older header version, for a body laid out as
/// that version says (tests and upgrade tools write old objects with it).
#[allow(clippy::too_many_arguments)]
pub fn seal_object_version(
    keys: &SubKeys,
    vault: &VaultId,
    kind: ObjectKind,
    version: u8,
    name: &[u8],
    body: &[u8],
    salt: [u8; 16],
    compression: Compression,
) -> Result<Vec<u8>> {
    let header = Header { kind, version }.to_bytes();
    let plaintext = compression.compress_framed(body)?;
    let key = keys.aead_key(b"object", &salt);
    let ct = Aes256Gcm::new(&key.into())
        .encrypt(
            Nonce::from_slice(&[0u8; 12]),
            Payload {
                msg: &plaintext,
                aad: &object_ad(header, &salt, vault, name),
            },
        )
        .map_err(|_| FormatError::Encode {
            what: kind.name(),
            detail: "AES-GCM failed".into(),
        })?;
    let mut out = Vec::with_capacity(6 + 16 + ct.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(&salt);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Opens a standalone object sealed by [`seal_object`]. Any change to any
/// byte, or a different name, vault or kind, fails with an integrity error.
pub fn open_object(
    keys: &SubKeys,
    vault: &VaultId,
    kind: ObjectKind,
    name: &[u8],
    bytes: &[u8],
) -> Result<Vec<u8>> {
    open_object_versioned(keys, vault, kind, name, bytes).map(|(_, body)| body)
}

/// [`open_object`], also returning the header version (authenticated with
/// the body), which says how to decode a body whose layout changed.
pub fn open_object_versioned(
    keys: &SubKeys,
    vault: &VaultId,
    kind: ObjectKind,
    name: &[u8],
    bytes: &[u8],
) -> Result<(u8, Vec<u8>)> {
    let mut r = Reader::new(bytes, kind.name());
    let header = Header::read(&mut r, kind)?;
    let salt: [u8; 16] = r.array()?;
    let ct = r.raw(r.remaining())?;
    let key = keys.aead_key(b"object", &salt);
    let pt = Aes256Gcm::new(&key.into())
        .decrypt(
            Nonce::from_slice(&[0u8; 12]),
            Payload {
                msg: ct,
                aad: &object_ad(header.to_bytes(), &salt, vault, name),
            },
        )
        .map_err(|_| FormatError::Integrity { what: kind.name() })?;
    Ok((header.version, decompress_framed(&pt, kind.name())?))
}
