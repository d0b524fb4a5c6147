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

pub mod consumer;
pub mod error;
pub mod records;
pub mod state;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use ringtail_log::batch::{build, records as batch_records};
use ringtail_log::{BatchHeader, Origin};
use ringtail_replication::{
    Acks, Isolation, LeaderEpoch, Partition, PartitionError, PartitionId, Role, ShardId, TopicId,
};

use self::error::GroupError;
use self::records::{GroupValue, OffsetValue, RecordKey};
use self::state::{GroupConfig, GroupState, Groups};
use crate::runtime::routing::Route;
use crate::runtime::Shard;

/// The internal topic holding committed offsets and group metadata.
pub use ringtail_replication::metadata::controller::OFFSETS_TOPIC;
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
    /// The runtime of the shard this coordinator runs on.
    shard: Rc<Shard>,
    pub groups: RefCell<Groups>,
    /// Per owned partition, the live records by key: record offset and value. Compaction
    /// re-appends exactly these.
    live: RefCell<HashMap<i32, LiveRecords>>,
    /// The `__consumer_offsets` partitions whose groups are in memory: loaded while this node
    /// led them at that leader epoch, or being loaded.
    loaded: RefCell<HashMap<i32, Load>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    Loading,
    Loaded(LeaderEpoch),
}

impl Coordinator {
    pub fn new(shard: Rc<Shard>, config: GroupConfig) -> Coordinator {
        Coordinator {
            shard,
            groups: RefCell::new(Groups::new(config)),
            live: RefCell::new(HashMap::new()),
            loaded: RefCell::new(HashMap::new()),
        }
    }
}

/// The coordinator shard and `__consumer_offsets` partition of a group, if this node leads
/// that partition.
pub fn coordinator_of(shard: &Shard, group_id: &str) -> Option<(ShardId, i32)> {
    let view = shard.view();
    let topic = view.image.topic(OFFSETS_TOPIC)?;
    let partition = records::partition_for(group_id, topic.partitions.len());
    match view.route(OFFSETS_TOPIC, partition)? {
        (_, Route::Local(owner)) => Some((owner, partition)),
        _ => None,
    }
}

fn partition_of(shard: &Shard, group_id: &str) -> Option<i32> {
    coordinator_of(shard, group_id).map(|(_, p)| p)
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

/// A committed offset as OffsetFetch reports it.
#[derive(Debug, Clone)]
pub struct FetchedOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
}

impl Coordinator {
    /// This shard's replica of a `__consumer_offsets` partition.
    fn offsets_partition(&self, index: i32) -> Option<Rc<Partition>> {
        let topic = self.shard.view().image.topic(OFFSETS_TOPIC)?.id;
        self.shard.partitions.get(PartitionId { topic, index })
    }

