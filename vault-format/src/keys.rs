//! The master key, the sub-keys derived from it, and key files that wrap the
//! master key under a passphrase (Argon2id). See `docs/format.md` § Keys.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

use crate::error::{FormatError, Result};
use crate::header::{Header, ObjectKind};
use crate::id::{ObjectId, VaultId};
use crate::wire::{Reader, Writer};

/// BLAKE3 `derive_key` contexts. Changing one changes every id or key of that
/// purpose, so they are part of the format.
pub const CONTEXT_CHUNK_ID: &str = "kvault 2026-11 v1 chunk id";
pub const CONTEXT_CHUNKER: &str = "kvault 2026-11 v1 chunker gear table";
pub const CONTEXT_ENCRYPTION: &str = "kvault 2026-11 v1 encryption";
pub const CONTEXT_OBJECT_ID: &str = "kvault 2026-11 v1 object id";

/// The vault's 256-bit master key. Never stored unwrapped; wiped from
/// memory when dropped.
#[derive(Clone, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
pub struct MasterKey(pub [u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// Purpose-bound keys derived from the master key; wiped when dropped.
#[derive(Clone, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
pub struct SubKeys {
    /// Keys the BLAKE3 that names chunks.
    pub chunk_id: [u8; 32],
    /// Expands into the chunker's gear table.
    pub chunker: [u8; 32],
    /// Root of the per-pack and per-object AES-256-GCM keys.
    pub encryption: [u8; 32],
    /// Keys the BLAKE3 that names snapshot manifests and index objects.
    pub object_id: [u8; 32],
}

impl MasterKey {
    pub fn sub_keys(&self) -> SubKeys {
        SubKeys {
            chunk_id: blake3::derive_key(CONTEXT_CHUNK_ID, &self.0),
            chunker: blake3::derive_key(CONTEXT_CHUNKER, &self.0),
            encryption: blake3::derive_key(CONTEXT_ENCRYPTION, &self.0),
            object_id: blake3::derive_key(CONTEXT_OBJECT_ID, &self.0),
        }
    }
}

impl SubKeys {
    pub fn chunk_id(&self, plaintext: &[u8]) -> crate::ChunkId {
        crate::ChunkId(*blake3::keyed_hash(&self.chunk_id, plaintext).as_bytes())
    }

    pub fn object_id(&self, plaintext: &[u8]) -> ObjectId {
        ObjectId(*blake3::keyed_hash(&self.object_id, plaintext).as_bytes())
    }

    /// AES key of one pack or standalone object: a fresh random `salt` per
    /// pack/object means a fresh key, so counter nonces never repeat under a key.
    pub fn aead_key(&self, purpose: &[u8], salt: &[u8]) -> [u8; 32] {
        let mut h = blake3::Hasher::new_keyed(&self.encryption);
        h.update(&(purpose.len() as u64).to_le_bytes());
        h.update(purpose);
        h.update(salt);
        *h.finalize().as_bytes()
    }
}

/// Argon2id cost parameters, stored in every key file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost: u32,
    /// Passes.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl KdfParams {
    /// Default for new key files: 64 MiB, 3 passes, 1 lane (OWASP's
    /// recommended floor is 19 MiB / 2 passes; this is well above it and still
    /// opens in a fraction of a second).
    pub const DEFAULT: KdfParams = KdfParams {
        m_cost: 64 * 1024,
        t_cost: 3,
        p_cost: 1,
    };

    /// Upper bounds a reader accepts, so a tampered key file cannot make
    /// `vault` allocate gigabytes or spin for hours before failing.
    const MAX_M_COST: u32 = 4 * 1024 * 1024;
    const MAX_T_COST: u32 = 64;
    const MAX_P_COST: u32 = 64;

    fn check(&self) -> Result<()> {
        if self.p_cost == 0
            || self.p_cost > Self::MAX_P_COST
            || self.m_cost < 8 * self.p_cost
            || self.m_cost > Self::MAX_M_COST
            || self.t_cost == 0
            || self.t_cost > Self::MAX_T_COST
        {
            return Err(FormatError::malformed(
                "key file",
                format!("Argon2id parameters out of range: {self:?}"),
            ));
        }
        Ok(())
    }

    fn derive(&self, passphrase: &[u8], salt: &[u8]) -> Result<zeroize::Zeroizing<[u8; 32]>> {
        self.check()?;
        let params = argon2::Params::new(self.m_cost, self.t_cost, self.p_cost, Some(32))
            .map_err(|e| FormatError::malformed("key file", format!("Argon2id parameters: {e}")))?;
        let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = zeroize::Zeroizing::new([0u8; 32]);
        a.hash_password_into(passphrase, salt, &mut *out)
            .map_err(|e| FormatError::malformed("key file", format!("Argon2id: {e}")))?;
        Ok(out)
    }
}

/// A key file: the master key wrapped under a passphrase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyFile {
    pub vault_id: VaultId,
    pub kdf: KdfParams,
    pub salt: [u8; 32],
    pub created_ms: u64,
    pub nonce: [u8; 12],
    /// AES-256-GCM ciphertext of the master key, with its tag.
    pub wrapped: [u8; 48],
}

