//! AddRaftVoter and RemoveRaftVoter (KIP-853): the controller quorum's voters changed online.
//! Any broker takes them and hands them to the active controller (through shard 0's link), which
//! carries them out with openraft's membership changes (`ControllerService::add_voter`,
//! `remove_voter`).

use std::rc::Rc;

use ringtail_net::error_code;
use ringtail_net::header::ApiKey;
use ringtail_net::messages::raft_voters::{AddRaftVoterRequest, RaftVoterResponse, RemoveRaftVoterRequest};
use ringtail_net::{Reader, Writer};
use ringtail_replication::quorum::broker_wire::{BrokerRequest, BrokerResponse};
use ringtail_replication::ShardId;

use super::common::{single, Handled};
use crate::broker::Broker;

/// The controller listener's name in KRaft.
const CONTROLLER_LISTENER: &str = "CONTROLLER";

pub async fn add_raft_voter(broker: &Rc<Broker>, body: &mut Reader, version: i16, w: Writer) -> Handled {
    let req = AddRaftVoterRequest::decode(body, version)?;
    let listener = req.listeners.iter().find(|(name, _, _)| name == CONTROLLER_LISTENER).or(req.listeners.first());
    let resp = match (check_cluster(broker, req.cluster_id.as_deref()), listener) {
        (Err(refused), _) => refused,
        (Ok(()), None) => refusal(error_code::INVALID_REQUEST, "the new voter names no listener to reach it at".into()),
        (Ok(()), Some(_)) if req.voter_id < 0 => {
            refusal(error_code::INVALID_REQUEST, format!("{} is not a node id", req.voter_id))
        }
        (Ok(()), Some((_, host, port))) => {
            let address = format!("{host}:{port}");
            forward(broker, BrokerRequest::AddVoter { id: req.voter_id as u64, address }).await
        }
    };
    finish(broker, ApiKey::AddRaftVoter, resp, w, version)
}

pub async fn remove_raft_voter(broker: &Rc<Broker>, body: &mut Reader, version: i16, w: Writer) -> Handled {
    let req = RemoveRaftVoterRequest::decode(body, version)?;
    let resp = match check_cluster(broker, req.cluster_id.as_deref()) {
        Err(refused) => refused,
        Ok(()) if req.voter_id < 0 => {
            refusal(error_code::INVALID_REQUEST, format!("{} is not a node id", req.voter_id))
        }
        Ok(()) => forward(broker, BrokerRequest::RemoveVoter { id: req.voter_id as u64 }).await,
    };
    finish(broker, ApiKey::RemoveRaftVoter, resp, w, version)
}

fn finish(broker: &Broker, api: ApiKey, resp: RaftVoterResponse, mut w: Writer, version: i16) -> Handled {
    if resp.error_code != error_code::NONE {
        broker.metrics.error(api);
    }
    resp.encode(&mut w, version);
    single(w)
}

fn refusal(error_code: i16, message: String) -> RaftVoterResponse {
    RaftVoterResponse { throttle_time_ms: 0, error_code, error_message: Some(message) }
}

/// A request naming another cluster is refused (Kafka's INCONSISTENT_CLUSTER_ID).
fn check_cluster(broker: &Broker, cluster_id: Option<&str>) -> Result<(), RaftVoterResponse> {
    let view = broker.view();
    match cluster_id {
        Some(asked) if asked != &*view.cluster_id => Err(refusal(
            error_code::INCONSISTENT_CLUSTER_ID,
            format!("this is cluster {}, not {asked}", view.cluster_id),
        )),
        _ => Ok(()),
    }
}

async fn forward(broker: &Rc<Broker>, request: BrokerRequest) -> RaftVoterResponse {
    let answer = broker
        .on_shard(ShardId(0), |b| async move {
            let link = b.controller.as_ref().and_then(|c| c.link()).cloned()?;
            Some(link.client.call_leader(&request, 4).await)
        })
        .await
        .flatten();
    match answer {
        None => refusal(
            error_code::INVALID_REQUEST,
            "a single node has no controller quorum to change: start nodes with --controller-quorum-voters".into(),
        ),
        Some(BrokerResponse::Proposed { .. }) => RaftVoterResponse::default(),
        Some(BrokerResponse::VoterRefused { code, message }) => refusal(code, message),
        Some(BrokerResponse::Refused(m)) => refusal(error_code::INVALID_REQUEST, m),
        Some(BrokerResponse::Unavailable(m)) => refusal(error_code::REQUEST_TIMED_OUT, m),
        Some(other) => refusal(error_code::REQUEST_TIMED_OUT, format!("the controller answered {other:?}")),
    }
}
