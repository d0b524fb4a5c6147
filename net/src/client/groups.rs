//! The group APIs `ringtail group` asks, from the client's side: ListGroups (key 16, versions
//! 0-5), FindCoordinator (key 10, versions 0-6), DescribeGroups (key 15, versions 0-6),
//! OffsetFetch (key 9, versions 1-9) and ConsumerGroupDescribe (key 69, versions 0-1).

use super::{client_request, ClientApi};
use crate::codec::{DecodeError, Reader, Writer};
pub use crate::messages::consumer_group_describe::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, DescribedConsumerGroup, DescribedMember,
    DescribedTopicPartitions,
};
pub use crate::messages::describe_groups::{
    DescribeGroupsRequest, DescribeGroupsResponse, DescribedGroup, DescribedGroupMember,
};
pub use crate::messages::find_coordinator::{Coordinator, FindCoordinatorRequest, FindCoordinatorResponse};
pub use crate::messages::list_groups::{ListGroupsRequest, ListGroupsResponse, ListedGroup};
pub use crate::messages::offset_fetch::{
    OffsetFetchRequest, OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchResponse,
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};

client_request!(ListGroupsRequest, ClientApi::ListGroups, ListGroupsResponse);
client_request!(FindCoordinatorRequest, ClientApi::FindCoordinator, FindCoordinatorResponse);
client_request!(DescribeGroupsRequest, ClientApi::DescribeGroups, DescribeGroupsResponse);
client_request!(OffsetFetchRequest, ClientApi::OffsetFetch, OffsetFetchResponse);
client_request!(ConsumerGroupDescribeRequest, ClientApi::ConsumerGroupDescribe, ConsumerGroupDescribeResponse);

impl ConsumerGroupDescribeRequest {
    pub fn encode(&self, w: &mut Writer, _version: i16) {
        write_strings(w, true, &self.group_ids);
        w.bool(self.include_authorized_operations);
        w.no_tagged_fields(true);
    }
}

fn read_described_assignment(r: &mut Reader) -> Result<Vec<DescribedTopicPartitions>, DecodeError> {
    let topics = r.array(true, "topic partitions", |r| {
        let topic_id = r.uuid()?;
        let topic_name = r.string(true)?;
        let partitions = r.array(true, "partitions", |r| r.i32())?;
        r.tagged_fields(true)?;
        Ok(DescribedTopicPartitions { topic_id, topic_name, partitions })
    })?;
    r.tagged_fields(true)?;
    Ok(topics)
}

impl ConsumerGroupDescribeResponse {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let throttle_time_ms = r.i32()?;
        let groups = r.array(true, "groups", |r| {
            let error_code = r.i16()?;
            let error_message = r.nullable_string(true)?;
            let group_id = r.string(true)?;
            let group_state = r.string(true)?;
            let group_epoch = r.i32()?;
            let assignment_epoch = r.i32()?;
            let assignor_name = r.string(true)?;
            let members = r.array(true, "members", |r| {
                let member = DescribedMember {
                    member_id: r.string(true)?,
                    instance_id: r.nullable_string(true)?,
                    rack_id: r.nullable_string(true)?,
                    member_epoch: r.i32()?,
                    client_id: r.string(true)?,
                    client_host: r.string(true)?,
                    subscribed_topic_names: r.array(true, "subscribed topic names", |r| r.string(true))?,
                    subscribed_topic_regex: r.nullable_string(true)?,
                    assignment: read_described_assignment(r)?,
                    target_assignment: read_described_assignment(r)?,
                    member_type: if version >= 1 { r.i8()? } else { -1 },
                };
                r.tagged_fields(true)?;
                Ok(member)
            })?;
            let authorized_operations = r.i32()?;
            r.tagged_fields(true)?;
            Ok(DescribedConsumerGroup {
                error_code,
                error_message,
                group_id,
                group_state,
                group_epoch,
                assignment_epoch,
                assignor_name,
                members,
                authorized_operations,
            })
        })?;
        r.tagged_fields(true)?;
        Ok(ConsumerGroupDescribeResponse { throttle_time_ms, groups })
    }
}

impl ListGroupsRequest {
    /// The filters are written from the versions that have them (4 and 5).
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ClientApi::ListGroups.is_flexible(version);
        if version >= 4 {
            write_strings(w, flexible, &self.states_filter);
        }
        if version >= 5 {
            write_strings(w, flexible, &self.types_filter);
        }
        w.no_tagged_fields(flexible);
    }
}

