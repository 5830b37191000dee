//! Pack files: many sealed blobs (chunks) followed by an encrypted trailer
//! listing them, so the index can be rebuilt from the packs alone.
//! See `docs/format.md` § Packs.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};

use crate::compress::{Compressor, decompress_framed};
use crate::error::{FormatError, Result};
use crate::id::{ChunkId, PackId, VaultId};
use crate::keys::SubKeys;
use crate::object::{Header, ObjectKind};
use crate::wire::{Reader, Writer};

/// `header(6) || pack_id(16)`.
pub const PACK_HEADER_LEN: usize = Header::LEN + 16;
/// `trailer_len u32 || "KVPT"`.
pub const PACK_FOOTER_LEN: usize = 8;
pub const FOOTER_MAGIC: [u8; 4] = *b"KVPT";
const TAG_LEN: usize = 16;
/// Largest trailer a reader accepts (about a million entries).
pub const MAX_TRAILER: usize = 64 << 20;

/// Where one blob sits, and what it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobEntry {
    pub kind: ObjectKind,
    pub id: ChunkId,
    pub offset: u64,
    /// Length on disk, tag included.
    pub sealed_len: u32,
    /// Length after decryption and decompression.
    pub plain_len: u32,
}

impl BlobEntry {
    pub(crate) fn write(&self, w: &mut Writer) {
        w.u8(self.kind as u8)
            .raw(&self.id.0)
            .varint(self.offset)
            .varint(u64::from(self.sealed_len))
            .varint(u64::from(self.plain_len));
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<BlobEntry> {
        let k = r.u8()?;
        let kind = ObjectKind::from_u8(k)
            .filter(|k| k.is_blob())
            .ok_or_else(|| {
                FormatError::malformed("blob entry", format!("kind {k} is not a blob kind"))
            })?;
        let id = ChunkId(r.array()?);
        let offset = r.varint()?;
        let sealed_len = u32::try_from(r.varint()?)
            .map_err(|_| FormatError::malformed("blob entry", "length"))?;
        let plain_len = u32::try_from(r.varint()?)
            .map_err(|_| FormatError::malformed("blob entry", "length"))?;
        if (sealed_len as usize) < TAG_LEN + 2 || offset < PACK_HEADER_LEN as u64 {
            return Err(FormatError::malformed(
                "blob entry",
                "impossible position or length",
            ));
        }
        Ok(BlobEntry {
            kind,
            id,
            offset,
            sealed_len,
            plain_len,
        })
    }
}

fn pack_cipher(keys: &SubKeys, pack: &PackId) -> Aes256Gcm {
    Aes256Gcm::new(&keys.aead_key(b"pack", &pack.0).into())
}

/// Blobs use their byte offset in the pack as nonce: unique within a pack,
/// and every pack has its own key. The trailer uses the all-ones nonce, which
/// no offset reaches.
fn blob_nonce(offset: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(&offset.to_le_bytes());
    n
}

fn blob_ad(vault: &VaultId, kind: ObjectKind, id: &ChunkId) -> [u8; 49] {
    let mut ad = [0u8; 49];
    ad[..16].copy_from_slice(&vault.0);
    ad[16] = kind as u8;
    ad[17..].copy_from_slice(&id.0);
    ad
}

fn trailer_ad(vault: &VaultId, pack: &PackId) -> [u8; 33] {
    let mut ad = [0u8; 33];
    ad[..16].copy_from_slice(&vault.0);
    ad[16] = ObjectKind::PackTrailer as u8;
    ad[17..].copy_from_slice(&pack.0);
    ad
}

/// Assembles one pack in memory. The engine decides when it is full and
/// writes [`PackBuilder::finish`]'s bytes atomically.
pub struct PackBuilder {
    vault: VaultId,
    pack: PackId,
    cipher: Aes256Gcm,
    buf: Vec<u8>,
    entries: Vec<BlobEntry>,
}

impl PackBuilder {
    /// `pack` must be fresh random bytes: it selects the pack's key.
    pub fn new(keys: &SubKeys, vault: VaultId, pack: PackId, capacity: usize) -> PackBuilder {
        let mut buf = Vec::with_capacity(capacity + 4096);
        let mut w = Writer::new();
        Header::new(ObjectKind::Pack).write(&mut w);
        w.raw(&pack.0);
        buf.extend_from_slice(&w.into_inner());
        PackBuilder {
            vault,
            pack,
            cipher: pack_cipher(keys, &pack),
            buf,
            entries: Vec::new(),
        }
    }

