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
pub(crate) type MetadataClient = BaseConsumer<ClientLog>;

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
