//! ConsumerGroupHeartbeat (key 68), versions 0-1: a member of a consumer-protocol group
//! (KIP-848) joins, stays, reports the partitions it owns and learns its assignment; version 1
//! adds the subscribed regular expression and has the client choose its member id (KIP-1082).

use crate::codec::{DecodeError, Reader, Writer};
use crate::header::ApiKey;

/// Partitions of one topic, by topic id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicPartitions {
    pub topic_id: [u8; 16],
    pub partitions: Vec<i32>,
}

impl TopicPartitions {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let topic_id = r.uuid()?;
        let partitions = r.array(true, "partitions", |r| r.i32())?;
        r.tagged_fields(true)?;
        Ok(TopicPartitions { topic_id, partitions })
    }

    fn encode(&self, w: &mut Writer) {
        w.uuid(&self.topic_id);
        w.i32_array(true, &self.partitions);
        w.no_tagged_fields(true);
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerGroupHeartbeatRequest {
    pub group_id: String,
    pub member_id: String,
    /// 0 joins, -1 leaves, -2 leaves for now (a static member).
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    /// -1: unchanged.
    pub rebalance_timeout_ms: i32,
    /// `None`: unchanged.
    pub subscribed_topic_names: Option<Vec<String>>,
    /// Version 1+; `None`: unchanged.
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// `None`: unchanged.
    pub topic_partitions: Option<Vec<TopicPartitions>>,
}

impl ConsumerGroupHeartbeatRequest {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        debug_assert!(ApiKey::ConsumerGroupHeartbeat.is_flexible(version));
        let group_id = r.string(true)?;
        let member_id = r.string(true)?;
        let member_epoch = r.i32()?;
        let instance_id = r.nullable_string(true)?;
        let rack_id = r.nullable_string(true)?;
        let rebalance_timeout_ms = r.i32()?;
        let subscribed_topic_names = r.nullable_array(true, "subscribed topic names", |r| r.string(true))?;
        let subscribed_topic_regex = if version >= 1 { r.nullable_string(true)? } else { None };
        let server_assignor = r.nullable_string(true)?;
        let topic_partitions = r.nullable_array(true, "topic partitions", TopicPartitions::decode)?;
        r.tagged_fields(true)?;
        Ok(ConsumerGroupHeartbeatRequest {
            group_id,
            member_id,
            member_epoch,
            instance_id,
            rack_id,
            rebalance_timeout_ms,
            subscribed_topic_names,
            subscribed_topic_regex,
            server_assignor,
            topic_partitions,
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerGroupHeartbeatResponse {
    pub throttle_time_ms: i32,
    pub error_code: i16,
    pub error_message: Option<String>,
    pub member_id: Option<String>,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// `None`: unchanged since the last answer.
    pub assignment: Option<Vec<TopicPartitions>>,
}

impl ConsumerGroupHeartbeatResponse {
    pub fn encode(&self, w: &mut Writer, _version: i16) {
        w.i32(self.throttle_time_ms);
        w.i16(self.error_code);
        w.nullable_string(true, self.error_message.as_deref());
        w.nullable_string(true, self.member_id.as_deref());
        w.i32(self.member_epoch);
        w.i32(self.heartbeat_interval_ms);
        w.nullable_struct(self.assignment.as_ref(), |w, topics| {
            w.array_len(true, topics.len());
            for t in topics {
                t.encode(w);
            }
            w.no_tagged_fields(true);
        });
        w.no_tagged_fields(true);
    }
}
