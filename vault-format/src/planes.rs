//! The record planes of a data chunk (compression tag 3): the record
//! streams of `streams.rs`, with the meta stream taken apart field by
//! field. A compression filter, not a new plaintext: the chunk id stays the
//! keyed hash of the record framing.
//!
//! In the interleaved meta stream every record's attributes, timestamp
//! delta, key length, value length, header count and header lengths follow
//! one another, so one set of entropy tables has to serve bytes that are
//! nearly constant (attributes, header lengths) and bytes that are nearly
//! random (the low byte of a value length). Apart, each field is a plane of
//! its own: a constant plane costs zstd a few bytes, and a varying one gets
//! tables fitted to it. A varint field is split once more, into the first
//! byte of each varint and the bytes that continue it, because the two
//! have different statistics (a length of 200–800 is a near-uniform low
//! byte and a high byte of 1–6). On small records this stores the meta in
//! three quarters of the bytes (docs/benchmarks.md § Small records).
//!
//! Keys are front coded: a key is stored as how many bytes it shares with
//! the previous non-null key of the chunk (a plane of its own) and the
//! bytes after those. Kafka keys are often ids with a common prefix
//! (`user-`, `order-`, a tenant); interleaved, zstd pays for that prefix
//! with a match per record. Unrelated keys share nothing and cost a plane
//! of zeros.
//!
//! [`join`] rebuilds the canonical framing, so the rebuilt bytes are the
//! very bytes that were hashed; every varint must be minimal and every
//! plane used up exactly, so [`split`] of what [`join`] accepts gives back
//! the same encoding. See `docs/format.md` § Record planes.

use crate::error::{FormatError, Result};
use crate::record::{
    Record, RecordHeader, RecordIter, RecordValue, VALUE_INLINE, VALUE_NULL, opt_len, parse_attrs,
    read_external, write_external,
};
use crate::wire::{Reader, Writer, decode_varint, zigzag_decode, zigzag_encode};

const WHAT: &str = "record planes";

/// How many parts follow the head; every part but the last has its
/// length in the head.
pub const PARTS: usize = 17;

/// A varint field of every record: each varint's first byte in one plane,
/// the bytes that continue it (when the value is 128 or more) in another.
#[derive(Default)]
struct VarintPlane {
    first: Vec<u8>,
    more: Vec<u8>,
}

impl VarintPlane {
    fn push(&mut self, mut v: u64) {
        let mut into = &mut self.first;
        while v >= 0x80 {
            into.push((v as u8) | 0x80);
            v >>= 7;
            into = &mut self.more;
        }
        into.push(v as u8);
    }

    fn clear(&mut self) {
        self.first.clear();
        self.more.clear();
    }
}

/// A chunk's records as planes, and how many records they hold.
#[derive(Default)]
pub struct RecordPlanes {
    pub records: u64,
    attrs: Vec<u8>,
    timestamp_delta: VarintPlane,
    key_len: VarintPlane,
    key_prefix: VarintPlane,
    value_len: VarintPlane,
    external: Vec<u8>,
    header_count: VarintPlane,
    header_len: VarintPlane,
    keys: Vec<u8>,
    values: Vec<u8>,
    headers: Vec<u8>,
}

impl RecordPlanes {
    /// Empties the planes, keeping their memory for the next chunk.
    pub fn clear(&mut self) {
        self.records = 0;
        self.attrs.clear();
        self.timestamp_delta.clear();
        self.key_len.clear();
        self.key_prefix.clear();
        self.value_len.clear();
        self.external.clear();
        self.header_count.clear();
        self.header_len.clear();
        self.keys.clear();
        self.values.clear();
        self.headers.clear();
    }

    /// The parts in their stored order, after [`RecordPlanes::head`].
    pub fn parts(&self) -> [&[u8]; PARTS] {
        [
            &self.attrs,
            &self.timestamp_delta.first,
            &self.timestamp_delta.more,
            &self.key_len.first,
            &self.key_len.more,
            &self.key_prefix.first,
            &self.key_prefix.more,
            &self.value_len.first,
            &self.value_len.more,
            &self.external,
            &self.header_count.first,
            &self.header_count.more,
            &self.header_len.first,
            &self.header_len.more,
            &self.keys,
            &self.values,
            &self.headers,
        ]
    }

    /// `varint(records) || varint(len)` of every part but the last.
    pub fn head(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(64);
        w.varint(self.records);
        for p in &self.parts()[..PARTS - 1] {
            w.varint(p.len() as u64);
        }
        w.into_inner()
    }

    /// Length of the parts, without the head.
    pub fn parts_len(&self) -> usize {
        self.parts().iter().map(|p| p.len()).sum()
    }

