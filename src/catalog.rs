//! The vault's snapshots as a catalog: listed with their manifests, grouped
//! by the history they belong to, and `latest` resolved within one source.
//!
//! One vault may hold the snapshots of several clusters (sources), each
//! with its own selections of topics. Retention rules count each group on
//! its own (as restic's `--group-by` does), and `latest` never picks another
//! cluster's snapshot because it happens to be newer.

use std::collections::BTreeSet;

use vault_format::ObjectId;
use vault_format::manifest::{Selection, SnapshotManifest};

use crate::error::{Error, Result};
use crate::repository::{HoldsKeys, Repository};

/// A committed snapshot and its manifest.
#[derive(Clone, Debug)]
pub struct CatalogEntry {
    pub id: ObjectId,
    pub manifest: SnapshotManifest,
}

impl CatalogEntry {
    pub(crate) fn holds_topic(&self, topic: &str) -> bool {
        self.manifest.topics.iter().any(|t| t.name == topic)
    }
}

/// Every committed snapshot, oldest first.
pub fn list<S: HoldsKeys>(repo: &Repository<S>) -> Result<Vec<CatalogEntry>> {
    let mut out = Vec::new();
    for id in repo.snapshot_ids()? {
        out.push(CatalogEntry {
            id,
            manifest: repo.read_snapshot(&id)?,
        });
    }
    out.sort_by_key(|e| (e.manifest.time_ms, e.id));
    Ok(out)
}

/// How `vault gc` groups snapshots before its keep rules apply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GroupBy {
    /// By source and topic selection (the default).
    #[default]
    SourceAndSelection,
    /// By source only.
    Source,
    /// All snapshots in one group (how vault counted before groups).
    None,
}

impl GroupBy {
    /// Parses `--group-by`: `cluster,topics`, `cluster` or `none`.
    pub fn parse(s: &str) -> Result<GroupBy> {
        let mut parts: Vec<&str> = s.split(',').map(str::trim).collect();
        parts.sort_unstable();
        match parts.as_slice() {
            ["cluster", "topics"] => Ok(GroupBy::SourceAndSelection),
            ["cluster"] => Ok(GroupBy::Source),
            ["none"] => Ok(GroupBy::None),
            _ => Err(Error::Usage(format!(
                "--group-by {s:?}: expected cluster,topics (the default), cluster or none"
            ))),
        }
    }

    pub fn key(self, m: &SnapshotManifest) -> GroupKey {
        match self {
            GroupBy::SourceAndSelection => GroupKey {
                source: Some(m.source.clone()),
                selection: Some(m.selection.clone()),
            },
            GroupBy::Source => GroupKey {
                source: Some(m.source.clone()),
                selection: None,
            },
            GroupBy::None => GroupKey::default(),
        }
    }
}

/// What a group of snapshots has in common.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupKey {
    pub source: Option<String>,
    pub selection: Option<Selection>,
}

impl std::fmt::Display for GroupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.source, &self.selection) {
            (None, _) => f.write_str("all snapshots"),
            (Some(s), None) => write!(f, "cluster {s}"),
            (Some(s), Some(sel)) => write!(f, "cluster {s}, topics {sel}"),
        }
    }
}

/// [`resolve`] over every snapshot of `repo`: what a restore of `topics`
/// from `source` means by `wanted`.
pub fn resolve_in<S: HoldsKeys>(
    repo: &Repository<S>,
    wanted: &str,
    topics: &[String],
    source: Option<&str>,
) -> Result<ObjectId> {
    resolve(&list(repo)?, wanted, topics, source)
}

