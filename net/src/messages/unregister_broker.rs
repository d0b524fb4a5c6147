//! UnregisterBroker (key 64), version 0 (flexible): an operator removes a broker that has been
//! taken out of service from the cluster's registrations (Kafka's KIP-500 admin API).

use crate::codec::{DecodeError, Reader, Writer};
use crate::header::ApiKey;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnregisterBrokerRequest {
    pub broker_id: i32,
}

impl UnregisterBrokerRequest {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ApiKey::UnregisterBroker.is_flexible(version);
        let broker_id = r.i32()?;
        r.tagged_fields(flexible)?;
        Ok(UnregisterBrokerRequest { broker_id })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnregisterBrokerResponse {
    pub throttle_time_ms: i32,
    pub error_code: i16,
    pub error_message: Option<String>,
}

impl UnregisterBrokerResponse {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ApiKey::UnregisterBroker.is_flexible(version);
        w.i32(self.throttle_time_ms);
        w.i16(self.error_code);
        w.nullable_string(flexible, self.error_message.as_deref());
        w.no_tagged_fields(flexible);
    }
}
