//! ListOffsets: the earliest, the latest (high watermark), the first offset at a timestamp or
//! the record with the largest timestamp, from each partition's owner shard; and
//! OffsetForLeaderEpoch: where a leader epoch ends.

use std::rc::Rc;

use ringtail_net::error_code;
use ringtail_net::header::ApiKey;
use ringtail_net::messages::list_offsets::{
    ListOffsetsPartitionResponse, ListOffsetsRequest, ListOffsetsResponse, ListOffsetsTopicResponse,
};
use ringtail_net::messages::offset_for_leader_epoch::{
    EpochEndOffset, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, OffsetForLeaderTopicResult,
};
use ringtail_net::{Reader, Writer};
use ringtail_replication::OffsetSpec;

use super::common::{job, scatter, single, Handled, DEBUGGING_REPLICA_ID};
use crate::broker::data::{EpochItem, EpochResult, OffsetsItem, OffsetsResult};
use crate::broker::{Broker, ShardMsg};
use crate::errors;
use crate::runtime::routing::Route;
use crate::runtime::table::ServeError;

/// Kafka's special timestamps: -1 latest, -2 earliest, -3 max timestamp, -4 earliest local
/// (the log start: nothing is tiered, so every record is local), -5 latest tiered (none), each
/// from the version that introduced it; anything else before 0 is refused.
fn spec(timestamp: i64, version: i16) -> Option<OffsetSpec> {
    match timestamp {
        -1 => Some(OffsetSpec::Latest),
        -2 => Some(OffsetSpec::Earliest),
        -3 if version >= 7 => Some(OffsetSpec::MaxTimestamp),
        -4 if version >= 8 => Some(OffsetSpec::Earliest),
        -5 if version >= 9 => Some(OffsetSpec::LatestTiered),
        t if t >= 0 => Some(OffsetSpec::Timestamp(t)),
        _ => None,
    }
}

pub async fn list_offsets(broker: &Rc<Broker>, body: &mut Reader, version: i16, mut w: Writer) -> Handled {
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
                leader_epoch: -1,
                ..ListOffsetsPartitionResponse::default()
            };
            match (broker.route(&t.name, p.partition_index), spec(p.timestamp, version)) {
                (None, _) => slot.error_code = error_code::UNKNOWN_TOPIC_OR_PARTITION,
                (Some((_, route @ (Route::Remote { .. } | Route::Offline))), _) => {
                    slot.error_code = errors::not_local(&route)
                }
                (Some(_), None) => slot.error_code = error_code::INVALID_REQUEST,
                (Some((partition, Route::Local(owner))), Some(spec)) => {
                    slots.push((ti, pi));
                    let current_leader_epoch = p.current_leader_epoch;
                    items.push((owner, OffsetsItem { partition, spec, current_leader_epoch }));
                }
            }
            topic.partitions.push(slot);
        }
        resp.topics.push(topic);
    }
    let results: Vec<OffsetsResult> =
        scatter(broker, items, Err(ServeError::ShardStopped), |items, reply| ShardMsg::ListOffsets { items, reply })
            .await;
    for ((ti, pi), r) in slots.into_iter().zip(results) {
        let slot = &mut resp.topics[ti].partitions[pi];
        match r {
            Ok(Some(found)) => {
                slot.offset = found.offset as i64;
                slot.timestamp = found.timestamp;
                slot.leader_epoch = found.leader_epoch;
            }
            Ok(None) => {}
            Err(e) => slot.error_code = errors::serve_error(&e),
        }
    }
    if resp.topics.iter().flat_map(|t| &t.partitions).any(|p| p.error_code != 0) {
        broker.metrics.error(ApiKey::ListOffsets);
    }
    resp.encode(&mut w, version);
    single(w)
}

/// OffsetForLeaderEpoch: where each asked epoch ends on the partition's leader (Kafka's answer,
/// see `Partition::end_offset_for_epoch`), checked against the asker's current leader epoch.
/// Kafka's debugging replica id (-2) reads any replica's own cache.
pub async fn offset_for_leader_epoch(broker: &Rc<Broker>, body: &mut Reader, version: i16, mut w: Writer) -> Handled {
    let req = OffsetForLeaderEpochRequest::decode(body, version)?;
    let any_replica = req.replica_id == DEBUGGING_REPLICA_ID;
    let mut resp = OffsetForLeaderEpochResponse { throttle_time_ms: 0, topics: Vec::new() };
    let mut items = Vec::new();
    let mut slots = Vec::new();
    for (ti, t) in req.topics.iter().enumerate() {
        let mut topic = OffsetForLeaderTopicResult { name: t.name.clone(), partitions: Vec::new() };
        for (pi, p) in t.partitions.iter().enumerate() {
            let mut slot = EpochEndOffset { error_code: 0, partition: p.partition, leader_epoch: -1, end_offset: -1 };
            let route = match any_replica {
                true => broker.route_any_replica(&t.name, p.partition),
                false => broker.route(&t.name, p.partition),
            };
            match route {
                None => slot.error_code = error_code::UNKNOWN_TOPIC_OR_PARTITION,
                Some((_, route @ (Route::Remote { .. } | Route::Offline))) => {
                    slot.error_code = errors::not_local(&route)
                }
                Some((partition, Route::Local(owner))) => {
                    slots.push((ti, pi));
                    let item = EpochItem {
                        partition,
                        epoch: p.leader_epoch,
                        current_leader_epoch: p.current_leader_epoch,
                        any_replica,
                    };
                    items.push((owner, item));
                }
            }
            topic.partitions.push(slot);
        }
        resp.topics.push(topic);
    }
    let results: Vec<EpochResult> = scatter(broker, items, Err(ServeError::ShardStopped), |items, reply| {
        job(reply, move |b| async move { b.end_offsets_for_epochs_local(items) })
    })
    .await;
    for ((ti, pi), r) in slots.into_iter().zip(results) {
        let slot = &mut resp.topics[ti].partitions[pi];
        match r {
            Ok((epoch, end_offset)) => {
                slot.leader_epoch = epoch;
                slot.end_offset = end_offset;
            }
            Err(e) => slot.error_code = errors::serve_error(&e),
        }
    }
    if resp.topics.iter().flat_map(|t| &t.partitions).any(|p| p.error_code != 0) {
        broker.metrics.error(ApiKey::OffsetForLeaderEpoch);
    }
    resp.encode(&mut w, version);
    single(w)
}
