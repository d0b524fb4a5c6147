//! AlterPartitionReassignments and ListPartitionReassignments (KIP-455): moving partitions'
//! replicas between brokers through the controller (`replication::metadata::reassign`), and the
//! moves under way as this broker's metadata describes them; ElectLeaders (preferred and
//! unclean elections, `replication::metadata::elect`); UnregisterBroker (a stopped, drained
//! broker leaves the registrations).

use std::rc::Rc;

use ringtail_net::error_code;
use ringtail_net::header::ApiKey;
use ringtail_net::messages::elect_leaders::{
    ElectLeadersRequest, ElectLeadersResponse, ElectionPartitionResult, ReplicaElectionResult, ELECTION_PREFERRED,
    ELECTION_UNCLEAN,
};
use ringtail_net::messages::partition_reassignments::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ListPartitionReassignmentsRequest,
    ListPartitionReassignmentsResponse, OngoingPartitionReassignment, OngoingTopicReassignment,
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use ringtail_net::messages::unregister_broker::{UnregisterBrokerRequest, UnregisterBrokerResponse};
use ringtail_net::{Reader, Writer};
use ringtail_replication::metadata::reassign::is_reassigning;
use ringtail_replication::NodeId;

use super::common::{single, Handled};
use super::topics::error_of;
use crate::broker::controller::service::submit;
use crate::broker::controller::ControllerRequest;
use crate::broker::Broker;

pub async fn alter_partition_reassignments(
    broker: &Rc<Broker>,
    body: &mut Reader,
    version: i16,
    mut w: Writer,
) -> Handled {
    let req = AlterPartitionReassignmentsRequest::decode(body, version)?;
    let partitions: Vec<(String, i32, Option<Vec<NodeId>>)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                let target = p.replicas.as_ref().map(|r| r.iter().map(|n| NodeId(*n)).collect());
                (t.name.clone(), p.partition_index, target)
            })
        })
        .collect();
    let mut resp = AlterPartitionReassignmentsResponse {
        allow_replication_factor_change: req.allow_replication_factor_change,
        ..AlterPartitionReassignmentsResponse::default()
    };
    if !partitions.is_empty() {
        let request = ControllerRequest::AlterReassignments {
            partitions,
            allow_factor_change: req.allow_replication_factor_change,
        };
        for o in submit(broker, request).await {
            let (error_code, error_message) = error_of(&o.result);
            let partition = ReassignablePartitionResponse { partition_index: o.partitions, error_code, error_message };
            match resp.responses.iter_mut().find(|t| t.name == o.name) {
                Some(topic) => topic.partitions.push(partition),
                None => resp.responses.push(ReassignableTopicResponse { name: o.name, partitions: vec![partition] }),
            }
        }
    }
    if resp.responses.iter().flat_map(|t| &t.partitions).any(|p| p.error_code != error_code::NONE) {
        broker.metrics.error(ApiKey::AlterPartitionReassignments);
    }
    resp.encode(&mut w, version);
    single(w)
}

/// The reassignments under way, all of them or those of the partitions asked for (a partition
/// not being reassigned, or not existing, is left out, as in Kafka).
pub async fn list_partition_reassignments(
    broker: &Rc<Broker>,
    body: &mut Reader,
    version: i16,
    mut w: Writer,
) -> Handled {
    let req = ListPartitionReassignmentsRequest::decode(body, version)?;
    let view = broker.view();
    let ids = |nodes: &[NodeId]| nodes.iter().map(|n| n.0).collect::<Vec<i32>>();
    let ongoing = |name: &str, indexes: Option<&[i32]>| -> Option<OngoingTopicReassignment> {
        let topic = view.image.topic(name)?;
        let partitions: Vec<OngoingPartitionReassignment> = topic
            .partitions
            .iter()
            .enumerate()
            .filter(|(i, p)| is_reassigning(p) && indexes.is_none_or(|asked| asked.contains(&(*i as i32))))
            .map(|(i, p)| OngoingPartitionReassignment {
                partition_index: i as i32,
                replicas: ids(&p.replicas),
                adding_replicas: ids(&p.adding),
                removing_replicas: ids(&p.removing),
            })
            .collect();
        (!partitions.is_empty()).then(|| OngoingTopicReassignment { name: name.to_string(), partitions })
    };
    let topics = match &req.topics {
        None => view.image.topics().filter_map(|t| ongoing(&t.name, None)).collect(),
        Some(asked) => asked.iter().filter_map(|t| ongoing(&t.name, Some(&t.partition_indexes))).collect(),
    };
    ListPartitionReassignmentsResponse { topics, ..ListPartitionReassignmentsResponse::default() }
        .encode(&mut w, version);
    single(w)
}

pub async fn elect_leaders(broker: &Rc<Broker>, body: &mut Reader, version: i16, mut w: Writer) -> Handled {
    let req = ElectLeadersRequest::decode(body, version)?;
    let mut resp = ElectLeadersResponse::default();
    let unclean = match req.election_type {
        ELECTION_PREFERRED => false,
        ELECTION_UNCLEAN => true,
        _ => {
            resp.error_code = error_code::INVALID_REQUEST;
            resp.encode(&mut w, version);
            return single(w);
        }
    };
    let partitions = req
        .topic_partitions
        .map(|ts| ts.into_iter().flat_map(|t| t.partitions.into_iter().map(move |p| (t.topic.clone(), p))).collect());
    for o in submit(broker, ControllerRequest::ElectLeaders { partitions, unclean }).await {
        let (error_code, error_message) = error_of(&o.result);
        let result = ElectionPartitionResult { partition_id: o.partitions, error_code, error_message };
        match resp.replica_election_results.iter_mut().find(|t| t.topic == o.name) {
            Some(topic) => topic.partition_result.push(result),
            None => resp
                .replica_election_results
                .push(ReplicaElectionResult { topic: o.name, partition_result: vec![result] }),
        }
    }
    resp.encode(&mut w, version);
    single(w)
}

pub async fn unregister_broker(broker: &Rc<Broker>, body: &mut Reader, version: i16, mut w: Writer) -> Handled {
    let req = UnregisterBrokerRequest::decode(body, version)?;
    let mut resp = UnregisterBrokerResponse::default();
    let request = ControllerRequest::UnregisterBroker { node: NodeId(req.broker_id) };
    match submit(broker, request).await.into_iter().next() {
        Some(o) => (resp.error_code, resp.error_message) = error_of(&o.result),
        None => {
            resp.error_code = error_code::BROKER_ID_NOT_REGISTERED;
            resp.error_message = Some(format!("broker {} is not registered", req.broker_id));
        }
    }
    if resp.error_code != error_code::NONE {
        broker.metrics.error(ApiKey::UnregisterBroker);
    }
    resp.encode(&mut w, version);
    single(w)
}
