//! A controller's service to brokers, beside its Raft: metadata changes proposed by brokers,
//! broker heartbeats (registration, unfencing, controlled shutdown) and the session timeout
//! that fences a silent broker, all on the active controller; and the committed metadata
//! served to any broker that fetches it, from any controller.
//!
//! **Writes are serialized and decided on the committed image.** Each write takes the
//! controller's one write lock, waits until everything committed before it is applied
//! (openraft's linearizable read: the leader has committed an entry of its own term and
//! applied up to it), decides its records on that image, and commits them. So a decision is
//! never made on an image that misses a committed change, and a broker's proposal decided on
//! an older image is answered `Stale` instead of being written. A write that outlives its
//! caller's patience finishes in its own task, still holding the lock, so the next decision
//! sees it (or sees that it failed).
//!
//! Sessions are the active controller's memory, as in KRaft: a new active controller gives
//! every broker a whole session timeout from the moment it took over.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use openraft::ReadPolicy;
use openraft_rt::{Instant as _, OneshotSender as _};
use ringtail_log::platform::{self, Instant, Semaphore};

use super::broker_wire::{
    self, BrokerRequest, BrokerResponse, FetchBody, Heartbeat, LeaderHint, QuorumState, ReplicaState,
};
use super::types::{BatchApplied, RecordBatch};
use super::QuorumNode;
use crate::ids::NodeId;
use crate::metadata::brokers::{self, BrokerError, Registration};
use crate::metadata::elect;
use crate::metadata::isr::{self, IsrProposal};
use crate::metadata::{MetadataImage, MetadataRecord};

/// Timings of the service.
#[derive(Debug, Clone, Copy)]
pub struct ServiceTimings {
    /// A broker not heard from for this long is fenced (broker.session.timeout.ms).
    pub session_timeout: Duration,
    /// A write not committed within this long is answered `Unavailable` (it may still commit).
    pub write_timeout: Duration,
    /// Longest wait a fetch may ask for.
    pub fetch_wait_max: Duration,
}

impl Default for ServiceTimings {
    fn default() -> ServiceTimings {
        ServiceTimings {
            session_timeout: Duration::from_secs(9),
            write_timeout: Duration::from_secs(5),
            fetch_wait_max: Duration::from_secs(1),
        }
    }
}

struct Session {
    last_heard: Instant,
    incarnation: [u8; 16],
    /// The last metadata offset the broker said it applied.
    applied: Option<u64>,
}

/// One controller's service (`!Send`: it lives with the node's Raft).
pub struct ControllerService {
    id: u64,
    /// The node's Raft and state machine; replaced when a Raft that stopped on a storage error
    /// is started again from its directory (`replace_node`).
    node: RefCell<QuorumNode>,
    timings: ServiceTimings,
    lock: Semaphore,
    sessions: RefCell<HashMap<NodeId, Session>>,
    /// The term this controller leads and when it took over; sessions count from then at most.
    leading: Cell<Option<(u64, Instant)>>,
}

/// Brokers the cluster registers at most; a registration past it is refused.
pub const BROKERS_MAX: usize = 1024;

/// Whether a broker may propose `record` (decided at `expected`): registrations, fencing and
/// unfencing come from heartbeats and session checks; an unregistration (an operator's
/// UnregisterBroker) only of a broker whose session this controller sees ended (`propose`
/// checks); the cluster id only as the cluster's first change.
fn proposable(record: &MetadataRecord, expected: Option<u64>) -> bool {
    match record {
        MetadataRecord::BrokerRegistered { .. }
        | MetadataRecord::BrokerFenced { .. }
        | MetadataRecord::BrokerUnfenced { .. }
        | MetadataRecord::BrokerShuttingDown { .. }
        | MetadataRecord::ReplicasOffline { .. } => false,
        MetadataRecord::ClusterCreated { .. } => expected.is_none(),
        _ => true,
    }
}

