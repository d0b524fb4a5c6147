//! Request handlers: decode a request frame, do the work (on this shard or on the owner shards
//! of the partitions it names), and encode the response as chunks to send in order.

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use ringtail_net::error_code;
use ringtail_net::header::{decode_frame, write_response_header, ApiKey};
use ringtail_net::messages::api_versions::{ApiVersionsRequest, ApiVersionsResponse};
use ringtail_net::messages::create_partitions::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreatePartitionsTopicResult,
};
use ringtail_net::messages::create_topics::{CreatableTopicResult, CreateTopicsRequest, CreateTopicsResponse};
use ringtail_net::messages::delete_topics::{DeletableTopicResult, DeleteTopicsRequest, DeleteTopicsResponse};
use ringtail_net::messages::describe_cluster::{
    DescribeClusterBroker, DescribeClusterRequest, DescribeClusterResponse,
};
use ringtail_net::messages::describe_configs::{
    DescribeConfigsRequest, DescribeConfigsResourceResult, DescribeConfigsResponse, DescribeConfigsResult,
};
use ringtail_net::messages::fetch::{FetchPartitionResponse, FetchRequest, FetchResponse, FetchTopicResponse};
use ringtail_net::messages::init_producer_id::{InitProducerIdRequest, InitProducerIdResponse};
use ringtail_net::messages::list_offsets::{
    ListOffsetsPartitionResponse, ListOffsetsRequest, ListOffsetsResponse, ListOffsetsTopicResponse,
};
use ringtail_net::messages::metadata::{
    MetadataRequest, MetadataResponse, MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use ringtail_net::messages::produce::{
    ProducePartitionResponse, ProduceRequest, ProduceResponse, ProduceTopicResponse,
};
use ringtail_net::{DecodeError, Reader, Writer};

use crate::admin::{self, AdminRequest, NewTopic};
use crate::group;
use crate::metadata::validate_topic_name;
use crate::shard::{FetchItem, FetchResult, OffsetsResult, ProduceItem, ProduceResult, Shard, ShardMsg};

use crate::limits::FETCH_WAIT_MS_MAX;

/// What to do after a request.
pub enum Outcome {
    Respond(Vec<Bytes>),
    /// Produce with acks=0 gets no response.
    Silent,
    /// The request cannot be answered in Kafka's terms; close the connection.
    Close(String),
}

/// `client_host` is the peer's address in Kafka's form (`/127.0.0.1`).
pub async fn handle_request(shard: &Rc<Shard>, frame: Bytes, client_host: &str) -> Outcome {
    let frame_bytes = frame.len();
    let (header, mut body) = match decode_frame(frame) {
        Ok(x) => x,
        Err(e) => return Outcome::Close(format!("unreadable request header: {e}")),
    };
    let Some(key) = ApiKey::from_i16(header.api_key) else {
        return Outcome::Close(format!("unknown API key {}", header.api_key));
    };
    let version = header.api_version;
    if !key.supports(version) {
        if key == ApiKey::ApiVersions {
            // Kafka's rule: answer in v0 with UNSUPPORTED_VERSION and the versions we do speak.
            let mut w = Writer::new();
            write_response_header(&mut w, key, 0, header.correlation_id);
            ApiVersionsResponse::supported(error_code::UNSUPPORTED_VERSION).encode(&mut w, 0);
            return Outcome::Respond(vec![w.buf.freeze()]);
        }
        let (lo, hi) = key.versions();
        return Outcome::Close(format!("{key:?} v{version} is not supported (v{lo} to v{hi} are)"));
    }
    let mut w = Writer::new();
    write_response_header(&mut w, key, version, header.correlation_id);
    let client = group::api::Client { client_id: header.client_id.as_deref().unwrap_or(""), host: client_host };
    let result = match key {
        ApiKey::ApiVersions => ApiVersionsRequest::decode(&mut body, version).map(|_| {
            ApiVersionsResponse::supported(error_code::NONE).encode(&mut w, version);
            Some(vec![w.buf.freeze()])
        }),
        ApiKey::Metadata => metadata(shard, &mut body, version, w).await,
        ApiKey::Produce => produce(shard, &mut body, version, w, frame_bytes).await,
        ApiKey::Fetch => fetch(shard, &mut body, version, w).await,
        ApiKey::ListOffsets => list_offsets(shard, &mut body, version, w).await,
        ApiKey::CreateTopics => create_topics(shard, &mut body, version, w).await,
        ApiKey::DeleteTopics => delete_topics(shard, &mut body, version, w).await,
        ApiKey::CreatePartitions => create_partitions(shard, &mut body, version, w).await,
        ApiKey::DescribeConfigs => describe_configs(shard, &mut body, version, w).await,
        ApiKey::DescribeCluster => describe_cluster(shard, &mut body, version, w),
        ApiKey::FindCoordinator => group::api::find_coordinator(shard, &mut body, version, w),
        ApiKey::JoinGroup => group::api::join_group(shard, &mut body, version, w, &client).await,
        ApiKey::SyncGroup => group::api::sync_group(shard, &mut body, version, w).await,
        ApiKey::Heartbeat => group::api::heartbeat(shard, &mut body, version, w).await,
        ApiKey::LeaveGroup => group::api::leave_group(shard, &mut body, version, w).await,
        ApiKey::OffsetCommit => group::api::offset_commit(shard, &mut body, version, w).await,
        ApiKey::OffsetFetch => group::api::offset_fetch(shard, &mut body, version, w).await,
        ApiKey::OffsetDelete => group::api::offset_delete(shard, &mut body, version, w).await,
        ApiKey::DescribeGroups => group::api::describe_groups(shard, &mut body, version, w).await,
        ApiKey::ListGroups => group::api::list_groups(shard, &mut body, version, w).await,
        ApiKey::DeleteGroups => group::api::delete_groups(shard, &mut body, version, w).await,
        ApiKey::InitProducerId => init_producer_id(shard, &mut body, version, w).await,
    };
    match result {
        Ok(Some(chunks)) => Outcome::Respond(chunks),
        Ok(None) => Outcome::Silent,
        Err(e) => Outcome::Close(format!("malformed {key:?} v{version} request: {e}")),
    }
}

pub type Handled = Result<Option<Vec<Bytes>>, DecodeError>;

pub fn single(w: Writer) -> Handled {
    Ok(Some(vec![w.buf.freeze()]))
}

/// Sends each owner shard its items (this shard's too, through the same path) and returns the
/// results in the order of `items`.
async fn scatter<I, R: Clone + Default + 'static>(
    shard: &Rc<Shard>,
    items: Vec<(usize, I)>,
    message: impl Fn(Vec<I>, flume::Sender<Vec<R>>) -> ShardMsg,
) -> Vec<R> {
    let count = items.len();
    let mut per_owner: Vec<(Vec<usize>, Vec<I>)> = (0..shard.config.shards).map(|_| (Vec::new(), Vec::new())).collect();
    for (i, (owner, item)) in items.into_iter().enumerate() {
        per_owner[owner].0.push(i);
        per_owner[owner].1.push(item);
    }
    let mut pending = Vec::new();
    for (owner, (positions, items)) in per_owner.into_iter().enumerate() {
        if items.is_empty() {
            continue;
        }
        let (tx, rx) = flume::bounded(1);
        let msg = message(items, tx);
        if owner == shard.id {
            let local = shard.clone();
            glommio::spawn_local(async move { local.handle(msg).await }).detach();
        } else {
            shard.send(owner, msg).await;
        }
        pending.push((positions, rx));
    }
    let mut results = vec![R::default(); count];
    for (positions, rx) in pending {
        if let Ok(replies) = rx.recv_async().await {
            for (p, r) in positions.into_iter().zip(replies) {
                results[p] = r;
            }
        }
    }
    results
}

