//! The owner's side of data requests: appends, reads and offsets of the replicas this shard
//! owns, through the partition layer. Results carry domain errors; the Kafka handlers map
//! them to error codes.

use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use ringtail_net::{Chunk, FileChunk};
use ringtail_replication::{
    Acks, FollowerFetch, FoundOffset, Isolation, NodeId, OffsetSpec, Partition, PartitionId, Role,
};

use crate::runtime::table::ServeError;
use crate::runtime::Shard;
use crate::runtime::{read_budget, throttle};

/// One partition's part of a produce request.
#[derive(Debug)]
pub struct ProduceItem {
    pub partition: PartitionId,
    pub records: Bytes,
}

/// The base offset and the log start offset of an accepted batch, and its LogAppendTime (-1
/// for a CreateTime topic).
#[derive(Debug, Clone, Copy)]
pub struct Produced {
    pub base_offset: u64,
    pub log_start_offset: u64,
    pub log_append_time_ms: i64,
}

pub type ProduceResult = Result<Produced, ServeError>;

/// How long a fetch whose only data is held back by a replication throttle waits before
/// reading again (the budget refills meanwhile).
const THROTTLE_RECHECK: Duration = Duration::from_millis(100);

/// One partition's part of a fetch request.
#[derive(Debug, Clone)]
pub struct FetchItem {
    pub partition: PartitionId,
    pub offset: i64,
    pub max_bytes: usize,
    /// The leader epoch the fetcher knows (-1: not checked), KIP-320.
    pub current_leader_epoch: i32,
    pub reader: FetchReader,
}

/// Who reads, which decides how far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchReader {
    /// Up to the high watermark; a log cut below its last fetched epoch is told where (Fetch
    /// v12 on, -1 for none).
    Consumer { last_fetched_epoch: i32 },
    /// A follower, as its leader serves it: up to the log end, its progress noted, a diverged
    /// log told where.
    Follower { node: NodeId, last_fetched_epoch: i32 },
    /// Kafka's debugging replica id (-2): any replica, up to its log end.
    Debug,
}

/// A cold partition read of a fetch, running while the rest of the fetch is assembled.
struct ColdRead {
    index: usize,
    partition: Rc<Partition>,
    reader: FetchReader,
    offset: i64,
    charge: Option<read_budget::ReadCharge>,
    read: glommio::Task<Result<ringtail_log::ReadBatches, ringtail_replication::PartitionError>>,
}

#[derive(Debug, Clone)]
pub struct FetchResult {
    pub error: Option<ServeError>,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub records: Vec<Chunk>,
    pub bytes: usize,
    /// A follower's log diverged: the epoch and where it ends here.
    pub diverging: Option<(i32, i64)>,
}

impl FetchResult {
    fn failed(error: ServeError) -> FetchResult {
        FetchResult {
            error: Some(error),
            high_watermark: -1,
            log_start_offset: -1,
            records: Vec::new(),
            bytes: 0,
            diverging: None,
        }
    }
}

impl Default for FetchResult {
    /// The result of a shard that stopped before answering.
    fn default() -> Self {
        FetchResult::failed(ServeError::ShardStopped)
    }
}

/// How a fetch that finds nothing waits on its owner shard.
#[derive(Debug, Clone)]
pub struct FetchWait {
    pub max_wait: Duration,
    /// Ends the wait when its sender is dropped: the requester has enough from other shards.
    pub cancel: flume::Receiver<()>,
}

/// One partition's part of a ListOffsets request.
#[derive(Debug, Clone, Copy)]
pub struct OffsetsItem {
    pub partition: PartitionId,
    pub spec: OffsetSpec,
    /// The leader epoch the client knows (-1: not checked), KIP-320.
    pub current_leader_epoch: i32,
}

/// The offset found (with the record's timestamp, for a timestamp lookup, and its leader
/// epoch), or none that late.
pub type OffsetsResult = Result<Option<FoundOffset>, ServeError>;

/// One partition's part of an OffsetForLeaderEpoch request.
#[derive(Debug, Clone, Copy)]
pub struct EpochItem {
    pub partition: PartitionId,
    /// The epoch whose end is asked for.
    pub epoch: i32,
    /// The leader epoch the client knows (-1: not checked), KIP-320.
    pub current_leader_epoch: i32,
    /// Kafka's debugging replica id asked: any replica answers from its own cache.
    pub any_replica: bool,
}

/// The largest epoch at or below the one asked for and where it ends, Kafka's answer.
pub type EpochResult = Result<(i32, i64), ServeError>;

