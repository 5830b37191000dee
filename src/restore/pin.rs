//! Restore pins (docs/design.md § Restore pins): a restore holds its
//! snapshot in the vault until it is done, so a rerun after a kill can
//! still resume it even when gc ran in between (an `--every --keep-last
//! 12` forgets an hour-old snapshot within the hour).
//!
//! A pin is written under the restore's vault lock before the restore's
//! first record, and removed once the restore is done or abandoned. gc
//! keeps every pinned snapshot. A pin nobody removes (the restore was
//! never run again) expires after [`PIN_LIFETIME`], by gc's clock, and gc
//! then removes it: it goes stale the way a lock does, only on the scale
//! of an operator's reaction time rather than a process's heartbeat.

use std::collections::BTreeMap;
use std::time::Duration;

use vault_format::ObjectId;
use vault_format::object::ObjectKind;
use vault_format::pin::RestorePin;

use super::RestorePlan;
use crate::error::{Error, FormatContext, Result};
use crate::kafka::KafkaOptions;
use crate::repository::{HoldsKeys, Indexed, Repository};
use crate::storage::{Dir, ObjectName};

/// How long a pin keeps its snapshot after the last run of its restore.
pub const PIN_LIFETIME: Duration = Duration::from_secs(14 * 86_400);

fn prefix(restore_id: &str) -> String {
    format!("pin.{restore_id}.")
}

/// Pins `snapshot` for `restore_id`. Each run (and each worker) writes a
/// pin of its own and removes none: workers starting together would
/// otherwise remove each other's. They all go when the restore is done
/// ([`unpin`]), or when they expire. A vault this host may not write
/// (credentials that cannot write `runs/`) is no reason to refuse the
/// restore: the warning returned says what keeps the snapshot then.
pub fn pin<S: HoldsKeys>(
    repo: &Repository<S>,
    restore_id: &str,
    snapshot: ObjectId,
    target_cluster: Option<&str>,
    target_topics: Vec<String>,
) -> Result<Option<String>> {
    let now = crate::now_ms();
    let pin = RestorePin {
        restore_id: restore_id.to_string(),
        snapshot,
        target_cluster: target_cluster.unwrap_or_default().to_string(),
        target_topics,
        holder: format!("{}/{}", crate::host::hostname(), std::process::id()),
        written_ms: now,
        expires_ms: now.saturating_add(u64::try_from(PIN_LIFETIME.as_millis()).unwrap_or(u64::MAX)),
    };
    let name = format!(
        "{}{}",
        prefix(restore_id),
        vault_format::id::hex_encode(&crate::host::random_bytes::<8>())
    );
    match repo.put_run_object(ObjectKind::RestorePin, &name, &pin.encode()) {
        Ok(_) => Ok(None),
        Err(e @ (Error::Storage { .. } | Error::Io { .. })) => Ok(Some(format!(
            "could not pin snapshot {} in the vault for this restore ({e}); if this restore is \
             interrupted, a gc before its rerun may forget the snapshot, and the rerun cannot resume. \
             Until the restore is done, run no gc (and no snapshot --every with keep rules) that could \
             forget it, or give them a --keep-within that reaches back to it",
            &snapshot.to_hex()[..16]
        ))),
        Err(e) => Err(e),
    }
}

/// Removes the restore's pins: it is done or abandoned. Returns a warning
/// when they could not be removed (they expire by themselves).
pub fn unpin<S: HoldsKeys>(repo: &Repository<S>, restore_id: &str) -> Option<String> {
    let listed = match repo.storage().list(Dir::Runs) {
        Ok(l) => l,
        Err(e) => return Some(unpin_failed(restore_id, &e)),
    };
    for l in listed {
        if l.name.starts_with(&prefix(restore_id))
            && let Err(e) = repo.storage().delete(&ObjectName::new(Dir::Runs, &l.name))
        {
            return Some(unpin_failed(restore_id, &e));
        }
    }
    None
}