fn write_strings(w: &mut Writer, flexible: bool, strings: &[String]) {
    w.array_len(flexible, strings.len());
    for s in strings {
        w.string(flexible, s);
    }
}

impl ListGroupsResponse {
    /// A group's state (version 4 on) and type (version 5 on) are empty below.
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ClientApi::ListGroups.is_flexible(version);
        let throttle_time_ms = if version >= 1 { r.i32()? } else { 0 };
        let error_code = r.i16()?;
        let groups = r.array(flexible, "groups", |r| {
            let group_id = r.string(flexible)?;
            let protocol_type = r.string(flexible)?;
            let group_state = if version >= 4 { r.string(flexible)? } else { String::new() };
            let group_type = if version >= 5 { r.string(flexible)? } else { String::new() };
            r.tagged_fields(flexible)?;
            Ok(ListedGroup { group_id, protocol_type, group_state, group_type })
        })?;
        r.tagged_fields(flexible)?;
        Ok(ListGroupsResponse { throttle_time_ms, error_code, groups })
    }
}

impl FindCoordinatorRequest {
    /// Versions 0-3 ask for exactly one key; the key type is written from version 1.
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ClientApi::FindCoordinator.is_flexible(version);
        if version <= 3 {
            debug_assert_eq!(self.coordinator_keys.len(), 1, "FindCoordinator v{version} asks for one key");
            w.string(flexible, self.coordinator_keys.first().map_or("", String::as_str));
            if version >= 1 {
                w.i8(self.key_type);
            }
        } else {
            w.i8(self.key_type);
            write_strings(w, flexible, &self.coordinator_keys);
        }
        w.no_tagged_fields(flexible);
    }
}

impl FindCoordinatorResponse {
    /// Versions 0-3 answer one key, without naming it: one coordinator with an empty key.
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ClientApi::FindCoordinator.is_flexible(version);
        let throttle_time_ms = if version >= 1 { r.i32()? } else { 0 };
        let coordinators = if version >= 4 {
            r.array(flexible, "coordinators", |r| {
                let key = r.string(flexible)?;
                let node_id = r.i32()?;
                let host = r.string(flexible)?;
                let port = r.i32()?;
                let error_code = r.i16()?;
                let error_message = r.nullable_string(flexible)?;
                r.tagged_fields(flexible)?;
                Ok(Coordinator { key, node_id, host, port, error_code, error_message })
            })?
        } else {
            let error_code = r.i16()?;
            let error_message = if version >= 1 { r.nullable_string(flexible)? } else { None };
            let node_id = r.i32()?;
            let host = r.string(flexible)?;
            let port = r.i32()?;
            vec![Coordinator { key: String::new(), node_id, host, port, error_code, error_message }]
        };
        r.tagged_fields(flexible)?;
        Ok(FindCoordinatorResponse { throttle_time_ms, coordinators })
    }
}

impl DescribeGroupsRequest {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ClientApi::DescribeGroups.is_flexible(version);
        write_strings(w, flexible, &self.groups);
        if version >= 3 {
            w.bool(self.include_authorized_operations);
        }
        w.no_tagged_fields(flexible);
    }
}

impl DescribeGroupsResponse {
    /// Members' metadata and assignments are `Bytes` slices of the frame.
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ClientApi::DescribeGroups.is_flexible(version);
        let throttle_time_ms = if version >= 1 { r.i32()? } else { 0 };
        let groups = r.array(flexible, "groups", |r| DescribedGroup::decode(r, version, flexible))?;
        r.tagged_fields(flexible)?;
        Ok(DescribeGroupsResponse { throttle_time_ms, groups })
    }
}

