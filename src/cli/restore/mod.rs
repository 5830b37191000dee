//! `vault restore`: a snapshot into a Kafka cluster, exactly once, with
//! consumer-group offsets translated. One process restores it alone
//! (`one_process.rs`), or it is one worker of several (`--workers`,
//! `workers.rs`).

mod args;
mod dry_run;
mod estate;
mod one_process;
mod workers;

pub use args::RestoreArgs;

use vault::Result;

pub fn run(a: &RestoreArgs) -> Result<()> {
    let kafka = a.client.options(&a.brokers)?;
    let req = a.request()?;
    // A dry run plans the same restore either way and writes nothing, so
    // it never starts a worker.
    let parts = estate::parts(&a.with, a.estate)?;
    if a.workers.is_some() && parts.estate.any() {
        return Err(vault::Error::Usage(
            "--workers restores records only: restore the records with --workers first, then \
             the estate in one process (--with acls,quotas,users)"
                .into(),
        ));
    }
    if let Some(name) = &a.workers
        && !a.dry_run
    {
        return workers::run(a, name, kafka, &req);
    }
    one_process::run(a, &kafka, &req, parts)
}