impl Shard {
    fn replica(&self, id: PartitionId) -> Result<Rc<Partition>, ServeError> {
        Ok(self.partitions.lookup(id)?)
    }

    /// Appends each item as leader, then waits for what `acks` asks. Every append is queued
    /// before the first wait, so one group commit covers them all. acks=all waits at most
    /// `timeout` for the in-sync replicas (REQUEST_TIMED_OUT after: the batch may still commit).
    pub async fn produce_local(&self, acks: Acks, items: Vec<ProduceItem>, timeout: Duration) -> Vec<ProduceResult> {
        let deadline = std::time::Instant::now() + timeout;
        let now = ringtail_log::now_ms();
        let mut results = Vec::with_capacity(items.len());
        let mut waits = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let partition = match self.replica(item.partition) {
                Ok(p) => p,
                Err(e) => {
                    results.push(Err(e));
                    continue;
                }
            };
            let bytes = item.records.len() as u64;
            match partition.append_as_leader(item.records, acks, now) {
                Ok(appended) => {
                    let info = appended.info;
                    if !info.duplicate {
                        self.metrics.topic(partition.topic(), |c| {
                            c.bytes_in += bytes;
                            c.records_in += info.last_offset - info.base_offset + 1;
                        });
                    }
                    results.push(Ok(Produced {
                        base_offset: info.base_offset,
                        log_start_offset: info.log_start_offset,
                        log_append_time_ms: info.log_append_time_ms,
                    }));
                    waits.push((i, partition, appended.wait));
                }
                Err(e) => {
                    self.storage_failed(&partition, &e);
                    tracing::debug!(topic = %partition.topic(), partition = item.partition.index, error = %e, "produce refused");
                    results.push(Err(e.into()));
                }
            }
        }
        let _waiting = crate::metrics::GaugeGuard::new(&self.metrics.produce_waiting, waits.len() as i64);
        for (i, partition, wait) in waits {
            let acked = async { Some(partition.wait_acked(wait).await) };
            let outcome = match acks {
                Acks::All => {
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    futures_lite::future::or(acked, async {
                        glommio::timer::sleep(left).await;
                        None
                    })
                    .await
                }
                _ => acked.await,
            };
            match outcome {
                Some(Ok(())) => {}
                Some(Err(e)) => {
                    self.storage_failed(&partition, &e);
                    results[i] = Err(e.into());
                }
                None => results[i] = Err(ServeError::TimedOut),
            }
        }
        results
    }

    /// Reads the partitions; with `wait`, a read that finds nothing (and no error) parks on the
    /// partitions until one has data, the wait ends, the requester cancels or shutdown begins,
    /// and then reads again.
    pub async fn fetch_local(&self, items: Vec<FetchItem>, budget: usize, wait: Option<FetchWait>) -> Vec<FetchResult> {
        let (results, throttled) = self.read_partitions(&items, budget).await;
        let Some(wait) = wait else { return results };
        if results.iter().any(|r| r.bytes > 0 || r.error.is_some() || r.diverging.is_some()) {
            return results;
        }
        if throttled.iter().any(|t| *t) {
            // A throttled replica has data but no budget: the wait is for the others' data or
            // for the budget to refill, not for an append that has already happened.
            let others: Vec<FetchItem> =
                items.iter().zip(&throttled).filter(|(_, t)| !**t).map(|(i, _)| i.clone()).collect();
            let short = FetchWait { max_wait: wait.max_wait.min(THROTTLE_RECHECK), cancel: wait.cancel };
            self.park(&others, short).await;
        } else {
            self.park(&items, wait).await;
        }
        self.read_partitions(&items, budget).await.0
    }

    async fn park(&self, items: &[FetchItem], wait: FetchWait) {
        let _parked = crate::metrics::GaugeGuard::new(&self.metrics.fetch_parked, 1);
        // Consumers wait for the high watermark to pass their offset; followers and debugging
        // reads for the log end.
        let mut waits: Vec<std::pin::Pin<Box<dyn Future<Output = ()>>>> = items
            .iter()
            .filter_map(|item| {
                let p = self.partitions.get(item.partition)?;
                let offset = item.offset.max(0) as u64;
                Some(match item.reader {
                    FetchReader::Consumer { .. } => {
                        Box::pin(p.wait_for_data(offset)) as std::pin::Pin<Box<dyn Future<Output = ()>>>
                    }
                    _ => {
                        let appended = p.log().wait_appended(offset);
                        Box::pin(async move {
                            let _ = appended.await;
                        })
                    }
                })
            })
            .collect();
        let any = futures_lite::future::poll_fn(move |cx| {
            for w in waits.iter_mut() {
                if w.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(());
                }
            }
            Poll::Pending
        });
        let cancelled = async {
            let _ = wait.cancel.recv_async().await;
        };
        let ends = futures_lite::future::or(self.shutdown_begun(), glommio::timer::sleep(wait.max_wait));
        futures_lite::future::or(futures_lite::future::or(any, cancelled), async {
            ends.await;
        })
        .await;
    }

    /// Reads the partitions in order until `budget` bytes are read; later partitions then get
    /// no records (as in Kafka, the response fills in request order). No partition reads past
    /// the budget, except that the first partition with data returns at least one batch.
    /// Also says which items a replication throttle left empty.
    async fn read_partitions(&self, items: &[FetchItem], mut budget: usize) -> (Vec<FetchResult>, Vec<bool>) {
        let mut results = Vec::with_capacity(items.len());
        let mut throttled = vec![false; items.len()];
        let leader_throttle = self.throttle(throttle::Side::Leader);
        let mut first = true;
        let mut pending: Vec<ColdRead> = Vec::new();
        for item in items {
            let partition = match self.replica(item.partition) {
                Ok(p) => p,
                Err(e) => {
                    results.push(FetchResult::failed(e));
                    continue;
                }
            };
            let checked = match item.reader {
                FetchReader::Follower { node, last_fetched_epoch } => partition.follower_fetch(
                    node,
                    item.offset,
                    last_fetched_epoch,
                    item.current_leader_epoch,
                    ringtail_log::now_ms(),
                ),
                FetchReader::Consumer { last_fetched_epoch } => {
                    partition.consumer_fetch(item.offset, last_fetched_epoch, item.current_leader_epoch)
                }
                FetchReader::Debug => Ok(FollowerFetch::Read),
            };
            let mut result = FetchResult {
                error: None,
                high_watermark: partition.high_watermark() as i64,
                log_start_offset: partition.log_start_offset() as i64,
                records: Vec::new(),
                bytes: 0,
                diverging: None,
            };
            match checked {
                Ok(FollowerFetch::Read) => {}
                Ok(FollowerFetch::Diverging { epoch, end_offset }) => {
                    result.diverging = Some((epoch, end_offset));
                    results.push(result);
                    continue;
                }
                Err(e) => {
                    result.error = Some(e.into());
                    results.push(result);
                    continue;
                }
            }
            // A consumer reading a follower (KIP-392) past that replica's high watermark, which
            // the leader's may be ahead of: nothing yet, never an offset out of range.
            let past_follower = matches!(item.reader, FetchReader::Consumer { .. })
                && !matches!(partition.role(), Role::Leader)
                && item.offset >= result.log_start_offset
                && item.offset >= result.high_watermark;
            if past_follower {
                results.push(result);
                continue;
            }
            let isolation = match item.reader {
                FetchReader::Consumer { .. } => Isolation::HighWatermark,
                _ => Isolation::LogEnd,
            };
            let visible_end = match isolation {
                Isolation::HighWatermark => partition.high_watermark(),
                Isolation::LogEnd => partition.log_end_offset(),
            };
            let in_range = item.offset >= 0 && item.offset as u64 <= partition.log_end_offset();
            if budget == 0 && !first && in_range {
                results.push(result);
                continue;
            }
            // A follower outside the ISR under a leader-side replication throttle reads what the
            // throttle has left, and nothing while it has nothing left.
            let throttle = match (item.reader, &leader_throttle) {
                (FetchReader::Follower { node, .. }, Some(t)) => t.budget(&partition, node),
                _ => None,
            };
            if throttle == Some(0) && visible_end > item.offset.max(0) as u64 {
                throttled[results.len()] = true;
                results.push(result);
                continue;
            }
            // Never more than the response's budget, whatever the partition's own limit; the
            // log returns at least one batch, so the first partition with data always
            // progresses (Kafka's rule: a response exceeds its limit by one batch at most).
            let max_bytes = item.max_bytes.min(budget).min(throttle.unwrap_or(usize::MAX)).max(1);
            // A cold read is charged to the shard's read budget until its response is written.
            // The first partition with data waits for room; later ones are left empty while the
            // budget is spent, as if the response were full.
            let mut charge = None;
            let visible = item.offset >= 0 && (item.offset as u64) < visible_end;
            if visible && !partition.is_cached(item.offset as u64) {
                charge = match first {
                    true => Some(self.read_budget.charge(max_bytes as u64).await),
                    false => self.read_budget.try_charge(max_bytes as u64),
                };
                if charge.is_none() {
                    results.push(result);
                    continue;
                }
            }
            let index = results.len();
            results.push(result);
            if charge.is_some() && throttle.is_none() {
                // A cold read: started now and awaited below, so the disk reads of one fetch
                // are in flight together (queue depth up to the partitions read) instead of one
                // after another. Its whole `max_bytes` is taken from the response's budget up
                // front; what it does not fill is not given to later partitions.
                let read = {
                    let partition = partition.clone();
                    let offset = item.offset;
                    glommio::spawn_local(async move { partition.read_to_send(offset, max_bytes, isolation).await })
                };
                pending.push(ColdRead { index, partition, reader: item.reader, offset: item.offset, charge, read });
                first = false;
                budget = budget.saturating_sub(max_bytes);
                continue;
            }
            let outcome = partition.read_to_send(item.offset, max_bytes, isolation).await;
            if let Ok(read) = &outcome {
                first &= read.bytes == 0;
                budget = budget.saturating_sub(read.bytes);
                if let (Some(_), Some(t)) = (throttle, &leader_throttle) {
                    t.take(read.bytes);
                }
            }
            self.fill_read(&mut results[index], &partition, item.reader, item.offset, charge, outcome);
        }
        for cold in pending {
            let outcome = cold.read.await;
            self.fill_read(&mut results[cold.index], &cold.partition, cold.reader, cold.offset, cold.charge, outcome);
        }
        (results, throttled)
    }

    /// Puts one partition's read into its fetch result: the records (the last chunk holding the
    /// read-budget charge until the response is written), the bytes-out counters, or the error.
    fn fill_read(
        &self,
        result: &mut FetchResult,
        partition: &Partition,
        reader: FetchReader,
        offset: i64,
        charge: Option<read_budget::ReadCharge>,
        outcome: Result<ringtail_log::ReadBatches, ringtail_replication::PartitionError>,
    ) {
        match outcome {
            Ok(mut read) => {
                let mut file_hold = None;
                if let Some(mut charge) = charge {
                    charge.resize(read.bytes as u64);
                    if let Some(last) = read.chunks.pop() {
                        read.chunks.push(charge.attach(last));
                    } else if read.file.is_some() {
                        // Sent from the file: the charge lives until the bytes are sent.
                        file_hold = Some(Arc::new(charge) as Arc<dyn std::any::Any + Send + Sync>);
                    }
                }
                match reader {
                    FetchReader::Follower { .. } => self
                        .metrics
                        .replication_bytes_out
                        .set(self.metrics.replication_bytes_out.get() + read.bytes as u64),
                    _ => self.metrics.topic(partition.topic(), |c| {
                        c.bytes_out += read.bytes as u64;
                        c.records_out += read.next_offset.saturating_sub(offset as u64);
                    }),
                }
                result.bytes = read.bytes;
                result.records = match read.file {
                    Some(f) => {
                        self.metrics.zero_copy_read(f.len);
                        vec![Chunk::File(FileChunk { fd: f.fd, position: f.position, len: f.len, hold: file_hold })]
                    }
                    None => read.chunks.into_iter().map(Chunk::Mem).collect(),
                };
            }
            Err(e) => {
                self.storage_failed(partition, &e);
                result.error = Some(e.into());
            }
        }
    }

    pub async fn list_offsets_local(&self, items: Vec<OffsetsItem>) -> Vec<OffsetsResult> {
        let mut results = Vec::with_capacity(items.len());
        for item in items {
            let result = match self.replica(item.partition) {
                // A stale or future leader epoch (KIP-320): FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH.
                Ok(partition) => match partition.check_current_leader_epoch(item.current_leader_epoch) {
                    Err(e) => Err(e.into()),
                    Ok(()) => match partition.offset_for(item.spec).await {
                        Ok(found) => Ok(found),
                        Err(e) => {
                            self.storage_failed(&partition, &e);
                            Err(e.into())
                        }
                    },
                },
                Err(e) => Err(e),
            };
            results.push(result);
        }
        results
    }

    /// OffsetForLeaderEpoch on this shard's replicas, in the order asked.
    pub fn end_offsets_for_epochs_local(&self, items: Vec<EpochItem>) -> Vec<EpochResult> {
        items
            .into_iter()
            .map(|item| {
                let partition = self.replica(item.partition)?;
                if item.any_replica {
                    return Ok(partition.local_end_offset_for_epoch(item.epoch));
                }
                Ok(partition.end_offset_for_epoch(item.epoch, item.current_leader_epoch)?)
            })
            .collect()
    }

    /// DeleteRecords on this shard's replicas: each partition's new log start (Kafka's low
    /// watermark), in the order asked.
    pub async fn delete_records_local(&self, items: Vec<(PartitionId, i64)>) -> Vec<Result<u64, ServeError>> {
        let mut results = Vec::with_capacity(items.len());
        for (id, offset) in items {
            let result = match self.replica(id) {
                Ok(partition) => partition.delete_records(offset).await.map_err(|e| {
                    self.storage_failed(&partition, &e);
                    ServeError::from(e)
                }),
                Err(e) => Err(e),
            };
            results.push(result);
        }
        results
    }

    /// The idempotent producers with state in each partition asked for.
    pub fn producers_local(&self, items: Vec<PartitionId>) -> Vec<Result<Vec<ProducerSummary>, ServeError>> {
        items
            .into_iter()
            .map(|id| {
                let partition = self.replica(id)?;
                if let Err(e) = partition.check_leader() {
                    return Err(e.into());
                }
                let states = partition.log().producer_states();
                let mut producers: Vec<ProducerSummary> = states
                    .iter()
                    .filter_map(|(producer_id, entry)| {
                        let last = entry.batches.last()?;
                        Some(ProducerSummary {
                            producer_id,
                            epoch: entry.epoch,
                            last_sequence: last.last_seq,
                            last_timestamp: last.max_timestamp,
                        })
                    })
                    .collect();
                producers.sort_unstable_by_key(|p| p.producer_id);
                Ok(producers)
            })
            .collect()
    }

    /// The size in bytes of every replica this shard serves.
    pub fn replica_sizes_local(&self) -> Vec<(PartitionId, u64)> {
        self.partitions.all().iter().map(|p| (p.id(), p.log().size_bytes())).collect()
    }

    /// Closes and deletes this shard's replicas of a deleted topic.
    pub async fn delete_replicas_local(&self, topic: &ringtail_replication::metadata::TopicImage) {
        self.metrics.forget_topic(&topic.name);
        for partition in self.partitions.remove_topic(topic.id) {
            let _ = partition.log().close(ringtail_log::now_ms()).await;
            let dir = partition.log().dir().to_path_buf();
            drop(partition);
            if let Err(e) = remove_dir_off_shard(dir.clone()).await {
                tracing::warn!(dir = %dir.display(), error = %e, "could not remove a deleted partition's directory");
            }
        }
    }
}

