//! InitProducerId (key 22), versions 0-5: a producer asks for a producer id and epoch, for
//! idempotence (no transactional id) or transactions (with one).

use crate::codec::{DecodeError, Reader, Writer};
use crate::header::ApiKey;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InitProducerIdRequest {
    pub transactional_id: Option<String>,
    pub transaction_timeout_ms: i32,
    /// The id and epoch the producer has, when it asks to bump the epoch (version 3+); -1 otherwise.
    pub producer_id: i64,
    pub producer_epoch: i16,
}

impl InitProducerIdRequest {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ApiKey::InitProducerId.is_flexible(version);
        let transactional_id = r.nullable_string(flexible)?;
        let transaction_timeout_ms = r.i32()?;
        let (producer_id, producer_epoch) = if version >= 3 { (r.i64()?, r.i16()?) } else { (-1, -1) };
        r.tagged_fields(flexible)?;
        Ok(InitProducerIdRequest { transactional_id, transaction_timeout_ms, producer_id, producer_epoch })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InitProducerIdResponse {
    pub throttle_time_ms: i32,
    pub error_code: i16,
    pub producer_id: i64,
    pub producer_epoch: i16,
}

impl InitProducerIdResponse {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ApiKey::InitProducerId.is_flexible(version);
        w.i32(self.throttle_time_ms);
        w.i16(self.error_code);
        w.i64(self.producer_id);
        w.i16(self.producer_epoch);
        w.no_tagged_fields(flexible);
    }
}
