//! Metadata (key 3), versions 0-13, from the client's side: the brokers of the cluster and the
//! leaders and replicas of the partitions of the topics asked for.

use super::{client_request, ClientApi};
use crate::codec::{DecodeError, Reader, Writer};
pub use crate::messages::metadata::{
    MetadataRequest, MetadataRequestTopic, MetadataResponse, MetadataResponseBroker, MetadataResponsePartition,
    MetadataResponseTopic,
};

client_request!(MetadataRequest, ClientApi::Metadata, MetadataResponse);

impl MetadataRequest {
    /// `topics: None` asks for every topic. Version 0 has no null array and asks for every topic
    /// with an empty one, so there it cannot ask for none. Topics are named below version 10.
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ClientApi::Metadata.is_flexible(version);
        let topics = self.topics.as_deref();
        if version == 0 {
            w.array_len(flexible, topics.map_or(0, <[_]>::len));
        } else {
            w.nullable_array_len(flexible, topics.map(<[_]>::len));
        }
        for topic in topics.unwrap_or_default() {
            if version >= 10 {
                w.uuid(&topic.topic_id);
                w.nullable_string(flexible, topic.name.as_deref());
            } else {
                debug_assert!(topic.name.is_some(), "Metadata v{version} names every topic");
                w.string(flexible, topic.name.as_deref().unwrap_or_default());
            }
            w.no_tagged_fields(flexible);
        }
        if version >= 4 {
            w.bool(self.allow_auto_topic_creation);
        }
        if (8..=10).contains(&version) {
            w.bool(self.include_cluster_authorized_operations);
        }
        if version >= 8 {
            w.bool(self.include_topic_authorized_operations);
        }
        w.no_tagged_fields(flexible);
    }
}

impl MetadataResponse {
    /// Fields a version lacks hold Kafka's defaults: no rack or cluster id, controller and leader
    /// epoch -1, authorized operations `i32::MIN`.
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ClientApi::Metadata.is_flexible(version);
        let throttle_time_ms = if version >= 3 { r.i32()? } else { 0 };
        let brokers = r.array(flexible, "brokers", |r| MetadataResponseBroker::decode(r, version, flexible))?;
        let cluster_id = if version >= 2 { r.nullable_string(flexible)? } else { None };
        let controller_id = if version >= 1 { r.i32()? } else { -1 };
        let topics = r.array(flexible, "topics", |r| MetadataResponseTopic::decode(r, version, flexible))?;
        let cluster_authorized_operations = if (8..=10).contains(&version) { r.i32()? } else { i32::MIN };
        let error_code = if version >= 13 { r.i16()? } else { 0 };
        r.tagged_fields(flexible)?;
        Ok(MetadataResponse {
            throttle_time_ms,
            brokers,
            cluster_id,
            controller_id,
            topics,
            cluster_authorized_operations,
            error_code,
        })
    }
}

impl MetadataResponseBroker {
    fn decode(r: &mut Reader, version: i16, flexible: bool) -> Result<Self, DecodeError> {
        let node_id = r.i32()?;
        let host = r.string(flexible)?;
        let port = r.i32()?;
        let rack = if version >= 1 { r.nullable_string(flexible)? } else { None };
        r.tagged_fields(flexible)?;
        Ok(MetadataResponseBroker { node_id, host, port, rack })
    }
}

impl MetadataResponseTopic {
    fn decode(r: &mut Reader, version: i16, flexible: bool) -> Result<Self, DecodeError> {
        let error_code = r.i16()?;
        let name = if version >= 12 { r.nullable_string(flexible)? } else { Some(r.string(flexible)?) };
        let topic_id = if version >= 10 { r.uuid()? } else { [0; 16] };
        let is_internal = if version >= 1 { r.bool()? } else { false };
        let partitions =
            r.array(flexible, "partitions", |r| MetadataResponsePartition::decode(r, version, flexible))?;
        let topic_authorized_operations = if version >= 8 { r.i32()? } else { i32::MIN };
        r.tagged_fields(flexible)?;
        Ok(MetadataResponseTopic { error_code, name, topic_id, is_internal, partitions, topic_authorized_operations })
    }
}

impl MetadataResponsePartition {
    fn decode(r: &mut Reader, version: i16, flexible: bool) -> Result<Self, DecodeError> {
        let error_code = r.i16()?;
        let partition_index = r.i32()?;
        let leader_id = r.i32()?;
        let leader_epoch = if version >= 7 { r.i32()? } else { -1 };
        let replica_nodes = r.array(flexible, "replica nodes", Reader::i32)?;
        let isr_nodes = r.array(flexible, "isr nodes", Reader::i32)?;
        let offline_replicas =
            if version >= 5 { r.array(flexible, "offline replicas", Reader::i32)? } else { Vec::new() };
        r.tagged_fields(flexible)?;
        Ok(MetadataResponsePartition {
            error_code,
            partition_index,
            leader_id,
            leader_epoch,
            replica_nodes,
            isr_nodes,
            offline_replicas,
        })
    }
}