    pub fn id(&self) -> PackId {
        self.pack
    }

    /// Bytes so far, header included.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> &[BlobEntry] {
        &self.entries
    }

    /// Compresses, encrypts and appends one chunk whose id the caller computed.
    pub fn add(
        &mut self,
        kind: ObjectKind,
        id: ChunkId,
        plaintext: &[u8],
        compressor: &mut Compressor,
    ) -> Result<BlobEntry> {
        // Compress straight into the pack buffer, then encrypt in place.
        let start = self.buf.len();
        compressor.compress_object_append(kind, plaintext, &mut self.buf)?;
        self.seal_tail(kind, id, start, plaintext.len())
    }

    /// Appends a chunk already compressed with [`Compressor::compress_into`]
    /// (the pipeline compresses on worker threads, then packs in order).
    pub fn add_framed(
        &mut self,
        kind: ObjectKind,
        id: ChunkId,
        framed: &[u8],
        plain_len: usize,
    ) -> Result<BlobEntry> {
        let start = self.buf.len();
        self.buf.extend_from_slice(framed);
        self.seal_tail(kind, id, start, plain_len)
    }

    /// Encrypts `buf[start..]` (one compression-framed chunk) in place and
    /// appends its tag and entry. On error the partial blob is removed.
    fn seal_tail(
        &mut self,
        kind: ObjectKind,
        id: ChunkId,
        start: usize,
        plain_len: usize,
    ) -> Result<BlobEntry> {
        let checked = if !kind.is_blob() {
            Err(FormatError::Encode {
                what: "pack",
                detail: format!("{} is not a blob kind", kind.name()),
            })
        } else {
            u32::try_from(plain_len).map_err(|_| FormatError::Encode {
                what: "pack",
                detail: "chunk larger than 4 GiB".into(),
            })
        };
        let plain_len = match checked {
            Ok(p) => p,
            Err(e) => {
                self.buf.truncate(start);
                return Err(e);
            }
        };
        let offset = start as u64;
        let tag = self
            .cipher
            .encrypt_in_place_detached(
                Nonce::from_slice(&blob_nonce(offset)),
                &blob_ad(&self.vault, kind, &id),
                &mut self.buf[start..],
            )
            .map_err(|_| FormatError::Encode {
                what: "pack",
                detail: "AES-GCM failed".into(),
            })?;
        self.buf.extend_from_slice(&tag);
        let entry = BlobEntry {
            kind,
            id,
            offset,
            sealed_len: (self.buf.len() - start) as u32,
            plain_len,
        };
        self.entries.push(entry);
        Ok(entry)
    }

    /// Appends the encrypted trailer and footer; returns the pack's bytes and entries.
    pub fn finish(mut self) -> Result<(PackId, Vec<u8>, Vec<BlobEntry>)> {
        let mut w = Writer::with_capacity(self.entries.len() * 48 + 8);
        w.varint(self.entries.len() as u64);
        for e in &self.entries {
            e.write(&mut w);
        }
        let mut trailer = w.into_inner();
        let tag = self
            .cipher
            .encrypt_in_place_detached(
                Nonce::from_slice(&[0xff; 12]),
                &trailer_ad(&self.vault, &self.pack),
                &mut trailer,
            )
            .map_err(|_| FormatError::Encode {
                what: "pack",
                detail: "AES-GCM failed".into(),
            })?;
        trailer.extend_from_slice(&tag);
        let tlen = trailer.len() as u32;
        self.buf.extend_from_slice(&trailer);
        self.buf.extend_from_slice(&tlen.to_le_bytes());
        self.buf.extend_from_slice(&FOOTER_MAGIC);
        Ok((self.pack, self.buf, self.entries))
    }
}

/// Checks a pack's header and returns its id.
pub fn read_pack_header(bytes: &[u8]) -> Result<PackId> {
    let mut r = Reader::new(bytes, "pack");
    Header::read(&mut r, ObjectKind::Pack)?;
    Ok(PackId(r.array()?))
}

