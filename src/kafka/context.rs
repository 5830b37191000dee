//! What a client tells vault besides its answers: librdkafka reports
//! connection and authentication trouble through an error callback, not
//! through the request that fails. Keeping the last such report lets a
//! failed request say why (a wrong password, not "transport failure"),
//! and lets vault stop at once instead of waiting out the timeout.

use std::sync::Mutex;

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

impl<T: Send + 'static> Drop for Detached<T> {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            // Should no thread be had, the client closes here instead.
            let _ = std::thread::Builder::new()
                .name("kvault-close".into())
                .spawn(move || drop(client));
        }
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
