//! The canonical record framing: one Kafka record without its offset.
//! Offsets live in the tree leaves, so the same records at other offsets
//! (a mirrored topic, a restored copy) frame, chunk and dedup identically.
//! See `docs/format.md` § Record framing.

use crate::error::{FormatError, Result};
use crate::id::ChunkId;
use crate::wire::{Reader, Writer};

/// Kafka's timestamp type of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimestampType {
    NotAvailable = 0,
    CreateTime = 1,
    LogAppendTime = 2,
}

/// A record header. Kafka allows duplicate keys and null values; order matters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordHeader<'a> {
    pub key: &'a [u8],
    pub value: Option<&'a [u8]>,
}

/// A value too large to sit inside a data chunk: it is cut into value chunks
/// of its own and the record refers to them in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalValue {
    pub len: u64,
    pub parts: Vec<(ChunkId, u32)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordValue<'a> {
    /// A tombstone.
    Null,
    Inline(&'a [u8]),
    External(ExternalValue),
}

/// One record, borrowing its bytes from a Kafka message or a decoded chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub timestamp: i64,
    pub timestamp_type: TimestampType,
    pub key: Option<&'a [u8]>,
    pub value: RecordValue<'a>,
    pub headers: Vec<RecordHeader<'a>>,
}

/// Value forms, bits 2-3 of the attributes byte.
pub(crate) const VALUE_NULL: u8 = 0;
pub(crate) const VALUE_INLINE: u8 = 1;
pub(crate) const VALUE_EXTERNAL: u8 = 2;

impl<'a> Record<'a> {
    /// Bytes of key, value and headers as Kafka counts them; used for the
    /// trees' byte counts and for deciding when a value goes external.
    pub fn payload_len(&self) -> u64 {
        let v = match &self.value {
            RecordValue::Null => 0,
            RecordValue::Inline(b) => b.len() as u64,
            RecordValue::External(e) => e.len,
        };
        let h: u64 = self
            .headers
            .iter()
            .map(|h| (h.key.len() + h.value.map_or(0, <[u8]>::len)) as u64)
            .sum();
        self.key.map_or(0, |k| k.len() as u64) + v + h
    }

    /// Length of the body (everything after the length prefix).
    fn body_len(&self) -> usize {
        fn vlen(v: u64) -> usize {
            (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
        }
        let opt = |b: Option<&[u8]>| b.map_or(1, |b| vlen(b.len() as u64 + 1) + b.len());
        let mut n = 1 + vlen(crate::wire::zigzag_encode(self.timestamp)) + opt(self.key);
        n += match &self.value {
            RecordValue::Null => 0,
            RecordValue::Inline(v) => vlen(v.len() as u64) + v.len(),
            RecordValue::External(e) => {
                vlen(e.len)
                    + vlen(e.parts.len() as u64)
                    + e.parts
                        .iter()
                        .map(|(_, l)| 32 + vlen(u64::from(*l)))
                        .sum::<usize>()
            }
        };
        n += vlen(self.headers.len() as u64);
        n + self
            .headers
            .iter()
            .map(|h| vlen(h.key.len() as u64) + h.key.len() + opt(h.value))
            .sum::<usize>()
    }

    /// Appends `varint(len(body)) || body` to `out`, writing in place (this
    /// is the hottest loop of a snapshot: one call per record).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let body_len = self.body_len();
        let mut w = Writer::from_vec(std::mem::take(out));
        w.reserve(body_len + 10);
        w.varint(body_len as u64);
        let start = w.len();
        w.u8(self.attrs());
        w.zigzag(self.timestamp);
        w.opt_bytes(self.key);
        match &self.value {
            RecordValue::Null => {}
            RecordValue::Inline(v) => {
                w.bytes(v);
            }
            RecordValue::External(e) => write_external(&mut w, e),
        }
        w.varint(self.headers.len() as u64);
        for h in &self.headers {
            w.bytes(h.key).opt_bytes(h.value);
        }
        debug_assert_eq!(w.len() - start, body_len);
        *out = w.into_inner();
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode_into(&mut v);
        v
    }

