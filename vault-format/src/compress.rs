//! Per-chunk compression. Each compressed payload starts with a tag byte so
//! incompressible data can be stored as is and still decode on its own.

use crate::error::{FormatError, Result};
use crate::header::ObjectKind;
use crate::wire::{Reader, Writer};

/// Largest plaintext a single chunk or object may decompress to. Authentic
/// data never comes close; the cap only bounds damage from a bad length.
pub const MAX_PLAINTEXT: usize = 256 << 20;

const TAG_RAW: u8 = 0;
const TAG_ZSTD: u8 = 1;
/// zstd over a data chunk's record streams (`streams.rs`), one block per
/// stream. Read, no longer written: tag 3 replaced it.
const TAG_ZSTD_RECORDS: u8 = 2;
/// zstd over a data chunk's record planes (`planes.rs`), one block per plane.
const TAG_ZSTD_PLANES: u8 = 3;

/// The zstd level to use; `None` stores raw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compression(pub Option<i32>);

impl Compression {
    /// zstd level 1: on record data it compresses as well as level 3 at 64 KiB
    /// chunks and is about 30% faster (docs/benchmarks.md).
    pub const DEFAULT: Compression = Compression(Some(1));

    /// `tag || varint(len) || payload`. Stored raw when zstd does not shrink it.
    pub fn compress_framed(&self, data: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        Compressor::new(*self)?.compress_into(data, &mut out)?;
        Ok(out)
    }
}

/// Reverses [`Compression::compress_framed`].
pub fn decompress_framed(data: &[u8], what: &'static str) -> Result<Vec<u8>> {
    let mut r = Reader::new(data, what);
    let tag = r.u8()?;
    let len = r.len()?;
    if len > MAX_PLAINTEXT {
        return Err(FormatError::malformed(
            what,
            format!("plaintext length {len} exceeds the {MAX_PLAINTEXT} cap"),
        ));
    }
    if tag == TAG_ZSTD_RECORDS || tag == TAG_ZSTD_PLANES {
        let streams_len = r.len()?;
        if streams_len > MAX_PLAINTEXT {
            return Err(FormatError::malformed(
                what,
                format!(
                    "record streams or planes length {streams_len} exceeds the {MAX_PLAINTEXT} cap"
                ),
            ));
        }
        let streams = zstd_decompress(r.raw(r.remaining())?, streams_len, what)?;
        return if tag == TAG_ZSTD_PLANES {
            crate::planes::join(&streams, len)
        } else {
            crate::streams::join(&streams, len)
        };
    }
    let payload = r.raw(r.remaining())?;
    match tag {
        TAG_RAW if payload.len() == len => Ok(payload.to_vec()),
        TAG_RAW => Err(FormatError::malformed(what, "raw payload length mismatch")),
        TAG_ZSTD => zstd_decompress(payload, len, what),
        t => Err(FormatError::malformed(
            what,
            format!("unknown compression tag {t} (written by a newer vault?)"),
        )),
    }
}

