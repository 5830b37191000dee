//! `vault snapshot --every DURATION`: continuous backup. One process takes
//! a snapshot each interval with its vault, index cache and settings kept
//! warm, runs gc on the `--keep-*` rules after each, reports each
//! snapshot's recovery point, and writes (or serves) Prometheus metrics.
//! SIGTERM or Ctrl-C between snapshots, or while waiting for the vault
//! lock, exits 0 at once; during a snapshot, the snapshot finishes first,
//! and a second signal stops at once (nothing half done is ever committed:
//! the manifest is written last). gc runs only when the vault is free at
//! that moment: an interval whose gc would have to wait skips it.
//!
//! The keep rules prune only this process's own group (its source and
//! selection, and no snapshot with a tag it does not set itself) unless
//! `--prune-groups all` says otherwise; see `vault::gc::rules`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use vault::catalog::GroupKey;
use vault::gc::{GcOptions, GcPlan, KeepPolicy};
use vault::kafka::KafkaOptions;
use vault::lock::{LockKind, LockTimes, LockWatch, VaultLock};
use vault::metrics::SnapshotMetrics;
use vault::snapshot::{
    CUT_MAX_AGE, HorizonOverride, KafkaSource, SnapshotOutcome, SnapshotRequest,
};
use vault::time::parse_duration;
use vault::{Error, Result};

use super::args::SnapshotArgs;
use crate::cli::output::{print_json, warn};

/// One line of `vault snapshot --every --json`.
#[derive(Serialize)]
struct IntervalReport {
    id: String,
    time_ms: u64,
    /// When the manifest was written.
    committed_ms: u64,
    records_read: u64,
    bytes_read: u64,
    bytes_added: u64,
    duration_ms: u64,
    /// The recovery point: from the previous cut (the oldest append this
    /// snapshot can hold) to this commit. The first snapshot of the process
    /// counts from its own cut.
    rpo_ms: u64,
    gc_forgotten: usize,
    gc_bytes_freed: i64,
    /// Another command held the vault, so this interval ran no gc.
    gc_skipped: bool,
    warnings: Vec<String>,
}

