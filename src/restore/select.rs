//! What the operator asked a restore for ([`RestoreRequest`]), and that
//! request resolved against a snapshot: which topics go where (`--topics`,
//! `--rename`) and which consumer groups are translated.

use std::collections::{BTreeSet, HashMap};

use vault_format::manifest::{GroupSnapshot, SnapshotManifest, TopicSnapshot};

use super::progress::RestoreSelection;
use super::window::TimeWindow;
use crate::error::{Error, Result};

/// The command line of a restore, as the operator typed it.
#[derive(Clone, Debug, Default)]
pub struct RestoreSettings<'a> {
    pub snapshot: &'a str,
    pub topics: &'a [String],
    /// `SRC=DST` each.
    pub renames: &'a [String],
    pub from_time: Option<&'a str>,
    pub to_time: Option<&'a str>,
    /// `all`, `none` or `g1,g2`.
    pub consumer_groups: &'a str,
    /// `KEY=VALUE` each.
    pub topic_configs: &'a [String],
    pub source: Option<&'a str>,
    pub abandon_unfinished: bool,
}

/// What the operator asked for.
#[derive(Clone, Debug, Default)]
pub struct RestoreRequest {
    /// `latest`, an id, or a unique prefix.
    pub snapshot: String,
    /// Empty: every topic of the snapshot.
    pub topics: Vec<String>,
    /// Source topic → target topic.
    pub renames: Vec<(String, String)>,
    pub window: TimeWindow,
    pub groups: GroupSelection,
    /// Configs for the topics restore creates, over the backed-up ones.
    pub topic_configs: Vec<(String, String)>,
    /// `--source`: with `latest`, the source whose snapshot is meant.
    pub source: Option<String>,
    /// Leave unfinished restores into the same topics, instead of refusing.
    pub abandon_unfinished: bool,
}

fn pair(s: &str, flag: &str, example: &str) -> Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() && !v.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(Error::Usage(format!("{flag} {s:?}: expected {example}"))),
    }
}

impl RestoreRequest {
    /// Checks and parses what the operator typed; nothing is asked of the
    /// vault or the cluster yet.
    pub fn from_settings(s: &RestoreSettings<'_>) -> Result<RestoreRequest> {
        let window = TimeWindow {
            from_ms: s
                .from_time
                .map(|t| crate::time::parse_time(t, "--from-time"))
                .transpose()?,
            to_ms: s
                .to_time
                .map(|t| crate::time::parse_time(t, "--to-time"))
                .transpose()?,
        };
        if let (Some(f), Some(t)) = (window.from_ms, window.to_ms)
            && f >= t
        {
            return Err(Error::Usage("--from-time must be before --to-time".into()));
        }
        Ok(RestoreRequest {
            snapshot: s.snapshot.to_string(),
            topics: s.topics.to_vec(),
            renames: s
                .renames
                .iter()
                .map(|r| pair(r, "--rename", "SRC=DST"))
                .collect::<Result<_>>()?,
            window,
            groups: GroupSelection::parse(s.consumer_groups),
            topic_configs: s
                .topic_configs
                .iter()
                .map(|c| pair(c, "--topic-config", "KEY=VALUE, e.g. retention.ms=-1"))
                .collect::<Result<_>>()?,
            source: s.source.map(str::to_string),
            abandon_unfinished: s.abandon_unfinished,
        })
    }
}

/// Which consumer groups to translate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum GroupSelection {
    #[default]
    All,
    None,
    Named(Vec<String>),
}

impl GroupSelection {
    pub fn parse(s: &str) -> GroupSelection {
        match s.trim() {
            "all" => GroupSelection::All,
            "none" | "" => GroupSelection::None,
            list => GroupSelection::Named(
                list.split(',')
                    .map(|g| g.trim().to_string())
                    .filter(|g| !g.is_empty())
                    .collect(),
            ),
        }
    }
}

