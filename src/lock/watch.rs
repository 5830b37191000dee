//! Judging other processes' locks on this process's own clock: a lock
//! object is stale only once this process has watched it unchanged for
//! longer than the stale period.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::storage::{Dir, ObjectName, Storage};

use super::info::{Holder, LockInfo, LockKind, LockTimes, decode};

/// What one process has seen of the other locks: each lock object's name
/// and when this process first saw it. Staleness is judged from this alone.
#[derive(Clone, Debug)]
pub struct LockWatch {
    pub(super) me: Holder,
    times: LockTimes,
    first_seen: HashMap<String, Instant>,
}

/// A lock that conflicts with the one wanted.
#[derive(Clone, Debug)]
pub(crate) struct Conflict {
    pub info: LockInfo,
    /// How long this process has watched it unchanged.
    pub watched: Duration,
}

impl LockWatch {
    pub fn new(times: LockTimes) -> LockWatch {
        LockWatch {
            me: Holder::this_process(),
            times,
            first_seen: HashMap::new(),
        }
    }

    pub(crate) fn times(&self) -> LockTimes {
        self.times
    }

    /// The locks other than the one with `own_id` that conflict with
    /// `kind`; stale ones are removed. Also says whether the own lock was
    /// listed. A lock that vanishes between listing and reading it was
    /// being refreshed (a new one was written first): the list is taken
    /// again, so a refresh never hides a holder.
    pub(crate) fn conflicts(
        &mut self,
        storage: &dyn Storage,
        own_id: &str,
        kind: LockKind,
    ) -> Result<Sighting> {
        'list: for _ in 0..20 {
            let listed = storage.list(Dir::Locks)?;
            // After the listing: a slow listing must not count as watching.
            let now = Instant::now();
            // Forget what is gone, so a name is never judged on an old sighting.
            self.first_seen
                .retain(|n, _| listed.iter().any(|l| &l.name == n));
            let mut sighting = Sighting::default();
            for l in &listed {
                let name = ObjectName::new(Dir::Locks, &l.name);
                let bytes = match storage.get(&name) {
                    Ok(b) => b,
                    Err(Error::NotFound(_)) => continue 'list,
                    Err(e) => return Err(e),
                };
                let first = *self.first_seen.entry(l.name.clone()).or_insert(now);
                // A lock this version cannot read (a newer vault's, or a
                // damaged one) still counts, as the strictest kind: it is
                // judged stale only by watching, like any foreign lock.
                let info = decode(&bytes).unwrap_or_else(|| LockInfo {
                    kind: LockKind::Exclusive,
                    command: format!("unknown (unreadable lock {})", l.name),
                    holder: Holder {
                        host: "unknown".into(),
                        boot_id: String::new(),
                        pid_namespace: String::new(),
                        pid: 0,
                    },
                    lock_id: String::new(),
                    refresh: 0,
                    time_ms: 0,
                });
                if info.lock_id == own_id {
                    sighting.own_listed = true;
                    continue;
                }
                let watched = now.saturating_duration_since(first);
                if info.holder.is_dead_here(&self.me) || watched > self.times.stale_after {
                    let _ = storage.delete(&name);
                    continue;
                }
                if kind == LockKind::Exclusive || info.kind == LockKind::Exclusive {
                    sighting.conflicts.push(Conflict { info, watched });
                }
            }
            return Ok(sighting);
        }
        Err(Error::Locked(
            "the vault's locks kept changing while they were read; try again".into(),
        ))
    }
}

/// What one look at the locks found.
#[derive(Clone, Debug, Default)]
pub(crate) struct Sighting {
    pub conflicts: Vec<Conflict>,
    /// The looker's own lock was among them.
    pub own_listed: bool,
}
