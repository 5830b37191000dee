//! Content-defined chunking with a keyed gear table (FastCDC, 2020 variant).
//!
//! Records are cut into data chunks whose boundaries are chosen by the
//! content but always fall on a record's end, so each chunk decodes on its
//! own. Values too large for a chunk are cut into value chunks with the same
//! gear hash. See `docs/format.md` § Chunking and `docs/design.md` for why
//! the sizes are what they are.

use fastcdc::v2020::{MASKS, cut_gear};

use crate::error::{FormatError, Result};
use crate::record::Record;
use crate::tree::{Gap, LeafStats};

/// Chunk size targets, in bytes. Part of the vault's config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkerParams {
    pub min: u32,
    pub avg: u32,
    pub max: u32,
}

impl ChunkerParams {
    /// Sizes around an average: the minimum a quarter of it, the maximum
    /// four times it, as the default sizes are.
    pub fn around(avg: u32) -> ChunkerParams {
        ChunkerParams {
            min: avg / 4,
            avg,
            max: avg.saturating_mul(4),
        }
    }

    /// Chosen from the measurements in `docs/design.md` § Chunk sizes:
    /// a quarter of the metadata of 64 KiB chunks, and zstd sees four
    /// times the context, which small records need to compress as well as
    /// restic's ~1 MiB blobs.
    pub const DEFAULT: ChunkerParams = ChunkerParams {
        min: 64 << 10,
        avg: 256 << 10,
        max: 1024 << 10,
    };

    pub fn validate(&self) -> Result<()> {
        let ok = self.min >= fastcdc::v2020::MINIMUM_MIN
            && self.min <= fastcdc::v2020::MINIMUM_MAX
            && self.avg >= fastcdc::v2020::AVERAGE_MIN
            && self.avg <= fastcdc::v2020::AVERAGE_MAX
            && self.max >= fastcdc::v2020::MAXIMUM_MIN
            && self.max <= fastcdc::v2020::MAXIMUM_MAX
            && self.min < self.avg
            && self.avg < self.max;
        if ok {
            Ok(())
        } else {
            Err(FormatError::malformed(
                "chunker parameters",
                format!("{self:?} is out of range"),
            ))
        }
    }

    /// Values longer than this leave the data chunk and become value chunks.
    pub fn external_value_threshold(&self) -> usize {
        (self.max / 2) as usize
    }
}

/// FastCDC's gear table, filled from the vault's chunker key so that chunk
/// boundaries (and hence chunk sizes) reveal nothing without the key.
pub struct Gear {
    gear: Box<[u64; 256]>,
    gear_ls: Box<[u64; 256]>,
    mask_s: u64,
    mask_l: u64,
    params: ChunkerParams,
}

/// FastCDC normalization level 1: sizes cluster around the average without
/// forcing them.
const NORMALIZATION_BITS: u32 = 1;

impl Gear {
    pub fn new(chunker_key: &[u8; 32], params: ChunkerParams) -> Result<Gear> {
        params.validate()?;
        let mut bytes = [0u8; 256 * 8];
        blake3::Hasher::new_keyed(chunker_key)
            .update(b"gear table")
            .finalize_xof()
            .fill(&mut bytes);
        let mut gear = Box::new([0u64; 256]);
        let mut gear_ls = Box::new([0u64; 256]);
        for i in 0..256 {
            gear[i] = u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
            gear_ls[i] = gear[i] << 1;
        }
        let bits = params.avg.ilog2();
        Ok(Gear {
            gear,
            gear_ls,
            mask_s: MASKS[(bits + NORMALIZATION_BITS) as usize],
            mask_l: MASKS[(bits - NORMALIZATION_BITS) as usize],
            params,
        })
    }

    pub fn params(&self) -> ChunkerParams {
        self.params
    }

    /// Length of the next content-defined chunk of `data` (at most `max`).
    pub fn cut(&self, data: &[u8]) -> usize {
        let (_, n) = cut_gear(
            data,
            self.params.min as usize,
            self.params.avg as usize,
            self.params.max as usize,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &self.gear,
            &self.gear_ls,
        );
        n
    }

    /// Cuts a large value into content-defined pieces; returns their lengths.
    pub fn split_value(&self, value: &[u8]) -> Vec<usize> {
        let mut out = Vec::with_capacity(value.len() / self.params.avg as usize + 1);
        let mut rest = value;
        while !rest.is_empty() {
            let n = self.cut(rest).max(1);
            out.push(n);
            rest = &rest[n..];
        }
        out
    }
}

/// What the chunker knows of each record still in its buffer.
#[derive(Clone, Copy, Debug)]
struct Pending {
    end: usize,
    offset: i64,
    timestamp: i64,
    bytes: u64,
}

/// A data chunk ready to be hashed, compressed and sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CutChunk {
    pub plaintext: Vec<u8>,
    pub stats: LeafStats,
}

/// Frames records and cuts the stream into data chunks on record boundaries.
pub struct RecordChunker<'g> {
    gear: &'g Gear,
    /// Framed bytes; those before `start` were already cut.
    buf: Vec<u8>,
    start: usize,
    /// Records from `start` on; `end` is relative to the whole buffer.
    pending: std::collections::VecDeque<Pending>,
    last_offset: Option<i64>,
}

