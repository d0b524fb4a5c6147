//! Reading KIP-951's leader hints (`CurrentLeader`, `NodeEndpoint`) and Fetch's
//! `DivergingEpoch` from the tagged fields of Produce and Fetch responses.

use crate::codec::{DecodeError, Reader};
pub use crate::messages::fetch::DivergingEpoch;
pub use crate::messages::leader_hints::{CurrentLeader, NodeEndpoint};

impl CurrentLeader {
    /// A tagged field's value (Kafka's `LeaderIdAndEpoch`, always flexible).
    pub fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let leader_id = r.i32()?;
        let leader_epoch = r.i32()?;
        r.tagged_fields(true)?;
        Ok(CurrentLeader { leader_id, leader_epoch })
    }
}

impl DivergingEpoch {
    /// A tagged field's value (Kafka's `EpochEndOffset`, always flexible).
    pub fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let epoch = r.i32()?;
        let end_offset = r.i64()?;
        r.tagged_fields(true)?;
        Ok(DivergingEpoch { epoch, end_offset })
    }
}

impl NodeEndpoint {
    /// A tagged field's value: the array of endpoints (always flexible).
    pub fn decode_all(r: &mut Reader) -> Result<Vec<Self>, DecodeError> {
        r.array(true, "node endpoints", |r| {
            let node_id = r.i32()?;
            let host = r.string(true)?;
            let port = r.i32()?;
            let rack = r.nullable_string(true)?;
            r.tagged_fields(true)?;
            Ok(NodeEndpoint { node_id, host, port, rack })
        })
    }
}
