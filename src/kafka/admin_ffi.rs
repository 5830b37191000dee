//! Per-group admin requests run side by side on one librdkafka client.
//!
//! librdkafka's ListConsumerGroupOffsets and AlterConsumerGroupOffsets take
//! one group per call but run many calls at once on one client. A consumer
//! per group, the other way, costs ~150 ms each to create and close, and
//! clusters have hundreds or thousands of groups. The rdkafka crate wraps
//! neither call, so this module holds vault's raw librdkafka code, each
//! handle owned by a type that frees it.

// librdkafka calls the rdkafka crate does not wrap: each unsafe block
// says why it is sound (handles owned by RAII types, counts bounding reads).
#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::ffi::{CStr, CString};
use std::time::{Duration, Instant};

use rdkafka::bindings as rd;
use rdkafka::consumer::Consumer;
use rdkafka::topic_partition_list::TopicPartitionList;
use rdkafka::types::RDKafkaErrorCode;

use super::options::KafkaOptions;
use super::retry::RETRY_PAUSE;
use crate::error::{Error, Result};

/// Requests in flight at once: enough to hide round trips, few enough not
/// to flood a coordinator.
const IN_FLIGHT: usize = 64;

/// An error code and message from librdkafka.
type RdError = (RDKafkaErrorCode, String);

/// The two per-group calls vault makes.
#[derive(Clone, Copy)]
pub(super) enum GroupOp {
    /// Committed offsets, read with require_stable (what a read_committed
    /// consumer would resume from).
    ListOffsets,
    /// Commits the offsets in the list, metadata included.
    AlterOffsets,
}

/// One request: a group and its partitions (with offsets, for an alter).
pub(super) struct GroupRequest<'a> {
    pub group: &'a str,
    /// `None` lists every offset the group has committed (ListOffsets
    /// only): one entry per commit, where a list of every selected
    /// partition costs an entry per partition whether the group read it or not.
    pub partitions: Option<&'a TopicPartitionList>,
}

/// Runs `op` for every request, at most `IN_FLIGHT` at a time, and returns
/// each group's partitions in request order. A request whose error
/// `retryable` accepts goes out again after a pause, for at most the
/// request timeout. `answered(n)` is told each time the n-th group answers.
/// An error names `what` was done to which group, then `hint`.
///
/// `client` must be a consumer with a `group.id` (it need not join it),
/// such as `KafkaOptions::metadata_client`:
/// librdkafka 2.12 answers a NOT_COORDINATOR reply to these calls by asking
/// the client's own consumer group to look up its coordinator, and crashes
/// on a client without one (an admin client, say).
pub(super) fn run_per_group(
    opts: &KafkaOptions,
    client: &super::MetadataClient,
    op: GroupOp,
    requests: &[GroupRequest<'_>],
    retryable: impl Fn(RDKafkaErrorCode) -> bool,
    mut answered: impl FnMut(usize),
    (what, hint): (&str, &str),
) -> Result<Vec<Vec<PartitionResult>>> {
    let queue = Queue::new(client);
    let rk = queue.client_ptr();
    let options = AdminOptions::for_group_op(rk, op, opts.request_timeout)?;
    let c_names: Vec<CString> = requests
        .iter()
        .map(|r| {
            CString::new(r.group)
                .map_err(|_| Error::Usage(format!("group id {:?} holds a NUL", r.group)))
        })
        .collect::<Result<_>>()?;

    let mut results: Vec<Option<Vec<PartitionResult>>> = vec![None; requests.len()];
    let mut first_try: Vec<Option<Instant>> = vec![None; requests.len()];
    // (request, not before): retries wait a little before going out again.
    let mut todo: VecDeque<(usize, Instant)> =
        (0..requests.len()).map(|i| (i, Instant::now())).collect();
    let mut in_flight = 0usize;
    let mut done = 0usize;
    loop {
        let now = Instant::now();
        while in_flight < IN_FLIGHT {
            match todo.front() {
                Some(&(i, at)) if at <= now => {
                    todo.pop_front();
                    first_try[i].get_or_insert(now);
                    options.set_opaque(i);
                    send(
                        rk,
                        op,
                        &c_names[i],
                        requests[i].partitions,
                        &options,
                        &queue,
                    );
                    in_flight += 1;
                }
                _ => break,
            }
        }
        if in_flight == 0 {
            match todo.front() {
                Some(&(_, at)) => {
                    std::thread::sleep(at.saturating_duration_since(now));
                    continue;
                }
                None => break,
            }
        }
        let Some(event) = queue.poll(Duration::from_millis(100)) else {
            continue;
        };
        in_flight -= 1;
        let i = event.opaque();
        // A group asked for everything it committed answers for topics
        // nobody selected too: an error there is not this read's to fail on.
        let tolerate = requests[i].partitions.is_none();
        match event.group_result(op, tolerate) {
            Ok(partitions) => {
                results[i] = Some(partitions);
                done += 1;
                answered(done);
            }
            Err((code, message)) => {
                let started = first_try[i].unwrap_or(now);
                if retryable(code) && now.duration_since(started) < opts.request_timeout {
                    todo.push_back((i, now + RETRY_PAUSE));
                } else {
                    return Err(Error::Kafka {
                        context: format!(
                            "{what} of group {} (brokers {})",
                            requests[i].group, opts.brokers
                        ),
                        message: format!("{message}; {hint}"),
                    });
                }
            }
        }
    }
    Ok(results
        .into_iter()
        .map(|r| r.expect("every group answered"))
        .collect())
}

/// One partition of a group's answer.
#[derive(Clone, Debug)]
pub(super) struct PartitionResult {
    pub topic: String,
    pub partition: i32,
    /// Negative when the group has no offset there.
    pub offset: i64,
    pub metadata: Option<String>,
}

fn send(
    rk: *mut rd::rd_kafka_t,
    op: GroupOp,
    group: &CStr,
    partitions: Option<&TopicPartitionList>,
    options: &AdminOptions,
    queue: &Queue<'_>,
) {
    // librdkafka takes a null list as "every committed offset".
    let list = partitions.map_or(std::ptr::null_mut(), TopicPartitionList::ptr);
    // SAFETY: the request objects copy the group id and the partition list;
    // librdkafka copies the request and the options in the call, so both are
    // freed right after it. The result comes back as an event on `queue`.
    unsafe {
        match op {
            GroupOp::ListOffsets => {
                let mut req = rd::rd_kafka_ListConsumerGroupOffsets_new(group.as_ptr(), list);
                rd::rd_kafka_ListConsumerGroupOffsets(rk, &mut req, 1, options.0, queue.ptr);
                rd::rd_kafka_ListConsumerGroupOffsets_destroy(req);
            }
            GroupOp::AlterOffsets => {
                let mut req = rd::rd_kafka_AlterConsumerGroupOffsets_new(group.as_ptr(), list);
                rd::rd_kafka_AlterConsumerGroupOffsets(rk, &mut req, 1, options.0, queue.ptr);
                rd::rd_kafka_AlterConsumerGroupOffsets_destroy(req);
            }
        }
    }
}

/// A result queue on a client. It borrows the client, so the borrow checker
/// keeps it from outliving it (librdkafka requires that).
pub(super) struct Queue<'c> {
    ptr: *mut rd::rd_kafka_queue_t,
    rk: *mut rd::rd_kafka_t,
    _client: std::marker::PhantomData<&'c super::MetadataClient>,
}

