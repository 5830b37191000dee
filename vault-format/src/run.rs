//! Run objects: the shared state of a snapshot that several worker
//! processes take together (`vault snapshot --workers NAME`). See
//! `docs/format.md` § Run objects and `docs/design.md` § Distributed
//! snapshot.
//!
//! - The [`RunPlan`] is the cut, taken once by the first worker and written
//!   create-only, so racing workers agree on one plan: a manifest template
//!   (the cut's ends, log starts, groups and configs, each partition's root
//!   being the tree it continues) and, per partition, where reading starts.
//! - A [`RunPart`] is one finished partition: its new tree root and what it
//!   cost, written create-only after its packs and index objects are durable.
//!
//! - The [`RunCommit`] names the snapshot the run committed, so a worker
//!   that finds the plan gone can tell a committed run from a dropped one.
//!
//! The manifest is a pure function of the plan and its parts, so every
//! worker that sees all parts writes the same bytes under the same name:
//! the snapshot is committed once, whoever commits it.

use crate::error::{FormatError, Result};
use crate::id::ObjectId;
use crate::manifest::{SnapshotManifest, read_root, write_root};
use crate::tree::TreeRoot;
use crate::wire::{Reader, Writer};

/// Where reading starts in one partition of a plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlannedPartition {
    /// After what the vault already holds (or the log start, if later).
    pub read_from: i64,
    /// Offsets `[from, to)` retention deleted before vault read them.
    pub retention_gap: Option<(i64, i64)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunPlan {
    /// The operator's name for the run (`--workers NAME`).
    pub name: String,
    /// Random; parts name the plan they belong to, so a part of a plan that
    /// was dropped never counts for the next one of the same name.
    pub plan_id: [u8; 16],
    pub created_ms: u64,
    /// The snapshot as it will be committed, without its parts: each
    /// partition's root is the tree it continues, its ends are the cut, and
    /// the stats are zero.
    pub template: SnapshotManifest,
    /// One per partition of the template, in its order (topic by topic,
    /// partition by partition).
    pub partitions: Vec<PlannedPartition>,
    /// Leave out records older than this many milliseconds before
    /// `template.time_ms` (the data horizon); `None` keeps all.
    pub data_horizon_ms: Option<u64>,
    /// What the planning worker warned about, for every worker to report.
    pub warnings: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunPart {
    pub plan_id: [u8; 16],
    /// The partition's place in the plan (topic by topic, partition by partition).
    pub index: u32,
    /// The partition's tree after this snapshot.
    pub root: Option<TreeRoot>,
    /// The log start offset the snapshot records: the cut's, or later when
    /// retention deleted records after the cut and before they were read.
    pub log_start_offset: i64,
    /// Offsets `[from, to)` retention deleted after the cut.
    pub deleted: Vec<(i64, i64)>,
    pub records_read: u64,
    pub bytes_read: u64,
    pub bytes_added: u64,
    pub chunks_added: u64,
    pub started_ms: u64,
    pub finished_ms: u64,
    /// Who wrote it: `host/pid`, for `vault status`.
    pub worker: String,
    /// Set when the partition's topic was deleted (or deleted and created
    /// again) while the run read it: the part then holds nothing, and the
    /// committed snapshot leaves the whole topic out. Why, for the report.
    pub topic_gone: Option<String>,
}

impl RunPlan {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(1024);
        w.str(&self.name)
            .raw(&self.plan_id)
            .u64(self.created_ms)
            .bytes(&self.template.encode())
            .varint(self.partitions.len() as u64);
        for p in &self.partitions {
            w.zigzag(p.read_from);
            match p.retention_gap {
                None => w.u8(0),
                Some((a, b)) => w.u8(1).zigzag(a).zigzag(b),
            };
        }
        match self.data_horizon_ms {
            None => w.u8(0),
            Some(h) => w.u8(1).varint(h),
        };
        w.varint(self.warnings.len() as u64);
        for s in &self.warnings {
            w.str(s);
        }
        w.into_inner()
    }

    /// Decodes a version 2 body (its template is a version 3 manifest).
    pub fn decode(bytes: &[u8]) -> Result<RunPlan> {
        RunPlan::decode_version(2, bytes)
    }

    /// Decodes a body of the given header version: version 1 plans (format
    /// 2) hold a version 2 manifest as their template.
    pub fn decode_version(version: u8, bytes: &[u8]) -> Result<RunPlan> {
        const WHAT: &str = "run plan";
        let manifest_version = match version {
            1 => 2,
            2 => 3,
            v => {
                return Err(FormatError::UnsupportedVersion {
                    what: WHAT,
                    found: u32::from(v),
                    supported: 2,
                });
            }
        };
        let bad = |d: &str| FormatError::malformed(WHAT, d.to_string());
        let mut r = Reader::new(bytes, WHAT);
        let name = r.str()?.to_string();
        let plan_id = r.array()?;
        let created_ms = r.u64()?;
        let template = SnapshotManifest::decode_version(manifest_version, r.bytes()?)?;
        let n = r.count(2)?;
        let mut partitions = Vec::with_capacity(n);
        for _ in 0..n {
            let read_from = r.zigzag()?;
            let retention_gap = match r.u8()? {
                0 => None,
                1 => Some((r.zigzag()?, r.zigzag()?)),
                _ => return Err(bad("retention gap flag")),
            };
            partitions.push(PlannedPartition {
                read_from,
                retention_gap,
            });
        }
        let in_template: usize = template.topics.iter().map(|t| t.partitions.len()).sum();
        if in_template != partitions.len() {
            return Err(bad("partition count differs from the template's"));
        }
        let data_horizon_ms = match r.u8()? {
            0 => None,
            1 => Some(r.varint()?),
            _ => return Err(bad("data horizon flag")),
        };
        let nw = r.count(1)?;
        let warnings = (0..nw)
            .map(|_| r.str().map(str::to_string))
            .collect::<Result<Vec<_>>>()?;
        r.finish()?;
        Ok(RunPlan {
            name,
            plan_id,
            created_ms,
            template,
            partitions,
            data_horizon_ms,
            warnings,
        })
    }
}

