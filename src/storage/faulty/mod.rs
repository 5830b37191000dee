//! A storage that fails on purpose, for the chaos campaign
//! (docs/reliability.md): a [`Hooked`] whose hook follows a seeded
//! [`FaultPlan`]. What it can do to a call:
//!
//! * `error`: fail it before it reaches the store;
//! * `latency`: delay it;
//! * `lost-reply`: let a write (or delete) land, then report an error, as
//!   a store whose answer was lost on the way back;
//! * `stale-list`: leave objects written a moment ago out of a listing;
//! * `partial`: leave a partly written temporary file in the local
//!   vault's folder, as a process killed mid-write does, and fail the write;
//! * `kill`: abort the process before (or right after) the call, as
//!   kill -9 at exactly that storage operation would.
//!
//! Which calls: the `nth` counted call, or each call with probability
//! `rate`, drawn from a hash of the seed, the method, the object and how
//! many times that method was called on that object before, so a
//! schedule does not depend on how threads interleave. A plan is written
//! as a spec, `kind=error,seed=7,rate=0.05`, which is also how the
//! debug binary takes one from `KVAULT_STORAGE_FAULTS` (crate::faults),
//! so a failing seed reproduces with one command.

mod plan;

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

pub use plan::{FaultKind, FaultPlan};

use super::api::{Listed, Storage};
use super::hooked::{Hooked, Op};
use crate::error::Error;

/// What a fault storage has done so far, and the switch that arms it.
#[derive(Debug)]
pub struct FaultState {
    plan: FaultPlan,
    armed: AtomicBool,
    counted: AtomicU64,
    injected: AtomicU64,
    attempts: Mutex<HashMap<String, u64>>,
}

impl FaultState {
    pub fn new(plan: FaultPlan) -> FaultState {
        FaultState {
            plan,
            armed: AtomicBool::new(true),
            counted: AtomicU64::new(0),
            injected: AtomicU64::new(0),
            attempts: Mutex::new(HashMap::new()),
        }
    }

    /// Faults are injected only while armed (from the start).
    pub fn set_armed(&self, armed: bool) {
        self.armed.store(armed, Ordering::SeqCst);
    }

    /// Calls counted (those the kind applies to, while armed).
    pub fn counted(&self) -> u64 {
        self.counted.load(Ordering::SeqCst)
    }

    /// Faults injected.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::SeqCst)
    }

    pub fn plan(&self) -> &FaultPlan {
        &self.plan
    }

    /// Counts the call and says whether it is chosen, and the seeded
    /// number in [0, 1) drawn for it.
    fn choose(&self, op: &Op<'_>) -> Option<f64> {
        if !self.armed.load(Ordering::SeqCst) || !self.plan.kind.applies_to(op) {
            return None;
        }
        let n = self.counted.fetch_add(1, Ordering::SeqCst) + 1;
        let object = match op {
            Op::List { kind } => format!("{}/", kind.dir()),
            _ => op.name().map(ToString::to_string).unwrap_or_default(),
        };
        if let Some(path) = &self.plan.trace
            && let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
        {
            let _ = writeln!(f, "{n} {} {object}", op.method());
        }
        let key = format!("{}/{object}", op.method());
        let attempt = {
            let mut a = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
            let c = a.entry(key.clone()).or_default();
            *c += 1;
            *c
        };
        let draw = unit(self.plan.seed, &format!("{key}#{attempt}"));
        let chosen = match self.plan.nth {
            Some(want) => n == want,
            None => draw < self.plan.rate,
        };
        if chosen {
            self.injected.fetch_add(1, Ordering::SeqCst);
            Some(draw)
        } else {
            None
        }
    }
}

/// A number in [0, 1) from the seed and a label: the same for the same
/// pair on every machine and run.
fn unit(seed: u64, label: &str) -> f64 {
    // 53 bits, exactly representable.
    (draw(seed, label) >> 11) as f64 / (1u64 << 53) as f64
}

/// A 64-bit number from the seed and a label.
fn draw(seed: u64, label: &str) -> u64 {
    let mut h = blake3::Hasher::new();
    h.update(&seed.to_le_bytes());
    h.update(label.as_bytes());
    let b = h.finalize();
    u64::from_le_bytes(b.as_bytes()[..8].try_into().expect("8 bytes"))
}