async fn metadata(shard: &Rc<Shard>, body: &mut Reader, version: i16, mut w: Writer) -> Handled {
    let req = MetadataRequest::decode(body, version)?;
    let requested: Option<Vec<String>> =
        req.topics.as_ref().map(|ts| ts.iter().filter_map(|t| t.name.clone()).collect());
    let mut refused = std::collections::HashMap::new();
    if let Some(names) = &requested {
        if req.allow_auto_topic_creation {
            refused = admin::ensure_topics(shard, names).await.into_iter().collect();
        }
    }
    let md = shard.metadata();
    let node = shard.config.node_id;
    let describe = |name: &str| -> MetadataResponseTopic {
        match md.topics.get(name) {
            Some(t) => MetadataResponseTopic {
                error_code: 0,
                name: Some(name.to_string()),
                topic_id: t.id_bytes(),
                is_internal: group::api::is_internal(name),
                partitions: (0..t.shards.len() as i32)
                    .map(|p| MetadataResponsePartition {
                        error_code: 0,
                        partition_index: p,
                        leader_id: node,
                        leader_epoch: 0,
                        replica_nodes: vec![node],
                        isr_nodes: vec![node],
                        offline_replicas: Vec::new(),
                    })
                    .collect(),
                topic_authorized_operations: i32::MIN,
            },
            None => MetadataResponseTopic {
                error_code: match refused.get(name) {
                    // Auto-creation was refused for a reason the client should see (a cap).
                    Some(code) => *code,
                    None if validate_topic_name(name).is_ok() => error_code::UNKNOWN_TOPIC_OR_PARTITION,
                    None => error_code::INVALID_TOPIC_EXCEPTION,
                },
                name: Some(name.to_string()),
                topic_authorized_operations: i32::MIN,
                ..MetadataResponseTopic::default()
            },
        }
    };
    let topics = match &requested {
        Some(names) => names.iter().map(|n| describe(n)).collect(),
        None => md.topics.keys().map(|n| describe(n)).collect(),
    };
    let resp = MetadataResponse {
        throttle_time_ms: 0,
        brokers: vec![MetadataResponseBroker {
            node_id: node,
            host: shard.config.advertised_host.clone(),
            port: i32::from(shard.config.advertised_port),
            rack: None,
        }],
        cluster_id: Some(md.cluster_id.clone()),
        controller_id: node,
        topics,
        cluster_authorized_operations: i32::MIN,
    };
    resp.encode(&mut w, version);
    single(w)
}