impl DescribedGroup {
    fn decode(r: &mut Reader, version: i16, flexible: bool) -> Result<Self, DecodeError> {
        let error_code = r.i16()?;
        let error_message = if version >= 6 { r.nullable_string(flexible)? } else { None };
        let group_id = r.string(flexible)?;
        let group_state = r.string(flexible)?;
        let protocol_type = r.string(flexible)?;
        let protocol_data = r.string(flexible)?;
        let members = r.array(flexible, "members", |r| {
            let member_id = r.string(flexible)?;
            let group_instance_id = if version >= 4 { r.nullable_string(flexible)? } else { None };
            let client_id = r.string(flexible)?;
            let client_host = r.string(flexible)?;
            let member_metadata = r.bytes(flexible)?;
            let member_assignment = r.bytes(flexible)?;
            r.tagged_fields(flexible)?;
            Ok(DescribedGroupMember {
                member_id,
                group_instance_id,
                client_id,
                client_host,
                member_metadata,
                member_assignment,
            })
        })?;
        let authorized_operations = if version >= 3 { r.i32()? } else { i32::MIN };
        r.tagged_fields(flexible)?;
        Ok(DescribedGroup {
            error_code,
            error_message,
            group_id,
            group_state,
            protocol_type,
            protocol_data,
            members,
            authorized_operations,
        })
    }
}

impl OffsetFetchRequest {
    /// Versions 1-7 ask for exactly one group, and version 1 for named topics (`Some`); a
    /// group's member id and epoch are written from version 9.
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ClientApi::OffsetFetch.is_flexible(version);
        if version >= 8 {
            w.array_len(flexible, self.groups.len());
            for group in &self.groups {
                w.string(flexible, &group.group_id);
                if version >= 9 {
                    w.nullable_string(flexible, group.member_id.as_deref());
                    w.i32(group.member_epoch);
                }
                write_request_topics(w, flexible, group.topics.as_deref());
                w.no_tagged_fields(flexible);
            }
        } else {
            debug_assert_eq!(self.groups.len(), 1, "OffsetFetch v{version} asks for one group");
            let none = OffsetFetchRequestGroup::default();
            let group = self.groups.first().unwrap_or(&none);
            debug_assert!(version >= 2 || group.topics.is_some(), "OffsetFetch v1 names its topics");
            w.string(flexible, &group.group_id);
            write_request_topics(w, flexible, group.topics.as_deref());
        }
        if version >= 7 {
            w.bool(self.require_stable);
        }
        w.no_tagged_fields(flexible);
    }
}

fn write_request_topics(w: &mut Writer, flexible: bool, topics: Option<&[OffsetFetchRequestTopic]>) {
    w.nullable_array_len(flexible, topics.map(<[_]>::len));
    for topic in topics.unwrap_or_default() {
        w.string(flexible, &topic.name);
        w.i32_array(flexible, &topic.partition_indexes);
        w.no_tagged_fields(flexible);
    }
}

impl OffsetFetchResponse {
    /// Versions 1-7 answer one group, without naming it: one group with an empty id, whose
    /// error code is 0 below version 2 (which reports errors per partition).
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ClientApi::OffsetFetch.is_flexible(version);
        let throttle_time_ms = if version >= 3 { r.i32()? } else { 0 };
        let groups = if version >= 8 {
            r.array(flexible, "groups", |r| {
                let group_id = r.string(flexible)?;
                let topics = decode_response_topics(r, version, flexible)?;
                let error_code = r.i16()?;
                r.tagged_fields(flexible)?;
                Ok(OffsetFetchResponseGroup { group_id, topics, error_code })
            })?
        } else {
            let topics = decode_response_topics(r, version, flexible)?;
            let error_code = if version >= 2 { r.i16()? } else { 0 };
            vec![OffsetFetchResponseGroup { group_id: String::new(), topics, error_code }]
        };
        r.tagged_fields(flexible)?;
        Ok(OffsetFetchResponse { throttle_time_ms, groups })
    }
}

fn decode_response_topics(
    r: &mut Reader,
    version: i16,
    flexible: bool,
) -> Result<Vec<OffsetFetchResponseTopic>, DecodeError> {
    r.array(flexible, "topics", |r| {
        let name = r.string(flexible)?;
        let partitions = r.array(flexible, "partitions", |r| {
            let partition_index = r.i32()?;
            let committed_offset = r.i64()?;
            let committed_leader_epoch = if version >= 5 { r.i32()? } else { -1 };
            let metadata = r.nullable_string(flexible)?;
            let error_code = r.i16()?;
            r.tagged_fields(flexible)?;
            Ok(OffsetFetchResponsePartition {
                partition_index,
                committed_offset,
                committed_leader_epoch,
                metadata,
                error_code,
            })
        })?;
        r.tagged_fields(flexible)?;
        Ok(OffsetFetchResponseTopic { name, partitions })
    })
}
