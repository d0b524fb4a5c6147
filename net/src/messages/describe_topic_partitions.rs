//! DescribeTopicPartitions (key 75), version 0: the partitions of topics with their leaders,
//! replicas and eligible leader replicas, paginated by a cursor so a client can walk topics with
//! more partitions than one response holds.

use crate::codec::{DecodeError, Reader, Writer};
use crate::header::ApiKey;

/// Kafka's default for `response_partition_limit`.
pub const RESPONSE_PARTITION_LIMIT_DEFAULT: i32 = 2000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeTopicPartitionsRequest {
    /// The names of the topics (Kafka's `TopicRequest` structs, which hold only a name).
    pub topics: Vec<String>,
    /// The most partitions the response may hold in all.
    pub response_partition_limit: i32,
    /// Where to start, `None` for the first partition of the first topic.
    pub cursor: Option<DescribeTopicPartitionsCursor>,
}

impl Default for DescribeTopicPartitionsRequest {
    fn default() -> Self {
        DescribeTopicPartitionsRequest {
            topics: Vec::new(),
            response_partition_limit: RESPONSE_PARTITION_LIMIT_DEFAULT,
            cursor: None,
        }
    }
}

/// A topic and partition index to start from: the request's `cursor` and the response's
/// `next_cursor`, which Kafka declares alike.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribeTopicPartitionsCursor {
    pub topic_name: String,
    pub partition_index: i32,
}

impl DescribeTopicPartitionsCursor {
    fn decode(r: &mut Reader, flexible: bool) -> Result<Self, DecodeError> {
        let topic_name = r.string(flexible)?;
        let partition_index = r.i32()?;
        r.tagged_fields(flexible)?;
        Ok(DescribeTopicPartitionsCursor { topic_name, partition_index })
    }

    fn encode(&self, w: &mut Writer, flexible: bool) {
        w.string(flexible, &self.topic_name);
        w.i32(self.partition_index);
        w.no_tagged_fields(flexible);
    }
}

impl DescribeTopicPartitionsRequest {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ApiKey::DescribeTopicPartitions.is_flexible(version);
        let topics = r.array(flexible, "topics", |r| {
            let name = r.string(flexible)?;
            r.tagged_fields(flexible)?;
            Ok(name)
        })?;
        let response_partition_limit = r.i32()?;
        let cursor = r.nullable_struct("cursor", |r| DescribeTopicPartitionsCursor::decode(r, flexible))?;
        r.tagged_fields(flexible)?;
        Ok(DescribeTopicPartitionsRequest { topics, response_partition_limit, cursor })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribeTopicPartitionsResponse {
    pub throttle_time_ms: i32,
    pub topics: Vec<DescribeTopicPartitionsResponseTopic>,
    /// Where the next request should start, `None` when every partition asked for was sent.
    pub next_cursor: Option<DescribeTopicPartitionsCursor>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeTopicPartitionsResponseTopic {
    pub error_code: i16,
    /// Nullable in Kafka's schema.
    pub name: Option<String>,
    pub topic_id: [u8; 16],
    pub is_internal: bool,
    pub partitions: Vec<DescribeTopicPartitionsResponsePartition>,
    /// A bitfield of the operations the client may perform on the topic; `i32::MIN` when not
    /// computed.
    pub topic_authorized_operations: i32,
}

impl Default for DescribeTopicPartitionsResponseTopic {
    fn default() -> Self {
        DescribeTopicPartitionsResponseTopic {
            error_code: 0,
            name: None,
            topic_id: [0; 16],
            is_internal: false,
            partitions: Vec::new(),
            topic_authorized_operations: i32::MIN,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeTopicPartitionsResponsePartition {
    pub error_code: i16,
    pub partition_index: i32,
    pub leader_id: i32,
    pub leader_epoch: i32,
    pub replica_nodes: Vec<i32>,
    pub isr_nodes: Vec<i32>,
    /// The replicas that may become leader although not in the ISR (KIP-966); `None` when
    /// eligible leader replicas are not enabled.
    pub eligible_leader_replicas: Option<Vec<i32>>,
    /// The last known eligible leader replicas; `None` when not enabled.
    pub last_known_elr: Option<Vec<i32>>,
    pub offline_replicas: Vec<i32>,
}

impl Default for DescribeTopicPartitionsResponsePartition {
    fn default() -> Self {
        DescribeTopicPartitionsResponsePartition {
            error_code: 0,
            partition_index: 0,
            leader_id: 0,
            leader_epoch: -1,
            replica_nodes: Vec::new(),
            isr_nodes: Vec::new(),
            eligible_leader_replicas: None,
            last_known_elr: None,
            offline_replicas: Vec::new(),
        }
    }
}

impl DescribeTopicPartitionsResponse {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ApiKey::DescribeTopicPartitions.is_flexible(version);
        w.i32(self.throttle_time_ms);
        w.array_len(flexible, self.topics.len());
        for topic in &self.topics {
            w.i16(topic.error_code);
            w.nullable_string(flexible, topic.name.as_deref());
            w.uuid(&topic.topic_id);
            w.bool(topic.is_internal);
            w.array_len(flexible, topic.partitions.len());
            for partition in &topic.partitions {
                partition.encode(w, flexible);
            }
            w.i32(topic.topic_authorized_operations);
            w.no_tagged_fields(flexible);
        }
        w.nullable_struct(self.next_cursor.as_ref(), |w, cursor| cursor.encode(w, flexible));
        w.no_tagged_fields(flexible);
    }
}

impl DescribeTopicPartitionsResponsePartition {
    fn encode(&self, w: &mut Writer, flexible: bool) {
        w.i16(self.error_code);
        w.i32(self.partition_index);
        w.i32(self.leader_id);
        w.i32(self.leader_epoch);
        w.i32_array(flexible, &self.replica_nodes);
        w.i32_array(flexible, &self.isr_nodes);
        w.nullable_i32_array(flexible, self.eligible_leader_replicas.as_deref());
        w.nullable_i32_array(flexible, self.last_known_elr.as_deref());
        w.i32_array(flexible, &self.offline_replicas);
        w.no_tagged_fields(flexible);
    }
}
