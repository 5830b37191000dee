//! The first six bytes of every file and blob kind: the magic, what the
//! object is and its version (`docs/format.md` § Objects). A leaf of the
//! format, so compression, keys and objects can all name a kind.

use crate::error::{FormatError, Result};
use crate::wire::{Reader, Writer};

pub const MAGIC: [u8; 4] = *b"KVLT";

/// What an object or blob is. Bound into the associated data of every
/// ciphertext, so one kind can never be passed off as another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ObjectKind {
    Config = 1,
    KeyFile = 2,
    Pack = 3,
    Index = 4,
    Snapshot = 5,
    Lock = 6,
    /// The shared plan and finished parts of a distributed snapshot.
    RunPlan = 7,
    RunPart = 8,
    RunCommit = 9,
    /// An unfinished restore's claim on its snapshot.
    RestorePin = 10,
    /// Blob kinds, inside packs.
    DataChunk = 0x10,
    ValueChunk = 0x11,
    TreeNode = 0x12,
    /// The encrypted table of contents at the end of a pack.
    PackTrailer = 0x20,
}

impl ObjectKind {
    pub fn from_u8(v: u8) -> Option<ObjectKind> {
        use ObjectKind::*;
        Some(match v {
            1 => Config,
            2 => KeyFile,
            3 => Pack,
            4 => Index,
            5 => Snapshot,
            6 => Lock,
            7 => RunPlan,
            8 => RunPart,
            9 => RunCommit,
            10 => RestorePin,
            0x10 => DataChunk,
            0x11 => ValueChunk,
            0x12 => TreeNode,
            0x20 => PackTrailer,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        use ObjectKind::*;
        match self {
            Config => "config",
            KeyFile => "key file",
            Pack => "pack",
            Index => "index object",
            Snapshot => "snapshot manifest",
            Lock => "lock",
            RunPlan => "run plan",
            RunPart => "run part",
            RunCommit => "run commit",
            RestorePin => "restore pin",
            DataChunk => "data chunk",
            ValueChunk => "value chunk",
            TreeNode => "tree node",
            PackTrailer => "pack trailer",
        }
    }

    /// The header version this crate writes for objects of this kind; it
    /// reads every version from 1 up to it. Only the snapshot manifest and
    /// the run plan (whose template is a manifest) have changed since
    /// format 1 (docs/format.md § Versioning), so an older binary still
    /// reads the packs, index objects and config that newer binaries
    /// write, and refuses only the objects it would misread.
    pub fn current_version(self) -> u8 {
        match self {
            ObjectKind::Snapshot => 3,
            // Its template is a manifest.
            ObjectKind::RunPlan => 2,
            _ => 1,
        }
    }

    pub fn is_blob(self) -> bool {
        matches!(
            self,
            ObjectKind::DataChunk | ObjectKind::ValueChunk | ObjectKind::TreeNode
        )
    }
}

/// `"KVLT" || kind u8 || version u8`: the first six bytes of every file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub kind: ObjectKind,
    pub version: u8,
}

impl Header {
    pub const LEN: usize = 6;

    pub fn new(kind: ObjectKind) -> Header {
        Header {
            kind,
            version: kind.current_version(),
        }
    }

    pub fn write(&self, w: &mut Writer) {
        w.raw(&MAGIC).u8(self.kind as u8).u8(self.version);
    }

    pub fn to_bytes(&self) -> [u8; 6] {
        let mut b = [0u8; 6];
        b[..4].copy_from_slice(&MAGIC);
        b[4] = self.kind as u8;
        b[5] = self.version;
        b
    }

    /// Reads and checks a header: magic, the expected kind, and a version this
    /// reader understands. A newer version is refused with a clear error.
    pub fn read(r: &mut Reader<'_>, expected: ObjectKind) -> Result<Header> {
        let what = expected.name();
        let magic: [u8; 4] = r.array()?;
        if magic != MAGIC {
            return Err(FormatError::BadMagic { what });
        }
        let kind = r.u8()?;
        if kind != expected as u8 {
            return Err(FormatError::malformed(
                what,
                format!("object kind is {kind}, expected {}", expected as u8),
            ));
        }
        let version = r.u8()?;
        if version > expected.current_version() {
            return Err(FormatError::UnsupportedVersion {
                what,
                found: u32::from(version),
                supported: u32::from(expected.current_version()),
            });
        }
        if version == 0 {
            return Err(FormatError::malformed(what, "format version 0"));
        }
        Ok(Header {
            kind: expected,
            version,
        })
    }
}
