//! Vault locks: `vault gc` takes an exclusive lock; snapshot, restore,
//! check and forget take shared ones. A lock is a small object in `locks/`
//! naming its kind, holder and refresh count. Taking one writes it first
//! and then looks for conflicting ones; on conflict it withdraws and
//! retries, so two processes racing for the vault never both proceed.
//!
//! No clock but the reader's own is trusted (docs/design.md § Locks):
//!
//! * A holder rewrites its lock under a new name every refresh period, so
//!   a lock object that stays in place is one nobody refreshes. A reader
//!   calls a lock stale only when it has itself watched that object for
//!   longer than the stale period, on its own monotonic clock. The time
//!   in the lock is the writer's clock and is only shown to people.
//! * The holder's process is checked only when host, boot id and pid
//!   namespace all match the reader's: then a missing pid is a dead holder.
//! * A holder that has not refreshed for half the stale period, or whose
//!   lock was removed, has lost it for good: [`VaultLock::check`] fails from
//!   then on, and commands check before anything they commit or delete.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::host::random_bytes;
use crate::now_ms;
use crate::storage::{ObjectName, Storage};

mod boot_clock;
mod dead_uploads;
mod info;
mod watch;

use boot_clock::BootInstant;

pub use dead_uploads::abort_dead_uploads;
use info::write_lock;
pub use info::{DEFAULT_WAIT, Holder, LockInfo, LockKind, LockTimes, encode};
pub(crate) use watch::Conflict;
pub use watch::LockWatch;

struct Held {
    name: ObjectName,
    info: LockInfo,
    /// When the lock object now listed began to be written, on a clock
    /// that counts a suspend (see [`boot_clock`]).
    last_refresh: BootInstant,
}

/// A held lock; dropping it releases the lock.
pub struct VaultLock {
    storage: Arc<dyn Storage>,
    held: Arc<Mutex<Held>>,
    lost: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    times: LockTimes,
    watch: Mutex<LockWatch>,
    refresher: Option<std::thread::JoinHandle<()>>,
    /// Dropped to wake the refresher at once when the lock is released,
    /// instead of letting the command wait out its tick (up to 200 ms).
    wake: Option<std::sync::mpsc::Sender<()>>,
}

impl std::fmt::Debug for VaultLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VaultLock({})", self.held.lock().unwrap().name)
    }
}

impl VaultLock {
    /// Takes a lock, waiting up to `wait` for conflicting ones to go.
    pub fn acquire(
        storage: Arc<dyn Storage>,
        kind: LockKind,
        command: &str,
        wait: Duration,
    ) -> Result<VaultLock> {
        VaultLock::acquire_with(storage, kind, command, wait, LockTimes::default())
    }

    pub fn acquire_with(
        storage: Arc<dyn Storage>,
        kind: LockKind,
        command: &str,
        wait: Duration,
        times: LockTimes,
    ) -> Result<VaultLock> {
        let mut watch = LockWatch::new(times);
        let taken =
            VaultLock::acquire_watching(storage, kind, command, wait, &mut watch, &|| false)?;
        Ok(taken.expect("never cancelled"))
    }

