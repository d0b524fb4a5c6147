//! ListOffsets (key 2), versions 1-10: the offset of each partition at a timestamp, or one of
//! the special timestamps (latest, earliest, max timestamp, earliest local, latest tiered).
//! Version 0 (several offsets per partition) is not served.

use crate::codec::{DecodeError, Reader, Writer};
use crate::header::ApiKey;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOffsetsRequest {
    /// -1 for consumers.
    pub replica_id: i32,
    /// 0 (read uncommitted) below version 2, which lacks the field.
    pub isolation_level: i8,
    pub topics: Vec<ListOffsetsTopic>,
    /// How long a request may wait for a remote (tiered) offset; 0 below version 10.
    pub timeout_ms: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOffsetsTopic {
    pub name: String,
    pub partitions: Vec<ListOffsetsPartition>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOffsetsPartition {
    pub partition_index: i32,
    /// -1 (no fencing) below version 4, which lacks the field.
    pub current_leader_epoch: i32,
    /// A timestamp in ms, or -1 (latest), -2 (earliest), -3 (max timestamp, version 7 on),
    /// -4 (earliest local, version 8 on), -5 (latest tiered, version 9 on).
    pub timestamp: i64,
}

impl ListOffsetsRequest {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ApiKey::ListOffsets.is_flexible(version);
        let replica_id = r.i32()?;
        let isolation_level = if version >= 2 { r.i8()? } else { 0 };
        let topics = r.array(flexible, "topics", |r| ListOffsetsTopic::decode(r, version, flexible))?;
        let timeout_ms = if version >= 10 { r.i32()? } else { 0 };
        r.tagged_fields(flexible)?;
        Ok(ListOffsetsRequest { replica_id, isolation_level, topics, timeout_ms })
    }
}

impl ListOffsetsTopic {
    fn decode(r: &mut Reader, version: i16, flexible: bool) -> Result<Self, DecodeError> {
        let name = r.string(flexible)?;
        let partitions = r.array(flexible, "partitions", |r| ListOffsetsPartition::decode(r, version, flexible))?;
        r.tagged_fields(flexible)?;
        Ok(ListOffsetsTopic { name, partitions })
    }
}

impl ListOffsetsPartition {
    fn decode(r: &mut Reader, version: i16, flexible: bool) -> Result<Self, DecodeError> {
        let partition_index = r.i32()?;
        let current_leader_epoch = if version >= 4 { r.i32()? } else { -1 };
        let timestamp = r.i64()?;
        r.tagged_fields(flexible)?;
        Ok(ListOffsetsPartition { partition_index, current_leader_epoch, timestamp })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOffsetsResponse {
    pub throttle_time_ms: i32,
    pub topics: Vec<ListOffsetsTopicResponse>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOffsetsTopicResponse {
    pub name: String,
    pub partitions: Vec<ListOffsetsPartitionResponse>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOffsetsPartitionResponse {
    pub partition_index: i32,
    pub error_code: i16,
    pub timestamp: i64,
    pub offset: i64,
    pub leader_epoch: i32,
}

impl ListOffsetsResponse {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        // Version 0 answers with an array of offsets instead of timestamp and offset.
        debug_assert!(version >= 1, "ListOffsets v0 is not served");
        let flexible = ApiKey::ListOffsets.is_flexible(version);
        if version >= 2 {
            w.i32(self.throttle_time_ms);
        }
        w.array_len(flexible, self.topics.len());
        for topic in &self.topics {
            w.string(flexible, &topic.name);
            w.array_len(flexible, topic.partitions.len());
            for partition in &topic.partitions {
                w.i32(partition.partition_index);
                w.i16(partition.error_code);
                w.i64(partition.timestamp);
                w.i64(partition.offset);
                if version >= 4 {
                    w.i32(partition.leader_epoch);
                }
                w.no_tagged_fields(flexible);
            }
            w.no_tagged_fields(flexible);
        }
        w.no_tagged_fields(flexible);
    }
}