impl Shard {
    /// Closes this shard's replica of a partition moved off this node and deletes its files.
    pub async fn remove_replica_local(&self, id: PartitionId) {
        let Some(dir) = self.partitions.get(id).map(|p| p.log().dir().to_path_buf()) else { return };
        tracing::info!(dir = %dir.display(), "a reassignment moved this replica away; deleting its files");
        if let Err(e) = self.drop_replica(id, dir.clone()).await {
            tracing::warn!(dir = %dir.display(), error = %e, "could not remove a moved replica's directory");
        }
    }

    /// Takes a replica out of this shard's table (closing its log if it is open) and deletes
    /// its directory `dir`.
    pub async fn drop_replica(&self, id: PartitionId, dir: std::path::PathBuf) -> std::io::Result<()> {
        if let Some(partition) = self.partitions.remove(id) {
            let _ = partition.log().close(ringtail_log::now_ms()).await;
        }
        remove_dir_off_shard(dir).await
    }
}

/// Removes a directory tree. That is blocking work: a helper thread does it, off the shard.
pub async fn remove_dir_off_shard(dir: std::path::PathBuf) -> std::io::Result<()> {
    let (tx, rx) = flume::bounded(1);
    std::thread::spawn(move || {
        let result = match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        };
        let _ = tx.send(result);
    });
    rx.recv_async().await.unwrap_or_else(|_| Err(std::io::Error::other("the helper thread stopped")))
}

/// An idempotent producer's state in a partition, for DescribeProducers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerSummary {
    pub producer_id: i64,
    pub epoch: i16,
    /// The sequence number of its last batch's last record.
    pub last_sequence: i32,
    /// The largest timestamp of its last batch.
    pub last_timestamp: i64,
}
