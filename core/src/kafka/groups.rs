//! Request handlers of the group APIs: decode on the connection's broker, run on the group's
//! coordinator broker, encode the answer. FindCoordinator lives here too.

use std::future::Future;
use std::rc::Rc;

use ringtail_net::error_code;
use ringtail_net::messages::delete_groups::{DeletableGroupResult, DeleteGroupsRequest, DeleteGroupsResponse};
use ringtail_net::messages::describe_groups::{
    DescribeGroupsRequest, DescribeGroupsResponse, DescribedGroup, DescribedGroupMember,
};
use ringtail_net::messages::find_coordinator::{Coordinator, FindCoordinatorRequest, FindCoordinatorResponse};
use ringtail_net::messages::heartbeat::{HeartbeatRequest, HeartbeatResponse};
use ringtail_net::messages::join_group::{JoinGroupRequest, JoinGroupResponse};
use ringtail_net::messages::leave_group::{LeaveGroupRequest, LeaveGroupResponse, MemberResponse};
use ringtail_net::messages::list_groups::{ListGroupsRequest, ListGroupsResponse, ListedGroup};
use ringtail_net::messages::offset_commit::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use ringtail_net::messages::offset_delete::{
    OffsetDeleteRequest, OffsetDeleteResponse, OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use ringtail_net::messages::offset_fetch::{
    OffsetFetchRequest, OffsetFetchResponse, OffsetFetchResponseGroup, OffsetFetchResponsePartition,
    OffsetFetchResponseTopic,
};
use ringtail_net::messages::sync_group::{SyncGroupRequest, SyncGroupResponse};
use ringtail_net::{Reader, Writer};

use ringtail_replication::ShardId;

use super::common::{single, Handled};
use crate::broker::controller::{service, ControllerRequest};
use crate::broker::group::error::GroupError;
use crate::broker::group::records::partition_for;
use crate::broker::group::state::{JoinRequest, JoinResponse, SyncRequest, SyncResponse};
use crate::broker::group::{coordinator_of, OffsetToCommit, OFFSETS_TOPIC};
use crate::broker::Broker;
use crate::errors;
use crate::runtime::routing::Route;
use ringtail_replication::metadata::{ControllerError, NewTopic};

/// Who sent a request, as group members are described.
pub struct Client<'a> {
    pub client_id: &'a str,
    /// Kafka's form: `/` and the peer's IP address.
    pub host: &'a str,
}

/// The wire code of a coordinator's answer: NONE when there is no error.
fn code(error: Option<&GroupError>) -> i16 {
    error.map_or(error_code::NONE, errors::group_error)
}

/// The code of a group whose coordinator cannot be reached.
fn unavailable() -> i16 {
    errors::group_error(&GroupError::CoordinatorNotAvailable)
}

/// Runs `job` on the coordinator shard of `group_id` once the group's partition is loaded
/// there: COORDINATOR_NOT_AVAILABLE if there is none (no `__consumer_offsets`, its partition not
/// led here, or the shard stopped), COORDINATOR_LOAD_IN_PROGRESS while a new leader of the
/// partition replays it.
pub(super) async fn on_coordinator<R, F, Fut>(broker: &Rc<Broker>, group_id: &str, job: F) -> Result<R, GroupError>
where
    R: Send + 'static,
    F: FnOnce(Rc<Broker>) -> Fut + Send + 'static,
    Fut: Future<Output = R> + 'static,
{
    let (owner, partition) = coordinator_of(&broker.shard, group_id).ok_or(GroupError::CoordinatorNotAvailable)?;
    let answer = broker
        .on_shard(owner, move |s| async move {
            match s.coordinator.check_loaded(partition) {
                Ok(()) => Ok(job(s).await),
                Err(e) => Err(e),
            }
        })
        .await;
    answer.unwrap_or(Err(GroupError::CoordinatorNotAvailable))
}

