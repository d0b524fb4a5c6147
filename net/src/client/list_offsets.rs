//! ListOffsets (key 2), versions 1-10, from the client's side: the offset of each partition at
//! a timestamp or one of the special timestamps (-1 latest, -2 earliest, ...).

use super::{client_request, ClientApi};
use crate::codec::{DecodeError, Reader, Writer};
pub use crate::messages::list_offsets::{
    ListOffsetsPartition, ListOffsetsPartitionResponse, ListOffsetsRequest, ListOffsetsResponse, ListOffsetsTopic,
    ListOffsetsTopicResponse,
};

client_request!(ListOffsetsRequest, ClientApi::ListOffsets, ListOffsetsResponse);

impl ListOffsetsRequest {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ClientApi::ListOffsets.is_flexible(version);
        w.i32(self.replica_id);
        if version >= 2 {
            w.i8(self.isolation_level);
        }
        w.array_len(flexible, self.topics.len());
        for topic in &self.topics {
            w.string(flexible, &topic.name);
            w.array_len(flexible, topic.partitions.len());
            for partition in &topic.partitions {
                w.i32(partition.partition_index);
                if version >= 4 {
                    w.i32(partition.current_leader_epoch);
                }
                w.i64(partition.timestamp);
                w.no_tagged_fields(flexible);
            }
            w.no_tagged_fields(flexible);
        }
        if version >= 10 {
            w.i32(self.timeout_ms);
        }
        w.no_tagged_fields(flexible);
    }
}

impl ListOffsetsResponse {
    /// A leader epoch is -1 below version 4, which lacks it.
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ClientApi::ListOffsets.is_flexible(version);
        let throttle_time_ms = if version >= 2 { r.i32()? } else { 0 };
        let topics = r.array(flexible, "topics", |r| {
            let name = r.string(flexible)?;
            let partitions = r.array(flexible, "partitions", |r| {
                let partition_index = r.i32()?;
                let error_code = r.i16()?;
                let timestamp = r.i64()?;
                let offset = r.i64()?;
                let leader_epoch = if version >= 4 { r.i32()? } else { -1 };
                r.tagged_fields(flexible)?;
                Ok(ListOffsetsPartitionResponse { partition_index, error_code, timestamp, offset, leader_epoch })
            })?;
            r.tagged_fields(flexible)?;
            Ok(ListOffsetsTopicResponse { name, partitions })
        })?;
        r.tagged_fields(flexible)?;
        Ok(ListOffsetsResponse { throttle_time_ms, topics })
    }
}