    /// The whole encoding in one buffer, head and parts, as [`join`] takes
    /// it (the compressor feeds zstd the pieces instead).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = self.head();
        v.reserve(self.parts_len());
        for p in self.parts() {
            v.extend_from_slice(p);
        }
        v
    }
}

/// Splits a data chunk's framed records into `out` (cleared first). Fails
/// on bytes that are not framed records.
pub fn split(rows: &[u8], out: &mut RecordPlanes) -> Result<()> {
    out.clear();
    let mut prev_ts = 0i64;
    let mut prev_key: &[u8] = &[];
    for r in RecordIter::new(rows) {
        let r = r?;
        out.attrs.push(r.attrs());
        // Wrapping: the delta of any two i64 fits, and join wraps back.
        out.timestamp_delta
            .push(zigzag_encode(r.timestamp.wrapping_sub(prev_ts)));
        prev_ts = r.timestamp;
        out.key_len.push(opt_len(r.key));
        if let Some(k) = r.key {
            // Front coding: what the key shares with the previous key is
            // a length; only the rest is key bytes.
            let shared = common_prefix(prev_key, k);
            out.key_prefix.push(shared as u64);
            out.keys.extend_from_slice(&k[shared..]);
            prev_key = k;
        }
        match &r.value {
            RecordValue::Null => {}
            RecordValue::Inline(v) => {
                out.value_len.push(v.len() as u64);
                out.values.extend_from_slice(v);
            }
            RecordValue::External(e) => {
                let mut w = Writer::from_vec(std::mem::take(&mut out.external));
                write_external(&mut w, e);
                out.external = w.into_inner();
            }
        }
        out.header_count.push(r.headers.len() as u64);
        for h in &r.headers {
            out.header_len.push(h.key.len() as u64);
            out.header_len.push(opt_len(h.value));
            out.headers.extend_from_slice(h.key);
            if let Some(v) = h.value {
                out.headers.extend_from_slice(v);
            }
        }
        out.records += 1;
    }
    Ok(())
}

/// How many bytes `a` and `b` share at their start.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Reads a [`VarintPlane`] back, with the checks of [`Reader::varint`]
/// (the same decoder): at most 64 bits, and only the shortest encoding.
struct VarintPlaneReader<'a> {
    first: Reader<'a>,
    more: Reader<'a>,
}

impl<'a> VarintPlaneReader<'a> {
    fn new(first: &'a [u8], more: &'a [u8]) -> Self {
        VarintPlaneReader {
            first: Reader::new(first, WHAT),
            more: Reader::new(more, WHAT),
        }
    }

    fn varint(&mut self) -> Result<u64> {
        let (first, more) = (&mut self.first, &mut self.more);
        decode_varint(WHAT, |i| if i == 0 { first.u8() } else { more.u8() })
    }

    fn len(&mut self) -> Result<usize> {
        usize::try_from(self.varint()?)
            .map_err(|_| FormatError::malformed(WHAT, "length does not fit in memory"))
    }

    fn finish(&self) -> Result<()> {
        self.first.finish()?;
        self.more.finish()
    }
}

