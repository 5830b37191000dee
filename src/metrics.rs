//! Prometheus metrics of snapshots, in the text exposition format: written
//! to a file after each snapshot (the node_exporter textfile collector
//! convention for batch jobs: write a temporary file, then rename it over
//! the old one) and, in continuous mode, served on `/metrics`.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};

/// What the snapshots of this process did so far.
#[derive(Clone, Debug, Default)]
pub struct SnapshotMetrics {
    pub snapshots: u64,
    pub records_read: u64,
    pub bytes_read: u64,
    /// Bytes written to packs (compressed, encrypted).
    pub bytes_stored: u64,
    pub last_duration_s: f64,
    /// Unix time of the last committed snapshot.
    pub last_success_s: f64,
    /// The recovery point of the last snapshot: from the previous cut
    /// (the oldest append it can hold) to its commit.
    pub last_rpo_s: f64,
    pub gc_runs: u64,
    pub gc_freed_bytes: u64,
    /// Intervals whose gc was skipped because another command held the vault.
    pub gc_skipped: u64,
    pub errors: u64,
}

impl SnapshotMetrics {
    /// Reads back what [`Self::render`] wrote (other lines are ignored).
    pub fn parse(text: &str) -> SnapshotMetrics {
        let mut m = SnapshotMetrics::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((name, value)) = line.split_once(' ') else {
                continue;
            };
            let Ok(v) = value.trim().parse::<f64>() else {
                continue;
            };
            // Counters are whole numbers this file wrote.
            let n = value.trim().parse::<u64>().unwrap_or(0);
            match name {
                "vault_snapshots_total" => m.snapshots = n,
                "vault_snapshot_records_read_total" => m.records_read = n,
                "vault_snapshot_bytes_read_total" => m.bytes_read = n,
                "vault_snapshot_bytes_stored_total" => m.bytes_stored = n,
                "vault_snapshot_duration_seconds" => m.last_duration_s = v,
                "vault_snapshot_last_success_timestamp_seconds" => m.last_success_s = v,
                "vault_snapshot_rpo_seconds" => m.last_rpo_s = v,
                "vault_gc_runs_total" => m.gc_runs = n,
                "vault_gc_freed_bytes_total" => m.gc_freed_bytes = n,
                "vault_gc_skipped_total" => m.gc_skipped = n,
                "vault_errors_total" => m.errors = n,
                _ => {}
            }
        }
        m
    }

    /// The text exposition format, version 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            ));
        };
        metric(
            "vault_snapshots_total",
            "counter",
            "Snapshots committed by this process.",
            self.snapshots.to_string(),
        );
        metric(
            "vault_snapshot_records_read_total",
            "counter",
            "Records read from Kafka.",
            self.records_read.to_string(),
        );
        metric(
            "vault_snapshot_bytes_read_total",
            "counter",
            "Key, value and header bytes read from Kafka.",
            self.bytes_read.to_string(),
        );
        metric(
            "vault_snapshot_bytes_stored_total",
            "counter",
            "Bytes written to the vault's packs (compressed, encrypted).",
            self.bytes_stored.to_string(),
        );
        metric(
            "vault_snapshot_duration_seconds",
            "gauge",
            "Duration of the last snapshot.",
            format!("{:.3}", self.last_duration_s),
        );
        metric(
            "vault_snapshot_last_success_timestamp_seconds",
            "gauge",
            "Unix time the last snapshot was committed.",
            format!("{:.3}", self.last_success_s),
        );
        metric(
            "vault_snapshot_rpo_seconds",
            "gauge",
            "Recovery point of the last snapshot: from the previous cut to this commit.",
            format!("{:.3}", self.last_rpo_s),
        );
        metric(
            "vault_gc_runs_total",
            "counter",
            "gc runs of this process.",
            self.gc_runs.to_string(),
        );
        metric(
            "vault_gc_freed_bytes_total",
            "counter",
            "Bytes gc freed in the vault.",
            self.gc_freed_bytes.to_string(),
        );
        metric(
            "vault_gc_skipped_total",
            "counter",
            "Intervals whose gc was skipped because another command held the vault (alert if it keeps rising).",
            self.gc_skipped.to_string(),
        );
        metric(
            "vault_errors_total",
            "counter",
            "Snapshots or gc runs that failed.",
            self.errors.to_string(),
        );
        out
    }
}

/// Writes `text` to `path` atomically: a reader (the textfile collector)
/// never sees half a file.
pub fn write_file(path: &Path, text: &str) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp: PathBuf = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io("writing the metrics file", path, e)
    })
}

/// Serves the latest text on `GET /metrics` at `addr`, in a thread of its
/// own, for as long as the process runs. Returns the address it listens on.
pub fn serve(addr: &str, text: Arc<Mutex<String>>) -> Result<std::net::SocketAddr> {
    let listener = TcpListener::bind(addr)
        .map_err(|e| Error::Usage(format!("--metrics-addr {addr}: cannot listen there ({e})")))?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::io("serving metrics", addr, e))?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for conn in listener.incoming().flatten() {
                // A client that connects and says nothing must not keep
                // /metrics from everyone else.
                let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(5)));
                let _ = conn.set_write_timeout(Some(std::time::Duration::from_secs(5)));
                let mut request = String::new();
                let mut reader = BufReader::new(&conn);
                if reader.read_line(&mut request).is_err() {
                    continue;
                }
                // The rest of the request head, up to the empty line.
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let mut conn = &conn;
                let response = if request.starts_with("GET /metrics ") {
                    let body = text.lock().expect("metrics text").clone();
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else {
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
                };
                let _ = conn.write_all(response.as_bytes());
            }
        })
        .map_err(|e| Error::io("starting the metrics server", addr, e))?;
    Ok(local)
}
