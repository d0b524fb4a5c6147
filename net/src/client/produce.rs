//! Produce (key 0), versions 3-13, from the client's side (`ringtail-bench`'s producers). From
//! version 13 topics are named by id. Record batches are copied into the request frame.

use super::{client_request, ClientApi};
use crate::codec::{DecodeError, Reader, Writer};
pub use crate::messages::leader_hints::{CurrentLeader, NodeEndpoint};
pub use crate::messages::produce::{
    ProducePartition, ProducePartitionResponse, ProduceRequest, ProduceResponse, ProduceTopic, ProduceTopicResponse,
};

client_request!(ProduceRequest, ClientApi::Produce, ProduceResponse);

impl ProduceRequest {
    /// With `acks` 0 the broker sends no response at all.
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ClientApi::Produce.is_flexible(version);
        w.nullable_string(flexible, self.transactional_id.as_deref());
        w.i16(self.acks);
        w.i32(self.timeout_ms);
        w.array_len(flexible, self.topics.len());
        for topic in &self.topics {
            if version >= 13 {
                w.uuid(&topic.topic_id);
            } else {
                w.string(flexible, &topic.name);
            }
            w.array_len(flexible, topic.partitions.len());
            for partition in &topic.partitions {
                w.i32(partition.index);
                w.nullable_bytes(flexible, partition.records.as_deref());
                w.no_tagged_fields(flexible);
            }
            w.no_tagged_fields(flexible);
        }
        w.no_tagged_fields(flexible);
    }
}

impl ProduceResponse {
    /// A partition's `record_errors` (version 8 on: which batch of the request was refused)
    /// are read and dropped: the partition's error code and message say what went wrong.
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ClientApi::Produce.is_flexible(version);
        let topics = r.array(flexible, "produce topics", |r| {
            let (name, topic_id) =
                if version >= 13 { (String::new(), r.uuid()?) } else { (r.string(flexible)?, [0; 16]) };
            let partitions =
                r.array(flexible, "produce partitions", |r| ProducePartitionResponse::decode(r, version, flexible))?;
            r.tagged_fields(flexible)?;
            Ok(ProduceTopicResponse { name, topic_id, partitions })
        })?;
        let throttle_time_ms = r.i32()?;
        let mut node_endpoints = Vec::new();
        r.tagged_fields_with(flexible, |tag, r| {
            if tag == 0 && version >= 10 {
                node_endpoints = NodeEndpoint::decode_all(r)?;
            }
            Ok(())
        })?;
        Ok(ProduceResponse { topics, throttle_time_ms, node_endpoints })
    }
}

impl ProducePartitionResponse {
    fn decode(r: &mut Reader, version: i16, flexible: bool) -> Result<Self, DecodeError> {
        let mut p = ProducePartitionResponse {
            index: r.i32()?,
            error_code: r.i16()?,
            base_offset: r.i64()?,
            log_append_time_ms: r.i64()?,
            ..ProducePartitionResponse::default()
        };
        if version >= 5 {
            p.log_start_offset = r.i64()?;
        }
        if version >= 8 {
            r.array(flexible, "record errors", |r| {
                let _batch_index = r.i32()?;
                let _message = r.nullable_string(flexible)?;
                r.tagged_fields(flexible)
            })?;
            p.error_message = r.nullable_string(flexible)?;
        }
        r.tagged_fields_with(flexible, |tag, r| {
            if tag == 0 && version >= 10 {
                p.current_leader = Some(CurrentLeader::decode(r)?);
            }
            Ok(())
        })?;
        Ok(p)
    }
}