const KDF_ARGON2ID: u8 = 1;

impl KeyFile {
    /// Wraps `master` under `passphrase`. `salt` and `nonce` must be fresh
    /// random bytes; they are parameters so the format stays free of I/O.
    pub fn wrap(
        vault_id: VaultId,
        master: &MasterKey,
        passphrase: &[u8],
        kdf: KdfParams,
        salt: [u8; 32],
        nonce: [u8; 12],
        created_ms: u64,
    ) -> Result<KeyFile> {
        let mut kf = KeyFile {
            vault_id,
            kdf,
            salt,
            created_ms,
            nonce,
            wrapped: [0; 48],
        };
        let kek = kdf.derive(passphrase, &salt)?;
        let ad = kf.authenticated_prefix();
        let ct = Aes256Gcm::new(&(*kek).into())
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &master.0,
                    aad: &ad,
                },
            )
            .map_err(|_| FormatError::Encode {
                what: "key file",
                detail: "AES-GCM failed".into(),
            })?;
        kf.wrapped.copy_from_slice(&ct);
        Ok(kf)
    }

    /// Unwraps the master key. A wrong passphrase and a damaged key file look
    /// the same to AES-GCM; both are reported as [`FormatError::WrongPassphrase`].
    pub fn unwrap_key(&self, passphrase: &[u8]) -> Result<MasterKey> {
        let kek = self.kdf.derive(passphrase, &self.salt)?;
        let ad = self.authenticated_prefix();
        let pt = Aes256Gcm::new(&(*kek).into())
            .decrypt(
                Nonce::from_slice(&self.nonce),
                Payload {
                    msg: &self.wrapped,
                    aad: &ad,
                },
            )
            .map_err(|_| FormatError::WrongPassphrase)?;
        let pt = zeroize::Zeroizing::new(pt);
        Ok(MasterKey(
            pt.as_slice()
                .try_into()
                .map_err(|_| FormatError::WrongPassphrase)?,
        ))
    }

    /// Everything before the wrapped key; it is the associated data, so no
    /// parameter can be changed without the unwrap failing.
    fn authenticated_prefix(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(96);
        Header::new(ObjectKind::KeyFile).write(&mut w);
        w.raw(&self.vault_id.0)
            .u8(KDF_ARGON2ID)
            .u32(self.kdf.m_cost)
            .u32(self.kdf.t_cost)
            .u32(self.kdf.p_cost)
            .raw(&self.salt)
            .u64(self.created_ms)
            .raw(&self.nonce);
        w.into_inner()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut v = self.authenticated_prefix();
        v.extend_from_slice(&self.wrapped);
        v
    }

    pub fn decode(bytes: &[u8]) -> Result<KeyFile> {
        let mut r = Reader::new(bytes, "key file");
        Header::read(&mut r, ObjectKind::KeyFile)?;
        let vault_id = VaultId(r.array()?);
        let alg = r.u8()?;
        if alg != KDF_ARGON2ID {
            return Err(FormatError::malformed(
                "key file",
                format!("unknown KDF {alg}"),
            ));
        }
        let kdf = KdfParams {
            m_cost: r.u32()?,
            t_cost: r.u32()?,
            p_cost: r.u32()?,
        };
        let salt = r.array()?;
        let created_ms = r.u64()?;
        let nonce = r.array()?;
        let wrapped = r.array()?;
        r.finish()?;
        kdf.check()?;
        Ok(KeyFile {
            vault_id,
            kdf,
            salt,
            created_ms,
            nonce,
            wrapped,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: KdfParams = KdfParams {
        m_cost: 64,
        t_cost: 1,
        p_cost: 1,
    };

    fn sample() -> (MasterKey, KeyFile) {
        let mk = MasterKey([7; 32]);
        let kf = KeyFile::wrap(
            VaultId([1; 16]),
            &mk,
            b"correct horse",
            FAST,
            [2; 32],
            [3; 12],
            1234,
        )
        .unwrap();
        (mk, kf)
    }

    #[test]
    fn wraps_and_unwraps() {
        let (mk, kf) = sample();
        let back = KeyFile::decode(&kf.encode()).unwrap();
        assert_eq!(back, kf);
        assert_eq!(back.unwrap_key(b"correct horse").unwrap().0, mk.0);
    }

    #[test]
    fn wrong_passphrase_is_reported_as_such() {
        let (_, kf) = sample();
        assert_eq!(
            kf.unwrap_key(b"wrong").unwrap_err(),
            FormatError::WrongPassphrase
        );
    }

    #[test]
    fn every_flipped_byte_fails() {
        let (_, kf) = sample();
        let bytes = kf.encode();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            let res = KeyFile::decode(&b).and_then(|k| k.unwrap_key(b"correct horse"));
            assert!(res.is_err(), "flipping byte {i} still opened the key file");
        }
    }

    #[test]
    fn sub_keys_are_distinct() {
        let sk = MasterKey([9; 32]).sub_keys();
        let all = [sk.chunk_id, sk.chunker, sk.encryption, sk.object_id];
        for i in 0..all.len() {
            for j in i + 1..all.len() {
                assert_ne!(all[i], all[j]);
            }
        }
    }
}
