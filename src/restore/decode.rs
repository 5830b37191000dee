//! Decoding runs ahead of producing: worker threads read, decrypt,
//! decompress and decode chunks while the producer sends earlier ones. The
//! results come back in job order, and at most `depth` decoded chunks wait
//! at any time, so memory stays bounded whatever the snapshot's size. Reads
//! of neighbouring chunks are joined into spans of at most 8 MiB, one per
//! worker in flight.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

use vault_format::PackId;
use vault_format::pack::BlobEntry;
use vault_format::tree::Entry;

use vault_format::object::ObjectKind;
use vault_format::record::{RecordIter, RecordValue};

use crate::error::{FormatContext, Result};
use crate::index_cache::Location;
use crate::reader::external_value;
use crate::repository::{Indexed, Repository};

/// One data chunk to decode, for the partition at index `part` of the plan.
#[derive(Clone, Debug)]
pub(crate) struct DecodeJob {
    pub part: usize,
    pub leaf: Entry,
}

/// A data chunk's plaintext, ready to be walked record by record without
/// copying: the producer sends slices of it.
pub(crate) struct DecodedChunk {
    pub part: usize,
    pub leaf: Entry,
    pub plain: Vec<u8>,
    /// Values kept in value chunks, by record index within the chunk.
    pub external: Vec<(usize, Vec<u8>)>,
}

fn decode(repo: &Repository<Indexed>, job: DecodeJob) -> Result<DecodedChunk> {
    let plain = repo.read_chunk(&job.leaf.id, ObjectKind::DataChunk)?;
    with_external_values(repo, job, plain)
}

/// Completes a decoded chunk with the values it keeps in value chunks.
fn with_external_values(
    repo: &Repository<Indexed>,
    job: DecodeJob,
    plain: Vec<u8>,
) -> Result<DecodedChunk> {
    let mut external = Vec::new();
    // Only a chunk carrying more payload than fits inline can have any.
    if job.leaf.summary.bytes > repo.config().chunker.external_value_threshold() as u64 {
        for (i, r) in RecordIter::new(&plain).enumerate() {
            let r = r.ctx(|| format!("decoding data chunk {}", job.leaf.id))?;
            if let RecordValue::External(e) = &r.value {
                external.push((i, external_value(repo, e)?));
            }
        }
    }
    Ok(DecodedChunk {
        part: job.part,
        leaf: job.leaf,
        plain,
        external,
    })
}

type Reply = Receiver<Result<DecodedChunk>>;

/// Chunks that lie close together in one pack are read with one request:
/// on object storage each request costs far more than the bytes. A span
/// grows while the next chunk starts at most `SPAN_GAP` after the last,
/// the span stays under `SPAN_MAX`, and at most half of it is bytes of
/// chunks nobody asked for.
const SPAN_GAP: u64 = 1 << 20;
const SPAN_MAX: u64 = 8 << 20;
const SPAN_JOBS: usize = 64;

/// Jobs one worker serves with one read, each with its own reply.
struct Batch {
    /// The pack and the byte range that holds every job's chunk, when
    /// there is more than one and the index knows where they are.
    span: Option<(PackId, u64, u64)>,
    jobs: Vec<(
        DecodeJob,
        Option<BlobEntry>,
        SyncSender<Result<DecodedChunk>>,
    )>,
    /// Bytes of the span that belong to the jobs' chunks.
    useful: u64,
    /// At most this many jobs: a batch is decoded by one worker, so big
    /// ones would starve the others.
    max_jobs: usize,
}

impl Batch {
    fn new(max_jobs: usize) -> Batch {
        Batch {
            span: None,
            jobs: Vec::new(),
            useful: 0,
            max_jobs,
        }
    }

    /// Adds a job if its chunk extends the span within the limits.
    fn try_add(
        &mut self,
        job: DecodeJob,
        loc: Option<&Location>,
        reply: SyncSender<Result<DecodedChunk>>,
    ) -> Option<(DecodeJob, SyncSender<Result<DecodedChunk>>)> {
        // An entry that cannot be spanned (not a data chunk, or an offset
        // a damaged cache made absurd) is read alone, as before.
        let spannable = loc
            .filter(|l| l.entry.kind == ObjectKind::DataChunk)
            .and_then(|l| {
                let end = l.entry.offset.checked_add(u64::from(l.entry.sealed_len))?;
                Some((l, end))
            });
        let Some((loc, end)) = spannable else {
            if self.jobs.is_empty() {
                self.jobs.push((job, None, reply));
                return None;
            }
            return Some((job, reply));
        };
        let start = loc.entry.offset;
        let len = end - start;
        match self.span {
            None if self.jobs.is_empty() => {
                self.span = Some((loc.pack, start, end));
                self.useful = len;
            }
            Some((pack, s, e))
                if pack == loc.pack
                    && self.jobs.len() < self.max_jobs
                    && start >= e
                    && start - e <= SPAN_GAP
                    && end - s <= SPAN_MAX
                    && 2 * (self.useful + len) >= end - s =>
            {
                self.span = Some((pack, s, end));
                self.useful += len;
            }
            _ => return Some((job, reply)),
        }
        self.jobs.push((job, Some(loc.entry), reply));
        None
    }

