//! Produce: each partition's records go to the shard owning the partition's replica, which
//! appends them as leader and answers once the acknowledgement asked for is reached.

use std::rc::Rc;

use bytes::Bytes;
use ringtail_log::batch::{self, RecompressLimits};
use ringtail_log::{BatchError, Compression};
use ringtail_net::error_code;
use ringtail_net::header::ApiKey;
use ringtail_net::messages::produce::{
    ProducePartitionResponse, ProduceRequest, ProduceResponse, ProduceTopicResponse,
};
use ringtail_net::{Reader, Writer};
use ringtail_replication::metadata::controller::{is_internal, validate_topic_name};
use ringtail_replication::{Acks, ShardId};

use super::common::{leader_endpoints, leader_hint, scatter, single, topic_name_by_id, Handled};
use crate::broker::controller::service::ensure_topics;
use crate::broker::data::{ProduceItem, ProduceResult};
use crate::broker::{Broker, ShardMsg};
use crate::config_keys::topic_compression;
use crate::errors;
use crate::limits::{RECOMPRESSED_BYTES_PER_FRAME_BYTE_MAX, RECOMPRESS_RECORDS_BYTES_MAX};
use crate::metrics::ShardMetrics;
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
        // The endpoints of the leaders the hints name, filled at the end.
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
        (None, Some(acks)) => {
            let timeout = std::time::Duration::from_millis(req.timeout_ms.max(0) as u64);
            append(broker, req.topics, &unknown_ids, acks, timeout, frame_bytes, &mut resp).await
        }
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
    let hinted = resp.topics.iter().flat_map(|t| &t.partitions).filter_map(|p| p.current_leader.map(|l| l.leader_id));
    resp.node_endpoints = leader_endpoints(broker, hinted);
    resp.encode(&mut w, version);
    single(w)
}

/// How a topic's batches are rewritten: its codec (compression.type) and level, and its
/// max.message.bytes, which a rewritten batch is held to as the topic's log holds it.
#[derive(Debug, Clone, Copy)]
struct Recompress {
    codec: Compression,
    level: Option<i32>,
    batch_bytes_max: usize,
}

type Rewritten = Result<Option<Vec<u8>>, BatchError>;

/// Rewrites the records of `which` items (item index, how) in their topic's codec, on the
/// shard's blocking thread: compression is CPU work a shard must not do inline. The request's
/// items share one budget for what they are rewritten to. Returns the items refused (a batch
/// that does not decompress, or past a limit), by index, ascending.
async fn recompress_items(
    broker: &Rc<Broker>,
    items: &mut [(ShardId, ProduceItem)],
    which: Vec<(usize, Recompress)>,
    frame_bytes: usize,
) -> Vec<(usize, BatchError)> {
    let output_bytes_max = recompressed_bytes_max(frame_bytes, &which);
    let jobs: Vec<(usize, Bytes, Recompress)> =
        which.into_iter().map(|(i, how)| (i, items[i].1.records.clone(), how)).collect();
    let results = glommio::executor().spawn_blocking(move || recompress_all(jobs, output_bytes_max)).await;
    settle(items, results, frame_bytes, &broker.metrics)
}

/// The most bytes one request's records may take once rewritten: a few times its frame (the
/// request budget holds the frame), and at least one batch of the largest size its topics take.
fn recompressed_bytes_max(frame_bytes: usize, which: &[(usize, Recompress)]) -> usize {
    let batch_bytes_max = which.iter().map(|(_, how)| how.batch_bytes_max).max().unwrap_or(0);
    frame_bytes.saturating_mul(RECOMPRESSED_BYTES_PER_FRAME_BYTE_MAX).max(batch_bytes_max)
}

/// On the blocking thread: each item's records rewritten in turn, all of them together within
/// `output_bytes_max` (an item past what is left is refused, and nothing of it is kept).
fn recompress_all(jobs: Vec<(usize, Bytes, Recompress)>, output_bytes_max: usize) -> Vec<(usize, Rewritten)> {
    let mut left = output_bytes_max;
    jobs.into_iter()
        .map(|(i, records, how)| {
            let limits = RecompressLimits {
                batch_bytes: how.batch_bytes_max,
                records_bytes: RECOMPRESS_RECORDS_BYTES_MAX,
                output_bytes: left,
            };
            let rewritten = batch::recompress_records(&records, how.codec, how.level, limits);
            if let Ok(Some(out)) = &rewritten {
                left = left.saturating_sub(out.len());
            }
            (i, rewritten)
        })
        .collect()
}

