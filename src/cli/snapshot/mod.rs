//! `vault snapshot`: a consistent, incremental, deduplicated backup, in
//! one of three modes: one snapshot (`once`), one every interval
//! (`every`), or one shared by several workers (`workers`). All three start
//! through `vault::snapshot::prepare`; what they share of the command
//! line is in `args`, so no mode reaches into another.

mod args;
mod every;
mod once;
mod workers;

pub use args::SnapshotArgs;
use vault::Result;

pub fn run(a: &SnapshotArgs) -> Result<()> {
    let kafka = a.client.options(&a.brokers)?;
    let request = a.request()?;
    let horizon = a.horizon()?;
    if let Some(every) = &a.every {
        return every::run(a, every, &kafka, &request, horizon);
    }
    if let Some(name) = &a.workers {
        return workers::run(a, name, &kafka, &request, horizon);
    }
    once::run(a, &kafka, &request, horizon)
}