impl<'c> Queue<'c> {
    pub(super) fn new(client: &'c super::MetadataClient) -> Queue<'c> {
        let rk = client.client().native_ptr();
        // SAFETY: rk is a live client, which outlives the queue (the borrow).
        Queue {
            ptr: unsafe { rd::rd_kafka_queue_new(rk) },
            rk,
            _client: std::marker::PhantomData,
        }
    }

    /// The client's handle, for requests whose results come to this queue.
    pub(super) fn client_ptr(&self) -> *mut rd::rd_kafka_t {
        self.rk
    }

    pub(super) fn ptr(&self) -> *mut rd::rd_kafka_queue_t {
        self.ptr
    }

    pub(super) fn poll(&self, timeout: Duration) -> Option<Event> {
        // SAFETY: the queue is live; a non-null event is ours to destroy.
        let ev = unsafe { rd::rd_kafka_queue_poll(self.ptr, timeout.as_millis() as i32) };
        (!ev.is_null()).then_some(Event(ev))
    }
}

impl Drop for Queue<'_> {
    fn drop(&mut self) {
        // SAFETY: created by rd_kafka_queue_new, freed once.
        unsafe { rd::rd_kafka_queue_destroy(self.ptr) }
    }
}

pub(super) struct AdminOptions(pub(super) *mut rd::rd_kafka_AdminOptions_t);

impl AdminOptions {
    pub(super) fn for_group_op(
        rk: *mut rd::rd_kafka_t,
        op: GroupOp,
        timeout: Duration,
    ) -> Result<AdminOptions> {
        let op_type = match op {
            GroupOp::ListOffsets => {
                rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS
            }
            GroupOp::AlterOffsets => {
                rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_ALTERCONSUMERGROUPOFFSETS
            }
        };
        AdminOptions::new(rk, op_type, timeout, matches!(op, GroupOp::ListOffsets))
    }

    pub(super) fn new(
        rk: *mut rd::rd_kafka_t,
        op_type: rd::rd_kafka_admin_op_t,
        timeout: Duration,
        require_stable: bool,
    ) -> Result<AdminOptions> {
        // SAFETY: rk is live; the options are freed by Drop; errstr is a
        // buffer of the length passed.
        unsafe {
            let o = AdminOptions(rd::rd_kafka_AdminOptions_new(rk, op_type));
            let mut errstr = [0 as std::ffi::c_char; 256];
            let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
            if rd::rd_kafka_AdminOptions_set_request_timeout(
                o.0,
                ms,
                errstr.as_mut_ptr(),
                errstr.len(),
            ) != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
            {
                let msg = CStr::from_ptr(errstr.as_ptr()).to_string_lossy();
                return Err(Error::Usage(format!("request timeout {ms} ms: {msg}")));
            }
            if require_stable {
                let err = rd::rd_kafka_AdminOptions_set_require_stable_offsets(o.0, 1);
                if !err.is_null() {
                    let msg = cstr(rd::rd_kafka_error_string(err));
                    rd::rd_kafka_error_destroy(err);
                    return Err(Error::Usage(format!("require_stable_offsets: {msg}")));
                }
            }
            Ok(o)
        }
    }