/// Decompresses one zstd frame that must come to exactly `len` bytes.
fn zstd_decompress(payload: &[u8], len: usize, what: &'static str) -> Result<Vec<u8>> {
    // One decompression context per thread: creating one per chunk
    // cost more than decompressing a small chunk.
    thread_local! {
        static DCTX: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    let out = DCTX
        .with(|cell| {
            let mut cell = cell.borrow_mut();
            if cell.is_none() {
                *cell = Some(zstd::bulk::Decompressor::new()?);
            }
            cell.as_mut().expect("just set").decompress(payload, len)
        })
        .map_err(|e| FormatError::malformed(what, format!("zstd: {e}")))?;
    if out.len() != len {
        return Err(FormatError::malformed(what, "decompressed length mismatch"));
    }
    Ok(out)
}

/// A reusable compressor: keeps zstd's context between chunks, which matters
/// on the write path where every chunk is compressed.
pub struct Compressor {
    level: Option<i32>,
    zstd: Option<zstd::bulk::Compressor<'static>>,
    /// For record planes: a streaming context, to end a block per plane.
    streaming: Option<zstd::zstd_safe::CCtx<'static>>,
    planes: crate::planes::RecordPlanes,
}

impl Compressor {
    pub fn new(c: Compression) -> Result<Self> {
        let zstd = match c.0 {
            Some(level) => {
                Some(
                    zstd::bulk::Compressor::new(level).map_err(|e| FormatError::Encode {
                        what: "chunk",
                        detail: format!("zstd: {e}"),
                    })?,
                )
            }
            None => None,
        };
        let streaming = match c.0 {
            Some(level) => {
                let mut cctx = zstd::zstd_safe::CCtx::create();
                cctx.set_parameter(zstd::zstd_safe::CParameter::CompressionLevel(level))
                    .map_err(|code| zstd_error("chunk", code))?;
                Some(cctx)
            }
            None => None,
        };
        Ok(Compressor {
            level: c.0,
            zstd,
            streaming,
            planes: crate::planes::RecordPlanes::default(),
        })
    }

    pub fn level(&self) -> Option<i32> {
        self.level
    }

    /// Writes `tag || varint(len) || payload` for `data` into `out` (cleared first).
    pub fn compress_into(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<()> {
        out.clear();
        self.compress_append(data, out)
    }

    /// [`Compressor::compress_records_append`] into `out`, cleared first.
    pub fn compress_records_into(&mut self, rows: &[u8], out: &mut Vec<u8>) -> Result<()> {
        out.clear();
        self.compress_records_append(rows, out)
    }

    /// Appends `data`, an object of `kind`, in the encoding its kind takes:
    /// a data chunk's records as record planes, anything else as it is.
    /// The one place that decides, for the pipeline's workers and for
    /// [`crate::pack::PackBuilder::add`] alike.
    pub fn compress_object_append(
        &mut self,
        kind: ObjectKind,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        if kind == ObjectKind::DataChunk {
            self.compress_records_append(data, out)
        } else {
            self.compress_append(data, out)
        }
    }

    /// [`Compressor::compress_object_append`] into `out`, cleared first.
    pub fn compress_object_into(
        &mut self,
        kind: ObjectKind,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        out.clear();
        self.compress_object_append(kind, data, out)
    }

    /// Appends a data chunk's framed records to `out` as
    /// `tag || varint(len) || varint(planes len) || zstd frame` of their
    /// record planes, each non-empty plane ending a zstd block so it gets
    /// its own entropy tables. Falls back to [`Compressor::compress_into`]
    /// for bytes that are not framed records, and to raw storage when
    /// nothing is saved.
    pub fn compress_records_append(&mut self, rows: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let mark = out.len();
        let written = self.streams_append(rows, out);
        if written.is_err() {
            // Nothing half-written stays behind (a pack buffer holds more).
            out.truncate(mark);
        }
        written
    }

    fn streams_append(&mut self, rows: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let mark = out.len();
        let Some(cctx) = self.streaming.as_mut() else {
            return self.compress_append(rows, out);
        };
        if crate::planes::split(rows, &mut self.planes).is_err() {
            return self.compress_append(rows, out);
        }
        let head = self.planes.head();
        let total = head.len() + self.planes.parts_len();
        let mut w = Writer::with_capacity(21);
        w.u8(TAG_ZSTD_PLANES)
            .varint(rows.len() as u64)
            .varint(total as u64);
        out.extend_from_slice(&w.into_inner());
        // Each plane's block adds a 3-byte header at most beyond the bound.
        out.reserve(zstd::zstd_safe::compress_bound(total) + 3 * (crate::planes::PARTS + 1));
        cctx.reset(zstd::zstd_safe::ResetDirective::SessionOnly)
            .map_err(|code| zstd_error("chunk", code))?;
        cctx.set_pledged_src_size(Some(total as u64))
            .map_err(|code| zstd_error("chunk", code))?;
        let planes = self.planes.parts();
        // An empty plane gets no block: a flush with nothing new writes none.
        let parts = std::iter::once(&head[..]).chain(planes.iter().copied());
        for (i, part) in parts.enumerate() {
            let end = if i == crate::planes::PARTS {
                zstd::zstd_safe::zstd_sys::ZSTD_EndDirective::ZSTD_e_end
            } else {
                zstd::zstd_safe::zstd_sys::ZSTD_EndDirective::ZSTD_e_flush
            };
            let mut input = zstd::zstd_safe::InBuffer::around(part);
            loop {
                if out.capacity() - out.len() < 64 {
                    out.reserve(64 << 10);
                }
                let at = out.len();
                let mut output = zstd::zstd_safe::OutBuffer::around_pos(out, at);
                let left = cctx
                    .compress_stream2(&mut output, &mut input, end)
                    .map_err(|code| zstd_error("chunk", code))?;
                if left == 0 && input.pos() == part.len() {
                    break;
                }
            }
        }
        if out.len() - mark >= rows.len() {
            out.truncate(mark);
            append_raw(rows, out);
        }
        Ok(())
    }

    /// Appends `tag || varint(len) || payload` for `data` to `out`. zstd
    /// writes straight into `out`'s spare capacity, so the compressed bytes
    /// are never copied (this runs for every chunk of a snapshot).
    pub fn compress_append(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let mark = out.len();
        if let Some(z) = self.zstd.as_mut() {
            let mut head = Writer::with_capacity(11);
            head.u8(TAG_ZSTD).varint(data.len() as u64);
            out.extend_from_slice(&head.into_inner());
            let at = out.len();
            out.reserve(zstd::zstd_safe::compress_bound(data.len()));
            let mut cursor = std::io::Cursor::new(&mut *out);
            cursor.set_position(at as u64);
            let n = z
                .compress_to_buffer(data, &mut cursor)
                .map_err(|e| FormatError::Encode {
                    what: "chunk",
                    detail: format!("zstd: {e}"),
                })?;
            if n < data.len() {
                return Ok(());
            }
            out.truncate(mark);
        }
        append_raw(data, out);
        Ok(())
    }
}

/// Appends `tag || varint(len) || data` stored as it is: when compression
/// is off, or when it would not make the payload smaller.
fn append_raw(data: &[u8], out: &mut Vec<u8>) {
    let mut head = Writer::with_capacity(11);
    head.u8(TAG_RAW).varint(data.len() as u64);
    out.extend_from_slice(&head.into_inner());
    out.extend_from_slice(data);
}

fn zstd_error(what: &'static str, code: usize) -> FormatError {
    FormatError::Encode {
        what,
        detail: format!("zstd: {}", zstd::zstd_safe::get_error_name(code)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small_records(n: usize) -> Vec<u8> {
        use crate::record::{Record, RecordHeader, RecordValue, TimestampType};
        let mut rows = Vec::new();
        for i in 0..n {
            let key = format!("user-{}", i * 7919 % 1000);
            let value = format!(
                "{{\"ts\":{},\"path\":\"/api/orders\",\"n\":{}}}",
                1_700_000 + i,
                i * i
            );
            Record {
                timestamp: 1_700_000_000_000 + i64::try_from(i).unwrap() / 3,
                timestamp_type: TimestampType::CreateTime,
                key: Some(key.as_bytes()),
                value: RecordValue::Inline(value.as_bytes()),
                headers: vec![RecordHeader {
                    key: b"content-type",
                    value: Some(b"application/json"),
                }],
            }
            .encode_into(&mut rows);
        }
        rows
    }

    #[test]
    fn records_round_trip_through_their_streams() {
        let rows = small_records(2000);
        let mut c = Compressor::new(Compression::DEFAULT).unwrap();
        let mut out = Vec::new();
        c.compress_records_into(&rows, &mut out).unwrap();
        assert_eq!(out[0], TAG_ZSTD_PLANES);
        assert_eq!(decompress_framed(&out, "chunk").unwrap(), rows);
        // Smaller than the records compressed as they are framed.
        let plain = Compression::DEFAULT.compress_framed(&rows).unwrap();
        assert!(out.len() < plain.len(), "{} >= {}", out.len(), plain.len());
        // The context is reused: a second, different chunk comes out right.
        let rows2 = small_records(10);
        c.compress_records_into(&rows2, &mut out).unwrap();
        assert_eq!(decompress_framed(&out, "chunk").unwrap(), rows2);
        // Bytes that are not framed records are stored as before.
        let junk = b"not records at all, not records at all".repeat(20);
        c.compress_records_into(&junk, &mut out).unwrap();
        assert_eq!(out[0], TAG_ZSTD);
        assert_eq!(decompress_framed(&out, "chunk").unwrap(), junk);
        // Without compression, raw.
        let mut raw = Compressor::new(Compression(None)).unwrap();
        raw.compress_records_into(&rows2, &mut out).unwrap();
        assert_eq!(out[0], TAG_RAW);
        assert_eq!(decompress_framed(&out, "chunk").unwrap(), rows2);
    }

    #[test]
    fn damaged_record_streams_fail() {
        let rows = small_records(50);
        let mut c = Compressor::new(Compression::DEFAULT).unwrap();
        let mut out = Vec::new();
        c.compress_records_into(&rows, &mut out).unwrap();
        for cut in [1, 3, out.len() / 2, out.len() - 1] {
            assert!(decompress_framed(&out[..cut], "chunk").is_err());
        }
        // A wrong plaintext length is caught by join, not trusted.
        let mut w = Writer::new();
        w.u8(TAG_ZSTD_PLANES).varint(rows.len() as u64 + 1);
        let head_len = 1 + crate::wire::Writer::new().varint(rows.len() as u64).len();
        let mut bad = w.into_inner();
        bad.extend_from_slice(&out[head_len..]);
        assert!(decompress_framed(&bad, "chunk").is_err());
    }

    #[test]
    fn round_trips_compressible_and_random() {
        let text = b"kafka ".repeat(1000);
        let random: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        for data in [&text[..], &random[..], &[][..]] {
            for c in [
                Compression(None),
                Compression(Some(1)),
                Compression(Some(19)),
            ] {
                let framed = c.compress_framed(data).unwrap();
                assert_eq!(decompress_framed(&framed, "t").unwrap(), data);
                let mut out = Vec::new();
                Compressor::new(c)
                    .unwrap()
                    .compress_into(data, &mut out)
                    .unwrap();
                assert_eq!(decompress_framed(&out, "t").unwrap(), data);
            }
        }
    }
}
