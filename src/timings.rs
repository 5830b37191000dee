//! Where a command's wall time goes: with `KVAULT_PHASE_TIMES=1`, each
//! phase's end is printed on standard error with the milliseconds since
//! the process started. docs/benchmarks.md § Fixed cost reads these.

use std::sync::OnceLock;
use std::time::Instant;

fn start() -> Option<&'static Instant> {
    static START: OnceLock<Option<Instant>> = OnceLock::new();
    START
        .get_or_init(|| {
            (std::env::var_os("KVAULT_PHASE_TIMES").is_some_and(|v| v == "1")).then(Instant::now)
        })
        .as_ref()
}

/// Starts the clock (if timings are on); call first thing in `main`.
pub fn begin() {
    let _ = start();
}

/// Prints that `phase` ended now (if timings are on).
pub fn mark(phase: &str) {
    if let Some(t) = start() {
        eprintln!(
            "phase: {:>8.1} ms  {phase}",
            t.elapsed().as_secs_f64() * 1000.0
        );
    }
}
