//! OffsetDelete (key 47), version 0: removes a group's committed offsets for some partitions
//! (allowed when the group is empty or no longer subscribed to the topic). Never flexible.

use crate::codec::{DecodeError, Reader, Writer};
use crate::header::ApiKey;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetDeleteRequest {
    pub group_id: String,
    pub topics: Vec<OffsetDeleteRequestTopic>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetDeleteRequestTopic {
    pub name: String,
    pub partitions: Vec<OffsetDeleteRequestPartition>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetDeleteRequestPartition {
    pub partition_index: i32,
}

impl OffsetDeleteRequest {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ApiKey::OffsetDelete.is_flexible(version);
        let group_id = r.string(flexible)?;
        let topics = r.array(flexible, "topics", |r| {
            let name = r.string(flexible)?;
            let partitions = r.array(flexible, "partitions", |r| {
                let partition_index = r.i32()?;
                r.tagged_fields(flexible)?;
                Ok(OffsetDeleteRequestPartition { partition_index })
            })?;
            r.tagged_fields(flexible)?;
            Ok(OffsetDeleteRequestTopic { name, partitions })
        })?;
        r.tagged_fields(flexible)?;
        Ok(OffsetDeleteRequest { group_id, topics })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetDeleteResponse {
    pub error_code: i16,
    pub throttle_time_ms: i32,
    pub topics: Vec<OffsetDeleteResponseTopic>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetDeleteResponseTopic {
    pub name: String,
    pub partitions: Vec<OffsetDeleteResponsePartition>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetDeleteResponsePartition {
    pub partition_index: i32,
    pub error_code: i16,
}

impl OffsetDeleteResponse {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ApiKey::OffsetDelete.is_flexible(version);
        w.i16(self.error_code);
        w.i32(self.throttle_time_ms);
        w.array_len(flexible, self.topics.len());
        for topic in &self.topics {
            w.string(flexible, &topic.name);
            w.array_len(flexible, topic.partitions.len());
            for partition in &topic.partitions {
                w.i32(partition.partition_index);
                w.i16(partition.error_code);
                w.no_tagged_fields(flexible);
            }
            w.no_tagged_fields(flexible);
        }
        w.no_tagged_fields(flexible);
    }
}
