//! The indexed repository: the index cache kept in step with the vault's
//! index objects (and, where one is damaged, with the pack trailers), and
//! reading chunks through it.

use vault_format::PackId;
use vault_format::index::IndexObject;
use vault_format::object::ObjectKind;
use vault_format::pack::{BlobEntry, open_blob};
use vault_format::tree::{NodeStore, TreeNode};
use vault_format::{ChunkId, FormatError, ObjectId};

use super::{Indexed, Repository};
use crate::error::{Error, FormatContext, Result};
use crate::index_cache::{IndexCache, Location};
use crate::storage::{Dir, ObjectName};

impl Repository<Indexed> {
    pub fn index_cache(&self) -> &IndexCache {
        &self.state.index
    }

    /// Warnings about damage found so far (taken: each is given once).
    pub fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut *self.state.warnings.lock().expect("warnings"))
    }

    fn warn(&self, w: String) {
        self.state.warnings.lock().expect("warnings").push(w);
    }

    /// The entries of `pack` as its encrypted trailer lists them.
    pub(crate) fn read_pack_trailer(&self, pack: &PackId, size: u64) -> Result<Vec<BlobEntry>> {
        let name = ObjectName::new(Dir::Packs, pack.to_hex());
        let footer_at = size.saturating_sub(vault_format::pack::PACK_FOOTER_LEN as u64);
        let footer =
            self.storage
                .get_range(&name, footer_at, vault_format::pack::PACK_FOOTER_LEN as u64)?;
        let tlen = vault_format::pack::read_pack_footer(&footer)
            .ctx(|| format!("reading the footer of pack {pack}"))?;
        let start = footer_at.checked_sub(tlen as u64).ok_or_else(|| {
            Error::format(
                format!("reading the trailer of pack {pack}"),
                FormatError::Truncated {
                    what: "pack",
                    needed: tlen,
                },
            )
        })?;
        let trailer = self.storage.get_range(&name, start, tlen as u64)?;
        vault_format::pack::open_pack_trailer(self.keys(), &self.vault_id(), pack, &trailer, size)
            .ctx(|| format!("reading the trailer of pack {pack}"))
    }

    /// The pack files no index object the cache has loaded lists, with
    /// their sizes.
    pub(crate) fn unindexed_packs(&self) -> Result<Vec<(PackId, u64)>> {
        let known = self.state.index.known_packs()?;
        Ok(self
            .storage
            .list(Dir::Packs)?
            .into_iter()
            .filter_map(|l| Some((PackId::from_hex(&l.name).ok()?, l.size)))
            .filter(|(p, _)| !known.contains(p))
            .collect())
    }

    /// Indexes packs that no index object lists: the packs of a snapshot that
    /// was killed after writing them and before writing their index object.
    /// Their trailers say what they hold, so the next snapshot dedups
    /// against them instead of writing the same chunks again. A pack whose
    /// trailer is damaged is reported and left alone. Returns how many packs
    /// were adopted.
    pub(crate) fn adopt_orphan_packs(&self) -> Result<usize> {
        let mut adopted = Vec::new();
        for (pack, size) in self.unindexed_packs()? {
            match self.read_pack_trailer(&pack, size) {
                Ok(entries) => adopted.push((pack, entries)),
                Err(e @ Error::Format { .. }) => self.warn(format!(
                    "pack {pack} is damaged and no index lists it; it was left alone: {e}"
                )),
                Err(e) => return Err(e),
            }
        }
        let n = adopted.len();
        for batch in adopted.chunks(64) {
            let index = IndexObject {
                packs: batch.to_vec(),
            };
            let id = self.write_index(&index)?;
            self.state.index.insert_object(&id, &index)?;
        }
        Ok(n)
    }

    /// Loads index objects the cache has not seen. If the cache knows an
    /// object the vault no longer has (gc rewrote the index), it is rebuilt.
    /// A damaged index object is skipped with a warning, and the chunks it
    /// listed are found again from the trailers of the packs no readable
    /// index object lists, so one bad object never blocks a restore.
    /// Returns the damaged index objects.
    pub fn sync_index(&self) -> Result<Vec<(ObjectId, String)>> {
        let listed: std::collections::HashSet<ObjectId> = self
            .storage
            .list(Dir::Index)?
            .into_iter()
            .filter_map(|l| ObjectId::from_hex(&l.name).ok())
            .collect();
        // Trailer entries are never kept from one run to the next: the
        // packs they describe may be gone.
        self.state.index.clear_recovered()?;
        let loaded = self.state.index.loaded_objects()?;
        if !loaded.is_subset(&listed) {
            self.state.index.clear()?;
        }
        let loaded = self.state.index.loaded_objects()?;
        let mut damaged = Vec::new();
        // Fetched several at a time: on object storage a cold cache means
        // thousands of small GETs, each mostly latency.
        let missing: Vec<ObjectId> = listed.difference(&loaded).copied().collect();
        let mut results = Vec::new();
        crate::parallel::for_each_bounded(
            missing,
            self.storage.concurrency(),
            |id| self.read_index(id),
            |id, r| {
                match r {
                    Ok(index) => self.state.index.insert_object(&id, &index)?,
                    Err(e) => results.push((id, e)),
                }
                Ok(())
            },
        )?;
        for (id, e) in results {
            match e {
                // Written by a newer vault: not damage, and not ours to judge.
                Error::Format {
                    source: FormatError::UnsupportedVersion { .. },
                    ..
                } => return Err(e),
                Error::Format { .. } | Error::NotFound(_) => damaged.push((id, e.to_string())),
                e => return Err(e),
            }
        }
        if damaged.is_empty() {
            return Ok(damaged);
        }
        damaged.sort();
        let mut recovered = 0;
        for (pack, size) in self.unindexed_packs()? {
            match self.read_pack_trailer(&pack, size) {
                Ok(entries) => {
                    self.state.index.insert_pack(&pack, &entries)?;
                    recovered += 1;
                }
                Err(e @ Error::Format { .. }) => self.warn(format!(
                    "pack {pack} is damaged and no readable index lists it; it was left alone: {e}"
                )),
                Err(e) => return Err(e),
            }
        }
        for (id, e) in &damaged {
            self.warn(format!(
                "index object {id} is damaged and was skipped ({e}); {} `vault repair index` rewrites it",
                if recovered > 0 {
                    format!(
                        "the chunks of {recovered} packs no readable index lists were found again from their trailers."
                    )
                } else {
                    "every pack is listed by another index object too.".to_string()
                }
            ));
        }
        Ok(damaged)
    }

    pub(crate) fn locate(&self, id: &ChunkId) -> Result<Option<Location>> {
        self.state.index.get(id)
    }

    /// Reads, decrypts and verifies one chunk of the expected kind.
    pub fn read_chunk(&self, id: &ChunkId, kind: ObjectKind) -> Result<Vec<u8>> {
        let loc = self.locate(id)?.ok_or_else(|| {
            Error::NotFound(format!("{} {id} is not in the vault's index", kind.name()))
        })?;
        if loc.entry.kind != kind {
            return Err(Error::format(
                format!("reading chunk {id}"),
                FormatError::malformed(
                    "index",
                    format!(
                        "expected a {}, the index says {}",
                        kind.name(),
                        loc.entry.kind.name()
                    ),
                ),
            ));
        }
        self.read_chunk_at(&loc.pack, &loc.entry)
    }

    /// Reads, decrypts and verifies the chunk `entry` describes in `pack`.
    pub(crate) fn read_chunk_at(&self, pack: &PackId, entry: &BlobEntry) -> Result<Vec<u8>> {
        let name = ObjectName::new(Dir::Packs, pack.to_hex());
        let sealed = self
            .storage
            .get_range(&name, entry.offset, u64::from(entry.sealed_len))?;
        self.open_chunk_bytes(pack, entry, &sealed)
    }

    /// `len` bytes of a pack from `offset`, for several chunks at once
    /// (one request instead of one per chunk); short if the pack is.
    pub(crate) fn read_pack_span(&self, pack: &PackId, offset: u64, len: u64) -> Result<Vec<u8>> {
        self.storage
            .get_range(&ObjectName::new(Dir::Packs, pack.to_hex()), offset, len)
    }

    /// Decrypts and verifies a chunk's sealed bytes read from `pack`.
    pub(crate) fn open_chunk_bytes(
        &self,
        pack: &PackId,
        entry: &BlobEntry,
        sealed: &[u8],
    ) -> Result<Vec<u8>> {
        open_blob(self.keys(), &self.vault_id(), pack, entry, sealed).ctx(|| {
            format!(
                "reading {} {} from pack {pack}",
                entry.kind.name(),
                entry.id
            )
        })
    }

    pub(crate) fn read_tree_node(&self, id: &ChunkId) -> Result<TreeNode> {
        let bytes = self.read_chunk(id, ObjectKind::TreeNode)?;
        TreeNode::decode(&bytes).ctx(|| format!("decoding tree node {id}"))
    }
}

/// Read-only access to trees; writes go through the pack writer.
pub struct TreeReader<'a> {
    pub repo: &'a Repository<Indexed>,
}

impl NodeStore for TreeReader<'_> {
    type Error = Error;

    fn put_node(&mut self, _: &TreeNode) -> Result<ChunkId> {
        Err(Error::Internal(
            "a read-only tree store was asked to write a node".into(),
        ))
    }

    fn get_node(&mut self, id: &ChunkId) -> Result<TreeNode> {
        self.repo.read_tree_node(id)
    }
}
