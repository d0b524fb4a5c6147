//! FindCoordinator (key 10), versions 0-6: the broker coordinating a group or transactional id.
//! Versions 0-3 ask for one key, versions 4-6 for several (version 5 adds the
//! TRANSACTION_ABORTABLE error, version 6 the share-group key type); both read as a list of keys, and the
//! response is written in the shape of the version.

use crate::codec::{DecodeError, Reader, Writer};
use crate::header::ApiKey;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FindCoordinatorRequest {
    /// 0 = group, 1 = transaction, 2 = share group (version 6); 0 in version 0, which lacks the field.
    pub key_type: i8,
    /// Exactly one key in versions 0-3.
    pub coordinator_keys: Vec<String>,
}

impl FindCoordinatorRequest {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ApiKey::FindCoordinator.is_flexible(version);
        let key = if version <= 3 { Some(r.string(flexible)?) } else { None };
        let key_type = if version >= 1 { r.i8()? } else { 0 };
        let coordinator_keys = match key {
            Some(key) => vec![key],
            None => r.array(flexible, "coordinator keys", |r| r.string(flexible))?,
        };
        r.tagged_fields(flexible)?;
        Ok(FindCoordinatorRequest { key_type, coordinator_keys })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FindCoordinatorResponse {
    pub throttle_time_ms: i32,
    /// One per key, in the order asked for. Versions 0-3 send the first only (without its key),
    /// and must be given exactly one.
    pub coordinators: Vec<Coordinator>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coordinator {
    pub key: String,
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub error_code: i16,
    /// Not sent in version 0.
    pub error_message: Option<String>,
}

impl FindCoordinatorResponse {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ApiKey::FindCoordinator.is_flexible(version);
        if version >= 1 {
            w.i32(self.throttle_time_ms);
        }
        if version >= 4 {
            w.array_len(flexible, self.coordinators.len());
            for c in &self.coordinators {
                w.string(flexible, &c.key);
                w.i32(c.node_id);
                w.string(flexible, &c.host);
                w.i32(c.port);
                w.i16(c.error_code);
                w.nullable_string(flexible, c.error_message.as_deref());
                w.no_tagged_fields(flexible);
            }
        } else {
            debug_assert_eq!(self.coordinators.len(), 1, "FindCoordinator v{version} answers exactly one key");
            let none = Coordinator::default();
            let c = self.coordinators.first().unwrap_or(&none);
            w.i16(c.error_code);
            if version >= 1 {
                w.nullable_string(flexible, c.error_message.as_deref());
            }
            w.i32(c.node_id);
            w.string(flexible, &c.host);
            w.i32(c.port);
        }
        w.no_tagged_fields(flexible);
    }
}
