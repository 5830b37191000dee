//! Writes chunks into packs, deduplicating against the vault's index.
//!
//! Order of durability: a pack is written (atomically) before the index
//! object that lists it, and index objects before the manifest that needs
//! them. A crash in between leaves packs nobody references, never a
//! reference to something missing.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::thread::JoinHandle;

use vault_format::compress::Compressor;
use vault_format::index::IndexObject;
use vault_format::object::ObjectKind;
use vault_format::pack::{BlobEntry, PackBuilder};
use vault_format::tree::{NodeStore, TreeNode};
use vault_format::{ChunkId, PackId};

use crate::error::{Error, FormatContext, Result};
use crate::host::random_bytes;
use crate::repository::{Indexed, Repository};
use crate::storage::{Dir, ObjectName, Storage};

/// How many packs are written before their index object is; bounds the
/// memory of ids that are written but not yet in the index cache.
const PACKS_PER_INDEX: usize = 4;

/// At most this many sealed packs are uploading at once (and held in
/// memory meanwhile), whatever the storage's concurrency.
const MAX_UPLOADS: usize = 4;

/// A sealed pack on its way to the storage.
struct Upload {
    pack: PackId,
    entries: Vec<BlobEntry>,
    thread: JoinHandle<Result<()>>,
}

/// What a writer added to the vault.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteStats {
    pub chunks_added: u64,
    pub chunks_deduplicated: u64,
    /// Plaintext bytes of the chunks added.
    pub plain_bytes_added: u64,
    /// Bytes written to packs (sealed chunks, trailers, headers).
    pub pack_bytes_written: u64,
    pub packs_written: u64,
}

pub struct PackWriter<'r> {
    repo: &'r Repository<Indexed>,
    builder: Option<PackBuilder>,
    compressor: Compressor,
    /// Chunks written by this writer and not yet in an index object.
    pending: HashSet<ChunkId>,
    unindexed: Vec<(PackId, Vec<BlobEntry>)>,
    stats: WriteStats,
    /// Repacking: write every chunk given, even those the index lists (in
    /// the packs being emptied).
    ignore_index: bool,
    /// The lock the writing command holds: an index object, which later
    /// snapshots dedup against, is written only while it is held.
    lock: Option<&'r crate::lock::VaultLock>,
    /// Packs uploading while the pipeline fills the next, oldest first.
    uploads: VecDeque<Upload>,
    max_uploads: usize,
}

