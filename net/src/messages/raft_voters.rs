//! AddRaftVoter (key 80) and RemoveRaftVoter (key 81), version 0 (flexible): changing the
//! controller quorum's voters online (KIP-853). A new voter is named by its id, its directory id
//! (Ringtail's controllers have none: all zeros) and its controller listeners.

use crate::codec::{DecodeError, Reader, Writer};
use crate::header::ApiKey;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddRaftVoterRequest {
    pub cluster_id: Option<String>,
    pub timeout_ms: i32,
    pub voter_id: i32,
    pub voter_directory_id: [u8; 16],
    /// (name, host, port) of each listener.
    pub listeners: Vec<(String, String, u16)>,
}

impl AddRaftVoterRequest {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ApiKey::AddRaftVoter.is_flexible(version);
        let cluster_id = r.nullable_string(flexible)?;
        let timeout_ms = r.i32()?;
        let voter_id = r.i32()?;
        let voter_directory_id = r.uuid()?;
        let listeners = r.array(flexible, "listeners", |r| listener(r, flexible))?;
        r.tagged_fields(flexible)?;
        Ok(AddRaftVoterRequest { cluster_id, timeout_ms, voter_id, voter_directory_id, listeners })
    }
}

/// A KRaft listener entry (name, host, uint16 port), as AddRaftVoter and DescribeQuorum carry it.
pub(crate) fn listener(r: &mut Reader, flexible: bool) -> Result<(String, String, u16), DecodeError> {
    let name = r.string(flexible)?;
    let host = r.string(flexible)?;
    let port = r.i16()? as u16;
    r.tagged_fields(flexible)?;
    Ok((name, host, port))
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoveRaftVoterRequest {
    pub cluster_id: Option<String>,
    pub voter_id: i32,
    pub voter_directory_id: [u8; 16],
}

impl RemoveRaftVoterRequest {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ApiKey::RemoveRaftVoter.is_flexible(version);
        let cluster_id = r.nullable_string(flexible)?;
        let voter_id = r.i32()?;
        let voter_directory_id = r.uuid()?;
        r.tagged_fields(flexible)?;
        Ok(RemoveRaftVoterRequest { cluster_id, voter_id, voter_directory_id })
    }
}

/// Both APIs' response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaftVoterResponse {
    pub throttle_time_ms: i32,
    pub error_code: i16,
    pub error_message: Option<String>,
}

impl RaftVoterResponse {
    pub fn encode(&self, w: &mut Writer, _version: i16) {
        // Both APIs are flexible from version 0.
        w.i32(self.throttle_time_ms);
        w.i16(self.error_code);
        w.nullable_string(true, self.error_message.as_deref());
        w.no_tagged_fields(true);
    }
}
