//! `vault repair index`: the index rewritten from the packs.

use clap::Subcommand;
use vault::lock::LockKind;
use vault::{Error, Result};

use super::args::VaultArgs;
use super::output::print_json;

#[derive(Subcommand, Debug)]
pub enum RepairCommand {
    /// Rewrite damaged or missing index objects from the packs' trailers.
    Index {
        #[command(flatten)]
        vault: VaultArgs,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(c: RepairCommand) -> Result<()> {
    let RepairCommand::Index { vault, json } = c;
    let (repo, lock) = vault.open_locked(LockKind::Exclusive, "repair index")?;
    let out = vault::repair::repair_index(&repo, &lock)?;
    // The report is printed either way: a script wants it most when damage stays.
    if json {
        print_json(&out);
    } else {
        for d in &out.damaged_index_objects {
            println!("deleted damaged index object {d}");
        }
        for d in &out.damaged_packs {
            println!("left damaged pack {d}");
        }
        super::output::info(&format!(
            "indexed {} packs again from their trailers into {} index objects; deleted {} damaged index objects",
            out.packs_reindexed,
            out.index_objects_written,
            out.damaged_index_objects.len()
        ));
    }
    if out.damaged_packs.is_empty() {
        Ok(())
    } else {
        Err(Error::Damaged(format!(
            "{} packs are damaged beyond repair (their trailers too); `vault check` names the snapshots they break",
            out.damaged_packs.len()
        )))
    }
}
