//! Fetch: each partition is read on the shard owning its replica. A long poll costs one round
//! trip per owner shard: an owner that finds nothing parks on its partitions and answers when
//! data arrives, the wait ends, or the requester cancels because another owner had data.

use std::rc::Rc;
use std::time::Duration;

use ringtail_net::error_code;
use ringtail_net::header::ApiKey;
use ringtail_net::messages::fetch::{
    DivergingEpoch, FetchPartitionResponse, FetchRequest, FetchResponse, FetchTopicResponse,
};
use ringtail_net::{Chunk, DecodeError, Reader, Writer};
use ringtail_replication::{NodeId, ShardId};

use super::common::{leader_endpoints, leader_hint, topic_name_by_id, DEBUGGING_REPLICA_ID};
use crate::broker::data::{FetchItem, FetchReader, FetchResult, FetchWait};
use crate::broker::{Broker, ShardMsg};
use crate::errors;
use crate::limits::FETCH_WAIT_MS_MAX;
use crate::runtime::routing::Route;

pub async fn fetch(
    broker: &Rc<Broker>,
    body: &mut Reader,
    version: i16,
    w: Writer,
) -> Result<Option<Vec<Chunk>>, DecodeError> {
    let mut req = FetchRequest::decode(body, version)?;
    let mut resp = FetchResponse {
        throttle_time_ms: 0,
        error_code: 0,
        session_id: 0,
        topics: Vec::new(),
        // The endpoints of the leaders the hints name, filled at the end.
        node_endpoints: Vec::new(),
    };
    // A follower names itself (replica_id, or ReplicaState from version 15); -2 is Kafka's
    // debugging id, read from any replica up to its log end.
    let reader = match req.replica_id {
        id if id >= 0 => FetchReader::Follower { node: NodeId(id), last_fetched_epoch: -1 },
        DEBUGGING_REPLICA_ID => FetchReader::Debug,
        _ => FetchReader::Consumer { last_fetched_epoch: -1 },
    };
    // KIP-392: from version 11 a consumer may name its rack (client.rack). Such a consumer may
    // read a follower replica held here, up to that replica's high watermark, and with the
    // rack-aware selector a leader sends it to an in-sync replica of its rack instead.
    let rack = match reader {
        FetchReader::Consumer { .. } if version >= 11 && !req.rack_id.is_empty() => Some(req.rack_id.as_str()),
        _ => None,
    };
    let select = rack.filter(|_| broker.config.cluster.rack_aware_reads);
    let mut items = Vec::new();
    let mut slots = Vec::new();
    let mut unroutable = false;
    for (ti, t) in req.topics.iter_mut().enumerate() {
        // From version 13 topics come by id; one no topic has gets UNKNOWN_TOPIC_ID.
        let mut unknown_id = false;
        if version >= 13 {
            match topic_name_by_id(broker, t.topic_id) {
                Some(name) => t.name = name,
                None => unknown_id = true,
            }
        }
        let mut topic = FetchTopicResponse { name: t.name.clone(), topic_id: t.topic_id, partitions: Vec::new() };
        for (pi, p) in t.partitions.iter().enumerate() {
            let mut slot = FetchPartitionResponse { partition_index: p.partition, ..FetchPartitionResponse::default() };
            let mut route = match reader {
                FetchReader::Debug => broker.route_any_replica(&t.name, p.partition),
                _ => broker.route(&t.name, p.partition),
            };
            let leads = matches!(route, Some((_, Route::Local(_)))) && reader != FetchReader::Debug;
            if rack.is_some() && !leads {
                if let Some(follower @ (_, Route::Local(_))) = broker.route_any_replica(&t.name, p.partition) {
                    route = Some(follower);
                }
            }
            let elsewhere = match (&route, select) {
                (Some((partition, Route::Local(_))), Some(rack)) if leads => {
                    broker.view().preferred_read_replica(*partition, rack)
                }
                _ => None,
            };
            match route {
                // Sent to a replica of its rack: no records from here.
                _ if elsewhere.is_some() && !unknown_id => {
                    slot.preferred_read_replica = elsewhere.map_or(-1, |n| n.0);
                }
                _ if unknown_id => slot.error_code = error_code::UNKNOWN_TOPIC_ID,
                None => slot.error_code = error_code::UNKNOWN_TOPIC_OR_PARTITION,
                Some((_, route @ (Route::Remote { .. } | Route::Offline))) => {
                    slot.error_code = errors::not_local(&route);
                    slot.current_leader = leader_hint(&route);
                }
                Some((partition, Route::Local(owner))) => {
                    slots.push((ti, pi));
                    let max_bytes = usize::try_from(p.partition_max_bytes).unwrap_or(0);
                    let reader = match reader {
                        FetchReader::Follower { node, .. } => {
                            FetchReader::Follower { node, last_fetched_epoch: p.last_fetched_epoch }
                        }
                        FetchReader::Consumer { .. } => {
                            FetchReader::Consumer { last_fetched_epoch: p.last_fetched_epoch }
                        }
                        other => other,
                    };
                    let current_leader_epoch = p.current_leader_epoch;
                    let item = FetchItem { partition, offset: p.fetch_offset, max_bytes, current_leader_epoch, reader };
                    items.push((owner, item));
                }
            }
            // An error, or a consumer sent elsewhere, is answered at once.
            unroutable |= slot.error_code != 0 || slot.preferred_read_replica >= 0;
            topic.partitions.push(slot);
        }
        resp.topics.push(topic);
    }
    // The broker's own fetch.max.bytes bounds what a client may ask for.
    let budget = usize::try_from(req.max_bytes).unwrap_or(0).min(broker.config.fetch_max_bytes);
    let wait_ms = req.max_wait_ms.clamp(0, FETCH_WAIT_MS_MAX);
    // Kafka waits while fewer than min_bytes are ready (min_bytes <= 0 never waits); any error,
    // including a partition this node does not serve, is answered at once.
    let max_wait = (!unroutable && req.min_bytes > 0 && wait_ms > 0).then(|| Duration::from_millis(wait_ms as u64));
    let results = gather(broker, items, budget, max_wait).await;
    // The response size limit is soft, as in Kafka: the first partition with data always gets
    // its batches; later ones are left empty once the limit is reached.
    let mut budget = budget;
    let mut first = true;
    for ((ti, pi), r) in slots.into_iter().zip(results) {
        let slot = &mut resp.topics[ti].partitions[pi];
        slot.error_code = r.error.as_ref().map_or(error_code::NONE, errors::serve_error);
        slot.high_watermark = r.high_watermark;
        slot.last_stable_offset = r.high_watermark;
        slot.log_start_offset = r.log_start_offset;
        slot.diverging_epoch = r.diverging.map(|(epoch, end_offset)| DivergingEpoch { epoch, end_offset });
        if r.bytes > 0 && (first || r.bytes <= budget) {
            budget = budget.saturating_sub(r.bytes);
            first = false;
            slot.records = r.records;
        }
    }
    if resp.topics.iter().flat_map(|t| &t.partitions).any(|p| p.error_code != 0) {
        broker.metrics.error(ApiKey::Fetch);
    }
    let hinted = resp.topics.iter().flat_map(|t| &t.partitions).flat_map(|p| {
        let preferred = (p.preferred_read_replica >= 0).then_some(p.preferred_read_replica);
        p.current_leader.map(|l| l.leader_id).into_iter().chain(preferred)
    });
    resp.node_endpoints = leader_endpoints(broker, hinted);
    Ok(Some(resp.encode_chunks(w, version)))
}

