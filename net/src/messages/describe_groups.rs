//! DescribeGroups (key 15), versions 0-6: the state, protocol and members of groups.

use bytes::Bytes;

use crate::codec::{DecodeError, Reader, Writer};
use crate::header::ApiKey;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribeGroupsRequest {
    pub groups: Vec<String>,
    /// Version 3+.
    pub include_authorized_operations: bool,
}

impl DescribeGroupsRequest {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ApiKey::DescribeGroups.is_flexible(version);
        let groups = r.array(flexible, "groups", |r| r.string(flexible))?;
        let include_authorized_operations = if version >= 3 { r.bool()? } else { false };
        r.tagged_fields(flexible)?;
        Ok(DescribeGroupsRequest { groups, include_authorized_operations })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribeGroupsResponse {
    /// Version 1+.
    pub throttle_time_ms: i32,
    pub groups: Vec<DescribedGroup>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribedGroup {
    pub error_code: i16,
    /// Version 6+.
    pub error_message: Option<String>,
    pub group_id: String,
    /// "Dead" for a group that does not exist, as Kafka answers.
    pub group_state: String,
    /// Empty when unknown.
    pub protocol_type: String,
    /// The chosen protocol (the assignor for consumers), or empty.
    pub protocol_data: String,
    pub members: Vec<DescribedGroupMember>,
    /// Version 3+; `i32::MIN` when not asked for.
    pub authorized_operations: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribedGroupMember {
    pub member_id: String,
    /// Version 4+.
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub member_metadata: Bytes,
    pub member_assignment: Bytes,
}

impl DescribeGroupsResponse {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ApiKey::DescribeGroups.is_flexible(version);
        if version >= 1 {
            w.i32(self.throttle_time_ms);
        }
        w.array_len(flexible, self.groups.len());
        for group in &self.groups {
            w.i16(group.error_code);
            if version >= 6 {
                w.nullable_string(flexible, group.error_message.as_deref());
            }
            w.string(flexible, &group.group_id);
            w.string(flexible, &group.group_state);
            w.string(flexible, &group.protocol_type);
            w.string(flexible, &group.protocol_data);
            w.array_len(flexible, group.members.len());
            for member in &group.members {
                w.string(flexible, &member.member_id);
                if version >= 4 {
                    w.nullable_string(flexible, member.group_instance_id.as_deref());
                }
                w.string(flexible, &member.client_id);
                w.string(flexible, &member.client_host);
                w.bytes(flexible, &member.member_metadata);
                w.bytes(flexible, &member.member_assignment);
                w.no_tagged_fields(flexible);
            }
            if version >= 3 {
                w.i32(group.authorized_operations);
            }
            w.no_tagged_fields(flexible);
        }
        w.no_tagged_fields(flexible);
    }
}
