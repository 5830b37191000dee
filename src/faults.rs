//! Crash points for the fault tests. When `KVAULT_CRASH_AT` names a point
//! (`name`, or `name:n` for its n-th pass), the process dies right there
//! with no cleanup, as a kill -9 would leave it. Unset, it costs one
//! environment lookup per pass.

pub fn crash_point(name: &str, pass: u64) {
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
