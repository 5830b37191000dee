//! Committed offsets of every consumer group, through one admin client.
//!
//! librdkafka's ListConsumerGroupOffsets (an OffsetFetch to the group's
//! coordinator) takes one group per call but runs many calls side by side
//! on one client. A consumer per group, the other way, costs ~150 ms each to
//! create and close; clusters have hundreds or thousands of groups. The
//! rdkafka crate does not wrap this call, so this module holds vault's only
//! raw librdkafka code, each handle owned by a type that frees it.

use std::collections::VecDeque;
use std::ffi::{CStr, CString};
use std::time::{Duration, Instant};

use rdkafka::bindings as rd;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::TopicPartitionList;
use rdkafka::types::RDKafkaErrorCode;
use vault_format::manifest::{GroupOffset, GroupSnapshot};

use super::{KafkaOptions, RETRY_PAUSE, TopicInfo, is_getting_ready, retry_transient};
use crate::error::{Error, Result};

/// Requests in flight at once: enough to hide round trips, few enough not
/// to flood a coordinator.
const IN_FLIGHT: usize = 64;

/// Every consumer group with an offset committed on one of `topics`, with
/// its committed offsets there, sorted by group id.
pub fn group_offsets(
    opts: &KafkaOptions,
    client: &BaseConsumer,
    topics: &[TopicInfo],
) -> Result<Vec<GroupSnapshot>> {
    let list = retry_transient(opts, || client.fetch_group_list(None, opts.request_timeout))
        .map_err(|e| opts.kafka_err("listing consumer groups", e))?;
    let groups: Vec<_> = list
        .groups()
        .iter()
        .filter(|g| !g.name().starts_with("kvault-"))
        .collect();
    if groups.is_empty() || topics.is_empty() {
        return Ok(Vec::new());
    }
    let mut tpl = TopicPartitionList::new();
    for t in topics {
        tpl.add_partition_range(&t.name, 0, t.partitions as i32 - 1);
    }
    let names: Vec<&str> = groups.iter().map(|g| g.name()).collect();
    let committed = committed_offsets(opts, &names, &tpl)?;
    let mut out: Vec<GroupSnapshot> = groups
        .iter()
        .zip(committed)
        .filter(|(_, offsets)| !offsets.is_empty())
        .map(|(g, offsets)| GroupSnapshot {
            group_id: g.name().to_string(),
            protocol_type: g.protocol_type().to_string(),
            state: g.state().to_string(),
            offsets,
        })
        .collect();
    out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    Ok(out)
}

