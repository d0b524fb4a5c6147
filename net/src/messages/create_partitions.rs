//! CreatePartitions (key 37), versions 0-3: raise the partition count of existing topics.

use crate::codec::{DecodeError, Reader, Writer};
use crate::header::ApiKey;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreatePartitionsRequest {
    pub topics: Vec<CreatePartitionsTopic>,
    pub timeout_ms: i32,
    pub validate_only: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreatePartitionsTopic {
    pub name: String,
    /// The new total partition count, not the number to add.
    pub count: i32,
    /// Replicas of each new partition, or `None` to let the broker place them.
    pub assignments: Option<Vec<CreatePartitionsAssignment>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreatePartitionsAssignment {
    pub broker_ids: Vec<i32>,
}

impl CreatePartitionsRequest {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ApiKey::CreatePartitions.is_flexible(version);
        let topics = r.array(flexible, "topics", |r| {
            let name = r.string(flexible)?;
            let count = r.i32()?;
            let assignments = r.nullable_array(flexible, "assignments", |r| {
                let broker_ids = r.array(flexible, "broker ids", Reader::i32)?;
                r.tagged_fields(flexible)?;
                Ok(CreatePartitionsAssignment { broker_ids })
            })?;
            r.tagged_fields(flexible)?;
            Ok(CreatePartitionsTopic { name, count, assignments })
        })?;
        let timeout_ms = r.i32()?;
        let validate_only = r.bool()?;
        r.tagged_fields(flexible)?;
        Ok(CreatePartitionsRequest { topics, timeout_ms, validate_only })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreatePartitionsResponse {
    pub throttle_time_ms: i32,
    pub results: Vec<CreatePartitionsTopicResult>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreatePartitionsTopicResult {
    pub name: String,
    pub error_code: i16,
    pub error_message: Option<String>,
}

impl CreatePartitionsResponse {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ApiKey::CreatePartitions.is_flexible(version);
        w.i32(self.throttle_time_ms);
        w.array_len(flexible, self.results.len());
        for result in &self.results {
            w.string(flexible, &result.name);
            w.i16(result.error_code);
            w.nullable_string(flexible, result.error_message.as_deref());
            w.no_tagged_fields(flexible);
        }
        w.no_tagged_fields(flexible);
    }
}
