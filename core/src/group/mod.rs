//! Consumer groups: the group coordinator. A group belongs to partition
//! `hash(group) % N` of the internal topic `__consumer_offsets`, and the shard that owns that
//! partition owns the group: its membership state machine (`state`), its committed offsets,
//! and the records that store both (`records`). Requests for a group are sent to that shard;
//! nothing is locked.
//!
//! Committed offsets are acknowledged once their record is durable. Group metadata is appended
//! after each rebalance without waiting (a lost generation only makes members join again).
//! On start-up each owner replays its partitions. The topic is compacted by re-appending the
//! live records once dead ones dominate, then moving the log start past the old ones.

pub mod api;
pub mod records;
pub mod state;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use ringtail_log::batch::{build, records as batch_records};
use ringtail_log::{BatchHeader, LogError, Origin};
use ringtail_net::error_code;

use self::records::{GroupValue, OffsetValue, RecordKey};
use self::state::{GroupConfig, GroupState, Groups};
use crate::shard::Shard;

/// The internal topic holding committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// How often sessions, pending members and rebalance deadlines are checked.
const TICK: Duration = Duration::from_millis(100);
/// How often each partition is considered for compaction.
const COMPACTION_CHECK_TICKS: u32 = 10;
/// Dead records tolerated beyond the live ones before a partition is compacted.
const COMPACTION_SLACK_RECORDS: u64 = 10_000;
/// Records per batch appended to `__consumer_offsets`.
const BATCH_RECORDS_MAX: usize = 1000;
/// Bytes of keys and values per batch appended to `__consumer_offsets`.
const BATCH_BYTES_SOFT_MAX: usize = 512 << 10;
/// Bytes read at a time when replaying a partition.
const REPLAY_READ_BYTES: usize = 1 << 20;