/// Takes the rewritten records into their items. Records left as received (already in the
/// topic's codec) are still slices of the request frame: they get the copy-out rule of the path
/// without recompression. Returns the items refused, by index, ascending.
fn settle(
    items: &mut [(ShardId, ProduceItem)],
    results: Vec<(usize, Rewritten)>,
    frame_bytes: usize,
    metrics: &ShardMetrics,
) -> Vec<(usize, BatchError)> {
    let mut refused = Vec::new();
    for (i, result) in results {
        let records = &mut items[i].1.records;
        match result {
            Ok(Some(rewritten)) => {
                metrics.recompressed(records.len(), rewritten.len());
                *records = Bytes::from(rewritten);
            }
            Ok(None) => *records = unpinned(records, frame_bytes, metrics),
            Err(e) => refused.push((i, e)),
        }
    }
    refused
}

/// `records`, copied out of their request frame of `frame_bytes` if they would keep it alive
/// (in the batch cache, after the rest of the request is done) more than
/// `FRAME_PIN_RATIO_MAX` times their size. The one extra copy of record bytes: without it, a
/// small batch of a large multi-partition request pins the whole frame while cached.
fn unpinned(records: &Bytes, frame_bytes: usize, metrics: &ShardMetrics) -> Bytes {
    if frame_bytes <= records.len().saturating_mul(FRAME_PIN_RATIO_MAX) {
        return records.clone();
    }
    metrics.pinning_copy(records.len());
    Bytes::copy_from_slice(records)
}

