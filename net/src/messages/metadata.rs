//! Metadata (key 3), versions 0-13: the brokers of the cluster and the leaders and replicas of
//! each partition of the topics asked for.

use crate::codec::{DecodeError, Reader, Writer};
use crate::header::ApiKey;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataRequest {
    /// The topics to describe, `None` for every topic. Version 0 has no null array and asks for
    /// every topic with an empty one; that is decoded as `None` too, so callers see one meaning.
    pub topics: Option<Vec<MetadataRequestTopic>>,
    /// Kafka's default, `true`, applies below version 4, which lacks the field.
    pub allow_auto_topic_creation: bool,
    /// Versions 8-10 only; later clients ask DescribeCluster instead.
    pub include_cluster_authorized_operations: bool,
    pub include_topic_authorized_operations: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataRequestTopic {
    /// All zeros below version 10 and when the topic is named.
    pub topic_id: [u8; 16],
    /// Null only from version 10, when the topic is asked for by id.
    pub name: Option<String>,
}

impl MetadataRequest {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ApiKey::Metadata.is_flexible(version);
        let topics = if version == 0 {
            let topics = r.array(flexible, "topics", |r| MetadataRequestTopic::decode(r, version, flexible))?;
            if topics.is_empty() {
                None
            } else {
                Some(topics)
            }
        } else {
            r.nullable_array(flexible, "topics", |r| MetadataRequestTopic::decode(r, version, flexible))?
        };
        let allow_auto_topic_creation = if version >= 4 { r.bool()? } else { true };
        let include_cluster_authorized_operations = if (8..=10).contains(&version) { r.bool()? } else { false };
        let include_topic_authorized_operations = if version >= 8 { r.bool()? } else { false };
        r.tagged_fields(flexible)?;
        Ok(MetadataRequest {
            topics,
            allow_auto_topic_creation,
            include_cluster_authorized_operations,
            include_topic_authorized_operations,
        })
    }
}

impl MetadataRequestTopic {
    fn decode(r: &mut Reader, version: i16, flexible: bool) -> Result<Self, DecodeError> {
        let topic_id = if version >= 10 { r.uuid()? } else { [0; 16] };
        let name = if version >= 10 { r.nullable_string(flexible)? } else { Some(r.string(flexible)?) };
        r.tagged_fields(flexible)?;
        Ok(MetadataRequestTopic { topic_id, name })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataResponse {
    pub throttle_time_ms: i32,
    pub brokers: Vec<MetadataResponseBroker>,
    pub cluster_id: Option<String>,
    pub controller_id: i32,
    pub topics: Vec<MetadataResponseTopic>,
    /// Sent in versions 8-10 only.
    pub cluster_authorized_operations: i32,
    /// A top-level error (version 13 on), e.g. a rebootstrap request; 0 otherwise.
    pub error_code: i16,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataResponseBroker {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataResponseTopic {
    pub error_code: i16,
    /// Null is only valid from version 12 (a topic asked for by an id that is not known); older
    /// versions write an empty name instead, since their clients refuse a null one.
    pub name: Option<String>,
    pub topic_id: [u8; 16],
    pub is_internal: bool,
    pub partitions: Vec<MetadataResponsePartition>,
    pub topic_authorized_operations: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataResponsePartition {
    pub error_code: i16,
    pub partition_index: i32,
    pub leader_id: i32,
    pub leader_epoch: i32,
    pub replica_nodes: Vec<i32>,
    pub isr_nodes: Vec<i32>,
    pub offline_replicas: Vec<i32>,
}

impl MetadataResponse {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ApiKey::Metadata.is_flexible(version);
        if version >= 3 {
            w.i32(self.throttle_time_ms);
        }
        w.array_len(flexible, self.brokers.len());
        for broker in &self.brokers {
            broker.encode(w, version, flexible);
        }
        if version >= 2 {
            w.nullable_string(flexible, self.cluster_id.as_deref());
        }
        if version >= 1 {
            w.i32(self.controller_id);
        }
        w.array_len(flexible, self.topics.len());
        for topic in &self.topics {
            topic.encode(w, version, flexible);
        }
        if (8..=10).contains(&version) {
            w.i32(self.cluster_authorized_operations);
        }
        if version >= 13 {
            w.i16(self.error_code);
        }
        w.no_tagged_fields(flexible);
    }
}

impl MetadataResponseBroker {
    fn encode(&self, w: &mut Writer, version: i16, flexible: bool) {
        w.i32(self.node_id);
        w.string(flexible, &self.host);
        w.i32(self.port);
        if version >= 1 {
            w.nullable_string(flexible, self.rack.as_deref());
        }
        w.no_tagged_fields(flexible);
    }
}

impl MetadataResponseTopic {
    fn encode(&self, w: &mut Writer, version: i16, flexible: bool) {
        w.i16(self.error_code);
        if version >= 12 {
            w.nullable_string(flexible, self.name.as_deref());
        } else {
            debug_assert!(self.name.is_some(), "Metadata v{version} cannot carry a null topic name");
            w.string(flexible, self.name.as_deref().unwrap_or_default());
        }
        if version >= 10 {
            w.uuid(&self.topic_id);
        }
        if version >= 1 {
            w.bool(self.is_internal);
        }
        w.array_len(flexible, self.partitions.len());
        for partition in &self.partitions {
            partition.encode(w, version, flexible);
        }
        if version >= 8 {
            w.i32(self.topic_authorized_operations);
        }
        w.no_tagged_fields(flexible);
    }
}

impl MetadataResponsePartition {
    fn encode(&self, w: &mut Writer, version: i16, flexible: bool) {
        w.i16(self.error_code);
        w.i32(self.partition_index);
        w.i32(self.leader_id);
        if version >= 7 {
            w.i32(self.leader_epoch);
        }
        w.i32_array(flexible, &self.replica_nodes);
        w.i32_array(flexible, &self.isr_nodes);
        if version >= 5 {
            w.i32_array(flexible, &self.offline_replicas);
        }
        w.no_tagged_fields(flexible);
    }
}
