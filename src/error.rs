//! The engine's one error type. Every variant carries what vault was doing,
//! so the CLI can print one line that names the problem and the fix.

use std::path::PathBuf;

use vault_format::FormatError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The vault's storage failed (not the vault's content): a server
    /// that does not answer, refuses, or times out.
    #[error("{context}: {message}")]
    Storage { context: String, message: String },

    /// A file system operation failed.
    #[error("{context}: {path}: {source}")]
    Io {
        context: String,
        path: PathBuf,
        source: std::io::Error,
    },

    /// Bytes read from the vault were damaged, tampered with, or too new.
    #[error("{context}: {source}")]
    Format {
        context: String,
        source: FormatError,
    },

    /// The vault (or an object in it) is not where it should be.
    #[error("{0}")]
    NotFound(String),

    /// The passphrase opened no key file.
    #[error(
        "wrong passphrase: no key file in {vault} opens with it (check --password-file / KVAULT_PASSWORD_FILE)"
    )]
    WrongPassphrase { vault: PathBuf },

    /// The user asked for something that cannot be done as asked.
    #[error("{0}")]
    Usage(String),

    /// The local index cache failed; it can always be deleted and rebuilt.
    #[error(
        "index cache at {path}: {message} (it is safe to delete this directory; vault rebuilds it)"
    )]
    Cache { path: PathBuf, message: String },

    /// Talking to Kafka failed.
    #[error("{context}: {message}")]
    Kafka { context: String, message: String },

    /// Another vault process holds a lock that conflicts with this command.
    #[error("{0}")]
    Locked(String),

    /// The vault holds damaged objects that the command cannot work around.
    #[error("{0}")]
    Damaged(String),

    /// vault itself went wrong (a bug): not the input, the vault or Kafka.
    #[error("internal error: {0}; please report it")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(
        context: impl Into<String>,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Error {
        Error::Io {
            context: context.into(),
            path: path.into(),
            source,
        }
    }

    pub fn format(context: impl Into<String>, source: FormatError) -> Error {
        Error::Format {
            context: context.into(),
            source,
        }
    }

    /// Process exit code for this error (README § exit codes): 2 for bad
    /// usage, 3 for damage found in the vault, 1 for every other failure
    /// (Kafka, storage, locks, internal errors).
    pub fn exit_code(&self) -> i32 {
        // No wildcard: a new variant must choose its code.
        match self {
            Error::Usage(_) => 2,
            Error::Format { .. } | Error::Damaged(_) => 3,
            Error::Io { .. }
            | Error::Storage { .. }
            | Error::NotFound(_)
            | Error::WrongPassphrase { .. }
            | Error::Cache { .. }
            | Error::Kafka { .. }
            | Error::Locked(_)
            | Error::Internal(_) => 1,
        }
    }
}

/// A format error met while building or walking a tree (the tree code
/// knows no more context than that).
impl From<FormatError> for Error {
    fn from(source: FormatError) -> Error {
        Error::format("building or walking a snapshot tree", source)
    }
}

/// Adds context to format errors: `bytes.decode().ctx("reading snapshot X")`.
pub(crate) trait FormatContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> FormatContext<T> for std::result::Result<T, FormatError> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::format(context(), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_its_documented_exit_code() {
        let io = || std::io::Error::other("x");
        let cases = [
            (Error::Usage("x".into()), 2),
            (
                Error::format("x", FormatError::Integrity { what: "pack" }),
                3,
            ),
            (Error::Damaged("x".into()), 3),
            (Error::io("x", "/p", io()), 1),
            (
                Error::Storage {
                    context: "x".into(),
                    message: "y".into(),
                },
                1,
            ),
            (Error::NotFound("x".into()), 1),
            (
                Error::WrongPassphrase {
                    vault: PathBuf::from("/v"),
                },
                1,
            ),
            (
                Error::Cache {
                    path: PathBuf::from("/c"),
                    message: "x".into(),
                },
                1,
            ),
            (
                Error::Kafka {
                    context: "x".into(),
                    message: "y".into(),
                },
                1,
            ),
            (Error::Locked("x".into()), 1),
            (Error::Internal("x".into()), 1),
        ];
        for (e, code) in cases {
            assert_eq!(e.exit_code(), code, "{e:?}");
        }
    }
}
