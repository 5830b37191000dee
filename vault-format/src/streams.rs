//! The record streams of a data chunk: a compression filter, not a new
//! plaintext. A chunk's records (the canonical framing, `record.rs`) are
//! rearranged into four streams before zstd sees them: what the records
//! are made of (attributes, timestamp deltas, lengths), then every key,
//! every value, every header. Small records are mostly framing and
//! repeated headers; interleaved, each record breaks zstd's matches a few
//! times and its lengths and timestamps pollute the literals' statistics.
//! Apart, the headers stream is one long match and the values compress as
//! if they were a text file (docs/benchmarks.md § Small records).
//!
//! The chunk's id stays the keyed hash of its record framing, so chunks
//! deduplicate exactly as before, across snapshots and topics, whichever
//! way they were stored. Because the framing is canonical (every varint
//! minimal, no unused bits), [`join`] rebuilds the very bytes [`split`]
//! was given. See `docs/format.md` § Record streams.
//!
//! This is compression tag 2. Writers now use the record planes
//! (`planes.rs`, tag 3), which take the meta stream apart as well; tag 2
//! stays for the chunks vaults already hold, and [`split`] for its tests
//! and fuzz target.

use crate::error::{FormatError, Result};
use crate::record::{
    Record, RecordHeader, RecordIter, RecordValue, VALUE_INLINE, VALUE_NULL, opt_len, parse_attrs,
    read_external, write_external,
};
use crate::wire::{Reader, Writer};

const WHAT: &str = "record streams";

/// The four streams of a chunk's records, and how many records they hold.
#[derive(Default)]
pub struct RecordStreams {
    pub records: u64,
    pub meta: Vec<u8>,
    pub keys: Vec<u8>,
    pub values: Vec<u8>,
    pub headers: Vec<u8>,
}

impl RecordStreams {
    /// Empties the streams, keeping their memory for the next chunk.
    pub fn clear(&mut self) {
        self.records = 0;
        self.meta.clear();
        self.keys.clear();
        self.values.clear();
        self.headers.clear();
    }

    /// `varint(records) || varint(len meta) || varint(len keys) ||
    /// varint(len values)`: what precedes the streams.
    pub fn head(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(40);
        w.varint(self.records)
            .varint(self.meta.len() as u64)
            .varint(self.keys.len() as u64)
            .varint(self.values.len() as u64);
        w.into_inner()
    }

    /// The streams in their stored order, after [`RecordStreams::head`].
    pub fn parts(&self) -> [&[u8]; 4] {
        [&self.meta, &self.keys, &self.values, &self.headers]
    }

    /// Length of the streams, without the head.
    pub fn streams_len(&self) -> usize {
        self.parts().iter().map(|p| p.len()).sum()
    }

    /// The whole encoding in one buffer, head and streams, as [`join`]
    /// takes it (the compressor feeds zstd the pieces instead).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = self.head();
        v.reserve(self.streams_len());
        for p in self.parts() {
            v.extend_from_slice(p);
        }
        v
    }
}

/// Splits a data chunk's framed records into `out` (cleared first). Fails
/// on bytes that are not framed records.
pub fn split(rows: &[u8], out: &mut RecordStreams) -> Result<()> {
    out.clear();
    let mut prev_ts = 0i64;
    for r in RecordIter::new(rows) {
        let r = r?;
        let mut m = Writer::from_vec(std::mem::take(&mut out.meta));
        m.u8(r.attrs());
        // Wrapping: the delta of any two i64 fits, and join wraps back.
        m.zigzag(r.timestamp.wrapping_sub(prev_ts));
        prev_ts = r.timestamp;
        m.varint(opt_len(r.key));
        if let Some(k) = r.key {
            out.keys.extend_from_slice(k);
        }
        match &r.value {
            RecordValue::Null => {}
            RecordValue::Inline(v) => {
                m.varint(v.len() as u64);
                out.values.extend_from_slice(v);
            }
            RecordValue::External(e) => write_external(&mut m, e),
        }
        m.varint(r.headers.len() as u64);
        for h in &r.headers {
            m.varint(h.key.len() as u64);
            m.varint(opt_len(h.value));
            out.headers.extend_from_slice(h.key);
            if let Some(v) = h.value {
                out.headers.extend_from_slice(v);
            }
        }
        out.meta = m.into_inner();
        out.records += 1;
    }
    Ok(())
}

/// Rebuilds the framed records from their streams (`head || streams`, as
/// [`split`] and [`RecordStreams::head`] laid them out). `rows_len` is the
/// framing's length as stored beside the streams; anything else is an error.
pub fn join(encoded: &[u8], rows_len: usize) -> Result<Vec<u8>> {
    let mut r = Reader::new(encoded, WHAT);
    // Each record takes at least two bytes of meta (attributes, header count).
    let records = r.count(2)?;
    let meta = r.len()?;
    let keys = r.len()?;
    let values = r.len()?;
    let mut meta = Reader::new(r.raw(meta)?, WHAT);
    let mut keys = Reader::new(r.raw(keys)?, WHAT);
    let mut values = Reader::new(r.raw(values)?, WHAT);
    let mut headers = Reader::new(r.raw(r.remaining())?, WHAT);
    let mut out = Vec::with_capacity(rows_len);
    let mut prev_ts = 0i64;
    let mut hv: Vec<RecordHeader<'_>> = Vec::new();
    for _ in 0..records {
        let (timestamp_type, form) = parse_attrs(meta.u8()?, WHAT)?;
        prev_ts = prev_ts.wrapping_add(meta.zigzag()?);
        let key = opt_slice(&mut meta, &mut keys)?;
        let value = match form {
            VALUE_NULL => RecordValue::Null,
            VALUE_INLINE => RecordValue::Inline(keys_or_values(&mut meta, &mut values)?),
            _ => RecordValue::External(read_external(&mut meta, WHAT)?),
        };
        let nh = meta.count(2)?;
        hv.clear();
        for _ in 0..nh {
            let key = keys_or_values(&mut meta, &mut headers)?;
            let value = opt_slice(&mut meta, &mut headers)?;
            hv.push(RecordHeader { key, value });
        }
        let record = Record {
            timestamp: prev_ts,
            timestamp_type,
            key,
            value,
            headers: std::mem::take(&mut hv),
        };
        record.encode_into(&mut out);
        if out.len() > rows_len {
            return Err(FormatError::malformed(WHAT, "records longer than stored"));
        }
        hv = record.headers;
    }
    meta.finish()?;
    keys.finish()?;
    values.finish()?;
    headers.finish()?;
    if out.len() != rows_len {
        return Err(FormatError::malformed(WHAT, "records shorter than stored"));
    }
    Ok(out)
}