fn injected(op: &Op<'_>, plan: &FaultPlan, what: &str) -> Error {
    Error::Storage {
        context: format!(
            "{} {}",
            op.method(),
            op.name().map(ToString::to_string).unwrap_or_default()
        ),
        message: format!("{what} (injected by the fault plan {plan})"),
    }
}

/// Wraps `inner` in a storage that follows `plan`; the state says what it
/// did and arms or disarms it.
pub fn faulty(inner: Arc<dyn Storage>, plan: FaultPlan) -> (Arc<dyn Storage>, Arc<FaultState>) {
    let state = Arc::new(FaultState::new(plan));
    (faulty_with(inner, &state), state)
}

/// Wraps `inner` in a fault storage sharing `state` (its count of calls
/// and its switch) with any other wrapped the same way.
pub fn faulty_with(inner: Arc<dyn Storage>, state: &Arc<FaultState>) -> Arc<dyn Storage> {
    let hook_state = Arc::clone(state);
    let hook_inner = Arc::clone(&inner);
    let filter_state = Arc::clone(state);
    let hooked = Hooked::new(inner, move |op: &Op<'_>| {
        let s = &hook_state;
        let Some(fraction) = s.choose(op) else {
            return Ok(());
        };
        let plan = &s.plan;
        match plan.kind {
            FaultKind::Error => Err(injected(op, plan, "injected error")),
            FaultKind::Latency => {
                std::thread::sleep(plan.latency.mul_f64(fraction.max(0.1)));
                Ok(())
            }
            FaultKind::LostReply => {
                // The write lands; only its answer is lost.
                match op {
                    Op::PutIfAbsent { name, data } => {
                        hook_inner.put_if_absent(name, data)?;
                    }
                    Op::Delete { name } => hook_inner.delete(name)?,
                    _ => return Ok(()),
                }
                Err(injected(
                    op,
                    plan,
                    "the reply was lost after the write landed",
                ))
            }
            // The listing itself is filtered below; the call goes on.
            FaultKind::StaleList => Ok(()),
            FaultKind::Partial => {
                if let (Op::PutIfAbsent { name, data }, Some(root)) = (op, &plan.root) {
                    let dest = root.join(name.path());
                    if let Some(dir) = dest.parent() {
                        let tmp = dir.join(format!(".tmp-fault-{}", s.injected()));
                        let _ = std::fs::create_dir_all(dir);
                        // Anything from nothing to all but the last byte.
                        let len = data.len() as u64;
                        let cut = draw(plan.seed, &name.path()) % len.max(1);
                        let cut = usize::try_from(cut).expect("below a slice's length");
                        let _ = std::fs::write(tmp, &data[..cut]);
                    }
                }
                Err(injected(op, plan, "the process died mid-write"))
            }
            FaultKind::Kill => {
                if plan.after {
                    match op {
                        Op::PutIfAbsent { name, data } => {
                            let _ = hook_inner.put_if_absent(name, data);
                        }
                        Op::Delete { name } => {
                            let _ = hook_inner.delete(name);
                        }
                        _ => {}
                    }
                }
                eprintln!(
                    "vault: killed {} storage call {} ({} {}) by the fault plan {plan}",
                    if plan.after { "after" } else { "before" },
                    s.counted(),
                    op.method(),
                    op.name().map(ToString::to_string).unwrap_or_default()
                );
                std::process::abort();
            }
        }
    })
    .with_list_filter(move |_, listed: &mut Vec<Listed>| {
        let s = &filter_state;
        if s.plan.kind != FaultKind::StaleList || !s.armed.load(Ordering::SeqCst) {
            return;
        }
        let now = SystemTime::now();
        listed.retain(|l| {
            let recent = l
                .modified
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|age| age < s.plan.stale);
            // A file stamped in the future (clock skew) counts as recent.
            let future = l.modified.is_some_and(|m| m > now);
            !((recent || future) && unit(s.plan.seed, &l.name) < 0.5)
        });
    });
    Arc::new(hooked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::local::LocalDir;
    use crate::storage::{Dir, ObjectName};

    fn local() -> (tempfile::TempDir, Arc<dyn Storage>) {
        let d = tempfile::tempdir().unwrap();
        let s = Arc::new(LocalDir::create(d.path().join("v")).unwrap());
        (d, s)
    }

    #[test]
    fn specs_read_back() {
        let mut p = FaultPlan::new(FaultKind::Kill, 9);
        p.nth = Some(17);
        p.after = true;
        assert_eq!(FaultPlan::parse(&p.spec()).unwrap(), p);
        let p = FaultPlan::parse("kind=error,seed=3,rate=0.5").unwrap();
        assert_eq!((p.kind, p.seed, p.rate), (FaultKind::Error, 3, 0.5));
        assert!(FaultPlan::parse("kind=melt").is_err());
        assert!(FaultPlan::parse("kind=error,color=red").is_err());
    }

    #[test]
    fn the_nth_call_fails_and_no_other() {
        let (_d, inner) = local();
        let mut plan = FaultPlan::new(FaultKind::Error, 1);
        plan.nth = Some(3);
        let (s, state) = faulty(inner, plan);
        let name = |i: u32| ObjectName::new(Dir::Index, format!("{i:02x}"));
        let results: Vec<bool> = (0..5)
            .map(|i| s.put_if_absent(&name(i), b"x").is_ok())
            .collect();
        assert_eq!(results, [true, true, false, true, true]);
        assert!(
            !s.exists(&name(2)).unwrap(),
            "a failed call never reached the store"
        );
        assert_eq!(state.injected(), 1);
    }

    #[test]
    fn a_lost_reply_fails_the_call_but_the_object_exists() {
        let (_d, inner) = local();
        let mut plan = FaultPlan::new(FaultKind::LostReply, 1);
        plan.nth = Some(1);
        let (s, _) = faulty(Arc::clone(&inner), plan);
        let name = ObjectName::new(Dir::Index, "ab");
        assert!(s.put_if_absent(&name, b"data").is_err());
        assert_eq!(inner.get(&name).unwrap(), b"data");
        // Written again, as a retry would: it is there, nothing written.
        assert!(!s.put_if_absent(&name, b"data").unwrap());
    }

    #[test]
    fn stale_listings_hide_only_recent_objects() {
        let (_d, inner) = local();
        let (s, state) = faulty(Arc::clone(&inner), FaultPlan::new(FaultKind::StaleList, 5));
        for i in 0..40u32 {
            inner
                .put_if_absent(&ObjectName::new(Dir::Index, format!("{i:02x}")), b"x")
                .unwrap();
        }
        let seen = s.list(Dir::Index).unwrap().len();
        assert!(seen < 40 && seen > 0, "about half are hidden: {seen}");
        state.set_armed(false);
        assert_eq!(s.list(Dir::Index).unwrap().len(), 40);
    }

    #[test]
    fn a_partial_write_leaves_a_temporary_file_that_is_never_listed() {
        let (d, inner) = local();
        let mut plan = FaultPlan::new(FaultKind::Partial, 2);
        plan.rate = 1.0;
        plan.root = Some(d.path().join("v"));
        let (s, _) = faulty(inner, plan);
        let name = ObjectName::new(Dir::Snapshots, "cd");
        assert!(s.put_if_absent(&name, &[7u8; 1000]).is_err());
        let tmp: Vec<_> = std::fs::read_dir(d.path().join("v/snapshots"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(tmp.len(), 1, "{tmp:?}");
        assert!(s.list(Dir::Snapshots).unwrap().is_empty());
    }

    #[test]
    fn a_seed_gives_the_same_schedule_whatever_the_order() {
        let run = |order: &[u32]| {
            let (_d, inner) = local();
            let (s, _) = faulty(
                inner,
                FaultPlan::parse("kind=error,seed=11,rate=0.3").unwrap(),
            );
            let mut failed: Vec<u32> = order
                .iter()
                .copied()
                .filter(|i| {
                    s.put_if_absent(&ObjectName::new(Dir::Index, format!("{i:02x}")), b"x")
                        .is_err()
                })
                .collect();
            failed.sort_unstable();
            failed
        };
        let forward: Vec<u32> = (0..30).collect();
        let backward: Vec<u32> = (0..30).rev().collect();
        assert_eq!(run(&forward), run(&backward));
        assert!(!run(&forward).is_empty());
    }
}