pub(super) fn run(
    a: &SnapshotArgs,
    every: &str,
    kafka: &KafkaOptions,
    request: &SnapshotRequest,
    data_horizon: HorizonOverride,
) -> Result<()> {
    let interval = Duration::from_millis(parse_duration(every)?);
    if interval < Duration::from_secs(1) {
        return Err(Error::Usage(format!(
            "--every {every}: the interval must be at least 1s"
        )));
    }
    // The rules are checked now, so a typo or an ambiguous combination
    // fails before the first snapshot; the scope is each snapshot's group.
    a.keep.policy(GroupKey::default(), &a.tags)?;
    let rt = crate::cli::output::runtime()?;

    // Signals: the first asks to stop after the current snapshot, the
    // second stops at once.
    let signals = Arc::new(AtomicU32::new(0));
    let (wake, woken) = channel::<()>();
    {
        let signals = Arc::clone(&signals);
        rt.spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                return;
            };
            loop {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                if signals.fetch_add(1, Ordering::SeqCst) >= 1 {
                    crate::cli::output::info(
                        "vault: stopping at once; the snapshot in progress commits nothing",
                    );
                    std::process::exit(130);
                }
                let _ = wake.send(());
            }
        });
    }

    let metrics = Arc::new(Mutex::new(SnapshotMetrics::default()));
    let served = Arc::new(Mutex::new(SnapshotMetrics::default().render()));
    if let Some(addr) = &a.metrics_addr {
        let local = vault::metrics::serve(addr, Arc::clone(&served))?;
        crate::cli::output::info(&format!("vault: metrics on http://{local}/metrics"));
    }
    let repo = a.vault.unlock()?.index(&a.vault.cache_dir())?;
    let lock_wait = Duration::from_secs(a.vault.lock_wait);
    // Kept across intervals, so a dead process's lock goes stale even
    // though each interval's gc looks only once.
    let mut watch = LockWatch::new(LockTimes::default());
    let stopping = || signals.load(Ordering::SeqCst) > 0;
    let mut next = Instant::now();
    loop {
        let started = Instant::now();
        let result = snapshot_once(
            a,
            &repo,
            kafka,
            request,
            data_horizon,
            (lock_wait, &mut watch, &stopping),
            &rt,
        );
        let mut m = metrics.lock().expect("metrics");
        match result {
            Ok(None) => {
                crate::cli::output::info(
                    "vault: stopped by a signal while waiting for the vault lock; no snapshot was started",
                );
                // The cut read meanwhile is not waited for.
                rt.shutdown_background();
                return Ok(());
            }
            Ok(Some((out, previous_cut))) => {
                let committed_ms = vault::now_ms();
                let rpo_ms =
                    committed_ms.saturating_sub(previous_cut.unwrap_or(out.manifest.time_ms));
                // gc only after a committed snapshot, and not once asked to
                // stop: waiting for the exclusive lock could outlast the
                // grace period before SIGKILL. A failed gc costs nothing of
                // the snapshot, which is reported either way.
                let (mut gc_forgotten, mut gc_freed, mut gc_skipped) = (0, 0, false);
                let group = vault::catalog::GroupBy::SourceAndSelection.key(&out.manifest);
                if let Some(policy) = a.keep.policy(group, &a.tags)?
                    && !stopping()
                {
                    match gc_once(&repo, &policy, &mut watch) {
                        Ok(None) => {
                            gc_skipped = true;
                            m.gc_skipped += 1;
                        }
                        Ok(Some((f, b))) => {
                            (gc_forgotten, gc_freed) = (f, b);
                            m.gc_runs += 1;
                            m.gc_freed_bytes += b.max(0).cast_unsigned();
                        }
                        Err(e) => {
                            m.errors += 1;
                            warn(&format!(
                                "gc after this snapshot failed, the next interval tries again: {e}"
                            ));
                        }
                    }
                }
                m.snapshots += 1;
                m.records_read += out.records_read;
                m.bytes_read += out.bytes_read;
                m.bytes_stored += out.bytes_added;
                m.last_duration_s = started.elapsed().as_secs_f64();
                m.last_success_s = committed_ms as f64 / 1000.0;
                m.last_rpo_s = rpo_ms as f64 / 1000.0;
                for w in &out.warnings {
                    warn(w);
                }
                if a.json {
                    print_json(&IntervalReport {
                        id: out.id.to_hex(),
                        time_ms: out.manifest.time_ms,
                        committed_ms,
                        records_read: out.records_read,
                        bytes_read: out.bytes_read,
                        bytes_added: out.bytes_added,
                        duration_ms: u64::try_from(out.duration.as_millis()).unwrap_or(u64::MAX),
                        rpo_ms,
                        gc_forgotten,
                        gc_bytes_freed: gc_freed,
                        gc_skipped,
                        warnings: out.warnings.clone(),
                    });
                } else {
                    crate::cli::output::info(&format!(
                        "snapshot {} committed: {} records read, recovery point {:.1} s{}",
                        &out.id.to_hex()[..16],
                        out.records_read,
                        rpo_ms as f64 / 1000.0,
                        if gc_forgotten > 0 {
                            format!(", gc forgot {gc_forgotten} snapshots")
                        } else {
                            String::new()
                        }
                    ));
                }
            }
            // Bad options or a vault vault cannot use will not heal by waiting.
            Err(e @ (Error::Usage(_) | Error::Damaged(_))) => {
                rt.shutdown_background();
                return Err(e);
            }
            // A cluster or store away for a while: the next interval tries again.
            Err(e) => {
                m.errors += 1;
                warn(&format!(
                    "this interval's snapshot failed, the next one tries again: {e}"
                ));
            }
        }
        let text = m.render();
        drop(m);
        *served.lock().expect("metrics text") = text.clone();
        if let Some(path) = &a.metrics_file
            && let Err(e) = vault::metrics::write_file(path, &text)
        {
            warn(&e.to_string());
        }
        if signals.load(Ordering::SeqCst) > 0 {
            crate::cli::output::info("vault: stopped by a signal between snapshots");
            return Ok(());
        }
        next += interval;
        let now = Instant::now();
        if next < now {
            // The snapshot took longer than the interval: start the next now.
            next = now;
        }
        match woken.recv_timeout(next - now) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                crate::cli::output::info("vault: stopped by a signal between snapshots");
                return Ok(());
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}