/// Kafka's DUPLICATE_VOTER and VOTER_NOT_FOUND.
pub const DUPLICATE_VOTER: i16 = 126;
pub const VOTER_NOT_FOUND: i16 = 127;
/// How long a new voter may take to catch up with the quorum's log before AddRaftVoter answers
/// that it has not yet (it goes on catching up as a learner; the request is retried), and how
/// long the membership change may take to commit: within a broker's call to the controller.
const VOTER_CATCH_UP_MAX: Duration = Duration::from_secs(3);
const VOTER_CHANGE_MAX: Duration = Duration::from_secs(4);

/// How often the active controller looks for expired sessions.
const SESSION_CHECK_INTERVAL: Duration = Duration::from_millis(250);
/// How often a fetch that waits looks for new records.
const FETCH_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// `fut`, or `None` once `limit` has passed.
async fn within<T>(limit: Duration, fut: impl Future<Output = T>) -> Option<T> {
    futures_lite::future::or(async { Some(fut.await) }, async {
        platform::sleep(limit).await;
        None
    })
    .await
}

impl ControllerService {
    pub fn new(id: u64, node: QuorumNode, timings: ServiceTimings) -> Rc<ControllerService> {
        Rc::new(ControllerService {
            id,
            node: RefCell::new(node),
            timings,
            lock: Semaphore::new(1),
            sessions: RefCell::new(HashMap::new()),
            leading: Cell::new(None),
        })
    }

    /// The node as it runs now (handles: cheap to clone, never borrowed across an await).
    pub fn node(&self) -> QuorumNode {
        self.node.borrow().clone()
    }

    /// Puts a restarted node in place of one whose Raft stopped. Sessions start afresh, as on
    /// any change of active controller.
    pub fn replace_node(&self, node: QuorumNode) {
        *self.node.borrow_mut() = node;
        self.leading.set(None);
    }

    /// Serves one frame of the quorum's (from another controller) on this node's Raft,
    /// refusing a controller of another cluster; the answer's bytes.
    pub async fn serve_raft(&self, frame: &[u8]) -> Vec<u8> {
        let node = self.node();
        if let Err(fatal) = node.metrics().running_state {
            // Stopped on a storage error until it is started again: said once per request,
            // without handing the request to a Raft that would log its refusal each time.
            let failed = super::wire::Response::Failed(format!("this controller's Raft stopped ({fatal})"));
            return super::wire::encode_response(&failed);
        }
        let cluster_id = node.state_machine.state().image.cluster_id().map(str::to_string);
        super::network::serve(&node.raft, cluster_id.as_deref(), frame).await
    }

    /// Serves one broker frame; the answer's bytes.
    pub async fn handle(self: &Rc<Self>, frame: &[u8]) -> Vec<u8> {
        let response = match broker_wire::decode_request(frame) {
            Err(e) => BrokerResponse::Refused(format!("the request frame is damaged: {e}")),
            Ok(BrokerRequest::Propose { expected, records }) => self.propose(expected, records).await,
            Ok(BrokerRequest::Heartbeat(h)) => self.heartbeat(h).await,
            Ok(BrokerRequest::Fetch { from, wait_ms }) => self.fetch(from, wait_ms).await,
            Ok(BrokerRequest::AlterPartition { node, broker_epoch, proposals }) => {
                self.alter_partition(node, broker_epoch, proposals).await
            }
            Ok(BrokerRequest::Describe) => match self.leading_term() {
                Some(_) => BrokerResponse::Described(self.describe()),
                None => BrokerResponse::NotLeader(self.leader_hint()),
            },
            Ok(BrokerRequest::AddVoter { id, address }) => self.add_voter(id, address).await,
            Ok(BrokerRequest::RemoveVoter { id }) => self.remove_voter(id).await,
        };
        broker_wire::encode_response(&response)
    }

