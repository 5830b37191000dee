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
    #[arg(required_unless_present = "plan", conflicts_with = "plan")]
    id: Option<String>,
    /// Drop the plan of the distributed snapshot run NAME instead (workers
    /// that all died left it); the next gc frees what its parts wrote.
    #[arg(long, value_name = "NAME")]
    plan: Option<String>,
    #[arg(long)]
    json: bool,
}

/// `vault forget --json`.
#[derive(Serialize)]
struct ForgetReport {
    forgotten: String,
}

/// `vault forget --plan NAME --json`.
#[derive(Serialize)]
struct DropPlanReport {
    dropped_plan: String,
    partitions: usize,
    partitions_done: usize,
}

pub fn run(a: &ForgetArgs) -> Result<()> {
    if let Some(name) = &a.plan {
        return drop_plan(a, name);
    }
    let (repo, _lock) = a.vault.open_locked(LockKind::Shared, "forget")?;
    let id = vault::gc::forget(&repo, a.id.as_deref().unwrap_or_default())?;
    if a.json {
        print_json(&ForgetReport {
            forgotten: id.to_hex(),
        });
    } else {
        println!("forgot snapshot {id}; `vault gc` frees its data");
    }
    Ok(())
}

/// Drops a run's plan. Under the exclusive lock: a worker still running
/// holds a shared one, so a live run is never pulled from under it.
fn drop_plan(a: &ForgetArgs, name: &str) -> Result<()> {
    let (repo, _lock) = a
        .vault
        .open_locked(LockKind::Exclusive, &format!("forget --plan {name}"))?;
    let run = vault::snapshot::distributed::RunObjects::new(&repo, name);
    let Some(plan) = run.load_plan()? else {
        return Err(vault::Error::Usage(format!(
            "no distributed snapshot run {name} is in progress (`vault snapshots --in-progress` lists them)"
        )));
    };
    let done = run.list(&plan)?.parts.len();
    run.drop_plan()?;
    if a.json {
        print_json(&DropPlanReport {
            dropped_plan: name.to_string(),
            partitions: plan.partitions.len(),
            partitions_done: done,
        });
    } else {
        println!(
            "dropped the plan of run {name} ({done} of {} partitions were done); `vault gc` frees what it wrote",
            plan.partitions.len()
        );
    }
    Ok(())
}