/// A partition's records that would keep a frame more than this many times their size alive
/// (in the batch cache, after the rest of the request is done) are copied out of it.
const FRAME_PIN_RATIO_MAX: usize = 2;

/// `frame_bytes` is the size of the request frame the records are slices of.
async fn produce(shard: &Rc<Shard>, body: &mut Reader, version: i16, mut w: Writer, frame_bytes: usize) -> Handled {
    let req = ProduceRequest::decode(body, version)?;
    let mut resp = ProduceResponse {
        throttle_time_ms: 0,
        topics: req
            .topics
            .iter()
            .map(|t| ProduceTopicResponse {
                name: t.name.clone(),
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| ProducePartitionResponse { index: p.index, ..ProducePartitionResponse::default() })
                    .collect(),
            })
            .collect(),
    };
    let refuse = if !matches!(req.acks, -1..=1) {
        Some((error_code::INVALID_REQUIRED_ACKS, format!("acks={} is not one of -1, 0, 1", req.acks)))
    } else if req.transactional_id.is_some() {
        Some((error_code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED, "transactions are not supported yet".to_string()))
    } else {
        None
    };
    if let Some((code, message)) = refuse {
        for p in resp.topics.iter_mut().flat_map(|t| t.partitions.iter_mut()) {
            p.error_code = code;
            p.error_message = Some(message.clone());
        }
    } else {
        let names: Vec<String> = req.topics.iter().map(|t| t.name.clone()).collect();
        admin::ensure_topics(shard, &names).await;
        let mut items = Vec::new();
        let mut slots = Vec::new();
        for (ti, t) in req.topics.into_iter().enumerate() {
            for (pi, p) in t.partitions.into_iter().enumerate() {
                let slot = &mut resp.topics[ti].partitions[pi];
                match (shard.owner(&t.name, p.index), p.records) {
                    (None, _) if validate_topic_name(&t.name).is_err() => {
                        slot.error_code = error_code::INVALID_TOPIC_EXCEPTION
                    }
                    (Some(_), _) if group::api::is_internal(&t.name) => {
                        // Only the broker writes its internal topics.
                        slot.error_code = error_code::INVALID_TOPIC_EXCEPTION;
                        slot.error_message = Some(format!("`{}` is an internal topic", t.name));
                    }
                    (None, _) => slot.error_code = error_code::UNKNOWN_TOPIC_OR_PARTITION,
                    (Some(_), None) => slot.error_code = error_code::INVALID_RECORD,
                    (Some(owner), Some(mut records)) => {
                        if frame_bytes > records.len().saturating_mul(FRAME_PIN_RATIO_MAX) {
                            // The one extra copy of record bytes: without it, a small batch of a
                            // large multi-partition request pins the whole frame while cached.
                            shard.metrics.pinning_copy(records.len());
                            records = Bytes::copy_from_slice(&records);
                        }
                        slots.push((ti, pi));
                        items.push((owner, ProduceItem { topic: t.name.clone(), partition: p.index, records }));
                    }
                }
            }
        }
        let acks = req.acks;
        let results: Vec<ProduceResult> =
            scatter(shard, items, |items, reply| ShardMsg::Produce { acks, items, reply }).await;
        for ((ti, pi), r) in slots.into_iter().zip(results) {
            let slot = &mut resp.topics[ti].partitions[pi];
            slot.error_code = r.error_code;
            slot.base_offset = r.base_offset;
            slot.log_start_offset = r.log_start_offset;
            slot.error_message = r.error_message;
        }
    }
    let refused =
        resp.topics.iter().flat_map(|t| t.partitions.iter().map(move |p| (t, p))).find(|(_, p)| p.error_code != 0);
    if let Some((t, p)) = refused {
        // One line per refused request, with the first partition's reason.
        shard.metrics.error(ApiKey::Produce);
        if shard.log_limits.produce_refused.allow() {
            tracing::info!(
                topic = t.name,
                partition = p.index,
                error_code = p.error_code,
                reason = p.error_message.as_deref().unwrap_or(""),
                "produce refused"
            );
        }
    }
    if req.acks == 0 {
        return Ok(None);
    }
    resp.encode(&mut w, version);
    single(w)
}

