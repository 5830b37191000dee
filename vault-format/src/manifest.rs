//! The snapshot manifest: what one snapshot holds. Writing it is the commit
//! point of a snapshot. See `docs/format.md` § Snapshot manifest.
//!
//! Version 2 (the one written) says which history every partition belongs
//! to: the source it was read from, the selection it was made with, and
//! each topic's Kafka topic ID. Version 1 manifests decode with no topic
//! IDs, the cluster id as their source and their topic names as selection.
//!
//! Version 3 adds the cluster estate (ACLs, quotas, SCRAM users, dynamic
//! broker configs; `crate::estate`). Version 1 and 2 manifests decode with
//! none recorded.

use crate::error::{FormatError, Result};
use crate::estate::ClusterEstate;
use crate::id::{ChunkId, ObjectId, TopicId};
use crate::tree::{Summary, TreeRoot};
use crate::wire::{Reader, Writer};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotManifest {
    pub time_ms: u64,
    pub parent: Option<ObjectId>,
    /// The name of the source the snapshot's histories belong to: the
    /// cluster id, unless the operator named it (`--source`). Never empty.
    pub source: String,
    /// The Kafka cluster id, empty only when the cluster gave none (then
    /// `source` was named by the operator).
    pub source_cluster_id: String,
    /// The topic selection the snapshot was made with.
    pub selection: Selection,
    pub hostname: String,
    pub tags: Vec<String>,
    /// True when only committed transactional records were read.
    pub read_committed: bool,
    pub topics: Vec<TopicSnapshot>,
    pub groups: Vec<GroupSnapshot>,
    /// The cluster's ACLs, quotas, SCRAM users and dynamic broker configs
    /// (version 3); `None` when the snapshot did not record them (older
    /// versions), which is not the same as a cluster without any.
    pub estate: Option<ClusterEstate>,
    pub stats: SnapshotStats,
}

/// The source of a version 1 manifest written without a cluster id.
pub const UNKNOWN_V1_SOURCE: &str = "(unknown cluster)";

/// How a snapshot chose its topics, as the operator gave it.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Selection {
    /// Named topics (`--topics`), sorted; empty when a regex selected.
    pub topics: Vec<String>,
    /// `--topic-regex`, as given.
    pub regex: Option<String>,
    /// `--exclude`, as given.
    pub exclude: Option<String>,
}

