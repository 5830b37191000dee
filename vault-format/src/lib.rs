//! vault's on-disk format, version 3 (reads versions 1 and 2 too).
//!
//! Pure encoders and decoders for every object a vault holds: key files, the
//! config, packs of sealed chunks, index objects, snapshot trees and
//! manifests, the run objects of a snapshot taken by several workers, and the record framing inside data chunks. There is no I/O,
//! no Kafka and no policy here; randomness comes in as arguments. The
//! byte-level spec is `docs/format.md`; the golden vectors in `tests/`
//! keep code and spec in step.

// Pure encoders and decoders: no unsafe code, ever.
#![forbid(unsafe_code)]

pub mod chunker;
pub mod compress;
pub mod config;
pub mod error;
pub mod estate;
pub mod fuzzing;
pub mod header;
pub mod id;
pub mod index;
pub mod keys;
pub mod manifest;
pub mod object;
pub mod pack;
pub mod pin;
pub mod planes;
pub mod record;
pub mod run;
pub mod streams;
pub mod tree;
pub mod wire;

pub use error::{FormatError, Result};
pub use id::{ChunkId, ObjectId, PackId, TopicId, VaultId};

/// The format version this crate writes: the newest header version of any
/// object kind (see [`object::ObjectKind::current_version`]). It reads every
/// version before it too.
pub const FORMAT_VERSION: u8 = 3;
