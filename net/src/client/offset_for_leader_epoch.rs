//! OffsetForLeaderEpoch (key 23), versions 2-4, from the asker's side: the end offset of a
//! leader epoch on the partition's leader, to find where a log diverges.

use super::{client_request, ClientApi};
use crate::codec::{DecodeError, Reader, Writer};
pub use crate::messages::offset_for_leader_epoch::{
    EpochEndOffset, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, OffsetForLeaderPartition,
    OffsetForLeaderTopic, OffsetForLeaderTopicResult,
};

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
