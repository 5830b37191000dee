//! Which snapshots `vault gc` keeps. Snapshots are grouped first (by
//! source and topic selection unless `--group-by` says otherwise) and the
//! rules count each group on its own, so one cluster's snapshots never
//! push another's out. A snapshot kept by any rule stays. Bucketed rules
//! (hourly … monthly) keep the newest snapshot of each of the N most
//! recent buckets that have one, as restic and borg do. Where the rules
//! come from, and how several origins combine, is [`super::rules`]'s.

use std::collections::{BTreeMap, BTreeSet};

use vault_format::ObjectId;

use super::rules::{KeepRules, Origin};
use crate::catalog::{GroupBy, GroupKey};
use crate::error::{Error, Result};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeepPolicy {
    pub rules: KeepRules,
    /// How snapshots are grouped before the rules count them.
    pub group_by: GroupBy,
    /// When set, only the snapshots in this scope may be forgotten; every
    /// other one is kept, whatever the rules say (`snapshot --every`).
    pub scope: Option<Scope>,
}

/// The snapshots a command may prune: one source and selection, and only
/// those with no tag but the command's own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    /// A source-and-selection key ([`GroupBy::SourceAndSelection`]).
    pub group: GroupKey,
    pub tags: Vec<String>,
}

impl From<KeepRules> for KeepPolicy {
    fn from(rules: KeepRules) -> KeepPolicy {
        KeepPolicy {
            rules,
            ..KeepPolicy::default()
        }
    }
}

/// A snapshot as the policy sees it.
#[derive(Clone, Debug)]
pub struct SnapshotInfo {
    pub id: ObjectId,
    pub time_ms: u64,
    pub tags: Vec<String>,
    /// The group whose rules decide for it.
    pub group: GroupKey,
    /// Its source and selection, whatever the grouping ([`Scope`] compares it).
    pub history: GroupKey,
    /// Why something outside the rules holds it (an unfinished restore's pin).
    pub pinned_by: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub id: ObjectId,
    pub group: GroupKey,
    /// Why it is kept; empty means it is forgotten.
    pub reasons: Vec<String>,
}

impl Decision {
    pub fn keep(&self) -> bool {
        !self.reasons.is_empty()
    }
}

impl KeepPolicy {
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Decides for every snapshot, group by group, newest first within a
    /// group. `now_ms` is the clock `--keep-within` measures from (fixed in tests).
    pub fn apply(&self, snapshots: &[SnapshotInfo], now_ms: u64) -> Result<Vec<Decision>> {
        self.check()?;
        let mut groups: BTreeMap<&GroupKey, Vec<SnapshotInfo>> = BTreeMap::new();
        let mut out = Vec::with_capacity(snapshots.len());
        for s in snapshots {
            if let Some(why) = self.out_of_scope(s) {
                out.push(Decision {
                    id: s.id,
                    group: s.group.clone(),
                    reasons: vec![why],
                });
                continue;
            }
            groups.entry(&s.group).or_default().push(s.clone());
        }
        for members in groups.into_values() {
            out.extend(self.apply_to_group(members, now_ms));
        }
        let pinned: BTreeMap<ObjectId, &Vec<String>> = snapshots
            .iter()
            .filter(|s| !s.pinned_by.is_empty())
            .map(|s| (s.id, &s.pinned_by))
            .collect();
        for d in &mut out {
            if let Some(why) = pinned.get(&d.id) {
                d.reasons.extend(why.iter().cloned());
            }
        }
        Ok(out)
    }

    /// Why the scope keeps `s` out of the rules' reach, if it does.
    fn out_of_scope(&self, s: &SnapshotInfo) -> Option<String> {
        let scope = self.scope.as_ref()?;
        if s.history != scope.group {
            return Some("another source or selection".into());
        }
        s.tags
            .iter()
            .find(|t| !scope.tags.contains(t))
            .map(|t| format!("tagged {t} by another command"))
    }

    /// Refuses a policy with no rule: it would forget every snapshot.
    pub fn check(&self) -> Result<()> {
        if self.is_empty() {
            return Err(Error::Usage(
                "gc needs at least one keep rule (--keep-last, --keep-hourly, --keep-daily, --keep-weekly, \
                 --keep-monthly, --keep-within or --keep-tag, or a keep block in the profile); without one \
                 it would forget every snapshot"
                    .into(),
            ));
        }
        Ok(())
    }

