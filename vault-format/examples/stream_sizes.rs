//! Where a data chunk's compressed bytes go, stream by stream: the
//! measurement behind docs/benchmarks.md § Small records ("Size").
//!
//! ```text
//! python3 bench/gen_small_records.py 400000 > small.tsv
//! cargo run --release -p vault-format --example stream_sizes -- [CHUNK_BYTES] [LEVEL] < small.tsv
//! ```
//!
//! Reads `key<TAB>value` lines, frames them as records with the two headers
//! `bench/round.sh --small` adds (timestamps a few hundred records per
//! millisecond, as kcat produces them), cuts chunks of CHUNK_BYTES (default
//! 65536; fixed cuts, not content-defined), and prints the zstd size of each
//! record stream (tag 2's layout) compressed alone, and of the chunks as
//! vault stores them now: record planes, compression tag 3, whose meta
//! planes are the meta stream taken apart field by field.

use std::io::BufRead;

use vault_format::compress::{Compression, Compressor};
use vault_format::record::{Record, RecordHeader, RecordValue, TimestampType};
use vault_format::streams::{RecordStreams, split};

fn main() {
    let mut args = std::env::args().skip(1);
    let chunk: usize = args
        .next()
        .map_or(65536, |s| s.parse().expect("CHUNK_BYTES"));
    let level: i32 = args.next().map_or(1, |s| s.parse().expect("LEVEL"));
    let mut chunks = Vec::new();
    let mut rows = Vec::new();
    for (i, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.expect("reading standard input");
        let (k, v) = line.split_once('\t').expect("key<TAB>value");
        Record {
            timestamp: 1_700_000_000_000 + i64::try_from(i).expect("count") / 550,
            timestamp_type: TimestampType::CreateTime,
            key: Some(k.as_bytes()),
            value: RecordValue::Inline(v.as_bytes()),
            headers: vec![
                RecordHeader {
                    key: b"content-type",
                    value: Some(b"application/json"),
                },
                RecordHeader {
                    key: b"source",
                    value: Some(b"edge-7"),
                },
            ],
        }
        .encode_into(&mut rows);
        if rows.len() >= chunk {
            chunks.push(std::mem::take(&mut rows));
        }
    }
    if !rows.is_empty() {
        chunks.push(rows);
    }
    let zstd_len = |b: &[u8]| zstd::bulk::compress(b, level).expect("zstd").len();
    let mut compressor = Compressor::new(Compression(Some(level))).expect("zstd level");
    let (mut streams, mut stored) = (RecordStreams::default(), Vec::new());
    let (mut alone, mut whole, mut raw) = ([0usize; 4], 0, 0);
    for ch in &chunks {
        split(ch, &mut streams).expect("framed records");
        for (sum, part) in alone.iter_mut().zip(streams.parts()) {
            *sum += zstd_len(part);
        }
        compressor
            .compress_records_into(ch, &mut stored)
            .expect("compressing");
        whole += stored.len();
        raw += ch.len();
    }
    println!(
        "{} chunks, {raw} bytes framed; zstd -{level} alone: meta {} keys {} values {} headers {}; \
         stored as record planes (tag 3) {whole}",
        chunks.len(),
        alone[0],
        alone[1],
        alone[2],
        alone[3]
    );
}
