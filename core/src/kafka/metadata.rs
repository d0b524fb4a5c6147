//! Metadata and DescribeCluster: the cluster as this node's metadata image describes it; and
//! DescribeQuorum, the controller quorum as the active controller describes it.

use std::rc::Rc;

use ringtail_net::error_code;
use ringtail_net::messages::describe_cluster::{
    DescribeClusterBroker, DescribeClusterRequest, DescribeClusterResponse,
};
use ringtail_net::messages::describe_quorum::{
    DescribeQuorumRequest, DescribeQuorumResponse, QuorumNode, QuorumPartition, QuorumTopic,
    ReplicaState as QuorumReplica,
};
use ringtail_net::messages::metadata::{
    MetadataRequest, MetadataResponse, MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use ringtail_net::{Reader, Writer};
use ringtail_replication::metadata::controller::{is_internal, validate_topic_name};
use ringtail_replication::metadata::ControllerError;
use ringtail_replication::quorum::broker_wire::{BrokerRequest, BrokerResponse};
use ringtail_replication::ShardId;

use super::common::{single, Handled};
use crate::broker::controller::service::ensure_topics;
use crate::broker::Broker;
use crate::errors;

pub async fn metadata(broker: &Rc<Broker>, body: &mut Reader, version: i16, mut w: Writer) -> Handled {
    let req = MetadataRequest::decode(body, version)?;
    let requested: Option<Vec<String>> =
        req.topics.as_ref().map(|ts| ts.iter().filter_map(|t| t.name.clone()).collect());
    let mut refused = std::collections::HashMap::new();
    if let Some(names) = &requested {
        if req.allow_auto_topic_creation {
            refused = ensure_topics(broker, names).await.into_iter().collect();
        }
    }
    let view = broker.view();
    let describe = |name: &str| -> MetadataResponseTopic {
        match view.image.topic(name) {
            Some(t) => MetadataResponseTopic {
                error_code: 0,
                name: Some(name.to_string()),
                topic_id: t.id.0,
                is_internal: is_internal(name),
                partitions: t
                    .partitions
                    .iter()
                    .enumerate()
                    .map(|(index, p)| MetadataResponsePartition {
                        error_code: match p.leader {
                            Some(_) => error_code::NONE,
                            None => error_code::LEADER_NOT_AVAILABLE,
                        },
                        partition_index: index as i32,
                        leader_id: p.leader.map_or(-1, |n| n.0),
                        leader_epoch: p.leader_epoch.0,
                        replica_nodes: p.replicas.iter().map(|n| n.0).collect(),
                        isr_nodes: p.isr.iter().map(|n| n.0).collect(),
                        offline_replicas: Vec::new(),
                    })
                    .collect(),
                topic_authorized_operations: i32::MIN,
            },
            None => MetadataResponseTopic {
                error_code: match refused.get(name) {
                    // The controller quorum cannot take the topic now: retriable, as Kafka says.
                    Some(ControllerError::Unavailable(_)) => error_code::LEADER_NOT_AVAILABLE,
                    // Auto-creation was refused for a reason the client should see (a cap).
                    Some(e) => errors::controller_error(e),
                    None if validate_topic_name(name).is_ok() => error_code::UNKNOWN_TOPIC_OR_PARTITION,
                    None => error_code::INVALID_TOPIC_EXCEPTION,
                },
                name: Some(name.to_string()),
                topic_authorized_operations: i32::MIN,
                ..MetadataResponseTopic::default()
            },
        }
    };
    let topics = match &req.topics {
        // By name, or (version 12 on, as KIP-848 consumers ask for their assignment's topics)
        // by id alone.
        Some(asked) => asked
            .iter()
            .map(|t| match &t.name {
                Some(name) => describe(name),
                None => match view.image.topic_by_id(ringtail_replication::TopicId(t.topic_id)) {
                    Some(found) => describe(&found.name),
                    None => MetadataResponseTopic {
                        error_code: error_code::UNKNOWN_TOPIC_ID,
                        name: None,
                        topic_id: t.topic_id,
                        topic_authorized_operations: i32::MIN,
                        ..MetadataResponseTopic::default()
                    },
                },
            })
            .collect(),
        None => view.image.topics().map(|t| describe(&t.name)).collect(),
    };
    let resp = MetadataResponse {
        throttle_time_ms: 0,
        brokers: view
            .live_brokers()
            .into_iter()
            .map(|b| MetadataResponseBroker { node_id: b.node.0, host: b.host, port: i32::from(b.port), rack: b.rack })
            .collect(),
        // A node that has not reached its cluster's metadata yet knows no cluster id.
        cluster_id: (!view.cluster_id.is_empty()).then(|| view.cluster_id.to_string()),
        controller_id: controller_id(&view),
        topics,
        cluster_authorized_operations: i32::MIN,
        error_code: 0,
    };
    resp.encode(&mut w, version);
    single(w)
}

pub fn describe_cluster(broker: &Rc<Broker>, body: &mut Reader, version: i16, mut w: Writer) -> Handled {
    let req = DescribeClusterRequest::decode(body, version)?;
    let view = broker.view();
    let resp = DescribeClusterResponse {
        throttle_time_ms: 0,
        error_code: 0,
        error_message: None,
        endpoint_type: req.endpoint_type,
        cluster_id: view.cluster_id.to_string(),
        controller_id: controller_id(&view),
        // Fenced brokers only when asked (v2's include_fenced_brokers), flagged, as KRaft does.
        brokers: view
            .brokers()
            .into_iter()
            .filter(|b| !b.fenced || req.include_fenced_brokers)
            .map(|b| DescribeClusterBroker {
                broker_id: b.node.0,
                host: b.host,
                port: i32::from(b.port),
                rack: b.rack,
                is_fenced: b.fenced,
            })
            .collect(),
        cluster_authorized_operations: i32::MIN,
    };
    resp.encode(&mut w, version);
    single(w)
}

/// The controller id clients are told: this broker, which forwards admin requests to the active
/// controller, if the brokers it lists include it; else the lowest live broker.
fn controller_id(view: &crate::runtime::routing::NodeView) -> i32 {
    let live = view.live_brokers();
    match live.iter().any(|b| b.node == view.node) || live.is_empty() {
        true => view.node.0,
        false => live.iter().map(|b| b.node.0).min().unwrap_or(view.node.0),
    }
}

/// The metadata quorum's topic as KRaft names it in DescribeQuorum.
const METADATA_TOPIC: &str = "__cluster_metadata";

/// DescribeQuorum: the controller quorum as the active controller sees it (asked from shard 0,
/// where the link to the controllers lives); a single node is its own one-voter quorum.
pub async fn describe_quorum(broker: &Rc<Broker>, body: &mut Reader, version: i16, mut w: Writer) -> Handled {
    let _req = DescribeQuorumRequest::decode(body, version)?;
    let state = broker
        .on_shard(ShardId(0), |b| async move {
            let link = b.controller.as_ref().and_then(|c| c.link()).cloned()?;
            match link.client.call_leader(&BrokerRequest::Describe, 3).await {
                BrokerResponse::Described(q) => Some(Ok(q)),
                BrokerResponse::Unavailable(reason) | BrokerResponse::Refused(reason) => Some(Err(reason)),
                other => Some(Err(format!("the controller answered {other:?}"))),
            }
        })
        .await
        .flatten();
    let now = ringtail_log::now_ms();
    let view = broker.view();
    let partition = match state {
        // A single node: its own quorum, its metadata log's end as the high watermark.
        None if broker.config.cluster.is_single_node() => {
            let end = view.image.applied.map_or(0, |a| a as i64 + 1);
            let me = QuorumReplica {
                replica_id: broker.node.0,
                replica_directory_id: [0; 16],
                log_end_offset: end,
                last_fetch_timestamp: now,
                last_caught_up_timestamp: now,
            };
            QuorumPartition {
                leader_id: broker.node.0,
                leader_epoch: 1,
                high_watermark: end,
                current_voters: vec![me],
                ..QuorumPartition::default()
            }
        }
        None => QuorumPartition {
            error_code: error_code::COORDINATOR_NOT_AVAILABLE,
            error_message: Some("this broker's link to the controllers is not up".into()),
            leader_id: -1,
            leader_epoch: -1,
            high_watermark: -1,
            ..QuorumPartition::default()
        },
        Some(Err(reason)) => QuorumPartition {
            error_code: error_code::NOT_LEADER_OR_FOLLOWER,
            error_message: Some(format!("no active controller answered: {reason}")),
            leader_id: -1,
            leader_epoch: -1,
            high_watermark: -1,
            ..QuorumPartition::default()
        },
        Some(Ok(q)) => {
            let replica = |r: &ringtail_replication::quorum::broker_wire::ReplicaState| {
                let heard = r.last_heard_ms.map_or(-1, |ms| now - ms as i64);
                let caught_up = match (r.log_end, q.committed) {
                    (Some(end), Some(committed)) if end >= committed => heard,
                    (_, None) => heard,
                    _ => -1,
                };
                QuorumReplica {
                    replica_id: r.id as i32,
                    replica_directory_id: [0; 16],
                    log_end_offset: r.log_end.map_or(-1, |e| e as i64 + 1),
                    last_fetch_timestamp: heard,
                    last_caught_up_timestamp: caught_up,
                }
            };
            QuorumPartition {
                leader_id: q.leader.map_or(-1, |l| l as i32),
                leader_epoch: q.term as i32,
                high_watermark: q.committed.map_or(0, |c| c as i64 + 1),
                current_voters: q.replicas.iter().filter(|r| r.voter).map(replica).collect(),
                observers: q.replicas.iter().filter(|r| !r.voter).map(replica).collect(),
                ..QuorumPartition::default()
            }
        }
    };
    let nodes = broker
        .config
        .cluster
        .voters
        .iter()
        .map(|v| QuorumNode { node_id: v.node_id, listeners: vec![("CONTROLLER".into(), v.host.clone(), v.port)] })
        .collect();
    let resp = DescribeQuorumResponse {
        error_code: 0,
        error_message: None,
        topics: vec![QuorumTopic { topic_name: METADATA_TOPIC.into(), partitions: vec![partition] }],
        nodes,
    };
    resp.encode(&mut w, version);
    single(w)
}
