//! Decoding runs ahead of producing: worker threads read, decrypt,
//! decompress and decode chunks while the producer sends earlier ones. The
//! results come back in job order, and at most `depth` decoded chunks wait
//! at any time, so memory stays bounded whatever the snapshot's size.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use vault_format::tree::Entry;

use vault_format::object::ObjectKind;
use vault_format::record::{RecordIter, RecordValue};

use crate::error::{FormatContext, Result};
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

/// Decodes `jobs` on `workers` threads and hands each chunk to `consume`
/// in job order. Stops at the first error, from either side.
pub(crate) fn run_ordered(
    repo: &Repository<Indexed>,
    jobs: impl Iterator<Item = Result<DecodeJob>> + Send,
    workers: usize,
    depth: usize,
    consume: &mut dyn FnMut(DecodedChunk) -> Result<()>,
) -> Result<()> {
    let (job_tx, job_rx) = sync_channel::<(DecodeJob, SyncSender<Result<DecodedChunk>>)>(workers);
    let job_rx = Arc::new(Mutex::new(job_rx));
    // Replies in job order; its bound is the read-ahead.
    let (order_tx, order_rx) = sync_channel::<Reply>(depth.max(1));
    std::thread::scope(|s| {
        for _ in 0..workers.max(1) {
            let job_rx = Arc::clone(&job_rx);
            s.spawn(move || {
                loop {
                    let next = job_rx.lock().expect("job queue").recv();
                    let Ok((job, reply)) = next else { break };
                    let out = decode(repo, job);
                    // The consumer may have stopped; then nobody wants this.
                    let _ = reply.send(out);
                }
            });
        }
        s.spawn(move || {
            for job in jobs {
                let (tx, rx) = sync_channel(1);
                let job = match job {
                    Ok(j) => j,
                    Err(e) => {
                        // Reading the tree failed: the error takes the
                        // job's place in the order, and the walk ends.
                        let _ = tx.send(Err(e));
                        let _ = order_tx.send(rx);
                        break;
                    }
                };
                if order_tx.send(rx).is_err() || job_tx.send((job, tx)).is_err() {
                    break;
                }
            }
            // Dropping job_tx ends the workers.
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
