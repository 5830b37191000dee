//! Topic descriptions with their topic IDs (KIP-516), through librdkafka's
//! DescribeTopics, which the rdkafka crate does not wrap. The topic ID is
//! what tells a topic from one deleted and created again under its name.

// librdkafka calls the rdkafka crate does not wrap: each unsafe block
// says why it is sound (handles owned by RAII types, counts bounding reads).
#![allow(unsafe_code)]

use std::ffi::CString;
use std::time::Instant;

use rdkafka::bindings as rd;
use rdkafka::types::RDKafkaErrorCode;
use vault_format::TopicId;

use super::admin_call::{RdError, admin_request, result_slice};
use super::admin_ffi::cstr;
use super::options::KafkaOptions;
use super::retry::{RETRY_PAUSE, is_getting_ready};
use crate::error::{Error, Result};

/// One topic as DescribeTopics tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TopicDescription {
    pub name: String,
    /// `None` when the cluster has no topic IDs (before Kafka 2.8), or
    /// when the topic could not be described.
    pub id: Option<TopicId>,
    pub partitions: Vec<PartitionDescription>,
    /// Why the topic could not be described (not authorized, unknown...).
    pub error: Option<String>,
    pub error_code: Option<RDKafkaErrorCode>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PartitionDescription {
    pub partition: u32,
    /// The leader's broker id; `None` while the partition has no leader.
    pub leader: Option<i32>,
    pub replicas: u32,
}

/// What the cluster says of one topic now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Presence {
    Missing,
    /// There, on a cluster that gives no topic IDs (before Kafka 2.8).
    WithoutId,
    With(String),
}

/// Whether each of `names` is there, and its topic ID. A topic's own
/// error other than "unknown" is an error: the cluster could not say.
pub(crate) fn topic_presence(
    opts: &KafkaOptions,
    client: &crate::kafka::MetadataClient,
    names: &[String],
) -> Result<std::collections::BTreeMap<String, Presence>> {
    let described = describe_topics(opts, client, names)?;
    let mut out: std::collections::BTreeMap<String, Presence> = names
        .iter()
        .map(|n| (n.clone(), Presence::Missing))
        .collect();
    for d in described {
        let p = match (&d.error, d.error_code, d.id) {
            (None, _, Some(id)) => Presence::With(id.to_kafka_string()),
            (None, _, None) => Presence::WithoutId,
            (Some(_), Some(RDKafkaErrorCode::UnknownTopicOrPartition), _) => Presence::Missing,
            (Some(e), _, _) => {
                return Err(opts.kafka_err(&format!("describing topic {}", d.name), e));
            }
        };
        out.insert(d.name, p);
    }
    Ok(out)
}

/// Describes `names` on the cluster `client` talks to. A whole request
/// that fails is retried while the cluster is getting ready; a topic's own
/// error is returned in its description.
pub(crate) fn describe_topics(
    opts: &KafkaOptions,
    client: &crate::kafka::MetadataClient,
    names: &[String],
) -> Result<Vec<TopicDescription>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let c_names: Vec<CString> = names
        .iter()
        .map(|n| {
            CString::new(n.as_str())
                .map_err(|_| Error::Usage(format!("topic name {n:?} holds a NUL")))
        })
        .collect::<Result<_>>()?;
    let deadline = Instant::now() + opts.request_timeout;
    loop {
        match describe_once(opts, client, &c_names) {
            Err((code, _)) if is_getting_ready(code) && Instant::now() < deadline => {
                std::thread::sleep(RETRY_PAUSE);
            }
            Err((_, message)) => {
                return Err(opts.kafka_err("describing topics", message));
            }
            Ok(d) => return Ok(d),
        }
    }
}

fn describe_once(
    opts: &KafkaOptions,
    client: &crate::kafka::MetadataClient,
    names: &[CString],
) -> std::result::Result<Vec<TopicDescription>, RdError> {
    let mut ptrs: Vec<*const std::ffi::c_char> = names.iter().map(|n| n.as_ptr()).collect();
    // SAFETY: the collection copies the names; it is freed right after the
    // call, which copies it in turn.
    let event = admin_request(
        opts,
        client,
        rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBETOPICS,
        rd::RD_KAFKA_EVENT_DESCRIBETOPICS_RESULT,
        "DescribeTopics",
        |rk, options, queue| unsafe {
            let coll = rd::rd_kafka_TopicCollection_of_topic_names(ptrs.as_mut_ptr(), ptrs.len());
            rd::rd_kafka_DescribeTopics(rk, coll, options, queue);
            rd::rd_kafka_TopicCollection_destroy(coll);
        },
    )?;
    // SAFETY: everything read belongs to the live event and is copied out
    // before it is dropped; counts bound every array read.
    unsafe {
        let ev = event.0;
        let result = rd::rd_kafka_event_DescribeTopics_result(ev);
        let mut n = 0usize;
        let topics = result_slice(rd::rd_kafka_DescribeTopics_result_topics(result, &mut n), n);
        let mut out = Vec::with_capacity(n);
        for &t in topics {
            let name = cstr(rd::rd_kafka_TopicDescription_name(t));
            let terr = rd::rd_kafka_TopicDescription_error(t);
            let error_code: Option<RDKafkaErrorCode> = if terr.is_null()
                || rd::rd_kafka_error_code(terr)
                    == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
            {
                None
            } else {
                Some(rd::rd_kafka_error_code(terr).into())
            };
            let error = error_code
                .map(|code| format!("{code} ({})", cstr(rd::rd_kafka_error_string(terr))));
            let uuid = rd::rd_kafka_TopicDescription_topic_id(t);
            let id = if uuid.is_null() {
                None
            } else {
                // The UUID's bits, as Java's UUID keeps them in two longs.
                let msb = rd::rd_kafka_Uuid_most_significant_bits(uuid).cast_unsigned();
                let lsb = rd::rd_kafka_Uuid_least_significant_bits(uuid).cast_unsigned();
                let mut b = [0u8; 16];
                b[..8].copy_from_slice(&msb.to_be_bytes());
                b[8..].copy_from_slice(&lsb.to_be_bytes());
                // Kafka's "no id" is the all-zero UUID.
                (b != [0u8; 16]).then_some(TopicId(b))
            };
            let mut pn = 0usize;
            let parts = result_slice(rd::rd_kafka_TopicDescription_partitions(t, &mut pn), pn);
            let mut partitions: Vec<PartitionDescription> = parts
                .iter()
                .map(|&p| {
                    let leader = rd::rd_kafka_TopicPartitionInfo_leader(p);
                    let mut rn = 0usize;
                    rd::rd_kafka_TopicPartitionInfo_replicas(p, &mut rn);
                    PartitionDescription {
                        partition: u32::try_from(rd::rd_kafka_TopicPartitionInfo_partition(p))
                            .unwrap_or(0),
                        leader: (!leader.is_null())
                            .then(|| rd::rd_kafka_Node_id(leader))
                            .filter(|id| *id >= 0),
                        replicas: rn as u32,
                    }
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            out.push(TopicDescription {
                name,
                id: if error.is_some() { None } else { id },
                partitions,
                error,
                error_code,
            });
        }
        Ok(out)
    }
}
