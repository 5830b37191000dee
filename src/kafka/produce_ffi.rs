//! Producing through a topic handle, for restore's hot loop.
//!
//! The rdkafka crate's `send` names the topic by string: every record
//! allocates a C string and makes librdkafka look the topic up under its
//! lock. Restore sends millions of small records to a handful of topics,
//! so it takes a handle per topic once and produces with it
//! (`RD_KAFKA_VTYPE_RKT`). Delivery reports still reach the producer's
//! context: the opaque is a `usize`, as rdkafka passes it.

// librdkafka calls the rdkafka crate does not wrap: each unsafe block
// says why it is sound (handles owned by RAII types, lengths from slices).
#![allow(unsafe_code)]

use std::ffi::CString;
use std::ptr::NonNull;

use rdkafka::bindings as rd;
use rdkafka::types::RDKafkaErrorCode;
use vault_format::record::RecordHeader;

/// A librdkafka topic handle, released on drop.
pub(crate) struct TopicHandle(NonNull<rd::rd_kafka_topic_t>);

// Safety: librdkafka topic handles are reference counted and thread-safe.
unsafe impl Send for TopicHandle {}
unsafe impl Sync for TopicHandle {}

impl TopicHandle {
    /// A handle on `topic` of the client `rk`, which must outlive it.
    pub fn new(rk: *mut rd::rd_kafka_t, topic: &str) -> Option<TopicHandle> {
        let name = CString::new(topic).ok()?;
        // Safety: `rk` is a live client; a null conf takes the defaults.
        let p = unsafe { rd::rd_kafka_topic_new(rk, name.as_ptr(), std::ptr::null_mut()) };
        NonNull::new(p).map(TopicHandle)
    }
}

impl Drop for TopicHandle {
    fn drop(&mut self) {
        // Safety: the handle came from rd_kafka_topic_new and is dropped once.
        unsafe { rd::rd_kafka_topic_destroy(self.0.as_ptr()) }
    }
}

/// One record to produce; librdkafka copies every byte before returning.
pub(crate) struct Produce<'a> {
    pub partition: i32,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    /// Milliseconds since the epoch; 0 lets librdkafka take the time now.
    pub timestamp: i64,
    pub headers: &'a [RecordHeader<'a>],
    /// Handed back in the delivery report.
    pub opaque: usize,
}

/// Queues `m` on the client `rk` for `topic`. On failure nothing was queued.
pub(crate) fn produce(
    rk: *mut rd::rd_kafka_t,
    topic: &TopicHandle,
    m: &Produce<'_>,
) -> Result<(), RDKafkaErrorCode> {
    fn parts(b: Option<&[u8]>) -> (*mut std::ffi::c_void, usize) {
        b.map_or((std::ptr::null_mut(), 0), |b| {
            (b.as_ptr().cast_mut().cast(), b.len())
        })
    }
    let headers = if m.headers.is_empty() {
        std::ptr::null_mut()
    } else {
        // Safety: a fresh list; each header's bytes are copied in.
        unsafe {
            let h = rd::rd_kafka_headers_new(m.headers.len());
            for hd in m.headers {
                let (v, vlen) = parts(hd.value);
                rd::rd_kafka_header_add(
                    h,
                    hd.key.as_ptr().cast(),
                    hd.key.len().cast_signed(),
                    v,
                    vlen.cast_signed(),
                );
            }
            h
        }
    };
    let (value, value_len) = parts(m.value);
    let (key, key_len) = parts(m.key);
    // Safety: every pointer is valid for its length for the duration of the
    // call and librdkafka copies them (F_COPY); on success it owns `headers`.
    let err = unsafe {
        rd::rd_kafka_producev(
            rk,
            rd::rd_kafka_vtype_t::RD_KAFKA_VTYPE_RKT,
            topic.0.as_ptr(),
            rd::rd_kafka_vtype_t::RD_KAFKA_VTYPE_PARTITION,
            m.partition,
            rd::rd_kafka_vtype_t::RD_KAFKA_VTYPE_MSGFLAGS,
            rd::RD_KAFKA_MSG_F_COPY,
            rd::rd_kafka_vtype_t::RD_KAFKA_VTYPE_VALUE,
            value,
            value_len,
            rd::rd_kafka_vtype_t::RD_KAFKA_VTYPE_KEY,
            key,
            key_len,
            rd::rd_kafka_vtype_t::RD_KAFKA_VTYPE_OPAQUE,
            std::ptr::without_provenance_mut::<std::ffi::c_void>(m.opaque),
            rd::rd_kafka_vtype_t::RD_KAFKA_VTYPE_TIMESTAMP,
            m.timestamp,
            rd::rd_kafka_vtype_t::RD_KAFKA_VTYPE_HEADERS,
            headers,
            rd::rd_kafka_vtype_t::RD_KAFKA_VTYPE_END,
        )
    };
    if err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        return Ok(());
    }
    if !headers.is_null() {
        // Safety: not taken over by librdkafka, which failed.
        unsafe { rd::rd_kafka_headers_destroy(headers) }
    }
    Err(err.into())
}

/// One non-blocking step of a flush of the client `rk`: `Ok` once every
/// queued message is delivered and its report served. The rdkafka crate's
/// `flush` waits out whole 100 ms slices between such steps (its `poll`
/// returns only at the deadline), which cost every restore transaction
/// 100 ms; the caller polls briefly between steps instead.
pub(crate) fn flush_step(rk: *mut rd::rd_kafka_t) -> Result<(), RDKafkaErrorCode> {
    // Safety: `rk` is a live producer; a zero timeout never blocks.
    let err = unsafe { rd::rd_kafka_flush(rk, 0) };
    if err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        Ok(())
    } else {
        Err(err.into())
    }
}