    /// [`acquire_with`](Self::acquire_with) for a long-running process:
    /// `watch` is kept between calls, so a dead holder's lock that this
    /// process keeps meeting goes stale even when each call waits briefly;
    /// and the wait ends at once, with `None`, when `cancelled` says so
    /// (a signal).
    pub fn acquire_watching(
        storage: Arc<dyn Storage>,
        kind: LockKind,
        command: &str,
        wait: Duration,
        watch: &mut LockWatch,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Option<VaultLock>> {
        let times = watch.times();
        let deadline = Instant::now()
            .checked_add(wait)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(365 * 86_400));
        let mut announced = false;
        let lock_id = vault_format::id::hex_encode(&random_bytes::<8>());
        loop {
            // Before the write: the lock may be visible from any moment of it.
            let written_from = BootInstant::now();
            let info = LockInfo {
                kind,
                command: command.to_string(),
                holder: watch.me.clone(),
                lock_id: lock_id.clone(),
                refresh: 0,
                time_ms: now_ms(),
            };
            let name = write_lock(storage.as_ref(), &info)?;
            let seen = match watch.conflicts(storage.as_ref(), &lock_id, kind) {
                Ok(f) => f,
                Err(e) => {
                    let _ = storage.delete(&name);
                    return Err(e);
                }
            };
            // A listing that does not show the lock just written is not
            // current (an eventually consistent store): it proves nothing.
            let found = if seen.own_listed {
                seen.conflicts
            } else {
                vec![Conflict {
                    info: LockInfo {
                        command: "(this process: its own lock is not listed yet)".into(),
                        ..info.clone()
                    },
                    watched: Duration::ZERO,
                }]
            };
            if found.is_empty() {
                return Ok(Some(VaultLock::hold(
                    storage,
                    name,
                    info,
                    times,
                    watch.clone(),
                    written_from,
                )));
            }
            storage.delete(&name)?;
            if cancelled() {
                return Ok(None);
            }
            if Instant::now() >= deadline {
                let c = &found[0];
                return Err(Error::Locked(format!(
                    "the vault is locked by {}; wait for it to finish (or pass a longer --lock-wait). \
                     A lock whose process died on this machine is removed at once; any other is removed \
                     once this process has watched it go unrefreshed for {} minutes (this one: {} s so far)",
                    c.info.describe(),
                    times.stale_after.as_secs() / 60,
                    c.watched.as_secs()
                )));
            }
            if !announced {
                eprintln!("vault: waiting for {}", found[0].info.describe());
                announced = true;
            }
            // Jitter keeps two racing processes from backing off in step.
            let jitter = u64::from(random_bytes::<1>()[0]) * 4;
            let pause = Duration::from_millis(250 + jitter)
                .min(deadline.saturating_duration_since(Instant::now()));
            std::thread::sleep(pause);
            if cancelled() {
                return Ok(None);
            }
        }
    }

    fn hold(
        storage: Arc<dyn Storage>,
        name: ObjectName,
        info: LockInfo,
        times: LockTimes,
        watch: LockWatch,
        written_from: BootInstant,
    ) -> VaultLock {
        let held = Arc::new(Mutex::new(Held {
            name,
            info,
            last_refresh: written_from,
        }));
        let lost = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (wake, woken) = std::sync::mpsc::channel();
        let refresher = {
            let (storage, held, lost, stop) = (
                Arc::clone(&storage),
                Arc::clone(&held),
                Arc::clone(&lost),
                Arc::clone(&stop),
            );
            std::thread::spawn(move || {
                refresh_loop(storage.as_ref(), &held, &lost, &stop, &woken, times);
            })
        };
        VaultLock {
            storage,
            held,
            lost,
            stop,
            times,
            watch: Mutex::new(watch),
            refresher: Some(refresher),
            wake: Some(wake),
        }
    }

    /// Fails once the lock is lost: not refreshed for half the stale
    /// period, or removed by another process. Cheap; call it before every
    /// step that commits or deletes anything.
    pub fn check(&self) -> Result<()> {
        let since = self.held.lock().unwrap().last_refresh.elapsed();
        if since > self.times.give_up_after() {
            self.lost.store(true, Ordering::SeqCst);
        }
        if self.lost.load(Ordering::SeqCst) {
            return Err(Error::Locked(format!(
                "this process lost its vault lock (not refreshed for {} s, or removed by another process \
                 that judged it stale); it stopped before committing or deleting anything more. \
                 Check that the vault's storage is reachable, then run the command again",
                since.as_secs()
            )));
        }
        Ok(())
    }

