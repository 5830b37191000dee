//! vault: encrypted, deduplicating, offset-exact backups of Apache Kafka.
//!
//! The engine: storage backends, the typed repository, the index cache and
//! the pack writer. The on-disk format itself lives in the `vault-format`
//! crate; the CLI (`src/main.rs`) is a thin layer over this library.

pub mod catalog;
pub mod check;
pub mod error;
pub mod estate;
pub(crate) mod faults;
pub mod gc;
pub mod host;
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
