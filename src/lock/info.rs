//! What a lock object says: its kind, its holder and its refresh count,
//! and how it is encoded and written.

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::host::Holder;

use crate::error::Result;
use crate::host::random_bytes;
use crate::storage::{Dir, ObjectName, Storage};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LockKind {
    Shared,
    Exclusive,
}

/// How often a holder refreshes, and how long an unrefreshed lock must be
/// watched before it is stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockTimes {
    pub refresh: Duration,
    pub stale_after: Duration,
}

impl Default for LockTimes {
    fn default() -> Self {
        LockTimes::for_tests().unwrap_or(LockTimes {
            refresh: Duration::from_secs(60),
            stale_after: Duration::from_secs(10 * 60),
        })
    }
}

impl LockTimes {
    /// The chaos campaign's short lock times, so a frozen process's lock
    /// goes stale within seconds: `KVAULT_LOCK_TIMES=REFRESH_MS,STALE_MS`.
    /// Debug builds only (like `KVAULT_CRASH_AT`); a release binary
    /// ignores the variable.
    #[cfg(debug_assertions)]
    fn for_tests() -> Option<LockTimes> {
        let v = std::env::var("KVAULT_LOCK_TIMES").ok()?;
        let (refresh, stale) = v.split_once(',')?;
        Some(LockTimes {
            refresh: Duration::from_millis(refresh.trim().parse().ok()?),
            stale_after: Duration::from_millis(stale.trim().parse().ok()?),
        })
    }

    #[cfg(not(debug_assertions))]
    fn for_tests() -> Option<LockTimes> {
        None
    }
}

/// How long a command waits for a conflicting lock unless told otherwise:
/// longer than it takes to see a dead foreign holder's lock go stale.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(15 * 60);

impl LockTimes {
    /// A holder that has not refreshed for this long stops: before anyone
    /// may have watched its lock unrefreshed for the whole stale period.
    pub fn give_up_after(&self) -> Duration {
        self.stale_after / 2
    }

    /// How soon a failed refresh is tried again.
    pub(super) fn retry(&self) -> Duration {
        (self.refresh / 12).max(Duration::from_millis(10))
    }
}

/// The body of a lock object (docs/format.md § Locks).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LockInfo {
    pub kind: LockKind,
    pub command: String,
    #[serde(flatten)]
    pub holder: Holder,
    /// Same for every refresh of one lock.
    #[serde(default)]
    pub lock_id: String,
    /// Counts the holder's refreshes.
    #[serde(default)]
    pub refresh: u64,
    /// The writer's clock when written; shown to people, never compared.
    pub time_ms: u64,
}

impl LockInfo {
    pub(super) fn describe(&self) -> String {
        format!(
            "{} lock of `vault {}` (pid {} on {}, written at {} by that host's clock, refresh {})",
            match self.kind {
                LockKind::Shared => "a shared",
                LockKind::Exclusive => "an exclusive",
            },
            self.command,
            self.holder.pid,
            self.holder.host,
            crate::time::format_rfc3339(crate::time::signed_ms(self.time_ms)),
            self.refresh
        )
    }
}

/// `KVLT`, kind 6 (lock), version 1; then the JSON body. Locks are not
/// encrypted: they must be readable to judge staleness and hold no secret.
const LOCK_HEADER: [u8; 6] = [b'K', b'V', b'L', b'T', 6, 1];

pub fn encode(info: &LockInfo) -> Vec<u8> {
    let mut out = LOCK_HEADER.to_vec();
    out.extend_from_slice(&serde_json::to_vec(info).expect("lock serializes"));
    out
}

pub(crate) fn decode(bytes: &[u8]) -> Option<LockInfo> {
    serde_json::from_slice(bytes.strip_prefix(&LOCK_HEADER[..])?).ok()
}

fn kind_name(kind: LockKind) -> &'static str {
    match kind {
        LockKind::Shared => "shared",
        LockKind::Exclusive => "exclusive",
    }
}

pub(super) fn write_lock(storage: &dyn Storage, info: &LockInfo) -> Result<ObjectName> {
    let name = ObjectName::new(
        Dir::Locks,
        format!(
            "{}-{}",
            kind_name(info.kind),
            vault_format::id::hex_encode(&random_bytes::<8>())
        ),
    );
    if let Err(e) = storage.put_if_absent(&name, &encode(info)) {
        // The write may have landed with only its reply lost: left there,
        // the lock would hold the vault until someone watched it go stale
        // (ten minutes, from another host). Nobody else knows the name.
        let _ = storage.delete(&name);
        return Err(e);
    }
    Ok(name)
}