    /// KIP-853's AddRaftVoter, on the active controller: `id` (a controller started outside the
    /// voters, listening at `address`) is added as a learner, and made a voter once its log has
    /// caught up; openraft's joint consensus keeps a majority of the old and the new voters
    /// behind every entry meanwhile. The membership lives in the quorum's log: a node's flags
    /// no longer decide it once the quorum exists.
    pub async fn add_voter(self: &Rc<Self>, id: u64, address: String) -> BrokerResponse {
        if self.leading_term().is_none() {
            return BrokerResponse::NotLeader(self.leader_hint());
        }
        let raft = self.node().raft;
        let m = self.node().metrics();
        if m.membership_config.voter_ids().any(|v| v == id) {
            return BrokerResponse::VoterRefused {
                code: DUPLICATE_VOTER,
                message: format!("controller {id} is a voter already"),
            };
        }
        let limit = VOTER_CATCH_UP_MAX;
        let unavailable = |what: &str, e: String| BrokerResponse::Unavailable(format!("{what}: {e}"));
        match within(limit, raft.add_learner(id, super::ControllerNode::new(address.clone()), true)).await {
            None => {
                return BrokerResponse::Unavailable(format!(
                    "controller {id} at {address} did not catch up with the quorum within {} s: is it running, \
                     reachable there, and of this cluster? (it stays a learner; retry)",
                    limit.as_secs()
                ))
            }
            Some(Err(e)) => return self.membership_refused(e, |e| unavailable("cannot add the learner", e)),
            Some(Ok(_)) => {}
        }
        let change = openraft::ChangeMembers::AddVoterIds([id].into_iter().collect());
        match within(VOTER_CHANGE_MAX, raft.change_membership(change, false)).await {
            None => unavailable("the voter change was not committed in time", "retry".into()),
            Some(Err(e)) => self.membership_refused(e, |e| unavailable("cannot change the voters", e)),
            Some(Ok(_)) => {
                tracing::info!(voter = id, %address, "a controller joined the voters");
                BrokerResponse::Proposed { first: 0, last: 0 }
            }
        }
    }

    /// KIP-853's RemoveRaftVoter, on the active controller. The last voter is never removed.
    /// The removed controller keeps running outside the quorum (restarted with its old flags it
    /// still is not a voter: the membership is the log's); if it led, another voter takes over.
    pub async fn remove_voter(self: &Rc<Self>, id: u64) -> BrokerResponse {
        if self.leading_term().is_none() {
            return BrokerResponse::NotLeader(self.leader_hint());
        }
        let raft = self.node().raft;
        let voters: Vec<u64> = self.node().metrics().membership_config.voter_ids().collect();
        if !voters.contains(&id) {
            return BrokerResponse::VoterRefused {
                code: VOTER_NOT_FOUND,
                message: format!("controller {id} is not a voter (voters: {voters:?})"),
            };
        }
        if voters.len() == 1 {
            return BrokerResponse::Refused(format!("controller {id} is the only voter: the quorum needs one"));
        }
        let change = openraft::ChangeMembers::RemoveVoters([id].into_iter().collect());
        match within(VOTER_CHANGE_MAX, raft.change_membership(change, false)).await {
            None => BrokerResponse::Unavailable("the voter change was not committed in time; retry".into()),
            Some(Err(e)) => {
                self.membership_refused(e, |e| BrokerResponse::Unavailable(format!("cannot change the voters: {e}")))
            }
            Some(Ok(_)) => {
                tracing::info!(voter = id, "a controller left the voters");
                BrokerResponse::Proposed { first: 0, last: 0 }
            }
        }
    }

    fn membership_refused(
        &self,
        e: openraft::error::RaftError<super::QuorumTypes, openraft::error::ClientWriteError<super::QuorumTypes>>,
        otherwise: impl FnOnce(String) -> BrokerResponse,
    ) -> BrokerResponse {
        match e.forward_to_leader() {
            Some(_) => BrokerResponse::NotLeader(self.leader_hint()),
            None => otherwise(e.to_string()),
        }
    }

    /// The active controller as this one knows it.
    pub fn leader_hint(&self) -> Option<LeaderHint> {
        let m = self.node().metrics();
        let leader = m.current_leader?;
        let address = m.membership_config.get_node(&leader).map(|n| n.address.clone())?;
        Some(LeaderHint { id: leader, address })
    }

