//! Talking to Kafka: client configuration, topic selection, and the reads
//! that make up a consistent cut (committed group offsets, then the log
//! start and end offsets of every selected partition in one request each).

mod acl_wire;
mod admin_call;
mod admin_ffi;
mod context;
mod describe;
mod estate;
pub(crate) mod estate_write;
pub(crate) use estate::{read_cluster_estate, read_estate_of};
pub(crate) mod produce_ffi;
pub use context::{ClientLog, wait_for_closing_clients};
pub(crate) use context::{Detached, MetadataClient, creation_error};
mod group_offsets;
mod membership;
pub use membership::{GroupMember, JoinWait, check_run_name};
pub(crate) mod config_wire;
mod offsets;
mod options;
pub(crate) mod quota_wire;
mod retry;
mod selection;
mod wire;
pub use describe::Presence;
pub(crate) use describe::{describe_topics, topic_presence};
pub use group_offsets::group_offsets;
pub(crate) use group_offsets::{OffsetCommit, commit_group_offsets};
pub(crate) use offsets::{
    Edge, dynamic_topic_configs, kafka_partition, partition_offsets, vault_partition,
};
pub use options::KafkaOptions;
pub(crate) use retry::{SettlePause, retry_transient};
pub(crate) use selection::ListedTopic;
pub use selection::{TopicInfo, TopicSelection};
pub(crate) use wire::sends_own_requests;