/// Resolves `latest`, a full id, or a unique prefix of one. `latest` is the
/// newest snapshot that holds every topic in `topics` (any topic, when it
/// is empty), among the snapshots of `source` when given. When snapshots of
/// two sources qualify, the operator must say which source is meant.
pub(crate) fn resolve(
    entries: &[CatalogEntry],
    wanted: &str,
    topics: &[String],
    source: Option<&str>,
) -> Result<ObjectId> {
    let of_source = |e: &&CatalogEntry| source.is_none_or(|s| e.manifest.source == s);
    if wanted == "latest" {
        let candidates: Vec<&CatalogEntry> = entries
            .iter()
            .filter(of_source)
            .filter(|e| topics.iter().all(|t| e.holds_topic(t)))
            .collect();
        let sources: BTreeSet<&str> = candidates
            .iter()
            .map(|e| e.manifest.source.as_str())
            .collect();
        if sources.len() > 1 {
            let what = if topics.is_empty() {
                "the vault holds snapshots".to_string()
            } else {
                format!("snapshots holding {}", topics.join(","))
            };
            return Err(Error::Usage(format!(
                "`latest` is ambiguous: {what} of {} sources ({}); pass --source with one of them",
                sources.len(),
                sources.into_iter().collect::<Vec<_>>().join(", ")
            )));
        }
        return candidates
            .iter()
            .max_by_key(|e| (e.manifest.time_ms, e.id))
            .map(|e| e.id)
            .ok_or_else(|| not_found(entries, topics, source));
    }
    let w = wanted.to_ascii_lowercase();
    let matches: Vec<&CatalogEntry> = entries
        .iter()
        .filter(|e| e.id.to_hex().starts_with(&w))
        .collect();
    match matches.as_slice() {
        [] => Err(Error::NotFound(format!(
            "no snapshot with id {wanted} (list them with `vault snapshots`)"
        ))),
        [one] => {
            if let Some(s) = source
                && one.manifest.source != s
            {
                return Err(Error::Usage(format!(
                    "snapshot {wanted} is of source {}, not {s}",
                    one.manifest.source
                )));
            }
            Ok(one.id)
        }
        many => Err(Error::Usage(format!(
            "snapshot id prefix {wanted} is ambiguous; it matches {}",
            many.iter()
                .map(|m| m.id.to_hex()[..16].to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Why `latest` found nothing: no snapshot at all, or none of the source,
/// or a topic no snapshot holds (then say which topics there are).
fn not_found(entries: &[CatalogEntry], topics: &[String], source: Option<&str>) -> Error {
    let of_source: Vec<&CatalogEntry> = entries
        .iter()
        .filter(|e| source.is_none_or(|s| e.manifest.source == s))
        .collect();
    if entries.is_empty() {
        return Error::NotFound("the vault has no snapshots yet".into());
    }
    if of_source.is_empty() {
        return Error::NotFound(format!(
            "the vault has no snapshot of source {} (list them with `vault snapshots`)",
            source.unwrap_or_default()
        ));
    }
    let missing: Vec<&str> = topics
        .iter()
        .filter(|t| !of_source.iter().any(|e| e.holds_topic(t)))
        .map(String::as_str)
        .collect();
    let newest = of_source
        .iter()
        .max_by_key(|e| (e.manifest.time_ms, e.id))
        .map(|e| {
            e.manifest
                .topics
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    if missing.is_empty() {
        Error::NotFound(format!(
            "no single snapshot holds all of {}; restore them one at a time, or name a snapshot \
             (list them with `vault snapshots`)",
            topics.join(",")
        ))
    } else {
        Error::NotFound(format!(
            "topic {} is not in any snapshot; the newest holds: {newest}",
            missing.join(", ")
        ))
    }
}

impl<S: HoldsKeys> Repository<S> {
    /// Resolves `latest` (which must then be unambiguous: one source in
    /// the vault), a full id, or a unique prefix of one. Commands that know
    /// their topics or source use [`resolve`].
    pub fn resolve_snapshot(&self, wanted: &str) -> Result<ObjectId> {
        let entries = if wanted == "latest" {
            list(self)?
        } else {
            // An id needs no manifest read.
            let mut matching = Vec::new();
            for id in self.snapshot_ids()? {
                if id.to_hex().starts_with(&wanted.to_ascii_lowercase()) {
                    matching.push(CatalogEntry {
                        id,
                        manifest: self.read_snapshot(&id)?,
                    });
                }
            }
            matching
        };
        resolve(&entries, wanted, &[], None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vault_format::manifest::{SnapshotStats, TopicSnapshot};

    fn entry(b: u8, time_ms: u64, source: &str, topics: &[&str]) -> CatalogEntry {
        CatalogEntry {
            id: ObjectId([b; 32]),
            manifest: SnapshotManifest {
                time_ms,
                parent: None,
                source: source.into(),
                source_cluster_id: source.into(),
                selection: Selection {
                    topics: topics.iter().map(|t| t.to_string()).collect(),
                    ..Selection::default()
                },
                hostname: "h".into(),
                tags: vec![],
                read_committed: true,
                topics: topics
                    .iter()
                    .map(|t| TopicSnapshot {
                        name: t.to_string(),
                        topic_id: None,
                        replication_factor: 1,
                        configs: vec![],
                        partitions: vec![],
                    })
                    .collect(),
                groups: vec![],
                estate: None,
                stats: SnapshotStats::default(),
            },
        }
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn latest_stays_within_a_source_and_holds_the_topics() {
        let e = vec![
            entry(1, 10, "A", &["orders"]),
            entry(2, 20, "B", &["payments"]),
            entry(3, 30, "A", &["audit"]),
        ];
        assert_eq!(
            resolve(&e, "latest", &s(&["orders"]), None).unwrap(),
            e[0].id
        );
        assert_eq!(
            resolve(&e, "latest", &s(&["payments"]), None).unwrap(),
            e[1].id
        );
        assert_eq!(resolve(&e, "latest", &[], Some("A")).unwrap(), e[2].id);
        let err = resolve(&e, "latest", &[], None).unwrap_err().to_string();
        assert!(err.contains("--source") && err.contains("A, B"), "{err}");
        assert!(resolve(&e, "latest", &s(&["nope"]), None).is_err());
    }

    #[test]
    fn a_topic_in_two_sources_needs_a_source() {
        let e = vec![
            entry(1, 10, "A", &["orders"]),
            entry(2, 20, "B", &["orders"]),
        ];
        let err = resolve(&e, "latest", &s(&["orders"]), None).unwrap_err();
        assert!(err.to_string().contains("--source"), "{err}");
        assert_eq!(
            resolve(&e, "latest", &s(&["orders"]), Some("A")).unwrap(),
            e[0].id
        );
        // An id names one snapshot whatever its source, unless --source disagrees.
        assert_eq!(resolve(&e, "0202", &[], None).unwrap(), e[1].id);
        assert!(resolve(&e, "0202", &[], Some("A")).is_err());
    }

    #[test]
    fn group_by_parses_its_three_forms() {
        assert_eq!(
            GroupBy::parse("cluster,topics").unwrap(),
            GroupBy::SourceAndSelection
        );
        assert_eq!(
            GroupBy::parse("topics, cluster").unwrap(),
            GroupBy::SourceAndSelection
        );
        assert_eq!(GroupBy::parse("cluster").unwrap(), GroupBy::Source);
        assert_eq!(GroupBy::parse("none").unwrap(), GroupBy::None);
        assert!(GroupBy::parse("topics").is_err());
    }
}
