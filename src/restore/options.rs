//! How a restore runs: where it writes, with how many decode threads,
//! how big its transactions are.

use crate::kafka::KafkaOptions;

pub struct RestoreOptions {
    pub kafka: KafkaOptions,
    /// Decode threads.
    pub workers: usize,
    /// A transaction commits after this many payload bytes (or 10 s).
    pub transaction_bytes: u64,
    pub progress: Option<indicatif::ProgressBar>,
}