    /// Reads the span once and decodes every job from it; a job whose bytes
    /// the span read cannot give is read on its own, which reports any
    /// damage exactly as a single read would.
    fn run(self, repo: &Repository<Indexed>) {
        let span = match self.span {
            Some((pack, s, e)) if self.jobs.len() > 1 => repo
                .read_pack_span(&pack, s, e - s)
                .ok()
                .map(|bytes| (pack, s, bytes)),
            _ => None,
        };
        for (job, entry, reply) in self.jobs {
            let from_span =
                span.as_ref()
                    .zip(entry.as_ref())
                    .and_then(|((pack, s, bytes), entry)| {
                        let at = usize::try_from(entry.offset - s).ok()?;
                        let sealed = bytes.get(at..at + entry.sealed_len as usize)?;
                        repo.open_chunk_bytes(pack, entry, sealed).ok()
                    });
            let out = match from_span {
                Some(plain) => with_external_values(repo, job, plain),
                None => decode(repo, job),
            };
            // The consumer may have stopped; then nobody wants this.
            let _ = reply.send(out);
        }
    }
}

/// Jobs waiting to be sent to the workers, grouped by pack: the restore
/// takes one chunk of each partition in turn, and chunks of different
/// partitions lie side by side in the same packs. Every held job's order
/// slot is already taken, so the feeder sends them all before it ever
/// waits for a free slot.
struct Held {
    by_pack: Vec<(PackId, Vec<Job>)>,
    count: usize,
    max_jobs: usize,
    window: usize,
}

type Job = (DecodeJob, Location, SyncSender<Result<DecodedChunk>>);

impl Held {
    fn new(max_jobs: usize, window: usize) -> Held {
        Held {
            by_pack: Vec::new(),
            count: 0,
            max_jobs,
            window,
        }
    }

    /// Holds a job (or sends it at once if the index does not know its
    /// chunk); sends everything once `window` jobs are held. False when
    /// the workers are gone.
    fn add(
        &mut self,
        job: DecodeJob,
        loc: Option<Location>,
        reply: SyncSender<Result<DecodedChunk>>,
        out: &SyncSender<Batch>,
    ) -> bool {
        let Some(loc) = loc.filter(|l| l.entry.kind == ObjectKind::DataChunk) else {
            let mut single = Batch::new(1);
            let none = single.try_add(job, None, reply);
            debug_assert!(none.is_none(), "an empty batch takes any job");
            return out.send(single).is_ok();
        };
        match self.by_pack.iter_mut().find(|(p, _)| *p == loc.pack) {
            Some((_, jobs)) => jobs.push((job, loc, reply)),
            None => self.by_pack.push((loc.pack, vec![(job, loc, reply)])),
        }
        self.count += 1;
        self.count < self.window || self.flush(out)
    }

    /// Sends every held job, in batches of near chunks of one pack.
    fn flush(&mut self, out: &SyncSender<Batch>) -> bool {
        self.count = 0;
        for (_, mut jobs) in std::mem::take(&mut self.by_pack) {
            jobs.sort_by_key(|(_, loc, _)| loc.entry.offset);
            let mut batch = Batch::new(self.max_jobs);
            for (job, loc, reply) in jobs {
                if let Some((job, reply)) = batch.try_add(job, Some(&loc), reply) {
                    if out
                        .send(std::mem::replace(&mut batch, Batch::new(self.max_jobs)))
                        .is_err()
                    {
                        return false;
                    }
                    let none = batch.try_add(job, Some(&loc), reply);
                    debug_assert!(none.is_none(), "an empty batch takes any job");
                }
            }
            if !batch.jobs.is_empty() && out.send(batch).is_err() {
                return false;
            }
        }
        true
    }
}

