//! OffsetForLeaderEpoch (key 23), versions 2-4, which a follower asks its leader: the end
//! offset of a leader epoch (the largest epoch the leader has at or below the one asked for,
//! and the offset where it ends), to find where its own log diverges. The broker does not serve
//! it yet, so it has no place in `header::ApiKey` and is not advertised.

use super::{client_request, ClientApi};
use crate::codec::{DecodeError, Reader, Writer};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetForLeaderEpochRequest {
    /// The follower's broker id (version 3 on); -1 for a consumer, -2 for debugging tools.
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
    /// The epoch of the leader the follower believes in, for fencing; -1 for no check.
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

client_request!(OffsetForLeaderEpochRequest, ClientApi::OffsetForLeaderEpoch, OffsetForLeaderEpochResponse);

impl OffsetForLeaderEpochRequest {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ClientApi::OffsetForLeaderEpoch.is_flexible(version);
        if version >= 3 {
            w.i32(self.replica_id);
        }
        w.array_len(flexible, self.topics.len());
        for topic in &self.topics {
            w.string(flexible, &topic.name);
            w.array_len(flexible, topic.partitions.len());
            for partition in &topic.partitions {
                w.i32(partition.partition);
                w.i32(partition.current_leader_epoch);
                w.i32(partition.leader_epoch);
                w.no_tagged_fields(flexible);
            }
            w.no_tagged_fields(flexible);
        }
        w.no_tagged_fields(flexible);
    }
}

impl OffsetForLeaderEpochResponse {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ClientApi::OffsetForLeaderEpoch.is_flexible(version);
        let throttle_time_ms = r.i32()?;
        let topics = r.array(flexible, "topics", |r| {
            let name = r.string(flexible)?;
            let partitions = r.array(flexible, "partitions", |r| {
                let error_code = r.i16()?;
                let partition = r.i32()?;
                let leader_epoch = r.i32()?;
                let end_offset = r.i64()?;
                r.tagged_fields(flexible)?;
                Ok(EpochEndOffset { error_code, partition, leader_epoch, end_offset })
            })?;
            r.tagged_fields(flexible)?;
            Ok(OffsetForLeaderTopicResult { name, partitions })
        })?;
        r.tagged_fields(flexible)?;
        Ok(OffsetForLeaderEpochResponse { throttle_time_ms, topics })
    }
}
