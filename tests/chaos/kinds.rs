//! One campaign per command kind. Each makes its own topic and vault,
//! then repeats: change the world a little, kill the command, run it
//! again, check.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::harness::{Campaign, Kill, Tally, compare_records, produce_small};

const PARTITIONS: i32 = 3;

/// A source topic with `n` records and a group part-way through it.
fn source_topic(c: &Campaign, prefix: &str, n: usize) -> (String, String) {
    let topic = unique_topic(prefix);
    c.rt.block_on(create_topic(Cluster::Source, &topic, PARTITIONS, &[]));
    c.rt.block_on(produce_small(&topic, PARTITIONS, n, c.seed));
    let group = format!("{topic}-group");
    let per = (n / PARTITIONS as usize) as i64;
    commit_group(
        Cluster::Source,
        &group,
        &topic,
        &[(0, per / 3), (1, per / 2), (2, per)],
    );
    (topic, group)
}

/// Small packs: even a small topic makes several, so kills land between them.
fn new_vault() -> TestVault {
    TestVault::init_with(&["--pack-size-mib", "1", "--avg-chunk-kib", "4"])
}

fn id_of(o: &std::process::Output) -> Option<String> {
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).ok()?;
    j["id"].as_str().map(str::to_string)
}

/// The snapshot `id` must hold exactly what the source topic holds now
/// (nothing is produced while it runs): every record, every field, at its
/// offset.
fn snapshot_whole(v: &TestVault, id: &str, topic: &str, t: &mut Tally, what: &str) {
    let want = consume_all(Cluster::Source, topic, PARTITIONS);
    let got = v.records(id, topic);
    if want == got {
        t.pass();
    } else {
        let (lost, dup) = compare_records(&want, &got);
        t.records_lost += lost;
        t.records_duplicated += dup;
        t.fail(format!(
            "{what}: snapshot {id} holds {} records, the topic {} ({lost} lost, {dup} duplicated)",
            got.len(),
            want.len()
        ));
    }
}

/// Every snapshot of `before` that no rule let go is still listed.
fn kept(
    v: &TestVault,
    before: &[String],
    may_go: &[String],
    t: &mut Tally,
    what: &str,
) -> Vec<String> {
    let now = Campaign::snapshot_ids(v);
    let lost: Vec<&String> = before
        .iter()
        .filter(|s| !now.contains(s) && !may_go.contains(s))
        .collect();
    t.kept_snapshots_lost += lost.len() as u64;
    t.expect(lost.is_empty(), || {
        format!("{what}: kept snapshots gone: {lost:?}")
    });
    now
}

pub fn snapshot(c: &Campaign) -> Tally {
    let mut t = Tally::default();
    let mut rng = c.rng();
    let (topic, _) = source_topic(c, "chaos-snapshot", 1500);
    let v = new_vault();
    let brokers = Cluster::Source.brokers();
    let args = [
        "snapshot",
        "--brokers",
        &brokers,
        "--topics",
        &topic,
        "--json",
    ];
    let start = Instant::now();
    v.json(&args[..5]);
    let mut took = start.elapsed();
    let mut calls = c.storage_calls(v.command(&args));
    let mut ids = Campaign::snapshot_ids(&v);
    let mut i = 0;
    while t.kills < c.count && i < c.count * 3 + 5 {
        i += 1;
        c.rt.block_on(produce_small(&topic, PARTITIONS, 100, c.seed * 10_000 + i));
        let kill = Campaign::draw_kill(&mut rng, took, calls);
        let what = format!("snapshot kill {i} ({kill})");
        c.run_killed(v.command(&args), &kill, &mut t);
        // A kill anywhere leaves every listed snapshot whole.
        c.check_clean(&v, &mut t, &format!("{what}, before the rerun"));
        // Traced: the next kill is drawn from this run's calls and time.
        let (o, rerun_took, rerun_calls) = Campaign::rerun(v.command(&args));
        (took, calls) = (rerun_took, rerun_calls);
        t.reruns += 1;
        let Some(id) = id_of(&o).filter(|_| o.status.success()) else {
            t.fail(format!("{what}: the rerun failed: {}", stderr(&o)));
            continue;
        };
        snapshot_whole(&v, &id, &topic, &mut t, &what);
        ids = kept(&v, &ids, &[], &mut t, &what);
        c.check_clean(&v, &mut t, &what);
    }
    t
}

