//! The controller quorum's core on openraft: its runtime on `ringtail_log::platform`
//! ([`rt`], [`sync`]), its types ([`types`]) and their byte encoding ([`codec`]), its storage
//! ([`storage`]: the Raft log; [`state_machine`]: the metadata image and its snapshots), and
//! its network seam ([`wire`]: RPC frames; [`network`]: openraft's network over a
//! [`Transport`]). [`start_node`] builds a node's `Raft`; [`initialize`] forms a quorum.
//!
//! Everything here belongs to the executor thread that built it (`!Send`): openraft is built
//! with `single-threaded`, and a node's `Raft`, storage and network live on one shard.

pub mod broker_client;
pub mod broker_wire;
pub mod codec;
pub mod limits;
mod log_file;
pub mod network;
pub mod rt;
pub mod service;
pub mod state_machine;
pub mod storage;
pub mod sync;
pub mod tcp;
pub mod types;
pub mod wire;

use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

pub use network::{serve, Network, Transport, TransportError};
pub use rt::Rt;
pub use service::{ControllerService, ServiceTimings};
pub use state_machine::StateMachine;
pub use storage::{LogStore, QuorumStoreError};
pub use types::{
    kafka_node_id, raft_node_id, BatchApplied, ControllerNode, Entry, LogId, Membership, QuorumTypes, RecordBatch, Vote,
};

/// Where a controller keeps its quorum state, under the data directory.
pub const QUORUM_DIR: &str = "cluster-metadata/quorum";

/// A node's Raft handle (`Clone`; `!Send`: it lives on the shard that built it).
pub type QuorumRaft = openraft::Raft<QuorumTypes, StateMachine>;

/// The timings and snapshot policy of a quorum node; all in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumConfig {
    /// The name every node of one quorum shares.
    pub cluster_name: String,
    /// A follower that hears no leader for a random time in [min, max) stands for election;
    /// a leader's lease lasts `election_timeout_max_ms`.
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    pub heartbeat_interval_ms: u64,
    /// A whole snapshot's transfer (one frame) must finish within 3/4 of this.
    pub install_snapshot_timeout_ms: u64,
    /// A snapshot is built after this many entries since the last one, and the log purged
    /// behind it.
    pub snapshot_every_entries: u64,
    /// Entries kept behind a snapshot, for followers slightly behind.
    pub entries_kept_behind_snapshot: u64,
}

impl Default for QuorumConfig {
    fn default() -> QuorumConfig {
        QuorumConfig {
            cluster_name: "ringtail".into(),
            election_timeout_min_ms: 1000,
            election_timeout_max_ms: 2000,
            heartbeat_interval_ms: 200,
            install_snapshot_timeout_ms: 30_000,
            snapshot_every_entries: 10_000,
            entries_kept_behind_snapshot: 1000,
        }
    }
}

/// Why a quorum node could not start or act.
#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    #[error(transparent)]
    Store(#[from] QuorumStoreError),
    #[error("invalid quorum configuration: {0}")]
    Config(#[from] openraft::ConfigError),
    #[error("the quorum node stopped: {0}")]
    Fatal(String),
    #[error("the quorum cannot be initialized: {0}")]
    Initialize(String),
}

/// A running quorum node: its `Raft`, and its state machine (for reading the image).
#[derive(Clone)]
pub struct QuorumNode {
    pub raft: QuorumRaft,
    pub state_machine: StateMachine,
}

impl QuorumNode {
    /// The node's metrics now: role, leader, term, log, commit and apply positions,
    /// membership. A copy: openraft's watch must never stay borrowed across an await.
    pub fn metrics(&self) -> openraft::RaftMetrics<QuorumTypes> {
        use openraft_rt::WatchReceiver;
        self.raft.metrics().borrow_watched().clone()
    }
}

/// Opens a node's quorum storage in `dir` (created if missing): the Raft log and the state
/// machine, each recovered from its file.
pub async fn open_storage(dir: &Path) -> Result<(LogStore, StateMachine), QuorumStoreError> {
    let log = LogStore::open(dir).await?;
    let state_machine = StateMachine::open(dir).await?;
    Ok((log, state_machine))
}

/// openraft's configuration for `config`, checked.
pub fn raft_config(config: &QuorumConfig) -> Result<openraft::Config, QuorumError> {
    let raft = openraft::Config {
        cluster_name: config.cluster_name.clone(),
        election_timeout_min: config.election_timeout_min_ms,
        election_timeout_max: config.election_timeout_max_ms,
        heartbeat_interval: config.heartbeat_interval_ms,
        install_snapshot_timeout: config.install_snapshot_timeout_ms,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(config.snapshot_every_entries),
        max_in_snapshot_log_to_keep: config.entries_kept_behind_snapshot,
        max_payload_entries: limits::ENTRIES_PER_APPEND_MAX as u64,
        // A leader that restarts never resumes leading in its old term. openraft's default
        // does, and that is unsafe when the leader's own unflushed entries die with it: the
        // followers may have committed them, and the restored leader would write other entries
        // under the same (term, index), breaking Raft's log matching. The deterministic
        // simulation found exactly that (a leader killed before its flush, restarted, and
        // replicating a different batch at index 23 of term 2). It stands for election instead.
        enable_leader_restore: Some(false),
        ..openraft::Config::default()
    };
    Ok(raft.validate()?)
}

/// Starts node `id` from its quorum directory `dir` on the current executor, reaching its
/// peers through `transport`. A node that has never been initialized waits for
/// [`initialize`] (or for a leader to reach it).
pub async fn start_node<T: Transport>(
    id: u64,
    dir: &Path,
    config: &QuorumConfig,
    transport: Rc<T>,
) -> Result<QuorumNode, QuorumError> {
    let raft_config = Arc::new(raft_config(config)?);
    let (log, state_machine) = open_storage(dir).await?;
    let network = Network::new(id, transport, state_machine.clone());
    let raft = QuorumRaft::new(id, raft_config, network, log, state_machine.clone())
        .await
        .map_err(|e| QuorumError::Fatal(e.to_string()))?;
    Ok(QuorumNode { raft, state_machine })
}

/// Forms the quorum with `voters` as its first membership. Call it on one node, or on every
/// node with the same voters (KRaft's static `controller.quorum.voters`); a node initialized
/// already refuses with `NotAllowed`, which a restart may ignore.
pub async fn initialize(raft: &QuorumRaft, voters: BTreeMap<u64, ControllerNode>) -> Result<(), QuorumError> {
    raft.initialize(voters).await.map_err(|e| QuorumError::Initialize(e.to_string()))
}