/// A length from `meta`, then that many bytes from `from`.
fn keys_or_values<'a>(meta: &mut Reader<'_>, from: &mut Reader<'a>) -> Result<&'a [u8]> {
    let n = meta.len()?;
    from.raw(n)
}

/// An optional length (`0` none, `len + 1`) from `meta`, then the bytes.
fn opt_slice<'a>(meta: &mut Reader<'_>, from: &mut Reader<'a>) -> Result<Option<&'a [u8]>> {
    match meta.varint()? {
        0 => Ok(None),
        n => {
            let n = usize::try_from(n - 1)
                .map_err(|_| FormatError::malformed(WHAT, "length overflows"))?;
            from.raw(n).map(Some)
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::id::ChunkId;
    use crate::record::{ExternalValue, TimestampType};

    pub(crate) fn rows(records: &[Record<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        for r in records {
            r.encode_into(&mut out);
        }
        out
    }

    pub(crate) fn sample() -> Vec<Record<'static>> {
        vec![
            Record {
                timestamp: 1_700_000_000_000,
                timestamp_type: TimestampType::CreateTime,
                key: Some(b"user-1"),
                value: RecordValue::Inline(b"{\"a\":1}"),
                headers: vec![
                    RecordHeader {
                        key: b"content-type",
                        value: Some(b"application/json"),
                    },
                    RecordHeader {
                        key: b"trace",
                        value: None,
                    },
                ],
            },
            Record {
                timestamp: -1,
                timestamp_type: TimestampType::NotAvailable,
                key: None,
                value: RecordValue::Null,
                headers: vec![],
            },
            Record {
                timestamp: i64::MAX,
                timestamp_type: TimestampType::LogAppendTime,
                key: Some(b""),
                value: RecordValue::External(ExternalValue {
                    len: 10,
                    parts: vec![(ChunkId([7; 32]), 4), (ChunkId([9; 32]), 6)],
                }),
                headers: vec![RecordHeader {
                    key: b"",
                    value: Some(b""),
                }],
            },
            Record {
                timestamp: i64::MIN,
                timestamp_type: TimestampType::CreateTime,
                key: Some(b"k"),
                value: RecordValue::Inline(b""),
                headers: vec![],
            },
        ]
    }

    #[test]
    fn join_rebuilds_the_framing() {
        let rows = rows(&sample());
        let mut s = RecordStreams::default();
        split(&rows, &mut s).unwrap();
        assert_eq!(s.records, 4);
        assert_eq!(s.keys, b"user-1k");
        assert_eq!(s.headers, b"content-typeapplication/jsontrace");
        assert_eq!(join(&s.to_bytes(), rows.len()).unwrap(), rows);
        // An empty chunk has empty streams.
        split(&[], &mut s).unwrap();
        assert_eq!(join(&s.to_bytes(), 0).unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn refuses_what_does_not_add_up() {
        let rows = rows(&sample());
        let mut s = RecordStreams::default();
        split(&rows, &mut s).unwrap();
        let e = s.to_bytes();
        assert!(join(&e, rows.len() + 1).is_err());
        assert!(join(&e, rows.len() - 1).is_err());
        assert!(join(&e[..e.len() - 1], rows.len()).is_err());
        let mut extra = e.clone();
        extra.push(0);
        assert!(join(&extra, rows.len()).is_err());
        assert!(split(b"\x05junk", &mut s).is_err());
        // An external value whose parts do not add up to its length does
        // not frame (the record decoder would refuse it).
        let mut meta = vec![2 << 2, 0, 0, 0, 1];
        meta.extend_from_slice(&[7; 32]);
        meta.extend_from_slice(&[1, 0]);
        let mut bad = vec![1, u8::try_from(meta.len()).unwrap(), 0, 0];
        bad.extend_from_slice(&meta);
        assert!(join(&bad, 40).is_err());
    }

    /// The layout, byte for byte (docs/format.md § Record streams).
    #[test]
    fn golden_vector() {
        let r = Record {
            timestamp: 3,
            timestamp_type: TimestampType::CreateTime,
            key: Some(b"k"),
            value: RecordValue::Inline(b"vv"),
            headers: vec![RecordHeader {
                key: b"h",
                value: Some(b"x"),
            }],
        };
        let r2 = Record {
            timestamp: 2,
            ..r.clone()
        };
        let rows = rows(&[r, r2]);
        let mut s = RecordStreams::default();
        split(&rows, &mut s).unwrap();
        assert_eq!(
            hex(&s.to_bytes()),
            // records 2, meta 14, keys 2, values 4
            "020e0204\
             05060202010102 05010202010102\
             6b6b 76767676 68786878"
                .replace(' ', "")
        );
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}
