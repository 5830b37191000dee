//! A seeded schedule of faults ([`FaultPlan`]) and what each fault does
//! ([`FaultKind`]), written as a spec so one command reproduces a run.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::storage::hooked::Op;

/// What the storage does to a chosen call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    Error,
    Latency,
    LostReply,
    StaleList,
    Partial,
    Kill,
}

impl FaultKind {
    pub const ALL: [FaultKind; 6] = [
        FaultKind::Error,
        FaultKind::Latency,
        FaultKind::LostReply,
        FaultKind::StaleList,
        FaultKind::Partial,
        FaultKind::Kill,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Error => "error",
            FaultKind::Latency => "latency",
            FaultKind::LostReply => "lost-reply",
            FaultKind::StaleList => "stale-list",
            FaultKind::Partial => "partial",
            FaultKind::Kill => "kill",
        }
    }

    fn parse(s: &str) -> Result<FaultKind> {
        FaultKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                Error::Usage(format!(
                    "unknown fault kind {s:?} (one of error, latency, lost-reply, stale-list, partial, kill)"
                ))
            })
    }

    /// Whether a call can be chosen for this kind at all; only those are
    /// counted for `nth`.
    pub(super) fn applies_to(self, op: &Op<'_>) -> bool {
        match self {
            FaultKind::Error | FaultKind::Latency | FaultKind::Kill => !matches!(
                op,
                Op::Location | Op::Concurrency | Op::RemoveUnfinishedVault
            ),
            FaultKind::LostReply => matches!(op, Op::PutIfAbsent { .. } | Op::Delete { .. }),
            FaultKind::StaleList => matches!(op, Op::List { .. }),
            FaultKind::Partial => matches!(op, Op::PutIfAbsent { .. }),
        }
    }
}

/// A seeded schedule of faults.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultPlan {
    pub kind: FaultKind,
    pub seed: u64,
    /// The probability that a call it applies to is chosen (unless `nth`).
    pub rate: f64,
    /// Choose exactly the n-th call (1-based) the kind applies to.
    pub nth: Option<u64>,
    /// `latency`: the longest added delay (each chosen call sleeps a
    /// seeded fraction of it).
    pub latency: Duration,
    /// `stale-list`: how recent an object must be to be left out.
    pub stale: Duration,
    /// `kill`: abort after the call instead of before it.
    pub after: bool,
    /// `partial`: the local vault's root, where the partial file goes.
    pub root: Option<PathBuf>,
    /// Append one line per counted call here ("n method object"), to
    /// count a run's calls or see where a fault landed.
    pub trace: Option<PathBuf>,
}

impl FaultPlan {
    pub fn new(kind: FaultKind, seed: u64) -> FaultPlan {
        FaultPlan {
            kind,
            seed,
            rate: match kind {
                FaultKind::Latency | FaultKind::StaleList => 1.0,
                _ => 0.05,
            },
            nth: None,
            latency: Duration::from_millis(20),
            stale: Duration::from_secs(5),
            after: false,
            root: None,
            trace: None,
        }
    }

    /// Reads `kind=K,seed=S[,rate=R][,nth=N][,latency-ms=M][,stale-ms=M][,after=1][,root=DIR][,trace=FILE]`.
    pub fn parse(spec: &str) -> Result<FaultPlan> {
        let bad = |m: String| Error::Usage(format!("fault plan {spec:?}: {m}"));
        let mut fields = HashMap::new();
        for part in spec.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| bad(format!("{part:?} is not KEY=VALUE")))?;
            fields.insert(k.trim(), v.trim());
        }
        let kind = FaultKind::parse(fields.remove("kind").ok_or_else(|| bad("no kind".into()))?)?;
        let num = |v: &str| v.parse::<u64>().map_err(|e| bad(format!("{v:?}: {e}")));
        let mut plan = FaultPlan::new(kind, num(fields.remove("seed").unwrap_or("0"))?);
        for (k, v) in fields {
            match k {
                "rate" => {
                    plan.rate = v.parse().map_err(|e| bad(format!("rate {v:?}: {e}")))?;
                }
                "nth" => plan.nth = Some(num(v)?),
                "latency-ms" => plan.latency = Duration::from_millis(num(v)?),
                "stale-ms" => plan.stale = Duration::from_millis(num(v)?),
                "after" => plan.after = v == "1",
                "root" => plan.root = Some(PathBuf::from(v)),
                "trace" => plan.trace = Some(PathBuf::from(v)),
                _ => return Err(bad(format!("unknown field {k:?}"))),
            }
        }
        Ok(plan)
    }

    /// The plan as [`parse`](Self::parse) reads it.
    pub fn spec(&self) -> String {
        let mut s = format!("kind={},seed={}", self.kind.name(), self.seed);
        match self.nth {
            Some(n) => s.push_str(&format!(",nth={n}")),
            None => s.push_str(&format!(",rate={}", self.rate)),
        }
        match self.kind {
            FaultKind::Latency => s.push_str(&format!(",latency-ms={}", self.latency.as_millis())),
            FaultKind::StaleList => s.push_str(&format!(",stale-ms={}", self.stale.as_millis())),
            FaultKind::Kill if self.after => s.push_str(",after=1"),
            _ => {}
        }
        if let Some(r) = &self.root {
            s.push_str(&format!(",root={}", r.display()));
        }
        if let Some(t) = &self.trace {
            s.push_str(&format!(",trace={}", t.display()));
        }
        s
    }
}

impl fmt::Display for FaultPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.spec())
    }
}
