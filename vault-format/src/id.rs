//! Identifiers. All are fixed-size byte strings shown as lowercase hex.

use std::fmt;

use crate::error::{FormatError, Result};

macro_rules! hex_id {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            pub const LEN: usize = $len;

            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            pub fn to_hex(&self) -> String {
                hex_encode(&self.0)
            }

            pub fn from_hex(s: &str) -> Result<Self> {
                let v = hex_decode(s).ok_or_else(|| {
                    FormatError::malformed(stringify!($name), format!("{s:?} is not {} hex digits", 2 * $len))
                })?;
                let arr: [u8; $len] = v.try_into().map_err(|_| {
                    FormatError::malformed(stringify!($name), format!("{s:?} is not {} hex digits", 2 * $len))
                })?;
                Ok($name(arr))
            }

            pub fn from_slice(b: &[u8]) -> Option<Self> {
                b.try_into().ok().map($name)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), &self.to_hex()[..12])
            }
        }
    };
}

hex_id!(
    /// Keyed BLAKE3 of a chunk's plaintext: the same content has the same id,
    /// and without the vault's key the id says nothing about the content.
    ChunkId, 32
);
hex_id!(
    /// Random id of a pack file; it also selects the pack's encryption key.
    PackId, 16
);
hex_id!(
    /// Random id of a vault, bound into every object's associated data.
    VaultId, 16
);
hex_id!(
    /// Name of a standalone object (snapshot manifest, index object, key file).
    ObjectId, 32
);

hex_id!(
    /// A Kafka topic ID (KIP-516): the UUID a cluster gives a topic when it
    /// is created. A topic deleted and created again under the same name
    /// gets a new one, so it tells two histories of one name apart.
    TopicId, 16
);

impl TopicId {
    /// The form Kafka's tools print: URL-safe base64 without padding.
    pub fn to_kafka_string(&self) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::with_capacity(22);
        for chunk in self.0.chunks(3) {
            let mut b = [0u8; 3];
            b[..chunk.len()].copy_from_slice(chunk);
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..=chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }
}

pub fn hex_encode(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(DIGITS[(x >> 4) as usize] as char);
        s.push(DIGITS[(x & 15) as usize] as char);
    }
    s
}

pub fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let nib = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(nib(p[0])? << 4 | nib(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_ids_print_as_kafka_does() {
        // Kafka prints the UUID 0x0123..ef as its URL-safe base64.
        let id = TopicId([
            0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54,
            0x32, 0x10,
        ]);
        assert_eq!(id.to_kafka_string(), "ASNFZ4mrze_-3LqYdlQyEA");
        assert_eq!(
            TopicId([0xff; 16]).to_kafka_string(),
            "_____________________w"
        );
    }
}
