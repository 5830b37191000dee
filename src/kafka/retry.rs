//! Asking a cluster again while it gets ready: which answers mean "not
//! yet", and the pauses between the looks.

use std::time::Duration;

use super::options::KafkaOptions;

/// Whether `code` means the cluster is still getting ready: a fresh or
/// restarted broker loads its group coordinator, and its partition leaders
/// settle their epochs, for a few seconds.
pub(crate) fn is_getting_ready(code: rdkafka::types::RDKafkaErrorCode) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        code,
        C::CoordinatorLoadInProgress
            | C::CoordinatorNotAvailable
            | C::NotCoordinator
            | C::LeaderNotAvailable
            | C::NotLeaderForPartition
            | C::UnknownLeaderEpoch
            | C::FencedLeaderEpoch
            | C::OffsetNotAvailable
    )
}

/// How long to wait before asking a cluster that is getting ready again.
pub(crate) const RETRY_PAUSE: Duration = Duration::from_millis(250);

/// The pauses between looks at a cluster while something settles (a new
/// topic's ID, a commit's markers): each look makes a new client, so soon
/// at first (10 ms), then less often (doubling up to 200 ms).
pub(crate) struct SettlePause(Duration);

impl SettlePause {
    pub(crate) fn new() -> SettlePause {
        SettlePause(Duration::from_millis(10))
    }

    /// Sleeps for the next pause.
    pub(crate) fn sleep(&mut self) {
        std::thread::sleep(self.0);
        self.0 = (self.0 * 2).min(Duration::from_millis(200));
    }
}

/// Runs `f` again while the cluster answers that it is still getting ready,
/// up to the request timeout.
pub(crate) fn retry_transient<T>(
    opts: &KafkaOptions,
    mut f: impl FnMut() -> rdkafka::error::KafkaResult<T>,
) -> rdkafka::error::KafkaResult<T> {
    let deadline = std::time::Instant::now() + opts.request_timeout;
    loop {
        match f() {
            Err(e)
                if e.rdkafka_error_code().is_some_and(is_getting_ready)
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(RETRY_PAUSE);
            }
            other => return other,
        }
    }
}
