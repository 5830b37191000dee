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
//! stream compressed alone, of the chunks as vault stores them (compression
//! tag 2), and of the meta stream laid out column by column instead.

use std::io::BufRead;

use vault_format::columns::{RecordStreams, split};
use vault_format::compress::{Compression, Compressor};
use vault_format::record::{Record, RecordHeader, RecordIter, RecordValue, TimestampType};

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
    let (mut alone, mut whole, mut columns, mut raw) = ([0usize; 4], 0, 0, 0);
    for ch in &chunks {
        split(ch, &mut streams).expect("framed records");
        for (sum, part) in alone.iter_mut().zip(streams.parts()) {
            *sum += zstd_len(part);
        }
        compressor
            .compress_records_into(ch, &mut stored)
            .expect("compressing");
        whole += stored.len();
        columns += zstd_len(&meta_columns(ch));
        raw += ch.len();
    }
    println!(
        "{} chunks, {raw} bytes framed; zstd -{level} alone: meta {} keys {} values {} headers {}; \
         stored (tag 2) {whole}; meta as columns {columns}",
        chunks.len(),
        alone[0],
        alone[1],
        alone[2],
        alone[3]
    );
}

/// The meta stream's fields, one column after another: attributes,
/// timestamp deltas, key lengths, value lengths, then the headers' counts
/// and lengths.
fn meta_columns(chunk: &[u8]) -> Vec<u8> {
    let mut cols: [Vec<u8>; 5] = Default::default();
    let mut prev = 0i64;
    for r in RecordIter::new(chunk) {
        let r = r.expect("framed records");
        cols[0].push(u8::from(r.key.is_some()));
        let d = r.timestamp.wrapping_sub(prev);
        prev = r.timestamp;
        varint(&mut cols[1], ((d << 1) ^ (d >> 63)).cast_unsigned());
        varint(&mut cols[2], r.key.map_or(0, |k| k.len() as u64 + 1));
        if let RecordValue::Inline(v) = &r.value {
            varint(&mut cols[3], v.len() as u64);
        }
        varint(&mut cols[4], r.headers.len() as u64);
        for h in &r.headers {
            varint(&mut cols[4], h.key.len() as u64);
            varint(&mut cols[4], h.value.map_or(0, |v| v.len() as u64 + 1));
        }
    }
    cols.concat()
}

fn varint(out: &mut Vec<u8>, mut x: u64) {
    while x >= 0x80 {
        out.push((x as u8) | 0x80);
        x >>= 7;
    }
    out.push(x as u8);
}
