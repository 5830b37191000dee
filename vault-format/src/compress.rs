//! Per-chunk compression. Each compressed payload starts with a tag byte so
//! incompressible data can be stored as is and still decode on its own.

use crate::error::{FormatError, Result};
use crate::wire::{Reader, Writer};

/// Largest plaintext a single chunk or object may decompress to. Authentic
/// data never comes close; the cap only bounds damage from a bad length.
pub const MAX_PLAINTEXT: usize = 256 << 20;

const TAG_RAW: u8 = 0;
const TAG_ZSTD: u8 = 1;

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
    let payload = r.raw(r.remaining())?;
    match tag {
        TAG_RAW if payload.len() == len => Ok(payload.to_vec()),
        TAG_RAW => Err(FormatError::malformed(what, "raw payload length mismatch")),
        TAG_ZSTD => {
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
        t => Err(FormatError::malformed(
            what,
            format!("unknown compression tag {t}"),
        )),
    }
}

/// A reusable compressor: keeps zstd's context between chunks, which matters
/// on the write path where every chunk is compressed.
pub struct Compressor {
    level: Option<i32>,
    zstd: Option<zstd::bulk::Compressor<'static>>,
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
        Ok(Compressor { level: c.0, zstd })
    }

    pub fn level(&self) -> Option<i32> {
        self.level
    }

    /// Writes `tag || varint(len) || payload` for `data` into `out` (cleared first).
    pub fn compress_into(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<()> {
        out.clear();
        self.compress_append(data, out)
    }

    /// Appends `tag || varint(len) || payload` for `data` to `out`. zstd
    /// writes straight into `out`'s spare capacity, so the compressed bytes
    /// are never copied (this runs for every chunk of a snapshot).
    pub fn compress_append(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let mark = out.len();
        let mut head = Writer::with_capacity(11);
        if let Some(z) = self.zstd.as_mut() {
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
            head = Writer::with_capacity(11);
        }
        head.u8(TAG_RAW).varint(data.len() as u64);
        out.extend_from_slice(&head.into_inner());
        out.extend_from_slice(data);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
