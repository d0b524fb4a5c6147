//! The partition layer's errors: what went wrong in the cluster's terms (not leader, fenced
//! epoch, offset out of range, storage), never a Kafka error code. The broker maps them to
//! codes at its one edge (`core/src/errors.rs`).

use ringtail_log::LogError;

use crate::ids::{LeaderEpoch, NodeId};

#[derive(Debug, Clone, thiserror::Error)]
pub enum PartitionError {
    /// This node does not lead the partition; `leader` does (if one is known) at `epoch`.
    #[error("this broker is not the partition's leader (leader: {}, epoch {epoch})", leader.map_or("none".to_string(), |n| n.to_string()))]
    NotLeader { leader: Option<NodeId>, epoch: LeaderEpoch },
    /// The request names an older leader epoch than the partition's.
    #[error("leader epoch {requested} is older than the partition's {current}")]
    FencedLeaderEpoch { requested: LeaderEpoch, current: LeaderEpoch },
    /// The request names a newer leader epoch than this replica knows (its metadata is behind).
    #[error("leader epoch {requested} is newer than the partition's {current}")]
    UnknownLeaderEpoch { requested: LeaderEpoch, current: LeaderEpoch },
    /// A fetch as a follower from a node holding no replica of the partition.
    #[error("node {node} holds no replica of this partition")]
    NotReplica { node: NodeId },
    /// Replicated batches offered to the partition's leader.
    #[error("this replica leads the partition; it does not take a leader's batches")]
    NotFollower,
    /// acks=all with fewer in-sync replicas than min.insync.replicas: refused before appending.
    #[error("{isr} in-sync replicas, fewer than min.insync.replicas={min_insync}")]
    NotEnoughReplicas { isr: usize, min_insync: usize },
    /// acks=all: the batch is committed, but the ISR shrank below min.insync.replicas meanwhile.
    #[error("written, but with {isr} in-sync replicas, fewer than min.insync.replicas={min_insync}")]
    NotEnoughReplicasAfterAppend { isr: usize, min_insync: usize },
    /// A new leader does not know its high watermark yet (KIP-207).
    #[error("the new leader's high watermark has not caught up yet")]
    OffsetNotAvailable,
    #[error("offset {offset} is outside the log [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange { offset: i64, log_start_offset: u64, log_end_offset: u64 },
    /// The log refused the batch or failed (a bad batch, a sequence error, an I/O error,
    /// corrupt data read back).
    #[error(transparent)]
    Log(#[from] LogError),
}

impl PartitionError {
    /// True when the partition's storage failed: it is offline from now on.
    pub fn is_storage_failure(&self) -> bool {
        matches!(self, PartitionError::Log(e) if e.is_fatal())
    }
}
