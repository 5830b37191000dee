//! Vault locks: `vault gc` takes an exclusive lock; snapshot, restore,
//! check and forget take shared ones. A lock is a small object in `locks/`
//! naming its kind, host, process and time. Taking one writes it first and
//! then looks for conflicting ones; on conflict it withdraws and retries,
//! so two processes racing for the vault never both proceed.
//!
//! Staleness: a holder rewrites its lock every [`REFRESH`]; a lock older
//! than [`STALE_AFTER`], or one from this host whose process is gone (a
//! kill -9), is ignored and removed. See docs/design.md § Locks.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::repository::{now_ms, random_bytes};
use crate::storage::{Kind, ObjectName, Storage};

pub const REFRESH: Duration = Duration::from_secs(60);
pub const STALE_AFTER: Duration = Duration::from_secs(10 * 60);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LockKind {
    Shared,
    Exclusive,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct LockInfo {
    kind: LockKind,
    command: String,
    host: String,
    pid: u32,
    time_ms: u64,
}

impl LockInfo {
    fn is_stale(&self, now: u64) -> bool {
        if now.saturating_sub(self.time_ms) > STALE_AFTER.as_millis() as u64 {
            return true;
        }
        self.host == crate::hostname()
            && !std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
    }

    fn describe(&self) -> String {
        format!(
            "{} lock of `vault {}` (pid {} on {}, {} s old)",
            match self.kind {
                LockKind::Shared => "a shared",
                LockKind::Exclusive => "an exclusive",
            },
            self.command,
            self.pid,
            self.host,
            now_ms().saturating_sub(self.time_ms) / 1000
        )
    }
}

/// A held lock; dropping it releases the lock.
pub struct VaultLock {
    storage: Arc<dyn Storage>,
    name: Arc<Mutex<ObjectName>>,
    stop: Arc<AtomicBool>,
    refresher: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for VaultLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VaultLock({})", self.name.lock().unwrap())
    }
}

/// `KVLT`, kind 6 (lock), format version 1; then the JSON body
/// (docs/format.md § Locks). Locks are not encrypted: they name a command,
/// a host and a pid, and must be readable to judge staleness.
const LOCK_HEADER: [u8; 6] = [b'K', b'V', b'L', b'T', 6, 1];

fn encode(info: &LockInfo) -> Vec<u8> {
    let mut out = LOCK_HEADER.to_vec();
    out.extend_from_slice(&serde_json::to_vec(info).expect("lock serializes"));
    out
}

fn decode(bytes: &[u8]) -> Option<LockInfo> {
    serde_json::from_slice(bytes.strip_prefix(&LOCK_HEADER[..])?).ok()
}

fn write_lock(storage: &dyn Storage, info: &LockInfo) -> Result<ObjectName> {
    let kind = match info.kind {
        LockKind::Shared => "shared",
        LockKind::Exclusive => "exclusive",
    };
    let name = ObjectName::new(Kind::Locks, format!("{kind}-{}", hex(&random_bytes::<8>())));
    storage.put_if_absent(&name, &encode(info))?;
    Ok(name)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The locks held by others that conflict with `kind`; stale ones are removed.
fn conflicts(storage: &dyn Storage, own: &ObjectName, kind: LockKind) -> Result<Vec<LockInfo>> {
    let now = now_ms();
    let mut out = Vec::new();
    for l in storage.list(Kind::Locks)? {
        let name = ObjectName::new(Kind::Locks, &l.name);
        if &name == own {
            continue;
        }
        let Ok(bytes) = storage.get(&name) else {
            continue; // released meanwhile
        };
        let Some(info) = decode(&bytes) else {
            continue; // not a lock this version understands
        };
        if info.is_stale(now) {
            let _ = storage.delete(&name);
            continue;
        }
        if kind == LockKind::Exclusive || info.kind == LockKind::Exclusive {
            out.push(info);
        }
    }
    Ok(out)
}

impl VaultLock {
    /// Takes a lock, waiting up to `wait` for conflicting ones to go.
    pub fn acquire(
        storage: Arc<dyn Storage>,
        kind: LockKind,
        command: &str,
        wait: Duration,
    ) -> Result<VaultLock> {
        let deadline = Instant::now() + wait;
        let mut announced = false;
        loop {
            let info = LockInfo {
                kind,
                command: command.to_string(),
                host: crate::hostname(),
                pid: std::process::id(),
                time_ms: now_ms(),
            };
            let name = write_lock(storage.as_ref(), &info)?;
            let found = conflicts(storage.as_ref(), &name, kind)?;
            if found.is_empty() {
                return Ok(VaultLock::hold(storage, name, info));
            }
            storage.delete(&name)?;
            if Instant::now() >= deadline {
                return Err(Error::Locked(format!(
                    "the vault is locked by {}; wait for it to finish (or pass a longer --lock-wait). \
                     A lock whose process died on this host is removed automatically; one from another host \
                     expires {} minutes after its last refresh",
                    found[0].describe(),
                    STALE_AFTER.as_secs() / 60
                )));
            }
            if !announced {
                eprintln!("vault: waiting for {}", found[0].describe());
                announced = true;
            }
            // Jitter keeps two racing processes from backing off in step.
            let jitter = u64::from(random_bytes::<1>()[0]) * 4;
            std::thread::sleep(Duration::from_millis(250 + jitter));
        }
    }

    fn hold(storage: Arc<dyn Storage>, name: ObjectName, info: LockInfo) -> VaultLock {
        let name = Arc::new(Mutex::new(name));
        let stop = Arc::new(AtomicBool::new(false));
        let refresher = {
            let (storage, name, stop) =
                (Arc::clone(&storage), Arc::clone(&name), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut last = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(200));
                    if last.elapsed() < REFRESH {
                        continue;
                    }
                    last = Instant::now();
                    let fresh = LockInfo {
                        time_ms: now_ms(),
                        ..info.clone()
                    };
                    // New lock first, then the old one goes: never unlocked in between.
                    if let Ok(new) = write_lock(storage.as_ref(), &fresh) {
                        let mut cur = name.lock().unwrap();
                        let _ = storage.delete(&cur);
                        *cur = new;
                    }
                }
            })
        };
        VaultLock {
            storage,
            name,
            stop,
            refresher: Some(refresher),
        }
    }
}

impl Drop for VaultLock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.refresher.take() {
            let _ = t.join();
        }
        let _ = self.storage.delete(&self.name.lock().unwrap());
    }
}
