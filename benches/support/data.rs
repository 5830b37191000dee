//! Synthetic Kafka-like records for benchmarks and measurements: 1 KiB
//! JSON-ish values with a key, a header and a mix of repeated structure and
//! random digits, so zstd finds what it finds in real event streams (about
//! 2-3x), not the 100x of a repeated string.

/// A fast deterministic generator (xorshift64*).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// One record value of exactly `size` bytes.
pub fn value(rng: &mut Rng, i: u64, size: usize) -> Vec<u8> {
    let mut v = format!(
        "{{\"event_id\":{i},\"user\":\"user-{:06}\",\"type\":\"{}\",\"amount\":{}.{:02},\"currency\":\"EUR\",\"items\":[",
        rng.next_u64() % 100_000,
        ["click", "view", "purchase", "refund"][(rng.next_u64() % 4) as usize],
        rng.next_u64() % 10_000,
        rng.next_u64() % 100
    )
    .into_bytes();
    while v.len() < size - 2 {
        let item = format!(
            "{{\"sku\":\"SKU-{:08x}\",\"qty\":{}}},",
            rng.next_u64() as u32,
            rng.next_u64() % 9 + 1
        );
        v.extend_from_slice(item.as_bytes());
    }
    v.truncate(size - 2);
    v.extend_from_slice(b"]}");
    v
}

/// `n` records of `size`-byte values: (key, value, timestamp).
pub fn records(n: usize, size: usize, seed: u64) -> Vec<(Vec<u8>, Vec<u8>, i64)> {
    let mut rng = Rng::new(seed);
    (0..n as u64)
        .zip(1_700_000_000_000i64..)
        .map(|(i, ts)| {
            (
                format!("key-{}", rng.next_u64() % 50_000).into_bytes(),
                value(&mut rng, i, size),
                ts,
            )
        })
        .collect()
}