    fn apply_to_group(&self, mut sorted: Vec<SnapshotInfo>, now_ms: u64) -> Vec<Decision> {
        let r = &self.rules;
        sorted.sort_by_key(|s| std::cmp::Reverse((s.time_ms, s.id)));
        let buckets: [(&str, usize, Bucket); 4] = [
            ("hourly", r.hourly, |t| {
                crate::time::signed_ms(t / 3_600_000)
            }),
            ("daily", r.daily, |t| crate::time::signed_ms(t / 86_400_000)),
            // Weeks start on Monday; 1970-01-01 was a Thursday.
            ("weekly", r.weekly, |t| {
                (crate::time::signed_ms(t / 86_400_000) + 3).div_euclid(7)
            }),
            ("monthly", r.monthly, month_of),
        ];
        let mut seen: Vec<BTreeSet<i64>> = vec![BTreeSet::new(); buckets.len()];
        let mut out = Vec::with_capacity(sorted.len());
        for (i, s) in sorted.iter().enumerate() {
            let mut reasons = Vec::new();
            if i < r.last {
                reasons.push(format!("last {}", r.last));
            }
            for (b, (name, n, bucket)) in buckets.iter().enumerate() {
                let key = bucket(s.time_ms);
                if seen[b].len() < *n && !seen[b].contains(&key) {
                    seen[b].insert(key);
                    reasons.push(format!("{name} {n}"));
                }
            }
            if let Some(w) = r.within_ms
                && s.time_ms.saturating_add(w) >= now_ms
            {
                reasons.push("within".to_string());
            }
            for t in &s.tags {
                if r.tags.contains(t) {
                    reasons.push(format!("tag {t}"));
                }
            }
            out.push(Decision {
                id: s.id,
                group: s.group.clone(),
                reasons,
            });
        }
        out
    }
}

/// Maps a time to its hour, day, week or month.
type Bucket = fn(u64) -> i64;

fn month_of(t: u64) -> i64 {
    let (y, m, _) = crate::time::civil_from_days(crate::time::signed_ms(t / 86_400_000));
    y * 12 + m - 1
}

/// The policy `vault gc` (and `vault stats`) applies: the profile's rules
/// and the command's flags together, over every group of the vault.
pub fn gc_policy(
    profile: Option<(Origin, KeepRules)>,
    flags: KeepRules,
    group_by: GroupBy,
) -> Result<KeepPolicy> {
    let mut layers: Vec<(Origin, KeepRules)> = profile.into_iter().collect();
    layers.push((Origin::Flags, flags));
    Ok(KeepPolicy {
        rules: KeepRules::merge(&layers)?,
        group_by,
        scope: None,
    })
}

/// Which snapshots continuous mode (`snapshot --every`) prunes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EveryScope {
    /// Only its own group: the same source and selection, and no tag but
    /// the ones it sets itself (the default).
    Own { group: GroupKey, tags: Vec<String> },
    /// Every group of the vault, each counted on its own, as `vault gc`.
    Vault,
}