/// A restore of `topic` into `target` on the target cluster.
fn restore_args<'a>(
    brokers: &'a str,
    id: &'a str,
    rename: &'a str,
    topic: &'a str,
) -> Vec<&'a str> {
    vec![
        "restore",
        "--snapshot-id",
        id,
        "--brokers",
        brokers,
        "--topics",
        topic,
        "--rename",
        rename,
        "--json",
    ]
}

/// Every record of the source on `target` exactly once (read_committed),
/// and `group` at the translated position of each partition.
fn restored_whole(topic: &str, target: &str, group: &str, t: &mut Tally, what: &str) {
    let want = consume_all(Cluster::Source, topic, PARTITIONS);
    let got = consume_all(Cluster::Target, target, PARTITIONS);
    let (lost, dup) = compare_records(&want, &got);
    t.records_lost += lost;
    t.records_duplicated += dup;
    t.expect(lost + dup == 0, || {
        format!(
            "{what}: {target} holds {} of {} records ({lost} lost, {dup} duplicated)",
            got.len(),
            want.len()
        )
    });
    for p in 0..PARTITIONS {
        let Some(src) = committed(Cluster::Source, group, topic, p) else {
            continue;
        };
        let before = want
            .iter()
            .filter(|r| r.partition == p && r.offset < src)
            .count();
        let on_target: Vec<&TestRecord> = got.iter().filter(|r| r.partition == p).collect();
        let expected = match on_target.get(before) {
            Some(r) => r.offset,
            None => {
                high_watermarks(Cluster::Target, target, p + 1)
                    - high_watermarks(Cluster::Target, target, p)
            }
        };
        let at = committed(Cluster::Target, group, target, p);
        t.expect(at == Some(expected), || {
            format!("{what}: group {group} on {target}/{p} at {at:?}, should be {expected}")
        });
    }
}

pub fn restore(c: &Campaign) -> Tally {
    let mut t = Tally::default();
    let mut rng = c.rng();
    let (topic, group) = source_topic(c, "chaos-restore", 1500);
    let v = new_vault();
    let snap = v.snapshot(&[&topic]);
    let id = snap["id"].as_str().unwrap().to_string();
    let brokers = Cluster::Target.brokers();
    let target = |i: u64| format!("{topic}-r{i}");
    let rename = |i: u64| format!("{topic}={}", target(i));
    let (r0, r1) = (rename(0), rename(1_000_000));
    let start = Instant::now();
    v.json(&restore_args(&brokers, &id, &r0, &topic)[..9]);
    let mut took = start.elapsed();
    let mut calls = c.storage_calls(v.command(&restore_args(&brokers, &id, &r1, &topic)));
    let mut i = 0;
    while t.kills < c.count && i < c.count * 3 + 5 {
        i += 1;
        let r = rename(i);
        let args = restore_args(&brokers, &id, &r, &topic);
        let kill = Campaign::draw_kill(&mut rng, took, calls);
        let what = format!("restore kill {i} ({kill})");
        c.run_killed(v.command(&args), &kill, &mut t);
        // A kill anywhere leaves every listed snapshot whole.
        c.check_clean(&v, &mut t, &format!("{what}, before the rerun"));
        let (o, rerun_took, rerun_calls) = Campaign::rerun(v.command(&args));
        (took, calls) = (rerun_took, rerun_calls);
        t.reruns += 1;
        if !o.status.success() {
            t.fail(format!("{what}: the rerun failed: {}", stderr(&o)));
            continue;
        }
        restored_whole(&topic, &target(i), &group, &mut t, &what);
        c.check_clean(&v, &mut t, &what);
    }
    t
}

