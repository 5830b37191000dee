//! The typed repository: its type says what is loaded.
//!
//! * [`Repository<Closed>`]: the storage is there and its config's format
//!   version is one this binary reads; nothing is decrypted yet.
//! * [`Repository<Open>`]: a passphrase opened a key file; the config is
//!   decrypted and the sub-keys are derived.
//! * [`Repository<Indexed>`]: the local index cache is up to date, so
//!   chunks can be looked up and read.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use vault_format::PackId;
use vault_format::config::VaultConfig;
use vault_format::index::IndexObject;
use vault_format::keys::{KdfParams, KeyFile, MasterKey, SubKeys};
use vault_format::manifest::SnapshotManifest;
use vault_format::object::{Header, ObjectKind, open_object, open_object_versioned, seal_object};
use vault_format::pack::{BlobEntry, open_blob};
use vault_format::tree::{NodeStore, TreeNode};
use vault_format::wire::Reader;
use vault_format::{ChunkId, FormatError, ObjectId, VaultId};

use crate::error::{Error, FormatContext, Result};
use crate::index_cache::{IndexCache, Location};
use crate::storage::{Kind, ObjectName, Storage};

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the OS random number generator failed");
    b
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Storage found, version checked, nothing decrypted.
#[derive(Debug)]
pub struct Closed;

/// Keys and config loaded.
pub struct Open {
    keys: SubKeys,
    config: VaultConfig,
    master: MasterKey,
}

/// Keys, config and an up-to-date index cache.
pub struct Indexed {
    open: Open,
    index: IndexCache,
}

/// States that hold the keys.
pub trait Unlocked {
    fn open_state(&self) -> &Open;
}

impl Unlocked for Open {
    fn open_state(&self) -> &Open {
        self
    }
}

impl Unlocked for Indexed {
    fn open_state(&self) -> &Open {
        &self.open
    }
}

pub struct Repository<S> {
    storage: Arc<dyn Storage>,
    state: S,
}

/// Options chosen once, at `vault init`.
#[derive(Clone, Debug)]
pub struct InitOptions {
    pub kdf: KdfParams,
    pub config: Option<VaultConfig>,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            kdf: KdfParams::DEFAULT,
            config: None,
        }
    }
}

impl<S> Repository<S> {
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }
}

impl Repository<Closed> {
    /// Opens the vault in `storage`: the config must exist, and its format
    /// version must be one this binary reads.
    pub fn open(storage: Arc<dyn Storage>) -> Result<Repository<Closed>> {
        let config = match storage.get(&ObjectName::config()) {
            Ok(c) => c,
            Err(Error::NotFound(_)) => {
                return Err(Error::NotFound(format!(
                    "no vault at {}: its config file is missing (create one with `vault init --vault PATH`)",
                    storage.location()
                )));
            }
            Err(e) => return Err(e),
        };
        Header::read(&mut Reader::new(&config, "config"), ObjectKind::Config)
            .ctx(|| format!("reading the vault config at {}", storage.location()))?;
        Ok(Repository {
            storage,
            state: Closed,
        })
    }

    /// Unlocks with a passphrase: the first key file it opens wins.
    pub fn unlock(self, passphrase: &[u8]) -> Result<Repository<Open>> {
        let keys = self.storage.list(Kind::Keys)?;
        if keys.is_empty() {
            return Err(Error::NotFound(format!(
                "the vault at {} has no key files",
                self.storage.location()
            )));
        }
        for k in keys {
            let bytes = self.storage.get(&ObjectName::new(Kind::Keys, &k.name))?;
            let kf = KeyFile::decode(&bytes).ctx(|| format!("reading key file {}", k.name))?;
            match kf.unwrap_key(passphrase) {
                Ok(master) => return Repository::from_master(self.storage, master, kf.vault_id),
                Err(FormatError::WrongPassphrase) => continue,
                Err(e) => return Err(Error::format(format!("opening key file {}", k.name), e)),
            }
        }
        Err(Error::WrongPassphrase {
            vault: PathBuf::from(self.storage.location()),
        })
    }
}