fn unpin_failed(restore_id: &str, e: &Error) -> String {
    format!(
        "restore {restore_id} is done, but its pin could not be removed from the vault ({e}); gc keeps \
         its snapshot until the pin expires ({} days after it was written)",
        PIN_LIFETIME.as_secs() / 86_400
    )
}

/// The vault's pins, read for gc at `now_ms`.
#[derive(Clone, Debug, Default)]
pub struct Pins {
    /// Snapshot → the live pins that hold it.
    pub live: BTreeMap<ObjectId, Vec<RestorePin>>,
    /// Object names of expired pins, and of pins whose snapshot is gone.
    pub stale: Vec<String>,
}

impl Pins {
    /// Why gc keeps `snapshot`, one reason per restore that pins it.
    pub fn reasons(&self, snapshot: &ObjectId) -> Vec<String> {
        self.live.get(snapshot).map_or_else(Vec::new, |pins| {
            pins.iter()
                .map(|p| {
                    format!(
                        "pinned by unfinished restore {} into {} (until {})",
                        &p.restore_id[..p.restore_id.len().min(16)],
                        p.target_topics.join(","),
                        crate::time::format_rfc3339(crate::time::signed_ms(p.expires_ms))
                    )
                })
                .collect()
        })
    }
}

/// Reads every pin. `snapshots` are the ids in the vault: a pin of a
/// snapshot that is gone (forgotten by hand with `vault forget`) holds nothing.
pub fn read_pins<S: HoldsKeys>(
    repo: &Repository<S>,
    now_ms: u64,
    snapshots: &[ObjectId],
) -> Result<Pins> {
    let mut out = Pins::default();
    for l in repo.storage().list(Dir::Runs)? {
        if !l.name.starts_with("pin.") {
            continue;
        }
        let Some((_, body)) = repo.get_run_object(ObjectKind::RestorePin, &l.name)? else {
            continue;
        };
        let pin = RestorePin::decode(&body).ctx(|| format!("decoding restore pin {}", l.name))?;
        // The writer's clock set the expiry; the storage's time of the
        // write bounds it too, so a host clock years ahead pins nothing forever.
        let lifetime = u64::try_from(PIN_LIFETIME.as_millis()).unwrap_or(u64::MAX);
        let stored_until = l
            .modified
            .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| {
                u64::try_from(d.as_millis())
                    .unwrap_or(u64::MAX)
                    .saturating_add(lifetime)
            });
        let until = stored_until.map_or(pin.expires_ms, |s| s.min(pin.expires_ms));
        if until <= now_ms || !snapshots.contains(&pin.snapshot) {
            out.stale.push(l.name);
        } else {
            out.live.entry(pin.snapshot).or_default().push(pin);
        }
    }
    Ok(out)
}

/// Removes the pins [`read_pins`] found stale (gc, under its exclusive lock).
pub fn remove_stale<S: HoldsKeys>(repo: &Repository<S>, pins: &Pins) -> Result<usize> {
    for name in &pins.stale {
        repo.storage().delete(&ObjectName::new(Dir::Runs, name))?;
    }
    Ok(pins.stale.len())
}

/// Takes a restore's pin back if the restore fails before its first
/// progress record (the target unreachable, a topic that cannot be
/// created): no rerun has to resume a restore that never began.
pub(crate) struct PinUntilRecorded<'a> {
    pub repo: &'a Repository<Indexed>,
    pub restore_id: &'a str,
    pub recorded: bool,
}

impl Drop for PinUntilRecorded<'_> {
    fn drop(&mut self) {
        if !self.recorded {
            let _ = unpin(self.repo, self.restore_id);
        }
    }
}

/// Pins the plan's snapshot for its restore; a warning when
/// the vault could not be written.
pub(crate) fn pin_snapshot(
    repo: &Repository<Indexed>,
    plan: &RestorePlan,
    kafka: &KafkaOptions,
) -> Result<Option<String>> {
    let cluster = kafka.current_cluster_id().ok().flatten();
    pin(
        repo,
        &plan.restore_id,
        plan.snapshot_id,
        cluster.as_deref(),
        plan.topics.iter().map(|t| t.target.clone()).collect(),
    )
}
