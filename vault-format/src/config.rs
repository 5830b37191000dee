//! The vault's config: format parameters chosen at `vault init` and fixed
//! for the vault's life. Stored sealed as the object named `config`.

use crate::chunker::ChunkerParams;
use crate::compress::Compression;
use crate::error::{FormatError, Result};
use crate::id::VaultId;
use crate::wire::{Reader, Writer};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VaultConfig {
    pub vault_id: VaultId,
    pub created_ms: u64,
    pub chunker: ChunkerParams,
    pub tree_fanout: u32,
    /// zstd level for new chunks; `None` stores them raw.
    pub compression: Compression,
    /// Packs are closed once they reach this many bytes.
    pub pack_target_size: u32,
    /// Records older than this many milliseconds are left out of new
    /// snapshots (the data horizon); `None` keeps everything.
    pub data_horizon_ms: Option<u64>,
}

impl VaultConfig {
    pub const DEFAULT_PACK_SIZE: u32 = 16 << 20;

    pub fn new(vault_id: VaultId, created_ms: u64) -> VaultConfig {
        VaultConfig {
            vault_id,
            created_ms,
            chunker: ChunkerParams::DEFAULT,
            tree_fanout: crate::tree::DEFAULT_FANOUT as u32,
            compression: Compression::DEFAULT,
            pack_target_size: Self::DEFAULT_PACK_SIZE,
            data_horizon_ms: None,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.raw(&self.vault_id.0)
            .u64(self.created_ms)
            .varint(u64::from(self.chunker.min))
            .varint(u64::from(self.chunker.avg))
            .varint(u64::from(self.chunker.max))
            .varint(u64::from(self.tree_fanout));
        match self.compression.0 {
            None => w.u8(0),
            Some(l) => w.u8(1).zigzag(i64::from(l)),
        };
        w.varint(u64::from(self.pack_target_size));
        match self.data_horizon_ms {
            None => w.u8(0),
            Some(h) => w.u8(1).varint(h),
        };
        w.into_inner()
    }

    pub fn decode(bytes: &[u8]) -> Result<VaultConfig> {
        let bad = |d: &str| FormatError::malformed("config", d.to_string());
        let mut r = Reader::new(bytes, "config");
        let vault_id = VaultId(r.array()?);
        let created_ms = r.u64()?;
        let mut small =
            || -> Result<u32> { u32::try_from(r.varint()?).map_err(|_| bad("value out of range")) };
        let chunker = ChunkerParams {
            min: small()?,
            avg: small()?,
            max: small()?,
        };
        let tree_fanout = small()?;
        let compression = match r.u8()? {
            0 => Compression(None),
            1 => Compression(Some(
                i32::try_from(r.zigzag()?).map_err(|_| bad("zstd level"))?,
            )),
            _ => return Err(bad("compression flag")),
        };
        let pack_target_size = u32::try_from(r.varint()?).map_err(|_| bad("pack size"))?;
        let data_horizon_ms = match r.u8()? {
            0 => None,
            1 => Some(r.varint()?),
            _ => return Err(bad("horizon flag")),
        };
        r.finish()?;
        chunker.validate()?;
        if !(2..=4096).contains(&tree_fanout) {
            return Err(bad("tree fan-out out of range"));
        }
        if pack_target_size < 1024 {
            return Err(bad("pack size too small"));
        }
        Ok(VaultConfig {
            vault_id,
            created_ms,
            chunker,
            tree_fanout,
            compression,
            pack_target_size,
            data_horizon_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut c = VaultConfig::new(VaultId([3; 16]), 99);
        assert_eq!(VaultConfig::decode(&c.encode()).unwrap(), c);
        c.compression = Compression(None);
        c.data_horizon_ms = Some(90 * 86_400_000);
        assert_eq!(VaultConfig::decode(&c.encode()).unwrap(), c);
    }
}