/// The command's options resolved against one snapshot: which topics go
/// where, and which groups are translated.
pub(super) fn selection_for(
    m: &SnapshotManifest,
    req: &RestoreRequest,
) -> Result<RestoreSelection> {
    let selected = select_topics(m, req)?;
    let renames = check_renames(&selected, req)?;
    let groups = check_groups(m, &selected, &req.groups)?;
    Ok(RestoreSelection {
        topics: selected
            .iter()
            .map(|t| {
                let target = renames.get(&t.name).unwrap_or(&t.name).clone();
                (t.name.clone(), target)
            })
            .collect(),
        from_ms: req.window.from_ms,
        to_ms: req.window.to_ms,
        groups: groups.into_iter().collect(),
    })
}

fn select_topics<'m>(
    m: &'m SnapshotManifest,
    req: &RestoreRequest,
) -> Result<Vec<&'m TopicSnapshot>> {
    if req.topics.is_empty() {
        return Ok(m.topics.iter().collect());
    }
    let mut out = Vec::new();
    for name in &req.topics {
        let t = m.topics.iter().find(|t| &t.name == name).ok_or_else(|| {
            Error::Usage(format!(
                "topic {name} is not in the snapshot; it holds: {}",
                topic_list(m)
            ))
        })?;
        out.push(t);
    }
    Ok(out)
}

fn topic_list(m: &SnapshotManifest) -> String {
    m.topics
        .iter()
        .map(|t| t.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn check_renames(
    selected: &[&TopicSnapshot],
    req: &RestoreRequest,
) -> Result<HashMap<String, String>> {
    let mut map = HashMap::new();
    for (src, dst) in &req.renames {
        if !selected.iter().any(|t| &t.name == src) {
            return Err(Error::Usage(format!(
                "--rename {src}={dst}: topic {src} is not among the topics being restored ({})",
                selected
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        if dst.is_empty()
            || dst.len() > 249
            || !dst
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(Error::Usage(format!(
                "--rename {src}={dst}: {dst:?} is not a valid Kafka topic name"
            )));
        }
        if map.insert(src.clone(), dst.clone()).is_some() {
            return Err(Error::Usage(format!("--rename names {src} twice")));
        }
    }
    let mut targets = BTreeSet::new();
    for t in selected {
        let target = map.get(&t.name).unwrap_or(&t.name);
        if !targets.insert(target.clone()) {
            return Err(Error::Usage(format!(
                "two topics would be restored into {target}; rename one of them"
            )));
        }
    }
    Ok(map)
}

fn check_groups(
    m: &SnapshotManifest,
    selected: &[&TopicSnapshot],
    sel: &GroupSelection,
) -> Result<BTreeSet<String>> {
    let on_selected = |g: &GroupSnapshot| {
        g.offsets
            .iter()
            .any(|o| selected.iter().any(|t| t.name == o.topic))
    };
    let available: BTreeSet<String> = m
        .groups
        .iter()
        .filter(|g| on_selected(g))
        .map(|g| g.group_id.clone())
        .collect();
    match sel {
        GroupSelection::All => Ok(available),
        GroupSelection::None => Ok(BTreeSet::new()),
        GroupSelection::Named(names) => {
            for n in names {
                if !available.contains(n) {
                    return Err(Error::Usage(format!(
                        "consumer group {n} has no offsets on the restored topics in this snapshot; groups there: {}",
                        if available.is_empty() {
                            "none".to_string()
                        } else {
                            available.iter().cloned().collect::<Vec<_>>().join(", ")
                        }
                    )));
                }
            }
            Ok(names.iter().cloned().collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_parse() {
        assert_eq!(GroupSelection::parse("all"), GroupSelection::All);
        assert_eq!(GroupSelection::parse("none"), GroupSelection::None);
        assert_eq!(
            GroupSelection::parse("a, b"),
            GroupSelection::Named(vec!["a".into(), "b".into()])
        );
    }
}