/// Hands out a new producer id at epoch 0 for idempotence. As in Kafka, a producer without a
/// transactional id that sends its current id and epoch (v3+, to bump the epoch after an
/// error) gets a new id. Transactional ids are refused until transactions exist.
async fn init_producer_id(shard: &Rc<Shard>, body: &mut Reader, version: i16, mut w: Writer) -> Handled {
    let req = InitProducerIdRequest::decode(body, version)?;
    let mut resp = InitProducerIdResponse { throttle_time_ms: 0, error_code: 0, producer_id: -1, producer_epoch: -1 };
    if req.transactional_id.is_some() {
        resp.error_code = error_code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
    } else {
        let allocated = shard
            .on_shard(0, |s| async move {
                match &s.producer_ids {
                    Some(ids) => ids.allocate().await,
                    None => Err("shard 0 has no producer id allocator".to_string()),
                }
            })
            .await;
        match allocated {
            Some(Ok(id)) => {
                resp.producer_id = id;
                resp.producer_epoch = 0;
            }
            Some(Err(e)) => {
                tracing::error!(error = %e, "cannot allocate a producer id");
                resp.error_code = error_code::COORDINATOR_NOT_AVAILABLE;
            }
            None => resp.error_code = error_code::COORDINATOR_NOT_AVAILABLE,
        }
    }
    if resp.error_code != 0 {
        shard.metrics.error(ApiKey::InitProducerId);
    }
    resp.encode(&mut w, version);
    single(w)
}

