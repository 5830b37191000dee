//! Concurrent commands checked against a model (docs/reliability.md §
//! Concurrent histories). Three actors run a seeded random mix of
//! `snapshot`, `snapshot --every`, `gc`, `forget`, `check` and `restore`
//! against one vault while records keep arriving; some runs are killed,
//! some are frozen (SIGSTOP) past their lock's stale time and then let go
//! on. Every run's start, end and outcome is recorded. Then the vault
//! must match the model:
//!
//! * every snapshot that was committed and that no rule could have
//!   forgotten is there: a `forget` named it, or a `gc --keep-last K` (or
//!   `--every --keep-last K`) run ended after K snapshots certainly newer
//!   than it had committed;
//! * no snapshot is there that no run could have made;
//! * every snapshot there reads back exactly the source's records below
//!   its cut, every field (what a restore of it would write);
//! * `check --read-data` is clean, and every restore that reported
//!   success put every record on the target exactly once.
//!
//! Locks use short times here (`KVAULT_LOCK_TIMES`, debug builds), so a
//! frozen holder's lock goes stale in seconds and the others go on.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::harness::{Campaign, Rng, Tally, compare_records, produce_small};

const PARTITIONS: i32 = 3;
const GC_KEEP: usize = 2;
const EVERY_KEEP: usize = 3;
/// Refresh every 500 ms; stale after 3 s unrefreshed.
const LOCK_TIMES: &str = "500,3000";
const FREEZE: Duration = Duration::from_millis(4500);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Snapshot,
    Every,
    Gc,
    Forget,
    Check,
    Restore,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Runs,
    Killed,
    Frozen,
}

#[derive(Clone, Debug)]
struct Event {
    op: Op,
    fate: Fate,
    start: Instant,
    end: Instant,
    /// The same moments by the wall clock (ms since the epoch), to set
    /// beside the snapshots' cut times.
    wall_start: u64,
    wall_end: u64,
    /// A snapshot it reported: its cut time, read at once.
    time_ms: Option<u64>,
    /// `--every`: every snapshot its output reports, with its time (an
    /// interval line each; a run woken from a freeze may make several).
    made: Vec<(String, u64)>,
    ok: bool,
    /// Snapshot: the id it reported; forget: the id it was given.
    id: Option<String>,
    /// A gc that finished: the snapshots it reports it forgot.
    forgot: Vec<String>,
    detail: String,
}

fn signal(pid: u32, sig: i32) {
    let pid = i32::try_from(pid).unwrap();
    // SAFETY: kill(2) of our own child.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Runs one command with its fate; returns (ok, died by SIGKILL, stdout, stderr).
fn run(mut cmd: Command, fate: Fate, rng_ms: u64, every: bool) -> (bool, bool, String, String) {
    cmd.env("KVAULT_LOCK_TIMES", LOCK_TIMES)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let pid = child.id();
    match fate {
        Fate::Runs if every => {
            // One interval: stop it once it has printed a snapshot.
            use std::io::BufRead;
            let out = child.stdout.take().unwrap();
            let mut got = String::new();
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if line.contains("\"id\"") {
                    got = line;
                    signal(pid, libc::SIGTERM);
                    break;
                }
            }
            let o = child.wait_with_output().unwrap();
            return (
                o.status.success() && !got.is_empty(),
                false,
                got,
                stderr(&o),
            );
        }
        Fate::Runs => {}
        Fate::Killed => {
            std::thread::sleep(Duration::from_millis(rng_ms));
            signal(pid, libc::SIGKILL);
        }
        Fate::Frozen => {
            std::thread::sleep(Duration::from_millis(rng_ms));
            signal(pid, libc::SIGSTOP);
            std::thread::sleep(FREEZE);
            signal(pid, libc::SIGCONT);
            if every {
                std::thread::sleep(Duration::from_millis(1500));
                signal(pid, libc::SIGTERM);
            }
        }
    }
    let o = child.wait_with_output().unwrap();
    let ok = o.status.success() && o.status.signal().is_none();
    let killed = o.status.signal() == Some(libc::SIGKILL);
    (
        ok,
        killed,
        String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr(&o),
    )
}

struct World<'a> {
    v: &'a TestVault,
    topic: &'a str,
    brokers: String,
    target_brokers: String,
    events: Mutex<Vec<Event>>,
    restores: Mutex<u64>,
}