fn config_name() -> &'static [u8] {
    b"config"
}

impl Repository<Open> {
    /// Creates a new vault: a random master key, one key file wrapping it
    /// under `passphrase`, and the config. The config is written last, so a
    /// vault without one was never finished.
    pub fn init(
        storage: Arc<dyn Storage>,
        passphrase: &[u8],
        opts: InitOptions,
    ) -> Result<Repository<Open>> {
        if passphrase.is_empty() {
            return Err(Error::Usage(
                "the passphrase is empty; choose a real one".into(),
            ));
        }
        let vault_id = VaultId(random_bytes());
        let master = MasterKey(random_bytes());
        let mut config = opts
            .config
            .unwrap_or_else(|| VaultConfig::new(vault_id, now_ms()));
        config.vault_id = vault_id;
        let repo = Repository {
            storage,
            state: Open {
                keys: master.sub_keys(),
                config,
                master,
            },
        };
        repo.add_key(passphrase, opts.kdf)?;
        let body = repo.state.config.encode();
        let sealed = seal_object(
            &repo.state.keys,
            &vault_id,
            ObjectKind::Config,
            config_name(),
            &body,
            random_bytes(),
            vault_format::compress::Compression(None),
        )
        .ctx(|| "sealing the config".into())?;
        if !repo.storage.put_if_absent(&ObjectName::config(), &sealed)? {
            return Err(Error::Usage(format!(
                "a vault already exists at {}",
                repo.storage.location()
            )));
        }
        Ok(repo)
    }

    fn from_master(
        storage: Arc<dyn Storage>,
        master: MasterKey,
        vault_id: VaultId,
    ) -> Result<Repository<Open>> {
        let keys = master.sub_keys();
        let bytes = storage.get(&ObjectName::config())?;
        let body = open_object(&keys, &vault_id, ObjectKind::Config, config_name(), &bytes)
            .ctx(|| format!("opening the vault config at {}", storage.location()))?;
        let config = VaultConfig::decode(&body).ctx(|| "decoding the vault config".into())?;
        if config.vault_id != vault_id {
            return Err(Error::format(
                "opening the vault config",
                FormatError::Integrity { what: "config" },
            ));
        }
        Ok(Repository {
            storage,
            state: Open {
                keys,
                config,
                master,
            },
        })
    }

    /// Brings the local index cache (under `cache_root`) up to date.
    pub fn index(self, cache_root: &Path) -> Result<Repository<Indexed>> {
        let index = IndexCache::open(cache_root, &self.state.config.vault_id)?;
        let repo = Repository {
            storage: self.storage,
            state: Indexed {
                open: self.state,
                index,
            },
        };
        repo.sync_index()?;
        Ok(repo)
    }
}

impl<S: Unlocked> Repository<S> {
    pub fn config(&self) -> &VaultConfig {
        &self.state.open_state().config
    }

    pub fn keys(&self) -> &SubKeys {
        &self.state.open_state().keys
    }

    pub fn vault_id(&self) -> VaultId {
        self.config().vault_id
    }

    /// Adds a key file wrapping the master key under another passphrase.
    pub fn add_key(&self, passphrase: &[u8], kdf: KdfParams) -> Result<String> {
        let kf = KeyFile::wrap(
            self.vault_id(),
            &self.state.open_state().master,
            passphrase,
            kdf,
            random_bytes(),
            random_bytes(),
            now_ms(),
        )
        .ctx(|| "creating a key file".into())?;
        let bytes = kf.encode();
        let name = vault_format::id::hex_encode(&blake3::hash(&bytes).as_bytes()[..16]);
        self.storage
            .put_if_absent(&ObjectName::new(Kind::Keys, &name), &bytes)?;
        Ok(name)
    }