/// Configs of `__consumer_offsets`: kept forever (compaction, not retention, bounds it), and
/// every commit is durable before it is acknowledged.
pub fn offsets_topic_configs() -> Vec<(String, String)> {
    [
        ("retention.ms", "-1"),
        ("retention.bytes", "-1"),
        ("segment.bytes", "16777216"),
        ("max.message.bytes", "8388608"),
        ("ringtail.durability", "sync"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The latest record of each key of a partition: record offset and value, by key.
type LiveRecords = HashMap<Bytes, (u64, Bytes)>;

/// The group coordinator of one shard.
pub struct Coordinator {
    pub groups: RefCell<Groups>,
    /// Per owned partition, the live records by key: record offset and value. Compaction
    /// re-appends exactly these.
    live: RefCell<HashMap<i32, LiveRecords>>,
}

impl Coordinator {
    pub fn new(config: GroupConfig) -> Coordinator {
        Coordinator { groups: RefCell::new(Groups::new(config)), live: RefCell::new(HashMap::new()) }
    }
}

/// The coordinator shard and `__consumer_offsets` partition of a group, if the topic exists.
pub fn coordinator_of(shard: &Shard, group_id: &str) -> Option<(usize, i32)> {
    let md = shard.metadata();
    let topic = md.topics.get(OFFSETS_TOPIC)?;
    let partition = records::partition_for(group_id, topic.shards.len());
    Some((*topic.shards.get(partition as usize)?, partition))
}

fn partition_of(shard: &Shard, group_id: &str) -> Option<i32> {
    coordinator_of(shard, group_id).map(|(_, p)| p)
}

/// Applies one stored record to the coordinator's state.
fn apply_record(shard: &Shard, partition: i32, offset: u64, key: Bytes, value: Option<Bytes>, now_ms: i64) {
    let coordinator = &shard.coordinator;
    {
        let mut live = coordinator.live.borrow_mut();
        let live = live.entry(partition).or_default();
        match &value {
            Some(v) => {
                live.insert(key.clone(), (offset, v.clone()));
            }
            None => {
                live.remove(&key);
            }
        }
    }
    let decoded = match RecordKey::decode(key) {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!(partition, offset, error = %e, "skipping an unreadable __consumer_offsets key");
            return;
        }
    };
    let mut groups = coordinator.groups.borrow_mut();
    match decoded {
        RecordKey::Offset { group, topic, partition: p } => {
            let value = match value.map(OffsetValue::decode).transpose() {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(offset, error = %e, "skipping an unreadable committed offset");
                    return;
                }
            };
            groups.apply_offset(&group, (topic, p), value, offset);
        }
        RecordKey::Group { group } => match value.map(GroupValue::decode).transpose() {
            Ok(v) => groups.apply_group(&group, v, now_ms),
            Err(e) => tracing::warn!(offset, error = %e, "skipping unreadable group metadata"),
        },
    }
}

/// Rebuilds the groups of every `__consumer_offsets` partition this shard owns by replaying it.
pub async fn load(shard: &Rc<Shard>) -> Result<(), LogError> {
    let md = shard.metadata();
    let Some(topic) = md.topics.get(OFFSETS_TOPIC) else { return Ok(()) };
    let now = ringtail_log::now_ms();
    for (p, &owner) in topic.shards.iter().enumerate() {
        if owner != shard.id {
            continue;
        }
        let partition = p as i32;
        let Some(log) = shard.log(OFFSETS_TOPIC, partition) else { continue };
        let end = log.log_end_offset();
        let mut offset = log.log_start_offset();
        let mut count = 0u64;
        while offset < end {
            let read = log.read(offset, REPLAY_READ_BYTES, end).await?;
            if read.bytes == 0 {
                break;
            }
            // Chunks come as header and body of each batch; rejoin them to parse records.
            let mut buf = Vec::with_capacity(read.bytes);
            for c in &read.chunks {
                buf.extend_from_slice(c);
            }
            let mut at = 0;
            while at < buf.len() {
                let header = ringtail_log::batch::validate_batch(&buf[at..], usize::MAX, Origin::Log)
                    .map_err(|e| LogError::Config { reason: format!("{OFFSETS_TOPIC}-{partition}: {e}") })?;
                let batch = &buf[at..at + header.size()];
                replay_batch(shard, partition, batch, &header, now, &mut count);
                at += header.size();
            }
            offset = read.next_offset;
        }
        if count > 0 {
            tracing::info!(partition, records = count, "loaded consumer groups from {OFFSETS_TOPIC}");
        }
    }
    Ok(())
}

fn replay_batch(shard: &Shard, partition: i32, batch: &[u8], header: &BatchHeader, now: i64, count: &mut u64) {
    if header.is_control() {
        return;
    }
    let Some(records) = batch_records(batch, header) else {
        tracing::warn!(partition, base_offset = header.base_offset, "skipping a compressed or unreadable batch");
        return;
    };
    for r in records {
        let Some(key) = r.key else { continue };
        let offset = header.base_offset as u64 + u64::from(r.offset_delta);
        apply_record(shard, partition, offset, Bytes::copy_from_slice(key), r.value.map(Bytes::copy_from_slice), now);
        *count += 1;
    }
}

/// Appends records to a `__consumer_offsets` partition in as many batches as needed and
/// returns the offset of each. The live-record map follows at once; the group state is the
/// caller's business.
fn append(shard: &Shard, partition: i32, entries: &[(Bytes, Option<Bytes>)]) -> Result<Vec<u64>, i16> {
    append_inner(shard, partition, entries).map_err(|(_, code)| code)
}

/// [`append`], but on an error after some batches the offsets of those come with the error.
fn append_inner(
    shard: &Shard,
    partition: i32,
    entries: &[(Bytes, Option<Bytes>)],
) -> Result<Vec<u64>, (Vec<u64>, i16)> {
    let Some(log) = shard.log(OFFSETS_TOPIC, partition) else { return Err((Vec::new(), error_code::NOT_COORDINATOR)) };
    let now = ringtail_log::now_ms();
    let mut offsets = Vec::with_capacity(entries.len());
    let mut start = 0;
    while start < entries.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < entries.len() && end - start < BATCH_RECORDS_MAX && (end == start || bytes < BATCH_BYTES_SOFT_MAX) {
            bytes += entries[end].0.len() + entries[end].1.as_ref().map_or(0, |v| v.len());
            end += 1;
        }
        let slice: Vec<build::KeyValue> =
            entries[start..end].iter().map(|(k, v)| (Some(&k[..]), v.as_deref())).collect();
        let batch = build::keyed_batch(&slice, now, false);
        match log.append(Bytes::from(batch), 0, now) {
            Ok(info) => {
                let mut live = shard.coordinator.live.borrow_mut();
                let live = live.entry(partition).or_default();
                for (i, (k, v)) in entries[start..end].iter().enumerate() {
                    let offset = info.base_offset + i as u64;
                    offsets.push(offset);
                    match v {
                        Some(v) => live.insert(k.clone(), (offset, v.clone())),
                        None => live.remove(k),
                    };
                }
            }
            Err(e) => {
                shard.storage_failed(&log, &e);
                tracing::warn!(partition, error = %e, "cannot append to {OFFSETS_TOPIC}");
                return Err((offsets, e.kafka_error_code()));
            }
        }
        start = end;
    }
    Ok(offsets)
}

