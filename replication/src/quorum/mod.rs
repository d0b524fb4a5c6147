//! The controller quorum's core on openraft: its runtime on `ringtail_log::platform`
//! ([`rt`], [`sync`]), its types ([`types`]) and their byte encoding ([`codec`]), its storage
//! ([`storage`]: the Raft log; [`state_machine`]: the metadata image and its snapshots).
//!
//! Everything here belongs to the executor thread that built it (`!Send`): openraft is built
//! with `single-threaded`, and a node's `Raft`, storage and network live on one shard.

pub mod codec;
pub mod limits;
pub mod rt;
pub mod state_machine;
pub mod storage;
pub mod sync;
pub mod types;

use std::path::Path;

pub use rt::Rt;
pub use state_machine::StateMachine;
pub use storage::{LogStore, QuorumStoreError};
pub use types::{
    kafka_node_id, raft_node_id, BatchApplied, ControllerNode, Entry, LogId, Membership, QuorumTypes, RecordBatch, Vote,
};

/// Where a controller keeps its quorum state, under the data directory.
pub const QUORUM_DIR: &str = "cluster-metadata/quorum";

/// Opens a node's quorum storage in `dir` (created if missing): the Raft log and the state
/// machine, each recovered from its file.
pub async fn open_storage(dir: &Path) -> Result<(LogStore, StateMachine), QuorumStoreError> {
    let log = LogStore::open(dir).await?;
    let state_machine = StateMachine::open(dir).await?;
    Ok((log, state_machine))
}