impl<'r> PackWriter<'r> {
    pub fn new(repo: &'r Repository<Indexed>) -> Result<PackWriter<'r>> {
        let compressor =
            Compressor::new(repo.config().compression).ctx(|| "starting zstd".into())?;
        Ok(PackWriter {
            repo,
            builder: None,
            compressor,
            pending: HashSet::new(),
            unindexed: Vec::new(),
            stats: WriteStats::default(),
            ignore_index: false,
            lock: None,
            uploads: VecDeque::new(),
            max_uploads: repo.storage().concurrency().clamp(1, MAX_UPLOADS),
        })
    }

    /// A writer for gc's repacking, which copies chunks the index already lists.
    pub(crate) fn for_repack(repo: &'r Repository<Indexed>) -> Result<PackWriter<'r>> {
        let mut w = PackWriter::new(repo)?;
        w.ignore_index = true;
        Ok(w)
    }

    /// Writes index objects only while `lock` is held (see [`Self::flush`]).
    pub(crate) fn guarded_by(mut self, lock: &'r crate::lock::VaultLock) -> PackWriter<'r> {
        self.lock = Some(lock);
        self
    }

    pub fn stats(&self) -> WriteStats {
        self.stats
    }

    /// Whether the vault (or this writer) already holds a chunk.
    pub fn has(&self, id: &ChunkId) -> Result<bool> {
        Ok(self.pending.contains(id)
            || (!self.ignore_index && self.repo.index_cache().contains(id)?))
    }

    /// Hashes and stores a chunk unless the vault has it. Returns its id.
    pub fn add(&mut self, kind: ObjectKind, plaintext: &[u8]) -> Result<ChunkId> {
        let id = self.repo.keys().chunk_id(plaintext);
        self.add_with_id(kind, id, plaintext)?;
        Ok(id)
    }

    /// Stores a chunk whose id the caller computed. Returns whether it was new.
    pub(crate) fn add_with_id(
        &mut self,
        kind: ObjectKind,
        id: ChunkId,
        plaintext: &[u8],
    ) -> Result<bool> {
        if self.has(&id)? {
            self.stats.chunks_deduplicated += 1;
            return Ok(false);
        }
        let cap = self.repo.config().pack_target_size as usize;
        let (keys, vault) = (self.repo.keys(), self.repo.vault_id());
        let builder = self
            .builder
            .get_or_insert_with(|| PackBuilder::new(keys, vault, PackId(random_bytes()), cap));
        builder
            .add(kind, id, plaintext, &mut self.compressor)
            .ctx(|| format!("packing chunk {id}"))?;
        self.note_added(id, plaintext.len())?;
        Ok(true)
    }

    /// Counts a chunk a worker found in the index as deduplicated, after
    /// checking it is still there.
    pub(crate) fn confirm_present(&mut self, id: &ChunkId) -> Result<()> {
        if !self.has(id)? {
            return Err(Error::NotFound(format!(
                "chunk {id} vanished from the index during the snapshot"
            )));
        }
        self.stats.chunks_deduplicated += 1;
        Ok(())
    }

    /// Stores a chunk compressed elsewhere (by the pipeline's workers).
    pub(crate) fn add_compressed(
        &mut self,
        kind: ObjectKind,
        id: ChunkId,
        framed: &[u8],
        plain_len: usize,
    ) -> Result<bool> {
        if self.has(&id)? {
            self.stats.chunks_deduplicated += 1;
            return Ok(false);
        }
        self.builder_mut()
            .add_framed(kind, id, framed, plain_len)
            .ctx(|| format!("packing chunk {id}"))?;
        self.note_added(id, plain_len)?;
        Ok(true)
    }

    fn builder_mut(&mut self) -> &mut PackBuilder {
        let cap = self.repo.config().pack_target_size as usize;
        let (keys, vault) = (self.repo.keys(), self.repo.vault_id());
        self.builder
            .get_or_insert_with(|| PackBuilder::new(keys, vault, PackId(random_bytes()), cap))
    }

    fn note_added(&mut self, id: ChunkId, plain_len: usize) -> Result<()> {
        self.pending.insert(id);
        self.stats.chunks_added += 1;
        self.stats.plain_bytes_added += plain_len as u64;
        if self
            .builder
            .as_ref()
            .is_some_and(|b| b.len() >= self.repo.config().pack_target_size as usize)
        {
            self.finish_pack()?;
        }
        Ok(())
    }

    fn finish_pack(&mut self) -> Result<()> {
        let Some(builder) = self.builder.take() else {
            return Ok(());
        };
        if builder.is_empty() {
            return Ok(());
        }
        let (pack, bytes, entries) = builder.finish().ctx(|| "sealing a pack".into())?;
        self.stats.pack_bytes_written += bytes.len() as u64;
        self.stats.packs_written += 1;
        let storage: Arc<dyn Storage> = Arc::clone(self.repo.storage());
        let thread = std::thread::Builder::new()
            .name("vault-pack-upload".into())
            .spawn(move || {
                storage.put_if_absent(&ObjectName::new(Dir::Packs, pack.to_hex()), &bytes)?;
                Ok(())
            })
            .map_err(|e| Error::Internal(format!("starting a pack upload: {e}")))?;
        self.uploads.push_back(Upload {
            pack,
            entries,
            thread,
        });
        while self.uploads.len() > self.max_uploads {
            self.finish_oldest_upload()?;
        }
        Ok(())
    }

    /// Waits for the oldest upload; once its pack is durable it may be
    /// indexed.
    fn finish_oldest_upload(&mut self) -> Result<()> {
        let Some(u) = self.uploads.pop_front() else {
            return Ok(());
        };
        u.thread
            .join()
            .map_err(|_| Error::Internal("a pack upload panicked".into()))??;
        self.unindexed.push((u.pack, u.entries));
        if self.unindexed.len() >= PACKS_PER_INDEX {
            self.write_index()?;
        }
        Ok(())
    }

    fn write_index(&mut self) -> Result<()> {
        if self.unindexed.is_empty() {
            return Ok(());
        }
        // With the lock lost, gc may have deleted these packs as orphans.
        if let Some(lock) = self.lock {
            lock.check()?;
        }
        let index = IndexObject {
            packs: std::mem::take(&mut self.unindexed),
        };
        let id = self.repo.write_index(&index)?;
        self.repo.index_cache().insert_object(&id, &index)?;
        for (_, entries) in &index.packs {
            for e in entries {
                self.pending.remove(&e.id);
            }
        }
        Ok(())
    }

    /// Makes everything added so far durable: the open pack, then the index
    /// objects that list it. Call before committing anything that refers to it.
    pub fn flush(&mut self) -> Result<()> {
        self.finish_pack()?;
        while !self.uploads.is_empty() {
            self.finish_oldest_upload()?;
        }
        self.write_index()
    }
}

impl NodeStore for PackWriter<'_> {
    type Error = Error;

    fn put_node(&mut self, node: &TreeNode) -> Result<ChunkId> {
        self.add(ObjectKind::TreeNode, &node.encode())
    }

    fn get_node(&mut self, id: &ChunkId) -> Result<TreeNode> {
        // Nodes written by this writer become readable once indexed.
        if self.pending.contains(id) {
            self.flush()?;
        }
        self.repo.read_tree_node(id)
    }
}
