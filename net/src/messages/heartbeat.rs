//! Heartbeat (key 12), versions 0-4: a member says it is alive and learns whether the group is
//! rebalancing.

use crate::codec::{DecodeError, Reader, Writer};
use crate::header::ApiKey;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeartbeatRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    /// Set by static members (version 3+).
    pub group_instance_id: Option<String>,
}

impl HeartbeatRequest {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ApiKey::Heartbeat.is_flexible(version);
        let group_id = r.string(flexible)?;
        let generation_id = r.i32()?;
        let member_id = r.string(flexible)?;
        let group_instance_id = if version >= 3 { r.nullable_string(flexible)? } else { None };
        r.tagged_fields(flexible)?;
        Ok(HeartbeatRequest { group_id, generation_id, member_id, group_instance_id })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeartbeatResponse {
    pub throttle_time_ms: i32,
    pub error_code: i16,
}

impl HeartbeatResponse {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ApiKey::Heartbeat.is_flexible(version);
        if version >= 1 {
            w.i32(self.throttle_time_ms);
        }
        w.i16(self.error_code);
        w.no_tagged_fields(flexible);
    }
}