/// Routes each partition's records to its owner shard and fills in the answers.
async fn append(
    broker: &Rc<Broker>,
    topics: Vec<ringtail_net::messages::produce::ProduceTopic>,
    unknown_ids: &[bool],
    acks: Acks,
    timeout: std::time::Duration,
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
    // Items whose topic names a codec (compression.type): (item index, how they are rewritten).
    let mut recompress = Vec::new();
    for (ti, t) in topics.into_iter().enumerate() {
        let target = view.image.topic(&t.name).and_then(|topic| {
            let (codec, level) = topic_compression(&broker.config, &view.image, broker.node, &topic.configs)?;
            let batch_bytes_max =
                broker.topic_log_config(topic).map_or(ringtail_log::BATCH_BYTES_MAX_DEFAULT, |c| c.batch_bytes_max);
            Some(Recompress { codec, level, batch_bytes_max })
        });
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
                (Some((partition, Route::Local(owner))), Some(records)) => {
                    let records = match target {
                        // Rewritten into a buffer of its own, or copied out like the others
                        // if left as it is (`settle`).
                        Some(how) => {
                            recompress.push((items.len(), how));
                            records
                        }
                        None => unpinned(&records, frame_bytes, &broker.metrics),
                    };
                    slots.push((ti, pi));
                    items.push((owner, ProduceItem { partition, records }));
                }
            }
        }
    }
    if !recompress.is_empty() {
        let refused = recompress_items(broker, &mut items, recompress, frame_bytes).await;
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
    let results: Vec<ProduceResult> = scatter(broker, items, Err(ServeError::ShardStopped), |items, reply| {
        ShardMsg::Produce { acks, timeout, items, reply }
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use ringtail_log::batch::build;
    use ringtail_replication::{PartitionId, TopicId};

    fn item(records: Bytes) -> (ShardId, ProduceItem) {
        (ShardId(0), ProduceItem { partition: PartitionId { topic: TopicId::default(), index: 0 }, records })
    }

    /// `count` zstd batches of `plain_bytes` zeros each: a few dozen bytes apiece on the wire.
    fn zero_bombs(count: usize, plain_bytes: usize) -> Bytes {
        let limits = RecompressLimits { batch_bytes: 1 << 20, records_bytes: 1 << 20, output_bytes: 1 << 30 };
        let zeros = vec![0u8; plain_bytes];
        let mut records = Vec::new();
        for i in 0..count {
            let plain = build::batch(&[&zeros], i as i64);
            records.extend(batch::recompress_records(&plain, Compression::Zstd, None, limits).unwrap().unwrap());
        }
        Bytes::from(records)
    }

    const TO_NONE: Recompress = Recompress { codec: Compression::None, level: None, batch_bytes_max: 1 << 20 };

    #[test]
    fn records_left_as_received_are_copied_out_of_a_large_frame() {
        let frame = Bytes::from(vec![7u8; 10_000]);
        let (small, large) = (frame.slice(100..200), frame.slice(0..6_000));
        let mut items = vec![item(small.clone()), item(large.clone())];
        let metrics = ShardMetrics::new(true);
        let refused = settle(&mut items, vec![(0, Ok(None)), (1, Ok(None))], frame.len(), &metrics);
        assert!(refused.is_empty());
        let in_frame = |b: &Bytes| frame.as_ptr_range().contains(&b.as_ptr());
        assert_eq!(items[0].1.records, small);
        assert!(!in_frame(&items[0].1.records), "a small slice no longer pins the frame");
        assert!(in_frame(&items[1].1.records), "more than half of the frame is not copied");
        assert_eq!((metrics.pinning_copies.get(), metrics.pinning_copy_bytes.get()), (1, 100));
        // Rewritten records are a buffer of their own.
        let refused = settle(&mut items, vec![(1, Ok(Some(vec![1, 2, 3])))], frame.len(), &metrics);
        assert!(refused.is_empty());
        assert_eq!(items[1].1.records, Bytes::from_static(&[1, 2, 3]));
        assert_eq!(metrics.recompressed_out_bytes.get(), 3);
    }

    #[test]
    fn a_requests_items_share_one_budget_for_what_they_are_rewritten_to() {
        let bombs = zero_bombs(40, 16 << 10);
        let frame_bytes = 3 * bombs.len();
        // A few times the frame, and at least one batch of the largest size the topics take.
        let which = [(0, TO_NONE), (1, TO_NONE), (2, TO_NONE)];
        let budget = recompressed_bytes_max(frame_bytes, &which);
        assert_eq!(budget, (frame_bytes * RECOMPRESSED_BYTES_PER_FRAME_BYTE_MAX).max(1 << 20));
        assert_eq!(recompressed_bytes_max(10, &which), 1 << 20);
        assert!(40 * (16 << 10) < budget && 2 * 40 * (16 << 10) > budget, "one item fits, two do not");
        let jobs = vec![(0, bombs.clone(), TO_NONE), (1, bombs.clone(), TO_NONE), (2, bombs.clone(), TO_NONE)];
        let results = recompress_all(jobs, budget);
        assert!(matches!(&results[0], (0, Ok(Some(out))) if out.len() > 40 * (16 << 10)));
        for (i, result) in &results[1..] {
            match result {
                Err(BatchError::Decompression { reason }) => assert!(reason.contains("bytes rewritten"), "{reason}"),
                other => panic!("item {i}: expected the request's budget, got {other:?}"),
            }
        }
        // Records already in the topic's codec take nothing from it.
        let zstd = Recompress { codec: Compression::Zstd, ..TO_NONE };
        let results = recompress_all(vec![(0, bombs.clone(), zstd), (1, bombs, TO_NONE)], budget);
        assert!(matches!(results[0], (0, Ok(None))));
        assert!(matches!(results[1], (1, Ok(Some(_)))));
    }

    #[test]
    fn a_rewritten_batch_is_held_to_its_topics_max_message_bytes() {
        let bombs = zero_bombs(1, 64 << 10);
        let small = Recompress { batch_bytes_max: 32 << 10, ..TO_NONE };
        let results = recompress_all(vec![(0, bombs, small)], 1 << 30);
        assert!(matches!(results[0], (0, Err(BatchError::TooLarge { max, .. })) if max == 32 << 10), "{results:?}");
    }
}
