//! Vaults an in-process test makes and opens itself, through the library
//! rather than the `vault` binary.

use std::path::Path;
use std::sync::Arc;

use vault::Repository;
use vault::repository::{Indexed, InitOptions};
use vault::storage::Storage;
use vault_format::config::VaultConfig;
use vault_format::keys::KdfParams;

/// Argon2 at its smallest cost: the tests make and unlock many vaults,
/// and none of them is about the strength of the passphrase's key.
pub const FAST_KDF: KdfParams = KdfParams {
    m_cost: 64,
    t_cost: 1,
    p_cost: 1,
};

/// A new vault on `storage` under `passphrase`, with [`FAST_KDF`] and
/// `config` (`None`: the library's default), indexed with its cache in
/// `cache`.
pub fn init_repo(
    storage: Arc<dyn Storage>,
    passphrase: &[u8],
    config: Option<VaultConfig>,
    cache: &Path,
) -> Repository<Indexed> {
    Repository::init(
        storage,
        passphrase,
        InitOptions {
            kdf: FAST_KDF,
            config,
        },
    )
    .unwrap()
    .index(cache)
    .unwrap()
}

/// The vault on `storage`, unlocked with `passphrase` and indexed with its
/// cache in `cache`. An error is returned, not unwrapped: some tests
/// expect one.
pub fn open_repo(
    storage: Arc<dyn Storage>,
    passphrase: &[u8],
    cache: &Path,
) -> vault::Result<Repository<Indexed>> {
    Repository::open(storage)?.unlock(passphrase)?.index(cache)
}
