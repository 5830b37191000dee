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

use vault_format::config::VaultConfig;
use vault_format::index::IndexObject;
use vault_format::keys::{KdfParams, KeyFile, MasterKey, SubKeys};
use vault_format::manifest::SnapshotManifest;
use vault_format::object::{Header, ObjectKind, open_object, open_object_versioned, seal_object};
use vault_format::wire::Reader;
use vault_format::{FormatError, ObjectId, VaultId};

use crate::error::{Error, FormatContext, Result};
use crate::host::random_bytes;
use crate::index_cache::IndexCache;
use crate::now_ms;
use crate::storage::{Dir, ObjectName, Storage};

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
    /// Damage found while indexing that the operator should hear of.
    warnings: std::sync::Mutex<Vec<String>>,
}

/// States that hold the keys.
pub trait HoldsKeys {
    fn open_state(&self) -> &Open;
}

impl HoldsKeys for Open {
    fn open_state(&self) -> &Open {
        self
    }
}

impl HoldsKeys for Indexed {
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

impl InitOptions {
    /// The options of `vault init`: zstd level (0 stores chunks as they
    /// are), pack size, average chunk size (min a quarter, max four times),
    /// an optional data horizon such as `90d`, and the key file's Argon2id
    /// memory. Everything is checked before any vault is made.
    pub fn from_settings(
        compression_level: i32,
        pack_size_mib: u32,
        avg_chunk_kib: u32,
        data_horizon: Option<&str>,
        kdf_memory_mib: u32,
    ) -> Result<InitOptions> {
        let mut config = VaultConfig::new(Default::default(), now_ms());
        config.compression = vault_format::compress::Compression(
            (compression_level > 0).then_some(compression_level),
        );
        config.pack_target_size = pack_size_mib << 20;
        config.data_horizon_ms = data_horizon.map(crate::time::parse_duration).transpose()?;
        config.chunker = vault_format::chunker::ChunkerParams::around(avg_chunk_kib << 10);
        Ok(InitOptions {
            kdf: KdfParams {
                m_cost: kdf_memory_mib * 1024,
                ..KdfParams::DEFAULT
            },
            config: Some(config),
        })
    }
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
        let keys = self.storage.list(Dir::Keys)?;
        if keys.is_empty() {
            return Err(Error::NotFound(format!(
                "the vault at {} has no key files",
                self.storage.location()
            )));
        }
        // Every key file is tried: one damaged file must not lock out the
        // passphrases of the others.
        let mut damaged = Vec::new();
        for k in keys {
            let bytes = match self.storage.get(&ObjectName::new(Dir::Keys, &k.name)) {
                Ok(b) => b,
                Err(Error::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            let kf = match KeyFile::decode(&bytes) {
                Ok(kf) => kf,
                Err(e) => {
                    damaged.push(format!("{}: {e}", k.name));
                    continue;
                }
            };
            match kf.unwrap_key(passphrase) {
                Ok(master) => return Repository::from_master(self.storage, master, kf.vault_id),
                Err(FormatError::WrongPassphrase) => continue,
                Err(e) => damaged.push(format!("{}: {e}", k.name)),
            }
        }
        if !damaged.is_empty() {
            eprintln!(
                "vault: warning: unreadable key files skipped: {}",
                damaged.join("; ")
            );
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
                warnings: std::sync::Mutex::new(Vec::new()),
            },
        };
        repo.sync_index()?;
        Ok(repo)
    }
}

impl<S: HoldsKeys> Repository<S> {
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
            .put_if_absent(&ObjectName::new(Dir::Keys, &name), &bytes)?;
        Ok(name)
    }

    /// Seals `body` under the name that is its keyed hash, and stores it.
    /// An object of that name already there holds the same body (the name
    /// is its keyed hash), unless it is damaged: then it is replaced, so a
    /// damaged object is never taken for the one being written.
    fn write_sealed(&self, kind: ObjectKind, dir: Dir, body: &[u8]) -> Result<ObjectId> {
        let id = self.keys().object_id(body);
        let sealed = self.seal(kind, &id, body)?;
        let name = ObjectName::new(dir, id.to_hex());
        if !self.storage.put_if_absent(&name, &sealed)? {
            match self.open_sealed(kind, dir, &id) {
                Ok((_, existing)) if existing == body => {}
                Ok(_) | Err(Error::Format { .. } | Error::NotFound(_)) => {
                    self.storage.delete(&name)?;
                    self.storage.put_if_absent(&name, &sealed)?;
                }
                Err(e) => return Err(e),
            }
        }
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
    fn open_sealed(&self, kind: ObjectKind, dir: Dir, name: &ObjectId) -> Result<(u8, Vec<u8>)> {
        let bytes = self.storage.get(&ObjectName::new(dir, name.to_hex()))?;
        open_object_versioned(self.keys(), &self.vault_id(), kind, &name.0, &bytes)
            .ctx(|| format!("reading {} {name}", kind.name()))
    }

    /// Writes an index object; its name is the keyed hash of its content.
    pub(crate) fn write_index(&self, index: &IndexObject) -> Result<ObjectId> {
        self.write_sealed(ObjectKind::Index, Dir::Index, &index.encode())
    }

    pub(crate) fn read_index(&self, id: &ObjectId) -> Result<IndexObject> {
        let (_, body) = self.open_sealed(ObjectKind::Index, Dir::Index, id)?;
        IndexObject::decode(&body).ctx(|| format!("decoding index object {id}"))
    }

    /// Seals `body` as the run object `runs/NAME`, unless one exists
    /// (then returns false). Its authenticated name is the keyed hash of its
    /// path, so one run object cannot stand in for another.
    pub(crate) fn put_run_object(&self, kind: ObjectKind, name: &str, body: &[u8]) -> Result<bool> {
        let object = ObjectName::new(Dir::Runs, name);
        let aad = self.keys().object_id(object.path().as_bytes());
        let sealed = self.seal(kind, &aad, body)?;
        self.storage.put_if_absent(&object, &sealed)
    }

    /// The header version and body of the run object `runs/NAME`; `None`
    /// if there is none.
    pub(crate) fn get_run_object(
        &self,
        kind: ObjectKind,
        name: &str,
    ) -> Result<Option<(u8, Vec<u8>)>> {
        let object = ObjectName::new(Dir::Runs, name);
        let bytes = match self.storage.get(&object) {
            Ok(b) => b,
            Err(Error::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let aad = self.keys().object_id(object.path().as_bytes());
        open_object_versioned(self.keys(), &self.vault_id(), kind, &aad.0, &bytes)
            .map(Some)
            .ctx(|| format!("reading {} {object}", kind.name()))
    }

    /// Commits a snapshot: writing its manifest is the commit point.
    pub fn write_snapshot(&self, manifest: &SnapshotManifest) -> Result<ObjectId> {
        self.write_sealed(ObjectKind::Snapshot, Dir::Snapshots, &manifest.encode())
    }

    pub fn read_snapshot(&self, id: &ObjectId) -> Result<SnapshotManifest> {
        let (version, body) = self.open_sealed(ObjectKind::Snapshot, Dir::Snapshots, id)?;
        SnapshotManifest::decode_version(version, &body).ctx(|| format!("decoding snapshot {id}"))
    }

    /// Ids of all committed snapshots.
    pub fn snapshot_ids(&self) -> Result<Vec<ObjectId>> {
        self.storage
            .list(Dir::Snapshots)?
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
}

pub mod indexed;