/// Waits until `offset` of a `__consumer_offsets` partition is durable.
async fn wait_durable(shard: &Shard, partition: i32, offset: u64) -> Result<(), i16> {
    let Some(log) = shard.log(OFFSETS_TOPIC, partition) else { return Err(error_code::NOT_COORDINATOR) };
    log.wait_durable(offset).await.map_err(|e| {
        shard.storage_failed(&log, &e);
        e.kafka_error_code()
    })
}

/// Appends the group metadata the state machine queued (after rebalances); returns the last
/// offset appended per partition.
fn write_queued(shard: &Shard) -> Vec<(i32, u64)> {
    let writes = std::mem::take(&mut shard.coordinator.groups.borrow_mut().writes);
    let mut per_partition: HashMap<i32, Vec<(Bytes, Option<Bytes>)>> = HashMap::new();
    for (key, value) in writes {
        if let Some(p) = partition_of(shard, key.group()) {
            per_partition.entry(p).or_default().push((key.encode(), value));
        }
    }
    let mut appended = Vec::new();
    for (p, entries) in per_partition {
        // A failure was logged; members keep their in-memory generation.
        if let Ok(offsets) = append(shard, p, &entries) {
            appended.extend(offsets.last().map(|&o| (p, o)));
        }
    }
    appended
}

/// Runs timeouts every tick and compaction now and then, until the shard stops.
pub async fn run_timers(shard: Rc<Shard>) {
    let mut ticks = 0u32;
    loop {
        glommio::timer::sleep(TICK).await;
        shard.coordinator.groups.borrow_mut().tick(ringtail_log::now_ms());
        write_queued(&shard);
        ticks += 1;
        if ticks.is_multiple_of(COMPACTION_CHECK_TICKS) {
            let partitions: Vec<i32> = shard.coordinator.live.borrow().keys().copied().collect();
            for p in partitions {
                compact(&shard, p).await;
            }
        }
    }
}

/// Re-appends the live records of a partition once dead records dominate, then moves the log
/// start past everything older so whole segments can be deleted.
async fn compact(shard: &Rc<Shard>, partition: i32) {
    let Some(log) = shard.log(OFFSETS_TOPIC, partition) else { return };
    let live_count = shard.coordinator.live.borrow().get(&partition).map_or(0, |l| l.len()) as u64;
    let span = log.log_end_offset() - log.log_start_offset();
    if span <= 2 * live_count + COMPACTION_SLACK_RECORDS {
        return;
    }
    let mut entries: Vec<(u64, Bytes, Bytes)> = shard
        .coordinator
        .live
        .borrow()
        .get(&partition)
        .map(|l| l.iter().map(|(k, (o, v))| (*o, k.clone(), v.clone())).collect())
        .unwrap_or_default();
    entries.sort_by_key(|e| e.0);
    let new_start = log.log_end_offset();
    let batch: Vec<(Bytes, Option<Bytes>)> = entries.into_iter().map(|(_, k, v)| (k, Some(v))).collect();
    let last = if batch.is_empty() {
        None
    } else {
        match append(shard, partition, &batch) {
            Ok(offsets) => offsets.last().copied(),
            Err(_) => return,
        }
    };
    if let Some(last) = last {
        if wait_durable(shard, partition, last).await.is_err() {
            return;
        }
    }
    match log.advance_log_start_offset(new_start).await {
        Ok(segments) => {
            tracing::info!(partition, live = live_count, dropped = span, segments, "compacted {OFFSETS_TOPIC}")
        }
        Err(e) => shard.storage_failed(&log, &e),
    }
}

/// Waits for a JoinGroup or SyncGroup answer; a stopping broker answers NOT_COORDINATOR so
/// the client looks for the coordinator again.
async fn answer<T>(shard: &Shard, rx: flume::Receiver<T>, stopping: T) -> T {
    let got = futures_lite::future::or(async { rx.recv_async().await.ok() }, async {
        shard.shutdown_begun().await;
        None
    })
    .await;
    got.unwrap_or(stopping)
}