    /// Tags the next request with its index, returned on its event.
    fn set_opaque(&self, i: usize) {
        // SAFETY: the options are live; the opaque is a plain integer.
        unsafe { rd::rd_kafka_AdminOptions_set_opaque(self.0, std::ptr::without_provenance_mut(i)) }
    }
}

impl Drop for AdminOptions {
    fn drop(&mut self) {
        // SAFETY: created by rd_kafka_AdminOptions_new, freed once.
        unsafe { rd::rd_kafka_AdminOptions_destroy(self.0) }
    }
}

pub(super) struct Event(pub(super) *mut rd::rd_kafka_event_t);

impl Event {
    fn opaque(&self) -> usize {
        // SAFETY: the event is live.
        unsafe { rd::rd_kafka_event_opaque(self.0).addr() }
    }

    /// The one group's partitions, or the error code and message of the
    /// event, the group or the first failed partition.
    /// `tolerate_partition_errors`: a partition's own error drops that
    /// partition instead of failing the group (its offset comes back -1).
    fn group_result(
        &self,
        op: GroupOp,
        tolerate_partition_errors: bool,
    ) -> std::result::Result<Vec<PartitionResult>, RdError> {
        // SAFETY: everything read here belongs to the live event and is
        // copied out before it is destroyed; counts bound every array read.
        unsafe {
            let expected = match op {
                GroupOp::ListOffsets => rd::RD_KAFKA_EVENT_LISTCONSUMERGROUPOFFSETS_RESULT,
                GroupOp::AlterOffsets => rd::RD_KAFKA_EVENT_ALTERCONSUMERGROUPOFFSETS_RESULT,
            };
            if rd::rd_kafka_event_type(self.0) != expected {
                return Err((
                    RDKafkaErrorCode::Fail,
                    "unexpected event on the admin queue".into(),
                ));
            }
            let err = rd::rd_kafka_event_error(self.0);
            if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                return Err((err.into(), cstr(rd::rd_kafka_event_error_string(self.0))));
            }
            let mut n = 0usize;
            let groups = match op {
                GroupOp::ListOffsets => rd::rd_kafka_ListConsumerGroupOffsets_result_groups(
                    rd::rd_kafka_event_ListConsumerGroupOffsets_result(self.0),
                    &mut n,
                ),
                GroupOp::AlterOffsets => rd::rd_kafka_AlterConsumerGroupOffsets_result_groups(
                    rd::rd_kafka_event_AlterConsumerGroupOffsets_result(self.0),
                    &mut n,
                ),
            };
            if n != 1 || groups.is_null() {
                return Err((
                    RDKafkaErrorCode::Fail,
                    format!("expected one group result, got {n}"),
                ));
            }
            let g = *groups;
            let gerr = rd::rd_kafka_group_result_error(g);
            if !gerr.is_null() {
                return Err((
                    rd::rd_kafka_error_code(gerr).into(),
                    cstr(rd::rd_kafka_error_string(gerr)),
                ));
            }
            let list = rd::rd_kafka_group_result_partitions(g);
            if list.is_null() {
                return Ok(Vec::new());
            }
            let list = &*list;
            let elems: &[rd::rd_kafka_topic_partition_t] = if list.cnt > 0 {
                std::slice::from_raw_parts(list.elems, usize::try_from(list.cnt).unwrap_or(0))
            } else {
                &[]
            };
            let mut out = Vec::with_capacity(elems.len());
            for e in elems {
                let failed = e.err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR;
                if failed && !tolerate_partition_errors {
                    let code: RDKafkaErrorCode = e.err.into();
                    return Err((code, format!("{}/{}: {code}", cstr(e.topic), e.partition)));
                }
                let metadata = if e.metadata.is_null() || e.metadata_size == 0 {
                    None
                } else {
                    let bytes =
                        std::slice::from_raw_parts(e.metadata as *const u8, e.metadata_size);
                    Some(String::from_utf8_lossy(bytes).into_owned())
                };
                out.push(PartitionResult {
                    topic: cstr(e.topic),
                    partition: e.partition,
                    // No offset to trust; the topic still shows the group uses it.
                    offset: if failed { -1 } else { e.offset },
                    metadata,
                });
            }
            Ok(out)
        }
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        // SAFETY: returned by rd_kafka_queue_poll, freed once.
        unsafe { rd::rd_kafka_event_destroy(self.0) }
    }
}

/// # Safety
/// `p` is null or a NUL-terminated string that lives for the call.
pub(super) unsafe fn cstr(p: *const std::ffi::c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        // SAFETY: see above.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}