/// The committed offsets of each of `groups` on the partitions of `tpl`,
/// in the order of `groups`. Read with require_stable (what a read_committed
/// consumer would resume from), retrying while a coordinator is loading.
fn committed_offsets(
    opts: &KafkaOptions,
    groups: &[&str],
    tpl: &TopicPartitionList,
) -> Result<Vec<Vec<GroupOffset>>> {
    let admin = opts.admin()?;
    let rk = admin.inner().native_ptr();
    // Declared after `admin`, so freed before it.
    let queue = Queue::new(rk);
    let options = AdminOptions::new(rk, opts.request_timeout)?;
    let c_names: Vec<CString> = groups
        .iter()
        .map(|g| CString::new(*g).map_err(|_| Error::Usage(format!("group id {g:?} holds a NUL"))))
        .collect::<Result<_>>()?;

    let mut results: Vec<Option<Vec<GroupOffset>>> = vec![None; groups.len()];
    let mut first_try: Vec<Option<Instant>> = vec![None; groups.len()];
    // (group, not before): retries wait a little before going out again.
    let mut todo: VecDeque<(usize, Instant)> =
        (0..groups.len()).map(|i| (i, Instant::now())).collect();
    let mut in_flight = 0usize;
    loop {
        let now = Instant::now();
        while in_flight < IN_FLIGHT {
            match todo.front() {
                Some(&(i, at)) if at <= now => {
                    todo.pop_front();
                    first_try[i].get_or_insert(now);
                    options.set_opaque(i);
                    request(rk, &c_names[i], tpl, &options, &queue);
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
        match event.group_result() {
            Ok(offsets) => results[i] = Some(offsets),
            Err((code, message)) => {
                // An unstable offset belongs to a transaction about to end.
                let retry =
                    is_getting_ready(code) || code == RDKafkaErrorCode::UnstableOffsetCommit;
                let started = first_try[i].unwrap_or(now);
                if retry && now.duration_since(started) < opts.request_timeout {
                    todo.push_back((i, now + RETRY_PAUSE));
                } else {
                    return Err(opts.kafka_err(
                        &format!("reading the offsets of group {}", groups[i]),
                        message,
                    ));
                }
            }
        }
    }
    Ok(results
        .into_iter()
        .map(|r| r.expect("every group answered"))
        .collect())
}

fn request(
    rk: *mut rd::rd_kafka_t,
    group: &CStr,
    tpl: &TopicPartitionList,
    options: &AdminOptions,
    queue: &Queue,
) {
    // SAFETY: the request object copies the group id and the partition list;
    // librdkafka copies the request and the options in the call, so both are
    // freed right after it. The result comes back as an event on `queue`.
    unsafe {
        let mut req = rd::rd_kafka_ListConsumerGroupOffsets_new(group.as_ptr(), tpl.ptr());
        rd::rd_kafka_ListConsumerGroupOffsets(rk, &mut req, 1, options.0, queue.0);
        rd::rd_kafka_ListConsumerGroupOffsets_destroy(req);
    }
}

struct Queue(*mut rd::rd_kafka_queue_t);

impl Queue {
    fn new(rk: *mut rd::rd_kafka_t) -> Queue {
        // SAFETY: rk is a live client, which outlives the queue (see caller).
        Queue(unsafe { rd::rd_kafka_queue_new(rk) })
    }

    fn poll(&self, timeout: Duration) -> Option<Event> {
        // SAFETY: the queue is live; a non-null event is ours to destroy.
        let ev = unsafe { rd::rd_kafka_queue_poll(self.0, timeout.as_millis() as i32) };
        (!ev.is_null()).then_some(Event(ev))
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        // SAFETY: created by rd_kafka_queue_new, freed once.
        unsafe { rd::rd_kafka_queue_destroy(self.0) }
    }
}

struct AdminOptions(*mut rd::rd_kafka_AdminOptions_t);

impl AdminOptions {
    fn new(rk: *mut rd::rd_kafka_t, timeout: Duration) -> Result<AdminOptions> {
        // SAFETY: rk is live; the options are freed by Drop; errstr is a
        // buffer of the length passed.
        unsafe {
            let o = AdminOptions(rd::rd_kafka_AdminOptions_new(
                rk,
                rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS,
            ));
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
            let err = rd::rd_kafka_AdminOptions_set_require_stable_offsets(o.0, 1);
            if !err.is_null() {
                let msg = CStr::from_ptr(rd::rd_kafka_error_string(err))
                    .to_string_lossy()
                    .into_owned();
                rd::rd_kafka_error_destroy(err);
                return Err(Error::Usage(format!("require_stable_offsets: {msg}")));
            }
            Ok(o)
        }
    }

    /// Tags the next request with the group's index, returned on its event.
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

struct Event(*mut rd::rd_kafka_event_t);

impl Event {
    fn opaque(&self) -> usize {
        // SAFETY: the event is live.
        unsafe { rd::rd_kafka_event_opaque(self.0).addr() }
    }

    /// The one group's offsets, or the error code and message of the event,
    /// the group or the first failed partition.
    fn group_result(&self) -> std::result::Result<Vec<GroupOffset>, (RDKafkaErrorCode, String)> {
        // SAFETY: everything read here belongs to the live event and is
        // copied out before it is destroyed; counts bound every array read.
        unsafe {
            if rd::rd_kafka_event_type(self.0) != rd::RD_KAFKA_EVENT_LISTCONSUMERGROUPOFFSETS_RESULT
            {
                return Err((
                    RDKafkaErrorCode::Fail,
                    "unexpected event on the offsets queue".into(),
                ));
            }
            let err = rd::rd_kafka_event_error(self.0);
            if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                return Err((err.into(), cstr(rd::rd_kafka_event_error_string(self.0))));
            }
            let res = rd::rd_kafka_event_ListConsumerGroupOffsets_result(self.0);
            let mut n = 0usize;
            let groups = rd::rd_kafka_ListConsumerGroupOffsets_result_groups(res, &mut n);
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
                std::slice::from_raw_parts(list.elems, list.cnt as usize)
            } else {
                &[]
            };
            let mut out = Vec::new();
            for e in elems {
                if e.err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                    let code: RDKafkaErrorCode = e.err.into();
                    return Err((code, format!("{}/{}: {code}", cstr(e.topic), e.partition)));
                }
                // No commit comes back as an invalid offset (-1001) or -1.
                if e.offset < 0 {
                    continue;
                }
                let metadata = if e.metadata.is_null() || e.metadata_size == 0 {
                    None
                } else {
                    let bytes =
                        std::slice::from_raw_parts(e.metadata as *const u8, e.metadata_size);
                    Some(String::from_utf8_lossy(bytes).into_owned())
                };
                out.push(GroupOffset {
                    topic: cstr(e.topic),
                    partition: e.partition as u32,
                    offset: e.offset,
                    metadata,
                    leader_epoch: None,
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
unsafe fn cstr(p: *const std::ffi::c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        // SAFETY: see above.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}
