//! What every kind of the campaign shares: the seeded schedule, killing a
//! command, the checks, and the tally each kind prints.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::producer::FutureRecord;

use crate::common::*;

/// A kind's run of the campaign.
pub struct Campaign {
    pub kind: &'static str,
    pub seed: u64,
    pub count: u64,
    pub rt: tokio::runtime::Runtime,
}

/// What a kind did; printed as its summary line.
#[derive(Default, Debug)]
pub struct Tally {
    pub kills: u64,
    pub at_a_moment: u64,
    pub at_a_storage_call: u64,
    /// Runs that ended by themselves before their kill came.
    pub not_killed: u64,
    pub reruns: u64,
    pub checks_passed: u64,
    pub records_lost: u64,
    pub records_duplicated: u64,
    pub kept_snapshots_lost: u64,
    pub problems: Vec<String>,
}

impl Tally {
    /// Records a failed check (it names the kill that preceded it).
    pub fn fail(&mut self, what: String) {
        eprintln!("chaos: PROBLEM {what}");
        self.problems.push(what);
    }

    pub fn pass(&mut self) {
        self.checks_passed += 1;
    }

    /// Passes or fails one check.
    pub fn expect(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if ok {
            self.pass();
        } else {
            self.fail(what());
        }
    }
}

/// How one run was ended.
#[derive(Clone, Debug)]
pub enum Kill {
    /// SIGKILL this long after the start.
    AtMoment(Duration),
    /// Abort before (or after) the n-th storage call.
    AtStorageCall { nth: u64, after: bool },
}

impl std::fmt::Display for Kill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kill::AtMoment(d) => write!(f, "SIGKILL at {} ms", d.as_millis()),
            Kill::AtStorageCall { nth, after } => write!(
                f,
                "abort {} storage call {nth} (KVAULT_STORAGE_FAULTS=kind=kill,nth={nth}{})",
                if *after { "after" } else { "before" },
                if *after { ",after=1" } else { "" }
            ),
        }
    }
}

