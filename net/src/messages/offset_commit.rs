//! OffsetCommit (key 8), versions 0-8: a group's consumers store the offsets they have
//! processed. Version 0 has no generation or member (a commit outside any generation), version
//! 1 a commit timestamp per partition, versions 2-4 a retention time for the whole request.

use crate::codec::{DecodeError, Reader, Writer};
use crate::header::ApiKey;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetCommitRequest {
    pub group_id: String,
    /// -1 in version 0, which lacks the field, and for commits from outside any generation.
    pub generation_id_or_member_epoch: i32,
    /// Empty in version 0, which lacks the field.
    pub member_id: String,
    /// Set by static members (version 7+).
    pub group_instance_id: Option<String>,
    /// Versions 2-4; -1 (the broker's default retention) otherwise.
    pub retention_time_ms: i64,
    pub topics: Vec<OffsetCommitRequestTopic>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetCommitRequestTopic {
    pub name: String,
    pub partitions: Vec<OffsetCommitRequestPartition>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetCommitRequestPartition {
    pub partition_index: i32,
    pub committed_offset: i64,
    /// Version 6+; -1 when unknown.
    pub committed_leader_epoch: i32,
    /// Version 1 only; -1 (the time the broker receives the commit) otherwise.
    pub commit_timestamp: i64,
    pub committed_metadata: Option<String>,
}

impl OffsetCommitRequest {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ApiKey::OffsetCommit.is_flexible(version);
        let group_id = r.string(flexible)?;
        let (generation_id_or_member_epoch, member_id) =
            if version >= 1 { (r.i32()?, r.string(flexible)?) } else { (-1, String::new()) };
        let group_instance_id = if version >= 7 { r.nullable_string(flexible)? } else { None };
        let retention_time_ms = if (2..=4).contains(&version) { r.i64()? } else { -1 };
        let topics = r.array(flexible, "topics", |r| {
            let name = r.string(flexible)?;
            let partitions = r.array(flexible, "partitions", |r| {
                let partition_index = r.i32()?;
                let committed_offset = r.i64()?;
                let committed_leader_epoch = if version >= 6 { r.i32()? } else { -1 };
                let commit_timestamp = if version == 1 { r.i64()? } else { -1 };
                let committed_metadata = r.nullable_string(flexible)?;
                r.tagged_fields(flexible)?;
                Ok(OffsetCommitRequestPartition {
                    partition_index,
                    committed_offset,
                    committed_leader_epoch,
                    commit_timestamp,
                    committed_metadata,
                })
            })?;
            r.tagged_fields(flexible)?;
            Ok(OffsetCommitRequestTopic { name, partitions })
        })?;
        r.tagged_fields(flexible)?;
        Ok(OffsetCommitRequest {
            group_id,
            generation_id_or_member_epoch,
            member_id,
            group_instance_id,
            retention_time_ms,
            topics,
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetCommitResponse {
    /// Version 3+.
    pub throttle_time_ms: i32,
    pub topics: Vec<OffsetCommitResponseTopic>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetCommitResponseTopic {
    pub name: String,
    pub partitions: Vec<OffsetCommitResponsePartition>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetCommitResponsePartition {
    pub partition_index: i32,
    pub error_code: i16,
}

impl OffsetCommitResponse {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ApiKey::OffsetCommit.is_flexible(version);
        if version >= 3 {
            w.i32(self.throttle_time_ms);
        }
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
