//! `vault forget ID`: one snapshot forgotten; the next gc frees its data.

use clap::Args;
use serde::Serialize;
use vault::Result;
use vault::lock::LockKind;

use super::args::VaultArgs;
use super::output::print_json;

#[derive(Args, Debug)]
pub struct ForgetArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// The snapshot: an id or a unique prefix.
    id: String,
    #[arg(long)]
    json: bool,
}

/// `vault forget --json`.
#[derive(Serialize)]
struct ForgetReport {
    forgotten: String,
}

pub fn run(a: &ForgetArgs) -> Result<()> {
    let (repo, _lock) = a.vault.open_locked(LockKind::Shared, "forget")?;
    let id = vault::gc::forget(&repo, &a.id)?;
    if a.json {
        print_json(&ForgetReport {
            forgotten: id.to_hex(),
        });
    } else {
        println!("forgot snapshot {id}; `vault gc` frees its data");
    }
    Ok(())
}
