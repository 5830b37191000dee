//! The `vault` command line: a thin layer over the `vault` library.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    vault::timings::begin();
    let mut raw: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let text: Vec<String> = raw
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    // The configuration profile adds what the command line and the
    // environment leave out, so both win over it.
    let result = cli::config::profile_args(&text).and_then(|extra| {
        // Before a `--`, after which words are not flags.
        let at = raw.iter().position(|a| a == "--").unwrap_or(raw.len());
        raw.splice(at..at, extra.into_iter().map(Into::into));
        cli::run(cli::Cli::parse_from(raw))
    });
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // No password vault was given ever reaches a terminal or a log.
            cli::output::error(&e.to_string());
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    };
    // Clients close in the background while the command goes on; none
    // may be left closing when the process exits. A second at most: a
    // client stuck on an unreachable broker must not hold the exit up.
    vault::kafka::wait_for_closing_clients(std::time::Duration::from_secs(1));
    vault::timings::mark("done (lock released, clients closed)");
    code
}
