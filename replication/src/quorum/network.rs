//! The quorum's network seam. openraft's `RaftNetworkFactory` and `RaftNetworkV2` are
//! implemented here once, over a [`Transport`]: one async method that carries a request frame
//! (`wire.rs`) to a controller and brings its response frame back. The broker's TCP transport
//! and the simulation's network implement only that; they never see openraft's traits.
//!
//! Every RPC is bounded by `RPCOption::soft_ttl()` with a platform sleep: a transport that
//! hangs costs a timeout, never a stuck replication stream (openraft issue #1810). A node that
//! cannot be reached is `RPCError::Unreachable`, after which openraft backs off instead of
//! retrying at once.
//!
//! [`serve`] is the receiving half: it decodes a request frame, hands it to the local `Raft`,
//! and encodes the answer.

use std::future::Future;
use std::io;
use std::pin::pin;
use std::rc::Rc;
use std::time::Duration;

use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable};
use openraft::network::{RPCOption, RPCTypes};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};
use openraft::{AsyncRuntime, OptionalSend, RaftNetworkFactory, RaftNetworkV2};
use openraft_rt::Select2;

use super::rt::{self, Rt};
use super::state_machine::StateMachine;
use super::types::{ControllerNode, QuorumTypes, Snapshot, Vote};
use super::wire::{decode_request_from, decode_response, encode_request_from, encode_response, Request, Response};
use super::QuorumRaft;

/// Why a request frame got no response frame.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// No connection to the node could be made (refused, no route, not resolvable).
    #[error("the controller cannot be reached: {0}")]
    Unreachable(io::Error),
    /// The connection failed while the request was in flight.
    #[error("the connection to the controller failed during the request: {0}")]
    Broken(io::Error),
}

/// Carries request frames to controllers. Implemented by the broker's TCP transport, the
/// simulation's network and the tests' in-memory router. Owned by the quorum's shard.
pub trait Transport: 'static {
    /// Sends `request` to `target` (at `node.address`) and returns its response frame. The
    /// caller bounds the wait; a transport need not.
    fn send(
        &self,
        target: u64,
        node: &ControllerNode,
        request: Vec<u8>,
    ) -> impl Future<Output = Result<Vec<u8>, TransportError>>;
}

/// openraft's network factory over a [`Transport`]. Owned by the node's `Raft`.
pub struct Network<T> {
    id: u64,
    transport: Rc<T>,
    /// The node's state machine: requests carry the cluster id its metadata holds.
    state_machine: StateMachine,
}

impl<T: Transport> Network<T> {
    /// The network of node `id`.
    pub fn new(id: u64, transport: Rc<T>, state_machine: StateMachine) -> Network<T> {
        Network { id, transport, state_machine }
    }
}

/// One peer's connection as openraft sees it: the transport, the peer's id and address.
pub struct Peer<T> {
    id: u64,
    target: u64,
    node: ControllerNode,
    transport: Rc<T>,
    state_machine: StateMachine,
}

impl<T: Transport> RaftNetworkFactory<QuorumTypes> for Network<T> {
    type Network = Peer<T>;

    async fn new_client(&mut self, target: u64, node: &ControllerNode) -> Peer<T> {
        Peer {
            id: self.id,
            target,
            node: node.clone(),
            transport: self.transport.clone(),
            state_machine: self.state_machine.clone(),
        }
    }
}

impl<T: Transport> Peer<T> {
    /// Sends `request` and waits for its response at most `ttl`.
    async fn call(
        &self,
        request: &Request,
        ttl: Duration,
        action: RPCTypes,
    ) -> Result<Response, RPCError<QuorumTypes>> {
        let frame = {
            let state = self.state_machine.state();
            encode_request_from(request, state.image.cluster_id())
        };
        let answer = match rt::timeout(ttl, self.transport.send(self.target, &self.node, frame)).await {
            Err(_) => {
                return Err(RPCError::Timeout(Timeout { action, id: self.id, target: self.target, timeout: ttl }));
            }
            Ok(Err(TransportError::Unreachable(e))) => return Err(RPCError::Unreachable(Unreachable::new(&e))),
            Ok(Err(e @ TransportError::Broken(_))) => return Err(RPCError::Network(NetworkError::new(&e))),
            Ok(Ok(answer)) => answer,
        };
        match decode_response(&answer) {
            // The peer's Raft stopped: as good as unreachable, and worth a backoff.
            Ok(Response::Failed(message)) => Err(RPCError::Unreachable(Unreachable::from_string(format!(
                "controller {} could not serve the request: {message}",
                self.target
            )))),
            Ok(response) => Ok(response),
            Err(e) => Err(RPCError::Network(NetworkError::from_string(format!(
                "controller {} answered with a damaged frame: {e}",
                self.target
            )))),
        }
    }
}