/// Per snapshot id, each topic's records when it was taken.
type Expected = Vec<(String, Vec<(String, Vec<TestRecord>)>)>;

pub fn gc(c: &Campaign) -> Tally {
    let mut t = Tally::default();
    let mut rng = c.rng();
    let v = new_vault();
    let prefix = unique_topic("chaos-gc");
    let brokers = Cluster::Source.brokers();
    let regex = format!("^{prefix}-.*");
    let snap_args = ["snapshot", "--brokers", &brokers, "--topic-regex", &regex];
    let gc_args = [
        "gc",
        "--keep-last",
        "2",
        "--group-by",
        "cluster",
        "--repack-below",
        "60",
        // Nothing else runs here: gc may free the packs it has just seen
        // go dead (the default margin would leave them for an hour).
        "--unindexed-min-age",
        "0s",
    ];
    // Each round: a new topic, a snapshot, the older topic deleted, a
    // snapshot; gc then forgets all but the last two and frees the
    // deleted topics' data (repacking what is shared).
    let mut live: Vec<String> = Vec::new();
    // Snapshot id → (topic → its records when taken).
    let mut expected: Expected = Vec::new();
    let round = |i: u64, live: &mut Vec<String>, expected: &mut Expected| {
        let topic = format!("{prefix}-{i}");
        c.rt.block_on(create_topic(Cluster::Source, &topic, 1, &[]));
        c.rt.block_on(produce_small(&topic, 1, 300, c.seed * 10_000 + i));
        live.push(topic);
        for _ in 0..2 {
            let id = v.json(&snap_args)["id"].as_str().unwrap().to_string();
            let holds = live
                .iter()
                .map(|tp| (tp.clone(), consume_all(Cluster::Source, tp, 1)))
                .collect();
            expected.push((id, holds));
            if live.len() > 2 {
                let old = live.remove(0);
                c.rt.block_on(delete_topic(Cluster::Source, &old));
            }
        }
    };
    round(0, &mut live, &mut expected);
    let start = Instant::now();
    v.json(&gc_args);
    let mut took = start.elapsed();
    round(1, &mut live, &mut expected);
    let mut calls = c.storage_calls(v.command(&gc_args));
    let mut i = 1;
    while t.kills < c.count && i < c.count * 3 + 5 {
        i += 1;
        round(i, &mut live, &mut expected);
        let kill = Campaign::draw_kill(&mut rng, took, calls);
        let what = format!("gc kill {i} ({kill})");
        c.run_killed(v.command(&gc_args), &kill, &mut t);
        // A kill anywhere leaves every listed snapshot whole.
        c.check_clean(&v, &mut t, &format!("{what}, before the rerun"));
        let (o, rerun_took, rerun_calls) = Campaign::rerun(v.command(&gc_args));
        (took, calls) = (rerun_took, rerun_calls);
        t.reruns += 1;
        t.expect(o.status.success(), || {
            format!("{what}: the rerun failed: {}", stderr(&o))
        });
        // The two newest snapshots are kept and whole.
        let now = Campaign::snapshot_ids(&v);
        let newest: Vec<_> = expected.iter().rev().take(2).collect();
        for (id, holds) in newest {
            if !now.contains(id) {
                t.kept_snapshots_lost += 1;
                t.fail(format!("{what}: kept snapshot {id} is gone"));
                continue;
            }
            for (topic, want) in holds {
                let got = v.records(id, topic);
                let (lost, dup) = compare_records(want, &got);
                t.records_lost += lost;
                t.records_duplicated += dup;
                t.expect(want == &got, || {
                    format!("{what}: snapshot {id}, {topic}: {lost} lost, {dup} duplicated")
                });
            }
        }
        t.expect(now.len() <= 2, || {
            format!("{what}: {} snapshots left after keep-last 2", now.len())
        });
        c.check_clean(&v, &mut t, &what);
        expected.retain(|(id, _)| now.contains(id));
    }
    for topic in live {
        c.rt.block_on(delete_topic(Cluster::Source, &topic));
    }
    t
}

