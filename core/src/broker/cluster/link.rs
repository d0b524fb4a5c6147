//! A broker's link to its cluster's controllers: the state the metadata follower, the
//! heartbeats and the controller service's proposals share, on shard 0. Kept apart from the
//! tasks that use it (`cluster`), which need the broker itself.

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use ringtail_replication::metadata::store::{MetadataLog, BROKER_COPY_DIR};
use ringtail_replication::metadata::{Endpoint, MetadataImage};
use ringtail_replication::quorum::broker_client::BrokerClient;
use ringtail_replication::quorum::broker_wire::{BrokerRequest, Heartbeat};
use ringtail_replication::{NodeId, PartitionId};

use crate::config::BrokerConfig;
use crate::runtime::routing::{NodeView, CLIENT_LISTENER};

/// How long a broker's call to a controller may take: longer than a controller takes to answer
/// a write it cannot commit (5 s), so a slow commit is answered rather than sent again.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(8);
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// A broker's link to the controllers.
pub struct ClusterLink {
    pub client: BrokerClient,
    pub(super) incarnation: [u8; 16],
    listeners: Vec<Endpoint>,
    rack: Option<String>,
    pub(super) heartbeat_interval: Duration,
    /// How long one heartbeat call may take: a third of the session, so that a stopped
    /// controller costs at most a third of it before the next voter is tried.
    pub(super) heartbeat_timeout: Duration,
    /// The epoch of this process's registration, once the controller answered.
    pub broker_epoch: Cell<Option<i64>>,
    pub fenced: Cell<bool>,
    /// Set once shutdown begins: heartbeats ask to be fenced (controlled shutdown).
    pub shutting_down: Cell<bool>,
    /// Set to stop following the metadata: the follower finishes the apply in progress first.
    pub stop_following: Cell<bool>,
    /// The follower is writing the copy or carrying records out (never cancelled then).
    pub(super) applying: Cell<bool>,
    pub(super) copy_dir: PathBuf,
    pub(super) copy: RefCell<Rc<MetadataLog>>,
}

impl ClusterLink {
    /// `incarnation`: this process's (the node view's), registered with the controllers.
    pub fn new(config: &BrokerConfig, copy: MetadataLog, incarnation: [u8; 16]) -> ClusterLink {
        let voters = config.cluster.voters.iter().map(|v| (v.node_id as u64, v.address())).collect();
        ClusterLink {
            client: BrokerClient::new(voters, CONNECT_TIMEOUT, CALL_TIMEOUT),
            incarnation,
            listeners: vec![Endpoint {
                name: CLIENT_LISTENER.into(),
                host: config.advertised_host.clone(),
                port: config.advertised_port,
            }],
            rack: config.cluster.rack.clone(),
            heartbeat_interval: config.cluster.broker_heartbeat_interval,
            heartbeat_timeout: (config.cluster.broker_session_timeout / 3).clamp(CONNECT_TIMEOUT, CALL_TIMEOUT),
            broker_epoch: Cell::new(None),
            fenced: Cell::new(true),
            shutting_down: Cell::new(false),
            stop_following: Cell::new(false),
            applying: Cell::new(false),
            copy_dir: config.data_dir.join(BROKER_COPY_DIR),
            copy: RefCell::new(Rc::new(copy)),
        }
    }

    /// `offline`: this broker's damaged replicas, from every shard.
    pub(super) fn heartbeat_request(&self, view: &NodeView, offline: Vec<PartitionId>) -> BrokerRequest {
        BrokerRequest::Heartbeat(Heartbeat {
            node: view.node,
            incarnation: self.incarnation,
            listeners: self.listeners.clone(),
            rack: self.rack.clone(),
            applied: view.image.applied,
            shutting_down: self.shutting_down.get(),
            cluster_id: (!view.cluster_id.is_empty()).then(|| view.cluster_id.to_string()),
            offline,
        })
    }
}

/// The brokers new replicas may go to: unfenced ones, by node id.
pub fn unfenced_brokers(image: &MetadataImage) -> Vec<NodeId> {
    image.brokers().iter().filter(|(_, b)| !b.fenced).map(|(n, _)| *n).collect()
}