/// FindCoordinator: a group's coordinator is the leader of its `__consumer_offsets`
/// partition, this broker or another. In a cluster the topic is created at the first request
/// (as Kafka does), over the brokers registered by then.
pub async fn find_coordinator(broker: &Rc<Broker>, body: &mut Reader, version: i16, mut w: Writer) -> Handled {
    let req = FindCoordinatorRequest::decode(body, version)?;
    let in_cluster = !broker.config.cluster.is_single_node();
    if req.key_type == 0 && in_cluster && offsets_topic_wanting(broker) {
        ensure_offsets_topic(broker).await;
    }
    let view = broker.view();
    let coordinators = req
        .coordinator_keys
        .into_iter()
        .map(|key| {
            let found: Result<(i32, String, i32), String> = match req.key_type {
                0 => match view.image.topic(OFFSETS_TOPIC) {
                    None => Err(format!("{OFFSETS_TOPIC} does not exist yet")),
                    Some(topic) => {
                        let partition = partition_for(&key, topic.partitions.len());
                        match view.route(OFFSETS_TOPIC, partition).map(|(_, r)| r) {
                            Some(Route::Local(_)) => Ok((
                                broker.config.node_id,
                                broker.config.advertised_host.clone(),
                                i32::from(broker.config.advertised_port),
                            )),
                            Some(Route::Remote { leader, .. }) => match view.endpoint(leader) {
                                Some(e) => Ok((leader.0, e.host, i32::from(e.port))),
                                None => Err(format!("broker {leader} leads the group's partition but has no listener")),
                            },
                            _ => Err(format!("partition {partition} of {OFFSETS_TOPIC} has no leader now")),
                        }
                    }
                },
                1 => Err("transactions are not supported by this broker yet".into()),
                other => Err(format!("key type {other} is neither 0 (group) nor 1 (transaction)")),
            };
            match found {
                Ok((node_id, host, port)) => {
                    Coordinator { key, node_id, host, port, error_code: error_code::NONE, error_message: None }
                }
                Err(message) => Coordinator {
                    key,
                    node_id: -1,
                    host: String::new(),
                    port: -1,
                    error_code: unavailable(),
                    error_message: Some(message),
                },
            }
        })
        .collect();
    FindCoordinatorResponse { throttle_time_ms: 0, coordinators }.encode(&mut w, version);
    single(w)
}

/// Whether `__consumer_offsets` is missing, or has partitions with fewer replicas than
/// `offsets.topic.replication.factor` (created by a single node, or under a lower setting).
fn offsets_topic_wanting(broker: &Broker) -> bool {
    let factor = broker.config.cluster.offsets_topic_replication_factor as usize;
    match broker.view().image.topic(OFFSETS_TOPIC) {
        None => true,
        Some(topic) => topic.partitions.iter().any(|p| p.replicas.len() < factor),
    }
}

/// Creates `__consumer_offsets` in a cluster if it is missing (another broker may be creating it
/// at the same time: one of them wins), or raises its replication factor to
/// `offsets.topic.replication.factor`, once that many brokers are live: the new replicas catch
/// up and join the ISR, the groups' coordinators stay where they are.
async fn ensure_offsets_topic(broker: &Rc<Broker>) {
    // Its partitions stay where they are first placed: wait until the cluster's brokers are
    // there (as many as the voters, or every registered one and a majority of the voters).
    let view = broker.view();
    let voters = broker.config.cluster.voters.len();
    let registered = view.image.brokers().len();
    let unfenced = view.live_brokers().len();
    // Like Kafka, never with fewer replicas than offsets.topic.replication.factor: until that
    // many brokers are live, coordinators answer COORDINATOR_NOT_AVAILABLE.
    let factor = broker.config.cluster.offsets_topic_replication_factor;
    let spread = unfenced >= voters || (unfenced == registered && unfenced > voters / 2);
    if unfenced < factor as usize || !spread {
        tracing::debug!(unfenced, registered, voters, factor, "{OFFSETS_TOPIC} waits for more brokers");
        return;
    }
    if view.image.topic(OFFSETS_TOPIC).is_some() {
        let request = ControllerRequest::RaiseReplicationFactor { topic: OFFSETS_TOPIC.to_string(), factor };
        for o in service::submit(broker, request).await {
            match o.result {
                Ok(()) if o.partitions > 0 => {
                    tracing::info!(
                        partitions = o.partitions,
                        factor,
                        "raised the replication factor of {OFFSETS_TOPIC}"
                    )
                }
                Ok(()) => {}
                Err(e) => tracing::info!(error = %e, "the replication factor of {OFFSETS_TOPIC} cannot be raised yet"),
            }
        }
        return;
    }
    let topic = NewTopic {
        name: OFFSETS_TOPIC.to_string(),
        partitions: broker.config.offsets_topic_partitions,
        replication_factor: factor,
        configs: crate::broker::group::offsets_topic_configs().into_iter().map(|(k, v)| (k, Some(v))).collect(),
        assignments: Vec::new(),
    };
    let request = ControllerRequest::CreateTopics { topics: vec![topic], validate_only: false };
    for o in service::submit(broker, request).await {
        match o.result {
            Ok(()) => tracing::info!(partitions = o.partitions, "created {OFFSETS_TOPIC}"),
            Err(ControllerError::TopicExists(_)) => {}
            Err(e) => tracing::info!(error = %e, "{OFFSETS_TOPIC} cannot be created yet"),
        }
    }
}