impl<'g> RecordChunker<'g> {
    /// `after` is the offset of the last record already in the tree (if any),
    /// so the first pushed record must come after it.
    pub fn new(gear: &'g Gear, after: Option<i64>) -> Self {
        RecordChunker {
            gear,
            // Grows on demand: a snapshot holds one chunker per partition.
            buf: Vec::new(),
            start: 0,
            pending: std::collections::VecDeque::new(),
            last_offset: after,
        }
    }

    /// Bytes framed but not yet cut.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Adds one record at `offset`. Offsets must increase; gaps are allowed.
    /// Returns the chunks this completes.
    pub fn push(
        &mut self,
        record: &Record<'_>,
        offset: i64,
        out: &mut Vec<CutChunk>,
    ) -> Result<()> {
        if let Some(last) = self.last_offset
            && offset <= last
        {
            return Err(FormatError::Encode {
                what: "data chunk",
                detail: format!("offset {offset} does not follow {last}"),
            });
        }
        self.last_offset = Some(offset);
        record.encode_into(&mut self.buf);
        self.pending.push_back(Pending {
            end: self.buf.len(),
            offset,
            timestamp: record.timestamp,
            bytes: record.payload_len(),
        });
        while self.buffered() >= self.gear.params.max as usize {
            self.cut_one(out);
        }
        Ok(())
    }

    /// Cuts whatever is buffered; the last chunk may be short.
    pub fn finish(&mut self, out: &mut Vec<CutChunk>) {
        while self.buffered() > 0 {
            self.cut_one(out);
        }
        // Give the memory back: a finished partition needs none.
        self.buf = Vec::new();
        self.start = 0;
    }

    fn cut_one(&mut self, out: &mut Vec<CutChunk>) {
        let c = self.start + self.gear.cut(&self.buf[self.start..]);
        // Snap forward to the end of the record that holds byte c-1.
        let n = (self.pending.partition_point(|p| p.end < c) + 1).min(self.pending.len());
        let end = self.pending[n - 1].end;
        let recs: Vec<Pending> = self.pending.drain(..n).collect();
        let plaintext = self.buf[self.start..end].to_vec();
        self.start = end;
        // Move the uncut tail to the front only once most of the buffer is
        // cut, so each byte is moved a bounded number of times.
        if self.start > self.buf.len() / 2 {
            self.buf.drain(..self.start);
            for p in &mut self.pending {
                p.end -= self.start;
            }
            self.start = 0;
        }
        out.push(CutChunk {
            plaintext,
            stats: stats_of(&recs),
        });
    }
}

