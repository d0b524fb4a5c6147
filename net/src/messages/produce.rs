//! Produce (key 0), versions 0-13. Records stay `Bytes` slices of the request frame. From
//! version 13 topics are named by id, in the request and the response.

use bytes::Bytes;

use super::leader_hints::{encoded_endpoints, CurrentLeader, NodeEndpoint};
use crate::codec::{DecodeError, Reader, Writer};
use crate::header::ApiKey;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProduceRequest {
    pub transactional_id: Option<String>,
    pub acks: i16,
    pub timeout_ms: i32,
    pub topics: Vec<ProduceTopic>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProduceTopic {
    /// Empty from version 13, which names the topic by `topic_id` alone.
    pub name: String,
    /// All zeros below version 13.
    pub topic_id: [u8; 16],
    pub partitions: Vec<ProducePartition>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducePartition {
    pub index: i32,
    /// The Kafka `RECORDS` field, untouched; `None` when the client sent null.
    pub records: Option<Bytes>,
}

impl ProduceRequest {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ApiKey::Produce.is_flexible(version);
        let transactional_id = if version >= 3 { r.nullable_string(flexible)? } else { None };
        let acks = r.i16()?;
        let timeout_ms = r.i32()?;
        let topics = r.array(flexible, "produce topics", |r| {
            let name = if version <= 12 { r.string(flexible)? } else { String::new() };
            let topic_id = if version >= 13 { r.uuid()? } else { [0; 16] };
            let partitions = r.array(flexible, "produce partitions", |r| {
                let index = r.i32()?;
                let records = r.nullable_bytes(flexible)?;
                r.tagged_fields(flexible)?;
                Ok(ProducePartition { index, records })
            })?;
            r.tagged_fields(flexible)?;
            Ok(ProduceTopic { name, topic_id, partitions })
        })?;
        r.tagged_fields(flexible)?;
        Ok(ProduceRequest { transactional_id, acks, timeout_ms, topics })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProduceResponse {
    pub topics: Vec<ProduceTopicResponse>,
    pub throttle_time_ms: i32,
    /// Tagged, version 10 on (KIP-951): the endpoints of the leaders named in `current_leader`.
    pub node_endpoints: Vec<NodeEndpoint>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProduceTopicResponse {
    /// Written up to version 12.
    pub name: String,
    /// Written from version 13.
    pub topic_id: [u8; 16],
    pub partitions: Vec<ProducePartitionResponse>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducePartitionResponse {
    pub index: i32,
    pub error_code: i16,
    pub base_offset: i64,
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
    pub error_message: Option<String>,
    /// Tagged, version 10 on (KIP-951): who leads the partition, when this broker does not.
    pub current_leader: Option<CurrentLeader>,
}

impl Default for ProducePartitionResponse {
    fn default() -> Self {
        ProducePartitionResponse {
            index: 0,
            error_code: 0,
            base_offset: -1,
            log_append_time_ms: -1,
            log_start_offset: -1,
            error_message: None,
            current_leader: None,
        }
    }
}

impl ProduceResponse {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ApiKey::Produce.is_flexible(version);
        w.array_len(flexible, self.topics.len());
        for t in &self.topics {
            if version <= 12 {
                w.string(flexible, &t.name);
            } else {
                w.uuid(&t.topic_id);
            }
            w.array_len(flexible, t.partitions.len());
            for p in &t.partitions {
                w.i32(p.index);
                w.i16(p.error_code);
                w.i64(p.base_offset);
                if version >= 2 {
                    w.i64(p.log_append_time_ms);
                }
                if version >= 5 {
                    w.i64(p.log_start_offset);
                }
                if version >= 8 {
                    w.array_len(flexible, 0); // record_errors
                    w.nullable_string(flexible, p.error_message.as_deref());
                }
                match p.current_leader {
                    Some(leader) if version >= 10 => w.tagged_fields(&[(0, leader.encoded())]),
                    _ => w.no_tagged_fields(flexible),
                }
            }
            w.no_tagged_fields(flexible);
        }
        if version >= 1 {
            w.i32(self.throttle_time_ms);
        }
        if version >= 10 && !self.node_endpoints.is_empty() {
            w.tagged_fields(&[(0, encoded_endpoints(&self.node_endpoints))]);
        } else {
            w.no_tagged_fields(flexible);
        }
    }
}
