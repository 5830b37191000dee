//! The local index cache: chunk id → where the chunk is, in RocksDB.
//!
//! The vault's index objects and packs are the source of truth; this cache
//! only makes lookups fast without holding the index in memory. It lives
//! outside the vault (under the user's cache directory), can be deleted at
//! any time, and is brought up to date from the index objects on open.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use rocksdb::{BlockBasedOptions, DB, DBCompressionType, Options, WriteBatch};
use vault_format::pack::BlobEntry;
use vault_format::{ChunkId, ObjectId, PackId};

use crate::error::{Error, Result};

/// Where a chunk is: its pack and its entry in that pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub pack: PackId,
    pub entry: BlobEntry,
}

const CHUNK: u8 = b'c';
const OBJECT: u8 = b'o';
const PACK: u8 = b'p';
/// Packs whose entries were read from their own trailers, because the
/// index object that lists them is damaged.
const RECOVERED: u8 = b'r';
/// The entries of those packs: found for reading, never for dedup. Such a
/// pack is listed by no readable index object, so gc may delete it (as an
/// orphan) without clearing this cache: a snapshot that deduplicated
/// against it would reference a chunk that is gone.
const RECOVERED_CHUNK: u8 = b'R';
/// gc's and check's mark set: chunk ids reached from kept snapshots. Kept
/// on disk so marking a vault of millions of chunks needs no memory for it.
const MARK: u8 = b'm';

/// Bumped when the cache's own layout changes; an old cache is rebuilt.
const CACHE_LAYOUT: &str = "index-v1";

pub struct IndexCache {
    db: DB,
    path: PathBuf,
    /// Removes a private cache after the database is closed (fields drop in order).
    _private: Option<PrivateDir>,
}

/// A cache used only by this process, because another vault process holds
/// the shared one. Deleted when the process is done with it.
struct PrivateDir(PathBuf);

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl std::fmt::Debug for IndexCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IndexCache({})", self.path.display())
    }
}

fn encode_location(pack: &PackId, e: &BlobEntry) -> Vec<u8> {
    let mut w = vault_format::wire::Writer::with_capacity(48);
    w.raw(&pack.0)
        .u8(e.kind as u8)
        .varint(e.offset)
        .varint(u64::from(e.sealed_len))
        .varint(u64::from(e.plain_len));
    w.into_inner()
}

fn decode_location(id: ChunkId, v: &[u8]) -> Option<Location> {
    let mut r = vault_format::wire::Reader::new(v, "index cache entry");
    let pack = PackId(r.array().ok()?);
    let kind = vault_format::object::ObjectKind::from_u8(r.u8().ok()?)?;
    let offset = r.varint().ok()?;
    let sealed_len = u32::try_from(r.varint().ok()?).ok()?;
    let plain_len = u32::try_from(r.varint().ok()?).ok()?;
    Some(Location {
        pack,
        entry: BlobEntry {
            kind,
            id,
            offset,
            sealed_len,
            plain_len,
        },
    })
}

fn key(tag: u8, id: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + id.len());
    k.push(tag);
    k.extend_from_slice(id);
    k
}

impl IndexCache {
    /// Opens (or creates) the cache of one vault under `cache_root`.
    /// If another vault process holds it (RocksDB allows one), this process
    /// gets a private cache of its own, rebuilt from the vault and removed
    /// afterwards: slower to start, never blocked.
    pub fn open(cache_root: &Path, vault: &vault_format::VaultId) -> Result<IndexCache> {
        let shared = cache_root.join(vault.to_hex()).join(CACHE_LAYOUT);
        match IndexCache::open_at(&shared, None) {
            Err(Error::Cache { message, .. }) if message.contains("lock") => {
                let private = cache_root.join(vault.to_hex()).join(format!(
                    "private-{}-{:x}",
                    std::process::id(),
                    u32::from_le_bytes(crate::host::random_bytes())
                ));
                IndexCache::open_at(&private, Some(PrivateDir(private.clone())))
            }
            other => other,
        }
    }

    fn open_at(path: &Path, private: Option<PrivateDir>) -> Result<IndexCache> {
        let path = path.to_path_buf();
        std::fs::create_dir_all(&path)
            .map_err(|e| Error::io("creating the index cache", &path, e))?;
        // The cache names every chunk of the vault: private, like the vault.
        crate::storage::local::private_dir(&path)?;
        if let Some(vault_dir) = path.parent() {
            crate::storage::local::private_dir(vault_dir)?;
        }
        let mut opts = Options::default();
        opts.create_if_missing(true);
        // Chunk ids are random: compression would gain nothing.
        opts.set_compression_type(DBCompressionType::None);
        opts.set_max_open_files(256);
        opts.set_keep_log_file_num(2);
        let mut block = BlockBasedOptions::default();
        block.set_bloom_filter(10.0, false);
        block.set_block_cache(&rocksdb::Cache::new_lru_cache(32 << 20));
        opts.set_block_based_table_factory(&block);
        let db = DB::open(&opts, &path).map_err(|e| Error::Cache {
            path: path.clone(),
            message: if e.to_string().contains("lock") {
                format!("{e}; is another vault process using this vault?")
            } else {
                e.to_string()
            },
        })?;
        Ok(IndexCache {
            db,
            path,
            _private: private,
        })
    }