fn stats_of(recs: &[Pending]) -> LeafStats {
    let first = recs[0].offset;
    let mut gaps = Vec::new();
    for (i, w) in recs.windows(2).enumerate() {
        let skip = w[1].offset - w[0].offset - 1;
        if skip > 0 {
            gaps.push(Gap {
                index: i as u32 + 1,
                skip: u64::try_from(skip).expect("offsets of a chunk increase"),
            });
        }
    }
    LeafStats {
        first_offset: first,
        last_offset: recs[recs.len() - 1].offset,
        records: recs.len() as u64,
        bytes: recs.iter().map(|p| p.bytes).sum(),
        min_ts: recs.iter().map(|p| p.timestamp).min().expect("non-empty"),
        max_ts: recs.iter().map(|p| p.timestamp).max().expect("non-empty"),
        gaps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::tests::owned_record;
    use crate::record::{RecordValue, TimestampType, decode_records};
    use proptest::prelude::*;

    const SMALL: ChunkerParams = ChunkerParams {
        min: 256,
        avg: 1024,
        max: 4096,
    };

    fn gear() -> Gear {
        Gear::new(&[42; 32], SMALL).unwrap()
    }

    fn value_record(v: &[u8]) -> Record<'_> {
        Record {
            timestamp: 0,
            timestamp_type: TimestampType::CreateTime,
            key: None,
            value: RecordValue::Inline(v),
            headers: vec![],
        }
    }

    proptest! {
        #[test]
        fn chunks_hold_whole_records_in_order(
            recs in proptest::collection::vec(owned_record(), 1..120),
            skips in proptest::collection::vec(0i64..3, 120),
        ) {
            let g = gear();
            let mut ch = RecordChunker::new(&g, None);
            let mut out = Vec::new();
            let mut offset = 10i64;
            let mut offsets = Vec::new();
            for (r, s) in recs.iter().zip(&skips) {
                offset += s;
                offsets.push(offset);
                ch.push(&r.as_record(), offset, &mut out).unwrap();
                offset += 1;
            }
            ch.finish(&mut out);
            let mut i = 0;
            for c in &out {
                let decoded = decode_records(&c.plaintext).unwrap();
                prop_assert_eq!(decoded.len() as u64, c.stats.records);
                prop_assert_eq!(c.stats.offsets().collect::<Vec<_>>(), offsets[i..i + decoded.len()].to_vec());
                for d in decoded {
                    prop_assert_eq!(d, recs[i].as_record());
                    i += 1;
                }
            }
            prop_assert_eq!(i, recs.len());
        }
    }

    #[test]
    fn boundaries_resynchronise_after_a_different_prefix() {
        // The same records after different prefixes end in the same chunks:
        // this is what makes copies at other offsets dedup.
        let g = gear();
        let values: Vec<Vec<u8>> = (0..2000u32)
            .map(|i| format!("record-{i}-{}", i.wrapping_mul(2654435761)).into_bytes())
            .collect();
        let run = |prefix: usize| {
            let mut ch = RecordChunker::new(&g, None);
            let mut out = Vec::new();
            let pre: Vec<u8> = vec![b'x'; 37];
            for i in 0..prefix {
                ch.push(&value_record(&pre), i64::try_from(i).unwrap(), &mut out)
                    .unwrap();
            }
            for (i, v) in values.iter().enumerate() {
                ch.push(&value_record(v), 1000 + i64::try_from(i).unwrap(), &mut out)
                    .unwrap();
            }
            ch.finish(&mut out);
            out.into_iter()
                .map(|c| c.plaintext)
                .collect::<std::collections::HashSet<_>>()
        };
        let a = run(0);
        let b = run(7);
        let shared = a.intersection(&b).count();
        assert!(
            shared * 10 >= a.len() * 8,
            "only {shared} of {} chunks shared",
            a.len()
        );
    }

    #[test]
    fn a_record_larger_than_max_becomes_its_own_chunk() {
        let g = gear();
        let big = vec![7u8; 3 * SMALL.max as usize];
        let mut ch = RecordChunker::new(&g, None);
        let mut out = Vec::new();
        ch.push(&value_record(b"a"), 0, &mut out).unwrap();
        ch.push(&value_record(&big), 1, &mut out).unwrap();
        ch.push(&value_record(b"b"), 2, &mut out).unwrap();
        ch.finish(&mut out);
        // The chunk holding it is longer than `max`, and still whole records.
        assert!(out.iter().any(|c| c.plaintext.len() > big.len()));
        let decoded: Vec<_> = out
            .iter()
            .flat_map(|c| decode_records(&c.plaintext).unwrap())
            .collect();
        assert_eq!(
            decoded,
            vec![value_record(b"a"), value_record(&big), value_record(b"b")]
        );
    }

    #[test]
    fn split_value_covers_the_value() {
        let g = gear();
        let v: Vec<u8> = (0..100_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
            .collect();
        let parts = g.split_value(&v);
        assert_eq!(parts.iter().sum::<usize>(), v.len());
        assert!(parts.iter().all(|&p| p <= SMALL.max as usize));
        assert!(parts.len() > 10);
    }

    #[test]
    fn one_record_in_front_changes_only_the_first_chunk() {
        // 10 MB of 1 KiB records with the default sizes, as one partition of
        // the dedup test: a copy behind one extra record must share every
        // chunk but the first, or copies at other offsets stop deduplicating.
        let record = |ts: i64, key: &'static [u8], v: &'static [u8]| Record {
            timestamp: ts,
            timestamp_type: TimestampType::CreateTime,
            key: Some(key),
            value: RecordValue::Inline(v),
            headers: vec![],
        };
        for seed in 1..=4u64 {
            let g = Gear::new(&[seed as u8; 32], ChunkerParams::DEFAULT).unwrap();
            let mut x = seed;
            let mut next = || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            };
            let values: Vec<&'static [u8]> = (0..10_000)
                .map(|_| {
                    let v: Vec<u8> = (0..1024).map(|_| b'a' + (next() % 26) as u8).collect();
                    &*Vec::leak(v)
                })
                .collect();
            let run = |shift: bool| {
                let mut ch = RecordChunker::new(&g, None);
                let mut out = Vec::new();
                let mut offset = 0;
                if shift {
                    ch.push(&record(5, b"shift", b"offsets"), offset, &mut out)
                        .unwrap();
                    offset += 1;
                }
                for (i, v) in values.iter().enumerate() {
                    ch.push(
                        &record(i64::try_from(i).unwrap(), b"k", v),
                        offset,
                        &mut out,
                    )
                    .unwrap();
                    offset += 1;
                }
                ch.finish(&mut out);
                out.into_iter().map(|c| c.plaintext).collect::<Vec<_>>()
            };
            let (a, b) = (run(false), run(true));
            assert!(a.len() > 20, "{} chunks", a.len());
            assert_eq!(a.len(), b.len());
            assert_ne!(a[0], b[0]);
            assert_eq!(a[1..], b[1..], "seed {seed}");
        }
    }

    #[test]
    fn offsets_must_increase() {
        let g = gear();
        let mut ch = RecordChunker::new(&g, Some(5));
        let mut out = Vec::new();
        assert!(ch.push(&value_record(b"a"), 5, &mut out).is_err());
        assert!(ch.push(&value_record(b"a"), 6, &mut out).is_ok());
    }
}
