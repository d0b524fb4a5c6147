//! Produce: each partition's records go to the shard owning the partition's replica, which
//! appends them as leader and answers once the acknowledgement asked for is reached.

use std::rc::Rc;

use bytes::Bytes;
use ringtail_log::batch;
use ringtail_log::{BatchError, Compression};
use ringtail_net::error_code;
use ringtail_net::header::ApiKey;
use ringtail_net::messages::produce::{
    ProducePartitionResponse, ProduceRequest, ProduceResponse, ProduceTopicResponse,
};
use ringtail_net::{Reader, Writer};
use ringtail_replication::metadata::controller::{is_internal, validate_topic_name};
use ringtail_replication::Acks;

use super::common::{leader_hint, scatter, single, topic_name_by_id, Handled};
use crate::broker::controller::service::ensure_topics;
use crate::broker::data::{ProduceItem, ProduceResult};
use crate::broker::{Broker, ShardMsg};
use crate::config_keys::topic_compression;
use crate::errors;
use crate::limits::RECOMPRESS_RECORDS_BYTES_MAX;
use crate::runtime::routing::Route;
use crate::runtime::table::ServeError;

/// A partition's records that would keep a frame more than this many times their size alive
/// (in the batch cache, after the rest of the request is done) are copied out of it.
const FRAME_PIN_RATIO_MAX: usize = 2;