    /// Seals `body` under the name that is its keyed hash, and stores it.
    fn write_sealed(&self, kind: ObjectKind, dir: Kind, body: &[u8]) -> Result<ObjectId> {
        let id = self.keys().object_id(body);
        let sealed = self.seal(kind, &id, body)?;
        self.storage
            .put_if_absent(&ObjectName::new(dir, id.to_hex()), &sealed)?;
        Ok(id)
    }

    fn seal(&self, kind: ObjectKind, name: &ObjectId, body: &[u8]) -> Result<Vec<u8>> {
        seal_object(
            self.keys(),
            &self.vault_id(),
            kind,
            &name.0,
            body,
            random_bytes(),
            self.config().compression,
        )
        .ctx(|| format!("sealing {} {name}", kind.name()))
    }

    /// The body of a sealed object and its header version.
    fn open_sealed(&self, kind: ObjectKind, dir: Kind, name: &ObjectId) -> Result<(u8, Vec<u8>)> {
        let bytes = self.storage.get(&ObjectName::new(dir, name.to_hex()))?;
        open_object_versioned(self.keys(), &self.vault_id(), kind, &name.0, &bytes)
            .ctx(|| format!("reading {} {name}", kind.name()))
    }

    /// Writes an index object; its name is the keyed hash of its content.
    pub fn write_index(&self, index: &IndexObject) -> Result<ObjectId> {
        self.write_sealed(ObjectKind::Index, Kind::Index, &index.encode())
    }

    pub fn read_index(&self, id: &ObjectId) -> Result<IndexObject> {
        let (_, body) = self.open_sealed(ObjectKind::Index, Kind::Index, id)?;
        IndexObject::decode(&body).ctx(|| format!("decoding index object {id}"))
    }

    /// Commits a snapshot: writing its manifest is the commit point.
    pub fn write_snapshot(&self, manifest: &SnapshotManifest) -> Result<ObjectId> {
        self.write_sealed(ObjectKind::Snapshot, Kind::Snapshots, &manifest.encode())
    }

    pub fn read_snapshot(&self, id: &ObjectId) -> Result<SnapshotManifest> {
        let (version, body) = self.open_sealed(ObjectKind::Snapshot, Kind::Snapshots, id)?;
        SnapshotManifest::decode_version(version, &body).ctx(|| format!("decoding snapshot {id}"))
    }

    /// Ids of all committed snapshots.
    pub fn snapshot_ids(&self) -> Result<Vec<ObjectId>> {
        self.storage
            .list(Kind::Snapshots)?
            .into_iter()
            .map(|l| {
                ObjectId::from_hex(&l.name).map_err(|_| {
                    Error::format(
                        format!("listing snapshots: unexpected file {}", l.name),
                        FormatError::BadMagic {
                            what: "snapshot name",
                        },
                    )
                })
            })
            .collect()
    }

    /// Resolves `latest` (which must then be unambiguous: one source in
    /// the vault), a full id, or a unique prefix of one. Commands that know
    /// their topics or source use [`crate::catalog::resolve`].
    pub fn resolve_snapshot(&self, wanted: &str) -> Result<ObjectId> {
        let entries = if wanted == "latest" {
            crate::catalog::list(self)?
        } else {
            // An id needs no manifest read.
            let mut matching = Vec::new();
            for id in self.snapshot_ids()? {
                if id.to_hex().starts_with(&wanted.to_ascii_lowercase()) {
                    matching.push(crate::catalog::CatalogEntry {
                        id,
                        manifest: self.read_snapshot(&id)?,
                    });
                }
            }
            matching
        };
        crate::catalog::resolve(&entries, wanted, &[], None)
    }
}

impl Repository<Indexed> {
    pub fn index_cache(&self) -> &IndexCache {
        &self.state.index
    }

