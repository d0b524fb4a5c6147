//! KIP-951 leader hints, shared by Produce (v10+) and Fetch (v12+ per partition, v16+ for the
//! endpoints): a partition refused with NOT_LEADER_OR_FOLLOWER or FENCED_LEADER_EPOCH names the
//! leader it has, and the response lists that leader's endpoint, so a client fails over
//! without a Metadata round trip. Both travel in tagged fields, written only when present.

use bytes::Bytes;

use crate::codec::Writer;

/// The leader and epoch a partition has now (Kafka's `LeaderIdAndEpoch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurrentLeader {
    pub leader_id: i32,
    pub leader_epoch: i32,
}

/// Where a broker named in a hint listens (Kafka's `NodeEndpoint`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEndpoint {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl CurrentLeader {
    /// The hint as a tagged field's value.
    pub(crate) fn encoded(&self) -> Bytes {
        let mut w = Writer::new();
        w.i32(self.leader_id);
        w.i32(self.leader_epoch);
        w.no_tagged_fields(true);
        w.buf.freeze()
    }
}

/// The endpoints as a tagged field's value.
pub(crate) fn encoded_endpoints(endpoints: &[NodeEndpoint]) -> Bytes {
    let mut w = Writer::new();
    w.array_len(true, endpoints.len());
    for e in endpoints {
        w.i32(e.node_id);
        w.string(true, &e.host);
        w.i32(e.port);
        w.nullable_string(true, e.rack.as_deref());
        w.no_tagged_fields(true);
    }
    w.buf.freeze()
}
