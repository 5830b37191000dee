//! The engine's one error type. Every variant carries what vault was doing,
//! so the CLI can print one line that names the problem and the fix.

use std::path::PathBuf;

use vault_format::FormatError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
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

    /// Process exit code for this error: 2 for bad usage, 3 for damage found
    /// in the vault, 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => 2,
            Error::Format { .. } | Error::Damaged(_) => 3,
            _ => 1,
        }
    }
}

/// Adds context to format errors: `bytes.decode().ctx("reading snapshot X")`.
pub trait FormatContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> FormatContext<T> for std::result::Result<T, FormatError> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::format(context(), e))
    }
}