/// Parses the footer (the last 8 bytes of a pack): the trailer's length.
pub fn read_pack_footer(footer: &[u8]) -> Result<usize> {
    let mut r = Reader::new(footer, "pack footer");
    let len = r.u32()? as usize;
    if r.array::<4>()? != FOOTER_MAGIC {
        return Err(FormatError::BadMagic {
            what: "pack footer",
        });
    }
    if !(TAG_LEN + 1..=MAX_TRAILER).contains(&len) {
        return Err(FormatError::malformed(
            "pack footer",
            format!("trailer length {len}"),
        ));
    }
    Ok(len)
}

/// Decrypts and parses a pack's trailer. `pack_len` is the whole file's
/// length; every entry must lie between the header and the trailer, in order.
pub fn open_pack_trailer(
    keys: &SubKeys,
    vault: &VaultId,
    pack: &PackId,
    trailer: &[u8],
    pack_len: u64,
) -> Result<Vec<BlobEntry>> {
    if trailer.len() < TAG_LEN {
        return Err(FormatError::Truncated {
            what: "pack trailer",
            needed: TAG_LEN - trailer.len(),
        });
    }
    let (ct, tag) = trailer.split_at(trailer.len() - TAG_LEN);
    let mut pt = ct.to_vec();
    pack_cipher(keys, pack)
        .decrypt_in_place_detached(
            Nonce::from_slice(&[0xff; 12]),
            &trailer_ad(vault, pack),
            &mut pt,
            Tag::from_slice(tag),
        )
        .map_err(|_| FormatError::Integrity {
            what: "pack trailer",
        })?;
    parse_trailer(&pt, trailer.len(), pack_len)
}

/// Parses a decrypted trailer. `trailer_len` is its sealed length and
/// `pack_len` the whole file's; every entry must lie between the header and
/// the trailer, in order, with no bytes left between them.
pub fn parse_trailer(
    plaintext: &[u8],
    trailer_len: usize,
    pack_len: u64,
) -> Result<Vec<BlobEntry>> {
    let mut r = Reader::new(plaintext, "pack trailer");
    let n = r.count(36)?;
    let mut entries = Vec::with_capacity(n);
    let limit = pack_len.saturating_sub((trailer_len + PACK_FOOTER_LEN) as u64);
    let mut next = PACK_HEADER_LEN as u64;
    for _ in 0..n {
        let e = BlobEntry::read(&mut r)?;
        if e.offset != next || e.offset + u64::from(e.sealed_len) > limit {
            return Err(FormatError::malformed(
                "pack trailer",
                "blob positions do not tile the pack",
            ));
        }
        next = e.offset + u64::from(e.sealed_len);
        entries.push(e);
    }
    r.finish()?;
    if next != limit {
        return Err(FormatError::malformed(
            "pack trailer",
            "bytes between the last blob and the trailer",
        ));
    }
    Ok(entries)
}

/// Splits a whole pack file into its id and its trailer's entries.
pub fn open_pack(
    keys: &SubKeys,
    vault: &VaultId,
    bytes: &[u8],
) -> Result<(PackId, Vec<BlobEntry>)> {
    let pack = read_pack_header(bytes)?;
    if bytes.len() < PACK_HEADER_LEN + PACK_FOOTER_LEN {
        return Err(FormatError::Truncated {
            what: "pack",
            needed: PACK_HEADER_LEN + PACK_FOOTER_LEN - bytes.len(),
        });
    }
    let tlen = read_pack_footer(&bytes[bytes.len() - PACK_FOOTER_LEN..])?;
    let end = bytes.len() - PACK_FOOTER_LEN;
    let start = end
        .checked_sub(tlen)
        .filter(|&s| s >= PACK_HEADER_LEN)
        .ok_or(FormatError::Truncated {
            what: "pack",
            needed: tlen,
        })?;
    let entries = open_pack_trailer(keys, vault, &pack, &bytes[start..end], bytes.len() as u64)?;
    Ok((pack, entries))
}