    /// Applies one stored record to the coordinator's state.
    fn apply_record(&self, partition: i32, offset: u64, key: Bytes, value: Option<Bytes>, now_ms: i64) {
        let coordinator = self;
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
            key => {
                if let Err(e) = groups.apply_consumer(key, value, now_ms) {
                    tracing::warn!(offset, error = %e, "skipping an unreadable consumer group record");
                }
            }
        }
    }

    /// Whether the groups of a `__consumer_offsets` partition can be served here: it is led here
    /// and its groups were loaded at the current leader epoch (else a load is in progress, or
    /// starts at the next tick).
    pub fn check_loaded(&self, partition: i32) -> Result<(), GroupError> {
        let Some(p) = self.offsets_partition(partition) else { return Err(GroupError::NotCoordinator) };
        if p.role() != Role::Leader {
            return Err(GroupError::NotCoordinator);
        }
        match self.loaded.borrow().get(&partition) {
            Some(Load::Loaded(epoch)) if *epoch == p.leader_epoch() => Ok(()),
            _ => Err(GroupError::CoordinatorLoadInProgress),
        }
    }

    /// Loads the groups of the `__consumer_offsets` partitions this shard leads and has not
    /// loaded at their current leader epoch (a new leader replays its replica: everything a
    /// follower copied), and forgets those of partitions it no longer leads. At start-up, when
    /// partitions open, and at every tick (leadership moves with the metadata).
    pub async fn reconcile(&self) -> Result<(), PartitionError> {
        let view = self.shard.view();
        let Some(topic) = view.image.topic(OFFSETS_TOPIC) else { return Ok(()) };
        let (topic_id, count) = (topic.id, topic.partitions.len());
        for p in self.shard.partitions.all().into_iter().filter(|p| p.id().topic == topic_id) {
            let index = p.id().index;
            let state = self.loaded.borrow().get(&index).copied();
            let leading = p.role() == Role::Leader;
            match (leading, state) {
                (true, Some(Load::Loaded(epoch))) if epoch == p.leader_epoch() => {}
                (_, Some(Load::Loading)) => {}
                (true, _) => {
                    let epoch = p.leader_epoch();
                    self.unload(index, count);
                    self.loaded.borrow_mut().insert(index, Load::Loading);
                    let result = self.load_partitions(topic_id, &[index]).await;
                    match result {
                        Ok(()) => {
                            self.loaded.borrow_mut().insert(index, Load::Loaded(epoch));
                        }
                        Err(e) => {
                            self.loaded.borrow_mut().remove(&index);
                            self.shard.storage_failed(&p, &e);
                            return Err(e);
                        }
                    }
                }
                (false, Some(Load::Loaded(_))) => {
                    let groups = self.unload(index, count);
                    self.loaded.borrow_mut().remove(&index);
                    tracing::info!(partition = index, groups, "no longer the coordinator of {OFFSETS_TOPIC} partition");
                }
                (false, None) => {}
            }
        }
        Ok(())
    }

    /// Forgets the groups of one `__consumer_offsets` partition (of `count`); how many.
    fn unload(&self, partition: i32, count: usize) -> usize {
        self.live.borrow_mut().remove(&partition);
        self.groups.borrow_mut().unload(|group| records::partition_for(group, count) == partition)
    }

    /// Loads the groups of every `__consumer_offsets` partition this shard leads.
    pub async fn load(&self) -> Result<(), PartitionError> {
        self.reconcile().await
    }

    /// Rebuilds the groups of the given `__consumer_offsets` partitions that this shard owns by
    /// replaying them to their log end.
    async fn load_partitions(&self, topic: TopicId, indexes: &[i32]) -> Result<(), PartitionError> {
        let now = ringtail_log::now_ms();
        for &partition in indexes {
            let id = PartitionId { topic, index: partition };
            let Some(log) = self.shard.partitions.get(id) else { continue };
            let end = log.log_end_offset();
            let mut offset = log.log_start_offset();
            let mut count = 0u64;
            while offset < end {
                let read = log.read(offset as i64, REPLAY_READ_BYTES, Isolation::LogEnd).await?;
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
                        .map_err(|e| PartitionError::Log(e.into()))?;
                    let batch = &buf[at..at + header.size()];
                    self.replay_batch(partition, batch, &header, now, &mut count);
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

    fn replay_batch(&self, partition: i32, batch: &[u8], header: &BatchHeader, now: i64, count: &mut u64) {
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
            self.apply_record(partition, offset, Bytes::copy_from_slice(key), r.value.map(Bytes::copy_from_slice), now);
            *count += 1;
        }
    }

    /// Appends records to a `__consumer_offsets` partition in as many batches as needed and
    /// returns the offset of each. The live-record map follows at once; the group state is the
    /// caller's business.
    fn append(&self, partition: i32, entries: &[(Bytes, Option<Bytes>)]) -> Result<Vec<u64>, GroupError> {
        self.append_inner(partition, entries).map_err(|(_, error)| error)
    }

    /// [`append`], but on an error after some batches the offsets of those come with the error.
    fn append_inner(
        &self,
        partition: i32,
        entries: &[(Bytes, Option<Bytes>)],
    ) -> Result<Vec<u64>, (Vec<u64>, GroupError)> {
        let Some(log) = self.offsets_partition(partition) else {
            return Err((Vec::new(), GroupError::NotCoordinator));
        };
        let now = ringtail_log::now_ms();
        let mut offsets = Vec::with_capacity(entries.len());
        let mut start = 0;
        while start < entries.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < entries.len()
                && end - start < BATCH_RECORDS_MAX
                && (end == start || bytes < BATCH_BYTES_SOFT_MAX)
            {
                bytes += entries[end].0.len() + entries[end].1.as_ref().map_or(0, |v| v.len());
                end += 1;
            }
            let slice: Vec<build::KeyValue> =
                entries[start..end].iter().map(|(k, v)| (Some(&k[..]), v.as_deref())).collect();
            let batch = build::keyed_batch(&slice, now, false);
            match log.append_as_leader(Bytes::from(batch), Acks::None, now) {
                Ok(appended) => {
                    let info = appended.info;
                    let mut live = self.live.borrow_mut();
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
                    self.shard.storage_failed(&log, &e);
                    tracing::warn!(partition, error = %e, "cannot append to {OFFSETS_TOPIC}");
                    return Err((offsets, GroupError::OffsetsPartition(e)));
                }
            }
            start = end;
        }
        Ok(offsets)
    }

    /// Waits until `offset` of a `__consumer_offsets` partition is durable.
    async fn wait_durable(&self, partition: i32, offset: u64) -> Result<(), GroupError> {
        let Some(partition) = self.offsets_partition(partition) else { return Err(GroupError::NotCoordinator) };
        partition.wait_acked(partition.ack_wait_all(offset, partition.log().tail_epoch())).await.map_err(|e| {
            self.shard.storage_failed(&partition, &e);
            GroupError::OffsetsPartition(e)
        })
    }

    /// Appends the group metadata the state machine queued (after rebalances); returns the last
    /// offset appended per partition.
    fn write_queued(&self) -> Vec<(i32, u64)> {
        let writes = std::mem::take(&mut self.groups.borrow_mut().writes);
        let mut per_partition: HashMap<i32, Vec<(Bytes, Option<Bytes>)>> = HashMap::new();
        for (key, value) in writes {
            if let Some(p) = partition_of(&self.shard, key.group()) {
                per_partition.entry(p).or_default().push((key.encode(), value));
            }
        }
        let mut appended = Vec::new();
        for (p, entries) in per_partition {
            // A failure was logged; members keep their in-memory generation.
            if let Ok(offsets) = self.append(p, &entries) {
                appended.extend(offsets.last().map(|&o| (p, o)));
            }
        }
        appended
    }

    /// Runs timeouts every tick and compaction now and then, until the shard stops.
    pub async fn run_timers(&self) {
        let mut ticks = 0u32;
        loop {
            glommio::timer::sleep(TICK).await;
            // Leadership of `__consumer_offsets` partitions moves with the metadata.
            if let Err(e) = self.reconcile().await {
                tracing::warn!(error = %e, "cannot load consumer groups from {OFFSETS_TOPIC}");
            }
            let view = self.shard.view();
            self.groups.borrow_mut().tick(ringtail_log::now_ms(), &consumer::ImageTopics(&view.image));
            self.write_queued();
            ticks += 1;
            if ticks.is_multiple_of(COMPACTION_CHECK_TICKS) {
                let partitions: Vec<i32> = self.live.borrow().keys().copied().collect();
                for p in partitions {
                    self.compact(p).await;
                }
            }
        }
    }

    /// Re-appends the live records of a partition once dead records dominate, then moves the log
    /// start past everything older so whole segments can be deleted.
    async fn compact(&self, partition: i32) {
        let Some(log) = self.offsets_partition(partition) else { return };
        let live_count = self.live.borrow().get(&partition).map_or(0, |l| l.len()) as u64;
        let span = log.log_end_offset() - log.log_start_offset();
        if span <= 2 * live_count + COMPACTION_SLACK_RECORDS {
            return;
        }
        let mut entries: Vec<(u64, Bytes, Bytes)> = self
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
            match self.append(partition, &batch) {
                Ok(offsets) => offsets.last().copied(),
                Err(_) => return,
            }
        };
        if let Some(last) = last {
            if self.wait_durable(partition, last).await.is_err() {
                return;
            }
        }
        match log.log().advance_log_start_offset(new_start).await {
            Ok(segments) => {
                tracing::info!(partition, live = live_count, dropped = span, segments, "compacted {OFFSETS_TOPIC}")
            }
            Err(e) => self.shard.storage_failed(&log, &PartitionError::Log(e)),
        }
    }

    /// Waits for a JoinGroup or SyncGroup answer; a stopping broker answers NOT_COORDINATOR so
    /// the client looks for the coordinator again.
    async fn answer<T>(&self, rx: flume::Receiver<T>, stopping: T) -> T {
        let got = futures_lite::future::or(async { rx.recv_async().await.ok() }, async {
            self.shard.shutdown_begun().await;
            None
        })
        .await;
        got.unwrap_or(stopping)
    }

    pub async fn join(&self, req: state::JoinRequest) -> state::JoinResponse {
        let rx = self.groups.borrow_mut().join(req, ringtail_log::now_ms());
        // A returning static member's new id is durable before it is told: after a coordinator
        // restart the old id would fence it.
        for (p, offset) in self.write_queued() {
            if let Err(error) = self.wait_durable(p, offset).await {
                return state::JoinResponse { error: Some(error), generation_id: -1, ..Default::default() };
            }
        }
        let stopping =
            state::JoinResponse { error: Some(GroupError::NotCoordinator), generation_id: -1, ..Default::default() };
        self.answer(rx, stopping).await
    }

    pub async fn sync(&self, req: state::SyncRequest) -> state::SyncResponse {
        let rx = self.groups.borrow_mut().sync(req, ringtail_log::now_ms());
        self.write_queued();
        let stopping = state::SyncResponse { error: Some(GroupError::NotCoordinator), ..Default::default() };
        self.answer(rx, stopping).await
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError> {
        self.groups.borrow_mut().heartbeat(group_id, member_id, instance, generation, ringtail_log::now_ms())
    }

    pub fn leave(&self, group_id: &str, leaving: &[(String, Option<String>)]) -> Vec<Result<(), GroupError>> {
        let results = self.groups.borrow_mut().leave(group_id, leaving, ringtail_log::now_ms());
        self.write_queued();
        results
    }

    /// Commits offsets for a group once the member is checked: one result per partition.
    pub async fn commit(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance: Option<&str>,
        offsets: Vec<OffsetToCommit>,
    ) -> Vec<Result<(), GroupError>> {
        let now = ringtail_log::now_ms();
        let checked = self.groups.borrow_mut().validate_commit(group_id, generation, member_id, instance, now);
        if let Err(error) = checked {
            return vec![Err(error); offsets.len()];
        }
        let Some(partition) = partition_of(&self.shard, group_id) else {
            return vec![Err(GroupError::CoordinatorNotAvailable); offsets.len()];
        };
        let mut results = vec![Ok(()); offsets.len()];
        let mut entries = Vec::new();
        let mut keyed = Vec::new();
        let mut adding = 0;
        for (i, o) in offsets.iter().enumerate() {
            let metadata = o.metadata.clone().unwrap_or_default();
            if metadata.len() > state::OFFSET_METADATA_BYTES_MAX {
                results[i] = Err(GroupError::OffsetMetadataTooLarge {
                    bytes: metadata.len(),
                    bytes_max: state::OFFSET_METADATA_BYTES_MAX,
                });
                continue;
            }
            let tp = (o.topic.clone(), o.partition);
            let (new, count) = {
                let groups = self.groups.borrow();
                (groups.offset_is_new(group_id, &tp), groups.offset_count(group_id))
            };
            let offsets_max = self.shard.config.groups.offsets_per_group_max;
            if new && count + adding >= offsets_max {
                results[i] = Err(GroupError::InvalidCommitOffsetSize { offsets_max });
                continue;
            }
            adding += usize::from(new);
            let value =
                OffsetValue { offset: o.offset, leader_epoch: o.leader_epoch, metadata, commit_timestamp_ms: now };
            let key = RecordKey::Offset { group: group_id.to_string(), topic: o.topic.clone(), partition: o.partition };
            entries.push((key.encode(), Some(value.encode())));
            keyed.push((i, tp, value));
        }
        if entries.is_empty() {
            return results;
        }
        // Batches appended before a failure are in the log and would be replayed: they are
        // applied and acknowledged like the rest; only the partitions not appended fail.
        let (record_offsets, failed) = match self.append_inner(partition, &entries) {
            Ok(offsets) => (offsets, None),
            Err((offsets, error)) => (offsets, Some(error)),
        };
        let durable = match record_offsets.last() {
            Some(&last) => self.wait_durable(partition, last).await,
            None => Ok(()),
        };
        let appended = record_offsets.len();
        for (n, (i, tp, value)) in keyed.into_iter().enumerate() {
            match (n < appended, &durable) {
                (true, Ok(())) => self.groups.borrow_mut().apply_offset(group_id, tp, Some(value), record_offsets[n]),
                (true, Err(error)) => results[i] = Err(error.clone()),
                (false, _) => results[i] = Err(failed.clone().unwrap_or(GroupError::UnknownServerError)),
            }
        }
        results
    }

    /// Committed offsets; a member of a consumer-protocol group that names itself (OffsetFetch
    /// v9+) must be a member at its current epoch.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        wanted: Option<Vec<(String, Vec<i32>)>>,
        member: Option<(String, i32)>,
    ) -> Result<Vec<FetchedOffset>, GroupError> {
        let groups = self.groups.borrow();
        if let Some((member_id, epoch)) = member {
            groups.validate_consumer_fetch(group_id, &member_id, epoch)?;
        }
        Ok(groups
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
            .collect())
    }

    /// OffsetDelete: a group-level error, or one result per partition.
    pub async fn delete_offsets(
        &self,
        group_id: &str,
        partitions: Vec<(String, i32)>,
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        let (state, subscribed) = {
            let groups = self.groups.borrow();
            (groups.state(group_id), groups.subscribed_topics(group_id))
        };
        match state {
            None | Some(GroupState::Dead) => return Err(GroupError::GroupIdNotFound),
            Some(GroupState::Empty) => {}
            Some(_) if subscribed.is_none() => return Err(GroupError::NonEmptyGroup),
            Some(_) => {}
        }
        let subscribed = subscribed.unwrap_or_default();
        let mut results = vec![Ok(()); partitions.len()];
        let mut entries = Vec::new();
        let mut deleted = Vec::new();
        for (i, (topic, partition)) in partitions.iter().enumerate() {
            if subscribed.contains(topic) {
                results[i] = Err(GroupError::GroupSubscribedToTopic);
                continue;
            }
            let key = RecordKey::Offset { group: group_id.to_string(), topic: topic.clone(), partition: *partition };
            entries.push((key.encode(), None));
            deleted.push((i, (topic.clone(), *partition)));
        }
        if entries.is_empty() {
            return Ok(results);
        }
        let Some(p) = partition_of(&self.shard, group_id) else { return Err(GroupError::CoordinatorNotAvailable) };
        let record_offsets = self.append(p, &entries)?;
        self.wait_durable(p, *record_offsets.last().expect("not empty")).await?;
        let mut groups = self.groups.borrow_mut();
        for ((_, tp), record_offset) in deleted.into_iter().zip(record_offsets) {
            groups.apply_offset(group_id, tp, None, record_offset);
        }
        Ok(results)
    }

    /// DeleteGroups for one group: its offsets and metadata are deleted durably.
    pub async fn delete_group(&self, group_id: &str) -> Result<(), GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        self.groups.borrow().check_delete(group_id)?;
        let Some(p) = partition_of(&self.shard, group_id) else { return Err(GroupError::CoordinatorNotAvailable) };
        // Every key of the group in the log, including commits appended but not yet applied.
        let mut entries: Vec<(Bytes, Option<Bytes>)> = self
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
        let offsets = self.append(p, &entries)?;
        let last = *offsets.last().expect("a group key at least");
        self.groups.borrow_mut().remove(group_id, last, ringtail_log::now_ms());
        self.wait_durable(p, last).await
    }

    /// A ConsumerGroupHeartbeat (already checked by `consumer::validate`). What it changed is
    /// durable in `__consumer_offsets` before the member is told (as Kafka's coordinator does):
    /// a member never holds an epoch or partitions a new coordinator would not know of.
    pub async fn consumer_heartbeat(
        &self,
        group_id: &str,
        hb: consumer::machine::Heartbeat,
    ) -> Result<consumer::machine::Answer, GroupError> {
        let answer = {
            let view = self.shard.view();
            let topics = consumer::ImageTopics(&view.image);
            let session_ms = crate::config_keys::group_value(
                "consumer.session.timeout.ms",
                &self.shard.config,
                &view.image,
                group_id,
            );
            self.groups.borrow_mut().consumer_heartbeat(group_id, hb, &topics, session_ms, ringtail_log::now_ms())
        };
        for (p, offset) in self.write_queued() {
            self.wait_durable(p, offset).await?;
        }
        answer
    }

    /// A consumer group's state: `None` if unknown, `Some(Err)` if it is a classic group.
    pub fn consumer_group(&self, group_id: &str) -> Option<Result<consumer::machine::ConsumerGroup, ()>> {
        self.groups.borrow().consumer_group(group_id)
    }

    pub fn describe(&self, group_id: &str) -> state::GroupSummary {
        self.groups.borrow().describe(group_id)
    }

    pub fn list(&self) -> Vec<(String, String, String, &'static str)> {
        self.groups.borrow().list()
    }
}
