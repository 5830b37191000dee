//! `vault check`: every snapshot's trees resolve, and every chunk they
//! reference is in the index and inside its pack; with `--read-data` (or a
//! subset of it) each chunk is also read, decrypted and hashed against its
//! id. It reports each problem and the snapshots it affects.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use vault_format::object::ObjectKind;
use vault_format::pack::PACK_FOOTER_LEN;
use vault_format::tree::Entry;
use vault_format::{ChunkId, ObjectId};

use crate::error::Result;
use crate::gc::mark::value_chunks;
use crate::repository::{Indexed, Repository};
use crate::storage::Dir;

#[derive(Clone, Debug, Default)]
pub struct CheckOptions {
    /// Share of chunks to read and verify (0.0: none, 1.0: all).
    pub read_data: f64,
    /// Shows counts on a terminal while the check runs.
    pub progress: Option<indicatif::ProgressBar>,
}

#[derive(Clone, Debug, Default)]
pub struct CheckReport {
    pub snapshots: usize,
    pub index_objects: usize,
    pub packs: usize,
    pub chunks_checked: u64,
    pub chunks_read: u64,
    /// One line per problem.
    pub problems: Vec<String>,
    /// Snapshot id → the problems that make it unrestorable.
    pub affected: BTreeMap<ObjectId, BTreeSet<String>>,
}

impl CheckReport {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

struct Checker<'r> {
    repo: &'r Repository<Indexed>,
    opts: CheckOptions,
    pack_sizes: HashMap<String, u64>,
    /// Chunks found damaged, with the problem.
    damaged: HashMap<ChunkId, String>,
    /// Packs whose entries came from their trailers, not an index object.
    unindexed: std::collections::HashSet<vault_format::PackId>,
    /// Those already reported as holding chunks snapshots need.
    reported_unindexed: std::collections::HashSet<vault_format::PackId>,
    report: CheckReport,
    snapshots_total: usize,
}

/// Whether `id` falls in the sampled share; ids are uniform, so this is a
/// fair, repeatable sample.
fn sampled(id: &ChunkId, share: f64) -> bool {
    let x = u32::from_le_bytes([id.0[0], id.0[1], id.0[2], id.0[3]]);
    (f64::from(x) / f64::from(u32::MAX)) < share
}

pub fn run(repo: &Repository<Indexed>, opts: CheckOptions) -> Result<CheckReport> {
    let mut c = Checker {
        repo,
        opts,
        pack_sizes: HashMap::new(),
        damaged: HashMap::new(),
        unindexed: Default::default(),
        reported_unindexed: Default::default(),
        report: CheckReport::default(),
        snapshots_total: 0,
    };
    // The snapshots first: a writer stores packs, then index objects, then
    // the manifest, so every snapshot listed now has its index objects in
    // the listing below. Listed after the index (as before), a snapshot
    // committed in between by a concurrent `snapshot` looked damaged: its
    // chunks were "not in the index" (found by the concurrent histories of
    // the chaos campaign, docs/reliability.md).
    let ids = repo.snapshot_ids()?;
    // Rebuild the cache from the index objects that are there and readable,
    // so a missing or damaged one shows up as chunks missing from the index.
    let cache = repo.index_cache();
    cache.clear()?;
    cache.clear_marks()?;
    for l in repo.storage().list(Dir::Index)? {
        let Ok(id) = ObjectId::from_hex(&l.name) else {
            continue;
        };
        c.report.index_objects += 1;
        match repo.read_index(&id) {
            Ok(index) => cache.insert_object(&id, &index)?,
            Err(e) => c.report.problems.push(format!(
                "index object {id} is damaged: {e}; `vault repair index` rewrites it from the packs"
            )),
        }
    }
    c.pack_sizes = repo
        .storage()
        .list(Dir::Packs)?
        .into_iter()
        .map(|l| (l.name, l.size))
        .collect();
    c.report.packs = c.pack_sizes.len();
    // Packs no readable index object lists: left by a killed command, or
    // listed by a damaged or missing index object. Their trailers say what
    // they hold; a chunk found only there is reported once per pack.
    for (pack, size) in repo.unindexed_packs()? {
        match repo.read_pack_trailer(&pack, size) {
            Ok(entries) => {
                cache.insert_pack(&pack, &entries)?;
                c.unindexed.insert(pack);
            }
            Err(e) => c.report.problems.push(format!(
                "pack {pack} is damaged and no readable index object lists it: {e}"
            )),
        }
    }
    // Every key file must decode; one that does not is damage even while
    // another passphrase still opens the vault.
    for k in repo.storage().list(Dir::Keys)? {
        let name = crate::storage::ObjectName::new(Dir::Keys, &k.name);
        let bad = match repo.storage().get(&name) {
            Ok(bytes) => vault_format::keys::KeyFile::decode(&bytes)
                .err()
                .map(|e| e.to_string()),
            Err(e) => Some(e.to_string()),
        };
        if let Some(e) = bad {
            c.report.problems.push(format!("key file {}: {e}", k.name));
        }
    }

    c.snapshots_total = ids.len();
    for id in ids {
        let m = match repo.read_snapshot(&id) {
            Ok(m) => m,
            // Forgotten since it was listed (`forget` runs beside check).
            Err(_)
                if !repo
                    .storage()
                    .exists(&crate::storage::ObjectName::new(
                        Dir::Snapshots,
                        id.to_hex(),
                    ))
                    .unwrap_or(true) =>
            {
                c.snapshots_total -= 1;
                continue;
            }
            Err(e) => {
                c.report.snapshots += 1;
                let p = format!("snapshot {id}: {e}");
                c.report.problems.push(p.clone());
                c.report.affected.entry(id).or_default().insert(p);
                continue;
            }
        };
        c.report.snapshots += 1;
        for t in &m.topics {
            for p in &t.partitions {
                if let Some(root) = &p.root {
                    c.node(&id, root.id, root.level);
                }
            }
        }
    }
    cache.clear_marks()?;
    // What check read from trailers is not for the next command's dedup.
    cache.clear_recovered()?;
    Ok(c.report)
}