    /// The term this controller leads now, if it does; notes when it took over.
    fn leading_term(&self) -> Option<u64> {
        let m = self.node().metrics();
        if m.current_leader != Some(self.id) || !m.state.is_leader() {
            self.leading.set(None);
            return None;
        }
        let term = m.current_term;
        if self.leading.get().is_none_or(|(t, _)| t != term) {
            self.leading.set(Some((term, Instant::now())));
        }
        Some(term)
    }

    /// Decides records on the committed image and commits them. `decide` runs under the write
    /// lock once everything committed before is applied; its error is the answer. The
    /// offsets the records got, or `None` when there was nothing to write.
    pub async fn write(
        self: &Rc<Self>,
        decide: impl FnOnce(&MetadataImage) -> Result<Vec<MetadataRecord>, BrokerResponse> + 'static,
    ) -> Result<Option<(u64, u64)>, BrokerResponse> {
        if self.leading_term().is_none() {
            return Err(BrokerResponse::NotLeader(self.leader_hint()));
        }
        let (tx, rx) = <super::sync::Oneshot as openraft_rt::Oneshot>::channel();
        let this = self.clone();
        platform::spawn_local(async move {
            let outcome = this.write_locked(decide).await;
            let _ = tx.send(outcome);
        })
        .detach();
        let limit = self.timings.write_timeout;
        match within(limit, rx).await {
            Some(Ok(outcome)) => outcome,
            Some(Err(_)) => Err(BrokerResponse::Unavailable("the controller stopped during the change".into())),
            None => Err(BrokerResponse::Unavailable(format!(
                "the change was not committed within {} ms: a majority of the controller quorum may be down \
                 (it may still be committed; retry)",
                limit.as_millis()
            ))),
        }
    }

    async fn write_locked(
        self: &Rc<Self>,
        decide: impl FnOnce(&MetadataImage) -> Result<Vec<MetadataRecord>, BrokerResponse>,
    ) -> Result<Option<(u64, u64)>, BrokerResponse> {
        // A write that cannot start within the write timeout is dropped undecided: its caller has
        // been answered, and deciding it later would use what it knew then.
        let limit = self.timings.write_timeout;
        let busy = || {
            BrokerResponse::Unavailable(format!(
                "an earlier metadata change is still waiting for the controller quorum after {} ms",
                limit.as_millis()
            ))
        };
        let _one = within(limit, self.lock.acquire_permit(1))
            .await
            .ok_or_else(busy)?
            .map_err(|e| BrokerResponse::Unavailable(format!("the controller's write lock failed: {e:?}")))?;
        let raft = self.node().raft;
        let confirmed = within(limit, raft.ensure_linearizable(ReadPolicy::ReadIndex)).await.ok_or_else(|| {
            BrokerResponse::Unavailable(format!(
                "no majority of the controller quorum confirmed this controller within {} ms",
                limit.as_millis()
            ))
        })?;
        if let Err(e) = confirmed {
            return Err(match e.forward_to_leader() {
                Some(_) => BrokerResponse::NotLeader(self.leader_hint()),
                None => BrokerResponse::Unavailable(format!("the controller quorum cannot confirm its state: {e}")),
            });
        }
        let records = {
            let quorum = self.node();
            let state = quorum.state_machine.state();
            let records = decide(&state.image)?;
            // The cluster's first change (its id, a migrated single node's metadata) comes first:
            // nothing may be decided on an image without it.
            let forming = matches!(records.first(), Some(MetadataRecord::ClusterCreated { .. }));
            if state.image.cluster_id().is_none() && !forming && !records.is_empty() {
                return Err(BrokerResponse::Unavailable(
                    "the cluster is being formed: its first metadata is not written yet".into(),
                ));
            }
            records
        };
        if records.is_empty() {
            return Ok(None);
        }
        let batch = RecordBatch(records);
        batch.check().map_err(BrokerResponse::Refused)?;
        match raft.client_write(batch).await {
            Ok(r) => {
                let BatchApplied { base_offset, applied, skipped, .. } = r.data;
                if skipped > 0 {
                    // Decided on the image it is applied to: this is a bug, said loudly.
                    tracing::error!(skipped, "records decided by the controller did not apply");
                }
                Ok(base_offset.map(|first| (first, first + u64::from(applied.max(1)) - 1)))
            }
            Err(e) => Err(match e.forward_to_leader() {
                Some(_) => BrokerResponse::NotLeader(self.leader_hint()),
                None => BrokerResponse::Unavailable(format!("the controller quorum cannot commit: {e}")),
            }),
        }
    }

