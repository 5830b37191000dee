//! The one error type of the format crate.

use thiserror::Error;

/// Everything that can go wrong while encoding or decoding vault bytes.
///
/// Decoders never panic on bad input; they return one of these.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FormatError {
    /// The input ended before the structure did.
    #[error("truncated {what}: needed {needed} more bytes")]
    Truncated { what: &'static str, needed: usize },
    /// The bytes do not start with the expected magic number.
    #[error("not a vault {what} (bad magic)")]
    BadMagic { what: &'static str },
    /// The object was written by a newer vault than this one.
    #[error(
        "{what} has format version {found}, but this vault binary reads up to version {supported}; upgrade vault"
    )]
    UnsupportedVersion {
        what: &'static str,
        found: u32,
        supported: u32,
    },
    /// Authenticated decryption failed: the bytes were changed, truncated,
    /// swapped for another object's, or the key is wrong.
    #[error("integrity check failed for {what}: the data was damaged or tampered with")]
    Integrity { what: &'static str },
    /// A decrypted, authentic object violates the format's rules.
    #[error("malformed {what}: {detail}")]
    Malformed { what: &'static str, detail: String },
    /// The passphrase did not open the key file.
    #[error("wrong passphrase (or the key file was damaged)")]
    WrongPassphrase,
    /// A value cannot be encoded (too large for its field, …).
    #[error("cannot encode {what}: {detail}")]
    Encode { what: &'static str, detail: String },
}

impl FormatError {
    pub fn malformed(what: &'static str, detail: impl Into<String>) -> Self {
        FormatError::Malformed {
            what,
            detail: detail.into(),
        }
    }
}

pub type Result<T, E = FormatError> = std::result::Result<T, E>;
