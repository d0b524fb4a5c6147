//! `ringtail-replication`: the cluster layer below the broker. Partition (replica) state
//! with the operations Kafka's handlers need; the metadata records a controller decides and
//! every broker applies, with the image they build and the file they are kept in; a node's
//! identity; the controller quorum's core on openraft (`quorum`). Leader/follower replication
//! builds on these.

pub mod error;
pub mod follower;
pub mod identity;
pub mod ids;
pub mod limits;
pub mod metadata;
pub mod partition;
pub mod quorum;

pub use error::PartitionError;
pub use ids::{LeaderEpoch, NodeId, PartitionId, ShardId, TopicId};
pub use partition::{
    AckWait, Acks, Appended, DataWait, FollowerFetch, FoundOffset, Isolation, OffsetSpec, Partition, Role,
};