    /// A change a broker decided at metadata offset `expected`. Registrations, fencing and
    /// unfencing come only from heartbeats and the session checks, never from a proposal.
    pub async fn propose(self: &Rc<Self>, expected: Option<u64>, records: Vec<MetadataRecord>) -> BrokerResponse {
        if let Some(r) = records.iter().find(|r| !proposable(r, expected)) {
            return BrokerResponse::Refused(format!("a broker may not propose this record: {r:?}"));
        }
        let this = self.clone();
        let outcome = self
            .write(move |image| {
                if image.applied != expected {
                    return Err(BrokerResponse::Stale { applied: image.applied });
                }
                for r in &records {
                    if let MetadataRecord::BrokerUnregistered { node, .. } = r {
                        let stopped = image
                            .brokers()
                            .get(node)
                            .is_some_and(|b| b.fenced && !this.session_alive(*node, b.incarnation));
                        if !stopped {
                            return Err(BrokerResponse::Refused(format!(
                                "broker {node} was heard from within the session timeout: stop it, and retry once its \
                                 session has ended (broker.session.timeout.ms)"
                            )));
                        }
                    }
                }
                Ok(records)
            })
            .await;
        match outcome {
            Ok(Some((first, last))) => BrokerResponse::Proposed { first, last },
            Ok(None) => BrokerResponse::Refused("the change has no records".into()),
            Err(response) => response,
        }
    }

    /// A leader's proposed ISRs (AlterPartition): decided on the committed image under the
    /// write lock, so two proposals for one partition never both pass its partition epoch.
    pub async fn alter_partition(
        self: &Rc<Self>,
        node: NodeId,
        broker_epoch: i64,
        proposals: Vec<IsrProposal>,
    ) -> BrokerResponse {
        let outcomes = Rc::new(RefCell::new(Vec::new()));
        let decided = outcomes.clone();
        let written = self
            .write(move |image| {
                let (records, outcomes) = isr::alter_isr(image, node, broker_epoch, &proposals);
                *decided.borrow_mut() = outcomes;
                Ok(records)
            })
            .await;
        match written {
            Ok(_) => BrokerResponse::PartitionsAltered(outcomes.take()),
            Err(response) => response,
        }
    }

    /// A session is alive if heard from within the session timeout, counting from when this
    /// controller took over at the earliest (a new active controller gives every broker a
    /// whole session).
    fn session_alive(&self, node: NodeId, incarnation: [u8; 16]) -> bool {
        let since = self.leading.get().map(|(_, t)| t);
        let sessions = self.sessions.borrow();
        let heard = sessions.get(&node).filter(|s| s.incarnation == incarnation).map(|s| s.last_heard);
        match (heard, since) {
            (Some(h), Some(s)) => h.max(s).elapsed() < self.timings.session_timeout,
            (Some(h), None) => h.elapsed() < self.timings.session_timeout,
            (None, Some(s)) => s.elapsed() < self.timings.session_timeout,
            (None, None) => false,
        }
    }

    fn touch(&self, node: NodeId, incarnation: [u8; 16], applied: Option<u64>) {
        self.sessions.borrow_mut().insert(node, Session { last_heard: Instant::now(), incarnation, applied });
    }

