//! OffsetForLeaderEpoch (key 23), versions 2-4 (Kafka 4 removed 0 and 1): the end offset of a
//! leader epoch on the partition's leader (the largest epoch it has at or below the one asked
//! for, and the offset where that epoch ends). Followers ask it to find where their log
//! diverges; consumers ask it after a leader change to validate their position (KIP-320).

use crate::codec::{DecodeError, Reader, Writer};
use crate::header::ApiKey;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetForLeaderEpochRequest {
    /// The follower's broker id (version 3 on; -1 below it); -1 for a consumer, -2 for
    /// debugging tools.
    pub replica_id: i32,
    pub topics: Vec<OffsetForLeaderTopic>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetForLeaderTopic {
    pub name: String,
    pub partitions: Vec<OffsetForLeaderPartition>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OffsetForLeaderPartition {
    pub partition: i32,
    /// The epoch of the leader the asker believes in, for fencing; -1 for no check.
    pub current_leader_epoch: i32,
    /// The epoch whose end offset is asked for.
    pub leader_epoch: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetForLeaderEpochResponse {
    pub throttle_time_ms: i32,
    pub topics: Vec<OffsetForLeaderTopicResult>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetForLeaderTopicResult {
    pub name: String,
    pub partitions: Vec<EpochEndOffset>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EpochEndOffset {
    pub error_code: i16,
    pub partition: i32,
    /// The largest epoch the leader has at or below the one asked for; -1 if none.
    pub leader_epoch: i32,
    /// Where that epoch ends (the next epoch's start offset, or the log end offset); -1 if none.
    pub end_offset: i64,
}

impl OffsetForLeaderEpochRequest {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ApiKey::OffsetForLeaderEpoch.is_flexible(version);
        let replica_id = if version >= 3 { r.i32()? } else { -1 };
        let topics = r.array(flexible, "topics", |r| {
            let name = r.string(flexible)?;
            let partitions = r.array(flexible, "partitions", |r| {
                let partition = r.i32()?;
                let current_leader_epoch = r.i32()?;
                let leader_epoch = r.i32()?;
                r.tagged_fields(flexible)?;
                Ok(OffsetForLeaderPartition { partition, current_leader_epoch, leader_epoch })
            })?;
            r.tagged_fields(flexible)?;
            Ok(OffsetForLeaderTopic { name, partitions })
        })?;
        r.tagged_fields(flexible)?;
        Ok(OffsetForLeaderEpochRequest { replica_id, topics })
    }
}

impl OffsetForLeaderEpochResponse {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ApiKey::OffsetForLeaderEpoch.is_flexible(version);
        w.i32(self.throttle_time_ms);
        w.array_len(flexible, self.topics.len());
        for topic in &self.topics {
            w.string(flexible, &topic.name);
            w.array_len(flexible, topic.partitions.len());
            for partition in &topic.partitions {
                w.i16(partition.error_code);
                w.i32(partition.partition);
                w.i32(partition.leader_epoch);
                w.i64(partition.end_offset);
                w.no_tagged_fields(flexible);
            }
            w.no_tagged_fields(flexible);
        }
        w.no_tagged_fields(flexible);
    }
}