    /// Indexes packs that no index object lists: the packs of a snapshot that
    /// was killed after writing them and before writing their index object.
    /// Their trailers say what they hold, so the next snapshot dedups
    /// against them instead of writing the same chunks again. Returns how
    /// many packs were adopted.
    pub fn adopt_orphan_packs(&self) -> Result<usize> {
        let known = self.state.index.known_packs()?;
        let mut adopted = Vec::new();
        for l in self.storage.list(Kind::Packs)? {
            let Ok(pack) = vault_format::PackId::from_hex(&l.name) else {
                continue;
            };
            if known.contains(&pack) {
                continue;
            }
            let name = ObjectName::new(Kind::Packs, &l.name);
            let footer_at = l
                .size
                .saturating_sub(vault_format::pack::PACK_FOOTER_LEN as u64);
            let footer = self.storage.get_range(
                &name,
                footer_at,
                vault_format::pack::PACK_FOOTER_LEN as u64,
            )?;
            let entries = vault_format::pack::read_pack_footer(&footer)
                .and_then(|tlen| {
                    let start =
                        footer_at
                            .checked_sub(tlen as u64)
                            .ok_or(FormatError::Truncated {
                                what: "pack",
                                needed: tlen,
                            })?;
                    let trailer = self
                        .storage
                        .get_range(&name, start, tlen as u64)
                        .map_err(|e| FormatError::malformed("pack", e.to_string()))?;
                    vault_format::pack::open_pack_trailer(
                        self.keys(),
                        &self.vault_id(),
                        &pack,
                        &trailer,
                        l.size,
                    )
                })
                .ctx(|| format!("reading the trailer of unindexed pack {pack}"))?;
            adopted.push((pack, entries));
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
    pub fn sync_index(&self) -> Result<()> {
        let listed: std::collections::HashSet<ObjectId> = self
            .storage
            .list(Kind::Index)?
            .into_iter()
            .filter_map(|l| ObjectId::from_hex(&l.name).ok())
            .collect();
        let loaded = self.state.index.loaded_objects()?;
        if !loaded.is_subset(&listed) {
            self.state.index.clear()?;
        }
        let loaded = self.state.index.loaded_objects()?;
        for id in listed.difference(&loaded) {
            let index = self.read_index(id)?;
            self.state.index.insert_object(id, &index)?;
        }
        Ok(())
    }

    pub fn locate(&self, id: &ChunkId) -> Result<Option<Location>> {
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
    pub fn read_chunk_at(&self, pack: &PackId, entry: &BlobEntry) -> Result<Vec<u8>> {
        let name = ObjectName::new(Kind::Packs, pack.to_hex());
        let sealed = self
            .storage
            .get_range(&name, entry.offset, u64::from(entry.sealed_len))?;
        open_blob(self.keys(), &self.vault_id(), pack, entry, &sealed).ctx(|| {
            format!(
                "reading {} {} from pack {pack}",
                entry.kind.name(),
                entry.id
            )
        })
    }

    pub fn read_tree_node(&self, id: &ChunkId) -> Result<TreeNode> {
        let bytes = self.read_chunk(id, ObjectKind::TreeNode)?;
        TreeNode::decode(&bytes).ctx(|| format!("decoding tree node {id}"))
    }
}

/// Read-only access to trees; writes go through the pack writer.
pub struct TreeReader<'a> {
    pub repo: &'a Repository<Indexed>,
    /// The error behind a failed read, kept with its context.
    pub last_error: Option<Error>,
}

impl NodeStore for TreeReader<'_> {
    fn put_node(&mut self, _: &TreeNode) -> vault_format::Result<ChunkId> {
        Err(FormatError::Encode {
            what: "tree",
            detail: "this tree store is read-only".into(),
        })
    }

    fn get_node(&mut self, id: &ChunkId) -> vault_format::Result<TreeNode> {
        self.repo.read_tree_node(id).map_err(|e| {
            let f = match &e {
                Error::Format { source, .. } => source.clone(),
                other => FormatError::malformed("tree node", other.to_string()),
            };
            self.last_error = Some(e);
            f
        })
    }
}
