//! The retention model: random snapshots over sources, selections and
//! tags, random rule sets split between a profile, `vault gc`'s flags and
//! `snapshot --every`'s, and a random sequence of snapshots, gc runs and
//! continuous-mode prunes. After every prune, no snapshot that any of the
//! rules configured for that command keeps (each evaluated on its own, as
//! `vault gc` would with only those rules) was forgotten, and continuous
//! mode never forgot a snapshot outside its own group.

use std::collections::BTreeSet;

use proptest::prelude::*;
use vault_format::ObjectId;
use vault_format::manifest::Selection;

use super::*;
use crate::catalog::{GroupBy, GroupKey};
use crate::gc::policy::{EveryScope, every_policy, gc_policy};
use crate::gc::{KeepPolicy, SnapshotInfo};

const HOUR: u64 = 3_600_000;
const SOURCES: [&str; 2] = ["cluster-a", "cluster-b"];
const TAGS: [&str; 3] = ["release", "pre-migration", "nightly"];

fn selection(i: usize) -> Selection {
    Selection {
        topics: vec![format!("topic-{i}")],
        ..Selection::default()
    }
}

fn key(source: usize, sel: usize) -> GroupKey {
    GroupKey {
        source: Some(SOURCES[source].into()),
        selection: Some(selection(sel)),
    }
}

fn tags_of(mask: u8) -> Vec<String> {
    TAGS.iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, t)| (*t).to_string())
        .collect()
}

fn rules() -> impl Strategy<Value = KeepRules> {
    (
        prop::sample::select(vec![0usize, 0, 1, 2, 3, 5]),
        prop::sample::select(vec![0usize, 0, 0, 2, 6]),
        prop::sample::select(vec![0usize, 0, 1, 3]),
        prop::sample::select(vec![0usize, 0, 0, 1, 2]),
        prop::sample::select(vec![0usize, 0, 0, 1]),
        prop::option::weighted(0.3, 1u64..72),
        0u8..8,
    )
        .prop_map(
            |(last, hourly, daily, weekly, monthly, within_h, tags)| KeepRules {
                last,
                hourly,
                daily,
                weekly,
                monthly,
                within_ms: within_h.map(|h| h * HOUR),
                // Tags are rarer in rules than in snapshots.
                tags: tags_of(tags & 0b011),
            },
        )
}

#[derive(Clone, Debug)]
enum Op {
    /// A snapshot of (source, selection) with these tags, this many hours
    /// after the previous one.
    Snapshot {
        source: usize,
        sel: usize,
        tags: u8,
        after_h: u64,
    },
    Gc {
        group_by: GroupBy,
    },
    /// A continuous-mode prune after a snapshot of (source, selection)
    /// taken with `own_tags`.
    Every {
        source: usize,
        sel: usize,
        own_tags: u8,
        whole_vault: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..2usize, 0..2usize, prop::sample::select(vec![0u8, 0, 0, 1, 2, 4, 3]), 0..30u64)
            .prop_map(|(source, sel, tags, after_h)| Op::Snapshot { source, sel, tags, after_h }),
        1 => prop::sample::select(vec![GroupBy::SourceAndSelection, GroupBy::Source, GroupBy::None])
            .prop_map(|group_by| Op::Gc { group_by }),
        2 => (0..2usize, 0..2usize, prop::sample::select(vec![0u8, 0, 4]), prop::bool::weighted(0.2))
            .prop_map(|(source, sel, own_tags, whole_vault)| Op::Every { source, sel, own_tags, whole_vault }),
    ]
}

/// What `rules` alone keeps, counted as `vault gc --group-by group_by`
/// would count it with only those rules.
fn kept_alone(
    rules: &KeepRules,
    group_by: GroupBy,
    snaps: &[SnapshotInfo],
    now: u64,
) -> BTreeSet<ObjectId> {
    if rules.is_empty() {
        return BTreeSet::new();
    }
    let regrouped: Vec<SnapshotInfo> = snaps
        .iter()
        .cloned()
        .map(|mut s| {
            s.group = match group_by {
                GroupBy::SourceAndSelection => s.history.clone(),
                GroupBy::Source => GroupKey {
                    source: s.history.source.clone(),
                    selection: None,
                },
                GroupBy::None => GroupKey::default(),
            };
            s
        })
        .collect();
    let p = KeepPolicy {
        rules: rules.clone(),
        group_by,
        scope: None,
    };
    p.apply(&regrouped, now)
        .unwrap()
        .into_iter()
        .filter(|d| d.keep())
        .map(|d| d.id)
        .collect()
}