pub async fn join_group(
    broker: &Rc<Broker>,
    body: &mut Reader,
    version: i16,
    mut w: Writer,
    client: &Client<'_>,
) -> Handled {
    let req = JoinGroupRequest::decode(body, version)?;
    let group_id = req.group_id.clone();
    let join = JoinRequest {
        group_id: req.group_id,
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        member_id: req.member_id.clone(),
        group_instance_id: req.group_instance_id,
        protocol_type: req.protocol_type,
        protocols: req.protocols.into_iter().map(|p| (p.name, p.metadata)).collect(),
        client_id: client.client_id.to_string(),
        client_host: client.host.to_string(),
        member_id_required: version >= 4,
    };
    let answer =
        on_coordinator(broker, &group_id, move |s| async move { s.coordinator.join(join).await }).await.unwrap_or_else(
            |e| JoinResponse { error: Some(e), generation_id: -1, member_id: req.member_id, ..JoinResponse::default() },
        );
    JoinGroupResponse {
        throttle_time_ms: 0,
        error_code: code(answer.error.as_ref()),
        generation_id: answer.generation_id,
        protocol_type: answer.protocol_type,
        protocol_name: answer.protocol_name,
        leader: answer.leader,
        skip_assignment: answer.skip_assignment,
        member_id: answer.member_id,
        members: answer.members,
    }
    .encode(&mut w, version);
    single(w)
}

pub async fn sync_group(broker: &Rc<Broker>, body: &mut Reader, version: i16, mut w: Writer) -> Handled {
    let req = SyncGroupRequest::decode(body, version)?;
    let group_id = req.group_id.clone();
    let sync = SyncRequest {
        group_id: req.group_id,
        generation_id: req.generation_id,
        member_id: req.member_id,
        group_instance_id: req.group_instance_id,
        protocol_type: req.protocol_type,
        protocol_name: req.protocol_name,
        assignments: req.assignments.into_iter().map(|a| (a.member_id, a.assignment)).collect(),
    };
    let answer = on_coordinator(broker, &group_id, move |s| async move { s.coordinator.sync(sync).await }).await;
    let answer = answer.unwrap_or_else(|e| SyncResponse { error: Some(e), ..SyncResponse::default() });
    SyncGroupResponse {
        throttle_time_ms: 0,
        error_code: code(answer.error.as_ref()),
        protocol_type: answer.protocol_type,
        protocol_name: answer.protocol_name,
        assignment: answer.assignment,
    }
    .encode(&mut w, version);
    single(w)
}

pub async fn heartbeat(broker: &Rc<Broker>, body: &mut Reader, version: i16, mut w: Writer) -> Handled {
    let req = HeartbeatRequest::decode(body, version)?;
    let group_id = req.group_id.clone();
    let result = on_coordinator(broker, &group_id, move |s| async move {
        s.coordinator.heartbeat(&req.group_id, &req.member_id, req.group_instance_id.as_deref(), req.generation_id)
    })
    .await
    .unwrap_or_else(Err);
    HeartbeatResponse { throttle_time_ms: 0, error_code: code(result.as_ref().err()) }.encode(&mut w, version);
    single(w)
}

pub async fn leave_group(broker: &Rc<Broker>, body: &mut Reader, version: i16, mut w: Writer) -> Handled {
    let req = LeaveGroupRequest::decode(body, version)?;
    let leaving: Vec<(String, Option<String>)> =
        req.members.iter().map(|m| (m.member_id.clone(), m.group_instance_id.clone())).collect();
    let group_id = req.group_id.clone();
    let count = leaving.len();
    let results =
        on_coordinator(broker, &req.group_id, move |s| async move { s.coordinator.leave(&group_id, &leaving) })
            .await
            .map_err(|e| vec![Err(e); count]);
    let (results, group_error) = match results {
        Ok(results) => (results, error_code::NONE),
        Err(results) => {
            let code = code(results[0].as_ref().err());
            (results, code)
        }
    };
    LeaveGroupResponse {
        throttle_time_ms: 0,
        error_code: group_error,
        members: req
            .members
            .into_iter()
            .zip(results)
            .map(|(m, result)| MemberResponse {
                member_id: m.member_id,
                group_instance_id: m.group_instance_id,
                error_code: code(result.as_ref().err()),
            })
            .collect(),
    }
    .encode(&mut w, version);
    single(w)
}