pub async fn join(shard: &Rc<Shard>, req: state::JoinRequest) -> state::JoinResponse {
    let rx = shard.coordinator.groups.borrow_mut().join(req, ringtail_log::now_ms());
    // A returning static member's new id is durable before it is told: after a coordinator
    // restart the old id would fence it.
    for (p, offset) in write_queued(shard) {
        if let Err(code) = wait_durable(shard, p, offset).await {
            return state::JoinResponse { error_code: code, generation_id: -1, ..Default::default() };
        }
    }
    let stopping =
        state::JoinResponse { error_code: error_code::NOT_COORDINATOR, generation_id: -1, ..Default::default() };
    answer(shard, rx, stopping).await
}

pub async fn sync(shard: &Rc<Shard>, req: state::SyncRequest) -> state::SyncResponse {
    let rx = shard.coordinator.groups.borrow_mut().sync(req, ringtail_log::now_ms());
    write_queued(shard);
    answer(shard, rx, state::SyncResponse { error_code: error_code::NOT_COORDINATOR, ..Default::default() }).await
}

pub fn heartbeat(shard: &Shard, group_id: &str, member_id: &str, instance: Option<&str>, generation: i32) -> i16 {
    shard.coordinator.groups.borrow_mut().heartbeat(group_id, member_id, instance, generation, ringtail_log::now_ms())
}

pub fn leave(shard: &Shard, group_id: &str, leaving: &[(String, Option<String>)]) -> Vec<i16> {
    let codes = shard.coordinator.groups.borrow_mut().leave(group_id, leaving, ringtail_log::now_ms());
    write_queued(shard);
    codes
}

/// One partition's offset to commit.
#[derive(Debug, Clone)]
pub struct OffsetToCommit {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// Commits offsets for a group once the member is checked: one error code per partition.
pub async fn commit(
    shard: &Rc<Shard>,
    group_id: &str,
    generation: i32,
    member_id: &str,
    instance: Option<&str>,
    offsets: Vec<OffsetToCommit>,
) -> Vec<i16> {
    let now = ringtail_log::now_ms();
    let checked = shard.coordinator.groups.borrow_mut().validate_commit(group_id, generation, member_id, instance, now);
    if let Err(code) = checked {
        return vec![code; offsets.len()];
    }
    let Some(partition) = partition_of(shard, group_id) else {
        return vec![error_code::COORDINATOR_NOT_AVAILABLE; offsets.len()];
    };
    let mut codes = vec![error_code::NONE; offsets.len()];
    let mut entries = Vec::new();
    let mut keyed = Vec::new();
    let mut adding = 0;
    for (i, o) in offsets.iter().enumerate() {
        let metadata = o.metadata.clone().unwrap_or_default();
        if metadata.len() > state::OFFSET_METADATA_BYTES_MAX {
            codes[i] = error_code::OFFSET_METADATA_TOO_LARGE;
            continue;
        }
        let tp = (o.topic.clone(), o.partition);
        let (new, count) = {
            let groups = shard.coordinator.groups.borrow();
            (groups.offset_is_new(group_id, &tp), groups.offset_count(group_id))
        };
        if new && count + adding >= shard.config.groups.offsets_per_group_max {
            codes[i] = error_code::INVALID_COMMIT_OFFSET_SIZE;
            continue;
        }
        adding += usize::from(new);
        let value = OffsetValue { offset: o.offset, leader_epoch: o.leader_epoch, metadata, commit_timestamp_ms: now };
        let key = RecordKey::Offset { group: group_id.to_string(), topic: o.topic.clone(), partition: o.partition };
        entries.push((key.encode(), Some(value.encode())));
        keyed.push((i, tp, value));
    }
    if entries.is_empty() {
        return codes;
    }
    // Batches appended before a failure are in the log and would be replayed: they are
    // applied and acknowledged like the rest; only the partitions not appended fail.
    let (record_offsets, failed) = match append_inner(shard, partition, &entries) {
        Ok(offsets) => (offsets, None),
        Err((offsets, code)) => (offsets, Some(code)),
    };
    let durable = match record_offsets.last() {
        Some(&last) => wait_durable(shard, partition, last).await,
        None => Ok(()),
    };
    let appended = record_offsets.len();
    for (n, (i, tp, value)) in keyed.into_iter().enumerate() {
        match (n < appended, durable) {
            (true, Ok(())) => {
                shard.coordinator.groups.borrow_mut().apply_offset(group_id, tp, Some(value), record_offsets[n])
            }
            (true, Err(code)) => codes[i] = code,
            (false, _) => codes[i] = failed.unwrap_or(error_code::UNKNOWN_SERVER_ERROR),
        }
    }
    codes
}

/// A committed offset as OffsetFetch reports it.
#[derive(Debug, Clone)]
pub struct FetchedOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
}

