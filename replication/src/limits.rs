//! Limits of the replication layer, with their units last.

/// Unwritten bytes a partition may hold before acks=0 and async-durability producers wait for
/// the disk.
pub const UNFLUSHED_BYTES_MAX: u64 = 64 << 20;
/// Kafka's limit on topic name length.
pub const TOPIC_NAME_BYTES_MAX: usize = 249;
/// Partitions per topic.
pub const PARTITIONS_PER_TOPIC_MAX: i32 = 10_000;
/// Topics one request may create (CreateTopics, or auto-creation by Metadata and Produce);
/// more are refused with INVALID_REQUEST.
pub const TOPICS_CREATED_PER_REQUEST_MAX: usize = 1000;
/// Node lists in a metadata record longer than this are damage (a partition has a few replicas).
pub const NODES_PER_RECORD_LIST_MAX: usize = 1024;
/// Topic configs in one metadata record.
pub const CONFIGS_PER_RECORD_MAX: usize = 4096;
/// A metadata record body larger than this is damage, not a record.
pub const RECORD_BYTES_MAX: usize = 1 << 20;
const _: () = assert!(CONFIGS_PER_RECORD_MAX * 2 * (2 + u16::MAX as usize) > RECORD_BYTES_MAX);
/// Damaged replicas one broker reports (in a heartbeat) and one record names; a broker with more
/// reports the first this many, and the rest once those are rebuilt.
pub const OFFLINE_REPLICAS_PER_BROKER_MAX: usize = 10_000;
const _: () = assert!(OFFLINE_REPLICAS_PER_BROKER_MAX * 20 < RECORD_BYTES_MAX);
/// Listeners one broker registration may name.
pub const LISTENERS_PER_BROKER_MAX: usize = 16;
/// A leader's ISR proposal not answered within this long is forgotten and may be made again.
pub const ISR_PROPOSAL_ANSWER_MS_MAX: i64 = 10_000;
