//! LeaveGroup (key 13), versions 0-5: members leave a group. Versions 0-2 name one member;
//! version 3 and later a list (several static members at once). Both read as a list.

use crate::codec::{DecodeError, Reader, Writer};
use crate::header::ApiKey;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaveGroupRequest {
    pub group_id: String,
    /// Exactly one member, without instance id or reason, in versions 0-2.
    pub members: Vec<MemberIdentity>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberIdentity {
    pub member_id: String,
    /// Version 3+.
    pub group_instance_id: Option<String>,
    /// Version 5+.
    pub reason: Option<String>,
}

impl LeaveGroupRequest {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ApiKey::LeaveGroup.is_flexible(version);
        let group_id = r.string(flexible)?;
        let members = if version >= 3 {
            r.array(flexible, "members", |r| {
                let member_id = r.string(flexible)?;
                let group_instance_id = r.nullable_string(flexible)?;
                let reason = if version >= 5 { r.nullable_string(flexible)? } else { None };
                r.tagged_fields(flexible)?;
                Ok(MemberIdentity { member_id, group_instance_id, reason })
            })?
        } else {
            vec![MemberIdentity { member_id: r.string(flexible)?, group_instance_id: None, reason: None }]
        };
        r.tagged_fields(flexible)?;
        Ok(LeaveGroupRequest { group_id, members })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaveGroupResponse {
    pub throttle_time_ms: i32,
    pub error_code: i16,
    /// One result per member asked for. Versions 0-2 have no per-member results: as in Kafka,
    /// they send the first member error that is not zero when `error_code` is zero.
    pub members: Vec<MemberResponse>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberResponse {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub error_code: i16,
}

impl LeaveGroupResponse {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ApiKey::LeaveGroup.is_flexible(version);
        if version >= 1 {
            w.i32(self.throttle_time_ms);
        }
        if version >= 3 {
            w.i16(self.error_code);
            w.array_len(flexible, self.members.len());
            for member in &self.members {
                w.string(flexible, &member.member_id);
                w.nullable_string(flexible, member.group_instance_id.as_deref());
                w.i16(member.error_code);
                w.no_tagged_fields(flexible);
            }
        } else {
            let member_error = self.members.iter().map(|m| m.error_code).find(|e| *e != 0);
            w.i16(if self.error_code != 0 { self.error_code } else { member_error.unwrap_or(0) });
        }
        w.no_tagged_fields(flexible);
    }
}