pub async fn offset_commit(broker: &Rc<Broker>, body: &mut Reader, version: i16, mut w: Writer) -> Handled {
    let req = OffsetCommitRequest::decode(body, version)?;
    let mut resp = OffsetCommitResponse { throttle_time_ms: 0, topics: Vec::new() };
    let mut offsets = Vec::new();
    let mut slots = Vec::new();
    for (ti, t) in req.topics.iter().enumerate() {
        let mut topic = OffsetCommitResponseTopic { name: t.name.clone(), partitions: Vec::new() };
        for (pi, p) in t.partitions.iter().enumerate() {
            let known = broker.route(&t.name, p.partition_index).is_some();
            topic.partitions.push(OffsetCommitResponsePartition {
                partition_index: p.partition_index,
                error_code: if known { error_code::NONE } else { error_code::UNKNOWN_TOPIC_OR_PARTITION },
            });
            if known {
                slots.push((ti, pi));
                offsets.push(OffsetToCommit {
                    topic: t.name.clone(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata: p.committed_metadata.clone(),
                });
            }
        }
        resp.topics.push(topic);
    }
    if !offsets.is_empty() {
        let count = offsets.len();
        let group_id = req.group_id.clone();
        let results = on_coordinator(broker, &group_id, move |s| async move {
            s.coordinator
                .commit(
                    &req.group_id,
                    req.generation_id_or_member_epoch,
                    &req.member_id,
                    req.group_instance_id.as_deref(),
                    offsets,
                )
                .await
        })
        .await
        .unwrap_or_else(|e| vec![Err(e); count]);
        for ((ti, pi), result) in slots.into_iter().zip(results) {
            resp.topics[ti].partitions[pi].error_code = code(result.as_ref().err());
        }
    }
    resp.encode(&mut w, version);
    single(w)
}

pub async fn offset_fetch(broker: &Rc<Broker>, body: &mut Reader, version: i16, mut w: Writer) -> Handled {
    let req = OffsetFetchRequest::decode(body, version)?;
    let mut groups = Vec::with_capacity(req.groups.len());
    for g in req.groups {
        let wanted: Option<Vec<(String, Vec<i32>)>> =
            g.topics.as_ref().map(|ts| ts.iter().map(|t| (t.name.clone(), t.partition_indexes.clone())).collect());
        let group_id = g.group_id.clone();
        let member = g.member_id.clone().map(|id| (id, g.member_epoch));
        let fetched = on_coordinator(broker, &g.group_id, move |s| async move {
            s.coordinator.fetch_offsets(&group_id, wanted, member)
        })
        .await
        .and_then(|r| r);
        let mut group =
            OffsetFetchResponseGroup { group_id: g.group_id, topics: Vec::new(), error_code: error_code::NONE };
        match fetched {
            Ok(offsets) => {
                for o in offsets {
                    if group.topics.last().is_none_or(|t: &OffsetFetchResponseTopic| t.name != o.topic) {
                        group.topics.push(OffsetFetchResponseTopic { name: o.topic.clone(), partitions: Vec::new() });
                    }
                    let topic = group.topics.last_mut().expect("pushed above");
                    topic.partitions.push(OffsetFetchResponsePartition {
                        partition_index: o.partition,
                        committed_offset: o.offset,
                        committed_leader_epoch: o.leader_epoch,
                        metadata: Some(o.metadata),
                        error_code: error_code::NONE,
                    });
                }
            }
            Err(e) if version <= 1 => {
                // v0-1 have no group error: Kafka puts it on each partition asked for.
                for t in g.topics.unwrap_or_default() {
                    group.topics.push(OffsetFetchResponseTopic {
                        name: t.name,
                        partitions: t
                            .partition_indexes
                            .into_iter()
                            .map(|p| OffsetFetchResponsePartition {
                                partition_index: p,
                                committed_offset: -1,
                                committed_leader_epoch: -1,
                                metadata: Some(String::new()),
                                error_code: errors::group_error(&e),
                            })
                            .collect(),
                    });
                }
            }
            Err(e) => group.error_code = errors::group_error(&e),
        }
        groups.push(group);
    }
    OffsetFetchResponse { throttle_time_ms: 0, groups }.encode(&mut w, version);
    single(w)
}

pub async fn offset_delete(broker: &Rc<Broker>, body: &mut Reader, version: i16, mut w: Writer) -> Handled {
    let req = OffsetDeleteRequest::decode(body, version)?;
    let mut resp = OffsetDeleteResponse { error_code: 0, throttle_time_ms: 0, topics: Vec::new() };
    let mut partitions = Vec::new();
    let mut slots = Vec::new();
    for (ti, t) in req.topics.iter().enumerate() {
        let mut topic = OffsetDeleteResponseTopic { name: t.name.clone(), partitions: Vec::new() };
        for (pi, p) in t.partitions.iter().enumerate() {
            let known = broker.route(&t.name, p.partition_index).is_some();
            topic.partitions.push(OffsetDeleteResponsePartition {
                partition_index: p.partition_index,
                error_code: if known { error_code::NONE } else { error_code::UNKNOWN_TOPIC_OR_PARTITION },
            });
            if known {
                slots.push((ti, pi));
                partitions.push((t.name.clone(), p.partition_index));
            }
        }
        resp.topics.push(topic);
    }
    let group_id = req.group_id.clone();
    let result = on_coordinator(broker, &group_id, move |s| async move {
        s.coordinator.delete_offsets(&req.group_id, partitions).await
    })
    .await
    .unwrap_or_else(Err);
    match result {
        Ok(results) => {
            for ((ti, pi), result) in slots.into_iter().zip(results) {
                resp.topics[ti].partitions[pi].error_code = code(result.as_ref().err());
            }
        }
        Err(e) => {
            resp.error_code = errors::group_error(&e);
            resp.topics.clear();
        }
    }
    resp.encode(&mut w, version);
    single(w)
}

pub async fn describe_groups(broker: &Rc<Broker>, body: &mut Reader, version: i16, mut w: Writer) -> Handled {
    let req = DescribeGroupsRequest::decode(body, version)?;
    let mut groups = Vec::with_capacity(req.groups.len());
    for group_id in req.groups {
        let id = group_id.clone();
        let summary = on_coordinator(broker, &group_id, move |s| async move { s.coordinator.describe(&id) }).await;
        let described = match summary {
            Ok(s) => DescribedGroup {
                error_code: error_code::NONE,
                error_message: None,
                group_id,
                group_state: s.state,
                protocol_type: s.protocol_type,
                protocol_data: s.protocol,
                members: s
                    .members
                    .into_iter()
                    .map(|m| DescribedGroupMember {
                        member_id: m.member_id,
                        group_instance_id: m.group_instance_id,
                        client_id: m.client_id,
                        client_host: m.client_host,
                        member_metadata: m.metadata,
                        member_assignment: m.assignment,
                    })
                    .collect(),
                authorized_operations: i32::MIN,
            },
            Err(e) => DescribedGroup {
                error_code: errors::group_error(&e),
                error_message: Some(e.to_string()),
                group_id,
                authorized_operations: i32::MIN,
                ..DescribedGroup::default()
            },
        };
        groups.push(described);
    }
    DescribeGroupsResponse { throttle_time_ms: 0, groups }.encode(&mut w, version);
    single(w)
}

pub async fn list_groups(broker: &Rc<Broker>, body: &mut Reader, version: i16, mut w: Writer) -> Handled {
    let req = ListGroupsRequest::decode(body, version)?;
    let states: Vec<String> = req.states_filter.iter().map(|s| s.to_ascii_lowercase()).collect();
    let types: Vec<String> = req.types_filter.iter().map(|t| t.to_ascii_lowercase()).collect();
    let mut groups = Vec::new();
    for s in (0..broker.config.shards).map(ShardId) {
        let listed = broker.on_shard(s, |s| async move { s.coordinator.list() }).await.unwrap_or_default();
        for (group_id, state, protocol_type, group_type) in listed {
            if (!types.is_empty() && !types.iter().any(|t| t == group_type))
                || (!states.is_empty() && !states.contains(&state.to_ascii_lowercase()))
            {
                continue;
            }
            groups.push(ListedGroup {
                group_id,
                protocol_type,
                group_state: state,
                group_type: group_type.to_string(),
            });
        }
    }
    groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    ListGroupsResponse { throttle_time_ms: 0, error_code: error_code::NONE, groups }.encode(&mut w, version);
    single(w)
}

pub async fn delete_groups(broker: &Rc<Broker>, body: &mut Reader, version: i16, mut w: Writer) -> Handled {
    let req = DeleteGroupsRequest::decode(body, version)?;
    let mut results = Vec::with_capacity(req.groups_names.len());
    for group_id in req.groups_names {
        let id = group_id.clone();
        let result = on_coordinator(broker, &group_id, move |s| async move { s.coordinator.delete_group(&id).await })
            .await
            .unwrap_or_else(Err);
        results.push(DeletableGroupResult { group_id, error_code: code(result.as_ref().err()) });
    }
    DeleteGroupsResponse { throttle_time_ms: 0, results }.encode(&mut w, version);
    single(w)
}