    #[allow(clippy::needless_pass_by_value)] // used as map_err(|e| self.err(e))
    fn err(&self, e: rocksdb::Error) -> Error {
        Error::Cache {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// Where a chunk is, for reading: from an index object, or else from
    /// the trailer of a pack whose index object is damaged.
    pub fn get(&self, id: &ChunkId) -> Result<Option<Location>> {
        for tag in [CHUNK, RECOVERED_CHUNK] {
            let v = self
                .db
                .get_pinned(key(tag, &id.0))
                .map_err(|e| self.err(e))?;
            if let Some(v) = v {
                return decode_location(*id, &v)
                    .map(Some)
                    .ok_or_else(|| Error::Cache {
                        path: self.path.clone(),
                        message: "unreadable entry".into(),
                    });
            }
        }
        Ok(None)
    }

    /// Whether an index object lists the chunk: the vault has it for dedup.
    pub fn contains(&self, id: &ChunkId) -> Result<bool> {
        Ok(self
            .db
            .get_pinned(key(CHUNK, &id.0))
            .map_err(|e| self.err(e))?
            .is_some())
    }

    /// The index objects whose entries the cache holds.
    pub(crate) fn loaded_objects(&self) -> Result<HashSet<ObjectId>> {
        self.ids_with_tag(OBJECT).map(|v| {
            v.into_iter()
                .filter_map(|b| ObjectId::from_slice(&b))
                .collect()
        })
    }

    /// Forgets every entry read from a trailer: such a pack may have been
    /// deleted since (or indexed properly), so it is looked at afresh.
    pub(crate) fn clear_recovered(&self) -> Result<()> {
        let mut batch = WriteBatch::default();
        for tag in [RECOVERED, RECOVERED_CHUNK] {
            batch.delete_range(&[tag][..], &[tag + 1][..]);
        }
        self.db.write(batch).map_err(|e| self.err(e))
    }

    /// The packs the loaded index objects list.
    pub fn known_packs(&self) -> Result<HashSet<PackId>> {
        self.ids_with_tag(PACK).map(|v| {
            v.into_iter()
                .filter_map(|b| PackId::from_slice(&b))
                .collect()
        })
    }

    fn ids_with_tag(&self, tag: u8) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        for item in self.db.prefix_iterator([tag]) {
            let (k, _) = item.map_err(|e| self.err(e))?;
            if k.first() != Some(&tag) {
                break;
            }
            out.push(k[1..].to_vec());
        }
        Ok(out)
    }

    /// Records every entry of one index object, atomically with the marker
    /// that says the object is loaded.
    pub(crate) fn insert_object(
        &self,
        object: &ObjectId,
        index: &vault_format::index::IndexObject,
    ) -> Result<()> {
        let mut batch = WriteBatch::default();
        for (pack, entries) in &index.packs {
            batch.put(key(PACK, &pack.0), object.0);
            for e in entries {
                batch.put(key(CHUNK, &e.id.0), encode_location(pack, e));
            }
        }
        batch.put(key(OBJECT, &object.0), []);
        self.db.write(batch).map_err(|e| self.err(e))
    }

    /// Records the entries of one pack read from its own trailer, because
    /// the index object that lists it is damaged. No object is marked
    /// loaded, so the damaged one is tried again next time.
    pub(crate) fn insert_pack(&self, pack: &PackId, entries: &[BlobEntry]) -> Result<()> {
        let mut batch = WriteBatch::default();
        batch.put(key(RECOVERED, &pack.0), []);
        for e in entries {
            batch.put(key(RECOVERED_CHUNK, &e.id.0), encode_location(pack, e));
        }
        self.db.write(batch).map_err(|e| self.err(e))
    }

    /// Empties the cache (used when index objects were removed or rewritten).
    pub fn clear(&self) -> Result<()> {
        let mut batch = WriteBatch::default();
        for tag in [CHUNK, OBJECT, PACK, RECOVERED, RECOVERED_CHUNK] {
            batch.delete_range(&[tag][..], &[tag + 1][..]);
        }
        self.db.write(batch).map_err(|e| self.err(e))
    }

    /// Adds `id` to the mark set; returns whether it was new.
    pub fn mark(&self, id: &ChunkId) -> Result<bool> {
        let k = key(MARK, &id.0);
        if self.db.get_pinned(&k).map_err(|e| self.err(e))?.is_some() {
            return Ok(false);
        }
        self.db.put(k, []).map_err(|e| self.err(e))?;
        Ok(true)
    }

    pub(crate) fn is_marked(&self, id: &ChunkId) -> Result<bool> {
        Ok(self
            .db
            .get_pinned(key(MARK, &id.0))
            .map_err(|e| self.err(e))?
            .is_some())
    }

    pub(crate) fn clear_marks(&self) -> Result<()> {
        let mut batch = WriteBatch::default();
        batch.delete_range(&[MARK][..], &[MARK + 1][..]);
        self.db.write(batch).map_err(|e| self.err(e))
    }
}