pub fn forget(c: &Campaign) -> Tally {
    let mut t = Tally::default();
    let mut rng = c.rng();
    let (topic, _) = source_topic(c, "chaos-forget", 900);
    let v = new_vault();
    let brokers = Cluster::Source.brokers();
    let snap = [
        "snapshot",
        "--brokers",
        &brokers,
        "--topics",
        &topic,
        "--json",
    ];
    let snap = &snap[..5];
    for _ in 0..2 {
        v.json(snap);
    }
    let oldest = |v: &TestVault| Campaign::snapshot_ids(v)[0].clone();
    let first = oldest(&v);
    let start = Instant::now();
    v.json(&["forget", &first]);
    let took = start.elapsed();
    v.json(snap);
    let calls = c.storage_calls(v.command(&["forget", &oldest(&v)]));
    let mut i = 0;
    while t.kills < c.count && i < c.count * 3 + 5 {
        i += 1;
        c.rt.block_on(produce_small(&topic, PARTITIONS, 50, c.seed * 10_000 + i));
        let id = v.json(snap)["id"].as_str().unwrap().to_string();
        v.json(snap);
        let before = Campaign::snapshot_ids(&v);
        let victim = before[0].clone();
        let kill = Campaign::draw_kill(&mut rng, took, calls);
        let what = format!("forget kill {i} ({kill})");
        c.run_killed(v.command(&["forget", &victim]), &kill, &mut t);
        // A kill anywhere leaves every listed snapshot whole.
        c.check_clean(&v, &mut t, &format!("{what}, before the rerun"));
        let o = v.run(&["forget", &victim]);
        t.reruns += 1;
        let now = Campaign::snapshot_ids(&v);
        // A kill after the manifest went leaves nothing to forget.
        t.expect(o.status.success() || !now.contains(&victim), || {
            format!("{what}: the rerun failed: {}", stderr(&o))
        });
        t.expect(!now.contains(&victim), || {
            format!("{what}: {victim} is still listed")
        });
        kept(&v, &before, &[victim], &mut t, &what);
        snapshot_whole(&v, &id, &topic, &mut t, &what);
        c.check_clean(&v, &mut t, &what);
    }
    t
}

pub fn check(c: &Campaign) -> Tally {
    let mut t = Tally::default();
    let mut rng = c.rng();
    let (topic, _) = source_topic(c, "chaos-check", 1500);
    let v = new_vault();
    let id = v.snapshot(&[&topic])["id"].as_str().unwrap().to_string();
    let args = ["check", "--read-data"];
    let start = Instant::now();
    let o = v.run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let took = start.elapsed();
    let calls = c.storage_calls(v.command(&args));
    let ids = Campaign::snapshot_ids(&v);
    let mut i = 0;
    while t.kills < c.count && i < c.count * 3 + 5 {
        i += 1;
        let kill = Campaign::draw_kill(&mut rng, took, calls);
        let what = format!("check kill {i} ({kill})");
        c.run_killed(v.command(&args), &kill, &mut t);
        // A kill anywhere leaves every listed snapshot whole.
        c.check_clean(&v, &mut t, &format!("{what}, before the rerun"));
        t.reruns += 1;
        c.check_clean(&v, &mut t, &what);
        kept(&v, &ids, &[], &mut t, &what);
    }
    snapshot_whole(
        &v,
        &id,
        &topic,
        &mut t,
        "check: the snapshot after every kill",
    );
    t
}

/// Sends SIGTERM, as systemd stops a service.
fn terminate(child: &Child) {
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: a plain kill(2) of our own child.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
}

