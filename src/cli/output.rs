//! How commands talk to people and scripts: warnings on standard error,
//! progress on terminals only, sizes and times in one style, JSON reports.

use std::collections::BTreeSet;
use std::io::IsTerminal;

use serde::Serialize;
use vault::snapshot::distributed::PlanInProgress;

use vault::{Error, Result};

/// How log lines are written (`--log-format`).
static JSON_LOGS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Sends log lines through `tracing` as JSON objects on standard error
/// (`--log-format json`, for log shippers); text stays the default.
pub fn init_logging(json: bool) {
    if json {
        JSON_LOGS.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = tracing_subscriber::fmt()
            .json()
            .with_writer(std::io::stderr)
            .with_max_level(tracing::Level::INFO)
            .with_current_span(false)
            .try_init();
    }
}

fn json_logs() -> bool {
    JSON_LOGS.load(std::sync::atomic::Ordering::Relaxed)
}

/// A warning for the operator, with any secret blanked out.
pub fn warn(w: &str) {
    let w = vault::secrets::scrub(w);
    if json_logs() {
        tracing::warn!(target: "vault", "{w}");
    } else {
        eprintln!("vault: warning: {w}");
    }
}

/// A line of news for the operator (what a command did), with any secret
/// blanked out.
pub fn info(line: &str) {
    let line = vault::secrets::scrub(line);
    if json_logs() {
        tracing::info!(target: "vault", "{line}");
    } else {
        eprintln!("{line}");
    }
}

/// The error a command ends with.
pub fn error(e: &str) {
    let e = vault::secrets::scrub(e);
    if json_logs() {
        tracing::error!(target: "vault", "{e}");
    } else {
        eprintln!("vault: error: {e}");
    }
}

/// Prints a command's typed report as one line of JSON, with any secret
/// blanked out (a warning may quote a broker's message).
pub fn print_json(report: &impl serde::Serialize) {
    let json = serde_json::to_string(report).expect("reports serialize");
    println!("{}", vault::secrets::scrub(&json));
}

/// RFC 3339 UTC, second precision.
pub fn format_time(ms: u64) -> String {
    vault::time::format_rfc3339(i64::try_from(ms).unwrap_or(i64::MAX))
}

pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the async runtime", "", e))
}

/// A progress bar over `total` records, on a terminal only.
pub fn progress_bar(total: u64, enabled: bool) -> Option<indicatif::ProgressBar> {
    if !enabled || !std::io::stderr().is_terminal() {
        return None;
    }
    let pb = indicatif::ProgressBar::new(total);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {elapsed_precise} [{wide_bar}] {human_pos}/{human_len} records, {msg}, ETA {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    Some(pb)
}

/// A spinner with a message, for work whose total is not known up front
/// (gc, check). Only on a terminal.
pub fn spinner(enabled: bool) -> Option<indicatif::ProgressBar> {
    if !enabled || !std::io::stderr().is_terminal() {
        return None;
    }
    let pb = indicatif::ProgressBar::new_spinner();
    pb.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
            .expect("valid template"),
    );
    pb.enable_steady_tick(std::time::Duration::from_millis(200));
    Some(pb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times_and_sizes() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(1_795_322_322_818), "2026-11-22T04:38:42Z");
        assert_eq!(format_time(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
    }
}

/// A distributed snapshot in progress, as `vault status` and
/// `vault snapshots --in-progress` report it.
#[derive(Serialize)]
pub struct RunStatus {
    /// The run's name (`--workers NAME`).
    pub run: String,
    pub started: String,
    pub started_ms: u64,
    /// Who took the cut.
    pub planned_by: String,
    pub topics: Vec<String>,
    pub partitions: usize,
    pub partitions_done: usize,
    /// Workers that have finished partitions (`host/pid`).
    pub workers: Vec<String>,
    /// Read so far by the finished partitions, and the rate since the cut.
    pub records_read: u64,
    pub bytes_read: u64,
    pub bytes_added: u64,
    pub bytes_per_second: f64,
}

impl RunStatus {
    pub fn of(p: &PlanInProgress) -> RunStatus {
        let t = &p.plan.template;
        let bytes_read: u64 = p.parts.values().map(|x| x.bytes_read).sum();
        let elapsed_s = vault::now_ms().saturating_sub(p.plan.created_ms) as f64 / 1000.0;
        let workers: BTreeSet<String> = p.parts.values().map(|x| x.worker.clone()).collect();
        RunStatus {
            run: p.plan.name.clone(),
            started: format_time(p.plan.created_ms),
            started_ms: p.plan.created_ms,
            planned_by: t.hostname.clone(),
            topics: t.topics.iter().map(|t| t.name.clone()).collect(),
            partitions: p.total_partitions(),
            partitions_done: p.parts.len(),
            workers: workers.into_iter().collect(),
            records_read: p.parts.values().map(|x| x.records_read).sum(),
            bytes_read,
            bytes_added: p.parts.values().map(|x| x.bytes_added).sum(),
            bytes_per_second: if elapsed_s > 0.0 {
                bytes_read as f64 / elapsed_s
            } else {
                0.0
            },
        }
    }
}
