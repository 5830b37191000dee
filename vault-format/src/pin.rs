//! Restore pins: an unfinished restore's claim on its snapshot.
//!
//! A rerun of a killed restore must read the same snapshot to resume it
//! (docs/design.md § Restore pins). If gc forgot that snapshot meanwhile,
//! the rerun could only start over and write every committed record
//! twice. So a restore writes a pin before its first record and removes it
//! when it is done; gc keeps every pinned snapshot until the pin expires.
//! A pin is a run object (`runs/pin.RESTORE_ID.RANDOM`), sealed like every
//! other; see docs/format.md § Restore pins.

use crate::error::Result;
use crate::id::ObjectId;
use crate::wire::{Reader, Writer};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestorePin {
    /// The restore that holds the snapshot (its id names the vault, the
    /// snapshot and the selection).
    pub restore_id: String,
    pub snapshot: ObjectId,
    /// The target cluster's id, where it gave one ("" if not).
    pub target_cluster: String,
    /// The target topics, for `vault status` and gc's report.
    pub target_topics: Vec<String>,
    /// Who wrote it: `host/pid`.
    pub holder: String,
    pub written_ms: u64,
    /// After this time (by gc's clock) the pin no longer keeps anything.
    pub expires_ms: u64,
}

impl RestorePin {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(128);
        w.str(&self.restore_id)
            .raw(&self.snapshot.0)
            .str(&self.target_cluster)
            .varint(self.target_topics.len() as u64);
        for t in &self.target_topics {
            w.str(t);
        }
        w.str(&self.holder)
            .u64(self.written_ms)
            .u64(self.expires_ms);
        w.into_inner()
    }

    pub fn decode(bytes: &[u8]) -> Result<RestorePin> {
        let mut r = Reader::new(bytes, "restore pin");
        let restore_id = r.str()?.to_string();
        let snapshot = ObjectId(r.array()?);
        let target_cluster = r.str()?.to_string();
        let n = r.count(1)?;
        let mut target_topics = Vec::with_capacity(n);
        for _ in 0..n {
            target_topics.push(r.str()?.to_string());
        }
        let pin = RestorePin {
            restore_id,
            snapshot,
            target_cluster,
            target_topics,
            holder: r.str()?.to_string(),
            written_ms: r.u64()?,
            expires_ms: r.u64()?,
        };
        r.finish()?;
        Ok(pin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> RestorePin {
        RestorePin {
            restore_id: "0123456789abcdef0123456789abcdef".into(),
            snapshot: ObjectId([9; 32]),
            target_cluster: "tgt-cluster".into(),
            target_topics: vec!["orders".into(), "payments".into()],
            holder: "host-1/4242".into(),
            written_ms: 1_795_348_800_000,
            expires_ms: 1_796_558_400_000,
        }
    }

    #[test]
    fn round_trips_and_refuses_what_is_not_a_pin() {
        let p = sample();
        let bytes = p.encode();
        assert_eq!(RestorePin::decode(&bytes).unwrap(), p);
        for cut in 0..bytes.len() {
            assert!(RestorePin::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(RestorePin::decode(&longer).is_err());
    }
}