/// Sends each owner shard its partitions and collects the results in the order of `items`.
/// With `max_wait`, owners that find nothing park; the first answer with data (or an error)
/// cancels the others' waits, which then read again and answer at once.
async fn gather(
    broker: &Rc<Broker>,
    items: Vec<(ShardId, FetchItem)>,
    budget: usize,
    max_wait: Option<Duration>,
) -> Vec<FetchResult> {
    let mut results = vec![FetchResult::default(); items.len()];
    let mut per_owner: Vec<(Vec<usize>, Vec<FetchItem>)> =
        (0..broker.config.shards).map(|_| (Vec::new(), Vec::new())).collect();
    for (i, (owner, item)) in items.into_iter().enumerate() {
        per_owner[owner.0].0.push(i);
        per_owner[owner.0].1.push(item);
    }
    let owners = per_owner.iter().filter(|(p, _)| !p.is_empty()).count();
    let (cancel_tx, cancel_rx) = flume::bounded::<()>(1);
    let (reply_tx, reply_rx) = flume::bounded(owners.max(1));
    for (owner, (positions, items)) in per_owner.into_iter().enumerate().filter(|(_, (p, _))| !p.is_empty()) {
        let wait = max_wait.map(|max_wait| FetchWait { max_wait, cancel: cancel_rx.clone() });
        let (tx, rx) = flume::bounded(1);
        broker.send(ShardId(owner), ShardMsg::Fetch { items, budget, wait, reply: tx }).await;
        // Each owner's answer is tagged with its positions on the shared reply channel.
        let reply_tx = reply_tx.clone();
        glommio::spawn_local(async move {
            let answer = rx.recv_async().await.ok();
            let _ = reply_tx.send_async((positions, answer)).await;
        })
        .detach();
    }
    drop(reply_tx);
    let mut cancel = Some(cancel_tx);
    for _ in 0..owners {
        let Ok((positions, answer)) = reply_rx.recv_async().await else { break };
        let Some(answer) = answer else { continue };
        if answer.iter().any(|r| r.bytes > 0 || r.error.is_some() || r.diverging.is_some()) {
            // Enough for a response: the other owners stop waiting.
            cancel.take();
        }
        for (p, r) in positions.into_iter().zip(answer) {
            results[p] = r;
        }
    }
    results
}
