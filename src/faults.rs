//! Crash and pause points for the fault tests. When `KVAULT_CRASH_AT` names
//! a point (`name`, or `name:n` for its n-th pass), the process dies right
//! there with no cleanup, as a kill -9 would leave it. Unset, it costs one
//! environment lookup per pass.
//!
//! They exist only in debug builds (the ones `cargo test` runs); a release
//! binary ignores both variables, so no environment can crash or stall it.

#[cfg(not(debug_assertions))]
pub(crate) fn crash_point(_name: &str, _pass: u64) {}

#[cfg(not(debug_assertions))]
pub(crate) fn pause_point(_name: &str) {}

#[cfg(debug_assertions)]
pub(crate) fn crash_point(name: &str, pass: u64) {
    let Some(want) = std::env::var_os("KVAULT_CRASH_AT") else {
        return;
    };
    let want = want.to_string_lossy();
    let hit = match want.split_once(':') {
        Some((n, count)) => n == name && count.parse() == Ok(pass),
        None => want == name,
    };
    if hit {
        eprintln!("vault: crash point {name}:{pass} reached (KVAULT_CRASH_AT)");
        std::process::abort();
    }
}

/// Pause points for the fault tests: when `KVAULT_PAUSE_AT` is
/// `name:PATH`, the process creates the file PATH at this point and waits
/// (up to two minutes) until the test removes it, so the test can change
/// the world at a moment a timed race could not hit. Unset, it costs one
/// environment lookup.
#[cfg(debug_assertions)]
pub(crate) fn pause_point(name: &str) {
    let Some(want) = std::env::var_os("KVAULT_PAUSE_AT") else {
        return;
    };
    let want = want.to_string_lossy();
    let Some((point, path)) = want.split_once(':') else {
        return;
    };
    if point != name {
        return;
    }
    let path = std::path::Path::new(path);
    if std::fs::write(path, name).is_err() {
        return;
    }
    eprintln!(
        "vault: paused at {name} until {} is removed (KVAULT_PAUSE_AT)",
        path.display()
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while path.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The debug binary's fault storage: when `KVAULT_STORAGE_FAULTS` holds a
/// fault plan (`kind=kill,nth=40`, see [`crate::storage::faulty`]), every
/// storage the process opens is wrapped in a fault storage that follows
/// it, all with one count of calls, so the n-th call is the n-th of the
/// whole command whichever handle made it. A local vault's root is filled
/// in for `partial` faults. Release builds ignore the variable.
#[cfg(debug_assertions)]
pub(crate) fn wrap_storage(
    storage: std::sync::Arc<dyn crate::storage::Storage>,
    local_root: Option<&std::path::Path>,
) -> crate::Result<std::sync::Arc<dyn crate::storage::Storage>> {
    use std::sync::{Arc, OnceLock};

    use crate::storage::faulty::{FaultPlan, FaultState, faulty_with};
    static STATE: OnceLock<Arc<FaultState>> = OnceLock::new();
    let Some(spec) = std::env::var_os("KVAULT_STORAGE_FAULTS") else {
        return Ok(storage);
    };
    let state = match STATE.get() {
        Some(s) => Arc::clone(s),
        None => {
            let mut plan = FaultPlan::parse(&spec.to_string_lossy())?;
            if plan.root.is_none() {
                plan.root = local_root.map(std::path::Path::to_path_buf);
            }
            Arc::clone(STATE.get_or_init(|| Arc::new(FaultState::new(plan))))
        }
    };
    Ok(faulty_with(storage, &state))
}

#[cfg(not(debug_assertions))]
pub(crate) fn wrap_storage(
    storage: std::sync::Arc<dyn crate::storage::Storage>,
    _local_root: Option<&std::path::Path>,
) -> crate::Result<std::sync::Arc<dyn crate::storage::Storage>> {
    Ok(storage)
}