/// Rebuilds the framed records from their planes (`head || parts`, as
/// [`split`] and [`RecordPlanes::head`] laid them out). `rows_len` is the
/// framing's length as stored beside the planes; anything else is an error.
pub fn join(encoded: &[u8], rows_len: usize) -> Result<Vec<u8>> {
    let mut r = Reader::new(encoded, WHAT);
    let records = r.len()?;
    let mut lens = [0usize; PARTS - 1];
    for l in &mut lens {
        *l = r.len()?;
    }
    // One attributes byte per record: the count is checked against bytes
    // that are there before anything is allocated for it.
    if lens[0] != records {
        return Err(FormatError::malformed(
            WHAT,
            format!("{records} records but {} attribute bytes", lens[0]),
        ));
    }
    let mut part = |n: usize| r.raw(n);
    let attrs = part(lens[0])?;
    let ts_first = part(lens[1])?;
    let ts_more = part(lens[2])?;
    let key_first = part(lens[3])?;
    let key_more = part(lens[4])?;
    let prefix_first = part(lens[5])?;
    let prefix_more = part(lens[6])?;
    let value_first = part(lens[7])?;
    let value_more = part(lens[8])?;
    let external = part(lens[9])?;
    let hcount_first = part(lens[10])?;
    let hcount_more = part(lens[11])?;
    let hlen_first = part(lens[12])?;
    let hlen_more = part(lens[13])?;
    let keys = part(lens[14])?;
    let values = part(lens[15])?;
    let headers = r.raw(r.remaining())?;

    let mut timestamp_delta = VarintPlaneReader::new(ts_first, ts_more);
    let mut key_len = VarintPlaneReader::new(key_first, key_more);
    let mut key_prefix = VarintPlaneReader::new(prefix_first, prefix_more);
    let mut value_len = VarintPlaneReader::new(value_first, value_more);
    let mut external = Reader::new(external, WHAT);
    let mut header_count = VarintPlaneReader::new(hcount_first, hcount_more);
    let mut header_len = VarintPlaneReader::new(hlen_first, hlen_more);
    let mut keys = Reader::new(keys, WHAT);
    let mut values = Reader::new(values, WHAT);
    let mut headers = Reader::new(headers, WHAT);

    let mut out = Vec::with_capacity(rows_len);
    let mut prev_ts = 0i64;
    // The previous non-null key, which the next one shares a prefix with.
    let mut key_buf: Vec<u8> = Vec::new();
    let mut spare_headers: Vec<RecordHeader<'_>> = Vec::new();
    for &attrs in attrs {
        let (timestamp_type, form) = parse_attrs(attrs, WHAT)?;
        prev_ts = prev_ts.wrapping_add(zigzag_decode(timestamp_delta.varint()?));
        let has_key = match key_len.len()? {
            0 => false,
            n => {
                front_decode(n - 1, &mut key_prefix, &mut keys, &mut key_buf)?;
                true
            }
        };
        let key = has_key.then_some(&key_buf[..]);
        let value = match form {
            VALUE_NULL => RecordValue::Null,
            VALUE_INLINE => RecordValue::Inline(values.raw(value_len.len()?)?),
            _ => RecordValue::External(read_external(&mut external, WHAT)?),
        };
        let nh = header_count.len()?;
        // Each header takes two length bytes in its plane and two bytes of
        // framing: a count beyond either is damage, refused before the
        // header list grows for it.
        if nh > header_len.first.remaining() / 2 || nh > (rows_len - out.len()) / 2 {
            return Err(FormatError::malformed(WHAT, "more headers than lengths"));
        }
        let mut hv = recycle(std::mem::take(&mut spare_headers));
        hv.reserve(nh);
        for _ in 0..nh {
            let key = headers.raw(header_len.len()?)?;
            let value = opt_slice(&mut header_len, &mut headers)?;
            hv.push(RecordHeader { key, value });
        }
        let record = Record {
            timestamp: prev_ts,
            timestamp_type,
            key,
            value,
            headers: hv,
        };
        record.encode_into(&mut out);
        if out.len() > rows_len {
            return Err(FormatError::malformed(WHAT, "records longer than stored"));
        }
        spare_headers = recycle(record.headers);
    }
    timestamp_delta.finish()?;
    key_len.finish()?;
    key_prefix.finish()?;
    value_len.finish()?;
    external.finish()?;
    header_count.finish()?;
    header_len.finish()?;
    keys.finish()?;
    values.finish()?;
    headers.finish()?;
    if out.len() != rows_len {
        return Err(FormatError::malformed(WHAT, "records shorter than stored"));
    }
    Ok(out)
}

/// An empty header list for the next record, in the same allocation: the
/// key a record borrows from `key_buf` changes every record, so the list
/// cannot carry its borrows over; emptied, it carries none, and an empty
/// iterator collected into a vector of the same layout reuses the buffer
/// (and would only allocate anew if it did not).
fn recycle<'x>(mut v: Vec<RecordHeader<'_>>) -> Vec<RecordHeader<'x>> {
    v.clear();
    v.into_iter().map(|_| unreachable!("cleared")).collect()
}

/// Rebuilds a key of `len` bytes in `key`, which holds the previous key:
/// its first `shared` bytes (from `prefixes`), then the rest from `keys`.
/// Only the longest shared prefix is valid, so each key has one encoding.
fn front_decode(
    len: usize,
    prefixes: &mut VarintPlaneReader<'_>,
    keys: &mut Reader<'_>,
    key: &mut Vec<u8>,
) -> Result<()> {
    let shared = prefixes.len()?;
    if shared > len || shared > key.len() {
        return Err(FormatError::malformed(
            WHAT,
            "a key shares more than the previous key holds",
        ));
    }
    let rest = keys.raw(len - shared)?;
    if shared < key.len() && rest.first() == Some(&key[shared]) {
        return Err(FormatError::malformed(
            WHAT,
            "a key's shared prefix is not the longest",
        ));
    }
    key.truncate(shared);
    key.extend_from_slice(rest);
    Ok(())
}

/// An optional length (`0` none, `len + 1`) from `lens`, then the bytes.
fn opt_slice<'a>(
    lens: &mut VarintPlaneReader<'_>,
    from: &mut Reader<'a>,
) -> Result<Option<&'a [u8]>> {
    match lens.len()? {
        0 => Ok(None),
        n => from.raw(n - 1).map(Some),
    }
}

#[cfg(test)]
#[path = "planes_tests.rs"]
mod tests;