/// Runs `--every` until it reports its first snapshot, then stops it.
fn one_interval(mut cmd: Command, t: &mut Tally, what: &str) -> Option<String> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let mut id = None;
    for line in std::io::BufReader::new(out).lines() {
        let Ok(line) = line else { break };
        if let Ok(j) = serde_json::from_str::<serde_json::Value>(&line)
            && let Some(s) = j["id"].as_str()
        {
            id = Some(s.to_string());
            terminate(&child);
            break;
        }
    }
    let o = child.wait_with_output().unwrap();
    t.expect(o.status.success() && id.is_some(), || {
        format!(
            "{what}: the rerun of --every made no snapshot or failed: {}",
            stderr(&o)
        )
    });
    id
}

pub fn continuous(c: &Campaign) -> Tally {
    let mut t = Tally::default();
    let mut rng = c.rng();
    let (topic, _) = source_topic(c, "chaos-every", 1200);
    let v = new_vault();
    let brokers = Cluster::Source.brokers();
    let args = [
        "snapshot",
        "--brokers",
        &brokers,
        "--topics",
        &topic,
        "--every",
        "1s",
        "--keep-last",
        "3",
        "--json",
    ];
    // Three intervals: kills land during snapshots and between them.
    let window = Duration::from_millis(3500);
    let mut i = 0;
    let mut before = Campaign::snapshot_ids(&v);
    while t.kills < c.count && i < c.count * 3 + 5 {
        i += 1;
        c.rt.block_on(produce_small(&topic, PARTITIONS, 100, c.seed * 10_000 + i));
        let kill = Kill::AtMoment(Duration::from_millis(
            rng.range(0, window.as_millis() as u64),
        ));
        let what = format!("continuous kill {i} ({kill})");
        c.run_killed(v.command(&args), &kill, &mut t);
        // A kill anywhere leaves every listed snapshot whole.
        c.check_clean(&v, &mut t, &format!("{what}, before the rerun"));
        t.reruns += 1;
        let Some(id) = one_interval(v.command(&args), &mut t, &what) else {
            continue;
        };
        snapshot_whole(&v, &id, &topic, &mut t, &what);
        // keep-last 3: the three newest before this run survive its
        // prune unless newer ones took their place.
        let now = Campaign::snapshot_ids(&v);
        let newer = now.iter().filter(|s| !before.contains(s)).count();
        let must: Vec<String> = before
            .iter()
            .rev()
            .take(3usize.saturating_sub(newer))
            .cloned()
            .collect();
        let may_go: Vec<String> = before
            .iter()
            .filter(|s| !must.contains(s))
            .cloned()
            .collect();
        before = kept(&v, &before, &may_go, &mut t, &what);
        c.check_clean(&v, &mut t, &what);
    }
    t
}