fn unexpected(target: u64, response: &Response) -> RPCError<QuorumTypes> {
    RPCError::Network(NetworkError::from_string(format!("controller {target} answered another request: {response:?}")))
}

fn streaming(e: RPCError<QuorumTypes>) -> StreamingError<QuorumTypes> {
    match e {
        RPCError::Timeout(t) => StreamingError::Timeout(t),
        RPCError::Unreachable(u) => StreamingError::Unreachable(u),
        RPCError::Network(n) => StreamingError::Network(n),
        RPCError::RemoteError(r) => StreamingError::Network(NetworkError::from_string(r.to_string())),
    }
}

impl<T: Transport> RaftNetworkV2<QuorumTypes> for Peer<T> {
    type SnapshotData = bytes::Bytes;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<QuorumTypes>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<QuorumTypes>, RPCError<QuorumTypes>> {
        match self.call(&Request::AppendEntries(rpc), option.soft_ttl(), RPCTypes::AppendEntries).await? {
            Response::AppendEntries(r) => Ok(r),
            other => Err(unexpected(self.target, &other)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<QuorumTypes>,
        option: RPCOption,
    ) -> Result<VoteResponse<QuorumTypes>, RPCError<QuorumTypes>> {
        match self.call(&Request::Vote(rpc), option.soft_ttl(), RPCTypes::Vote).await? {
            Response::Vote(r) => Ok(r),
            other => Err(unexpected(self.target, &other)),
        }
    }

    /// Sent for real (the default grants it): an isolated node must learn that it cannot win,
    /// not inflate its term.
    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<QuorumTypes>,
        option: RPCOption,
    ) -> Result<VoteResponse<QuorumTypes>, RPCError<QuorumTypes>> {
        match self.call(&Request::PreVote(rpc), option.soft_ttl(), RPCTypes::Vote).await? {
            Response::PreVote(r) => Ok(r),
            other => Err(unexpected(self.target, &other)),
        }
    }

    /// The whole snapshot in one frame, within `soft_ttl` (3/4 of openraft's
    /// `install_snapshot_timeout`, which must leave time for the largest image), or until the
    /// replication is closed.
    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<QuorumTypes>, StreamingError<QuorumTypes>> {
        let request = Request::FullSnapshot { vote, snapshot };
        let call = pin!(self.call(&request, option.soft_ttl(), RPCTypes::InstallSnapshot));
        match Rt::select2(call, pin!(cancel)).await {
            Select2::First(Ok(Response::Snapshot(r))) => Ok(r),
            Select2::First(Ok(other)) => Err(streaming(unexpected(self.target, &other))),
            Select2::First(Err(e)) => Err(streaming(e)),
            Select2::Second(closed) => Err(StreamingError::Closed(closed)),
        }
    }
}

/// Serves one request frame on the local `Raft` and returns the response frame. A frame that
/// does not decode, one from a controller of another cluster than `cluster_id` (this node's,
/// once its metadata holds one), or a `Raft` that stopped, gets a `Failed` answer.
pub async fn serve(raft: &QuorumRaft, cluster_id: Option<&str>, frame: &[u8]) -> Vec<u8> {
    let response = match decode_request_from(frame) {
        Err(e) => Response::Failed(format!("the request frame is damaged: {e}")),
        Ok((_, Some(theirs))) if cluster_id.is_some_and(|mine| mine != theirs) => Response::Failed(format!(
            "this controller belongs to cluster {}, the request comes from cluster {theirs}: check \
             --controller-quorum-voters",
            cluster_id.unwrap_or_default()
        )),
        Ok((request, _)) => serve_request(raft, request).await,
    };
    encode_response(&response)
}

async fn serve_request(raft: &QuorumRaft, request: Request) -> Response {
    let failed = |e: &dyn std::fmt::Display| Response::Failed(e.to_string());
    match request {
        Request::AppendEntries(rpc) => {
            raft.append_entries(rpc).await.map_or_else(|e| failed(&e), Response::AppendEntries)
        }
        Request::Vote(rpc) => raft.vote(rpc).await.map_or_else(|e| failed(&e), Response::Vote),
        Request::PreVote(rpc) => raft.pre_vote(rpc).await.map_or_else(|e| failed(&e), Response::PreVote),
        Request::FullSnapshot { vote, snapshot } => {
            raft.install_full_snapshot(vote, snapshot).await.map_or_else(|e| failed(&e), Response::Snapshot)
        }
    }
}
