//! AlterPartitionReassignments (key 45, versions 0-1) and ListPartitionReassignments (key 46,
//! version 0): moving partitions' replicas between brokers (KIP-455), and the moves under way.
//! Both flexible from version 0.

use crate::codec::{DecodeError, Reader, Writer};
use crate::header::ApiKey;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlterPartitionReassignmentsRequest {
    pub timeout_ms: i32,
    /// KIP-860 (version 1): false refuses a reassignment that changes the replication factor;
    /// true below version 1, which lacks the field.
    pub allow_replication_factor_change: bool,
    pub topics: Vec<ReassignableTopic>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReassignableTopic {
    pub name: String,
    pub partitions: Vec<ReassignablePartition>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReassignablePartition {
    pub partition_index: i32,
    /// The target replicas, the preferred leader first; `None` cancels the partition's
    /// reassignment.
    pub replicas: Option<Vec<i32>>,
}

impl AlterPartitionReassignmentsRequest {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ApiKey::AlterPartitionReassignments.is_flexible(version);
        let timeout_ms = r.i32()?;
        let allow_replication_factor_change = if version >= 1 { r.bool()? } else { true };
        let topics = r.array(flexible, "topics", |r| {
            let name = r.string(flexible)?;
            let partitions = r.array(flexible, "partitions", |r| {
                let partition_index = r.i32()?;
                let replicas = r.nullable_array(flexible, "replicas", |r| r.i32())?;
                r.tagged_fields(flexible)?;
                Ok(ReassignablePartition { partition_index, replicas })
            })?;
            r.tagged_fields(flexible)?;
            Ok(ReassignableTopic { name, partitions })
        })?;
        r.tagged_fields(flexible)?;
        Ok(AlterPartitionReassignmentsRequest { timeout_ms, allow_replication_factor_change, topics })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlterPartitionReassignmentsResponse {
    pub throttle_time_ms: i32,
    /// Echoes the request's (version 1).
    pub allow_replication_factor_change: bool,
    pub error_code: i16,
    pub error_message: Option<String>,
    pub responses: Vec<ReassignableTopicResponse>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReassignableTopicResponse {
    pub name: String,
    pub partitions: Vec<ReassignablePartitionResponse>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReassignablePartitionResponse {
    pub partition_index: i32,
    pub error_code: i16,
    pub error_message: Option<String>,
}

impl AlterPartitionReassignmentsResponse {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ApiKey::AlterPartitionReassignments.is_flexible(version);
        w.i32(self.throttle_time_ms);
        if version >= 1 {
            w.bool(self.allow_replication_factor_change);
        }
        w.i16(self.error_code);
        w.nullable_string(flexible, self.error_message.as_deref());
        w.array_len(flexible, self.responses.len());
        for topic in &self.responses {
            w.string(flexible, &topic.name);
            w.array_len(flexible, topic.partitions.len());
            for p in &topic.partitions {
                w.i32(p.partition_index);
                w.i16(p.error_code);
                w.nullable_string(flexible, p.error_message.as_deref());
                w.no_tagged_fields(flexible);
            }
            w.no_tagged_fields(flexible);
        }
        w.no_tagged_fields(flexible);
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPartitionReassignmentsRequest {
    pub timeout_ms: i32,
    /// The partitions to list, by topic; `None` lists every reassignment under way.
    pub topics: Option<Vec<ListPartitionReassignmentsTopic>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPartitionReassignmentsTopic {
    pub name: String,
    pub partition_indexes: Vec<i32>,
}

impl ListPartitionReassignmentsRequest {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ApiKey::ListPartitionReassignments.is_flexible(version);
        let timeout_ms = r.i32()?;
        let topics = r.nullable_array(flexible, "topics", |r| {
            let name = r.string(flexible)?;
            let partition_indexes = r.array(flexible, "partition indexes", |r| r.i32())?;
            r.tagged_fields(flexible)?;
            Ok(ListPartitionReassignmentsTopic { name, partition_indexes })
        })?;
        r.tagged_fields(flexible)?;
        Ok(ListPartitionReassignmentsRequest { timeout_ms, topics })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPartitionReassignmentsResponse {
    pub throttle_time_ms: i32,
    pub error_code: i16,
    pub error_message: Option<String>,
    pub topics: Vec<OngoingTopicReassignment>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OngoingTopicReassignment {
    pub name: String,
    pub partitions: Vec<OngoingPartitionReassignment>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OngoingPartitionReassignment {
    pub partition_index: i32,
    /// Every replica now (the target and those still to be removed).
    pub replicas: Vec<i32>,
    pub adding_replicas: Vec<i32>,
    pub removing_replicas: Vec<i32>,
}

impl ListPartitionReassignmentsResponse {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ApiKey::ListPartitionReassignments.is_flexible(version);
        w.i32(self.throttle_time_ms);
        w.i16(self.error_code);
        w.nullable_string(flexible, self.error_message.as_deref());
        w.array_len(flexible, self.topics.len());
        for topic in &self.topics {
            w.string(flexible, &topic.name);
            w.array_len(flexible, topic.partitions.len());
            for p in &topic.partitions {
                w.i32(p.partition_index);
                w.i32_array(flexible, &p.replicas);
                w.i32_array(flexible, &p.adding_replicas);
                w.i32_array(flexible, &p.removing_replicas);
                w.no_tagged_fields(flexible);
            }
            w.no_tagged_fields(flexible);
        }
        w.no_tagged_fields(flexible);
    }
}