impl Checker<'_> {
    fn hit(&mut self, snapshot: &ObjectId, problem: String) {
        self.report
            .affected
            .entry(*snapshot)
            .or_default()
            .insert(problem);
    }

    /// Checks one chunk's place in the index and its pack (and reads it if
    /// sampled). Returns false when it is damaged.
    fn chunk(&mut self, snapshot: &ObjectId, id: &ChunkId, kind: ObjectKind, read: bool) -> bool {
        if let Some(p) = self.damaged.get(id).cloned() {
            self.hit(snapshot, p);
            return false;
        }
        if self.repo.index_cache().is_marked(id).unwrap_or(false) {
            return true;
        }
        self.report.chunks_checked += 1;
        if let Some(pb) = &self.opts.progress
            && self.report.chunks_checked.is_multiple_of(4096)
        {
            pb.set_message(format!(
                "check: snapshot {} of {}, {} chunks checked, {} read",
                self.report.snapshots,
                self.snapshots_total,
                self.report.chunks_checked,
                self.report.chunks_read
            ));
        }
        let problem = match self.repo.locate(id) {
            Ok(None) => Some(format!("{} {id} is not in the index", kind.name())),
            Err(e) => Some(format!("{} {id}: {e}", kind.name())),
            Ok(Some(loc)) => {
                if self.unindexed.contains(&loc.pack) && self.reported_unindexed.insert(loc.pack) {
                    // Readable (restore finds it the same way), but the
                    // index that should list it is damaged or missing.
                    self.report.problems.push(format!(
                        "pack {} holds chunks that snapshots use but no readable index object lists it \
                         (one is damaged or missing); `vault repair index` rewrites the index from the packs",
                        loc.pack
                    ));
                }
                let pack = loc.pack.to_hex();
                match self.pack_sizes.get(&pack) {
                    None => Some(format!("{} {id}: pack {pack} is missing", kind.name())),
                    Some(&size)
                        if loc.entry.offset + u64::from(loc.entry.sealed_len)
                            > size.saturating_sub(PACK_FOOTER_LEN as u64) =>
                    {
                        Some(format!(
                            "{} {id}: pack {pack} is truncated ({size} bytes, the chunk ends at {})",
                            kind.name(),
                            loc.entry.offset + u64::from(loc.entry.sealed_len)
                        ))
                    }
                    Some(_) if read => {
                        self.report.chunks_read += 1;
                        self.repo
                            .read_chunk_at(&loc.pack, &loc.entry)
                            .err()
                            .map(|e| format!("{} {id}: {e}", kind.name()))
                    }
                    Some(_) => None,
                }
            }
        };
        match problem {
            Some(p) => {
                self.report.problems.push(p.clone());
                self.damaged.insert(*id, p.clone());
                self.hit(snapshot, p);
                false
            }
            None => {
                let _ = self.repo.index_cache().mark(id);
                true
            }
        }
    }

    fn node(&mut self, snapshot: &ObjectId, id: ChunkId, level: u8) {
        // Nodes are read to be walked, which verifies them anyway.
        if !self.chunk(snapshot, &id, ObjectKind::TreeNode, false) {
            return;
        }
        let node = match self.repo.read_tree_node(&id) {
            Ok(n) if n.level == level => n,
            Ok(_) => return self.fail(snapshot, id, format!("tree node {id}: wrong level")),
            Err(e) => return self.fail(snapshot, id, format!("tree node {id}: {e}")),
        };
        for e in &node.entries {
            if level == 0 {
                self.leaf(snapshot, e);
            } else {
                self.node(snapshot, e.id, level - 1);
            }
        }
    }

    fn leaf(&mut self, snapshot: &ObjectId, e: &Entry) {
        let read = self.opts.read_data > 0.0 && sampled(&e.id, self.opts.read_data);
        if !self.chunk(snapshot, &e.id, ObjectKind::DataChunk, read) {
            return;
        }
        match value_chunks(self.repo, e) {
            Ok(parts) => {
                for part in parts {
                    let read = self.opts.read_data > 0.0 && sampled(&part, self.opts.read_data);
                    self.chunk(snapshot, &part, ObjectKind::ValueChunk, read);
                }
            }
            Err(err) => self.fail(snapshot, e.id, format!("data chunk {}: {err}", e.id)),
        }
    }

    fn fail(&mut self, snapshot: &ObjectId, id: ChunkId, problem: String) {
        self.report.problems.push(problem.clone());
        self.damaged.insert(id, problem.clone());
        self.hit(snapshot, problem);
    }
}
