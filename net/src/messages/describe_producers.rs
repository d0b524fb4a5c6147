//! DescribeProducers (key 61), version 0: the idempotent and transactional producers a
//! partition leader holds state for.

use crate::codec::{DecodeError, Reader, Writer};
use crate::header::ApiKey;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribeProducersRequest {
    pub topics: Vec<DescribeProducersTopic>,
}

/// Kafka's `TopicRequest`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribeProducersTopic {
    pub name: String,
    pub partition_indexes: Vec<i32>,
}

impl DescribeProducersRequest {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ApiKey::DescribeProducers.is_flexible(version);
        let topics = r.array(flexible, "topics", |r| {
            let name = r.string(flexible)?;
            let partition_indexes = r.array(flexible, "partition indexes", Reader::i32)?;
            r.tagged_fields(flexible)?;
            Ok(DescribeProducersTopic { name, partition_indexes })
        })?;
        r.tagged_fields(flexible)?;
        Ok(DescribeProducersRequest { topics })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribeProducersResponse {
    pub throttle_time_ms: i32,
    pub topics: Vec<DescribeProducersTopicResponse>,
}

/// Kafka's `TopicResponse`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribeProducersTopicResponse {
    pub name: String,
    pub partitions: Vec<DescribeProducersPartitionResponse>,
}

/// Kafka's `PartitionResponse`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribeProducersPartitionResponse {
    pub partition_index: i32,
    pub error_code: i16,
    pub error_message: Option<String>,
    pub active_producers: Vec<ProducerState>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerState {
    pub producer_id: i64,
    /// An i32 on the wire, although producer epochs are i16 everywhere else.
    pub producer_epoch: i32,
    /// The last sequence number the producer wrote; -1 if none.
    pub last_sequence: i32,
    /// The timestamp of the producer's last batch; -1 if none.
    pub last_timestamp: i64,
    /// The epoch of the transaction coordinator that last wrote a marker for the producer.
    pub coordinator_epoch: i32,
    /// The first offset of the producer's open transaction; -1 if none is open.
    pub current_txn_start_offset: i64,
}

impl Default for ProducerState {
    fn default() -> Self {
        ProducerState {
            producer_id: 0,
            producer_epoch: 0,
            last_sequence: -1,
            last_timestamp: -1,
            coordinator_epoch: 0,
            current_txn_start_offset: -1,
        }
    }
}

impl DescribeProducersResponse {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ApiKey::DescribeProducers.is_flexible(version);
        w.i32(self.throttle_time_ms);
        w.array_len(flexible, self.topics.len());
        for topic in &self.topics {
            w.string(flexible, &topic.name);
            w.array_len(flexible, topic.partitions.len());
            for partition in &topic.partitions {
                w.i32(partition.partition_index);
                w.i16(partition.error_code);
                w.nullable_string(flexible, partition.error_message.as_deref());
                w.array_len(flexible, partition.active_producers.len());
                for producer in &partition.active_producers {
                    producer.encode(w, flexible);
                }
                w.no_tagged_fields(flexible);
            }
            w.no_tagged_fields(flexible);
        }
        w.no_tagged_fields(flexible);
    }
}

impl ProducerState {
    fn encode(&self, w: &mut Writer, flexible: bool) {
        w.i64(self.producer_id);
        w.i32(self.producer_epoch);
        w.i32(self.last_sequence);
        w.i64(self.last_timestamp);
        w.i32(self.coordinator_epoch);
        w.i64(self.current_txn_start_offset);
        w.no_tagged_fields(flexible);
    }
}
