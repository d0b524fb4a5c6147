//! ListOffsets: the earliest, the latest (high watermark), the first offset at a timestamp or
//! the record with the largest timestamp, from each partition's owner shard.

use std::rc::Rc;

use ringtail_net::error_code;
use ringtail_net::header::ApiKey;
use ringtail_net::messages::list_offsets::{
    ListOffsetsPartitionResponse, ListOffsetsRequest, ListOffsetsResponse, ListOffsetsTopicResponse,
};
use ringtail_net::{Reader, Writer};
use ringtail_replication::OffsetSpec;

use super::common::{scatter, single, Handled};
use crate::broker::data::{OffsetsItem, OffsetsResult};
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
                leader_epoch: 0,
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
            Ok(Some((offset, timestamp))) => {
                slot.offset = offset as i64;
                slot.timestamp = timestamp;
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
