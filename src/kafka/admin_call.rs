//! One librdkafka admin request and its result event: the queue, the
//! options, the wait bounded by the request timeout, and the event-level
//! error. The callers (cluster estate reads and writes) parse the event.

// librdkafka calls the rdkafka crate does not wrap: each unsafe block
// says why it is sound (handles owned by RAII types, counts bounding reads).
#![allow(unsafe_code)]

use std::time::{Duration, Instant};

use rdkafka::bindings as rd;
use rdkafka::types::RDKafkaErrorCode;

use super::admin_ffi::{AdminOptions, Event, Queue, cstr};
use super::options::KafkaOptions;

/// An error code and message from librdkafka.
pub(super) type RdError = (RDKafkaErrorCode, String);

/// Sends one admin request (`send` gets the client, the options and the
/// result queue) and waits for its event of type `event_type`. An error
/// of the whole request comes back as `Err`; per-item errors stay in the
/// event for the caller.
pub(super) fn admin_request(
    opts: &KafkaOptions,
    client: &super::MetadataClient,
    op: rd::rd_kafka_admin_op_t,
    event_type: rd::rd_kafka_event_type_t,
    what: &str,
    send: impl FnOnce(*mut rd::rd_kafka_t, *mut rd::rd_kafka_AdminOptions_t, *mut rd::rd_kafka_queue_t),
) -> Result<Event, RdError> {
    let queue = Queue::new(client);
    let options = AdminOptions::new(queue.client_ptr(), op, opts.request_timeout, false)
        .map_err(|e| (RDKafkaErrorCode::Fail, e.to_string()))?;
    send(queue.client_ptr(), options.0, queue.ptr());
    // The request times out on its own after the request timeout; the extra
    // second lets its timeout event arrive.
    let deadline = Instant::now() + opts.request_timeout + Duration::from_secs(1);
    let event = loop {
        if let Some(e) = queue.poll(Duration::from_millis(100)) {
            break e;
        }
        if Instant::now() > deadline {
            return Err((
                RDKafkaErrorCode::RequestTimedOut,
                format!("{what} timed out"),
            ));
        }
    };
    // SAFETY: the event is live until dropped; the strings are copied.
    unsafe {
        if rd::rd_kafka_event_type(event.0) != event_type {
            return Err((
                RDKafkaErrorCode::Fail,
                format!("{what}: unexpected event on the admin queue"),
            ));
        }
        let err = rd::rd_kafka_event_error(event.0);
        if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            return Err((err.into(), cstr(rd::rd_kafka_event_error_string(event.0))));
        }
    }
    Ok(event)
}

/// The code and message of a per-item `rd_kafka_error_t`, `None` for none.
///
/// # Safety
/// `err` is null or a live error owned by a live event.
pub(super) unsafe fn item_error(err: *const rd::rd_kafka_error_t) -> Option<RdError> {
    if err.is_null() {
        return None;
    }
    // SAFETY: per the contract, err is live.
    unsafe {
        let code = rd::rd_kafka_error_code(err);
        (code != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR)
            .then(|| (code.into(), cstr(rd::rd_kafka_error_string(err))))
    }
}

/// A slice over a librdkafka result array (empty for a null pointer).
///
/// # Safety
/// `ptr` is null or points at `n` elements that outlive `'a`.
pub(super) unsafe fn result_slice<'a, T>(ptr: *const T, n: usize) -> &'a [T] {
    if ptr.is_null() || n == 0 {
        &[]
    } else {
        // SAFETY: per the contract.
        unsafe { std::slice::from_raw_parts(ptr, n) }
    }
}
