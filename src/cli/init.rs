//! `vault init`: a new, empty vault.

use clap::Args;
use serde::Serialize;
use vault::repository::{InitOptions, Repository};
use vault::storage::location::NewVault;
use vault::{Error, Result};

use super::args::VaultArgs;
use super::output::print_json;

#[derive(Args, Debug)]
pub struct InitArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// zstd level for chunks (1-19); 0 stores them uncompressed.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(0..=19))]
    compression_level: i32,
    /// Target size of pack files, in MiB.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=512))]
    pack_size_mib: u32,
    /// Data horizon: new snapshots leave out records older than this (e.g.
    /// 90d), so gc can free them. Default: keep everything.
    #[arg(long, value_name = "DURATION")]
    data_horizon: Option<String>,
    /// Average chunk size in KiB (min is a quarter, max four times).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=1024))]
    avg_chunk_kib: u32,
    /// Argon2id memory cost in MiB for the key file.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(8..=4096))]
    kdf_memory_mib: u32,
    /// Use an object store that does not refuse to overwrite an existing
    /// object (init checks). Then two vault processes at once can corrupt
    /// the vault: run one writer at a time.
    #[arg(long)]
    unsafe_no_conditional_writes: bool,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    json: bool,
}

/// `vault init --json`.
#[derive(Serialize)]
struct InitReport {
    vault: String,
    vault_id: String,
    format_version: u8,
    chunk_sizes: ChunkSizes,
    compression_level: Option<i32>,
    pack_target_size: u32,
}

#[derive(Serialize)]
struct ChunkSizes {
    min: u32,
    avg: u32,
    max: u32,
}

pub fn run(a: &InitArgs) -> Result<()> {
    let location = a.vault.location()?;
    let storage_options = a.vault.storage_options()?;
    let pass = a.vault.passphrase(true)?;
    // Everything that can be wrong with the options fails before anything
    // is created.
    let opts = InitOptions::from_settings(
        a.compression_level,
        a.pack_size_mib,
        a.avg_chunk_kib,
        a.data_horizon.as_deref(),
        a.kdf_memory_mib,
    )?;
    let target = NewVault::prepare(&location, &storage_options)?;
    let honoured = match vault::storage::honours_conditional_writes(target.storage().as_ref()) {
        Ok(h) => h,
        Err(e) => {
            target.remove_unfinished();
            return Err(e);
        }
    };
    if !honoured {
        if !a.unsafe_no_conditional_writes {
            target.remove_unfinished();
            return Err(Error::Usage(format!(
                "{} does not refuse to overwrite an existing object (a conditional write), which \
             vault's locks and snapshots rely on. Use a store that honours If-None-Match, or pass \
             --unsafe-no-conditional-writes and never run two vault commands on this vault at once",
                location.display()
            )));
        }
        super::output::warn(
            "the store does not honour conditional writes: one writer at a time, never two vault commands on this vault at once",
        );
    }
    let repo = match Repository::init(target.storage(), &pass, opts) {
        Ok(r) => r,
        Err(e) => {
            // A failed init leaves nothing behind, so the next one can run.
            target.remove_unfinished();
            return Err(e);
        }
    };
    let c = repo.config();
    if a.json {
        print_json(&InitReport {
            vault: location.display(),
            vault_id: c.vault_id.to_hex(),
            format_version: vault_format::FORMAT_VERSION,
            chunk_sizes: ChunkSizes {
                min: c.chunker.min,
                avg: c.chunker.avg,
                max: c.chunker.max,
            },
            compression_level: c.compression.0,
            pack_target_size: c.pack_target_size,
        });
    } else {
        println!("created vault {} at {}", c.vault_id, location.display());
        println!("keep the passphrase safe: without it the vault cannot be read");
    }
    Ok(())
}
