//! CreateTopics (key 19), versions 0-7: create topics with a partition count and replication
//! factor or an explicit assignment, and topic configs.

use crate::codec::{DecodeError, Reader, Writer};
use crate::header::ApiKey;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateTopicsRequest {
    pub topics: Vec<CreatableTopic>,
    pub timeout_ms: i32,
    /// False below version 1, which lacks the field.
    pub validate_only: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreatableTopic {
    pub name: String,
    /// -1 when `assignments` is given or for the broker default (version 4+).
    pub num_partitions: i32,
    /// -1 when `assignments` is given or for the broker default (version 4+).
    pub replication_factor: i16,
    /// Empty for automatic assignment.
    pub assignments: Vec<CreatableReplicaAssignment>,
    pub configs: Vec<CreatableTopicConfig>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreatableReplicaAssignment {
    pub partition_index: i32,
    pub broker_ids: Vec<i32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreatableTopicConfig {
    pub name: String,
    pub value: Option<String>,
}

impl CreateTopicsRequest {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ApiKey::CreateTopics.is_flexible(version);
        let topics = r.array(flexible, "topics", |r| CreatableTopic::decode(r, flexible))?;
        let timeout_ms = r.i32()?;
        let validate_only = if version >= 1 { r.bool()? } else { false };
        r.tagged_fields(flexible)?;
        Ok(CreateTopicsRequest { topics, timeout_ms, validate_only })
    }
}

impl CreatableTopic {
    fn decode(r: &mut Reader, flexible: bool) -> Result<Self, DecodeError> {
        let name = r.string(flexible)?;
        let num_partitions = r.i32()?;
        let replication_factor = r.i16()?;
        let assignments = r.array(flexible, "assignments", |r| {
            let partition_index = r.i32()?;
            let broker_ids = r.array(flexible, "broker ids", Reader::i32)?;
            r.tagged_fields(flexible)?;
            Ok(CreatableReplicaAssignment { partition_index, broker_ids })
        })?;
        let configs = r.array(flexible, "configs", |r| {
            let name = r.string(flexible)?;
            let value = r.nullable_string(flexible)?;
            r.tagged_fields(flexible)?;
            Ok(CreatableTopicConfig { name, value })
        })?;
        r.tagged_fields(flexible)?;
        Ok(CreatableTopic { name, num_partitions, replication_factor, assignments, configs })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateTopicsResponse {
    pub throttle_time_ms: i32,
    pub topics: Vec<CreatableTopicResult>,
}

/// Kafka's tagged field `topic_config_error_code` (version 5+) is left out: we write no tagged
/// fields, and its default (0, no error) is what a reader assumes without it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreatableTopicResult {
    pub name: String,
    pub topic_id: [u8; 16],
    pub error_code: i16,
    pub error_message: Option<String>,
    pub num_partitions: i32,
    pub replication_factor: i16,
    /// The topic's configs (version 5+), or `None` when they could not be read.
    pub configs: Option<Vec<CreatableTopicConfigs>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreatableTopicConfigs {
    pub name: String,
    pub value: Option<String>,
    pub read_only: bool,
    pub config_source: i8,
    pub is_sensitive: bool,
}

impl CreateTopicsResponse {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ApiKey::CreateTopics.is_flexible(version);
        if version >= 2 {
            w.i32(self.throttle_time_ms);
        }
        w.array_len(flexible, self.topics.len());
        for topic in &self.topics {
            topic.encode(w, version, flexible);
        }
        w.no_tagged_fields(flexible);
    }
}

impl CreatableTopicResult {
    fn encode(&self, w: &mut Writer, version: i16, flexible: bool) {
        w.string(flexible, &self.name);
        if version >= 7 {
            w.uuid(&self.topic_id);
        }
        w.i16(self.error_code);
        if version >= 1 {
            w.nullable_string(flexible, self.error_message.as_deref());
        }
        if version >= 5 {
            w.i32(self.num_partitions);
            w.i16(self.replication_factor);
            w.nullable_array_len(flexible, self.configs.as_ref().map(Vec::len));
            for config in self.configs.iter().flatten() {
                w.string(flexible, &config.name);
                w.nullable_string(flexible, config.value.as_deref());
                w.bool(config.read_only);
                w.i8(config.config_source);
                w.bool(config.is_sensitive);
                w.no_tagged_fields(flexible);
            }
        }
        w.no_tagged_fields(flexible);
    }
}