pub fn fetch_offsets(shard: &Shard, group_id: &str, wanted: Option<Vec<(String, Vec<i32>)>>) -> Vec<FetchedOffset> {
    let groups = shard.coordinator.groups.borrow();
    groups
        .committed(group_id, wanted.as_deref())
        .into_iter()
        .map(|(topic, partition, c)| match c {
            Some(c) => FetchedOffset {
                topic,
                partition,
                offset: c.value.offset,
                leader_epoch: c.value.leader_epoch,
                metadata: c.value.metadata,
            },
            None => FetchedOffset { topic, partition, offset: -1, leader_epoch: -1, metadata: String::new() },
        })
        .collect()
}

/// OffsetDelete: a group-level error, or one error per partition.
pub async fn delete_offsets(
    shard: &Rc<Shard>,
    group_id: &str,
    partitions: Vec<(String, i32)>,
) -> Result<Vec<i16>, i16> {
    let (state, subscribed) = {
        let groups = shard.coordinator.groups.borrow();
        (groups.state(group_id), groups.subscribed_topics(group_id))
    };
    match state {
        None | Some(GroupState::Dead) => return Err(error_code::GROUP_ID_NOT_FOUND),
        Some(GroupState::Empty) => {}
        Some(_) if subscribed.is_none() => return Err(error_code::NON_EMPTY_GROUP),
        Some(_) => {}
    }
    let subscribed = subscribed.unwrap_or_default();
    let mut codes = vec![error_code::NONE; partitions.len()];
    let mut entries = Vec::new();
    let mut deleted = Vec::new();
    for (i, (topic, partition)) in partitions.iter().enumerate() {
        if subscribed.contains(topic) {
            codes[i] = error_code::GROUP_SUBSCRIBED_TO_TOPIC;
            continue;
        }
        let key = RecordKey::Offset { group: group_id.to_string(), topic: topic.clone(), partition: *partition };
        entries.push((key.encode(), None));
        deleted.push((i, (topic.clone(), *partition)));
    }
    if entries.is_empty() {
        return Ok(codes);
    }
    let Some(p) = partition_of(shard, group_id) else { return Err(error_code::COORDINATOR_NOT_AVAILABLE) };
    let record_offsets = append(shard, p, &entries)?;
    wait_durable(shard, p, *record_offsets.last().expect("not empty")).await?;
    let mut groups = shard.coordinator.groups.borrow_mut();
    for ((_, tp), record_offset) in deleted.into_iter().zip(record_offsets) {
        groups.apply_offset(group_id, tp, None, record_offset);
    }
    Ok(codes)
}

/// DeleteGroups for one group: its offsets and metadata are deleted durably.
pub async fn delete_group(shard: &Rc<Shard>, group_id: &str) -> i16 {
    if group_id.is_empty() {
        return error_code::INVALID_GROUP_ID;
    }
    if let Err(code) = shard.coordinator.groups.borrow().check_delete(group_id) {
        return code;
    }
    let Some(p) = partition_of(shard, group_id) else { return error_code::COORDINATOR_NOT_AVAILABLE };
    // Every key of the group in the log, including commits appended but not yet applied.
    let mut entries: Vec<(Bytes, Option<Bytes>)> = shard
        .coordinator
        .live
        .borrow()
        .get(&p)
        .map(|live| {
            live.keys()
                .filter(|k| RecordKey::decode((*k).clone()).is_ok_and(|key| key.group() == group_id))
                .map(|k| (k.clone(), None))
                .collect()
        })
        .unwrap_or_default();
    let group_key = RecordKey::Group { group: group_id.to_string() }.encode();
    if !entries.iter().any(|(k, _)| *k == group_key) {
        entries.push((group_key, None));
    }
    let offsets = match append(shard, p, &entries) {
        Ok(offsets) => offsets,
        Err(code) => return code,
    };
    let last = *offsets.last().expect("a group key at least");
    shard.coordinator.groups.borrow_mut().remove(group_id, last, ringtail_log::now_ms());
    match wait_durable(shard, p, last).await {
        Ok(()) => error_code::NONE,
        Err(code) => code,
    }
}

pub fn describe(shard: &Shard, group_id: &str) -> state::GroupSummary {
    shard.coordinator.groups.borrow().describe(group_id)
}

pub fn list(shard: &Shard) -> Vec<(String, GroupState, String)> {
    shard.coordinator.groups.borrow().list()
}
