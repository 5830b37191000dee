//! Keep rules, and the one place where the rules of several origins (a
//! configuration profile, a command's flags, `snapshot --every`'s flags)
//! are merged into the policy a command applies.
//!
//! The meaning, stated once (docs/operator-guide.md § How keep rules
//! combine): a snapshot is kept when *any* rule of *any* origin keeps it.
//! Merging takes, rule by rule, the larger count, the longer
//! `within` and the union of the tags, which keeps exactly the union of
//! what each origin's rules keep on their own (every rule is monotone in
//! its number), so adding a rule, or an origin, can only keep more.
//!
//! One combination is ambiguous: the same rule with a *smaller* number on
//! the command line than in the profile. The operator may mean "this
//! time, fewer", which merging cannot do without forgetting what the
//! profile keeps; it is refused with a message that says so.

use crate::error::{Error, Result};

/// What one origin says to keep. Zero (or `None`) is "no such rule".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeepRules {
    pub last: usize,
    pub hourly: usize,
    pub daily: usize,
    pub weekly: usize,
    pub monthly: usize,
    /// Keep everything newer than this many milliseconds before now.
    pub within_ms: Option<u64>,
    pub tags: Vec<String>,
}

/// Where a set of rules came from, to name it in a refusal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// `[profile.NAME.keep]` of the configuration file.
    Profile(String),
    /// The command's own `--keep-*` flags.
    Flags,
}

impl Origin {
    fn describe(&self, rule: &str, value: &str) -> String {
        match self {
            Origin::Profile(p) => format!("profile {p}'s keep.{rule} = {value}"),
            Origin::Flags => format!("--keep-{rule} {value}"),
        }
    }
}

impl KeepRules {
    pub fn is_empty(&self) -> bool {
        self.last == 0
            && self.hourly == 0
            && self.daily == 0
            && self.weekly == 0
            && self.monthly == 0
            && self.within_ms.is_none()
            && self.tags.is_empty()
    }

    /// The rules that keep what any of `layers` keeps, in the order of
    /// precedence (profile first, then flags). Refuses a later layer that
    /// gives a rule a smaller number than an earlier one.
    pub fn merge(layers: &[(Origin, KeepRules)]) -> Result<KeepRules> {
        let mut out = KeepRules::default();
        let mut set_by: [Option<&Origin>; 6] = [None; 6];
        for (origin, r) in layers {
            let counts = [
                ("last", r.last, &mut out.last),
                ("hourly", r.hourly, &mut out.hourly),
                ("daily", r.daily, &mut out.daily),
                ("weekly", r.weekly, &mut out.weekly),
                ("monthly", r.monthly, &mut out.monthly),
            ];
            for (i, (rule, n, merged)) in counts.into_iter().enumerate() {
                if n == 0 {
                    continue;
                }
                if let Some(earlier) = set_by[i]
                    && n < *merged
                {
                    return Err(ambiguous(
                        rule,
                        &earlier.describe(rule, &merged.to_string()),
                        &origin.describe(rule, &n.to_string()),
                    ));
                }
                *merged = (*merged).max(n);
                set_by[i] = Some(origin);
            }
            if let Some(w) = r.within_ms {
                if let (Some(earlier), Some(m)) = (set_by[5], out.within_ms)
                    && w < m
                {
                    return Err(ambiguous(
                        "within",
                        &earlier.describe("within", &crate::time::format_duration(m)),
                        &origin.describe("within", &crate::time::format_duration(w)),
                    ));
                }
                out.within_ms = Some(out.within_ms.map_or(w, |m| m.max(w)));
                set_by[5] = Some(origin);
            }
            for t in &r.tags {
                if !out.tags.contains(t) {
                    out.tags.push(t.clone());
                }
            }
        }
        Ok(out)
    }
}

fn ambiguous(rule: &str, earlier: &str, later: &str) -> Error {
    Error::Usage(format!(
        "{later} and {earlier} both set keep-{rule}. Keep rules from a profile and the command line add \
         up (a snapshot any rule keeps is kept), so the smaller number would keep nothing more; vault \
         will not guess whether you meant to keep fewer. Drop one of them, or give the larger number"
    ))
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