impl RunPart {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(256);
        w.raw(&self.plan_id).varint(u64::from(self.index));
        write_root(&mut w, self.root.as_ref());
        w.zigzag(self.log_start_offset)
            .varint(self.deleted.len() as u64);
        for (a, b) in &self.deleted {
            w.zigzag(*a).zigzag(*b);
        }
        w.varint(self.records_read)
            .varint(self.bytes_read)
            .varint(self.bytes_added)
            .varint(self.chunks_added)
            .u64(self.started_ms)
            .u64(self.finished_ms)
            .str(&self.worker);
        // Only when set, so every part written before it existed reads the same.
        if let Some(why) = &self.topic_gone {
            w.u8(1).str(why);
        }
        w.into_inner()
    }

    pub fn decode(bytes: &[u8]) -> Result<RunPart> {
        const WHAT: &str = "run part";
        let mut r = Reader::new(bytes, WHAT);
        let plan_id = r.array()?;
        let index = u32::try_from(r.varint()?)
            .map_err(|_| FormatError::malformed(WHAT, "partition index".to_string()))?;
        let root = read_root(&mut r, WHAT)?;
        let log_start_offset = r.zigzag()?;
        let nd = r.count(2)?;
        let deleted = (0..nd)
            .map(|_| Ok((r.zigzag()?, r.zigzag()?)))
            .collect::<Result<Vec<_>>>()?;
        let mut part = RunPart {
            plan_id,
            index,
            root,
            log_start_offset,
            deleted,
            records_read: r.varint()?,
            bytes_read: r.varint()?,
            bytes_added: r.varint()?,
            chunks_added: r.varint()?,
            started_ms: r.u64()?,
            finished_ms: r.u64()?,
            worker: r.str()?.to_string(),
            topic_gone: None,
        };
        if !r.is_empty() {
            if r.u8()? != 1 {
                return Err(FormatError::malformed(WHAT, "topic-gone flag".to_string()));
            }
            part.topic_gone = Some(r.str()?.to_string());
        }
        r.finish()?;
        Ok(part)
    }
}

/// Written after the manifest: the plan `plan_id` was committed as `snapshot`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunCommit {
    pub plan_id: [u8; 16],
    pub snapshot: ObjectId,
}

impl RunCommit {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(48);
        w.raw(&self.plan_id).raw(&self.snapshot.0);
        w.into_inner()
    }

    pub fn decode(bytes: &[u8]) -> Result<RunCommit> {
        let mut r = Reader::new(bytes, "run commit");
        let commit = RunCommit {
            plan_id: r.array()?,
            snapshot: ObjectId(r.array()?),
        };
        r.finish()?;
        Ok(commit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::tests::sample as sample_manifest;

    fn plan() -> RunPlan {
        let template = sample_manifest();
        let n: usize = template.topics.iter().map(|t| t.partitions.len()).sum();
        RunPlan {
            name: "nightly".into(),
            plan_id: [7; 16],
            created_ms: 1_700_000_000_000,
            template,
            partitions: (0..i64::try_from(n).unwrap())
                .map(|i| PlannedPartition {
                    read_from: i,
                    retention_gap: (i % 2 == 1).then_some((0, i)),
                })
                .collect(),
            data_horizon_ms: Some(86_400_000),
            warnings: vec!["a warning".into()],
        }
    }

    #[test]
    fn plan_round_trips() {
        let p = plan();
        assert_eq!(RunPlan::decode(&p.encode()).unwrap(), p);
    }

    #[test]
    fn plan_with_a_wrong_partition_count_is_refused() {
        let mut p = plan();
        p.partitions.push(PlannedPartition {
            read_from: 0,
            retention_gap: None,
        });
        assert!(RunPlan::decode(&p.encode()).is_err());
    }

    #[test]
    fn part_round_trips_and_truncation_fails() {
        let m = sample_manifest();
        let part = RunPart {
            plan_id: [7; 16],
            index: 3,
            root: m.topics[0].partitions[1].root,
            log_start_offset: 12,
            deleted: vec![(10, 12)],
            records_read: 100,
            bytes_read: 4096,
            bytes_added: 1000,
            chunks_added: 2,
            started_ms: 1,
            finished_ms: 2,
            worker: "host/42".into(),
            topic_gone: None,
        };
        let bytes = part.encode();
        assert_eq!(RunPart::decode(&bytes).unwrap(), part);
        for n in 0..bytes.len() {
            assert!(RunPart::decode(&bytes[..n]).is_err());
        }
        // A part of a topic deleted mid-run: the plain part and a trailer.
        let gone = RunPart {
            topic_gone: Some("deleted during the run".into()),
            ..part
        };
        let long = gone.encode();
        assert_eq!(&long[..bytes.len()], &bytes[..]);
        assert_eq!(RunPart::decode(&long).unwrap(), gone);
        for n in bytes.len() + 1..long.len() {
            assert!(RunPart::decode(&long[..n]).is_err(), "cut at {n}");
        }
        let mut bad = long.clone();
        bad[bytes.len()] = 2;
        assert!(RunPart::decode(&bad).is_err(), "only flag 1 follows");
    }
}
