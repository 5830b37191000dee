//! The data horizon ("keep records for 90 days"): a new snapshot stops
//! carrying the records older than it, so gc can free them once no kept
//! snapshot holds them.
//!
//! Like Kafka's own time retention, which deletes whole segments from the
//! start of the log, the horizon drops whole data chunks from the start of
//! a partition: every leading chunk whose newest record is older than the
//! cutoff. The first chunk with a newer record stays, with any older
//! records it holds, and so does everything after it.

use vault_format::tree::{TreeBuilder, TreeRoot};

use crate::error::Result;
use crate::pack_writer::PackWriter;
use crate::reader::leaves;
use crate::repository::{Indexed, Repository};

/// `root` without its leading chunks older than `cutoff_ms`; `None` when
/// nothing is left. Writes the new tree's nodes through `writer`.
pub(crate) fn apply(
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
