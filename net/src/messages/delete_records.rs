//! DeleteRecords (key 21), versions 0-2: move the log start offset of partitions forward, making
//! the records before it unreadable.

use crate::codec::{DecodeError, Reader, Writer};
use crate::header::ApiKey;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteRecordsRequest {
    pub topics: Vec<DeleteRecordsTopic>,
    /// How long to wait for the deletion to reach every replica.
    pub timeout_ms: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteRecordsTopic {
    pub name: String,
    pub partitions: Vec<DeleteRecordsPartition>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteRecordsPartition {
    pub partition_index: i32,
    /// The new log start offset: records below it are deleted. -1 means the high watermark.
    pub offset: i64,
}

impl DeleteRecordsRequest {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ApiKey::DeleteRecords.is_flexible(version);
        let topics = r.array(flexible, "topics", |r| {
            let name = r.string(flexible)?;
            let partitions = r.array(flexible, "partitions", |r| {
                let partition_index = r.i32()?;
                let offset = r.i64()?;
                r.tagged_fields(flexible)?;
                Ok(DeleteRecordsPartition { partition_index, offset })
            })?;
            r.tagged_fields(flexible)?;
            Ok(DeleteRecordsTopic { name, partitions })
        })?;
        let timeout_ms = r.i32()?;
        r.tagged_fields(flexible)?;
        Ok(DeleteRecordsRequest { topics, timeout_ms })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteRecordsResponse {
    pub throttle_time_ms: i32,
    pub topics: Vec<DeleteRecordsTopicResult>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteRecordsTopicResult {
    pub name: String,
    pub partitions: Vec<DeleteRecordsPartitionResult>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteRecordsPartitionResult {
    pub partition_index: i32,
    /// The partition's log start offset after the deletion (Kafka calls it the low watermark).
    pub low_watermark: i64,
    pub error_code: i16,
}

impl DeleteRecordsResponse {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ApiKey::DeleteRecords.is_flexible(version);
        w.i32(self.throttle_time_ms);
        w.array_len(flexible, self.topics.len());
        for topic in &self.topics {
            w.string(flexible, &topic.name);
            w.array_len(flexible, topic.partitions.len());
            for partition in &topic.partitions {
                w.i32(partition.partition_index);
                w.i64(partition.low_watermark);
                w.i16(partition.error_code);
                w.no_tagged_fields(flexible);
            }
            w.no_tagged_fields(flexible);
        }
        w.no_tagged_fields(flexible);
    }
}
