//! `vault key add`: another passphrase for the same vault.

use std::path::PathBuf;

use clap::Subcommand;
use serde::Serialize;
use vault::Result;
use vault::password;
use vault_format::keys::KdfParams;

use super::args::VaultArgs;
use super::output::print_json;

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Add a key file: another passphrase for the same vault.
    Add {
        #[command(flatten)]
        vault: VaultArgs,
        /// File holding the new passphrase (first line).
        #[arg(long, value_name = "FILE")]
        new_password_file: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

/// `vault key add --json`.
#[derive(Serialize)]
struct KeyReport {
    key_file: String,
}

pub fn run(c: KeyCommand) -> Result<()> {
    match c {
        KeyCommand::Add {
            vault,
            new_password_file,
            json,
        } => {
            let repo = vault.unlock()?;
            let new = password::read_password_file(&new_password_file)?;
            let name = repo.add_key(&new, KdfParams::DEFAULT)?;
            if json {
                print_json(&KeyReport { key_file: name });
            } else {
                println!("added key file {name}");
            }
            Ok(())
        }
    }
}
