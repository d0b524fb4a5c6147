//! SyncGroup (key 14), versions 0-5: the leader sends the assignment it computed, and every
//! member receives its own.

use bytes::Bytes;

use crate::codec::{DecodeError, Reader, Writer};
use crate::header::ApiKey;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncGroupRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    /// Set by static members (version 3+).
    pub group_instance_id: Option<String>,
    /// Version 5+.
    pub protocol_type: Option<String>,
    /// Version 5+.
    pub protocol_name: Option<String>,
    /// One per member from the leader; empty from the other members.
    pub assignments: Vec<SyncGroupRequestAssignment>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncGroupRequestAssignment {
    pub member_id: String,
    pub assignment: Bytes,
}

impl SyncGroupRequest {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ApiKey::SyncGroup.is_flexible(version);
        let group_id = r.string(flexible)?;
        let generation_id = r.i32()?;
        let member_id = r.string(flexible)?;
        let group_instance_id = if version >= 3 { r.nullable_string(flexible)? } else { None };
        let (protocol_type, protocol_name) =
            if version >= 5 { (r.nullable_string(flexible)?, r.nullable_string(flexible)?) } else { (None, None) };
        let assignments = r.array(flexible, "assignments", |r| {
            let member_id = r.string(flexible)?;
            let assignment = r.bytes(flexible)?;
            r.tagged_fields(flexible)?;
            Ok(SyncGroupRequestAssignment { member_id, assignment })
        })?;
        r.tagged_fields(flexible)?;
        Ok(SyncGroupRequest {
            group_id,
            generation_id,
            member_id,
            group_instance_id,
            protocol_type,
            protocol_name,
            assignments,
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncGroupResponse {
    pub throttle_time_ms: i32,
    pub error_code: i16,
    /// Version 5+.
    pub protocol_type: Option<String>,
    /// Version 5+.
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncGroupResponse {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ApiKey::SyncGroup.is_flexible(version);
        if version >= 1 {
            w.i32(self.throttle_time_ms);
        }
        w.i16(self.error_code);
        if version >= 5 {
            w.nullable_string(flexible, self.protocol_type.as_deref());
            w.nullable_string(flexible, self.protocol_name.as_deref());
        }
        w.bytes(flexible, &self.assignment);
        w.no_tagged_fields(flexible);
    }
}
