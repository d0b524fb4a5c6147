//! FindCoordinator (key 10), versions 0-3. Answered so that clients can tell this broker's
//! features (librdkafka enables lz4 only when FindCoordinator is advertised); there is no
//! group or transaction coordinator yet, so the answer is COORDINATOR_NOT_AVAILABLE.

use crate::codec::{DecodeError, Reader, Writer};
use crate::header::ApiKey;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FindCoordinatorRequest {
    pub key: String,
    /// 0 = group, 1 = transaction.
    pub key_type: i8,
}

impl FindCoordinatorRequest {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ApiKey::FindCoordinator.is_flexible(version);
        let key = r.string(flexible)?;
        let key_type = if version >= 1 { r.i8()? } else { 0 };
        r.tagged_fields(flexible)?;
        Ok(FindCoordinatorRequest { key, key_type })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FindCoordinatorResponse {
    pub throttle_time_ms: i32,
    pub error_code: i16,
    pub error_message: Option<String>,
    pub node_id: i32,
    pub host: String,
    pub port: i32,
}

impl FindCoordinatorResponse {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ApiKey::FindCoordinator.is_flexible(version);
        if version >= 1 {
            w.i32(self.throttle_time_ms);
        }
        w.i16(self.error_code);
        if version >= 1 {
            w.nullable_string(flexible, self.error_message.as_deref());
        }
        w.i32(self.node_id);
        w.string(flexible, &self.host);
        w.i32(self.port);
        w.no_tagged_fields(flexible);
    }
}
