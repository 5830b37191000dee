//! The data horizon ("keep records for 90 days"): a new snapshot stops
//! carrying the records older than it, so gc can free them once no kept
//! snapshot holds them.
//!
//! Like Kafka's own time retention, which deletes whole segments from the
//! start of the log, the horizon drops whole data chunks from the start of
//! a partition: every leading chunk whose newest record is older than the
//! cutoff. The first chunk with a newer record stays, with any older
//! records it holds, and so does everything after it.

use vault_format::config::VaultConfig;
use vault_format::tree::{TreeBuilder, TreeRoot};

use crate::error::Result;
use crate::lock::VaultLock;
use crate::pack_writer::PackWriter;
use crate::reader::leaves;
use crate::repository::{Indexed, Repository};

/// Which data horizon a snapshot applies: the vault's own, or the one a
/// snapshot's `--data-horizon` sets instead.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HorizonOverride {
    /// No `--data-horizon`: the vault's (`vault config --data-horizon`).
    #[default]
    VaultDefault,
    /// `--data-horizon none`: keep every record, whatever the vault's is.
    KeepAll,
    /// Leave out records older than this many milliseconds.
    Ms(u64),
}

impl HorizonOverride {
    /// `--data-horizon DURATION|none`, or no flag.
    pub fn from_flag(flag: Option<&str>) -> Result<HorizonOverride> {
        Ok(match flag {
            None => HorizonOverride::VaultDefault,
            Some("none") => HorizonOverride::KeepAll,
            Some(d) => HorizonOverride::Ms(crate::time::parse_duration(d)?),
        })
    }

    /// The horizon in milliseconds for a vault configured with `config`;
    /// `None` keeps every record.
    pub fn resolve(self, config: &VaultConfig) -> Option<u64> {
        match self {
            HorizonOverride::VaultDefault => config.data_horizon_ms,
            HorizonOverride::KeepAll => None,
            HorizonOverride::Ms(ms) => Some(ms),
        }
    }
}

/// Applies the horizon `horizon_ms` (none: keep all) to the partition
/// trees of a snapshot cut at `cut_ms`, in place, writing the new trees'
/// nodes under `lock`. Returns the bytes written.
pub(crate) fn apply_to_roots(
    repo: &Repository<Indexed>,
    roots: &mut [Option<TreeRoot>],
    cut_ms: u64,
    horizon_ms: Option<u64>,
    lock: &VaultLock,
) -> Result<u64> {
    let Some(h) = horizon_ms else {
        return Ok(0);
    };
    let cutoff = crate::time::signed_ms(cut_ms.saturating_sub(h));
    let mut writer = PackWriter::new(repo)?.guarded_by(lock);
    for root in roots.iter_mut() {
        if let Some(r) = root {
            *root = apply(repo, r, cutoff, &mut writer)?;
        }
    }
    writer.flush()?;
    Ok(writer.stats().pack_bytes_written)
}

/// `root` without its leading chunks older than `cutoff_ms`; `None` when
/// nothing is left. Writes the new tree's nodes through `writer`.
fn apply(
    repo: &Repository<Indexed>,
    root: &TreeRoot,
    cutoff_ms: i64,
    writer: &mut PackWriter<'_>,
) -> Result<Option<TreeRoot>> {
    if root.summary.min_ts >= cutoff_ms {
        return Ok(Some(*root));
    }
    let all = leaves(repo, root, &mut |_| true)?;
    let Some(first_kept) = all.iter().position(|l| l.summary.max_ts >= cutoff_ms) else {
        return Ok(None);
    };
    if first_kept == 0 {
        return Ok(Some(*root));
    }
    let mut builder = TreeBuilder::new(repo.config().tree_fanout as usize);
    for leaf in &all[first_kept..] {
        builder.push_leaf(leaf.clone(), writer)?;
    }
    builder.finish(writer)
}
