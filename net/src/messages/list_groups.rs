//! ListGroups (key 16), versions 0-5: the groups this broker coordinates, optionally filtered by
//! state (version 4+) and type (version 5+).

use crate::codec::{DecodeError, Reader, Writer};
use crate::header::ApiKey;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListGroupsRequest {
    /// Version 4+; empty lists groups in every state.
    pub states_filter: Vec<String>,
    /// Version 5+; empty lists groups of every type.
    pub types_filter: Vec<String>,
}

impl ListGroupsRequest {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ApiKey::ListGroups.is_flexible(version);
        let mut req = ListGroupsRequest::default();
        if version >= 4 {
            req.states_filter = r.array(flexible, "states filter", |r| r.string(flexible))?;
        }
        if version >= 5 {
            req.types_filter = r.array(flexible, "types filter", |r| r.string(flexible))?;
        }
        r.tagged_fields(flexible)?;
        Ok(req)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListGroupsResponse {
    /// Version 1+.
    pub throttle_time_ms: i32,
    pub error_code: i16,
    pub groups: Vec<ListedGroup>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListedGroup {
    pub group_id: String,
    pub protocol_type: String,
    /// Version 4+.
    pub group_state: String,
    /// Version 5+: "classic" or "consumer".
    pub group_type: String,
}

impl ListGroupsResponse {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ApiKey::ListGroups.is_flexible(version);
        if version >= 1 {
            w.i32(self.throttle_time_ms);
        }
        w.i16(self.error_code);
        w.array_len(flexible, self.groups.len());
        for group in &self.groups {
            w.string(flexible, &group.group_id);
            w.string(flexible, &group.protocol_type);
            if version >= 4 {
                w.string(flexible, &group.group_state);
            }
            if version >= 5 {
                w.string(flexible, &group.group_type);
            }
            w.no_tagged_fields(flexible);
        }
        w.no_tagged_fields(flexible);
    }
}