/// Whether merging `flags` over `profile` is the one refused combination:
/// a rule given a smaller number on the command line than in the profile.
fn is_ambiguous(profile: &KeepRules, flags: &KeepRules) -> bool {
    let pairs = [
        (profile.last, flags.last),
        (profile.hourly, flags.hourly),
        (profile.daily, flags.daily),
        (profile.weekly, flags.weekly),
        (profile.monthly, flags.monthly),
    ];
    pairs.iter().any(|&(p, f)| p > 0 && f > 0 && f < p)
        || matches!((profile.within_ms, flags.within_ms), (Some(p), Some(f)) if f < p)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn no_snapshot_a_configured_rule_keeps_is_forgotten(
        profile in prop::option::weighted(0.7, rules()),
        gc_flags in rules(),
        every_flags in rules(),
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let profile_layer = profile.clone().map(|r| (Origin::Profile("prod".into()), r));
        let mut snaps: Vec<SnapshotInfo> = Vec::new();
        let mut now = 1_795_348_800_000u64;
        let mut next_id = 0u32;
        for op in ops {
            match op {
                Op::Snapshot { source, sel, tags, after_h } => {
                    now += after_h * HOUR + 1;
                    next_id += 1;
                    let mut id = [0u8; 32];
                    id[..4].copy_from_slice(&next_id.to_le_bytes());
                    snaps.push(SnapshotInfo {
                        id: ObjectId(id),
                        time_ms: now,
                        tags: tags_of(tags),
                        group: key(source, sel),
                        history: key(source, sel),
                        pinned_by: Vec::new(),
                    });
                }
                Op::Gc { group_by } => {
                    let merged = gc_policy(profile_layer.clone(), gc_flags.clone(), group_by);
                    let policy = match merged {
                        Err(e) => {
                            prop_assert!(
                                profile.as_ref().is_some_and(|p| is_ambiguous(p, &gc_flags)),
                                "refused an unambiguous combination: {e}"
                            );
                            continue;
                        }
                        Ok(p) if p.is_empty() => continue,
                        Ok(p) => p,
                    };
                    let infos: Vec<SnapshotInfo> = snaps
                        .iter()
                        .cloned()
                        .map(|mut s| {
                            s.group = match group_by {
                                GroupBy::SourceAndSelection => s.history.clone(),
                                GroupBy::Source => GroupKey { source: s.history.source.clone(), selection: None },
                                GroupBy::None => GroupKey::default(),
                            };
                            s
                        })
                        .collect();
                    let kept: BTreeSet<ObjectId> = policy
                        .apply(&infos, now)
                        .unwrap()
                        .into_iter()
                        .filter(|d| d.keep())
                        .map(|d| d.id)
                        .collect();
                    let mut wanted = kept_alone(&gc_flags, group_by, &snaps, now);
                    if let Some(p) = &profile {
                        wanted.extend(kept_alone(p, group_by, &snaps, now));
                    }
                    prop_assert!(wanted.is_subset(&kept), "gc forgot what a configured rule keeps");
                    // Never a surprise the other way either: nothing kept
                    // that no rule keeps.
                    prop_assert_eq!(&wanted, &kept);
                    snaps.retain(|s| kept.contains(&s.id));
                }
                Op::Every { source, sel, own_tags, whole_vault } => {
                    let scope = if whole_vault {
                        EveryScope::Vault
                    } else {
                        EveryScope::Own { group: key(source, sel), tags: tags_of(own_tags) }
                    };
                    let policy = match every_policy(profile_layer.clone(), every_flags.clone(), scope) {
                        Err(e) => {
                            let ambiguous = profile.as_ref().is_some_and(|p| is_ambiguous(p, &every_flags));
                            let merged = profile.clone().unwrap_or_default();
                            let tags_only = [every_flags.last, every_flags.hourly, every_flags.daily,
                                every_flags.weekly, every_flags.monthly, merged.last, merged.hourly,
                                merged.daily, merged.weekly, merged.monthly].iter().all(|n| *n == 0)
                                && every_flags.within_ms.is_none() && merged.within_ms.is_none();
                            prop_assert!(
                                ambiguous || tags_only,
                                "refused an unambiguous combination: {e}"
                            );
                            continue;
                        }
                        Ok(None) => continue,
                        Ok(Some(p)) => p,
                    };
                    let kept: BTreeSet<ObjectId> = policy
                        .apply(&snaps, now)
                        .unwrap()
                        .into_iter()
                        .filter(|d| d.keep())
                        .map(|d| d.id)
                        .collect();
                    let group_by = GroupBy::SourceAndSelection;
                    let mut wanted = kept_alone(&every_flags, group_by, &snaps, now);
                    if let Some(p) = &profile {
                        wanted.extend(kept_alone(p, group_by, &snaps, now));
                    }
                    prop_assert!(wanted.is_subset(&kept), "--every forgot what a configured rule keeps");
                    for s in snaps.iter().filter(|s| !kept.contains(&s.id)) {
                        if !whole_vault {
                            prop_assert_eq!(&s.history, &key(source, sel), "--every pruned another group");
                            let own = tags_of(own_tags);
                            prop_assert!(
                                s.tags.iter().all(|t| own.contains(t)),
                                "--every pruned a snapshot tagged by another command"
                            );
                        }
                    }
                    snaps.retain(|s| kept.contains(&s.id));
                }
            }
        }
    }

    /// Adding an origin's rules can only keep more.
    #[test]
    fn merging_keeps_the_union(a in rules(), b in rules()) {
        prop_assume!(!is_ambiguous(&a, &b));
        let m = KeepRules::merge(&[(Origin::Profile("p".into()), a.clone()), (Origin::Flags, b.clone())]).unwrap();
        prop_assert_eq!(m.last, a.last.max(b.last));
        prop_assert_eq!(m.hourly, a.hourly.max(b.hourly));
        prop_assert_eq!(m.daily, a.daily.max(b.daily));
        prop_assert_eq!(m.weekly, a.weekly.max(b.weekly));
        prop_assert_eq!(m.monthly, a.monthly.max(b.monthly));
        prop_assert_eq!(m.within_ms, a.within_ms.max(b.within_ms));
        for t in a.tags.iter().chain(&b.tags) {
            prop_assert!(m.tags.contains(t));
        }
    }
}