/// Decodes `jobs` on `workers` threads and hands each chunk to `consume`
/// in job order. Stops at the first error, from either side.
pub(crate) fn run_ordered(
    repo: &Repository<Indexed>,
    jobs: impl Iterator<Item = Result<DecodeJob>> + Send,
    workers: usize,
    depth: usize,
    consume: &mut dyn FnMut(DecodedChunk) -> Result<()>,
) -> Result<()> {
    let (batch_tx, batch_rx) = sync_channel::<Batch>(workers);
    let batch_rx = Arc::new(Mutex::new(batch_rx));
    // Replies in job order; its bound is the read-ahead.
    let (order_tx, order_rx) = sync_channel::<Reply>(depth.max(1));
    // Batches small enough that every worker has one while the read-ahead
    // fills.
    let max_jobs = (depth / (2 * workers.max(1))).clamp(1, SPAN_JOBS);
    std::thread::scope(|s| {
        for _ in 0..workers.max(1) {
            let batch_rx = Arc::clone(&batch_rx);
            s.spawn(move || {
                loop {
                    let next = batch_rx.lock().expect("job queue").recv();
                    let Ok(batch) = next else { break };
                    batch.run(repo);
                }
            });
        }
        // Only the workers hold the queue: if they all die, the feeder's
        // next send fails instead of waiting for ever.
        drop(batch_rx);
        s.spawn(move || {
            let mut held = Held::new(max_jobs, (depth / 2).max(1));
            // Set when the consumer or the workers are gone: what is held
            // then is read for nobody, so it is dropped, not sent.
            let mut stopped = false;
            for job in jobs {
                let (tx, rx) = sync_channel(1);
                let job = match job {
                    Ok(j) => j,
                    Err(e) => {
                        // Reading the tree failed: the error takes the
                        // job's place in the order, and the walk ends.
                        let _ = tx.send(Err(e));
                        held.flush(&batch_tx);
                        let _ = order_tx.send(rx);
                        break;
                    }
                };
                // The order slot first: a full read-ahead must not hold
                // back the jobs the consumer is waiting for.
                match order_tx.try_send(rx) {
                    Ok(()) => {}
                    Err(TrySendError::Full(rx)) => {
                        if !held.flush(&batch_tx) || order_tx.send(rx).is_err() {
                            stopped = true;
                            break;
                        }
                    }
                    Err(TrySendError::Disconnected(_)) => {
                        stopped = true;
                        break;
                    }
                }
                // A lookup error is left for the single read to report.
                let loc = repo.locate(&job.leaf.id).ok().flatten();
                if !held.add(job, loc, tx, &batch_tx) {
                    stopped = true;
                    break;
                }
            }
            if !stopped {
                held.flush(&batch_tx);
            }
            // Dropping batch_tx ends the workers.
        });
        let mut result = Ok(());
        for reply in &order_rx {
            let step = reply
                .recv()
                .expect("decode worker replies")
                .and_then(&mut *consume);
            if let Err(e) = step {
                result = Err(e);
                break;
            }
        }
        // Unblocks the feeder and the workers.
        drop(order_rx);
        result
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vault_format::ChunkId;
    use vault_format::tree::Summary;

    fn job() -> DecodeJob {
        let summary = Summary {
            first_offset: 0,
            last_offset: 0,
            records: 1,
            bytes: 1,
            min_ts: 0,
            max_ts: 0,
        };
        DecodeJob {
            part: 0,
            leaf: Entry {
                id: ChunkId([0; 32]),
                summary,
                gaps: vec![],
            },
        }
    }

    fn at(pack: u8, offset: u64, len: u32) -> Location {
        Location {
            pack: PackId([pack; 16]),
            entry: BlobEntry {
                kind: ObjectKind::DataChunk,
                id: ChunkId([0; 32]),
                offset,
                sealed_len: len,
                plain_len: len,
            },
        }
    }

    fn adds(b: &mut Batch, loc: &Location) -> bool {
        let (tx, _rx) = sync_channel(1);
        b.try_add(job(), Some(loc), tx).is_none()
    }

    #[test]
    fn spans_join_near_chunks_of_one_pack_only() {
        let mut b = Batch::new(4);
        assert!(adds(&mut b, &at(1, 0, 1000)));
        assert!(adds(&mut b, &at(1, 1000, 1000)), "the next chunk");
        assert!(adds(&mut b, &at(1, 2500, 1000)), "a small gap");
        assert!(!adds(&mut b, &at(2, 3500, 1000)), "another pack");
        assert!(!adds(&mut b, &at(1, 1000, 1000)), "backwards");
        assert!(!adds(&mut b, &at(1, 3500 + SPAN_GAP + 1, 1000)), "too far");
        assert!(!adds(&mut b, &at(1, 10_000, 1000)), "mostly unwanted bytes");
        assert!(adds(&mut b, &at(1, 3500, 1000)));
        assert!(!adds(&mut b, &at(1, 4500, 1000)), "max_jobs");
        assert_eq!(b.span.map(|(_, s, e)| (s, e)), Some((0, 4500)));
        assert_eq!(b.useful, 4000);
        let mut b = Batch::new(4);
        assert!(adds(&mut b, &at(1, 0, 4 << 20)));
        assert!(
            !adds(&mut b, &at(1, (4 << 20) + SPAN_GAP + 1, 1 << 20)),
            "the gap alone"
        );
        assert!(!adds(&mut b, &at(1, 4 << 20, (4 << 20) + 1)), "SPAN_MAX");
        assert!(!adds(&mut b, &at(1, 4 << 20, u32::MAX)), "SPAN_MAX");
        let mut b = Batch::new(4);
        assert!(
            !{
                let (tx, _rx) = sync_channel(1);
                let absurd = at(1, u64::MAX - 10, 100);
                assert!(b.try_add(job(), Some(&absurd), tx).is_none());
                b.span.is_some()
            },
            "an offset that overflows is read alone"
        );

        // A chunk the index does not know is read alone.
        let mut b = Batch::new(4);
        let (tx, _rx) = sync_channel(1);
        assert!(b.try_add(job(), None, tx).is_none());
        assert!(!adds(&mut b, &at(1, 0, 10)));
    }
}