/// The policy `snapshot --every` applies after each snapshot, or `None`
/// when no origin gives it a rule (it then prunes nothing).
pub fn every_policy(
    profile: Option<(Origin, KeepRules)>,
    flags: KeepRules,
    scope: EveryScope,
) -> Result<Option<KeepPolicy>> {
    let mut layers: Vec<(Origin, KeepRules)> = profile.into_iter().collect();
    layers.push((Origin::Flags, flags));
    let rules = KeepRules::merge(&layers)?;
    if rules.is_empty() {
        return Ok(None);
    }
    // Tag rules alone keep nothing continuous mode takes (its snapshots
    // carry its own tags at most): it would forget each snapshot right
    // after taking it.
    let counts = rules.last + rules.hourly + rules.daily + rules.weekly + rules.monthly;
    if counts == 0 && rules.within_ms.is_none() {
        return Err(Error::Usage(format!(
            "snapshot --every with only tag rules ({}) would forget every snapshot it takes as soon as it \
             took it; add --keep-last N or --keep-within DURATION (or a count rule in the profile's keep block)",
            rules
                .tags
                .iter()
                .map(|t| format!("--keep-tag {t}"))
                .collect::<Vec<_>>()
                .join(" ")
        )));
    }
    let scope = match scope {
        EveryScope::Own { group, tags } => Some(Scope { group, tags }),
        EveryScope::Vault => None,
    };
    Ok(Some(KeepPolicy {
        rules,
        group_by: GroupBy::default(),
        scope,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3_600_000;
    const DAY: u64 = 24 * HOUR;
    /// Sunday 2026-11-22 12:00 UTC: the fixed clock.
    const NOW: u64 = 1_795_348_800_000;

    fn snaps(times: &[u64]) -> Vec<SnapshotInfo> {
        times
            .iter()
            .enumerate()
            .map(|(i, t)| SnapshotInfo {
                id: ObjectId([i as u8; 32]),
                group: GroupKey::default(),
                history: GroupKey::default(),
                pinned_by: Vec::new(),
                time_ms: *t,
                tags: if i == 0 {
                    vec!["release".into()]
                } else {
                    vec![]
                },
            })
            .collect()
    }

    fn kept(p: &KeepPolicy, s: &[SnapshotInfo]) -> Vec<u64> {
        let mut t: Vec<u64> = p
            .apply(s, NOW)
            .unwrap()
            .into_iter()
            .filter(Decision::keep)
            .map(|d| s.iter().find(|x| x.id == d.id).unwrap().time_ms)
            .collect();
        t.sort_unstable();
        t
    }

    /// One snapshot every 6 hours for 60 days before NOW.
    fn history() -> Vec<SnapshotInfo> {
        snaps(&(0..240).map(|i| NOW - i * 6 * HOUR).collect::<Vec<_>>())
    }

    #[test]
    fn no_rule_is_an_error() {
        assert!(KeepPolicy::default().apply(&history(), NOW).is_err());
    }

    #[test]
    fn keep_last_and_daily() {
        let h = history();
        let p = KeepPolicy::from(KeepRules {
            last: 3,
            ..KeepRules::default()
        });
        assert_eq!(kept(&p, &h), vec![NOW - 12 * HOUR, NOW - 6 * HOUR, NOW]);
        let p = KeepPolicy::from(KeepRules {
            daily: 3,
            ..KeepRules::default()
        });
        // The newest snapshot of each of the three most recent days (UTC).
        assert_eq!(
            kept(&p, &h),
            vec![NOW - 2 * DAY + 6 * HOUR, NOW - DAY + 6 * HOUR, NOW]
        );
    }

    #[test]
    fn weekly_monthly_within_and_tags() {
        let h = history();
        let p = KeepPolicy::from(KeepRules {
            weekly: 2,
            ..KeepRules::default()
        });
        // NOW is a Sunday: this week (Mon 16th..) and the week before.
        assert_eq!(kept(&p, &h), vec![NOW - 7 * DAY + 6 * HOUR, NOW]);
        let p = KeepPolicy::from(KeepRules {
            monthly: 3,
            ..KeepRules::default()
        });
        // November, October and September 2026 (history reaches back to 23 Sept).
        let k = kept(&p, &h);
        assert_eq!(k.len(), 3);
        assert_eq!(k[2], NOW);
        assert_eq!(k[1], 1_793_491_200_000 - 6 * HOUR, "31 October 18:00");
        let p = KeepPolicy::from(KeepRules {
            within_ms: Some(crate::time::parse_duration("2d").unwrap()),
            ..KeepRules::default()
        });
        assert_eq!(kept(&p, &h).len(), 9);
        let p = KeepPolicy::from(KeepRules {
            tags: vec!["release".into()],
            ..KeepRules::default()
        });
        assert_eq!(kept(&p, &h), vec![NOW]);
    }

    #[test]
    fn each_group_is_counted_on_its_own() {
        // Two clusters snapshot daily, A at 01:00 and B at 02:00.
        let group = |s: &str| GroupKey {
            source: Some(s.into()),
            selection: None,
        };
        let mut all = Vec::new();
        for day in 0..10u64 {
            for (i, (src, hour)) in [("A", 1), ("B", 2)].into_iter().enumerate() {
                all.push(SnapshotInfo {
                    id: ObjectId([(day * 2 + i as u64) as u8; 32]),
                    time_ms: NOW - 12 * HOUR - day * DAY + hour * HOUR,
                    tags: vec![],
                    group: group(src),
                    history: group(src),
                    pinned_by: Vec::new(),
                });
            }
        }
        let p = KeepPolicy::from(KeepRules {
            daily: 7,
            ..KeepRules::default()
        });
        let d = p.apply(&all, NOW).unwrap();
        for src in ["A", "B"] {
            let kept = d
                .iter()
                .filter(|d| d.keep() && d.group == group(src))
                .count();
            assert_eq!(kept, 7, "source {src}");
        }
        // One group for all: B's later hour wins every day and A loses all.
        let one: Vec<SnapshotInfo> = all
            .iter()
            .cloned()
            .map(|mut s| {
                s.group = GroupKey::default();
                s
            })
            .collect();
        let d = p.apply(&one, NOW).unwrap();
        assert_eq!(d.iter().filter(|d| d.keep()).count(), 7);
        assert!(
            d.iter().filter(|d| d.keep()).all(|d| d.id.0[0] % 2 == 1),
            "only B's snapshots survive without groups"
        );
    }

    #[test]
    fn a_huge_keep_within_keeps_everything() {
        let p = KeepPolicy::from(KeepRules {
            within_ms: Some(u64::MAX),
            ..KeepRules::default()
        });
        assert_eq!(kept(&p, &history()).len(), 240);
    }
}
