//! vault: encrypted, deduplicating, offset-exact backups of Apache Kafka.
//!
//! The engine: storage backends, the typed repository, the index cache and
//! the pack writer. The on-disk format itself lives in the `vault-format`
//! crate; the CLI (`src/main.rs`) is a thin layer over this library.

pub mod catalog;
pub mod check;
pub mod error;
pub(crate) mod faults;
pub mod gc;
pub mod index_cache;
pub mod inspect;
pub mod kafka;
pub mod lock;
pub mod metrics;
pub mod pack_writer;
pub(crate) mod parallel;
pub mod password;
pub mod reader;
pub mod repair;
pub mod repository;
pub mod restore;
pub mod secrets;
pub mod snapshot;
pub mod stats;
pub mod storage;
pub mod time;
pub mod timings;

pub use error::{Error, Result};
pub use repository::Repository;
pub use time::now_ms;

/// `N` bytes from the operating system's random number generator.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the OS random number generator failed");
    b
}

/// Where the local caches live unless `--cache-dir` or `KVAULT_CACHE_DIR` says
/// otherwise: `$XDG_CACHE_HOME/kvault`, else `~/.cache/kvault`.
pub fn default_cache_dir() -> std::path::PathBuf {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return std::path::PathBuf::from(x).join("kvault");
    }
    let home = std::env::var_os("HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    home.join(".cache").join("kvault")
}

/// This machine's host name, for snapshot manifests and lock owners.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