async fn fetch(shard: &Rc<Shard>, body: &mut Reader, version: i16, w: Writer) -> Handled {
    let req = FetchRequest::decode(body, version)?;
    let mut resp = FetchResponse { throttle_time_ms: 0, error_code: 0, session_id: 0, topics: Vec::new() };
    let mut items = Vec::new();
    let mut slots = Vec::new();
    for (ti, t) in req.topics.iter().enumerate() {
        let mut topic = FetchTopicResponse { name: t.name.clone(), partitions: Vec::new() };
        for (pi, p) in t.partitions.iter().enumerate() {
            let mut slot = FetchPartitionResponse { partition_index: p.partition, ..FetchPartitionResponse::default() };
            match shard.owner(&t.name, p.partition) {
                None => slot.error_code = error_code::UNKNOWN_TOPIC_OR_PARTITION,
                Some(owner) => {
                    slots.push((ti, pi));
                    let max_bytes = usize::try_from(p.partition_max_bytes).unwrap_or(0);
                    items.push((
                        owner,
                        FetchItem { topic: t.name.clone(), partition: p.partition, offset: p.fetch_offset, max_bytes },
                    ));
                }
            }
            topic.partitions.push(slot);
        }
        resp.topics.push(topic);
    }
    // The broker's own fetch.max.bytes bounds what a client may ask for.
    let budget = usize::try_from(req.max_bytes).unwrap_or(0).min(shard.config.fetch_max_bytes);
    let mut results: Vec<FetchResult> =
        scatter(shard, items.clone(), |items, reply| ShardMsg::Fetch { items, budget, reply }).await;
    let total: usize = results.iter().map(|r| r.bytes).sum();
    // Any error, including a partition no shard owns, is answered at once, as Kafka does.
    let errors =
        results.iter().any(|r| r.error_code != 0) || slots.len() < req.topics.iter().map(|t| t.partitions.len()).sum();
    let wait_ms = req.max_wait_ms.clamp(0, FETCH_WAIT_MS_MAX);
    // Kafka waits while fewer than min_bytes are ready; min_bytes <= 0 never waits.
    let min_bytes = usize::try_from(req.min_bytes).unwrap_or(0);
    if !errors && total < min_bytes && wait_ms > 0 && !items.is_empty() {
        // Long poll: park on the owners until any partition gets data or the wait ends, then read again.
        let wait = Duration::from_millis(wait_ms as u64);
        let (tx, rx) = flume::bounded(shard.config.shards);
        let mut per_owner: Vec<Vec<((String, i32), i64)>> = vec![Vec::new(); shard.config.shards];
        for (owner, item) in &items {
            per_owner[*owner].push(((item.topic.clone(), item.partition), item.offset));
        }
        for (owner, parts) in per_owner.into_iter().enumerate().filter(|(_, p)| !p.is_empty()) {
            let msg = ShardMsg::WaitForData { items: parts, wait, reply: tx.clone() };
            if owner == shard.id {
                let local = shard.clone();
                glommio::spawn_local(async move { local.handle(msg).await }).detach();
            } else {
                shard.send(owner, msg).await;
            }
        }
        // Only the owners hold senders now: if they all go away, the wait ends.
        drop(tx);
        let _ = rx.recv_async().await;
        results = scatter(shard, items, |items, reply| ShardMsg::Fetch { items, budget, reply }).await;
    }
    // The response size limit is soft, as in Kafka: the first partition with data always gets
    // its batches; later ones are left empty once the limit is reached.
    let mut budget = budget;
    let mut first = true;
    for ((ti, pi), r) in slots.into_iter().zip(results) {
        let slot = &mut resp.topics[ti].partitions[pi];
        slot.error_code = r.error_code;
        slot.high_watermark = r.high_watermark;
        slot.last_stable_offset = r.high_watermark;
        slot.log_start_offset = r.log_start_offset;
        if r.bytes > 0 && (first || r.bytes <= budget) {
            budget = budget.saturating_sub(r.bytes);
            first = false;
            slot.records = r.records;
        }
    }
    if resp.topics.iter().flat_map(|t| &t.partitions).any(|p| p.error_code != 0) {
        shard.metrics.error(ApiKey::Fetch);
    }
    Ok(Some(resp.encode_chunks(w, version)))
}

async fn list_offsets(shard: &Rc<Shard>, body: &mut Reader, version: i16, mut w: Writer) -> Handled {
    let req = ListOffsetsRequest::decode(body, version)?;
    let mut resp = ListOffsetsResponse { throttle_time_ms: 0, topics: Vec::new() };
    let mut items = Vec::new();
    let mut slots = Vec::new();
    for (ti, t) in req.topics.iter().enumerate() {
        let mut topic = ListOffsetsTopicResponse { name: t.name.clone(), partitions: Vec::new() };
        for (pi, p) in t.partitions.iter().enumerate() {
            let mut slot = ListOffsetsPartitionResponse {
                partition_index: p.partition_index,
                timestamp: -1,
                offset: -1,
                leader_epoch: 0,
                ..ListOffsetsPartitionResponse::default()
            };
            match shard.owner(&t.name, p.partition_index) {
                None => slot.error_code = error_code::UNKNOWN_TOPIC_OR_PARTITION,
                Some(owner) => {
                    slots.push((ti, pi));
                    items.push((owner, ((t.name.clone(), p.partition_index), p.timestamp)));
                }
            }
            topic.partitions.push(slot);
        }
        resp.topics.push(topic);
    }
    let results: Vec<OffsetsResult> =
        scatter(shard, items, |items, reply| ShardMsg::ListOffsets { items, reply }).await;
    for ((ti, pi), r) in slots.into_iter().zip(results) {
        let slot = &mut resp.topics[ti].partitions[pi];
        slot.error_code = r.error_code;
        slot.offset = r.offset;
        slot.timestamp = r.timestamp;
    }
    if resp.topics.iter().flat_map(|t| &t.partitions).any(|p| p.error_code != 0) {
        shard.metrics.error(ApiKey::ListOffsets);
    }
    resp.encode(&mut w, version);
    single(w)
}