    async fn heartbeat(self: &Rc<Self>, h: Heartbeat) -> BrokerResponse {
        let node = h.node;
        if node.0 < 0 {
            return BrokerResponse::Refused(format!("node id {node} is negative"));
        }
        if self.leading_term().is_none() {
            return BrokerResponse::NotLeader(self.leader_hint());
        }
        // A heartbeat of the registered incarnation keeps its session from the moment it
        // arrives, however long its write then waits.
        let registered = {
            let quorum = self.node();
            let state = quorum.state_machine.state();
            state.image.brokers().get(&node).map(|b| (b.incarnation, b.fenced))
        };
        if registered.is_some_and(|(incarnation, _)| incarnation == h.incarnation) {
            self.touch(node, h.incarnation, h.applied);
        }
        let request = h.clone();
        let this = self.clone();
        let outcome = self
            .write(move |image| {
                if let (Some(theirs), Some(mine)) = (image.cluster_id(), request.cluster_id.as_deref()) {
                    if theirs != mine {
                        return Err(BrokerResponse::Refused(format!(
                            "node {node}'s data directory belongs to cluster {mine}; these controllers are cluster \
                             {theirs}: give it a data directory of this cluster, or an empty one"
                        )));
                    }
                }
                let next = image.applied.map_or(0, |a| a + 1) as i64;
                let records = match image.brokers().get(&node) {
                    Some(b)
                        if b.incarnation == request.incarnation
                            && b.listeners == request.listeners
                            && b.rack == request.rack =>
                    {
                        let caught_up = request.applied.is_some_and(|a| a as i64 >= b.epoch);
                        // A process that asked to shut down before stays fenced
                        // (`BrokerShuttingDown` in the image), whatever this heartbeat says:
                        // one sent before the request may be decided after it. Found by the
                        // deterministic simulation, first fixed in the active controller's
                        // memory, now a record so that a controller taking over knows it.
                        brokers::heartbeat(image, node, b.epoch, caught_up, request.shutting_down, &request.offline)
                    }
                    old => {
                        if image.brokers().len() >= BROKERS_MAX && old.is_none() {
                            return Err(BrokerResponse::Refused(format!(
                                "the cluster has {BROKERS_MAX} registered brokers, the most it takes"
                            )));
                        }
                        // Another live incarnation holds the node id; a fenced one (shut down,
                        // or its session over) is replaced.
                        let old_alive = old.is_some_and(|b| {
                            b.incarnation != request.incarnation && !b.fenced && this.session_alive(node, b.incarnation)
                        });
                        brokers::register(
                            image,
                            &Registration {
                                node,
                                incarnation: request.incarnation,
                                listeners: request.listeners.clone(),
                                rack: request.rack.clone(),
                            },
                            next,
                            old_alive,
                        )
                    }
                };
                records.map_err(|e| match e {
                    BrokerError::Duplicate { .. } | BrokerError::StaleEpoch { .. } => {
                        BrokerResponse::Refused(e.to_string())
                    }
                })
            })
            .await;
        if let Err(response) = outcome {
            return response;
        }
        let quorum = self.node();
        let state = quorum.state_machine.state();
        match state.image.brokers().get(&node) {
            Some(b) if b.incarnation == h.incarnation => {
                if (h.shutting_down || b.shutting_down) && b.fenced {
                    // Shut down: its session ends now, so the next process registers at once.
                    self.sessions.borrow_mut().remove(&node);
                } else {
                    self.touch(node, h.incarnation, h.applied);
                }
                BrokerResponse::Heartbeat { broker_epoch: b.epoch, fenced: b.fenced }
            }
            _ => BrokerResponse::Unavailable("the registration is not applied yet; retry".into()),
        }
    }

    async fn fetch(&self, from: u64, wait_ms: u32) -> BrokerResponse {
        let wait = Duration::from_millis(u64::from(wait_ms)).min(self.timings.fetch_wait_max);
        let start = Instant::now();
        loop {
            let body = self.node().state_machine.fetch(from);
            if !matches!(body, FetchBody::UpToDate) || start.elapsed() >= wait {
                let applied = self.node().state_machine.state().image.applied;
                return BrokerResponse::Fetched { leader: self.leader_hint(), applied, body };
            }
            platform::sleep(FETCH_POLL_INTERVAL).await;
        }
    }

