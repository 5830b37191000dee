//! `vault completions SHELL` and `vault man`: shell completion scripts and
//! man pages, generated from the command line definition itself (clap's
//! generators), so they never drift from it.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use vault::{Error, Result};

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    shell: clap_complete::Shell,
}

#[derive(Args, Debug)]
pub struct ManArgs {
    /// Write vault.1 and a page per command (vault-snapshot.1, ...) into
    /// this directory instead of printing vault.1.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// `cli` is the whole command line's definition (`Cli::command()`), passed
/// in so this module needs nothing from its parent.
pub fn completions(a: &CompletionsArgs, mut cli: clap::Command) -> Result<()> {
    let cmd = &mut cli;
    let mut out = std::io::stdout().lock();
    clap_complete::generate(a.shell, cmd, "vault", &mut out);
    out.flush()
        .map_err(|e| Error::io("writing completions", "standard output", e))
}

pub fn man(a: &ManArgs, cmd: clap::Command) -> Result<()> {
    match &a.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io("creating the man page directory", dir, e))?;
            clap_mangen::generate_to(cmd, dir).map_err(|e| Error::io("writing man pages", dir, e))
        }
        None => {
            let mut out = std::io::stdout().lock();
            match clap_mangen::Man::new(cmd).render(&mut out) {
                // Read by `| head`: what it wanted was written.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                r => r.map_err(|e| Error::io("writing the man page", "standard output", e)),
            }
        }
    }
}