    /// The attributes byte: timestamp type (bits 0-1), value form (2-3).
    pub(crate) fn attrs(&self) -> u8 {
        let form = match self.value {
            RecordValue::Null => VALUE_NULL,
            RecordValue::Inline(_) => VALUE_INLINE,
            RecordValue::External(_) => VALUE_EXTERNAL,
        };
        self.timestamp_type as u8 | (form << 2)
    }

    fn decode_body(body: &'a [u8]) -> Result<Record<'a>> {
        const WHAT: &str = "record";
        let mut r = Reader::new(body, WHAT);
        let (timestamp_type, form) = parse_attrs(r.u8()?, WHAT)?;
        let timestamp = r.zigzag()?;
        let key = r.opt_bytes()?;
        let value = match form {
            VALUE_NULL => RecordValue::Null,
            VALUE_INLINE => RecordValue::Inline(r.bytes()?),
            _ => RecordValue::External(read_external(&mut r, WHAT)?),
        };
        let nh = r.count(2)?;
        let mut headers = Vec::with_capacity(nh);
        for _ in 0..nh {
            headers.push(RecordHeader {
                key: r.bytes()?,
                value: r.opt_bytes()?,
            });
        }
        r.finish()?;
        Ok(Record {
            timestamp,
            timestamp_type,
            key,
            value,
            headers,
        })
    }
}

/// The timestamp type and value form of an attributes byte. Refuses
/// reserved bits, timestamp type 3 and unknown value forms, so that every
/// byte that decodes encodes back the same.
pub(crate) fn parse_attrs(attrs: u8, what: &'static str) -> Result<(TimestampType, u8)> {
    if attrs & !0x0f != 0 {
        return Err(FormatError::malformed(
            what,
            format!("reserved attribute bits set: {attrs:#04x}"),
        ));
    }
    let timestamp_type = match attrs & 3 {
        0 => TimestampType::NotAvailable,
        1 => TimestampType::CreateTime,
        2 => TimestampType::LogAppendTime,
        _ => return Err(FormatError::malformed(what, "timestamp type 3")),
    };
    match attrs >> 2 {
        f @ (VALUE_NULL | VALUE_INLINE | VALUE_EXTERNAL) => Ok((timestamp_type, f)),
        f => Err(FormatError::malformed(what, format!("value form {f}"))),
    }
}

/// `0` for none, `len + 1` for some: the framing's own optional form, as a
/// number (the record streams and planes store it apart from the bytes).
pub(crate) fn opt_len(b: Option<&[u8]>) -> u64 {
    b.map_or(0, |b| b.len() as u64 + 1)
}

/// `varint(total_len) || varint(n) || n × (chunk id || varint(part_len))`.
pub(crate) fn write_external(w: &mut Writer, e: &ExternalValue) {
    w.varint(e.len).varint(e.parts.len() as u64);
    for (id, len) in &e.parts {
        w.raw(&id.0).varint(u64::from(*len));
    }
}

/// Reads what [`write_external`] wrote; the parts must add up to the length.
pub(crate) fn read_external(r: &mut Reader<'_>, what: &'static str) -> Result<ExternalValue> {
    let len = r.varint()?;
    let n = r.count(33)?;
    let mut parts = Vec::with_capacity(n);
    let mut sum = 0u64;
    for _ in 0..n {
        let id = ChunkId(r.array()?);
        let part = u32::try_from(r.varint()?)
            .map_err(|_| FormatError::malformed(what, "value part longer than 4 GiB"))?;
        sum += u64::from(part);
        parts.push((id, part));
    }
    if sum != len {
        return Err(FormatError::malformed(
            what,
            "external value parts do not add up to its length",
        ));
    }
    Ok(ExternalValue { len, parts })
}

/// Iterates over the records framed back to back in a data chunk.
pub struct RecordIter<'a> {
    r: Reader<'a>,
    failed: bool,
}

impl<'a> RecordIter<'a> {
    pub fn new(chunk: &'a [u8]) -> Self {
        RecordIter {
            r: Reader::new(chunk, "record frame"),
            failed: false,
        }
    }
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<Record<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.r.is_empty() {
            return None;
        }
        let res = self.r.bytes().and_then(Record::decode_body);
        self.failed = res.is_err();
        Some(res)
    }
}

