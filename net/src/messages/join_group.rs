//! JoinGroup (key 11), versions 0-9: a member joins or rejoins a classic group and learns the
//! generation, the protocol the coordinator chose, the leader and, when it is the leader, every
//! member's metadata to compute the assignment from.

use bytes::Bytes;

use crate::codec::{DecodeError, Reader, Writer};
use crate::header::ApiKey;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinGroupRequest {
    pub group_id: String,
    pub session_timeout_ms: i32,
    /// Version 0 lacks the field; as in Kafka, the session timeout serves as the rebalance
    /// timeout there.
    pub rebalance_timeout_ms: i32,
    /// Empty on a member's first join.
    pub member_id: String,
    /// Set by static members (version 5+).
    pub group_instance_id: Option<String>,
    pub protocol_type: String,
    pub protocols: Vec<JoinGroupRequestProtocol>,
    /// Version 8+.
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinGroupRequestProtocol {
    pub name: String,
    pub metadata: Bytes,
}

impl JoinGroupRequest {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ApiKey::JoinGroup.is_flexible(version);
        let group_id = r.string(flexible)?;
        let session_timeout_ms = r.i32()?;
        let rebalance_timeout_ms = if version >= 1 { r.i32()? } else { session_timeout_ms };
        let member_id = r.string(flexible)?;
        let group_instance_id = if version >= 5 { r.nullable_string(flexible)? } else { None };
        let protocol_type = r.string(flexible)?;
        let protocols = r.array(flexible, "protocols", |r| {
            let name = r.string(flexible)?;
            let metadata = r.bytes(flexible)?;
            r.tagged_fields(flexible)?;
            Ok(JoinGroupRequestProtocol { name, metadata })
        })?;
        let reason = if version >= 8 { r.nullable_string(flexible)? } else { None };
        r.tagged_fields(flexible)?;
        Ok(JoinGroupRequest {
            group_id,
            session_timeout_ms,
            rebalance_timeout_ms,
            member_id,
            group_instance_id,
            protocol_type,
            protocols,
            reason,
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinGroupResponse {
    pub throttle_time_ms: i32,
    pub error_code: i16,
    pub generation_id: i32,
    /// Version 7+.
    pub protocol_type: Option<String>,
    /// Null only from version 7; older versions write an empty string instead, as Kafka does.
    pub protocol_name: Option<String>,
    pub leader: String,
    /// Version 9+: the leader need not compute an assignment.
    pub skip_assignment: bool,
    pub member_id: String,
    /// Every member with its metadata for the leader; empty for the other members.
    pub members: Vec<JoinGroupResponseMember>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinGroupResponseMember {
    pub member_id: String,
    /// Version 5+.
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

impl JoinGroupResponse {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ApiKey::JoinGroup.is_flexible(version);
        if version >= 2 {
            w.i32(self.throttle_time_ms);
        }
        w.i16(self.error_code);
        w.i32(self.generation_id);
        if version >= 7 {
            w.nullable_string(flexible, self.protocol_type.as_deref());
            w.nullable_string(flexible, self.protocol_name.as_deref());
        } else {
            w.string(flexible, self.protocol_name.as_deref().unwrap_or_default());
        }
        w.string(flexible, &self.leader);
        if version >= 9 {
            w.bool(self.skip_assignment);
        }
        w.string(flexible, &self.member_id);
        w.array_len(flexible, self.members.len());
        for member in &self.members {
            w.string(flexible, &member.member_id);
            if version >= 5 {
                w.nullable_string(flexible, member.group_instance_id.as_deref());
            }
            w.bytes(flexible, &member.metadata);
            w.no_tagged_fields(flexible);
        }
        w.no_tagged_fields(flexible);
    }
}
