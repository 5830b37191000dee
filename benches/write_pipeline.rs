//! The write pipeline alone, on one core: framed 1 KiB records in, sealed
//! packs out (chunk → keyed BLAKE3 → zstd → AES-256-GCM → pack), in memory,
//! so no disk or Kafka is measured. Results: docs/benchmarks.md.

#[path = "support/data.rs"]
mod data;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use vault_format::chunker::{ChunkerParams, Gear, RecordChunker};
use vault_format::compress::{Compression, Compressor};
use vault_format::keys::MasterKey;
use vault_format::object::ObjectKind;
use vault_format::pack::PackBuilder;
use vault_format::record::{Record, RecordHeader, RecordValue, TimestampType};
use vault_format::{PackId, VaultId};

const RECORDS: usize = 32 * 1024; // 32 MiB of values per iteration
const PACK_SIZE: usize = 16 << 20;

fn pipeline(c: &mut Criterion) {
    let recs = data::records(RECORDS, 1024, 7);
    let records: Vec<Record<'_>> = recs
        .iter()
        .map(|(k, v, ts)| Record {
            timestamp: *ts,
            timestamp_type: TimestampType::CreateTime,
            key: Some(k),
            value: RecordValue::Inline(v),
            headers: vec![RecordHeader {
                key: b"source",
                value: Some(b"bench"),
            }],
        })
        .collect();
    let framed_bytes: usize = records.iter().map(|r| r.encode().len()).sum();
    let keys = MasterKey([1; 32]).sub_keys();
    let gear = Gear::new(&keys.chunker, ChunkerParams::DEFAULT).unwrap();

    let mut group = c.benchmark_group("write_pipeline");
    group.throughput(Throughput::Bytes(framed_bytes as u64));
    group.sample_size(10);
    for level in [None, Some(1), Some(3)] {
        let name = level.map_or("raw".to_string(), |l| format!("zstd{l}"));
        group.bench_function(BenchmarkId::new("1KiB_records", name), |b| {
            let mut compressor = Compressor::new(Compression(level)).unwrap();
            b.iter(|| {
                let mut chunker = RecordChunker::new(&gear, None);
                let mut cut = Vec::new();
                let mut pack =
                    PackBuilder::new(&keys, VaultId([2; 16]), PackId([3; 16]), PACK_SIZE);
                let mut packs = 0usize;
                let mut seal = |cut: &mut Vec<vault_format::chunker::CutChunk>,
                                pack: &mut PackBuilder| {
                    for ch in cut.drain(..) {
                        let id = keys.chunk_id(&ch.plaintext);
                        pack.add(ObjectKind::DataChunk, id, &ch.plaintext, &mut compressor)
                            .unwrap();
                        if pack.len() >= PACK_SIZE {
                            let full = std::mem::replace(
                                pack,
                                PackBuilder::new(
                                    &keys,
                                    VaultId([2; 16]),
                                    PackId([3; 16]),
                                    PACK_SIZE,
                                ),
                            );
                            packs += full.finish().unwrap().1.len();
                        }
                    }
                };
                for (i, r) in (0i64..).zip(records.iter()) {
                    chunker.push(r, i, &mut cut).unwrap();
                    seal(&mut cut, &mut pack);
                }
                chunker.finish(&mut cut);
                seal(&mut cut, &mut pack);
                packs + pack.finish().unwrap().1.len()
            });
        });
    }
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