/// Decodes every record of a data chunk.
pub fn decode_records(chunk: &[u8]) -> Result<Vec<Record<'_>>> {
    RecordIter::new(chunk).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An owned record, so proptest can generate them.
    #[derive(Clone, Debug)]
    pub struct Owned {
        pub ts: i64,
        pub tt: u8,
        pub key: Option<Vec<u8>>,
        pub value: Option<Vec<u8>>,
        pub headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    }

    impl Owned {
        pub fn as_record(&self) -> Record<'_> {
            Record {
                timestamp: self.ts,
                timestamp_type: [
                    TimestampType::NotAvailable,
                    TimestampType::CreateTime,
                    TimestampType::LogAppendTime,
                ][self.tt as usize % 3],
                key: self.key.as_deref(),
                value: self
                    .value
                    .as_deref()
                    .map_or(RecordValue::Null, RecordValue::Inline),
                headers: self
                    .headers
                    .iter()
                    .map(|(k, v)| RecordHeader {
                        key: k,
                        value: v.as_deref(),
                    })
                    .collect(),
            }
        }
    }

    pub fn owned_record() -> impl Strategy<Value = Owned> {
        (
            any::<i64>(),
            0u8..3,
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
            proptest::collection::vec(
                (
                    proptest::collection::vec(any::<u8>(), 0..8),
                    proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8)),
                ),
                0..5,
            ),
        )
            .prop_map(|(ts, tt, key, value, headers)| Owned {
                ts,
                tt,
                key,
                value,
                headers,
            })
    }

    proptest! {
        #[test]
        fn framing_round_trips(recs in proptest::collection::vec(owned_record(), 0..20)) {
            let mut chunk = Vec::new();
            for r in &recs {
                r.as_record().encode_into(&mut chunk);
            }
            let back = decode_records(&chunk).unwrap();
            prop_assert_eq!(back.len(), recs.len());
            for (a, b) in recs.iter().zip(back) {
                prop_assert_eq!(a.as_record(), b);
            }
        }

        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_records(&bytes);
        }
    }

    #[test]
    fn null_and_empty_are_distinct() {
        let mk = |key: Option<&'static [u8]>, value: RecordValue<'static>| Record {
            timestamp: 5,
            timestamp_type: TimestampType::CreateTime,
            key,
            value,
            headers: vec![],
        };
        let variants = [
            mk(None, RecordValue::Null),
            mk(Some(b""), RecordValue::Null),
            mk(None, RecordValue::Inline(b"")),
            mk(Some(b""), RecordValue::Inline(b"")),
        ];
        let encoded: Vec<_> = variants.iter().map(Record::encode).collect();
        for i in 0..4 {
            for j in i + 1..4 {
                assert_ne!(encoded[i], encoded[j]);
            }
            assert_eq!(decode_records(&encoded[i]).unwrap()[0], variants[i]);
        }
    }

    #[test]
    fn header_order_duplicates_and_nulls_survive() {
        let r = Record {
            timestamp: -1,
            timestamp_type: TimestampType::LogAppendTime,
            key: Some(b"k"),
            value: RecordValue::Inline(b"v"),
            headers: vec![
                RecordHeader {
                    key: b"b",
                    value: Some(b"1"),
                },
                RecordHeader {
                    key: b"a",
                    value: None,
                },
                RecordHeader {
                    key: b"b",
                    value: Some(b""),
                },
            ],
        };
        assert_eq!(decode_records(&r.encode()).unwrap(), vec![r]);
    }

    #[test]
    fn external_values_round_trip() {
        let r = Record {
            timestamp: 1,
            timestamp_type: TimestampType::CreateTime,
            key: None,
            value: RecordValue::External(ExternalValue {
                len: 30,
                parts: vec![(ChunkId([1; 32]), 10), (ChunkId([2; 32]), 20)],
            }),
            headers: vec![],
        };
        assert_eq!(decode_records(&r.encode()).unwrap(), vec![r]);
    }
}