/// A small deterministic generator (xorshift64*), one per kind and seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64, kind: &str) -> Rng {
        let h = blake3::hash(format!("{seed}/{kind}").as_bytes());
        Rng(u64::from_le_bytes(h.as_bytes()[..8].try_into().unwrap()) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

impl Campaign {
    /// The campaign of `kind`, if `KVAULT_CHAOS_KINDS` selects it.
    pub fn for_kind(kind: &'static str) -> Option<Campaign> {
        if let Ok(kinds) = std::env::var("KVAULT_CHAOS_KINDS")
            && !kinds.trim().is_empty()
            && !kinds.split(',').any(|k| k.trim() == kind)
        {
            return None;
        }
        Some(Campaign {
            kind,
            seed: env_u64("KVAULT_CHAOS_SEED", 1),
            count: env_u64("KVAULT_CHAOS_COUNT", 2),
            rt: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap(),
        })
    }

    pub fn rng(&self) -> Rng {
        Rng::new(self.seed, self.kind)
    }

    /// Prints the kind's summary line; fails on any problem.
    pub fn finish(&self, t: &Tally) {
        println!(
            "\nchaos {:<17} seed {:>3}  kills {:>4} ({} at a moment, {} at a storage call; {} runs ended first)  {} {:>4}  checks passed {:>5}  records lost {}  duplicated {}  kept snapshots lost {}",
            self.kind,
            self.seed,
            t.kills,
            t.at_a_moment,
            t.at_a_storage_call,
            t.not_killed,
            if self.kind == "concurrent" {
                "histories"
            } else {
                "reruns"
            },
            t.reruns,
            t.checks_passed,
            t.records_lost,
            t.records_duplicated,
            t.kept_snapshots_lost,
        );
        if !t.problems.is_empty() {
            println!(
                "  again: scripts/chaos {} {} --kinds {}",
                self.seed, self.count, self.kind
            );
        }
        assert!(
            t.problems.is_empty(),
            "{} problems: {:#?}",
            t.problems.len(),
            t.problems
        );
        // (The concurrent histories count histories, not kills.)
        assert!(
            t.kills >= self.count || self.kind == "concurrent",
            "only {} of {} kills landed",
            t.kills,
            self.count
        );
    }

    /// How many storage calls `cmd` makes when nothing stops it (it runs
    /// once, to the end, with a trace of its calls).
    pub fn storage_calls(&self, cmd: Command) -> u64 {
        let (o, _, calls) = Campaign::rerun(cmd);
        assert!(o.status.success(), "{}: {}", self.kind, stderr(&o));
        calls
    }

    /// Runs `cmd` to the end, as the rerun after a kill, with a trace of
    /// its storage calls: returns its output, how long it took and how many
    /// calls it made, which the next kill is drawn from (a run of the same
    /// shape as the next killed one).
    pub fn rerun(mut cmd: Command) -> (std::process::Output, Duration, u64) {
        let trace = tempfile::NamedTempFile::new().unwrap();
        let start = Instant::now();
        let o = cmd
            .env(
                "KVAULT_STORAGE_FAULTS",
                format!(
                    "kind=kill,nth=18446744073709551615,trace={}",
                    trace.path().display()
                ),
            )
            .output()
            .unwrap();
        let took = start.elapsed();
        let calls = std::fs::read_to_string(trace.path())
            .unwrap_or_default()
            .lines()
            .count() as u64;
        (o, took, calls)
    }

    /// Draws where to kill a run that takes about `took` and makes
    /// about `calls` storage calls.
    pub fn draw_kill(rng: &mut Rng, took: Duration, calls: u64) -> Kill {
        if calls > 0 && rng.next().is_multiple_of(2) {
            Kill::AtStorageCall {
                nth: rng.range(1, calls + 1),
                after: rng.next().is_multiple_of(2),
            }
        } else {
            let ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX).max(50);
            Kill::AtMoment(Duration::from_millis(rng.range(0, ms + ms / 10)))
        }
    }

    /// Runs `cmd` and ends it as `kill` says; returns whether it died by
    /// the kill (rather than finishing first).
    pub fn run_killed(&self, mut cmd: Command, kill: &Kill, t: &mut Tally) -> bool {
        // Its standard error, to tell the fault plan's abort from any other.
        let err = tempfile::NamedTempFile::new().unwrap();
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(err.reopen().unwrap()));
        if let Kill::AtStorageCall { nth, after } = kill {
            cmd.env(
                "KVAULT_STORAGE_FAULTS",
                format!(
                    "kind=kill,nth={nth}{}",
                    if *after { ",after=1" } else { "" }
                ),
            );
        }
        let mut child = cmd.spawn().expect("spawn vault");
        let start = Instant::now();
        let killed = match kill {
            Kill::AtMoment(d) => {
                let mut done = None;
                while start.elapsed() < *d {
                    if let Some(s) = child.try_wait().unwrap() {
                        done = Some(s);
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(2).min(*d));
                }
                match done {
                    Some(_) => false,
                    None => {
                        child.kill().unwrap();
                        child.wait().unwrap();
                        true
                    }
                }
            }
            Kill::AtStorageCall { .. } => {
                let deadline = start + Duration::from_secs(180);
                loop {
                    if let Some(s) = child.try_wait().unwrap() {
                        let aborted = s.signal() == Some(libc::SIGABRT);
                        let said = std::fs::read_to_string(err.path()).unwrap_or_default();
                        if aborted && !said.contains("by the fault plan") {
                            t.fail(format!(
                                "{}: a run under {kill} aborted by itself: {said}",
                                self.kind
                            ));
                            break false;
                        }
                        break aborted;
                    }
                    if Instant::now() > deadline {
                        child.kill().unwrap();
                        child.wait().unwrap();
                        t.fail(format!("{}: a run under {kill} hung", self.kind));
                        break false;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        };
        if killed {
            t.kills += 1;
            match kill {
                Kill::AtMoment(_) => t.at_a_moment += 1,
                Kill::AtStorageCall { .. } => t.at_a_storage_call += 1,
            }
        } else {
            t.not_killed += 1;
        }
        killed
    }

    /// `vault check --read-data` must be clean.
    pub fn check_clean(&self, v: &TestVault, t: &mut Tally, after: &str) {
        let o = v.run(&["check", "--read-data"]);
        t.expect(o.status.success(), || {
            format!(
                "{}: check --read-data after {after}: {}",
                self.kind,
                stderr(&o)
            )
        });
    }

    /// The ids `vault snapshots` lists.
    pub fn snapshot_ids(v: &TestVault) -> Vec<String> {
        let j = v.json(&["snapshots"]);
        j.as_array()
            .or_else(|| j["snapshots"].as_array())
            .expect("a list of snapshots")
            .iter()
            .map(|s| s["id"].as_str().expect("an id").to_string())
            .collect()
    }
}

/// Records of 200–800 bytes with a header and a key, `n` of them spread
/// over `partitions`, produced in one batch (not one round trip each).
pub async fn produce_small(topic: &str, partitions: i32, n: usize, salt: u64) {
    let p = producer(Cluster::Source, &[("linger.ms", "10")]);
    let mut pending = Vec::with_capacity(n);
    let mut x = salt.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = 200 + (x % 600) as usize;
        let mut value = format!("{{\"salt\":{salt},\"i\":{i},\"pad\":\"").into_bytes();
        while value.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            value.push(b'a' + (x % 26) as u8);
        }
        value.extend_from_slice(b"\"}");
        let key = format!("k{}", x % 500);
        let header = format!("{salt}-{i}");
        let fr = FutureRecord::to(topic)
            .partition((i % partitions as usize) as i32)
            .key(key.as_bytes())
            .payload(&value[..])
            .timestamp(1_700_000_000_000 + i as i64)
            .headers(
                rdkafka::message::OwnedHeaders::new().insert(rdkafka::message::Header {
                    key: "trace",
                    value: Some(header.as_bytes()),
                }),
            );
        pending.push(p.send_result(fr).expect("queue"));
    }
    for f in pending {
        f.await.expect("delivery").expect("produce");
    }
}

/// Compares restored records with the source's, partition by partition
/// and in order, offsets aside: (lost, duplicated).
pub fn compare_records(want: &[TestRecord], got: &[TestRecord]) -> (u64, u64) {
    let (mut lost, mut dup) = (0u64, 0u64);
    let parts: std::collections::BTreeSet<i32> =
        want.iter().chain(got).map(|r| r.partition).collect();
    for p in parts {
        let w = content(want.iter().filter(|r| r.partition == p));
        let g = content(got.iter().filter(|r| r.partition == p));
        if w != g {
            for r in &w {
                let n = g.iter().filter(|x| *x == r).count();
                if n == 0 {
                    lost += 1;
                } else if n > 1 {
                    dup += (n - 1) as u64;
                }
            }
            if lost + dup == 0 {
                // Same records, another order or extra ones.
                dup += g.len().saturating_sub(w.len()) as u64;
                lost += u64::from(g.len() == w.len());
            }
        }
    }
    (lost, dup)
}