async fn create_topics(shard: &Rc<Shard>, body: &mut Reader, version: i16, mut w: Writer) -> Handled {
    let req = CreateTopicsRequest::decode(body, version)?;
    let topics = req
        .topics
        .into_iter()
        .map(|t| NewTopic {
            name: t.name,
            partitions: t.num_partitions,
            replication_factor: t.replication_factor,
            configs: t.configs.into_iter().map(|c| (c.name, c.value)).collect(),
            assignments: t.assignments.into_iter().map(|a| a.broker_ids).collect(),
        })
        .collect();
    let outcomes = admin::submit(shard, AdminRequest::CreateTopics { topics, validate_only: req.validate_only }).await;
    let resp = CreateTopicsResponse {
        throttle_time_ms: 0,
        topics: outcomes
            .into_iter()
            .map(|o| CreatableTopicResult {
                name: o.name,
                topic_id: o.topic_id,
                error_code: o.error_code,
                error_message: o.error_message,
                num_partitions: if o.error_code == 0 { o.partitions } else { -1 },
                replication_factor: if o.error_code == 0 { 1 } else { -1 },
                configs: None,
            })
            .collect(),
    };
    resp.encode(&mut w, version);
    single(w)
}

async fn delete_topics(shard: &Rc<Shard>, body: &mut Reader, version: i16, mut w: Writer) -> Handled {
    let req = DeleteTopicsRequest::decode(body, version)?;
    let md = shard.metadata();
    let mut names = req.topic_names;
    for t in req.topics {
        match t.name {
            Some(n) => names.push(n),
            None => {
                if let Some((n, _)) = md.topics.iter().find(|(_, topic)| topic.id_bytes() == t.topic_id) {
                    names.push(n.clone());
                }
            }
        }
    }
    let outcomes = admin::submit(shard, AdminRequest::DeleteTopics { names }).await;
    let resp = DeleteTopicsResponse {
        throttle_time_ms: 0,
        responses: outcomes
            .into_iter()
            .map(|o| DeletableTopicResult {
                name: Some(o.name),
                topic_id: o.topic_id,
                error_code: o.error_code,
                error_message: o.error_message,
            })
            .collect(),
    };
    resp.encode(&mut w, version);
    single(w)
}

async fn create_partitions(shard: &Rc<Shard>, body: &mut Reader, version: i16, mut w: Writer) -> Handled {
    let req = CreatePartitionsRequest::decode(body, version)?;
    let topics = req.topics.into_iter().map(|t| (t.name, t.count)).collect();
    let outcomes =
        admin::submit(shard, AdminRequest::CreatePartitions { topics, validate_only: req.validate_only }).await;
    let resp = CreatePartitionsResponse {
        throttle_time_ms: 0,
        results: outcomes
            .into_iter()
            .map(|o| CreatePartitionsTopicResult {
                name: o.name,
                error_code: o.error_code,
                error_message: o.error_message,
            })
            .collect(),
    };
    resp.encode(&mut w, version);
    single(w)
}

/// Kafka's config types (DescribeConfigs v3+).
const CONFIG_TYPE_STRING: i8 = 2;
const CONFIG_TYPE_INT: i8 = 3;
const CONFIG_TYPE_LONG: i8 = 5;
const CONFIG_TYPE_LIST: i8 = 7;
/// Kafka's config sources.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_DEFAULT: i8 = 5;
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

