//! The metadata quorum's openraft types: an entry carries a batch of metadata records, applying
//! it answers where its records landed, nodes are controllers known by their address, and the
//! runtime is the platform's (`rt.rs`).
//!
//! **Node ids.** Kafka's node ids are `i32` (`node.id`, never negative for a real node);
//! openraft's are `u64` here. A Kafka node id `n >= 0` is the Raft node id `n as u64`, and only
//! Raft ids up to `i32::MAX` name a Kafka node ([`raft_node_id`], [`kafka_node_id`]): the
//! mapping is the identity on the ids both sides allow, so logs and metrics read the same
//! number everywhere, and a negative Kafka id (Kafka's "no node", -1) has no Raft id.

use std::fmt;

use crate::ids::NodeId;
use crate::metadata::MetadataRecord;

use super::limits::{ENTRY_BYTES_MAX, RECORDS_PER_BATCH_MAX};
use super::rt::Rt;

/// One Raft entry's application data: metadata records applied together, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordBatch(pub Vec<MetadataRecord>);

impl RecordBatch {
    /// Checks that the batch can be proposed: every record decodes back to itself (an encoder
    /// never writes what the decoders refuse: a string past its length prefix, a count past its
    /// cap), no record exceeds `RECORD_BYTES_MAX`, and the encoded batch fits one entry.
    /// Returns the batch's encoded size.
    pub fn check(&self) -> Result<usize, String> {
        if self.0.len() > RECORDS_PER_BATCH_MAX {
            return Err(format!("{} records in one change; at most {RECORDS_PER_BATCH_MAX}", self.0.len()));
        }
        crate::metadata::record::check_records(&self.0, ENTRY_BYTES_MAX - 64)
    }
}

impl fmt::Display for RecordBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} metadata records", self.0.len())
    }
}

/// What applying a batch did: the Raft log index it was committed at and the metadata offsets
/// its records got. Records are numbered densely over those that applied (a record that does
/// not fit the image is skipped and takes no offset), so every replica, and a replica restored
/// from a snapshot, numbers them alike.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchApplied {
    pub log_index: u64,
    /// Offset of the batch's first applied record; `None` when none applied.
    pub base_offset: Option<u64>,
    pub applied: u32,
    pub skipped: u32,
}

/// A controller as the quorum's membership knows it: where its quorum listener is, and its
/// rack (`broker.rack`), if any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ControllerNode {
    /// `host:port` of the controller's quorum listener.
    pub address: String,
    pub rack: Option<String>,
}

impl ControllerNode {
    pub fn new(address: impl Into<String>) -> ControllerNode {
        ControllerNode { address: address.into(), rack: None }
    }
}

impl fmt::Display for ControllerNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.rack {
            Some(rack) => write!(f, "{} (rack {rack})", self.address),
            None => f.write_str(&self.address),
        }
    }
}

openraft::declare_raft_types!(
    /// The metadata quorum's type configuration.
    pub QuorumTypes:
        D = RecordBatch,
        R = BatchApplied,
        NodeId = u64,
        Node = ControllerNode,
        Term = u64,
        // One leader per term, as Kafka has one per epoch; a log id is (term, index).
        LeaderId = openraft::vote::leader_id_std::LeaderId<u64, u64>,
        AsyncRuntime = Rt,
);

/// A log id's leader: just the term (one leader per term).
pub type CommittedLeaderId = openraft::vote::leader_id_std::CommittedLeaderId<u64>;
/// The quorum's log id: the term that wrote the entry, and its index.
pub type LogId = openraft::LogId<CommittedLeaderId>;
pub type LeaderId = openraft::vote::leader_id_std::LeaderId<u64, u64>;
pub type Vote = openraft::Vote<LeaderId>;
pub type Entry = openraft::Entry<CommittedLeaderId, Payload>;
pub type Payload = openraft::EntryPayload<RecordBatch, u64, ControllerNode>;
pub type Membership = openraft::Membership<u64, ControllerNode>;
pub type StoredMembership = openraft::StoredMembership<CommittedLeaderId, u64, ControllerNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<CommittedLeaderId, u64, ControllerNode>;
pub type Snapshot = openraft::Snapshot<CommittedLeaderId, u64, ControllerNode, bytes::Bytes>;

/// The Raft node id of a Kafka node id; `None` for a negative one.
pub fn raft_node_id(node: NodeId) -> Option<u64> {
    u64::try_from(node.0).ok()
}

/// The Kafka node id of a Raft node id; `None` past `i32::MAX`.
pub fn kafka_node_id(id: u64) -> Option<NodeId> {
    i32::try_from(id).ok().map(NodeId)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_map_both_ways_where_both_sides_allow_them() {
        for n in [0, 1, 7, i32::MAX] {
            assert_eq!(raft_node_id(NodeId(n)).and_then(kafka_node_id), Some(NodeId(n)));
        }
        assert_eq!(raft_node_id(NodeId(-1)), None);
        assert_eq!(kafka_node_id(i32::MAX as u64 + 1), None);
    }
}