/// `frame_bytes` is the size of the request frame the records are slices of.
pub async fn produce(
    broker: &Rc<Broker>,
    body: &mut Reader,
    version: i16,
    mut w: Writer,
    frame_bytes: usize,
) -> Handled {
    let mut req = ProduceRequest::decode(body, version)?;
    // From version 13 topics come by id; one no topic has gets UNKNOWN_TOPIC_ID.
    let mut unknown_ids = vec![false; req.topics.len()];
    if version >= 13 {
        for (t, unknown) in req.topics.iter_mut().zip(&mut unknown_ids) {
            match topic_name_by_id(broker, t.topic_id) {
                Some(name) => t.name = name,
                None => *unknown = true,
            }
        }
    }
    let mut resp = ProduceResponse {
        throttle_time_ms: 0,
        // Filled once brokers register their endpoints (the cluster); the hints name the leader.
        node_endpoints: Vec::new(),
        topics: req
            .topics
            .iter()
            .map(|t| ProduceTopicResponse {
                name: t.name.clone(),
                topic_id: t.topic_id,
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| ProducePartitionResponse { index: p.index, ..ProducePartitionResponse::default() })
                    .collect(),
            })
            .collect(),
    };
    let acks = Acks::from_kafka(req.acks);
    let refuse = if acks.is_none() {
        Some((error_code::INVALID_REQUIRED_ACKS, format!("acks={} is not one of -1, 0, 1", req.acks)))
    } else if req.transactional_id.is_some() {
        Some((error_code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED, "transactions are not supported yet".to_string()))
    } else {
        None
    };
    match (refuse, acks) {
        (Some((code, message)), _) => {
            for p in resp.topics.iter_mut().flat_map(|t| t.partitions.iter_mut()) {
                p.error_code = code;
                p.error_message = Some(message.clone());
            }
        }
        (None, Some(acks)) => append(broker, req.topics, &unknown_ids, acks, frame_bytes, &mut resp).await,
        (None, None) => unreachable!("no acks is refused above"),
    }
    let refused =
        resp.topics.iter().flat_map(|t| t.partitions.iter().map(move |p| (t, p))).find(|(_, p)| p.error_code != 0);
    if let Some((t, p)) = refused {
        // One line per refused request, with the first partition's reason.
        broker.metrics.error(ApiKey::Produce);
        if broker.log_limits.produce_refused.allow() {
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

/// Rewrites the records of `which` items (item index, codec, level) in their topic's codec, on
/// the shard's blocking thread: compression is CPU work a shard must not do inline. Returns the
/// items refused (a batch that does not decompress, or decompresses past the limit), by index,
/// ascending.
async fn recompress_items(
    broker: &Rc<Broker>,
    items: &mut [(ringtail_replication::ShardId, ProduceItem)],
    which: Vec<(usize, Compression, Option<i32>)>,
) -> Vec<(usize, BatchError)> {
    let jobs: Vec<(usize, Bytes, Compression, Option<i32>)> =
        which.into_iter().map(|(i, codec, level)| (i, items[i].1.records.clone(), codec, level)).collect();
    let results = glommio::executor()
        .spawn_blocking(move || {
            jobs.into_iter()
                .map(|(i, records, codec, level)| {
                    let rewritten = batch::recompress_records(
                        &records,
                        codec,
                        level,
                        batch::STORED_BATCH_BYTES_MAX,
                        RECOMPRESS_RECORDS_BYTES_MAX,
                    );
                    (i, rewritten)
                })
                .collect::<Vec<_>>()
        })
        .await;
    let mut refused = Vec::new();
    for (i, result) in results {
        match result {
            Ok(Some(rewritten)) => {
                broker.metrics.recompressed(items[i].1.records.len(), rewritten.len());
                items[i].1.records = Bytes::from(rewritten);
            }
            Ok(None) => {}
            Err(e) => refused.push((i, e)),
        }
    }
    refused
}

/// Routes each partition's records to its owner shard and fills in the answers.
async fn append(
    broker: &Rc<Broker>,
    topics: Vec<ringtail_net::messages::produce::ProduceTopic>,
    unknown_ids: &[bool],
    acks: Acks,
    frame_bytes: usize,
    resp: &mut ProduceResponse,
) {
    // A topic named by id is never created by producing to it.
    let names: Vec<String> =
        topics.iter().zip(unknown_ids).filter(|(_, unknown)| !**unknown).map(|(t, _)| t.name.clone()).collect();
    ensure_topics(broker, &names).await;
    let view = broker.view();
    let mut items = Vec::new();
    let mut slots = Vec::new();
    // Items whose topic names a codec (compression.type): (item index, codec, level).
    let mut recompress = Vec::new();
    for (ti, t) in topics.into_iter().enumerate() {
        let target = view
            .image
            .topic(&t.name)
            .and_then(|topic| topic_compression(&broker.config, &view.image, broker.node, &topic.configs));
        for (pi, p) in t.partitions.into_iter().enumerate() {
            let slot = &mut resp.topics[ti].partitions[pi];
            if unknown_ids[ti] {
                slot.error_code = error_code::UNKNOWN_TOPIC_ID;
                continue;
            }
            match (broker.route(&t.name, p.index), p.records) {
                (None, _) if validate_topic_name(&t.name).is_err() => {
                    slot.error_code = error_code::INVALID_TOPIC_EXCEPTION
                }
                (Some(_), _) if is_internal(&t.name) => {
                    // Only the broker writes its internal topics.
                    slot.error_code = error_code::INVALID_TOPIC_EXCEPTION;
                    slot.error_message = Some(format!("`{}` is an internal topic", t.name));
                }
                (None, _) => slot.error_code = error_code::UNKNOWN_TOPIC_OR_PARTITION,
                (Some(_), None) => slot.error_code = error_code::INVALID_RECORD,
                (Some((_, route @ (Route::Remote { .. } | Route::Offline))), _) => {
                    slot.error_code = errors::not_local(&route);
                    slot.current_leader = leader_hint(&route);
                }
                (Some((partition, Route::Local(owner))), Some(mut records)) => {
                    if let Some((codec, level)) = target {
                        // Recompressed into a buffer of its own: it pins no frame.
                        recompress.push((items.len(), codec, level));
                    } else if frame_bytes > records.len().saturating_mul(FRAME_PIN_RATIO_MAX) {
                        // The one extra copy of record bytes: without it, a small batch of a
                        // large multi-partition request pins the whole frame while cached.
                        broker.metrics.pinning_copy(records.len());
                        records = Bytes::copy_from_slice(&records);
                    }
                    slots.push((ti, pi));
                    items.push((owner, ProduceItem { partition, records }));
                }
            }
        }
    }
    if !recompress.is_empty() {
        let refused = recompress_items(broker, &mut items, recompress).await;
        // Refused items get their error and leave the request (from the back, so that the
        // indexes stay right).
        for (i, e) in refused.into_iter().rev() {
            let (ti, pi) = slots.remove(i);
            items.remove(i);
            let slot = &mut resp.topics[ti].partitions[pi];
            slot.error_code = errors::batch_error(&e);
            slot.error_message = Some(e.to_string());
        }
    }
    let results: Vec<ProduceResult> =
        scatter(broker, items, Err(ServeError::ShardStopped), |items, reply| ShardMsg::Produce { acks, items, reply })
            .await;
    for ((ti, pi), r) in slots.into_iter().zip(results) {
        let slot = &mut resp.topics[ti].partitions[pi];
        match r {
            Ok(produced) => {
                slot.base_offset = produced.base_offset as i64;
                slot.log_start_offset = produced.log_start_offset as i64;
                slot.log_append_time_ms = produced.log_append_time_ms;
            }
            Err(e) => {
                slot.error_code = errors::serve_error(&e);
                slot.base_offset = -1;
                slot.log_start_offset = -1;
                // Why a batch was refused, for the response's error message (not for a shard
                // that stopped or a partition that is not here).
                if matches!(e, ServeError::Partition(_)) {
                    slot.error_message = Some(e.to_string());
                }
            }
        }
    }
}