/// One interval's snapshot, under a shared lock. Returns it with the cut
/// of the newest earlier snapshot of the same source and selection (taken
/// by this process or an earlier one), which its recovery point counts from.
/// `None`: a signal came while it waited for the lock.
#[allow(clippy::type_complexity)]
fn snapshot_once(
    a: &SnapshotArgs,
    repo: &vault::Repository<vault::repository::Indexed>,
    kafka: &KafkaOptions,
    request: &SnapshotRequest,
    data_horizon: HorizonOverride,
    (lock_wait, watch, stopping): (Duration, &mut LockWatch, &dyn Fn() -> bool),
    rt: &tokio::runtime::Runtime,
) -> Result<Option<(SnapshotOutcome, Option<u64>)>> {
    // The cut is read while the lock is taken; a long wait for it (behind
    // a gc) or a snapshot committed meanwhile has it read again.
    let prepared = vault::snapshot::prepare(
        rt,
        kafka,
        request,
        repo.storage().as_ref(),
        CUT_MAX_AGE,
        || {
            let Some(lock) = VaultLock::acquire_watching(
                Arc::clone(repo.storage()),
                LockKind::Shared,
                "snapshot --every",
                lock_wait,
                watch,
                stopping,
            )?
            else {
                return Ok(None);
            };
            // What other processes (a gc, another snapshot) changed since.
            repo.sync_index()?;
            Ok(Some(lock))
        },
    )?;
    let Some((lock, mut cut)) = prepared else {
        return Ok(None);
    };
    let plan = cut.plan(repo)?;
    let previous_cut = vault::catalog::list(repo)?
        .iter()
        .filter(|e| e.manifest.source == plan.source && e.manifest.selection == plan.selection)
        .map(|e| e.manifest.time_ms)
        .max();
    let mut source = KafkaSource::new(kafka, plan.read_committed)?;
    let opts = a.snapshot_options(data_horizon.resolve(repo.config()), None);
    let out = vault::snapshot::execute(repo, &plan, &opts, &lock, &mut source)?;
    Ok(Some((out, previous_cut)))
}

/// gc on the keep rules, under the exclusive lock. Returns the snapshots
/// forgotten and the bytes freed, or `None` when another command holds
/// the vault: this interval's gc is skipped rather than waited for, so a
/// long restore or check neither delays the next snapshot nor a SIGTERM.
fn gc_once(
    repo: &vault::Repository<vault::repository::Indexed>,
    policy: &KeepPolicy,
    watch: &mut LockWatch,
) -> Result<Option<(usize, i64)>> {
    let lock = match VaultLock::acquire_watching(
        Arc::clone(repo.storage()),
        LockKind::Exclusive,
        "gc (snapshot --every)",
        Duration::ZERO,
        watch,
        &|| false,
    ) {
        Ok(l) => l.expect("never cancelled"),
        Err(Error::Locked(why)) => {
            crate::cli::output::info(&format!(
                "vault: gc skipped this interval, the next one tries again: {}",
                why.split(';').next().unwrap_or(&why)
            ));
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    repo.sync_index()?;
    let opts = GcOptions {
        now_ms: vault::now_ms(),
        ..GcOptions::default()
    };
    let plan = GcPlan::make(repo, policy, &opts, Some(&lock), None)?;
    let forgotten = plan.forget.len();
    let gc = vault::gc::execute(repo, &plan, &lock)?;
    Ok(Some((forgotten, gc.bytes_freed)))
}
