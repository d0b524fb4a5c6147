//! The controller quorum's core on openraft: its runtime on `ringtail_log::platform`
//! ([`rt`], [`sync`]), its types ([`types`]) and their byte encoding ([`codec`]).
//!
//! Everything here belongs to the executor thread that built it (`!Send`): openraft is built
//! with `single-threaded`, and a node's `Raft`, storage and network live on one shard.

pub mod codec;
pub mod limits;
pub mod rt;
pub mod sync;
pub mod types;

pub use rt::Rt;
pub use types::{
    kafka_node_id, raft_node_id, BatchApplied, ControllerNode, Entry, LogId, Membership, QuorumTypes, RecordBatch, Vote,
};
