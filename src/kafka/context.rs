//! What a client tells vault besides its answers: librdkafka reports
//! connection and authentication trouble through an error callback, not
//! through the request that fails. Keeping the last such report lets a
//! failed request say why (a wrong password, not "transport failure"),
//! and lets vault stop at once instead of waiting out the timeout.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

/// The client context of vault's metadata and admin clients.
#[derive(Default)]
pub struct ClientLog {
    last: Mutex<Option<(Option<RDKafkaErrorCode>, String)>>,
}

/// A consumer used for metadata, offsets and group calls.
pub(crate) type MetadataClient = Detached<BaseConsumer<ClientLog>>;

/// A client that is closed on a thread of its own when dropped. Closing a
/// librdkafka client waits for its threads, which wake on a 100 ms timer:
/// a restore makes a client for each question it asks the target, and
/// waited 100 ms after each answer (docs/benchmarks.md § Small records).
/// A client that has to deliver something on close (a producer) is not
/// one of these.
pub struct Detached<T: Send + 'static>(Option<T>);

impl<T: Send + 'static> Detached<T> {
    pub(crate) fn new(client: T) -> Detached<T> {
        Detached(Some(client))
    }
}

impl<T: Send + 'static> std::ops::Deref for Detached<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.0.as_ref().expect("present until dropped")
    }
}

/// How many clients are closing in the background, and a signal when one
/// is done: the process waits for them before it exits
/// ([`wait_for_closing_clients`]), so no client is still tearing down its
/// TLS sessions while `exit` runs OpenSSL's cleanup.
static CLOSING: (Mutex<usize>, Condvar) = (Mutex::new(0), Condvar::new());

fn closing_count() -> std::sync::MutexGuard<'static, usize> {
    // A count is still right after a panic elsewhere held the lock.
    CLOSING
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Counts one close as done when dropped, even if the close panicked.
struct Closed;

impl Drop for Closed {
    fn drop(&mut self) {
        *closing_count() -= 1;
        CLOSING.1.notify_all();
    }
}

impl<T: Send + 'static> Drop for Detached<T> {
    fn drop(&mut self) {
        let Some(client) = self.0.take() else { return };
        *closing_count() += 1;
        let done = Closed;
        // Should no thread be had, the closure (and the client and `done`
        // with it) is dropped here, and the client closes in line.
        let _ = std::thread::Builder::new()
            .name("kvault-close".into())
            .spawn(move || {
                let _done = done;
                drop(client);
            });
    }
}

/// Waits, at most `max`, until every [`Detached`] client has closed. Called
/// once, as `main` returns.
pub fn wait_for_closing_clients(max: Duration) {
    let deadline = Instant::now() + max;
    let mut open = closing_count();
    while *open > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        open = CLOSING
            .1
            .wait_timeout(open, left)
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0;
    }
}

impl ClientLog {
    /// The last trouble librdkafka reported, if any.
    pub(crate) fn last_error(&self) -> Option<String> {
        self.last
            .lock()
            .expect("client log")
            .as_ref()
            .map(|(_, r)| r.clone())
    }

    /// Whether the cluster refused this client's credentials or TLS: no
    /// retry can help, so waiting is pointless.
    pub fn refused(&self) -> bool {
        self.last
            .lock()
            .expect("client log")
            .as_ref()
            .is_some_and(|(code, reason)| {
                matches!(
                    code,
                    Some(
                        RDKafkaErrorCode::Authentication
                            | RDKafkaErrorCode::SaslAuthenticationFailed
                            | RDKafkaErrorCode::SSL
                    )
                ) || reason.contains("SASL authentication error")
                    || reason.contains("SSL handshake failed")
            })
    }
}

impl ClientContext for ClientLog {
    fn error(&self, error: KafkaError, reason: &str) {
        *self.last.lock().expect("client log") =
            Some((error.rdkafka_error_code(), crate::secrets::scrub(reason)));
    }
}

impl ConsumerContext for ClientLog {}

/// A client creation error, told without the setting's value: for a
/// misspelt key, librdkafka's message would quote a value that may be a
/// password.
pub(crate) fn creation_error(e: &KafkaError) -> String {
    match e {
        KafkaError::ClientConfig(_, desc, _, _) => desc.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Stands in for a client whose close takes a while.
    struct SlowClose(Duration, Arc<AtomicBool>);

    impl Drop for SlowClose {
        fn drop(&mut self) {
            std::thread::sleep(self.0);
            self.1.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn the_process_waits_for_clients_closing_in_the_background() {
        let closed = Arc::new(AtomicBool::new(false));
        let client = Detached::new(SlowClose(Duration::from_millis(150), Arc::clone(&closed)));
        let t0 = Instant::now();
        drop(client);
        // Dropping does not wait for the close.
        assert!(t0.elapsed() < Duration::from_millis(100));
        assert!(!closed.load(Ordering::SeqCst));
        wait_for_closing_clients(Duration::from_secs(5));
        assert!(
            closed.load(Ordering::SeqCst),
            "returned before the client closed"
        );
    }

    #[test]
    fn a_client_that_never_closes_holds_the_exit_up_only_so_long() {
        let stuck = Detached::new(SlowClose(Duration::from_secs(3), Arc::default()));
        drop(stuck);
        let t0 = Instant::now();
        wait_for_closing_clients(Duration::from_millis(200));
        let waited = t0.elapsed();
        assert!(
            waited >= Duration::from_millis(200) && waited < Duration::from_secs(2),
            "{waited:?}"
        );
    }
}