    /// The quorum as this controller sees it (DescribeQuorum).
    pub fn describe(&self) -> QuorumState {
        let m = self.node().metrics();
        let voters: Vec<u64> = m.membership_config.voter_ids().collect();
        let nodes: Vec<u64> = m.membership_config.nodes().map(|(id, _)| *id).collect();
        let replicas = nodes
            .iter()
            .map(|&id| {
                let log_end = match (id == self.id, &m.replication) {
                    (true, _) => m.last_log_index,
                    (false, Some(r)) => r.get(&id).and_then(|l| l.as_ref().map(|l| l.index)),
                    (false, None) => None,
                };
                let last_heard_ms = match (id == self.id, &m.heartbeat) {
                    (true, _) => Some(0),
                    (false, Some(h)) => h.get(&id).and_then(|t| t.as_ref().map(|t| t.elapsed().as_millis() as u64)),
                    (false, None) => None,
                };
                ReplicaState { id, log_end, last_heard_ms, voter: voters.contains(&id) }
            })
            .collect::<Vec<_>>();
        // Brokers that are not voters follow the metadata by fetching it (KRaft's observers):
        // their log end is the metadata offset their last heartbeat said they applied.
        let sessions = self.sessions.borrow();
        let observers =
            sessions.iter().filter(|(node, _)| !nodes.contains(&(node.0 as u64))).map(|(node, s)| ReplicaState {
                id: node.0 as u64,
                log_end: s.applied,
                last_heard_ms: Some(s.last_heard.elapsed().as_millis() as u64),
                voter: false,
            });
        let mut replicas = replicas;
        replicas.extend(observers);
        QuorumState {
            leader: m.current_leader,
            term: m.current_term,
            committed: m.local_committed.map(|c| c.index),
            metadata_offset: self.node().state_machine.state().image.applied,
            replicas,
        }
    }

    /// Fences brokers whose session expired, while this controller is the active one. Runs
    /// until its task is dropped.
    pub async fn run_sessions(self: Rc<Self>) {
        loop {
            platform::sleep(SESSION_CHECK_INTERVAL).await;
            if self.leading_term().is_none() {
                continue;
            }
            let expired: Vec<NodeId> = {
                let node = self.node();
                let state = node.state_machine.state();
                state
                    .image
                    .brokers()
                    .iter()
                    .filter(|(_, b)| !b.fenced)
                    .filter(|(node, b)| !self.session_alive(**node, b.incarnation))
                    .map(|(node, _)| *node)
                    .collect()
            };
            for node in expired {
                let this = self.clone();
                let fence = move |image: &MetadataImage| {
                    // Heard from while this waited for the lock: not expired after all.
                    let alive = image.brokers().get(&node).is_some_and(|b| this.session_alive(node, b.incarnation));
                    Ok(if alive { Vec::new() } else { brokers::fence(image, node) })
                };
                match self.write(fence).await {
                    Ok(Some(_)) => tracing::info!(
                        %node,
                        timeout_ms = self.timings.session_timeout.as_millis() as u64,
                        "fenced a broker: no heartbeat within the session timeout"
                    ),
                    Ok(None) => {}
                    Err(e) => tracing::debug!(%node, ?e, "could not fence a broker yet"),
                }
            }
        }
    }

    /// Gives partitions back to their preferred replicas every `interval` while this controller
    /// is the active one (Kafka's auto.leader.rebalance.enable, with
    /// leader.imbalance.check.interval.seconds and leader.imbalance.per.broker.percentage): see
    /// `elect::imbalanced`. Runs until its task is dropped.
    pub async fn run_leader_balance(self: Rc<Self>, interval: Duration, percentage: u32) {
        loop {
            platform::sleep(interval).await;
            if self.leading_term().is_none() {
                continue;
            }
            let balance = move |image: &MetadataImage| {
                let mut records = Vec::new();
                for partition in elect::imbalanced(image, percentage) {
                    // Each was checked eligible on this image; an election refused now is skipped.
                    records.extend(elect::elect(image, partition, false).unwrap_or_default());
                }
                Ok(records)
            };
            match self.write(balance).await {
                Ok(Some((first, last))) => tracing::info!(
                    elections = last - first + 1,
                    "gave partitions back to their preferred leaders (leader imbalance above {percentage}%)"
                ),
                Ok(None) => {}
                Err(e) => tracing::debug!(?e, "could not balance leaders yet"),
            }
        }
    }
}
