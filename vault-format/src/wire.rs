//! Little-endian fixed-width integers, LEB128 varints and length-prefixed
//! byte strings: the primitives every structure in `docs/format.md` is built
//! from. The reader is bounds-checked so decoders can be fed arbitrary bytes.

use crate::error::{FormatError, Result};

/// Appends primitives to a byte buffer.
#[derive(Default, Debug)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(n: usize) -> Self {
        Writer {
            buf: Vec::with_capacity(n),
        }
    }

    /// Appends to an existing buffer.
    pub fn from_vec(buf: Vec<u8>) -> Self {
        Writer { buf }
    }

    pub fn reserve(&mut self, n: usize) {
        self.buf.reserve(n);
    }

    pub fn into_inner(self) -> Vec<u8> {
        self.buf
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn raw(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }

    /// Unsigned LEB128.
    pub fn varint(&mut self, mut v: u64) -> &mut Self {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
        self
    }

    /// Signed values as zigzag LEB128, so small negatives stay short.
    pub fn zigzag(&mut self, v: i64) -> &mut Self {
        self.varint(zigzag_encode(v))
    }

    /// `varint(len) || bytes`.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.varint(b.len() as u64).raw(b)
    }

    /// Nullable bytes: `varint(0)` is null, `varint(len + 1) || bytes` otherwise.
    pub fn opt_bytes(&mut self, b: Option<&[u8]>) -> &mut Self {
        match b {
            None => self.varint(0),
            Some(b) => self.varint(b.len() as u64 + 1).raw(b),
        }
    }

    pub fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }
}

/// Reads primitives from a byte slice; every read is bounds-checked.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// `what` names the structure being read, for error messages.
    pub fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, pos: 0, what }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Fails unless every byte was consumed: trailing garbage is damage.
    pub fn finish(&self) -> Result<()> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(FormatError::malformed(
                self.what,
                format!("{} unexpected trailing bytes", self.remaining()),
            ))
        }
    }

    pub fn raw(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.remaining() < n {
            return Err(FormatError::Truncated {
                what: self.what,
                needed: n - self.remaining(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.raw(N)?.try_into().expect("length checked"))
    }

    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.raw(1)?[0])
    }

    pub fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub fn varint(&mut self) -> Result<u64> {
        let what = self.what;
        decode_varint(what, |_| self.u8())
    }

    pub fn zigzag(&mut self) -> Result<i64> {
        Ok(zigzag_decode(self.varint()?))
    }

    /// A varint that must fit a `usize` and is used as a length or count.
    /// Lengths larger than what is left are rejected before any allocation.
    pub fn len(&mut self) -> Result<usize> {
        let v = self.varint()?;
        usize::try_from(v)
            .map_err(|_| FormatError::malformed(self.what, "length does not fit in memory"))
    }

    /// A count of items that each take at least `min_item_size` bytes; checked
    /// against the bytes left so a hostile count cannot force a huge allocation.
    pub fn count(&mut self, min_item_size: usize) -> Result<usize> {
        let n = self.len()?;
        if n.saturating_mul(min_item_size.max(1)) > self.remaining() {
            return Err(FormatError::Truncated {
                what: self.what,
                needed: n.saturating_mul(min_item_size.max(1)) - self.remaining(),
            });
        }
        Ok(n)
    }

    pub fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.len()?;
        self.raw(n)
    }

    pub fn opt_bytes(&mut self) -> Result<Option<&'a [u8]>> {
        match self.len()? {
            0 => Ok(None),
            n => self.raw(n - 1).map(Some),
        }
    }

    pub fn str(&mut self) -> Result<&'a str> {
        let b = self.bytes()?;
        std::str::from_utf8(b).map_err(|_| FormatError::malformed(self.what, "string is not UTF-8"))
    }
}

/// A signed value as the unsigned one zigzag stores: 0, -1, 1, -2, ...
/// become 0, 1, 2, 3, ..., so small negatives stay short.
pub fn zigzag_encode(v: i64) -> u64 {
    // Zigzag: the bits are meant.
    ((v << 1) ^ (v >> 63)).cast_unsigned()
}

/// Reverses [`zigzag_encode`].
pub fn zigzag_decode(v: u64) -> i64 {
    // Zigzag: the bits are meant.
    (v >> 1).cast_signed() ^ -(v & 1).cast_signed()
}

/// Decodes one unsigned LEB128, taking its `i`-th byte from `byte(i)`: a
/// varint read from one buffer ([`Reader::varint`]) or split across two
/// (the record planes' first and continuation bytes) gets the same checks.
/// At most 64 bits, and only the shortest encoding, so every value has
/// exactly one encoding and decode∘encode is the identity.
#[inline]
pub(crate) fn decode_varint(
    what: &'static str,
    mut byte: impl FnMut(usize) -> Result<u8>,
) -> Result<u64> {
    let mut v: u64 = 0;
    for i in 0..10 {
        let b = byte(i)?;
        if i == 9 && b > 1 {
            return Err(FormatError::malformed(what, "varint overflows 64 bits"));
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            if b == 0 && i > 0 {
                return Err(FormatError::malformed(
                    what,
                    "varint is not minimally encoded",
                ));
            }
            return Ok(v);
        }
    }
    Err(FormatError::malformed(what, "varint longer than 10 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varints_round_trip(v: u64, s: i64, b: Option<Vec<u8>>) {
            let mut w = Writer::new();
            w.varint(v).zigzag(s).opt_bytes(b.as_deref());
            let buf = w.into_inner();
            let mut r = Reader::new(&buf, "test");
            prop_assert_eq!(r.varint().unwrap(), v);
            prop_assert_eq!(r.zigzag().unwrap(), s);
            prop_assert_eq!(r.opt_bytes().unwrap(), b.as_deref());
            r.finish().unwrap();
        }
    }

    #[test]
    fn overlong_varint_is_rejected() {
        let buf = [0xffu8; 11];
        assert!(Reader::new(&buf, "t").varint().is_err());
        let buf = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert!(Reader::new(&buf, "t").varint().is_err());
    }

    #[test]
    fn non_minimal_varint_is_rejected() {
        assert!(Reader::new(&[0x80, 0x00], "t").varint().is_err());
        assert_eq!(Reader::new(&[0x80, 0x01], "t").varint().unwrap(), 128);
    }

    #[test]
    fn hostile_count_is_rejected_before_allocation() {
        let mut w = Writer::new();
        w.varint(u64::MAX / 2);
        let buf = w.into_inner();
        assert!(Reader::new(&buf, "t").count(1).is_err());
    }
}
