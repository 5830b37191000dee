//! Index objects: which pack holds which chunk. Written after the packs they
//! describe and before the manifest that needs them. See `docs/format.md` § Index.

use crate::error::{FormatError, Result};
use crate::id::PackId;
use crate::pack::BlobEntry;
use crate::wire::{Reader, Writer};

/// The blobs of some packs. A vault's index is the union of its index objects.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexObject {
    pub packs: Vec<(PackId, Vec<BlobEntry>)>,
}

impl IndexObject {
    pub fn blob_count(&self) -> usize {
        self.packs.iter().map(|(_, e)| e.len()).sum()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(16 + self.blob_count() * 48);
        w.varint(self.packs.len() as u64);
        for (pack, entries) in &self.packs {
            w.raw(&pack.0).varint(entries.len() as u64);
            for e in entries {
                e.write(&mut w);
            }
        }
        w.into_inner()
    }

    pub fn decode(bytes: &[u8]) -> Result<IndexObject> {
        let mut r = Reader::new(bytes, "index object");
        let n = r.count(17)?;
        let mut packs = Vec::with_capacity(n);
        for _ in 0..n {
            let pack = PackId(r.array()?);
            let m = r.count(36)?;
            let mut entries = Vec::with_capacity(m);
            for _ in 0..m {
                entries.push(BlobEntry::read(&mut r)?);
            }
            if packs.iter().any(|(p, _)| *p == pack) {
                return Err(FormatError::malformed(
                    "index object",
                    format!("pack {pack} listed twice"),
                ));
            }
            packs.push((pack, entries));
        }
        r.finish()?;
        Ok(IndexObject { packs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::ChunkId;
    use crate::object::ObjectKind;

    #[test]
    fn round_trips() {
        let e = |i: u8| BlobEntry {
            kind: ObjectKind::DataChunk,
            id: ChunkId([i; 32]),
            offset: 22 + u64::from(i),
            sealed_len: 40,
            plain_len: 100,
        };
        let idx = IndexObject {
            packs: vec![
                (PackId([1; 16]), vec![e(1), e(2)]),
                (PackId([2; 16]), vec![]),
            ],
        };
        assert_eq!(IndexObject::decode(&idx.encode()).unwrap(), idx);
    }
}
