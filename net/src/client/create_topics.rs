//! CreateTopics (key 19), versions 0-7, from the client's side (`ringtail-bench` creates its
//! topics, from version 0 for brokers as old as Kafka 0.10.1).

use super::{client_request, ClientApi};
use crate::codec::{DecodeError, Reader, Writer};
pub use crate::messages::create_topics::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig, CreatableTopicConfigs, CreatableTopicResult,
    CreateTopicsRequest, CreateTopicsResponse,
};

client_request!(CreateTopicsRequest, ClientApi::CreateTopics, CreateTopicsResponse);

impl CreateTopicsRequest {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ClientApi::CreateTopics.is_flexible(version);
        w.array_len(flexible, self.topics.len());
        for topic in &self.topics {
            w.string(flexible, &topic.name);
            w.i32(topic.num_partitions);
            w.i16(topic.replication_factor);
            w.array_len(flexible, topic.assignments.len());
            for assignment in &topic.assignments {
                w.i32(assignment.partition_index);
                w.i32_array(flexible, &assignment.broker_ids);
                w.no_tagged_fields(flexible);
            }
            w.array_len(flexible, topic.configs.len());
            for config in &topic.configs {
                w.string(flexible, &config.name);
                w.nullable_string(flexible, config.value.as_deref());
                w.no_tagged_fields(flexible);
            }
            w.no_tagged_fields(flexible);
        }
        w.i32(self.timeout_ms);
        if version >= 1 {
            w.bool(self.validate_only);
        }
        w.no_tagged_fields(flexible);
    }
}

impl CreateTopicsResponse {
    /// Below version 5, which lacks them, the partition count and replication factor are -1 and
    /// the configs `None`. A topic's tagged `topic_config_error_code` (version 5 on) is not
    /// read: its error code and message say whether the topic was created.
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ClientApi::CreateTopics.is_flexible(version);
        let throttle_time_ms = if version >= 2 { r.i32()? } else { 0 };
        let topics = r.array(flexible, "topics", |r| CreatableTopicResult::decode(r, version, flexible))?;
        r.tagged_fields(flexible)?;
        Ok(CreateTopicsResponse { throttle_time_ms, topics })
    }
}

impl CreatableTopicResult {
    fn decode(r: &mut Reader, version: i16, flexible: bool) -> Result<Self, DecodeError> {
        let mut topic = CreatableTopicResult {
            name: r.string(flexible)?,
            num_partitions: -1,
            replication_factor: -1,
            ..CreatableTopicResult::default()
        };
        if version >= 7 {
            topic.topic_id = r.uuid()?;
        }
        topic.error_code = r.i16()?;
        if version >= 1 {
            topic.error_message = r.nullable_string(flexible)?;
        }
        if version >= 5 {
            topic.num_partitions = r.i32()?;
            topic.replication_factor = r.i16()?;
            topic.configs = r.nullable_array(flexible, "configs", |r| {
                let name = r.string(flexible)?;
                let value = r.nullable_string(flexible)?;
                let read_only = r.bool()?;
                let config_source = r.i8()?;
                let is_sensitive = r.bool()?;
                r.tagged_fields(flexible)?;
                Ok(CreatableTopicConfigs { name, value, read_only, config_source, is_sensitive })
            })?;
        }
        r.tagged_fields(flexible)?;
        Ok(topic)
    }
}
