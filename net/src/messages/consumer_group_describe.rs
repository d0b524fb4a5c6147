//! ConsumerGroupDescribe (key 69), versions 0-1: consumer-protocol groups (KIP-848) with their
//! epochs, assignor and members' current and target assignments; version 1 adds each member's
//! type (KIP-1099).

use crate::codec::{DecodeError, Reader, Writer};
use crate::header::ApiKey;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerGroupDescribeRequest {
    pub group_ids: Vec<String>,
    pub include_authorized_operations: bool,
}

impl ConsumerGroupDescribeRequest {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        debug_assert!(ApiKey::ConsumerGroupDescribe.is_flexible(version));
        let group_ids = r.array(true, "group ids", |r| r.string(true))?;
        let include_authorized_operations = r.bool()?;
        r.tagged_fields(true)?;
        Ok(ConsumerGroupDescribeRequest { group_ids, include_authorized_operations })
    }
}

/// Partitions of one topic, with the topic's id and name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribedTopicPartitions {
    pub topic_id: [u8; 16],
    pub topic_name: String,
    pub partitions: Vec<i32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub assignment: Vec<DescribedTopicPartitions>,
    pub target_assignment: Vec<DescribedTopicPartitions>,
    /// Version 1+: 0 classic, 1 consumer, -1 unknown.
    pub member_type: i8,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribedConsumerGroup {
    pub error_code: i16,
    pub error_message: Option<String>,
    pub group_id: String,
    pub group_state: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor_name: String,
    pub members: Vec<DescribedMember>,
    pub authorized_operations: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerGroupDescribeResponse {
    pub throttle_time_ms: i32,
    pub groups: Vec<DescribedConsumerGroup>,
}

fn encode_assignment(w: &mut Writer, topics: &[DescribedTopicPartitions]) {
    w.array_len(true, topics.len());
    for t in topics {
        w.uuid(&t.topic_id);
        w.string(true, &t.topic_name);
        w.i32_array(true, &t.partitions);
        w.no_tagged_fields(true);
    }
    w.no_tagged_fields(true);
}

impl ConsumerGroupDescribeResponse {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        w.i32(self.throttle_time_ms);
        w.array_len(true, self.groups.len());
        for g in &self.groups {
            w.i16(g.error_code);
            w.nullable_string(true, g.error_message.as_deref());
            w.string(true, &g.group_id);
            w.string(true, &g.group_state);
            w.i32(g.group_epoch);
            w.i32(g.assignment_epoch);
            w.string(true, &g.assignor_name);
            w.array_len(true, g.members.len());
            for m in &g.members {
                w.string(true, &m.member_id);
                w.nullable_string(true, m.instance_id.as_deref());
                w.nullable_string(true, m.rack_id.as_deref());
                w.i32(m.member_epoch);
                w.string(true, &m.client_id);
                w.string(true, &m.client_host);
                w.array_len(true, m.subscribed_topic_names.len());
                for n in &m.subscribed_topic_names {
                    w.string(true, n);
                }
                w.nullable_string(true, m.subscribed_topic_regex.as_deref());
                encode_assignment(w, &m.assignment);
                encode_assignment(w, &m.target_assignment);
                if version >= 1 {
                    w.i8(m.member_type);
                }
                w.no_tagged_fields(true);
            }
            w.i32(g.authorized_operations);
            w.no_tagged_fields(true);
        }
        w.no_tagged_fields(true);
    }
}