    /// [`check`](Self::check), then the locks are listed again: the own
    /// lock must still be there and no conflicting one may have appeared.
    /// gc calls this immediately before each destructive step.
    pub fn recheck(&self) -> Result<()> {
        self.check()?;
        let (lock_id, kind) = {
            let h = self.held.lock().unwrap();
            (h.info.lock_id.clone(), h.info.kind)
        };
        let seen = self
            .watch
            .lock()
            .unwrap()
            .conflicts(self.storage.as_ref(), &lock_id, kind)?;
        // A refresh writes the new lock before the old one goes, so one of
        // them is always listed while the lock is held.
        if !seen.own_listed {
            self.lost.store(true, Ordering::SeqCst);
            return self.check();
        }
        if let Some(c) = seen.conflicts.first() {
            return Err(Error::Locked(format!(
                "{} appeared while this command held the vault; it stopped before deleting anything more. \
                 Run it again once that command has finished",
                c.info.describe()
            )));
        }
        self.check()
    }

    /// The lock object's current name (it changes at every refresh).
    pub fn name(&self) -> ObjectName {
        self.held.lock().unwrap().name.clone()
    }
}

fn refresh_loop(
    storage: &dyn Storage,
    held: &Mutex<Held>,
    lost: &AtomicBool,
    stop: &AtomicBool,
    woken: &std::sync::mpsc::Receiver<()>,
    times: LockTimes,
) {
    let tick = times.retry().min(Duration::from_millis(200));
    let mut next = Instant::now() + times.refresh;
    while !stop.load(Ordering::Relaxed) && !lost.load(Ordering::SeqCst) {
        // A tick, or less when the lock is being released.
        if let Err(std::sync::mpsc::RecvTimeoutError::Disconnected) = woken.recv_timeout(tick) {
            return;
        }
        if Instant::now() < next {
            continue;
        }
        let (old, mut info, last) = {
            let h = held.lock().unwrap();
            (h.name.clone(), h.info.clone(), h.last_refresh)
        };
        // Too late: a reader may already be entitled to call it stale.
        // Never resurrect a lock; the command stops at its next check.
        if last.elapsed() > times.give_up_after() {
            lost.store(true, Ordering::SeqCst);
            return;
        }
        // Removed by someone who judged it stale: lost for good.
        match storage.exists(&old) {
            Ok(false) => {
                lost.store(true, Ordering::SeqCst);
                return;
            }
            Ok(true) => {}
            Err(_) => {
                next = Instant::now() + times.retry();
                continue;
            }
        }
        info.refresh += 1;
        info.time_ms = now_ms();
        // New lock first, then the old one goes: never unlocked in between.
        let written_from = BootInstant::now();
        match write_lock(storage, &info) {
            // A write that returned too late proves nothing: while it hung,
            // a reader may have watched the old lock for the whole stale
            // period. The lock is lost; its new object goes too.
            Ok(new) if last.elapsed() > times.give_up_after() => {
                let _ = storage.delete(&new);
                lost.store(true, Ordering::SeqCst);
                return;
            }
            Ok(new) => {
                {
                    let mut h = held.lock().unwrap();
                    h.name = new;
                    h.info = info;
                    // The new object may be visible from the write's start.
                    h.last_refresh = written_from;
                }
                let _ = storage.delete(&old);
                next = Instant::now() + times.refresh;
            }
            Err(_) => next = Instant::now() + times.retry(),
        }
    }
}

impl Drop for VaultLock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        drop(self.wake.take());
        if let Some(t) = self.refresher.take() {
            let _ = t.join();
        }
        // A release that fails leaves the lock until it is seen to be
        // stale (ten minutes, from another host): a transient error is
        // worth a few more tries.
        // Within a few seconds: an object store's delete has its own
        // retries, and a command that is failing must not hang in them.
        let name = self.held.lock().unwrap().name.clone();
        let start = Instant::now();
        for attempt in 1..=3u32 {
            if self.storage.delete(&name).is_ok()
                || attempt == 3
                || start.elapsed() > Duration::from_secs(5)
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(100 * u64::from(attempt)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_wait_outlasts_a_dead_holders_lock() {
        let t = LockTimes::default();
        assert!(DEFAULT_WAIT > t.stale_after + 2 * t.refresh);
    }
}