/// Decrypts, decompresses and verifies one blob read from `pack` at `entry`.
/// The result is the chunk's plaintext, checked against its id.
pub fn open_blob(
    keys: &SubKeys,
    vault: &VaultId,
    pack: &PackId,
    entry: &BlobEntry,
    sealed: &[u8],
) -> Result<Vec<u8>> {
    let what = entry.kind.name();
    if sealed.len() != entry.sealed_len as usize {
        return Err(FormatError::Truncated {
            what,
            needed: (entry.sealed_len as usize).saturating_sub(sealed.len()),
        });
    }
    let (ct, tag) = sealed.split_at(sealed.len() - TAG_LEN);
    let mut pt = ct.to_vec();
    pack_cipher(keys, pack)
        .decrypt_in_place_detached(
            Nonce::from_slice(&blob_nonce(entry.offset)),
            &blob_ad(vault, entry.kind, &entry.id),
            &mut pt,
            Tag::from_slice(tag),
        )
        .map_err(|_| FormatError::Integrity { what })?;
    let plain = decompress_framed(&pt, what)?;
    if plain.len() != entry.plain_len as usize || keys.chunk_id(&plain) != entry.id {
        return Err(FormatError::Integrity { what });
    }
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::Compression;
    use crate::keys::MasterKey;
    use proptest::prelude::*;

    fn build(chunks: &[Vec<u8>]) -> (SubKeys, VaultId, Vec<u8>, Vec<BlobEntry>) {
        let keys = MasterKey([5; 32]).sub_keys();
        let vault = VaultId([6; 16]);
        let mut c = Compressor::new(Compression::DEFAULT).unwrap();
        let mut b = PackBuilder::new(&keys, vault, PackId([7; 16]), 1 << 20);
        for (i, ch) in chunks.iter().enumerate() {
            let kind = if i % 2 == 0 {
                ObjectKind::DataChunk
            } else {
                ObjectKind::TreeNode
            };
            b.add(kind, keys.chunk_id(ch), ch, &mut c).unwrap();
        }
        let (_, bytes, entries) = b.finish().unwrap();
        (keys, vault, bytes, entries)
    }

    proptest! {
        #[test]
        fn packs_round_trip(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..2000), 0..12)) {
            let (keys, vault, bytes, entries) = build(&chunks);
            let (pack, listed) = open_pack(&keys, &vault, &bytes).unwrap();
            prop_assert_eq!(&listed, &entries);
            for (e, ch) in listed.iter().zip(&chunks) {
                let sealed = &bytes[e.offset as usize..(e.offset + u64::from(e.sealed_len)) as usize];
                prop_assert_eq!(&open_blob(&keys, &vault, &pack, e, sealed).unwrap(), ch);
            }
        }
    }

    #[test]
    fn every_flipped_byte_is_caught() {
        let chunks = vec![b"hello kafka".repeat(30), b"tree".to_vec()];
        let (keys, vault, bytes, _) = build(&chunks);
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x20;
            let ok = open_pack(&keys, &vault, &b).and_then(|(pack, entries)| {
                for e in &entries {
                    let s = b
                        .get(e.offset as usize..(e.offset + u64::from(e.sealed_len)) as usize)
                        .unwrap_or(&[]);
                    open_blob(&keys, &vault, &pack, e, s)?;
                }
                Ok(())
            });
            assert!(ok.is_err(), "flip at {i} went unnoticed");
        }
    }

    #[test]
    fn a_blob_cannot_pose_as_another() {
        let chunks = vec![b"one".repeat(10), b"two".repeat(10)];
        let (keys, vault, bytes, entries) = build(&chunks);
        let pack = read_pack_header(&bytes).unwrap();
        // Blob 1's bytes presented under blob 0's entry, and a kind swap.
        let s1 = &bytes[entries[1].offset as usize..][..entries[1].sealed_len as usize];
        let mut e = entries[0];
        e.sealed_len = entries[1].sealed_len;
        assert!(open_blob(&keys, &vault, &pack, &e, s1).is_err());
        let mut e = entries[1];
        e.kind = ObjectKind::DataChunk;
        assert!(open_blob(&keys, &vault, &pack, &e, s1).is_err());
        // Another vault id.
        assert!(open_blob(&keys, &VaultId([0; 16]), &pack, &entries[1], s1).is_err());
    }

    #[test]
    fn truncated_packs_fail() {
        let (keys, vault, bytes, _) = build(&[b"abc".to_vec()]);
        for n in 0..bytes.len() {
            assert!(open_pack(&keys, &vault, &bytes[..n]).is_err());
        }
    }
}
