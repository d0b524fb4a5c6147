//! Admin APIs that tools call beyond topics and configs: DeleteRecords, DescribeLogDirs,
//! AlterReplicaLogDirs, DescribeTopicPartitions (KIP-966, paged with a cursor),
//! DescribeProducers, DescribeClientQuotas (none exist), and the ACL APIs, which answer
//! SECURITY_DISABLED until security exists.

use std::rc::Rc;

use ringtail_net::error_code;
use ringtail_net::messages::acls::{
    AclCreationResult, CreateAclsRequest, CreateAclsResponse, DeleteAclsFilterResult, DeleteAclsRequest,
    DeleteAclsResponse, DescribeAclsRequest, DescribeAclsResponse,
};
use ringtail_net::messages::alter_replica_log_dirs::{
    AlterReplicaLogDirPartitionResult, AlterReplicaLogDirTopicResult, AlterReplicaLogDirsRequest,
    AlterReplicaLogDirsResponse,
};
use ringtail_net::messages::delete_records::{
    DeleteRecordsPartitionResult, DeleteRecordsRequest, DeleteRecordsResponse, DeleteRecordsTopicResult,
};
use ringtail_net::messages::describe_client_quotas::{DescribeClientQuotasRequest, DescribeClientQuotasResponse};
use ringtail_net::messages::describe_log_dirs::{
    DescribeLogDirsPartition, DescribeLogDirsRequest, DescribeLogDirsResponse, DescribeLogDirsResult,
    DescribeLogDirsTopic,
};
use ringtail_net::messages::describe_producers::{
    DescribeProducersPartitionResponse, DescribeProducersRequest, DescribeProducersResponse,
    DescribeProducersTopicResponse, ProducerState,
};
use ringtail_net::messages::describe_topic_partitions::{
    DescribeTopicPartitionsCursor, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse,
    DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use ringtail_net::{Reader, Writer};
use ringtail_replication::metadata::controller::is_internal;
use ringtail_replication::{PartitionId, ShardId};

use super::common::{job, scatter, single, Handled};
use crate::broker::Broker;
use crate::errors;
use crate::limits::DESCRIBE_TOPIC_PARTITIONS_MAX;
use crate::runtime::routing::Route;
use crate::runtime::table::ServeError;

const SECURITY_DISABLED_MESSAGE: &str =
    "security is not built yet: the broker has no authorizer, and every client may do everything";

pub async fn delete_records(broker: &Rc<Broker>, body: &mut Reader, version: i16, mut w: Writer) -> Handled {
    let req = DeleteRecordsRequest::decode(body, version)?;
    let mut resp = DeleteRecordsResponse { throttle_time_ms: 0, topics: Vec::new() };
    let mut items = Vec::new();
    let mut slots = Vec::new();
    for (ti, t) in req.topics.iter().enumerate() {
        let mut topic = DeleteRecordsTopicResult { name: t.name.clone(), partitions: Vec::new() };
        for (pi, p) in t.partitions.iter().enumerate() {
            let mut slot =
                DeleteRecordsPartitionResult { partition_index: p.partition_index, low_watermark: -1, error_code: 0 };
            match broker.route(&t.name, p.partition_index) {
                // Only the broker writes (and deletes in) its internal topics, as in Kafka.
                Some(_) if is_internal(&t.name) => slot.error_code = error_code::INVALID_TOPIC_EXCEPTION,
                None => slot.error_code = error_code::UNKNOWN_TOPIC_OR_PARTITION,
                Some((_, route @ (Route::Remote { .. } | Route::Offline))) => {
                    slot.error_code = errors::not_local(&route)
                }
                Some((partition, Route::Local(owner))) => {
                    slots.push((ti, pi));
                    items.push((owner, (partition, p.offset)));
                }
            }
            topic.partitions.push(slot);
        }
        resp.topics.push(topic);
    }
    let results = scatter(broker, items, Err(ServeError::ShardStopped), |items, reply| {
        job(reply, move |b| async move { b.delete_records_local(items).await })
    })
    .await;
    for ((ti, pi), r) in slots.into_iter().zip(results) {
        let slot = &mut resp.topics[ti].partitions[pi];
        match r {
            Ok(low_watermark) => slot.low_watermark = low_watermark as i64,
            Err(e) => slot.error_code = errors::serve_error(&e),
        }
    }
    resp.encode(&mut w, version);
    single(w)
}

/// The size of every replica on this node, from each shard.
async fn replica_sizes(broker: &Rc<Broker>) -> Vec<(PartitionId, u64)> {
    let mut sizes = Vec::new();
    for shard in (0..broker.config.shards).map(ShardId) {
        let (tx, rx) = flume::bounded(1);
        broker.send(shard, job(tx, |b| async move { b.replica_sizes_local() })).await;
        if let Ok(found) = rx.recv_async().await {
            sizes.extend(found);
        }
    }
    sizes
}

pub async fn describe_log_dirs(broker: &Rc<Broker>, body: &mut Reader, version: i16, mut w: Writer) -> Handled {
    let req = DescribeLogDirsRequest::decode(body, version)?;
    let view = broker.view();
    let mut sizes = replica_sizes(broker).await;
    sizes.sort_unstable_by_key(|(id, _)| (view.image.topic_by_id(id.topic).map(|t| t.name.clone()), id.index));
    let mut topics: Vec<DescribeLogDirsTopic> = Vec::new();
    for (id, size) in sizes {
        let Some(topic) = view.image.topic_by_id(id.topic) else { continue };
        let asked = req.topics.as_ref().is_none_or(|asked| {
            asked.iter().any(|t| t.topic == topic.name.as_ref() && t.partitions.contains(&id.index))
        });
        if !asked {
            continue;
        }
        let partition = DescribeLogDirsPartition {
            partition_index: id.index,
            partition_size: size as i64,
            offset_lag: 0,
            is_future_key: false,
        };
        match topics.last_mut() {
            Some(t) if t.name == topic.name.as_ref() => t.partitions.push(partition),
            _ => topics.push(DescribeLogDirsTopic { name: topic.name.to_string(), partitions: vec![partition] }),
        }
    }
    let space = broker.flusher.space();
    let result = DescribeLogDirsResult {
        error_code: 0,
        log_dir: broker.config.data_dir.display().to_string(),
        topics,
        total_bytes: space.total_bytes() as i64,
        usable_bytes: space.free_bytes() as i64,
    };
    DescribeLogDirsResponse { throttle_time_ms: 0, error_code: 0, results: vec![result] }.encode(&mut w, version);
    single(w)
}

/// With one log directory there is nowhere to move a replica: asking for the directory it is
/// in already succeeds, any other is not found.
pub fn alter_replica_log_dirs(broker: &Rc<Broker>, body: &mut Reader, version: i16, mut w: Writer) -> Handled {
    let req = AlterReplicaLogDirsRequest::decode(body, version)?;
    let data_dir = broker.config.data_dir.display().to_string();
    let mut results: Vec<AlterReplicaLogDirTopicResult> = Vec::new();
    for dir in &req.dirs {
        let known = std::path::Path::new(&dir.path) == broker.config.data_dir;
        for t in &dir.topics {
            let partitions = t
                .partitions
                .iter()
                .map(|&index| AlterReplicaLogDirPartitionResult {
                    partition_index: index,
                    error_code: match broker.route(&t.name, index) {
                        None => error_code::UNKNOWN_TOPIC_OR_PARTITION,
                        Some(_) if known => error_code::NONE,
                        Some(_) => error_code::LOG_DIR_NOT_FOUND,
                    },
                })
                .collect();
            results.push(AlterReplicaLogDirTopicResult { topic_name: t.name.clone(), partitions });
        }
    }
    if !results.is_empty() {
        tracing::debug!(%data_dir, "AlterReplicaLogDirs: one log directory, nothing to move");
    }
    AlterReplicaLogDirsResponse { throttle_time_ms: 0, results }.encode(&mut w, version);
    single(w)
}

/// DescribeTopicPartitions (KIP-966): topics in name order from the cursor, at most
/// `response_partition_limit` partitions (and the broker's cap) per response; `next_cursor`
/// says where the next page starts.
pub fn describe_topic_partitions(broker: &Rc<Broker>, body: &mut Reader, version: i16, mut w: Writer) -> Handled {
    let req = DescribeTopicPartitionsRequest::decode(body, version)?;
    let view = broker.view();
    let mut names: Vec<String> = if req.topics.is_empty() {
        view.image.topics().map(|t| t.name.to_string()).collect()
    } else {
        req.topics.clone()
    };
    names.sort_unstable();
    names.dedup();
    let limit = usize::try_from(req.response_partition_limit).unwrap_or(0).clamp(1, DESCRIBE_TOPIC_PARTITIONS_MAX);
    let (start_topic, start_index) = match &req.cursor {
        Some(c) => (c.topic_name.clone(), usize::try_from(c.partition_index).unwrap_or(0)),
        None => (String::new(), 0),
    };
    let mut resp = DescribeTopicPartitionsResponse { throttle_time_ms: 0, topics: Vec::new(), next_cursor: None };
    let mut left = limit;
    for name in names.iter().filter(|n| **n >= start_topic) {
        let Some(topic) = view.image.topic(name) else {
            resp.topics.push(DescribeTopicPartitionsResponseTopic {
                error_code: error_code::UNKNOWN_TOPIC_OR_PARTITION,
                name: Some(name.clone()),
                topic_authorized_operations: i32::MIN,
                ..DescribeTopicPartitionsResponseTopic::default()
            });
            continue;
        };
        let first = if *name == start_topic { start_index } else { 0 };
        if left == 0 {
            resp.next_cursor =
                Some(DescribeTopicPartitionsCursor { topic_name: name.clone(), partition_index: first as i32 });
            break;
        }
        let end = topic.partitions.len().min(first + left);
        let partitions = topic.partitions[first.min(end)..end]
            .iter()
            .enumerate()
            .map(|(i, p)| DescribeTopicPartitionsResponsePartition {
                error_code: if p.leader.is_some() { error_code::NONE } else { error_code::LEADER_NOT_AVAILABLE },
                partition_index: (first + i) as i32,
                leader_id: p.leader.map_or(-1, |n| n.0),
                leader_epoch: p.leader_epoch.0,
                replica_nodes: p.replicas.iter().map(|n| n.0).collect(),
                isr_nodes: p.isr.iter().map(|n| n.0).collect(),
                eligible_leader_replicas: Some(Vec::new()),
                last_known_elr: Some(Vec::new()),
                offline_replicas: Vec::new(),
            })
            .collect::<Vec<_>>();
        left -= partitions.len();
        resp.topics.push(DescribeTopicPartitionsResponseTopic {
            error_code: error_code::NONE,
            name: Some(name.clone()),
            topic_id: topic.id.0,
            is_internal: is_internal(name),
            partitions,
            topic_authorized_operations: i32::MIN,
        });
        if end < topic.partitions.len() {
            resp.next_cursor =
                Some(DescribeTopicPartitionsCursor { topic_name: name.clone(), partition_index: end as i32 });
            break;
        }
    }
    resp.encode(&mut w, version);
    single(w)
}

pub async fn describe_producers(broker: &Rc<Broker>, body: &mut Reader, version: i16, mut w: Writer) -> Handled {
    let req = DescribeProducersRequest::decode(body, version)?;
    let mut resp = DescribeProducersResponse { throttle_time_ms: 0, topics: Vec::new() };
    let mut items = Vec::new();
    let mut slots = Vec::new();
    for (ti, t) in req.topics.iter().enumerate() {
        let mut topic = DescribeProducersTopicResponse { name: t.name.clone(), partitions: Vec::new() };
        for (pi, &index) in t.partition_indexes.iter().enumerate() {
            let mut slot = DescribeProducersPartitionResponse { partition_index: index, ..Default::default() };
            match broker.route(&t.name, index) {
                None => slot.error_code = error_code::UNKNOWN_TOPIC_OR_PARTITION,
                Some((_, route @ (Route::Remote { .. } | Route::Offline))) => {
                    slot.error_code = errors::not_local(&route)
                }
                Some((partition, Route::Local(owner))) => {
                    slots.push((ti, pi));
                    items.push((owner, partition));
                }
            }
            topic.partitions.push(slot);
        }
        resp.topics.push(topic);
    }
    let results = scatter(broker, items, Err(ServeError::ShardStopped), |items, reply| {
        job(reply, move |b| async move { b.producers_local(items) })
    })
    .await;
    for ((ti, pi), r) in slots.into_iter().zip(results) {
        let slot = &mut resp.topics[ti].partitions[pi];
        match r {
            Ok(producers) => {
                slot.active_producers = producers
                    .into_iter()
                    .map(|p| ProducerState {
                        producer_id: p.producer_id,
                        producer_epoch: i32::from(p.epoch),
                        last_sequence: p.last_sequence,
                        last_timestamp: p.last_timestamp,
                        coordinator_epoch: -1,
                        current_txn_start_offset: -1,
                    })
                    .collect()
            }
            Err(e) => {
                slot.error_code = errors::serve_error(&e);
                slot.error_message = Some(e.to_string());
            }
        }
    }
    resp.encode(&mut w, version);
    single(w)
}

/// No client quotas exist yet: every valid query matches nothing.
pub fn describe_client_quotas(body: &mut Reader, version: i16, mut w: Writer) -> Handled {
    let req = DescribeClientQuotasRequest::decode(body, version)?;
    let mut resp = DescribeClientQuotasResponse {
        throttle_time_ms: 0,
        error_code: 0,
        error_message: None,
        entries: Some(Vec::new()),
    };
    if let Some(c) = req.components.iter().find(|c| !(0..=2).contains(&c.match_type)) {
        resp.error_code = error_code::INVALID_REQUEST;
        resp.error_message =
            Some(format!("match type {} of `{}`: use 0 (exact), 1 (default) or 2 (any)", c.match_type, c.entity_type));
        resp.entries = None;
    }
    resp.encode(&mut w, version);
    single(w)
}

pub fn describe_acls(body: &mut Reader, version: i16, mut w: Writer) -> Handled {
    DescribeAclsRequest::decode(body, version)?;
    DescribeAclsResponse {
        throttle_time_ms: 0,
        error_code: error_code::SECURITY_DISABLED,
        error_message: Some(SECURITY_DISABLED_MESSAGE.into()),
        resources: Vec::new(),
    }
    .encode(&mut w, version);
    single(w)
}

pub fn create_acls(body: &mut Reader, version: i16, mut w: Writer) -> Handled {
    let req = CreateAclsRequest::decode(body, version)?;
    let results = req
        .creations
        .iter()
        .map(|_| AclCreationResult {
            error_code: error_code::SECURITY_DISABLED,
            error_message: Some(SECURITY_DISABLED_MESSAGE.into()),
        })
        .collect();
    CreateAclsResponse { throttle_time_ms: 0, results }.encode(&mut w, version);
    single(w)
}

pub fn delete_acls(body: &mut Reader, version: i16, mut w: Writer) -> Handled {
    let req = DeleteAclsRequest::decode(body, version)?;
    let filter_results = req
        .filters
        .iter()
        .map(|_| DeleteAclsFilterResult {
            error_code: error_code::SECURITY_DISABLED,
            error_message: Some(SECURITY_DISABLED_MESSAGE.into()),
            matching_acls: Vec::new(),
        })
        .collect();
    DeleteAclsResponse { throttle_time_ms: 0, filter_results }.encode(&mut w, version);
    single(w)
}