impl std::fmt::Display for Selection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.regex {
            Some(r) => write!(f, "regex {r}")?,
            None if self.topics.is_empty() => write!(f, "all topics")?,
            None => write!(f, "{}", self.topics.join(","))?,
        }
        if let Some(e) = &self.exclude {
            write!(f, " exclude {e}")?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicSnapshot {
    pub name: String,
    /// The topic's Kafka topic ID at the cut; `None` only in version 1
    /// manifests, or when the cluster gave none and the source was named.
    pub topic_id: Option<TopicId>,
    pub replication_factor: u32,
    /// The topic's non-default configuration.
    pub configs: Vec<(String, String)>,
    /// One per partition, in partition order; the count is the topic's.
    pub partitions: Vec<PartitionSnapshot>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionSnapshot {
    pub partition: u32,
    /// The partition's log start offset at the cut.
    pub log_start_offset: i64,
    /// The cut: the snapshot holds the records before this offset.
    pub end_offset: i64,
    /// `None` when the vault holds no record of this partition.
    pub root: Option<TreeRoot>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupSnapshot {
    pub group_id: String,
    pub protocol_type: String,
    pub state: String,
    pub offsets: Vec<GroupOffset>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupOffset {
    pub topic: String,
    pub partition: u32,
    pub offset: i64,
    pub metadata: Option<String>,
    pub leader_epoch: Option<i32>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotStats {
    pub records_read: u64,
    pub bytes_read: u64,
    pub bytes_added: u64,
    pub chunks_added: u64,
    pub duration_ms: u64,
}

impl SnapshotManifest {
    pub fn total_records(&self) -> u64 {
        self.topics
            .iter()
            .flat_map(|t| &t.partitions)
            .filter_map(|p| p.root)
            .map(|r| r.summary.records)
            .sum()
    }

    pub fn total_bytes(&self) -> u64 {
        self.topics
            .iter()
            .flat_map(|t| &t.partitions)
            .filter_map(|p| p.root)
            .map(|r| r.summary.bytes)
            .sum()
    }

    /// The version 3 body (the header of the sealed object says 3).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(1024);
        w.u64(self.time_ms);
        match &self.parent {
            None => w.u8(0),
            Some(p) => w.u8(1).raw(&p.0),
        };
        w.str(&self.source).str(&self.source_cluster_id);
        let sel = &self.selection;
        w.varint(sel.topics.len() as u64);
        for t in &sel.topics {
            w.str(t);
        }
        w.opt_bytes(sel.regex.as_deref().map(str::as_bytes))
            .opt_bytes(sel.exclude.as_deref().map(str::as_bytes));
        w.str(&self.hostname).varint(self.tags.len() as u64);
        for t in &self.tags {
            w.str(t);
        }
        w.u8(u8::from(self.read_committed));
        w.varint(self.topics.len() as u64);
        for t in &self.topics {
            w.str(&t.name);
            match &t.topic_id {
                None => w.u8(0),
                Some(id) => w.u8(1).raw(&id.0),
            };
            w.varint(u64::from(t.replication_factor))
                .varint(t.configs.len() as u64);
            for (k, v) in &t.configs {
                w.str(k).str(v);
            }
            w.varint(t.partitions.len() as u64);
            for p in &t.partitions {
                w.varint(u64::from(p.partition))
                    .zigzag(p.log_start_offset)
                    .zigzag(p.end_offset);
                write_root(&mut w, p.root.as_ref());
            }
        }
        w.varint(self.groups.len() as u64);
        for g in &self.groups {
            w.str(&g.group_id)
                .str(&g.protocol_type)
                .str(&g.state)
                .varint(g.offsets.len() as u64);
            for o in &g.offsets {
                w.str(&o.topic)
                    .varint(u64::from(o.partition))
                    .zigzag(o.offset);
                w.opt_bytes(o.metadata.as_deref().map(str::as_bytes));
                match o.leader_epoch {
                    None => w.u8(0),
                    Some(e) => w.u8(1).zigzag(i64::from(e)),
                };
            }
        }
        match &self.estate {
            None => {
                w.u8(0);
            }
            Some(e) => {
                w.u8(1);
                e.write(&mut w);
            }
        }
        let s = &self.stats;
        w.varint(s.records_read)
            .varint(s.bytes_read)
            .varint(s.bytes_added)
            .varint(s.chunks_added)
            .varint(s.duration_ms);
        w.into_inner()
    }

    /// Decodes a version 3 body.
    pub fn decode(bytes: &[u8]) -> Result<SnapshotManifest> {
        SnapshotManifest::decode_version(3, bytes)
    }

    /// Decodes a body of the given header version (1, 2 or 3).
    pub fn decode_version(version: u8, bytes: &[u8]) -> Result<SnapshotManifest> {
        let (v2, v3) = match version {
            1 => (false, false),
            2 => (true, false),
            3 => (true, true),
            v => {
                return Err(FormatError::UnsupportedVersion {
                    what: "snapshot manifest",
                    found: u32::from(v),
                    supported: 3,
                });
            }
        };
        let bad = |d: &str| FormatError::malformed("snapshot manifest", d.to_string());
        let utf8 = |b: &[u8]| {
            String::from_utf8(b.to_vec())
                .map_err(|_| FormatError::malformed("snapshot manifest", "selection is not UTF-8"))
        };
        let mut r = Reader::new(bytes, "snapshot manifest");
        let time_ms = r.u64()?;
        let parent = match r.u8()? {
            0 => None,
            1 => Some(ObjectId(r.array()?)),
            _ => return Err(bad("parent flag")),
        };
        let (source, source_cluster_id, selection) = if v2 {
            let source = r.str()?.to_string();
            if source.is_empty() {
                return Err(bad("empty source"));
            }
            let cluster = r.str()?.to_string();
            let n = r.count(1)?;
            let topics = (0..n)
                .map(|_| r.str().map(str::to_string))
                .collect::<Result<Vec<_>>>()?;
            let regex = r.opt_bytes()?.map(utf8).transpose()?;
            let exclude = r.opt_bytes()?.map(utf8).transpose()?;
            (
                source,
                cluster,
                Some(Selection {
                    topics,
                    regex,
                    exclude,
                }),
            )
        } else {
            let cluster = r.str()?.to_string();
            // Format 1 fell back to an empty cluster id when the cluster gave none.
            let source = if cluster.is_empty() {
                UNKNOWN_V1_SOURCE.to_string()
            } else {
                cluster.clone()
            };
            (source, cluster, None)
        };
        let hostname = r.str()?.to_string();
        let nt = r.count(1)?;
        let tags = (0..nt)
            .map(|_| r.str().map(str::to_string))
            .collect::<Result<_>>()?;
        let read_committed = match r.u8()? {
            0 => false,
            1 => true,
            _ => return Err(bad("isolation flag")),
        };
        let n = r.count(4)?;
        let mut topics = Vec::with_capacity(n);
        for _ in 0..n {
            let name = r.str()?.to_string();
            let topic_id = if v2 {
                match r.u8()? {
                    0 => None,
                    1 => Some(TopicId(r.array()?)),
                    _ => return Err(bad("topic id flag")),
                }
            } else {
                None
            };
            let replication_factor =
                u32::try_from(r.varint()?).map_err(|_| bad("replication factor"))?;
            let nc = r.count(2)?;
            let configs = (0..nc)
                .map(|_| Ok((r.str()?.to_string(), r.str()?.to_string())))
                .collect::<Result<Vec<_>>>()?;
            let np = r.count(4)?;
            let mut partitions = Vec::with_capacity(np);
            for i in 0..np {
                let partition = u32::try_from(r.varint()?).map_err(|_| bad("partition"))?;
                if partition as usize != i {
                    return Err(bad("partitions out of order"));
                }
                let log_start_offset = r.zigzag()?;
                let end_offset = r.zigzag()?;
                let root = read_root(&mut r, "snapshot manifest")?;
                partitions.push(PartitionSnapshot {
                    partition,
                    log_start_offset,
                    end_offset,
                    root,
                });
            }
            topics.push(TopicSnapshot {
                name,
                topic_id,
                replication_factor,
                configs,
                partitions,
            });
        }
        let ng = r.count(4)?;
        let mut groups = Vec::with_capacity(ng);
        for _ in 0..ng {
            let group_id = r.str()?.to_string();
            let protocol_type = r.str()?.to_string();
            let state = r.str()?.to_string();
            let no = r.count(4)?;
            let mut offsets = Vec::with_capacity(no);
            for _ in 0..no {
                let topic = r.str()?.to_string();
                let partition = u32::try_from(r.varint()?).map_err(|_| bad("partition"))?;
                let offset = r.zigzag()?;
                let metadata = r
                    .opt_bytes()?
                    .map(|b| {
                        String::from_utf8(b.to_vec()).map_err(|_| bad("metadata is not UTF-8"))
                    })
                    .transpose()?;
                let leader_epoch = match r.u8()? {
                    0 => None,
                    1 => Some(i32::try_from(r.zigzag()?).map_err(|_| bad("leader epoch"))?),
                    _ => return Err(bad("epoch flag")),
                };
                offsets.push(GroupOffset {
                    topic,
                    partition,
                    offset,
                    metadata,
                    leader_epoch,
                });
            }
            groups.push(GroupSnapshot {
                group_id,
                protocol_type,
                state,
                offsets,
            });
        }
        let estate = if v3 {
            match r.u8()? {
                0 => None,
                1 => Some(ClusterEstate::read(&mut r)?),
                _ => return Err(bad("estate flag")),
            }
        } else {
            None
        };
        let stats = SnapshotStats {
            records_read: r.varint()?,
            bytes_read: r.varint()?,
            bytes_added: r.varint()?,
            chunks_added: r.varint()?,
            duration_ms: r.varint()?,
        };
        r.finish()?;
        // A version 1 snapshot's selection is not known: its topic set
        // stands in for it, which is what it grouped by.
        let selection = selection.unwrap_or_else(|| {
            let mut names: Vec<String> = topics.iter().map(|t| t.name.clone()).collect();
            names.sort();
            Selection {
                topics: names,
                ..Selection::default()
            }
        });
        Ok(SnapshotManifest {
            time_ms,
            parent,
            source,
            source_cluster_id,
            selection,
            hostname,
            tags,
            read_committed,
            topics,
            groups,
            estate,
            stats,
        })
    }
}

/// A partition's optional tree root: flag 0, or flag 1 and the root with
/// its summary (docs/format.md § Snapshot manifest). Run objects use the
/// same layout.
pub(crate) fn write_root(w: &mut Writer, root: Option<&TreeRoot>) {
    match root {
        None => w.u8(0),
        Some(r) => {
            let s = r.summary;
            w.u8(1)
                .raw(&r.id.0)
                .u8(r.level)
                .zigzag(s.first_offset)
                .zigzag(s.last_offset)
                .varint(s.records)
                .varint(s.bytes)
                .zigzag(s.min_ts)
                .zigzag(s.max_ts)
        }
    };
}

pub(crate) fn read_root(r: &mut Reader<'_>, what: &'static str) -> Result<Option<TreeRoot>> {
    Ok(match r.u8()? {
        0 => None,
        1 => Some(TreeRoot {
            id: ChunkId(r.array()?),
            level: r.u8()?,
            summary: Summary {
                first_offset: r.zigzag()?,
                last_offset: r.zigzag()?,
                records: r.varint()?,
                bytes: r.varint()?,
                min_ts: r.zigzag()?,
                max_ts: r.zigzag()?,
            },
        }),
        _ => return Err(FormatError::malformed(what, "root flag".to_string())),
    })
}

#[cfg(test)]
#[path = "manifest_tests.rs"]
pub(crate) mod tests;
