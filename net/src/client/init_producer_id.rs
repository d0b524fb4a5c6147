//! InitProducerId (key 22), versions 0-5, from the client's side: a producer id and epoch for
//! an idempotent (or transactional) producer.

use super::{client_request, ClientApi};
use crate::codec::{DecodeError, Reader, Writer};
pub use crate::messages::init_producer_id::{InitProducerIdRequest, InitProducerIdResponse};

client_request!(InitProducerIdRequest, ClientApi::InitProducerId, InitProducerIdResponse);

impl InitProducerIdRequest {
    /// The producer id and epoch to bump (version 3 on) are -1 for a new producer.
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ClientApi::InitProducerId.is_flexible(version);
        w.nullable_string(flexible, self.transactional_id.as_deref());
        w.i32(self.transaction_timeout_ms);
        if version >= 3 {
            w.i64(self.producer_id);
            w.i16(self.producer_epoch);
        }
        w.no_tagged_fields(flexible);
    }
}

impl InitProducerIdResponse {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ClientApi::InitProducerId.is_flexible(version);
        let throttle_time_ms = r.i32()?;
        let error_code = r.i16()?;
        let producer_id = r.i64()?;
        let producer_epoch = r.i16()?;
        r.tagged_fields(flexible)?;
        Ok(InitProducerIdResponse { throttle_time_ms, error_code, producer_id, producer_epoch })
    }
}