#[test]
fn a_smaller_number_on_the_command_line_is_refused_and_named() {
    let profile = KeepRules {
        daily: 30,
        within_ms: Some(7 * 24 * HOUR),
        ..KeepRules::default()
    };
    let flags = KeepRules {
        daily: 7,
        ..KeepRules::default()
    };
    let e = KeepRules::merge(&[
        (Origin::Profile("prod".into()), profile.clone()),
        (Origin::Flags, flags),
    ])
    .unwrap_err()
    .to_string();
    assert!(e.contains("--keep-daily 7"), "{e}");
    assert!(e.contains("profile prod's keep.daily = 30"), "{e}");
    let flags = KeepRules {
        within_ms: Some(24 * HOUR),
        ..KeepRules::default()
    };
    let e = KeepRules::merge(&[
        (Origin::Profile("prod".into()), profile),
        (Origin::Flags, flags),
    ])
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("--keep-within 1d") && e.contains("keep.within = 7d"),
        "{e}"
    );
}

#[test]
fn continuous_mode_with_only_tag_rules_is_refused() {
    let tags_only = KeepRules {
        tags: vec!["release".into()],
        ..KeepRules::default()
    };
    let own = EveryScope::Own {
        group: GroupKey::default(),
        tags: vec![],
    };
    let e = every_policy(None, tags_only.clone(), own.clone())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("--keep-tag release") && e.contains("--keep-last"),
        "{e}"
    );
    // A profile of tags alone, used by --every with no flags: the same.
    let profile = Some((Origin::Profile("prod".into()), tags_only));
    assert!(every_policy(profile.clone(), KeepRules::default(), own.clone()).is_err());
    // With a count rule it is fine.
    let last = KeepRules {
        last: 3,
        ..KeepRules::default()
    };
    assert!(every_policy(profile, last, own).unwrap().is_some());
}

#[test]
fn a_tag_flag_adds_to_the_profiles_rules() {
    // The wave-2 bug: `gc --profile prod --keep-tag release` dropped the
    // profile's daily rule and forgot every untagged snapshot.
    let merged = gc_policy(
        Some((
            Origin::Profile("prod".into()),
            KeepRules {
                daily: 30,
                ..KeepRules::default()
            },
        )),
        KeepRules {
            tags: vec!["release".into()],
            ..KeepRules::default()
        },
        GroupBy::default(),
    )
    .unwrap();
    assert_eq!(merged.rules.daily, 30);
    assert_eq!(merged.rules.tags, vec!["release".to_string()]);
}
