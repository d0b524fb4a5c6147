//! DeleteGroups (key 42), versions 0-2: deletes empty groups and their committed offsets.

use crate::codec::{DecodeError, Reader, Writer};
use crate::header::ApiKey;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteGroupsRequest {
    pub groups_names: Vec<String>,
}

impl DeleteGroupsRequest {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ApiKey::DeleteGroups.is_flexible(version);
        let groups_names = r.array(flexible, "group names", |r| r.string(flexible))?;
        r.tagged_fields(flexible)?;
        Ok(DeleteGroupsRequest { groups_names })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteGroupsResponse {
    pub throttle_time_ms: i32,
    pub results: Vec<DeletableGroupResult>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeletableGroupResult {
    pub group_id: String,
    pub error_code: i16,
}

impl DeleteGroupsResponse {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ApiKey::DeleteGroups.is_flexible(version);
        w.i32(self.throttle_time_ms);
        w.array_len(flexible, self.results.len());
        for result in &self.results {
            w.string(flexible, &result.group_id);
            w.i16(result.error_code);
            w.no_tagged_fields(flexible);
        }
        w.no_tagged_fields(flexible);
    }
}