async fn describe_configs(shard: &Rc<Shard>, body: &mut Reader, version: i16, mut w: Writer) -> Handled {
    let req = DescribeConfigsRequest::decode(body, version)?;
    let md = shard.metadata();
    let base = &shard.config.log;
    let durability = |d: ringtail_log::Durability| if d == ringtail_log::Durability::Sync { "sync" } else { "async" };
    let defaults: Vec<(&str, String, i8)> = vec![
        ("cleanup.policy", "delete".into(), CONFIG_TYPE_LIST),
        ("retention.ms", base.retention_age_ms_max.map_or(-1, |v| v as i64).to_string(), CONFIG_TYPE_LONG),
        ("retention.bytes", base.retention_bytes_max.map_or(-1, |v| v as i64).to_string(), CONFIG_TYPE_LONG),
        ("segment.bytes", base.segment_bytes_max.to_string(), CONFIG_TYPE_INT),
        ("segment.ms", base.segment_age_ms_max.to_string(), CONFIG_TYPE_LONG),
        ("max.message.bytes", base.batch_bytes_max.to_string(), CONFIG_TYPE_INT),
        ("ringtail.durability", durability(base.durability).into(), CONFIG_TYPE_STRING),
    ];
    let mut results = Vec::new();
    for r in req.resources {
        let mut result = DescribeConfigsResult {
            error_code: 0,
            error_message: None,
            resource_type: r.resource_type,
            resource_name: r.resource_name.clone(),
            configs: Vec::new(),
        };
        let overrides = match r.resource_type {
            RESOURCE_TOPIC => match md.topics.get(&r.resource_name) {
                Some(t) => Some(t.configs.clone()),
                None => {
                    result.error_code = error_code::UNKNOWN_TOPIC_OR_PARTITION;
                    result.error_message = Some(format!("topic `{}` does not exist", r.resource_name));
                    None
                }
            },
            RESOURCE_BROKER => Some(Default::default()),
            _ => {
                result.error_code = error_code::INVALID_REQUEST;
                result.error_message = Some(format!("resource type {} is not supported", r.resource_type));
                None
            }
        };
        if let Some(overrides) = overrides {
            for (name, default, config_type) in &defaults {
                if r.configuration_keys.as_ref().is_some_and(|keys| !keys.iter().any(|k| k == name)) {
                    continue;
                }
                let set = overrides.get(*name);
                result.configs.push(DescribeConfigsResourceResult {
                    name: name.to_string(),
                    value: Some(set.cloned().unwrap_or_else(|| default.clone())),
                    read_only: r.resource_type == RESOURCE_BROKER,
                    is_default: set.is_none(),
                    config_source: if set.is_some() { SOURCE_TOPIC } else { SOURCE_DEFAULT },
                    is_sensitive: false,
                    synonyms: Vec::new(),
                    config_type: *config_type,
                    documentation: None,
                });
            }
        }
        results.push(result);
    }
    let resp = DescribeConfigsResponse { throttle_time_ms: 0, results };
    resp.encode(&mut w, version);
    single(w)
}

fn describe_cluster(shard: &Rc<Shard>, body: &mut Reader, version: i16, mut w: Writer) -> Handled {
    let req = DescribeClusterRequest::decode(body, version)?;
    let md = shard.metadata();
    let resp = DescribeClusterResponse {
        throttle_time_ms: 0,
        error_code: 0,
        error_message: None,
        endpoint_type: req.endpoint_type,
        cluster_id: md.cluster_id.clone(),
        controller_id: shard.config.node_id,
        brokers: vec![DescribeClusterBroker {
            broker_id: shard.config.node_id,
            host: shard.config.advertised_host.clone(),
            port: i32::from(shard.config.advertised_port),
            rack: None,
        }],
        cluster_authorized_operations: i32::MIN,
    };
    resp.encode(&mut w, version);
    single(w)
}

impl Default for ProduceResult {
    fn default() -> Self {
        ProduceResult {
            error_code: error_code::UNKNOWN_SERVER_ERROR,
            base_offset: -1,
            log_start_offset: -1,
            error_message: None,
        }
    }
}

impl Default for OffsetsResult {
    fn default() -> Self {
        OffsetsResult { error_code: error_code::UNKNOWN_SERVER_ERROR, offset: -1, timestamp: -1 }
    }
}
