//! The Kafka consumer a snapshot reads with: the settings and conversions
//! that the record source and the format 1 proof share, in a module of
//! their own so neither has to import the other.

use rdkafka::Message;
use rdkafka::message::Timestamp;
use vault_format::record::TimestampType;

use crate::kafka::KafkaOptions;

/// The consumer settings every read of a snapshot shares ([`super::KafkaSource`]
/// and the record reads of [`super::upgrade`]): a consumer that never
/// commits to its group, says when a partition ends, reads at the
/// snapshot's isolation level, and fails rather than jump when an offset is
/// gone: retention may delete records between the cut and the read, and
/// the reader must hear of it to say so, not jump ahead in silence. `tune`
/// adds what one reader needs beyond these.
pub(super) fn consumer_config(
    kafka: &KafkaOptions,
    read_committed: bool,
    tune: impl FnOnce(&mut rdkafka::ClientConfig),
) -> rdkafka::ClientConfig {
    kafka.client_config_with(|c| {
        c.set("group.id", "kvault-snapshot")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set("auto.offset.reset", "error")
            .set(
                "isolation.level",
                if read_committed {
                    "read_committed"
                } else {
                    "read_uncommitted"
                },
            );
        tune(c);
    })
}

/// A message's timestamp as the vault stores it (-1 when there is none).
pub(super) fn timestamp_of(m: &rdkafka::message::BorrowedMessage<'_>) -> (i64, TimestampType) {
    match m.timestamp() {
        Timestamp::NotAvailable => (-1, TimestampType::NotAvailable),
        Timestamp::CreateTime(t) => (t, TimestampType::CreateTime),
        Timestamp::LogAppendTime(t) => (t, TimestampType::LogAppendTime),
    }
}