fn spawn(mut cmd: Command) -> Child {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Three workers, one of them killed and started again; the others and
/// the restarted one must finish the run.
fn workers_round(
    c: &Campaign,
    cmd: &dyn Fn() -> Command,
    kill: &Kill,
    t: &mut Tally,
    what: &str,
) -> Vec<serde_json::Value> {
    let others: Vec<Child> = (0..2).map(|_| spawn(cmd())).collect();
    let victim = cmd();
    let killed = c.run_killed(victim, kill, t);
    let mut reports = Vec::new();
    let again = spawn(cmd());
    for child in others.into_iter().chain([again]) {
        let o = child.wait_with_output().unwrap();
        if !o.status.success() {
            t.fail(format!(
                "{what}: a worker failed (victim killed: {killed}): {}",
                stderr(&o)
            ));
            continue;
        }
        match serde_json::from_slice(&o.stdout) {
            Ok(j) => reports.push(j),
            Err(e) => t.fail(format!("{what}: a worker's report: {e}")),
        }
    }
    t.reruns += 1;
    reports
}

pub fn snapshot_workers(c: &Campaign) -> Tally {
    let mut t = Tally::default();
    let mut rng = c.rng();
    let (topic, _) = source_topic(c, "chaos-workers", 1500);
    let v = new_vault();
    let brokers = Cluster::Source.brokers();
    // A run name per round: a worker that starts under the name of a run
    // that committed moments ago joins that run (the rejoin window).
    let run = std::cell::RefCell::new(unique_topic("chaos-run"));
    let cmd = || {
        v.command(&[
            "snapshot",
            "--brokers",
            &brokers,
            "--topics",
            &topic,
            "--workers",
            &run.borrow(),
            "--session-timeout",
            "2",
            "--partitions-per-batch",
            "1",
            "--json",
        ])
    };
    let start = Instant::now();
    let first = workers_round(c, &cmd, &Kill::AtMoment(Duration::ZERO), &mut t, "warm-up");
    let took = start.elapsed().min(Duration::from_secs(3));
    assert!(first.len() == 3, "warm-up: {:?}", t.problems);
    let calls = c.storage_calls(v.command(&[
        "snapshot",
        "--brokers",
        &brokers,
        "--topics",
        &topic,
        "--json",
    ])) / 3;
    let mut ids = Campaign::snapshot_ids(&v);
    t = Tally::default();
    let mut i = 0;
    while t.kills < c.count && i < c.count * 3 + 5 {
        i += 1;
        c.rt.block_on(produce_small(&topic, PARTITIONS, 100, c.seed * 10_000 + i));
        let kill = Campaign::draw_kill(&mut rng, took, calls);
        let what = format!("snapshot-workers kill {i} ({kill})");
        *run.borrow_mut() = unique_topic("chaos-run");
        let reports = workers_round(c, &cmd, &kill, &mut t, &what);
        let committed: Vec<&str> = reports.iter().filter_map(|r| r["id"].as_str()).collect();
        let Some(id) = committed.first() else {
            t.fail(format!(
                "{what}: no worker reported the snapshot: {reports:?}"
            ));
            continue;
        };
        t.expect(committed.iter().all(|x| x == id), || {
            format!("{what}: workers disagree: {committed:?}")
        });
        snapshot_whole(&v, id, &topic, &mut t, &what);
        ids = kept(&v, &ids, &[], &mut t, &what);
        c.check_clean(&v, &mut t, &what);
    }
    t
}

pub fn restore_workers(c: &Campaign) -> Tally {
    let mut t = Tally::default();
    let mut rng = c.rng();
    let (topic, group) = source_topic(c, "chaos-rworkers", 1500);
    let v = new_vault();
    let id = v.snapshot(&[&topic])["id"].as_str().unwrap().to_string();
    let brokers = Cluster::Target.brokers();
    let target = |i: u64| format!("{topic}-w{i}");
    let round = |i: u64, kill: &Kill, t: &mut Tally, what: &str| {
        let run = format!("{}-{i}", unique_topic("chaos-rrun"));
        let rename = format!("{topic}={}", target(i));
        let cmd = || {
            v.command(&[
                "restore",
                "--snapshot-id",
                &id,
                "--brokers",
                &brokers,
                "--topics",
                &topic,
                "--rename",
                &rename,
                "--workers",
                &run,
                "--session-timeout",
                "2",
                "--partitions-in-flight",
                "1",
                "--json",
            ])
        };
        workers_round(c, &cmd, kill, t, what)
    };
    let start = Instant::now();
    round(0, &Kill::AtMoment(Duration::ZERO), &mut t, "warm-up");
    let took = start.elapsed().min(Duration::from_secs(3));
    t = Tally::default();
    let mut i = 0;
    while t.kills < c.count && i < c.count * 3 + 5 {
        i += 1;
        let kill = Campaign::draw_kill(&mut rng, took, 0);
        let what = format!("restore-workers kill {i} ({kill})");
        round(i, &kill, &mut t, &what);
        restored_whole(&topic, &target(i), &group, &mut t, &what);
        c.check_clean(&v, &mut t, &what);
    }
    t
}