impl World<'_> {
    fn actor(&self, c: &Campaign, mut rng: Rng, ops: usize, t: &Mutex<Tally>) {
        for n in 0..ops {
            c.rt.block_on(produce_small(self.topic, PARTITIONS, 30, rng.next()));
            let op = match rng.range(0, 12) {
                0..=3 => Op::Snapshot,
                4 => Op::Every,
                5..=6 => Op::Gc,
                7..=8 => Op::Forget,
                9 => Op::Check,
                _ => Op::Restore,
            };
            let fate = match rng.range(0, 10) {
                0..=1 => Fate::Killed,
                2 => Fate::Frozen,
                _ => Fate::Runs,
            };
            let at = rng.range(0, 1500);
            let mut id = None;
            let mut cut = BTreeMap::new();
            let listed = Campaign::snapshot_ids(self.v);
            let target = format!("{}-c{}", self.topic, self.next_restore());
            let rename = format!("{}={target}", self.topic);
            let keep_gc = GC_KEEP.to_string();
            let keep_every = EVERY_KEEP.to_string();
            let args: Vec<&str> = match op {
                Op::Snapshot => vec![
                    "snapshot",
                    "--brokers",
                    &self.brokers,
                    "--topics",
                    self.topic,
                    "--json",
                ],
                Op::Every => vec![
                    "snapshot",
                    "--brokers",
                    &self.brokers,
                    "--topics",
                    self.topic,
                    "--every",
                    "1s",
                    "--keep-last",
                    &keep_every,
                    "--json",
                ],
                // No safety margin: the locks alone must keep a running
                // (or frozen) snapshot's packs from gc.
                Op::Gc => vec![
                    "gc",
                    "--keep-last",
                    &keep_gc,
                    "--unindexed-min-age",
                    "0s",
                    "--json",
                ],
                Op::Forget => {
                    let Some(f) = listed.get(rng.range(0, listed.len().max(1) as u64) as usize)
                    else {
                        continue;
                    };
                    id = Some(f.clone());
                    vec!["forget", f.as_str()]
                }
                Op::Check => vec!["check", "--read-data"],
                Op::Restore => {
                    let Some(f) = listed.get(rng.range(0, listed.len().max(1) as u64) as usize)
                    else {
                        continue;
                    };
                    // Its cut, read before a gc may forget it.
                    let Some(c) = cut_of(self.v, f) else { continue };
                    cut = c;
                    id = Some(f.clone());
                    vec![
                        "restore",
                        "--snapshot-id",
                        f.as_str(),
                        "--brokers",
                        &self.target_brokers,
                        "--topics",
                        self.topic,
                        "--rename",
                        &rename,
                        "--json",
                    ]
                }
            };
            let mut args = args;
            args.extend(["--lock-wait", "120"]);
            let start = Instant::now();
            let wall_start = wall_ms();
            let (ok, killed, out, err) = run(self.v.command(&args), fate, at, op == Op::Every);
            let end = Instant::now();
            let wall_end = wall_ms();
            if matches!(op, Op::Snapshot | Op::Every) && ok {
                id = serde_json::from_str::<serde_json::Value>(out.lines().next().unwrap_or(""))
                    .ok()
                    .and_then(|j| j["id"].as_str().map(str::to_string));
            }
            let mut tally = t.lock().unwrap();
            if fate == Fate::Killed && killed {
                tally.kills += 1;
            }
            // A run that was let be must succeed (a frozen one may lose
            // its lock and fail, clearly).
            // (A forget or restore of a snapshot a gc forgot meanwhile
            // fails, rightly.)
            // A run may also lose a race for the vault's lock and say so
            // (gc stops when a snapshot's lock appears; a lock wait ends).
            if fate == Fate::Runs
                && !ok
                && !matches!(op, Op::Forget | Op::Restore)
                && !err.contains("lock")
            {
                tally.fail(format!("{op:?} (run {n}) failed: {err}"));
            }
            if err.contains("damaged") || err.contains("panicked") {
                tally.fail(format!(
                    "{op:?} ({fate:?}) reported damage or panicked: {err}"
                ));
            }
            drop(tally);
            if op == Op::Restore && ok {
                self.restored_whole(&target, &cut, t);
            }
            let forgot = match op {
                Op::Gc if ok => serde_json::from_str::<serde_json::Value>(&out)
                    .ok()
                    .and_then(|j| {
                        j["forgotten"].as_array().map(|a| {
                            a.iter()
                                .filter_map(|x| x.as_str().map(str::to_string))
                                .collect()
                        })
                    })
                    .unwrap_or_default(),
                _ => Vec::new(),
            };
            let made: Vec<(String, u64)> = if op == Op::Every {
                out.lines()
                    .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                    .filter_map(|j| Some((j["id"].as_str()?.to_string(), j["time_ms"].as_u64()?)))
                    .collect()
            } else {
                Vec::new()
            };
            let time_ms = id
                .as_deref()
                .filter(|_| matches!(op, Op::Snapshot | Op::Every))
                .and_then(|i| time_of(self.v, i));
            self.events.lock().unwrap().push(Event {
                op,
                fate,
                start,
                end,
                ok,
                id,
                forgot,
                wall_start,
                wall_end,
                time_ms,
                made,
                detail: if std::env::var_os("KVAULT_CHAOS_VERBOSE").is_some() {
                    format!("{out}\n{err}")
                } else {
                    err.lines().last().unwrap_or("").to_string()
                },
            });
        }
    }

    fn next_restore(&self) -> u64 {
        let mut r = self.restores.lock().unwrap();
        *r += 1;
        *r
    }

    /// A restore that reported success restored the snapshot whole: what
    /// the source held below the cut of the snapshot it chose.
    fn restored_whole(&self, target: &str, cut: &BTreeMap<i32, i64>, t: &Mutex<Tally>) {
        let got = consume_all(Cluster::Target, target, PARTITIONS);
        let want = below(&consume_all(Cluster::Source, self.topic, PARTITIONS), cut);
        let (lost, dup) = compare_records(&want, &got);
        let mut tally = t.lock().unwrap();
        tally.records_lost += lost;
        tally.records_duplicated += dup;
        tally.expect(lost + dup == 0, || {
            format!("restore into {target}: {lost} lost, {dup} duplicated")
        });
    }
}

