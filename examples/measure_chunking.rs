//! Measures candidate chunk sizes on synthetic 1 KiB records; the numbers in
//! docs/design.md § Chunk sizes come from this program:
//!
//!     cargo run --release --example measure_chunking
//!
//! For each (min, avg, max) it reports: chunks per GiB of framed records,
//! the zstd-3 compression ratio per chunk, the share of a copy's bytes that
//! is new when the same records follow a different prefix (what a mirrored
//! or re-partitioned topic costs), and tree/index metadata per GiB.

#[path = "../benches/support/data.rs"]
mod data;

use std::collections::HashSet;
use std::time::Instant;

use vault_format::chunker::{ChunkerParams, Gear, RecordChunker};
use vault_format::compress::Compression;
use vault_format::keys::MasterKey;
use vault_format::record::{Record, RecordValue, TimestampType};

fn chunk_all(gear: &Gear, recs: &[(Vec<u8>, Vec<u8>, i64)]) -> Vec<Vec<u8>> {
    let mut ch = RecordChunker::new(gear, None);
    let mut out = Vec::new();
    for (i, (k, v, ts)) in (0i64..).zip(recs.iter()) {
        let r = Record {
            timestamp: *ts,
            timestamp_type: TimestampType::CreateTime,
            key: Some(k),
            value: RecordValue::Inline(v),
            headers: vec![],
        };
        ch.push(&r, i, &mut out).unwrap();
    }
    ch.finish(&mut out);
    out.into_iter().map(|c| c.plaintext).collect()
}

fn main() {
    let keys = MasterKey([9; 32]).sub_keys();
    let recs = data::records(100_000, 1024, 1);
    let prefix = data::records(137, 1024, 2);
    let shifted: Vec<_> = prefix.iter().chain(recs.iter()).cloned().collect();
    println!(
        "| min | avg | max | chunks/GiB | zstd-3 ratio | new bytes in shifted copy | metadata/GiB | chunk+compress MB/s |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (min, avg, max) in [
        (4, 16, 64),
        (8, 32, 128),
        (16, 64, 256),
        (32, 128, 512),
        (64, 256, 1024),
    ] {
        let p = ChunkerParams {
            min: min << 10,
            avg: avg << 10,
            max: max << 10,
        };
        let gear = Gear::new(&keys.chunker, p).unwrap();
        let t = Instant::now();
        let a = chunk_all(&gear, &recs);
        let total: usize = a.iter().map(Vec::len).sum();
        let compressed: usize = a
            .iter()
            .map(|c| Compression(Some(3)).compress_framed(c).unwrap().len())
            .sum();
        let secs = t.elapsed().as_secs_f64();
        let b = chunk_all(&gear, &shifted);
        let seen: HashSet<&Vec<u8>> = a.iter().collect();
        let new_bytes: usize = b.iter().filter(|c| !seen.contains(c)).map(Vec::len).sum();
        let prefix_bytes: usize = b.iter().map(Vec::len).sum::<usize>() - total;
        let per_gib = (1u64 << 30) as f64 / total as f64;
        // ~70 bytes per tree entry, ~55 per index entry, 16-byte tag + ~3 framing per blob.
        let meta = a.len() as f64 * per_gib * (70.0 + 55.0 + 19.0);
        println!(
            "| {min} KiB | {avg} KiB | {max} KiB | {:.0} | {:.2} | {:.2}% | {:.2} MiB | {:.0} |",
            a.len() as f64 * per_gib,
            total as f64 / compressed as f64,
            100.0 * (new_bytes - prefix_bytes.min(new_bytes)) as f64 / total as f64,
            meta / (1 << 20) as f64,
            total as f64 / secs / 1e6,
        );
    }
}