/// A snapshot's cut: partition → the offset it holds records below.
fn cut_of(v: &TestVault, id: &str) -> Option<BTreeMap<i32, i64>> {
    // One in-process reader at a time: they share one index cache.
    static ONE: Mutex<()> = Mutex::new(());
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let repo = v.open();
    let m = repo.read_snapshot(&repo.resolve_snapshot(id).ok()?).ok()?;
    Some(
        m.topics[0]
            .partitions
            .iter()
            .map(|p| (p.partition as i32, p.end_offset))
            .collect(),
    )
}

/// The records below a cut.
fn below(source: &[TestRecord], cut: &BTreeMap<i32, i64>) -> Vec<TestRecord> {
    source
        .iter()
        .filter(|r| cut.get(&r.partition).is_some_and(|end| r.offset < *end))
        .cloned()
        .collect()
}

/// Whether a rule could have forgotten the snapshot committed by the
/// run that ended at `made` (or an unknown one): a forget named it, or a
/// gc/--every run ended after enough certainly newer snapshots committed.
fn wall_ms() -> u64 {
    u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// A snapshot's cut time, if it is still there.
fn time_of(v: &TestVault, id: &str) -> Option<u64> {
    static ONE: Mutex<()> = Mutex::new(());
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let repo = v.open();
    Some(
        repo.read_snapshot(&repo.resolve_snapshot(id).ok()?)
            .ok()?
            .time_ms,
    )
}

/// Whether a rule could have forgotten snapshot `id`, cut at `time`: a
/// forget named it, a gc that finished says it forgot it, or a gc that
/// did not finish (or an `--every` run's prune) ended after enough
/// snapshots cut later than it may have committed. Cut times are known
/// for the snapshots runs reported and those still there; a run that
/// did not report may have committed one (an `--every` run one a second)
/// cut after its start.
fn may_be_forgotten(id: &str, time: u64, known: &BTreeMap<String, u64>, events: &[Event]) -> bool {
    if events
        .iter()
        .any(|e| e.op == Op::Forget && e.id.as_deref() == Some(id))
    {
        return true;
    }
    if events.iter().any(|g| g.forgot.iter().any(|f| f == id)) {
        return true;
    }
    events.iter().any(|g| {
        let keep = match g.op {
            // A finished gc that did not name it did not forget it.
            Op::Gc if g.ok => return false,
            Op::Gc => GC_KEEP,
            Op::Every => EVERY_KEEP,
            _ => return false,
        };
        let newer_known = known
            .iter()
            .filter(|(other, t)| other.as_str() != id && **t > time && **t < g.wall_end)
            .count() as u64;
        let newer_unknown: u64 = events
            .iter()
            .filter(|s| matches!(s.op, Op::Snapshot | Op::Every))
            .filter(|s| s.wall_start > time && s.wall_start < g.wall_end)
            .map(|s| match (s.op, s.id.is_some()) {
                (Op::Every, _) => (s.end - s.start).as_secs(),
                (_, true) => 0,
                (_, false) => 1,
            })
            .sum();
        newer_known + newer_unknown >= keep as u64 && g.wall_end > time
    })
}

pub fn concurrent(c: &Campaign) -> Tally {
    let t = Mutex::new(Tally::default());
    let histories = c.count.div_ceil(10).max(1);
    for h in 0..histories {
        let topic = unique_topic("chaos-concurrent");
        c.rt.block_on(create_topic(Cluster::Source, &topic, PARTITIONS, &[]));
        c.rt.block_on(produce_small(&topic, PARTITIONS, 600, c.seed + h));
        let v = TestVault::init_with(&["--pack-size-mib", "1", "--avg-chunk-kib", "4"]);
        let w = World {
            v: &v,
            topic: &topic,
            brokers: Cluster::Source.brokers(),
            target_brokers: Cluster::Target.brokers(),
            events: Mutex::new(Vec::new()),
            restores: Mutex::new(0),
        };
        let mut root = Rng::new(c.seed + h, "concurrent");
        let ops = 8;
        std::thread::scope(|s| {
            for a in 0..3u64 {
                let rng = Rng::new(root.next() + a, "actor");
                let (w, t) = (&w, &t);
                s.spawn(move || w.actor(c, rng, ops, t));
            }
        });
        let events = w.events.into_inner().unwrap();
        check_history(c, &v, &topic, &events, &mut t.lock().unwrap(), h);
        t.lock().unwrap().reruns += 1;
    }
    t.into_inner().unwrap()
}

fn check_history(
    c: &Campaign,
    v: &TestVault,
    topic: &str,
    events: &[Event],
    t: &mut Tally,
    h: u64,
) {
    let what = format!("history {h} (seed {})", c.seed);
    let present: BTreeSet<String> = Campaign::snapshot_ids(v).into_iter().collect();
    let mut reported: BTreeMap<&str, &Event> = events
        .iter()
        .filter_map(|e| {
            e.id.as_deref()
                .filter(|_| matches!(e.op, Op::Snapshot | Op::Every))
                .map(|id| (id, e))
        })
        .collect();
    for e in events {
        for (id, _) in &e.made {
            reported.insert(id.as_str(), e);
        }
    }
    // Cut times: of the snapshots there now, and of those reported.
    let mut known: BTreeMap<String, u64> = BTreeMap::new();
    for id in &present {
        if let Some(t) = time_of(v, id) {
            known.insert(id.clone(), t);
        }
    }
    for e in events {
        if let (Some(id), Some(t)) = (&e.id, e.time_ms) {
            known.insert(id.clone(), t);
        }
        for (id, t) in &e.made {
            known.insert(id.clone(), *t);
        }
    }
    for (id, made) in &reported {
        // Unknown cut: no later than its run's start (the lenient side).
        let time = known.get(*id).copied().unwrap_or(made.wall_start);
        if !present.contains(*id) && !may_be_forgotten(id, time, &known, events) {
            t.kept_snapshots_lost += 1;
            t.fail(format!(
                "{what}: snapshot {id} was committed and no rule could forget it, yet it is gone"
            ));
        } else {
            t.pass();
        }
    }
    let unreported_makers = events
        .iter()
        .any(|e| matches!(e.op, Op::Snapshot | Op::Every) && (!e.ok || e.fate != Fate::Runs));
    for id in &present {
        if !reported.contains_key(id.as_str()) && !unreported_makers {
            t.fail(format!(
                "{what}: snapshot {id} is there, yet no run could have made it"
            ));
        }
    }
    // Every snapshot there reads back what the source holds below its cut.
    let source = consume_all(Cluster::Source, topic, PARTITIONS);
    for id in &present {
        let Some(cut) = cut_of(v, id) else {
            t.fail(format!("{what}: snapshot {id} is listed but does not read"));
            continue;
        };
        let want = below(&source, &cut);
        let got = v.records(id, topic);
        let (lost, dup) = compare_records(&want, &got);
        t.records_lost += lost;
        t.records_duplicated += dup;
        t.expect(want == got, || {
            format!("{what}: snapshot {id} reads back wrong: {lost} lost, {dup} duplicated")
        });
    }
    c.check_clean(v, t, &what);
    let ops: Vec<String> = events
        .iter()
        .map(|e| {
            format!(
                "{:?}/{:?}/{}",
                e.op,
                e.fate,
                if e.ok { "ok" } else { "failed" }
            )
        })
        .collect();
    eprintln!("chaos: {what}: {} runs: {}", events.len(), ops.join(" "));
    if !t.problems.is_empty() {
        let t0 = events.iter().map(|e| e.wall_start).min().unwrap_or(0);
        let mut sorted: Vec<&Event> = events.iter().collect();
        sorted.sort_by_key(|e| e.wall_start);
        for e in sorted {
            eprintln!(
                "  {:>6}..{:>6} ms {:?} {:?} ok={} id={:?} cut={:?} forgot={:?} {}",
                e.wall_start - t0,
                e.wall_end - t0,
                e.op,
                e.fate,
                e.ok,
                e.id.as_deref().map(|i| &i[..8]),
                e.time_ms.map(|t| t.saturating_sub(t0)),
                e.forgot.iter().map(|f| &f[..8]).collect::<Vec<_>>(),
                e.detail
            );
        }
    }
}
