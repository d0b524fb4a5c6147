//! The partition log: appends, group-committed flushes, reads, retention and crash recovery.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};

use crate::batch::{self, BatchHeader, Origin, BATCH_HEADER_BYTES};
use crate::checkpoint::{self, Kind, PartitionState};
use crate::config::{align_down, align_up, Durability, LogConfig, BLOCK_BYTES};
use crate::epochs::LeaderEpochs;
use crate::error::{BatchError, LogError};
use crate::fault::{Faults, IoOp};
use crate::flusher::Flusher;
use crate::index::{OffsetIndex, TimeIndex};
use crate::platform::{self, DmaBuffer, DmaFile, IoResult, OpenOptions, Semaphore, Task};
use crate::producer::{ProducerStates, Verdict};
use crate::segment::{self, segment_path, ScanOutcome};
use crate::space::DiskSpace;

/// Bytes of a batch header up to the end of partitionLeaderEpoch: baseOffset and the epoch are
/// rewritten by the broker, batchLength between them is kept. Cached batches keep this rewritten
/// prefix apart from the body received from the client.
const PATCHED_HEADER_BYTES: usize = 16;
/// Default size of a flush's write chunks; full chunks reuse buffers from the shard's pool.
/// The shard's [`Flusher`] may set another (`ringtail iotune` measures what the disk likes).
pub const WRITE_BYTES_DEFAULT: usize = 1 << 20;
/// Default number of chunk writes of one flush outstanding at once.
pub const WRITES_IN_FLIGHT_DEFAULT: usize = 8;
const _: () = assert!(WRITE_BYTES_DEFAULT.is_multiple_of(BLOCK_BYTES as usize));

pub(crate) const STATE_FILE: &str = "partition.state";
pub(crate) const CLEAN_SHUTDOWN_FILE: &str = "clean-shutdown";
pub(crate) const PRODUCER_SNAPSHOT_FILE: &str = "producer.snapshot";
pub(crate) const LEADER_EPOCHS_FILE: &str = "leader-epochs";
pub(crate) const HIGH_WATERMARK_FILE: &str = "high-watermark";
/// A producer snapshot larger than this is not read (the state is rebuilt from the log).
const PRODUCER_SNAPSHOT_BYTES_MAX: u64 = 1 << 30;
/// Producer snapshots taken at segment rolls and not yet written; older ones are dropped
/// (recovery then replays a little more of the log).
const PENDING_SNAPSHOTS_MAX: usize = 2;
/// Tail rollbacks remembered for waiters created before them; a waiter older than all of them
/// is told its write may not have happened.
const ROLLBACKS_KEPT: usize = 16;

/// What `append` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: u64,
    pub last_offset: u64,
    pub max_timestamp: i64,
    /// The broker's timestamp of the batches on a LogAppendTime topic, -1 otherwise (Produce's
    /// `log_append_time_ms`).
    pub log_append_time_ms: i64,
    pub log_start_offset: u64,
    /// The batch repeats one an idempotent producer already wrote: nothing was appended and
    /// the offsets are those of the original.
    pub duplicate: bool,
    /// The log's tail epoch at the append: waits made with it (`wait_durable_since`) learn
    /// whether the batch was taken back for lack of space, even if they begin after that.
    pub tail_epoch: u64,
}

/// Whole batches read from the log, as byte chunks to send in order, without copying cached data;
/// or, for a read of verified sealed data (with `zero_copy_reads`), the file range holding them,
/// for the caller to send from the file without reading it.
#[derive(Debug, Default, Clone)]
pub struct ReadBatches {
    pub chunks: Vec<Bytes>,
    /// Instead of `chunks`: the batches are these bytes of a segment file.
    pub file: Option<FileRange>,
    pub bytes: usize,
    /// One past the last offset returned; the offset asked for if nothing was returned.
    pub next_offset: u64,
}

/// Whole batches lying in `len` bytes of a segment file from `position`, verified by the
/// scrubber. `fd` is the file opened for buffered reads (the log writes with direct I/O); it
/// stays readable after the segment is deleted, and is shortened only by a truncation.
#[derive(Debug, Clone)]
pub struct FileRange {
    pub fd: Arc<OwnedFd>,
    pub position: u64,
    pub len: usize,
}

/// What `open` found and repaired.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The previous run ended with `close`.
    pub clean_shutdown: bool,
    pub segments_loaded: usize,
    /// Segments read batch by batch because they were past the recovery point or badly indexed.
    pub segments_scanned: usize,
    /// Bytes dropped at the first torn or corrupt batch, and in segments after it.
    pub bytes_truncated: u64,
    pub segments_removed: usize,
    /// Offset of the producer snapshot used, if one was.
    pub producer_snapshot: Option<u64>,
    /// Batches read from the log to rebuild the idempotent producer state.
    pub producer_batches_replayed: u64,
    /// Why a producer snapshot found on disk was not used (the whole log was replayed).
    pub producer_snapshot_ignored: Option<String>,
    /// Recovery could not write some index or state files for lack of space (they are written
    /// later; the next start may scan more).
    pub no_space: Option<String>,
    /// The high watermark last saved (`save_high_watermark`), within the recovered log.
    pub high_watermark: Option<u64>,
}

/// A batch in the recent-batch cache: the rewritten header and the body as received.
#[derive(Debug)]
struct CachedBatch {
    base_offset: u64,
    last_offset: u64,
    max_timestamp: i64,
    segment_base: u64,
    position: u64,
    header: Bytes,
    body: Bytes,
    /// The segment as it was before this batch, to take the batch back if it cannot be written.
    mark: SegmentMark,
}

/// What appending a batch changes in its segment's metadata.
#[derive(Debug, Clone, Copy)]
struct SegmentMark {
    size: u64,
    next_offset: u64,
    max_timestamp: i64,
    max_timestamp_relative: u32,
    bytes_since_index: u64,
    offset_entries: usize,
    time_entries: usize,
    first_append_ms: Option<i64>,
}

/// The tail from `point` on was taken back (never written) at tail epoch `epoch`.
#[derive(Debug)]
struct Rollback {
    epoch: u64,
    point: u64,
    error: LogError,
}

/// Appends are refused while it lives (`PartitionLog::pause_appends`), on every way out of
/// what paused them.
struct AppendsPaused<'a> {
    log: &'a PartitionLog,
}

impl Drop for AppendsPaused<'_> {
    fn drop(&mut self) {
        if let Ok(mut st) = self.log.state.try_borrow_mut() {
            st.appends_paused = None;
        }
    }
}

impl CachedBatch {
    fn size(&self) -> u64 {
        (self.header.len() + self.body.len()) as u64
    }

    fn end(&self) -> u64 {
        self.position + self.size()
    }
}

/// What one scrub step did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScrubStep {
    /// Bytes verified.
    pub bytes: u64,
    /// The step finished verifying a segment.
    pub segment_verified: bool,
    /// More remains to verify (false: every finalized segment is verified).
    pub pending: bool,
}

#[derive(Debug)]
pub(crate) struct Segment {
    pub base_offset: u64,
    pub file: Option<Rc<DmaFile>>,
    /// Logical length: bytes appended, written or not.
    pub size: u64,
    /// Bytes written to the file.
    pub flushed: u64,
    /// Bytes made durable by fdatasync.
    pub synced: u64,
    /// File length reserved by fallocate.
    pub allocated: u64,
    pub next_offset: u64,
    pub offset_index: OffsetIndex,
    pub time_index: TimeIndex,
    pub max_timestamp: i64,
    /// Offset of the batch carrying `max_timestamp`, relative to `base_offset`.
    pub max_timestamp_relative: u32,
    pub bytes_since_index: u64,
    /// Wall-clock time of the first append, for rolling by age.
    pub first_append_ms: Option<i64>,
    /// Takes no more appends.
    pub sealed: bool,
    /// Sealed, written, truncated to `size`, indexed and synced.
    pub finalized: bool,
    /// How far the scrubber has verified this (finalized) segment's batches, and the base
    /// offset expected there; verified whole when `verified_to == size`.
    pub verified_to: u64,
    pub verified_next_offset: u64,
    /// The file opened for zero-copy reads, once one has been served.
    pub splice_fd: Option<Arc<OwnedFd>>,
}

impl Segment {
    pub(crate) fn new(base_offset: u64) -> Self {
        Segment {
            base_offset,
            file: None,
            size: 0,
            flushed: 0,
            synced: 0,
            allocated: 0,
            next_offset: base_offset,
            offset_index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            max_timestamp: -1,
            max_timestamp_relative: 0,
            bytes_since_index: 0,
            first_append_ms: None,
            sealed: false,
            finalized: false,
            verified_to: 0,
            verified_next_offset: base_offset,
            splice_fd: None,
        }
    }

    /// True when a batch spanning `offset_count` offsets still fits the u32 relative offsets
    /// of the indexes.
    pub(crate) fn fits_offsets(&self, offset_count: u64) -> bool {
        self.next_offset + offset_count - 1 - self.base_offset <= u64::from(u32::MAX)
    }

    fn mark(&self) -> SegmentMark {
        SegmentMark {
            size: self.size,
            next_offset: self.next_offset,
            max_timestamp: self.max_timestamp,
            max_timestamp_relative: self.max_timestamp_relative,
            bytes_since_index: self.bytes_since_index,
            offset_entries: self.offset_index.len(),
            time_entries: self.time_index.len(),
            first_append_ms: self.first_append_ms,
        }
    }

    /// Takes back every batch appended after `mark` was taken (none of them written).
    fn restore(&mut self, mark: &SegmentMark) {
        assert!(self.flushed <= mark.size, "only unwritten batches are taken back");
        self.size = mark.size;
        self.next_offset = mark.next_offset;
        self.max_timestamp = mark.max_timestamp;
        self.max_timestamp_relative = mark.max_timestamp_relative;
        self.bytes_since_index = mark.bytes_since_index;
        self.offset_index.truncate(mark.offset_entries);
        self.time_index.truncate(mark.time_entries);
        self.first_append_ms = mark.first_append_ms;
    }

    /// Ends the segment at `next_offset`, a batch boundary at byte `position` with every byte
    /// before it written (a truncation, before the file is shortened). Index entries past it
    /// go; the largest timestamp is the last time index entry's until a rescan finds the
    /// exact one.
    fn cut_to(&mut self, next_offset: u64, position: u64) {
        assert!(position > 0, "a segment cut at its start is dropped whole");
        assert!(position <= self.flushed, "a cut into written data");
        let relative = next_offset - self.base_offset;
        while !self.offset_index.is_empty() && u64::from(self.offset_index.lookup_entry(u32::MAX).0) >= relative {
            self.offset_index.truncate(self.offset_index.len() - 1);
        }
        while self.time_index.last().is_some_and(|(_, o)| u64::from(o) >= relative) {
            self.time_index.truncate(self.time_index.len() - 1);
        }
        (self.max_timestamp, self.max_timestamp_relative) = self.time_index.last().unwrap_or((-1, 0));
        self.size = position;
        self.flushed = position;
        self.synced = self.synced.min(position);
        if self.verified_to >= position {
            (self.verified_to, self.verified_next_offset) = (position, next_offset);
        }
        self.next_offset = next_offset;
        self.sealed = true;
        self.finalized = false;
    }

    /// The index files of a sealed segment: the time index ends with the largest timestamp.
    pub(crate) fn encode_indexes(&mut self) -> (Vec<u8>, Vec<u8>) {
        self.time_index.maybe_push(self.max_timestamp, self.max_timestamp_relative);
        (self.offset_index.encode(), self.time_index.encode())
    }

    /// Records a batch of `size` bytes at the end of the segment in the indexes.
    pub(crate) fn index_batch(
        &mut self,
        base_offset: u64,
        last_offset: u64,
        max_timestamp: i64,
        size: u64,
        index_interval_bytes: u64,
    ) {
        let relative =
            u32::try_from(base_offset - self.base_offset).expect("maybe_roll keeps offsets within u32 of the base");
        if self.size == 0 || max_timestamp > self.max_timestamp {
            self.max_timestamp = max_timestamp;
            self.max_timestamp_relative = relative;
        }
        if self.size == 0 || self.bytes_since_index >= index_interval_bytes {
            if self.size > 0 {
                self.offset_index.push(relative, self.size as u32);
            }
            self.time_index.maybe_push(self.max_timestamp, self.max_timestamp_relative);
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += size;
        self.size += size;
        self.next_offset = last_offset + 1;
    }
}

#[derive(Debug)]
struct State {
    /// Ordered by base offset; the last one takes appends unless sealed.
    segments: VecDeque<Segment>,
    log_start_offset: u64,
    next_offset: u64,
    /// Every offset below is written to its file (not necessarily synced).
    written_offset: u64,
    /// Every offset below is written and fdatasynced.
    durable_offset: u64,
    recovery_point: u64,
    /// Contiguous recent batches ending at `next_offset`; holds every batch not yet written.
    cache: VecDeque<CachedBatch>,
    cache_bytes: u64,
    unflushed_bytes: u64,
    failed: Option<LogError>,
    /// Tasks waiting for a flush, by registration id (see `DurableWait`).
    waiters: Vec<(u64, Waker)>,
    /// Readers waiting for the next append (long-polling fetches).
    append_waiters: Vec<(u64, Waker)>,
    next_waiter_id: u64,
    /// Queued with the flusher and not yet flushed.
    flush_requested: bool,
    last_sync_ms: i64,
    /// Idempotent producers' sequences, as of `next_offset`.
    producers: ProducerStates,
    /// Producer snapshots taken when segments were created (at their base offsets), waiting
    /// until the data below them is durable.
    pending_snapshots: VecDeque<(u64, Vec<u8>)>,
    /// Offset of the producer snapshot on disk.
    snapshot_offset: Option<u64>,
    /// Counts tail rollbacks: a wait remembers it, to learn whether its batch was taken back.
    tail_epoch: u64,
    rollbacks: VecDeque<Rollback>,
    /// Appends are refused with this while the producer state is rebuilt after a rollback.
    appends_paused: Option<LogError>,
    /// The last flush found no space (async durability keeps its batches queued and retries
    /// once the file system has room again).
    space_stalled: bool,
    /// Which leader epoch wrote which offsets; changed at `epochs_version`, on disk as of
    /// `epochs_written` (a flush writes it before any batch of a new epoch).
    epochs: LeaderEpochs,
    epochs_version: u64,
    epochs_written: u64,
}

impl State {
    fn check(&self) -> Result<(), LogError> {
        match &self.failed {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// The error for a wait on `last_offset` created at tail epoch `epoch`, if a rollback since
    /// took its batch back.
    fn rolled_back(&self, epoch: u64, last_offset: u64) -> Option<LogError> {
        if epoch == self.tail_epoch {
            return None;
        }
        if self.rollbacks.front().is_none_or(|r| r.epoch > epoch + 1) {
            // Forgotten (the wait is older than every rollback kept): its write may not have happened.
            return self.rollbacks.back().map(|r| r.error.clone());
        }
        // Any rollback since the wait began may have taken its batch, not only the first: a
        // truncation cuts written data, below the point of a rollback before it.
        self.rollbacks.iter().filter(|r| r.epoch > epoch).find(|r| last_offset >= r.point).map(|r| r.error.clone())
    }

    /// Records the epoch of a batch appended at `offset`.
    fn assign_epoch(&mut self, epoch: i32, offset: u64) {
        if self.epochs.assign(epoch, offset) {
            self.epochs_version += 1;
        }
    }

    fn segment_index(&self, base_offset: u64) -> usize {
        self.segments.binary_search_by_key(&base_offset, |s| s.base_offset).expect("segment exists")
    }

    /// The segment holding `offset`: the last one based at or below it.
    fn segment_for(&self, offset: u64) -> Option<usize> {
        let i = self.segments.partition_point(|s| s.base_offset <= offset);
        i.checked_sub(1)
    }

    /// Where a disk read for `offset` starts: its segment's index, and the batch boundary of the
    /// offset-index entry at or before it (the offset may lie past the end of its segment, a
    /// gap left by compaction or deletion: then the next segment).
    fn disk_read_start(&self, offset: u64) -> Option<(usize, segment::Boundary)> {
        let mut i = self.segment_for(offset)?;
        while self.segments[i].next_offset <= offset && i + 1 < self.segments.len() {
            i += 1;
        }
        let s = &self.segments[i];
        let relative = u32::try_from(offset.saturating_sub(s.base_offset)).unwrap_or(u32::MAX);
        let (entry_offset, position) = s.offset_index.lookup_entry(relative);
        Some((
            i,
            segment::Boundary { position: u64::from(position), base_offset: s.base_offset + u64::from(entry_offset) },
        ))
    }
}

/// One Kafka partition's log on disk.
///
/// Owned by the shard that owns the partition: it is `!Send` and every method must be called on
/// that shard's executor. Appends are synchronous (validate, assign offsets, queue); the shard's
/// [`Flusher`] writes queued batches in group commits; reads never block the executor.
pub struct PartitionLog {
    dir: PathBuf,
    /// Replaced as a whole by `reconfigure`; every use reads it afresh.
    config: Cell<LogConfig>,
    faults: Faults,
    flusher: Weak<Flusher>,
    this: Weak<PartitionLog>,
    state: RefCell<State>,
    /// Held by a flush, and by anything else that writes the log's state files.
    flush_lock: Semaphore,
    report: RefCell<RecoveryReport>,
    stats: Rc<crate::stats::LogStats>,
    /// The free space of the data directory, as this shard sees it.
    space: Rc<DiskSpace>,
}

impl Drop for PartitionLog {
    fn drop(&mut self) {
        // The shard's cache total counts this log's batches until they go with it.
        let held = self.state.get_mut().cache_bytes;
        self.stats.cache_bytes.set(self.stats.cache_bytes.get() - held);
    }
}

impl std::fmt::Debug for PartitionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionLog").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl PartitionLog {
    /// Opens (creating if needed) the log in `dir`, recovering after a crash: segments past the
    /// recovery point are scanned batch by batch and cut at the first torn or corrupt batch.
    pub async fn open(
        dir: impl Into<PathBuf>,
        config: LogConfig,
        flusher: &Rc<Flusher>,
    ) -> Result<Rc<PartitionLog>, LogError> {
        config.validate()?;
        let dir = dir.into();
        let faults = flusher.faults().clone();
        let (state, report) = recover(&dir, &config, &faults).await?;
        let log = Rc::new_cyclic(|this| PartitionLog {
            dir,
            config: Cell::new(config),
            faults,
            flusher: Rc::downgrade(flusher),
            this: this.clone(),
            state: RefCell::new(state),
            flush_lock: Semaphore::new(1),
            report: RefCell::new(report),
            stats: flusher.stats().clone(),
            space: flusher.space(),
        });
        let (snapshot, replayed, ignored) = log.rebuild_producers().await?;
        {
            let mut report = log.report.borrow_mut();
            report.producer_snapshot = snapshot;
            report.producer_batches_replayed = replayed;
            report.producer_snapshot_ignored = ignored;
        }
        flusher.register(&log);
        Ok(log)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> LogConfig {
        self.config.get()
    }

    /// Takes new settings from the next append, read or retention pass on (a topic's configs
    /// changed). Durability, space priority and zero-copy reads are the log's own and stay as
    /// they were: a change of `ringtail.durability` applies when the log is next opened.
    pub fn reconfigure(&self, config: LogConfig) -> Result<(), LogError> {
        let current = self.config.get();
        let config = LogConfig {
            durability: current.durability,
            space_priority: current.space_priority,
            zero_copy_reads: current.zero_copy_reads,
            ..config
        };
        config.validate()?;
        self.config.set(config);
        Ok(())
    }

    pub fn recovery_report(&self) -> RecoveryReport {
        self.report.borrow().clone()
    }

    pub fn log_start_offset(&self) -> u64 {
        self.state.borrow().log_start_offset
    }

    /// One past the last offset appended.
    pub fn log_end_offset(&self) -> u64 {
        self.state.borrow().next_offset
    }

    /// One past the last offset that is written and fdatasynced.
    pub fn durable_offset(&self) -> u64 {
        self.state.borrow().durable_offset
    }

    pub fn segment_count(&self) -> usize {
        self.state.borrow().segments.len()
    }

    /// Bytes of log held in segments.
    pub fn size_bytes(&self) -> u64 {
        self.state.borrow().segments.iter().map(|s| s.size).sum()
    }

    /// Bytes appended and not yet written.
    pub fn unflushed_bytes(&self) -> u64 {
        self.state.borrow().unflushed_bytes
    }

    pub fn failed(&self) -> Option<LogError> {
        self.state.borrow().failed.clone()
    }

    /// The idempotent producer state, as of the log end.
    pub fn producer_states(&self) -> ProducerStates {
        self.state.borrow().producers.clone()
    }

    /// Idempotent producer ids with state in this partition.
    pub fn producer_count(&self) -> usize {
        self.state.borrow().producers.len()
    }

    /// Forgets producers idle for longer than `producer_id_expiration_ms`. Returns how many.
    pub fn expire_producers(&self, now_ms: i64) -> usize {
        self.state.borrow_mut().producers.expire(now_ms, self.config.get().producer_id_expiration_ms)
    }

    /// Loads the producer snapshot and replays the log after it, so the state equals what
    /// replaying the whole log would give. Without a usable snapshot the whole log is read.
    /// Returns the snapshot's offset, if one was used, how many batches were replayed, and why
    /// a snapshot on disk was not used.
    async fn rebuild_producers(&self) -> Result<(Option<u64>, u64, Option<String>), LogError> {
        let path = self.dir.join(PRODUCER_SNAPSHOT_FILE);
        let (start, end) = (self.log_start_offset(), self.log_end_offset());
        let loaded = match checkpoint::read_file_limited(&path, &self.faults, PRODUCER_SNAPSHOT_BYTES_MAX).await {
            Ok(Some(bytes)) => {
                checkpoint::decode(Kind::ProducerSnapshot, &bytes).and_then(ProducerStates::decode_snapshot).map(Some)
            }
            Ok(None) => Ok(None),
            Err(LogError::Corrupt { reason, .. }) => Err(reason),
            Err(e) => return Err(e),
        };
        // A snapshot past the recovered end describes data that is gone: rebuild from the log.
        let (snapshot, mut producers, mut offset, ignored) = match loaded {
            Ok(Some((at, mut producers))) if at <= end => {
                producers.fit_to_log(start, end);
                (Some(at), producers, at.max(start), None)
            }
            Ok(Some((at, _))) => {
                let reason = format!("its offset {at} is past the recovered log end {end}");
                (None, ProducerStates::default(), start, Some(reason))
            }
            Ok(None) => (None, ProducerStates::default(), start, None),
            Err(reason) => (None, ProducerStates::default(), start, Some(reason)),
        };
        let now = crate::flusher::now_ms();
        let mut replayed = 0u64;
        while offset < end {
            let batches = self.read_batches(offset, self.config.get().read_chunk_bytes, u64::MAX).await?;
            let Some(last) = batches.last() else { break };
            let next = last.last_offset + 1;
            for b in &batches {
                let bytes = b.contiguous();
                let header = BatchHeader::parse(&bytes)?;
                producers.record(&header, b.base_offset, b.last_offset, now);
                replayed += 1;
            }
            offset = next;
        }
        let mut st = self.state.borrow_mut();
        st.producers = producers;
        st.snapshot_offset = snapshot;
        Ok((snapshot, replayed, ignored))
    }

    /// Validates `records` (one or more batches), assigns their offsets and queues them for
    /// writing. Either every batch is appended or none is. The batches become durable when
    /// [`PartitionLog::wait_durable`] on `last_offset` completes.
    pub fn append(&self, records: Bytes, partition_leader_epoch: i32, now_ms: i64) -> Result<AppendInfo, LogError> {
        let config = self.config.get();
        let batches = batch::validate_records(&records, config.batch_bytes_max, Origin::Client)?;
        // The producer's timestamps are checked only if they are kept (CreateTime).
        for (header, _) in batches.iter().filter(|_| !config.log_append_time) {
            batch::check_timestamps(header, now_ms, config.timestamp_before_max_ms, config.timestamp_after_max_ms)?;
        }
        let mut st = self.state.borrow_mut();
        st.check()?;
        // While the producer state is rebuilt after a rollback it still holds the batches taken
        // back: a retry of one must not be answered as a duplicate of records that are gone.
        if let Some(e) = &st.appends_paused {
            return Err(e.clone());
        }
        if let Some(original) = check_producers(&st, &batches, now_ms)? {
            return Ok(AppendInfo {
                base_offset: original.base_offset,
                last_offset: original.last_offset,
                max_timestamp: original.max_timestamp,
                log_append_time_ms: if config.log_append_time { original.max_timestamp } else { -1 },
                log_start_offset: st.log_start_offset,
                duplicate: true,
                tail_epoch: st.tail_epoch,
            });
        }
        // A retried batch is answered above without taking space; new ones need room.
        self.space.admit(self.config.get().space_priority)?;
        let base_offset = st.next_offset;
        let mut max_timestamp = -1;
        for (header, range) in batches {
            self.maybe_roll(&mut st, header.size() as u64, header.offset_count(), now_ms);
            let offset = st.next_offset;
            // The broker-assigned fields lie outside the CRC: only the first 16 bytes are
            // rewritten. LogAppendTime also rewrites the timestamp, the attributes and the CRC:
            // the whole 61-byte header (the records are still not copied).
            let (header, patched_bytes) = if config.log_append_time {
                let body = &records[range.start + batch::BATCH_HEADER_BYTES..range.end];
                let mut patched = batch::log_append_time_header(&records[range.start..], body, now_ms);
                batch::assign(&mut patched, offset, partition_leader_epoch);
                (header.with_log_append_time(now_ms), Bytes::copy_from_slice(&patched))
            } else {
                let mut patched = [0u8; PATCHED_HEADER_BYTES];
                patched.copy_from_slice(&records[range.start..range.start + PATCHED_HEADER_BYTES]);
                batch::assign(&mut patched, offset, partition_leader_epoch);
                (header, Bytes::copy_from_slice(&patched))
            };
            let body = records.slice(range.start + patched_bytes.len()..range.end);
            self.queue_batch(&mut st, &header, partition_leader_epoch, patched_bytes, body, now_ms);
            max_timestamp = max_timestamp.max(header.max_timestamp);
        }
        let info = AppendInfo {
            base_offset,
            last_offset: st.next_offset - 1,
            max_timestamp,
            log_append_time_ms: if config.log_append_time { now_ms } else { -1 },
            log_start_offset: st.log_start_offset,
            duplicate: false,
            tail_epoch: st.tail_epoch,
        };
        drop(st);
        self.appended();
        Ok(info)
    }

    /// Queues one batch at the log's end (its segment opened by `maybe_roll`): segment
    /// metadata and indexes, the leader-epoch cache, the batch cache, the producer state.
    fn queue_batch(
        &self,
        st: &mut State,
        header: &BatchHeader,
        leader_epoch: i32,
        header_bytes: Bytes,
        body: Bytes,
        now_ms: i64,
    ) {
        let size = header.size() as u64;
        let offset = st.next_offset;
        let last_offset = offset + header.offset_count() - 1;
        st.assign_epoch(leader_epoch, offset);
        let segment = st.segments.back_mut().expect("maybe_roll leaves an open segment");
        let position = segment.size;
        let mark = segment.mark();
        segment.first_append_ms.get_or_insert(now_ms);
        segment.index_batch(offset, last_offset, header.max_timestamp, size, self.config.get().index_interval_bytes);
        let segment_base = segment.base_offset;
        st.cache.push_back(CachedBatch {
            base_offset: offset,
            last_offset,
            max_timestamp: header.max_timestamp,
            segment_base,
            position,
            header: header_bytes,
            body,
            mark,
        });
        st.cache_bytes += size;
        self.stats.cache_bytes.set(self.stats.cache_bytes.get() + size);
        st.unflushed_bytes += size;
        st.next_offset = last_offset + 1;
        if st.producers.record(header, offset, last_offset, now_ms) {
            self.stats.count(&self.stats.producers_evicted);
        }
    }

    /// After batches were queued: asks for a flush if the durability setting wants one now, and
    /// wakes the readers waiting for data.
    fn appended(&self) {
        let mut st = self.state.borrow_mut();
        let wants_flush = match self.config.get().durability {
            Durability::Sync => true,
            Durability::Async => st.unflushed_bytes >= self.config.get().flush_bytes_min as u64,
        };
        let request_flush = wants_flush && !st.flush_requested;
        st.flush_requested |= request_flush;
        let readers = std::mem::take(&mut st.append_waiters);
        drop(st);
        readers.into_iter().for_each(|(_, w)| w.wake());
        if request_flush {
            if let (Some(flusher), Some(this)) = (self.flusher.upgrade(), self.this.upgrade()) {
                flusher.request(this);
            }
        }
    }

    /// Seals the active segment when a batch of `size` bytes (or its offsets) does not fit or it is too old,
    /// and opens a new one (its file is created by the next flush).
    fn maybe_roll(&self, st: &mut State, size: u64, offset_count: u64, now_ms: i64) {
        let next_offset = st.next_offset;
        let roll = match st.segments.back() {
            None => true,
            Some(s) if s.sealed => true,
            Some(s) => {
                s.size > 0
                    && (s.size + size > self.config.get().segment_bytes_max
                        || !s.fits_offsets(offset_count)
                        || s.first_append_ms
                            .is_some_and(|t| now_ms.saturating_sub(t) >= self.config.get().segment_age_ms_max as i64))
            }
        };
        if roll {
            if let Some(s) = st.segments.back_mut() {
                s.sealed = true;
            }
            st.segments.push_back(Segment::new(next_offset));
            // The producer state as of the new segment's base: written once the data below it
            // is durable, so that recovery replays only from there.
            let snapshot = st.producers.encode_snapshot(next_offset);
            if st.pending_snapshots.len() == PENDING_SNAPSHOTS_MAX {
                st.pending_snapshots.pop_front();
            }
            st.pending_snapshots.push_back((next_offset, snapshot));
        }
    }

    /// Appends batches as their leader wrote them (a follower's fetch): offsets, leader epochs
    /// and bytes are kept. Each batch is CRC-checked (`Origin::Log`, not a client's rules:
    /// the leader validated them); the first must start at this log's end and the rest follow
    /// without gaps; an older leader epoch than the log's latest is refused. The producer state
    /// and the leader-epoch cache follow the batches; no duplicate verdict is made (the leader
    /// made it). Nothing is appended on any refusal.
    pub fn append_replicated(&self, records: Bytes, now_ms: i64) -> Result<AppendInfo, LogError> {
        let batches = batch::validate_records(&records, batch::STORED_BATCH_BYTES_MAX, Origin::Log)?;
        let mut st = self.state.borrow_mut();
        st.check()?;
        if let Some(e) = &st.appends_paused {
            return Err(e.clone());
        }
        let mut expected = st.next_offset;
        let mut latest_epoch = st.epochs.latest_epoch().unwrap_or(-1);
        for (header, _) in &batches {
            // Kafka's epoch cache takes no negative epoch, nor does the file this one is saved in.
            if header.partition_leader_epoch < 0 {
                return Err(BatchError::Invalid {
                    reason: "a replicated batch has a negative partition leader epoch; a leader stamps its epoch on \
                             every batch it writes",
                }
                .into());
            }
            let refuse = |reason: String| Err(LogError::NotContinuing { reason });
            if header.base_offset < 0 || header.base_offset as u64 != expected {
                return refuse(format!("a batch starts at offset {}, the log ends at {expected}", header.base_offset));
            }
            if header.partition_leader_epoch < latest_epoch {
                return refuse(format!(
                    "a batch at offset {expected} has leader epoch {}, the log has {latest_epoch} already",
                    header.partition_leader_epoch
                ));
            }
            latest_epoch = header.partition_leader_epoch;
            expected += header.offset_count();
        }
        self.space.admit(self.config.get().space_priority)?;
        let base_offset = st.next_offset;
        let mut max_timestamp = -1;
        for (header, range) in batches {
            self.maybe_roll(&mut st, header.size() as u64, header.offset_count(), now_ms);
            // The leader's header is kept as it is: nothing to patch, nothing copied.
            let header_bytes = records.slice(range.start..range.start + PATCHED_HEADER_BYTES);
            let body = records.slice(range.start + PATCHED_HEADER_BYTES..range.end);
            self.queue_batch(&mut st, &header, header.partition_leader_epoch, header_bytes, body, now_ms);
            max_timestamp = max_timestamp.max(header.max_timestamp);
        }
        let info = AppendInfo {
            base_offset,
            last_offset: st.next_offset - 1,
            max_timestamp,
            log_append_time_ms: -1,
            log_start_offset: st.log_start_offset,
            duplicate: false,
            tail_epoch: st.tail_epoch,
        };
        drop(st);
        self.appended();
        Ok(info)
    }

    /// Completes once every offset up to and including `last_offset` is durable, or with the
    /// error that stopped the log.
    pub fn wait_durable(&self, last_offset: u64) -> DurableWait {
        self.wait(last_offset, WaitKind::Durable)
    }

    /// [`PartitionLog::wait_durable`] for a batch appended at tail epoch `epoch`
    /// ([`AppendInfo::tail_epoch`]): fails if the batch was taken back since.
    pub fn wait_durable_since(&self, last_offset: u64, epoch: u64) -> DurableWait {
        DurableWait { log: self.this.clone(), last_offset, kind: WaitKind::Durable, epoch, id: None }
    }

    /// [`PartitionLog::wait_written`] for a batch appended at tail epoch `epoch`.
    pub fn wait_written_since(&self, last_offset: u64, epoch: u64) -> DurableWait {
        DurableWait { log: self.this.clone(), last_offset, kind: WaitKind::Written, epoch, id: None }
    }

    fn wait(&self, last_offset: u64, kind: WaitKind) -> DurableWait {
        let epoch = self.state.borrow().tail_epoch;
        DurableWait { log: self.this.clone(), last_offset, kind, epoch, id: None }
    }

    /// Completes once the log end offset is past `offset`: something was appended there.
    pub fn wait_appended(&self, offset: u64) -> DurableWait {
        self.wait(offset, WaitKind::Appended)
    }

    /// Completes once every offset up to and including `last_offset` is written to its file
    /// (not necessarily synced). Async-durability producers use it as backpressure.
    pub fn wait_written(&self, last_offset: u64) -> DurableWait {
        self.wait(last_offset, WaitKind::Written)
    }

    /// Writes every queued batch; with `sync`, also fdatasyncs so they become durable. Seals
    /// finished segments. One flush runs at a time; everything appended before it starts is in it.
    pub async fn flush(&self, sync: bool, now_ms: i64) -> Result<(), LogError> {
        let _permit = self.flush_lock.acquire_permit(1).await.expect("the flush semaphore is never closed");
        self.state.borrow().check()?;
        let started = platform::Instant::now();
        let result = self.flush_locked(sync, now_ms).await;
        self.stats.observe(&self.stats.flush_latency, started);
        match &result {
            Ok(()) => {}
            Err(e) if e.is_no_space() => self.out_of_space(e.clone()).await?,
            Err(e) => self.fail(e.clone()),
        }
        result
    }

    /// A flush found no space before writing its batches (the preallocation was refused or
    /// failed with ENOSPC, or a chunk write did). Under sync durability none of the unwritten
    /// batches of a user topic was acknowledged: they are taken back (their producers get the
    /// error and may retry) and the producer state rebuilt without them. Under async durability
    /// they may have been acknowledged, and an internal topic's batches are already in its
    /// owner's memory (the group coordinator's records by key): both stay queued, their waiters
    /// wait, and the flusher writes them once the file system has room.
    async fn out_of_space(&self, error: LogError) -> Result<(), LogError> {
        self.space.ran_out();
        self.stats.count(&self.stats.flushes_out_of_space);
        let keep = self.config.get().durability == Durability::Async
            || self.config.get().space_priority == crate::space::SpacePriority::Internal;
        if keep {
            self.state.borrow_mut().space_stalled = true;
            return Ok(());
        }
        let Some(removed) = self.roll_back_unwritten(&error) else {
            return Ok(());
        };
        // Appends wait until the producer state no longer holds the batches taken back.
        let paused = self.pause_appends(error);
        let rebuilt = async {
            // A segment taken back whole leaves no file behind: an empty file among the
            // segments would be a hole in the offsets at the next recovery.
            for base in &removed {
                remove_segment_files(&self.dir, *base, &self.faults).await?;
            }
            if !removed.is_empty() {
                checkpoint::sync_dir(&self.dir, &self.faults).await?;
            }
            self.rebuild_producers().await.map(|_| ())
        }
        .await;
        drop(paused);
        if let Err(e) = rebuilt {
            self.fail(e.clone());
            return Err(e);
        }
        Ok(())
    }

    /// Takes back every batch not yet written: the cache, segment metadata and offsets return
    /// to what they were before the first of them was appended, and their waiters get `error`.
    /// Returns `None` if there was nothing to take back, else the base offsets of the segments
    /// taken back whole (their files, if created, hold nothing and must go).
    fn roll_back_unwritten(&self, error: &LogError) -> Option<Vec<u64>> {
        let point = {
            let st = self.state.borrow();
            (st.next_offset != st.written_offset).then_some(st.written_offset)
        }?;
        // As a truncation to the written offset: the epoch cache drops the entries of the batches
        // taken back and is marked for writing (the file may name them already).
        Some(self.take_back_from(point, error))
    }

    /// Cuts the log's tail (a follower whose log diverged from its new leader's): every batch
    /// holding an offset at or past `offset` goes, so the log then ends at the last batch
    /// boundary at or below `offset`, which is returned. Waits on the batches cut fail with
    /// `LogError::Truncated`. The producer state, the indexes and the leader-epoch cache follow.
    ///
    /// A cut below the log start (`offset` is below it, or DeleteRecords left the log start
    /// inside the batch holding `offset`) empties the log and starts it again at the cut, as
    /// Kafka's `truncateTo` does (`truncateFullyAndStartAt`): the follower fetches from there.
    ///
    /// Appends are refused while it runs. Crash safety: the recovery point is lowered (and
    /// written) before anything changes; the cut is then taken out of memory, segments wholly
    /// past it are deleted last first, and the one holding it is shortened, rescanned and
    /// indexed again. A crash at any step leaves a log that recovery opens as a prefix of the
    /// old one at least as long as the cut (or empty at its old start): the follower truncates
    /// again after its restart. An error before the first change leaves the log as it was; any
    /// error after it takes the log offline.
    pub async fn truncate_to(&self, offset: u64) -> Result<u64, LogError> {
        let _permit = self.flush_lock.acquire_permit(1).await.expect("the flush semaphore is never closed");
        // Paused from the lock on: an append between two steps would land in a log being cut.
        // The other pause (a flush out of space) holds the lock too, so the two never overlap.
        let _paused = self.pause_appends(LogError::Truncated { offset });
        let result = self.truncate_locked(offset).await;
        if let Err(e) = &result {
            if e.is_fatal() {
                self.fail(e.clone());
            }
        }
        result
    }

    /// Empties the log and starts it again at `offset`, wherever that is (Kafka's
    /// `truncateFullyAndStartAt`): a follower whose leader's log starts past this log's end, or
    /// ends before it. Crash-safe as [`PartitionLog::truncate_to`]'s cut below the log start.
    pub async fn restart_at(&self, offset: u64) -> Result<(), LogError> {
        let _permit = self.flush_lock.acquire_permit(1).await.expect("the flush semaphore is never closed");
        let _paused = self.pause_appends(LogError::Truncated { offset });
        let truncated = LogError::Truncated { offset };
        let result: Result<(), LogError> = async {
            self.state.borrow().check()?;
            self.truncate_fully(offset, &truncated).await?;
            self.rebuild_producers().await.map_err(|e| self.fail_truncation(e))?;
            Ok(())
        }
        .await;
        if let Err(e) = &result {
            if e.is_fatal() {
                self.fail(e.clone());
            }
        }
        result
    }

    async fn truncate_locked(&self, offset: u64) -> Result<u64, LogError> {
        let (start, written, end) = {
            let st = self.state.borrow();
            st.check()?;
            (st.log_start_offset, st.written_offset, st.next_offset)
        };
        if offset >= end {
            return Ok(end);
        }
        let cut = match offset < start {
            true => offset,
            false => self.batch_boundary_at_or_below(offset).await?,
        };
        let truncated = LogError::Truncated { offset: cut };
        if cut < start {
            self.truncate_fully(cut, &truncated).await?;
        } else if cut < written {
            self.truncate_written(cut, &truncated).await?;
        } else {
            // Only batches not yet written go, as a rollback takes them back.
            let removed = self.take_back_from(cut, &truncated);
            let files = async {
                for base in &removed {
                    remove_segment_files(&self.dir, *base, &self.faults).await?;
                }
                if !removed.is_empty() {
                    checkpoint::sync_dir(&self.dir, &self.faults).await?;
                }
                Ok(())
            };
            files.await.map_err(|e| self.fail_truncation(e))?;
        }
        // The producer state still holds the batches cut: rebuilt from the snapshot and the log.
        self.rebuild_producers().await.map_err(|e| self.fail_truncation(e))?;
        Ok(cut)
    }

    /// The base offset of the batch holding `offset` (the log end if none does).
    async fn batch_boundary_at_or_below(&self, offset: u64) -> Result<u64, LogError> {
        let batches = self.read_batches(offset, 1, u64::MAX).await?;
        Ok(batches.first().map_or(offset, |b| b.base_offset.min(offset)))
    }

    /// An error once a truncation changed the log: its files may be cut part way, so the log
    /// goes offline (the next start recovers it from the lowered recovery point).
    fn fail_truncation(&self, error: LogError) -> LogError {
        let error = match error.is_fatal() {
            true => error,
            false => {
                let why = std::io::Error::other(format!("a truncation stopped part way: {error}"));
                LogError::io("truncating", &self.dir, why)
            }
        };
        self.fail(error.clone());
        error
    }

    /// Refuses appends with `error` until the guard is dropped. Taken under the flush lock.
    fn pause_appends(&self, error: LogError) -> AppendsPaused<'_> {
        let mut st = self.state.borrow_mut();
        assert!(st.appends_paused.is_none(), "one pause at a time, under the flush lock");
        st.appends_paused = Some(error);
        AppendsPaused { log: self }
    }

    /// Writes the state file (the caller holds the flush lock) and takes its recovery point.
    async fn write_state(&self, state: PartitionState) -> Result<(), LogError> {
        checkpoint::write_atomic(&self.dir, STATE_FILE, state.encode(), &self.faults).await?;
        self.state.borrow_mut().recovery_point = state.recovery_point;
        Ok(())
    }

    /// Drops the batches from `point` on, all of them not yet written, as a rollback does.
    /// Returns the base offsets of the segments dropped whole (a file of theirs, if a failed
    /// flush created one, holds nothing and must go).
    fn take_back_from(&self, point: u64, error: &LogError) -> Vec<u64> {
        let mut st = self.state.borrow_mut();
        if st.next_offset == point {
            return Vec::new();
        }
        assert!(point >= st.written_offset, "only batches not yet written are taken back");
        let mut bytes = 0;
        let mut first = None;
        while st.cache.back().is_some_and(|c| c.base_offset >= point) {
            let c = st.cache.pop_back().expect("checked");
            bytes += c.size();
            first = Some(c);
        }
        let first = first.expect("the cache holds every batch not yet written");
        assert_eq!(first.base_offset, point, "batches are taken back from a batch boundary");
        st.cache_bytes -= bytes;
        st.unflushed_bytes -= bytes;
        self.stats.cache_bytes.set(self.stats.cache_bytes.get() - bytes);
        // Segments opened after the point hold only batches taken back.
        let mut removed = Vec::new();
        while st.segments.back().is_some_and(|s| s.base_offset > first.segment_base) {
            let s = st.segments.pop_back().expect("checked");
            assert_eq!(s.flushed, 0, "a segment opened after the point has nothing written");
            removed.push(s.base_offset);
        }
        let last = st.segments.back_mut().expect("the point's segment remains");
        assert_eq!(last.base_offset, first.segment_base);
        if first.position == 0 {
            assert_eq!(last.flushed, 0, "a segment starting at the point has nothing written");
            removed.push(last.base_offset);
            st.segments.pop_back();
        } else {
            last.restore(&first.mark);
        }
        self.forget_from(&mut st, point, error);
        removed
    }

    /// The cut reaches written data. Where it falls is read first; then the recovery point is
    /// lowered (written), the cut taken out of memory, the segments past it deleted and the one
    /// holding it shortened and indexed again.
    async fn truncate_written(&self, cut: u64, error: &LogError) -> Result<(), LogError> {
        let (base, file, rewind_point, start) = {
            let st = self.state.borrow();
            let holder = &st.segments[st.segment_for(cut).expect("the cut is at or above the log start")];
            (holder.base_offset, holder.file.clone(), st.recovery_point.min(holder.base_offset), st.log_start_offset)
        };
        let path = segment_path(&self.dir, base, "log");
        let file = match file {
            Some(f) => f,
            None => segment::open_segment(&path, &self.faults).await?,
        };
        let position = self.position_of(base, &file, cut).await?;
        // Recovery must scan everything from the shortened segment on. Nothing changed yet: an
        // error here (no space for the file) leaves the log as it was.
        self.write_state(PartitionState { log_start_offset: start, recovery_point: rewind_point }).await?;
        let changed = async {
            let gone = self.cut_in_memory(cut, base, position, error);
            for gone_base in gone.iter().rev() {
                remove_segment_files(&self.dir, *gone_base, &self.faults).await?;
            }
            if position > 0 {
                self.faults.check(IoOp::Truncate, &path)?;
                file.truncate(position).await.map_err(|e| LogError::io("truncating", &path, e))?;
                self.faults.check(IoOp::Sync, &path)?;
                file.fdatasync().await.map_err(|e| LogError::io("syncing", &path, e))?;
            }
            checkpoint::sync_dir(&self.dir, &self.faults).await?;
            if position > 0 {
                self.reindex_cut_segment(base, cut).await?;
            }
            self.remove_stale_producer_snapshot().await?;
            // Every segment up to the cut is finalized now, unless one still waits for its indexes.
            let point = {
                let st = self.state.borrow();
                st.segments.iter().find(|s| !s.finalized).map_or(cut, |s| s.base_offset)
            };
            self.write_state(PartitionState { log_start_offset: self.log_start_offset(), recovery_point: point }).await
        };
        changed.await.map_err(|e| self.fail_truncation(e))
    }

    /// Takes everything from `cut` on out of memory, before any file changes: a concurrent read
    /// then never reaches into a file being shortened, where a short read would count as
    /// corruption. `position` is the cut's byte position in the segment based at `base`.
    /// Returns the base offsets of the segments dropped whole, ascending.
    fn cut_in_memory(&self, cut: u64, base: u64, position: u64, error: &LogError) -> Vec<u64> {
        let mut st = self.state.borrow_mut();
        self.drop_cached_from(&mut st, cut);
        let i = st.segment_index(base);
        let mut gone: Vec<u64> = st.segments.drain(i + 1..).map(|s| s.base_offset).collect();
        if position == 0 {
            st.segments.pop_back();
            gone.insert(0, base);
        } else {
            st.segments[i].cut_to(cut, position);
        }
        self.forget_from(&mut st, cut, error);
        let owed: u64 = st.segments.iter().map(|s| s.size - s.flushed).sum();
        assert_eq!(st.unflushed_bytes, owed, "unwritten bytes accounted == bytes owed to the files");
        // A producer snapshot past the cut describes batches that are gone.
        if st.snapshot_offset.is_some_and(|at| at > cut) {
            st.snapshot_offset = None;
        }
        gone
    }

    /// Drops the cached batches from `point` on; those not yet written are no longer owed.
    fn drop_cached_from(&self, st: &mut State, point: u64) {
        while st.cache.back().is_some_and(|c| c.base_offset >= point) {
            let c = st.cache.pop_back().expect("checked");
            st.cache_bytes -= c.size();
            self.stats.cache_bytes.set(self.stats.cache_bytes.get() - c.size());
            if c.base_offset >= st.written_offset {
                st.unflushed_bytes -= c.size();
            }
        }
    }

    /// Rescans the segment based at `base`, just shortened to end at `cut`, writes its indexes
    /// and puts it back sealed and finalized.
    async fn reindex_cut_segment(&self, base: u64, cut: u64) -> Result<(), LogError> {
        let ScanOutcome { mut segment, torn, .. } =
            segment::scan(&self.dir, base, &self.config.get(), &self.faults).await?;
        if torn || segment.next_offset != cut {
            return Err(LogError::Corrupt {
                path: segment_path(&self.dir, base, "log"),
                position: segment.size,
                reason: format!("after truncation to offset {cut} the segment ends at offset {}", segment.next_offset),
            });
        }
        let (index, time_index) = segment.encode_indexes();
        let sizes = SegmentSizes { size: segment.size, allocated: segment.size, sync_data: false };
        finalize_files(&self.dir, base, segment.file.as_deref(), sizes, index, time_index, &self.faults).await?;
        segment.sealed = true;
        segment.finalized = true;
        segment.allocated = segment.size;
        segment.flushed = segment.size;
        segment.synced = segment.size;
        let mut st = self.state.borrow_mut();
        let i = st.segment_index(base);
        assert_eq!(st.segments[i].size, segment.size, "the rescan ends where the cut was read");
        st.segments[i] = segment;
        Ok(())
    }

    /// Removes the producer snapshot file once the snapshot is known to be past the log end.
    async fn remove_stale_producer_snapshot(&self) -> Result<(), LogError> {
        if self.state.borrow().snapshot_offset.is_some() {
            return Ok(());
        }
        let path = self.dir.join(PRODUCER_SNAPSHOT_FILE);
        self.faults.check(IoOp::Remove, &path)?;
        if let Err(e) = platform::remove(&path).await {
            let e = platform::io_error(e);
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(LogError::io("removing", &path, e));
            }
        }
        Ok(())
    }

    /// A cut below the log start: every segment goes and the log starts again, empty, at
    /// `start_at` (Kafka's `truncateFullyAndStartAt`). The old log start stays in the state file
    /// until the segments are gone, so a crash part way never brings back records deleted
    /// below it; the leader-epoch cache is emptied and written before the new start is.
    async fn truncate_fully(&self, start_at: u64, error: &LogError) -> Result<(), LogError> {
        let (start, rewind_point) = {
            let st = self.state.borrow();
            let first = st.segments.front().map_or(st.recovery_point, |s| s.base_offset);
            (st.log_start_offset, st.recovery_point.min(first))
        };
        self.write_state(PartitionState { log_start_offset: start, recovery_point: rewind_point }).await?;
        let changed = async {
            let (gone, epochs) = {
                let mut st = self.state.borrow_mut();
                self.drop_cached_from(&mut st, 0);
                let gone: Vec<u64> = st.segments.drain(..).map(|s| s.base_offset).collect();
                st.log_start_offset = start_at;
                st.written_offset = start_at;
                st.durable_offset = start_at;
                st.pending_snapshots.clear();
                st.snapshot_offset = None;
                st.producers = ProducerStates::default();
                if st.epochs != LeaderEpochs::default() {
                    st.epochs = LeaderEpochs::default();
                    st.epochs_version += 1;
                }
                self.forget_from(&mut st, start_at, error);
                assert_eq!(st.unflushed_bytes, 0, "an empty log owes nothing to its files");
                assert_eq!(st.cache_bytes, 0, "an empty log caches nothing");
                (gone, (st.epochs_version, st.epochs.encode()))
            };
            for base in gone.iter().rev() {
                remove_segment_files(&self.dir, *base, &self.faults).await?;
            }
            checkpoint::sync_dir(&self.dir, &self.faults).await?;
            self.remove_stale_producer_snapshot().await?;
            self.write_epochs(epochs).await?;
            self.write_state(PartitionState { log_start_offset: start_at, recovery_point: start_at }).await
        };
        changed.await.map_err(|e| self.fail_truncation(e))
    }

    /// Writes the leader-epoch cache as of `version` (the caller holds the flush lock).
    async fn write_epochs(&self, (version, payload): (u64, Vec<u8>)) -> Result<(), LogError> {
        let framed = checkpoint::encode(Kind::LeaderEpochs, &payload);
        checkpoint::write_atomic(&self.dir, LEADER_EPOCHS_FILE, framed, &self.faults).await?;
        self.state.borrow_mut().epochs_written = version;
        Ok(())
    }

    /// The byte position of `offset` (a written batch boundary) in the segment based at `base`:
    /// from the offset index's last entry at or below it, batch by batch. Read from the file
    /// itself, not through the log's reads: the entry may lie below the log start.
    async fn position_of(&self, base: u64, file: &DmaFile, offset: u64) -> Result<u64, LogError> {
        let (mut at, mut position, written) = {
            let st = self.state.borrow();
            let s = &st.segments[st.segment_index(base)];
            let relative = u32::try_from(offset - base).expect("offsets within a segment fit u32");
            let (entry_offset, entry_position) = s.offset_index.lookup_entry(relative);
            (base + u64::from(entry_offset), u64::from(entry_position), s.flushed)
        };
        let path = segment_path(&self.dir, base, "log");
        let config = self.config.get();
        while at < offset {
            let batches = segment::read_disk(
                file,
                &path,
                position,
                at,
                written,
                at,
                config.read_chunk_bytes,
                offset,
                &config,
                &self.faults,
            )
            .await?;
            let Some(last) = batches.last() else {
                return Err(LogError::Corrupt {
                    path,
                    position,
                    reason: format!("no batch of the segment ends just before offset {offset}, where it is cut"),
                });
            };
            at = last.last_offset + 1;
            position += batches.iter().map(|b| (b.header.len() + b.body.len()) as u64).sum::<u64>();
        }
        Ok(position)
    }

    /// The end of the log is now `point`: offsets, pending snapshots and the epoch cache follow,
    /// and waits on what was cut fail with `error`.
    fn forget_from(&self, st: &mut State, point: u64, error: &LogError) {
        st.next_offset = point;
        st.written_offset = st.written_offset.min(point);
        st.durable_offset = st.durable_offset.min(point);
        st.pending_snapshots.retain(|(at, _)| *at <= point);
        let before = st.epochs.clone();
        st.epochs.truncate_from_end(point);
        if st.epochs != before {
            st.epochs_version += 1;
        }
        st.tail_epoch += 1;
        let epoch = st.tail_epoch;
        if st.rollbacks.len() == ROLLBACKS_KEPT {
            st.rollbacks.pop_front();
        }
        st.rollbacks.push_back(Rollback { epoch, point, error: error.clone() });
        let waiters = std::mem::take(&mut st.waiters);
        let readers = std::mem::take(&mut st.append_waiters);
        waiters.into_iter().for_each(|(_, w)| w.wake());
        readers.into_iter().for_each(|(_, w)| w.wake());
    }

    /// Saves the partition's high watermark (Kafka's replication-offset-checkpoint, one file per
    /// partition here): a follower restarts with it, since it cannot recompute it. Written
    /// atomically; the caller decides how often. A value past the log end is refused.
    pub async fn save_high_watermark(&self, high_watermark: u64) -> Result<(), LogError> {
        // Under the flush lock, as every state file: two saves never share the temporary file,
        // and no truncation cuts below the value between the check and the write.
        let _permit = self.flush_lock.acquire_permit(1).await.expect("the flush semaphore is never closed");
        let end = self.log_end_offset();
        if high_watermark > end {
            return Err(LogError::OffsetOutOfRange {
                offset: high_watermark,
                log_start_offset: self.log_start_offset(),
                log_end_offset: end,
            });
        }
        let framed = checkpoint::encode(Kind::HighWatermark, &high_watermark.to_be_bytes());
        checkpoint::write_atomic(&self.dir, HIGH_WATERMARK_FILE, framed, &self.faults).await
    }

    /// Kafka's OffsetForLeaderEpoch answer: the largest leader epoch at or below `epoch` that
    /// wrote to this log and the offset where it ends (see `LeaderEpochs::end_offset_for`).
    pub fn leader_epoch_end_offset(&self, epoch: i32) -> (i32, i64) {
        let st = self.state.borrow();
        st.epochs.end_offset_for(epoch, st.next_offset)
    }

    /// The OffsetForLeaderEpoch answer of this log's leader, whose epoch `leader.0` began at
    /// offset `leader.1` (see `LeaderEpochs::end_offset_for_leader`).
    pub fn leader_epoch_end_offset_as_leader(&self, epoch: i32, leader: (i32, u64)) -> (i32, i64) {
        let st = self.state.borrow();
        st.epochs.end_offset_for_leader(epoch, st.next_offset, leader)
    }

    /// The leader epoch that wrote `offset`, if the cache names one.
    pub fn epoch_at(&self, offset: u64) -> Option<i32> {
        self.state.borrow().epochs.epoch_at(offset)
    }

    /// Which leader epoch wrote which offsets, as (epoch, start offset) entries.
    pub fn leader_epochs(&self) -> Vec<(i32, u64)> {
        self.state.borrow().epochs.entries().to_vec()
    }

    /// Counts the times the unwritten tail was taken back; see [`AppendInfo::tail_epoch`].
    pub fn tail_epoch(&self) -> u64 {
        self.state.borrow().tail_epoch
    }

    /// True while a log keeps batches queued until the file system has room for them.
    pub fn is_space_stalled(&self) -> bool {
        self.state.borrow().space_stalled
    }

    async fn flush_locked(&self, sync: bool, now_ms: i64) -> Result<(), LogError> {
        self.state.borrow_mut().flush_requested = false;
        // Everything appended before this point is in this flush; later appends wait for the next.
        // A batch of a new leader epoch is written only after the epoch cache that names it, so
        // the file covers every batch on disk (entries past the data are dropped at open): the
        // cache is taken with the batches, as no append may come between them (one may come
        // while the cache is written, of a new epoch the file would not name).
        let (epochs, snapshot, target_offset) = {
            let st = self.state.borrow();
            let epochs = (st.epochs_version != st.epochs_written).then(|| (st.epochs_version, st.epochs.encode()));
            let snapshot: Vec<(u64, u64)> =
                st.segments.iter().filter(|s| s.size > s.flushed).map(|s| (s.base_offset, s.size)).collect();
            (epochs, snapshot, st.next_offset)
        };
        if let Some(epochs) = epochs {
            self.write_epochs(epochs).await?;
        }
        for &(base, end) in &snapshot {
            self.prepare_file(base, align_up(end)).await?;
        }
        // Copy the queued batches into aligned write buffers, the one copy of record bytes, in
        // chunks of the flusher's write size, and keep its number of chunk writes going while
        // the next chunk is copied.
        let pool = self.flusher.upgrade();
        let (write_bytes, writes_in_flight) =
            pool.as_ref().map_or((WRITE_BYTES_DEFAULT, WRITES_IN_FLIGHT_DEFAULT), |p| p.write_shape());
        let mut in_flight = VecDeque::with_capacity(writes_in_flight);
        let issued = async {
            for &(base, end) in &snapshot {
                let (file, start) = {
                    let st = self.state.borrow();
                    let s = &st.segments[st.segment_index(base)];
                    (s.file.clone().expect("prepare_file created it"), align_down(s.flushed))
                };
                let path = Rc::new(segment_path(&self.dir, base, "log"));
                let mut chunk_start = start;
                while chunk_start < end {
                    let chunk_end = (chunk_start + write_bytes as u64).min(end);
                    let length = align_up(chunk_end - chunk_start) as usize;
                    let mut buf = match &pool {
                        Some(pool) if length == write_bytes => pool.take_buffer(&file),
                        _ => file.alloc_dma_buffer(length),
                    };
                    copy_from_cache(&self.state.borrow().cache, base, chunk_start, chunk_end, buf.as_bytes_mut());
                    self.faults.check(IoOp::Write, &path)?;
                    if in_flight.len() == writes_in_flight {
                        finish_write(in_flight.pop_front().expect("full"), pool.as_deref()).await?;
                    }
                    let (file, buf) = (file.clone(), Rc::new(buf));
                    let task = platform::spawn_local(async move {
                        let result = file.write_rc_at(buf.clone(), chunk_start).await;
                        (result, buf)
                    });
                    in_flight.push_back((task, length, path.clone()));
                    chunk_start = chunk_end;
                }
            }
            Ok::<(), LogError>(())
        }
        .await;
        // Every write issued ends before the flush does, even after a failure: a write left
        // running could land after the batches it holds were taken back.
        let mut written = issued;
        while let Some(write) = in_flight.pop_front() {
            let finished = finish_write(write, pool.as_deref()).await;
            if written.is_ok() {
                written = finished;
            }
        }
        written?;
        {
            let mut st = self.state.borrow_mut();
            for &(base, end) in &snapshot {
                let i = st.segment_index(base);
                let s = &mut st.segments[i];
                let newly = end - s.flushed;
                s.flushed = end;
                st.unflushed_bytes -= newly;
            }
        }
        {
            let mut st = self.state.borrow_mut();
            st.written_offset = st.written_offset.max(target_offset);
            st.space_stalled = false;
        }
        if cfg!(feature = "sim-mutation-ack-before-durable") {
            // The simulation's deliberate bug: durable waits see the written offset now.
            let waiters = std::mem::take(&mut self.state.borrow_mut().waiters);
            waiters.into_iter().for_each(|(_, w)| w.wake());
        }
        let must_sync = sync || self.state.borrow().segments.iter().any(|s| s.sealed && !s.finalized);
        if must_sync {
            self.sync_segments().await?;
            let mut st = self.state.borrow_mut();
            st.last_sync_ms = now_ms;
            let durable = target_offset;
            st.durable_offset = st.durable_offset.max(durable);
        }
        // Waiters re-check their own condition.
        let waiters = std::mem::take(&mut self.state.borrow_mut().waiters);
        waiters.into_iter().for_each(|(_, w)| w.wake());
        match self.finalize_sealed().await {
            // The data is durable; index and state files are written at a later flush.
            Err(e) if e.is_no_space() => self.space.ran_out(),
            other => other?,
        }
        self.evict_cache(self.config.get().cache_bytes_max as u64);
        if let Some(flusher) = self.flusher.upgrade() {
            flusher.enforce_cache_budget();
        }
        Ok(())
    }

    /// Makes sure the segment's file exists and is allocated up to `end`.
    async fn prepare_file(&self, base: u64, end: u64) -> Result<(), LogError> {
        let (file, allocated) = {
            let st = self.state.borrow();
            let s = &st.segments[st.segment_index(base)];
            (s.file.clone(), s.allocated)
        };
        let path = segment_path(&self.dir, base, "log");
        let file = match file {
            Some(f) => f,
            None => {
                self.faults.check(IoOp::Create, &path)?;
                let f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .dma_open(&path)
                    .await
                    .map_err(|e| LogError::io_taking_space("creating", &path, e))?;
                // The new file's directory entry must be durable before data in it is
                // acknowledged. The segment holds the file from here on, even if the
                // preallocation fails, so that taking the segment back removes the file.
                checkpoint::sync_dir(&self.dir, &self.faults).await?;
                let f = Rc::new(f);
                let mut st = self.state.borrow_mut();
                let i = st.segment_index(base);
                st.segments[i].file = Some(f.clone());
                f
            }
        };
        if end > allocated {
            // Grow by doubling, at most one step at a time: a segment that is sealed while
            // small (many rolls in a row) never reserves much more than it holds.
            let step = self.config.get().preallocate_bytes;
            let wanted = align_up(end.max(allocated.saturating_mul(2)).min(end + step));
            self.faults.check(IoOp::Write, &path)?;
            // Short of room, a segment grows only by what its batches take.
            let taken = self.space.take(self.config.get().space_priority, wanted - allocated, end - allocated)?;
            let target = allocated + taken;
            let allocated = file.pre_allocate(target, false).await;
            self.space.settle(taken, allocated.is_ok());
            allocated.map_err(|e| LogError::io_taking_space("preallocating", &path, e))?;
            let mut st = self.state.borrow_mut();
            let i = st.segment_index(base);
            st.segments[i].allocated = target;
        }
        Ok(())
    }

    /// fdatasyncs every segment with written but unsynced bytes.
    async fn sync_segments(&self) -> Result<(), LogError> {
        let targets: Vec<(u64, Rc<DmaFile>, u64)> = {
            let st = self.state.borrow();
            st.segments
                .iter()
                .filter(|s| s.synced < s.flushed)
                .map(|s| (s.base_offset, s.file.clone().expect("written segments have files"), s.flushed))
                .collect()
        };
        let mut tasks = Vec::with_capacity(targets.len());
        for (base, file, flushed) in targets {
            let path = segment_path(&self.dir, base, "log");
            self.faults.check(IoOp::Sync, &path)?;
            let stats = self.stats.clone();
            tasks.push((
                base,
                flushed,
                path,
                platform::spawn_local(async move {
                    let started = platform::Instant::now();
                    let result = file.fdatasync().await;
                    stats.observe(&stats.fdatasync_latency, started);
                    result
                }),
            ));
        }
        for (base, flushed, path, task) in tasks {
            task.await.map_err(|e| LogError::io("syncing", &path, e))?;
            let mut st = self.state.borrow_mut();
            let i = st.segment_index(base);
            st.segments[i].synced = flushed;
        }
        Ok(())
    }

    /// Truncates, indexes and syncs sealed segments whose data is all durable, then moves the
    /// recovery point past them.
    async fn finalize_sealed(&self) -> Result<(), LogError> {
        let ready: Vec<u64> = {
            let st = self.state.borrow();
            st.segments
                .iter()
                .filter(|s| s.sealed && !s.finalized && s.synced == s.size)
                .map(|s| s.base_offset)
                .collect()
        };
        if ready.is_empty() {
            return Ok(());
        }
        for base in &ready {
            let (file, size, allocated, (index, time_index)) = {
                let mut st = self.state.borrow_mut();
                let i = st.segment_index(*base);
                let s = &mut st.segments[i];
                (s.file.clone(), s.size, s.allocated, s.encode_indexes())
            };
            let sizes = SegmentSizes { size, allocated, sync_data: false };
            finalize_files(&self.dir, *base, file.as_deref(), sizes, index, time_index, &self.faults).await?;
            let mut st = self.state.borrow_mut();
            let i = st.segment_index(*base);
            st.segments[i].finalized = true;
            st.segments[i].allocated = size;
        }
        let (state, snapshot) = {
            let mut st = self.state.borrow_mut();
            let point = st.segments.iter().find(|s| !s.finalized).map_or(st.next_offset, |s| s.base_offset);
            st.recovery_point = point;
            let snapshot = take_snapshot(&mut st, point);
            (PartitionState { log_start_offset: st.log_start_offset, recovery_point: point }, snapshot)
        };
        // Only durable batches are in the snapshot (it was taken at or below the point), and
        // recovery replays the log from whichever snapshot it finds.
        if let Some((offset, bytes)) = snapshot {
            let framed = checkpoint::encode(Kind::ProducerSnapshot, &bytes);
            checkpoint::write_atomic(&self.dir, PRODUCER_SNAPSHOT_FILE, framed, &self.faults).await?;
            self.state.borrow_mut().snapshot_offset = Some(offset);
        }
        checkpoint::write_atomic(&self.dir, STATE_FILE, state.encode(), &self.faults).await
    }

    /// Drops cached batches while more than `keep_bytes` are cached, oldest first, keeping every
    /// batch not yet written and those covering the last partial block of a segment (rewritten
    /// by the next flush). Returns the bytes dropped.
    pub(crate) fn evict_cache(&self, keep_bytes: u64) -> u64 {
        let mut st = self.state.borrow_mut();
        let before = st.cache_bytes;
        while st.cache_bytes > keep_bytes {
            let Some(front) = st.cache.front() else { break };
            let s = &st.segments[st.segment_index(front.segment_base)];
            let keep_from = if s.finalized { u64::MAX } else { align_down(s.flushed) };
            if front.end() > keep_from {
                break;
            }
            let size = front.size();
            st.cache.pop_front();
            st.cache_bytes -= size;
        }
        let dropped = before - st.cache_bytes;
        self.stats.cache_bytes.set(self.stats.cache_bytes.get() - dropped);
        dropped
    }

    /// Whether a read at `offset` would be served from the batch cache (no disk read).
    pub fn is_cached(&self, offset: u64) -> bool {
        self.state.borrow().cache.front().is_some_and(|c| c.base_offset <= offset)
    }

    /// Bytes of batches held in this log's cache.
    pub fn cache_bytes(&self) -> u64 {
        self.state.borrow().cache_bytes
    }

    fn fail(&self, error: LogError) {
        let mut st = self.state.borrow_mut();
        if st.failed.is_none() {
            st.failed = Some(error);
        }
        let waiters = std::mem::take(&mut st.waiters);
        let readers = std::mem::take(&mut st.append_waiters);
        drop(st);
        waiters.into_iter().for_each(|(_, w)| w.wake());
        readers.into_iter().for_each(|(_, w)| w.wake());
    }

    /// One step of the scrubber: verifies about `max_bytes` more of the oldest finalized segment
    /// not yet verified whole (every batch's length, CRC and offset, read from disk). A batch
    /// that fails takes the log offline (`failed`), as a read that finds damage does; a
    /// truncation or deletion under the step makes it verify nothing rather than report damage.
    pub async fn scrub(&self, max_bytes: usize) -> Result<ScrubStep, LogError> {
        let (base, file, start, expected, limit, epoch) = {
            let st = self.state.borrow();
            st.check()?;
            let Some(s) = st.segments.iter().find(|s| s.finalized && s.verified_to < s.size) else {
                return Ok(ScrubStep::default());
            };
            let Some(file) = s.file.clone() else {
                return Ok(ScrubStep::default());
            };
            (s.base_offset, file, s.verified_to, s.verified_next_offset, s.size, st.tail_epoch)
        };
        let path = segment_path(&self.dir, base, "log");
        let config = self.config.get();
        let outcome = segment::verify(&file, &path, start, expected, limit, max_bytes, &config, &self.faults).await;
        let mut st = self.state.borrow_mut();
        let same = st.tail_epoch == epoch && st.segments.iter().any(|s| s.base_offset == base && s.size == limit);
        if !same {
            return Ok(ScrubStep { pending: true, ..ScrubStep::default() });
        }
        match outcome {
            Ok((position, next)) => {
                let i = st.segment_index(base);
                let s = &mut st.segments[i];
                s.verified_to = position;
                s.verified_next_offset = next;
                let whole = position >= s.size;
                drop(st);
                Ok(ScrubStep { bytes: position - start, segment_verified: whole, pending: true })
            }
            Err(e) => {
                drop(st);
                if e.is_fatal() {
                    self.fail(e.clone());
                }
                Err(e)
            }
        }
    }

    /// Byte ranges the scrubber has verified, per segment: (base offset, verified bytes, size)
    /// of every finalized segment.
    pub fn verified(&self) -> Vec<(u64, u64, u64)> {
        let st = self.state.borrow();
        st.segments.iter().filter(|s| s.finalized).map(|s| (s.base_offset, s.verified_to, s.size)).collect()
    }

    /// Reads whole batches starting with the one holding `offset`, up to `max_bytes` (at least
    /// one batch if any is there), stopping before any batch reaching `max_offset`.
    pub async fn read(&self, offset: u64, max_bytes: usize, max_offset: u64) -> Result<ReadBatches, LogError> {
        let batches = self.read_batches(offset, max_bytes, max_offset).await?;
        let mut out = ReadBatches { next_offset: offset, ..ReadBatches::default() };
        for b in batches {
            out.bytes += b.header.len() + b.body.len();
            out.next_offset = b.last_offset + 1;
            out.chunks.push(b.header);
            if !b.body.is_empty() {
                out.chunks.push(b.body);
            }
        }
        Ok(out)
    }

    /// `read` for a fetch, whose caller sends the batches to a socket: with `zero_copy_reads`,
    /// a cold read of verified sealed data comes back as the file range holding the batches
    /// (`ReadBatches::file`), for the caller to send without a copy. Readers that look at the
    /// bytes (the coordinator's replay, timestamp lookups) use `read`.
    pub async fn read_to_send(&self, offset: u64, max_bytes: usize, max_offset: u64) -> Result<ReadBatches, LogError> {
        if self.config.get().zero_copy_reads {
            if let Some(range) = self.read_file_range(offset, max_bytes, max_offset).await? {
                return Ok(range);
            }
        }
        self.read(offset, max_bytes, max_offset).await
    }

    /// The read `read` would make, as the range of the segment file holding its batches, when
    /// it is a cold read of a finalized segment that the scrubber has verified up to where the
    /// read ends, and every batch of that segment lies below `max_offset`. The same batches the
    /// copying read returns (whole ones, starting with the one holding `offset`, at least one,
    /// at most `max_bytes` beyond it); only their headers are read, found from the offset index.
    /// `None` for any other read, which the copying path serves (and reports errors of).
    async fn read_file_range(
        &self,
        offset: u64,
        max_bytes: usize,
        max_offset: u64,
    ) -> Result<Option<ReadBatches>, LogError> {
        let (base, file, size, entry, epoch) = {
            let st = self.state.borrow();
            if st.failed.is_some() || offset < st.log_start_offset || offset >= st.next_offset || offset >= max_offset {
                return Ok(None);
            }
            if st.cache.front().is_some_and(|c| c.base_offset <= offset) {
                return Ok(None);
            }
            let Some((i, entry)) = st.disk_read_start(offset) else { return Ok(None) };
            let s = &st.segments[i];
            let eligible = s.finalized && s.next_offset <= max_offset && s.verified_to > entry.position;
            let Some(file) = s.file.clone().filter(|_| eligible) else { return Ok(None) };
            (s.base_offset, file, s.size, entry, st.tail_epoch)
        };
        let path = segment_path(&self.dir, base, "log");
        let start = segment::walk_headers(&file, &path, entry, size, &self.faults, |_, _, last| last >= offset).await;
        // Damage or a file cut under the walk: the copying read finds and reports it.
        let Ok(start) = start else { return Ok(None) };
        if start.position >= size {
            return Ok(None);
        }
        // The end: the last batch boundary at most `max_bytes` past the start (the segment's end
        // at most), walked from the index entry at or before it; one batch at least.
        let target = (start.position + max_bytes as u64).min(size);
        let from = {
            let st = self.state.borrow();
            let Some(s) = st.segments.iter().find(|s| s.base_offset == base && s.size == size) else { return Ok(None) };
            let (relative, position) = s.offset_index.lookup_position(u32::try_from(target).unwrap_or(u32::MAX));
            match u64::from(position) > start.position {
                true => segment::Boundary { position: u64::from(position), base_offset: base + u64::from(relative) },
                false => start,
            }
        };
        let end =
            segment::walk_headers(&file, &path, from, size, &self.faults, |position, size, _| position + size > target)
                .await;
        let Ok(mut end) = end else { return Ok(None) };
        if end.position == start.position {
            // The first batch alone is larger than `max_bytes`: it goes whole.
            let one = segment::walk_headers(&file, &path, start, size, &self.faults, |position, _, _| {
                position > start.position
            })
            .await;
            let Ok(one) = one else { return Ok(None) };
            end = one;
        }
        // The descriptor to send from: opened once per segment, by name, so it must be checked
        // to be the segment's own file (a truncation may have replaced it under that name).
        let cached = {
            let st = self.state.borrow();
            st.segments.iter().find(|s| s.base_offset == base && s.size == size).and_then(|s| s.splice_fd.clone())
        };
        let fd = match cached {
            Some(fd) => fd,
            None => {
                let Ok(fd) = platform::open_for_splice(&path).await else { return Ok(None) };
                if !platform::same_file(&fd, &file) {
                    return Ok(None);
                }
                Arc::new(fd)
            }
        };
        // Every check again after the last wait: the same segment, not cut, still verified.
        {
            let mut st = self.state.borrow_mut();
            let same = st.tail_epoch == epoch && st.failed.is_none();
            let segment = st.segments.iter_mut().find(|s| s.base_offset == base && s.size == size);
            let Some(s) = segment.filter(|s| same && s.file.as_ref().is_some_and(|f| Rc::ptr_eq(f, &file))) else {
                return Ok(None);
            };
            if s.verified_to < end.position {
                return Ok(None);
            }
            s.splice_fd.get_or_insert_with(|| fd.clone());
        }
        let len = (end.position - start.position) as usize;
        Ok(Some(ReadBatches {
            chunks: Vec::new(),
            file: Some(FileRange { fd, position: start.position, len }),
            bytes: len,
            next_offset: end.base_offset,
        }))
    }

    async fn read_batches(&self, offset: u64, max_bytes: usize, max_offset: u64) -> Result<Vec<BatchBytes>, LogError> {
        loop {
            let tail_epoch = self.state.borrow().tail_epoch;
            match self.read_batches_once(offset, max_bytes, max_offset).await {
                // A truncation shortened the file under a read that began before it took the cut
                // out of memory: not damage. Read again, from the log as it is now.
                Err(LogError::Corrupt { .. }) if self.state.borrow().tail_epoch != tail_epoch => continue,
                Err(e) if e.is_fatal() => {
                    self.fail(e.clone());
                    return Err(e);
                }
                result => return result,
            }
        }
    }

    async fn read_batches_once(
        &self,
        offset: u64,
        max_bytes: usize,
        max_offset: u64,
    ) -> Result<Vec<BatchBytes>, LogError> {
        let (segment, start_position, start_base, flushed, file) = {
            let st = self.state.borrow();
            st.check()?;
            if offset < st.log_start_offset || offset > st.next_offset {
                return Err(LogError::OffsetOutOfRange {
                    offset,
                    log_start_offset: st.log_start_offset,
                    log_end_offset: st.next_offset,
                });
            }
            if offset >= max_offset || offset == st.next_offset {
                return Ok(Vec::new());
            }
            if st.cache.front().is_some_and(|c| c.base_offset <= offset) {
                self.stats.count(&self.stats.cache_hits);
                return Ok(read_cache(&st.cache, offset, max_bytes, max_offset));
            }
            self.stats.count(&self.stats.cache_misses);
            let Some((i, start)) = st.disk_read_start(offset) else {
                return Ok(Vec::new());
            };
            let s = &st.segments[i];
            (s.base_offset, start.position, start.base_offset, s.flushed, s.file.clone())
        };
        let Some(file) = file else {
            return Ok(Vec::new());
        };
        let path = segment_path(&self.dir, segment, "log");
        segment::read_disk(
            &file,
            &path,
            start_position,
            start_base,
            flushed,
            offset,
            max_bytes,
            max_offset,
            &self.config.get(),
            &self.faults,
        )
        .await
    }

    /// The first offset whose record timestamp is at or after `timestamp`, with that timestamp.
    /// Exact for uncompressed batches; for compressed ones, the batch's base offset and its
    /// newest timestamp. `None` when every record is older.
    pub async fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(u64, i64)>, LogError> {
        let mut offset = {
            let st = self.state.borrow();
            st.check()?;
            let Some(s) =
                st.segments.iter().find(|s| s.max_timestamp >= timestamp && s.next_offset > st.log_start_offset)
            else {
                return Ok(None);
            };
            (s.base_offset + u64::from(s.time_index.lookup(timestamp))).max(st.log_start_offset)
        };
        loop {
            let batches = self.read_batches(offset, self.config.get().read_chunk_bytes, u64::MAX).await?;
            if batches.is_empty() {
                return Ok(None);
            }
            for b in &batches {
                if b.max_timestamp < timestamp {
                    continue;
                }
                let bytes = b.contiguous();
                let header = BatchHeader::parse(&bytes)?;
                let found = batch::record_timestamps(&bytes, &header)
                    .and_then(|records| records.into_iter().find(|&(_, t)| t >= timestamp))
                    .map(|(delta, t)| (b.base_offset + u64::from(delta), t))
                    .unwrap_or((b.base_offset, b.max_timestamp));
                return Ok(Some((found.0.max(offset), found.1)));
            }
            offset = batches.last().expect("not empty").last_offset + 1;
        }
    }

    /// The offset of the record with the largest timestamp (the first such record), with that
    /// timestamp: ListOffsets' max-timestamp query (KIP-734). Exact for uncompressed batches;
    /// for a compressed one, the batch's last offset (its records are not decompressed).
    /// `None` for an empty log.
    pub async fn offset_of_max_timestamp(&self) -> Result<Option<(u64, i64)>, LogError> {
        let offset = {
            let st = self.state.borrow();
            st.check()?;
            let newest = st
                .segments
                .iter()
                .filter(|s| s.size > 0 && s.next_offset > st.log_start_offset)
                // The first segment holding the largest timestamp, as Kafka picks it.
                .fold(None::<&Segment>, |best, s| match best {
                    Some(b) if b.max_timestamp >= s.max_timestamp => Some(b),
                    _ => Some(s),
                });
            let Some(s) = newest else { return Ok(None) };
            (s.base_offset + u64::from(s.max_timestamp_relative)).max(st.log_start_offset)
        };
        let batches = self.read_batches(offset, self.config.get().read_chunk_bytes, u64::MAX).await?;
        let Some(b) = batches.first() else { return Ok(None) };
        let bytes = b.contiguous();
        let header = BatchHeader::parse(&bytes)?;
        let found = batch::record_timestamps(&bytes, &header)
            .and_then(|records| records.into_iter().find(|&(_, t)| t == b.max_timestamp))
            .map_or(b.last_offset, |(delta, _)| b.base_offset + u64::from(delta));
        Ok(Some((found, b.max_timestamp)))
    }

    /// Deletes sealed segments past the retention time or size. Returns how many were deleted.
    pub async fn enforce_retention(&self, now_ms: i64) -> Result<usize, LogError> {
        let new_start = {
            let st = self.state.borrow();
            st.check()?;
            let mut total: u64 = st.segments.iter().map(|s| s.size).sum();
            let mut new_start = None;
            for s in st.segments.iter().take(st.segments.len().saturating_sub(1)) {
                if !s.finalized {
                    break;
                }
                let too_old = self
                    .config
                    .get()
                    .retention_age_ms_max
                    .is_some_and(|r| s.max_timestamp < now_ms.saturating_sub(r as i64));
                let too_big = self.config.get().retention_bytes_max.is_some_and(|r| total - s.size >= r);
                if !(too_old || too_big) {
                    break;
                }
                total -= s.size;
                new_start = Some(s.next_offset);
            }
            new_start
        };
        match new_start {
            Some(start) => self.advance_start(start, true).await,
            None => Ok(0),
        }
    }

    /// Moves the log start offset forward (DeleteRecords) and deletes the sealed segments wholly
    /// below it. Returns how many segments were deleted.
    pub async fn advance_log_start_offset(&self, offset: u64) -> Result<usize, LogError> {
        self.advance_start(offset, false).await
    }

    /// With `retention`, a start that falls on a segment boundary goes ahead without space for
    /// the state file (deleting frees space; recovery derives the same start from the first
    /// segment left, and records retention had deleted may only reappear to be deleted again).
    async fn advance_start(&self, offset: u64, retention: bool) -> Result<usize, LogError> {
        // Flushes write the same state file: one writer at a time, or their temporary files
        // collide.
        let _permit = self.flush_lock.acquire_permit(1).await.expect("the flush semaphore is never closed");
        let (state, victim_count, on_boundary) = {
            let st = self.state.borrow();
            st.check()?;
            if offset > st.next_offset {
                return Err(LogError::OffsetOutOfRange {
                    offset,
                    log_start_offset: st.log_start_offset,
                    log_end_offset: st.next_offset,
                });
            }
            if offset <= st.log_start_offset {
                return Ok(0);
            }
            let victims = st
                .segments
                .iter()
                .take(st.segments.len().saturating_sub(1))
                .take_while(|s| s.finalized && s.next_offset <= offset)
                .count();
            let on_boundary = st.segments.get(victims).is_some_and(|s| s.base_offset == offset);
            (PartitionState { log_start_offset: offset, recovery_point: st.recovery_point }, victims, on_boundary)
        };
        // The new start is durable before any file goes, so a crash never resurrects deleted
        // records. Without space for it nothing changes, unless retention may go ahead.
        let saved = checkpoint::write_atomic(&self.dir, STATE_FILE, state.encode(), &self.faults).await;
        match &saved {
            Err(e) if e.is_no_space() && retention && on_boundary && victim_count > 0 => {}
            Err(e) if e.is_no_space() => return Err(e.clone()),
            Err(e) => {
                self.fail(e.clone());
                return Err(e.clone());
            }
            Ok(()) => {}
        }
        let victims: Vec<Segment> = {
            let mut st = self.state.borrow_mut();
            st.log_start_offset = offset;
            st.producers.truncate_below(offset);
            // Below the log start no epoch is asked about; the file follows at the next flush.
            let before = st.epochs.clone();
            st.epochs.truncate_from_start(offset);
            if st.epochs != before {
                st.epochs_version += 1;
            }
            let victims: Vec<Segment> = st.segments.drain(..victim_count).collect();
            while st
                .cache
                .front()
                .is_some_and(|c| c.last_offset < offset && victims.iter().any(|v| v.base_offset == c.segment_base))
            {
                let c = st.cache.pop_front().expect("checked");
                st.cache_bytes -= c.size();
                self.stats.cache_bytes.set(self.stats.cache_bytes.get() - c.size());
            }
            victims
        };
        let result = async {
            for s in &victims {
                remove_segment_files(&self.dir, s.base_offset, &self.faults).await?;
            }
            if !victims.is_empty() {
                checkpoint::sync_dir(&self.dir, &self.faults).await?;
            }
            if saved.is_err() {
                // The deletion freed space: the state file follows now, or at the next checkpoint.
                match checkpoint::write_atomic(&self.dir, STATE_FILE, state.encode(), &self.faults).await {
                    Err(e) if !e.is_no_space() => return Err(e),
                    _ => {}
                }
            }
            Ok::<usize, LogError>(victims.len())
        }
        .await;
        if let Err(e) = &result {
            self.fail(e.clone());
        }
        result
    }

    /// Writes and syncs everything, seals the active segment and leaves the clean-shutdown
    /// marker, so the next open needs no scan. The log takes no appends afterwards.
    pub async fn close(&self, now_ms: i64) -> Result<(), LogError> {
        {
            let mut st = self.state.borrow_mut();
            st.check()?;
            if let Some(s) = st.segments.back_mut() {
                if s.size > 0 {
                    s.sealed = true;
                }
            }
        }
        let flushed = self.flush(true, now_ms).await;
        let (next_offset, waiters) = {
            let mut st = self.state.borrow_mut();
            st.failed = Some(LogError::Config { reason: "the log was closed".into() });
            // Batches kept queued for lack of space are given up: their waiters learn it now.
            (st.next_offset, std::mem::take(&mut st.waiters))
        };
        waiters.into_iter().for_each(|(_, w)| w.wake());
        // Without space, unwritten batches are lost (under sync durability none of them was
        // acknowledged) and, without the marker, the next start scans the tail.
        flushed?;
        let marker = checkpoint::encode(Kind::CleanShutdown, &next_offset.to_be_bytes());
        checkpoint::write_atomic(&self.dir, CLEAN_SHUTDOWN_FILE, marker, &self.faults).await
    }

    pub(crate) fn flush_requested_or_due(&self, now_ms: i64) -> (bool, bool) {
        let st = self.state.borrow();
        let has_unflushed = st.unflushed_bytes > 0 || st.segments.iter().any(|s| s.synced < s.flushed);
        let sync_due = now_ms.saturating_sub(st.last_sync_ms) >= self.config.get().fsync_interval_ms as i64;
        (has_unflushed, sync_due)
    }
}

/// Checks a client's batches against the producer state, as if each were appended in turn.
/// Returns the original of a retried batch (which must then be the only batch), `None` if
/// every batch may be appended.
fn check_producers(
    st: &State,
    batches: &[(BatchHeader, std::ops::Range<usize>)],
    now_ms: i64,
) -> Result<Option<crate::producer::BatchMeta>, LogError> {
    match batches {
        [(h, _)] => match st.producers.check(h)? {
            Verdict::Duplicate(original) => Ok(Some(original)),
            Verdict::Append => Ok(None),
        },
        _ if batches.iter().all(|(h, _)| h.producer_id < 0) => Ok(None),
        _ => {
            // Several batches of idempotent producers in one request (Kafka allows one per
            // partition): check each against the state the ones before it would leave.
            let mut scratch = st.producers.subset(batches.iter().map(|(h, _)| h.producer_id));
            let mut offset = st.next_offset;
            for (h, _) in batches {
                if let Verdict::Duplicate(_) = scratch.check(h)? {
                    return Err(BatchError::Invalid {
                        reason: "a retried batch of an idempotent producer must be sent alone",
                    }
                    .into());
                }
                scratch.record(h, offset, offset + h.offset_count() - 1, now_ms);
                offset += h.offset_count();
            }
            Ok(None)
        }
    }
}

/// The producer snapshot to write now that everything below `point` is durable: the newest
/// pending one at or below it, or the current state if every batch is below it. `None` if
/// the one on disk is as new.
fn take_snapshot(st: &mut State, point: u64) -> Option<(u64, Vec<u8>)> {
    let mut chosen = None;
    while st.pending_snapshots.front().is_some_and(|(at, _)| *at <= point) {
        chosen = st.pending_snapshots.pop_front();
    }
    if point == st.next_offset && chosen.as_ref().is_none_or(|(at, _)| *at < point) {
        chosen = Some((point, st.producers.encode_snapshot(point)));
    }
    chosen.filter(|(at, _)| st.snapshot_offset.is_none_or(|on_disk| *at > on_disk))
}

/// A batch read from cache or disk: header and body chunks.
pub(crate) struct BatchBytes {
    pub base_offset: u64,
    pub last_offset: u64,
    pub max_timestamp: i64,
    pub header: Bytes,
    pub body: Bytes,
}

impl BatchBytes {
    fn contiguous(&self) -> Bytes {
        if self.body.is_empty() {
            return self.header.clone();
        }
        let mut b = BytesMut::with_capacity(self.header.len() + self.body.len());
        b.extend_from_slice(&self.header);
        b.extend_from_slice(&self.body);
        b.freeze()
    }
}

fn read_cache(cache: &VecDeque<CachedBatch>, offset: u64, max_bytes: usize, max_offset: u64) -> Vec<BatchBytes> {
    let start = cache.partition_point(|c| c.last_offset < offset);
    let mut out = Vec::new();
    let mut bytes = 0usize;
    for c in cache.iter().skip(start) {
        if c.last_offset >= max_offset || (!out.is_empty() && bytes + c.size() as usize > max_bytes) {
            break;
        }
        bytes += c.size() as usize;
        out.push(BatchBytes {
            base_offset: c.base_offset,
            last_offset: c.last_offset,
            max_timestamp: c.max_timestamp,
            header: c.header.clone(),
            body: c.body.clone(),
        });
    }
    out
}

/// Copies the cached bytes of segment `segment_base` in `[start, end)` to `dst`, and zeroes the
/// rest of `dst` (the padding up to the block boundary).
fn copy_from_cache(cache: &VecDeque<CachedBatch>, segment_base: u64, start: u64, end: u64, dst: &mut [u8]) {
    let first = cache
        .partition_point(|c| c.segment_base < segment_base || (c.segment_base == segment_base && c.end() <= start));
    let mut at = start;
    for c in cache.iter().skip(first) {
        if c.segment_base != segment_base || at >= end {
            break;
        }
        assert_eq!(c.position.max(start), at, "cached batches of a segment are contiguous");
        let mut pos = c.position;
        for part in [&c.header, &c.body] {
            let part_end = pos + part.len() as u64;
            if part_end > at && at < end {
                let stop = part_end.min(end);
                let from = (at - pos) as usize;
                let n = (stop - at) as usize;
                let d = (at - start) as usize;
                dst[d..d + n].copy_from_slice(&part[from..from + n]);
                at = stop;
            }
            pos = part_end;
        }
    }
    assert_eq!(at, end, "the cache holds every byte not yet written");
    dst[(end - start) as usize..].fill(0);
}

type WriteTask = (Task<(IoResult<usize>, Rc<DmaBuffer>)>, usize, Rc<PathBuf>);

/// Awaits one chunk write, checks it was whole, and gives its buffer back to the pool.
async fn finish_write((task, length, path): WriteTask, pool: Option<&Flusher>) -> Result<(), LogError> {
    let (result, buf) = task.await;
    let n = result.map_err(|e| LogError::io_taking_space("writing", path.as_path(), e))?;
    if n != length {
        let short = std::io::Error::new(std::io::ErrorKind::WriteZero, "short direct write");
        return Err(LogError::io("writing", path.as_path(), short));
    }
    if let (Some(pool), Ok(buf)) = (pool, Rc::try_unwrap(buf)) {
        pool.return_buffer(buf);
    }
    Ok(())
}

/// Lengths of a segment being sealed, and whether its data still needs an fdatasync.
pub(crate) struct SegmentSizes {
    pub size: u64,
    pub allocated: u64,
    pub sync_data: bool,
}

/// Truncates a sealed segment to its length, writes its index files and syncs both.
pub(crate) async fn finalize_files(
    dir: &Path,
    base: u64,
    file: Option<&DmaFile>,
    sizes: SegmentSizes,
    index: Vec<u8>,
    time_index: Vec<u8>,
    faults: &Faults,
) -> Result<(), LogError> {
    let path = segment_path(dir, base, "log");
    if let Some(file) = file {
        let truncate = sizes.allocated != sizes.size;
        if truncate {
            faults.check(IoOp::Truncate, &path)?;
            file.truncate(sizes.size).await.map_err(|e| LogError::io("truncating", &path, e))?;
        }
        if truncate || sizes.sync_data {
            faults.check(IoOp::Sync, &path)?;
            file.fdatasync().await.map_err(|e| LogError::io("syncing", &path, e))?;
        }
    }
    checkpoint::write_durable(&segment_path(dir, base, "index"), index, faults).await?;
    checkpoint::write_durable(&segment_path(dir, base, "timeindex"), time_index, faults).await
}

async fn remove_segment_files(dir: &Path, base: u64, faults: &Faults) -> Result<(), LogError> {
    for extension in ["log", "index", "timeindex"] {
        let path = segment_path(dir, base, extension);
        faults.check(IoOp::Remove, &path)?;
        if let Err(e) = platform::remove(&path).await {
            let e = platform::io_error(e);
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(LogError::io("removing", &path, e));
            }
        }
    }
    Ok(())
}

/// Future of [`PartitionLog::wait_durable`], [`PartitionLog::wait_written`] and
/// [`PartitionLog::wait_appended`].
#[derive(Debug)]
pub struct DurableWait {
    log: Weak<PartitionLog>,
    last_offset: u64,
    kind: WaitKind,
    /// The log's tail epoch when the wait began: a rollback since may have taken its batch back.
    epoch: u64,
    /// Registration in the log's waiter list, removed on drop so that abandoned waits (a
    /// fetch that timed out on an idle partition) do not pile up.
    id: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WaitKind {
    Durable,
    Written,
    Appended,
}

impl Future for DurableWait {
    type Output = Result<(), LogError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(log) = self.log.upgrade() else {
            return Poll::Ready(Err(LogError::Config { reason: "the log was dropped".into() }));
        };
        let mut st = log.state.borrow_mut();
        if self.kind != WaitKind::Appended {
            if let Some(e) = st.rolled_back(self.epoch, self.last_offset) {
                return Poll::Ready(Err(e));
            }
        }
        let reached = match self.kind {
            // The simulation's deliberate bug (never in a shipped build): acknowledge what is
            // written as if it were durable.
            WaitKind::Durable if cfg!(feature = "sim-mutation-ack-before-durable") => st.written_offset,
            WaitKind::Durable => st.durable_offset,
            WaitKind::Written => st.written_offset,
            WaitKind::Appended => st.next_offset,
        };
        // Reached first: a close that made everything durable also marks the log closed.
        if reached > self.last_offset {
            return Poll::Ready(Ok(()));
        }
        if let Some(e) = &st.failed {
            return Poll::Ready(Err(e.clone()));
        }
        let appended = self.kind == WaitKind::Appended;
        let list = if appended { &mut st.append_waiters } else { &mut st.waiters };
        match self.id.and_then(|id| list.iter_mut().find(|(i, _)| *i == id)) {
            Some((_, waker)) => waker.clone_from(cx.waker()),
            None => {
                let id = self.id.unwrap_or_else(|| {
                    st.next_waiter_id += 1;
                    st.next_waiter_id
                });
                let list = if appended { &mut st.append_waiters } else { &mut st.waiters };
                list.push((id, cx.waker().clone()));
                drop(st);
                self.id = Some(id);
            }
        }
        Poll::Pending
    }
}

impl Drop for DurableWait {
    fn drop(&mut self) {
        if let (Some(id), Some(log)) = (self.id, self.log.upgrade()) {
            if let Ok(mut st) = log.state.try_borrow_mut() {
                st.waiters.retain(|(i, _)| *i != id);
                st.append_waiters.retain(|(i, _)| *i != id);
            }
        }
    }
}

/// Loads the log in `dir`: reads the state checkpoint, loads indexed segments below the recovery
/// point, scans the rest, cuts the log at the first bad batch, and seals the last segment so new
/// appends start in a fresh, block-aligned segment.
async fn recover(dir: &Path, config: &LogConfig, faults: &Faults) -> Result<(State, RecoveryReport), LogError> {
    segment::create_dir(dir, faults).await?;
    segment::prime_direct_io(dir).await?;
    let listing = segment::list_dir(dir)?;
    for tmp in &listing.temporary {
        faults.check(IoOp::Remove, tmp)?;
        platform::remove(tmp).await.map_err(|e| LogError::io("removing", tmp, e))?;
    }
    for (base, path) in &listing.indexes {
        if listing.segments.binary_search(base).is_err() {
            faults.check(IoOp::Remove, path)?;
            platform::remove(path).await.map_err(|e| LogError::io("removing", path, e))?;
        }
    }
    let mut report = RecoveryReport::default();
    let saved = checkpoint::read_file(&dir.join(STATE_FILE), faults).await?;
    let saved = match saved {
        None => None,
        Some(bytes) => Some(PartitionState::decode(&bytes).map_err(|reason| LogError::Corrupt {
            path: dir.join(STATE_FILE),
            position: 0,
            reason: format!(
                "{reason}; the log start offset and recovery point are lost. To recover, move the file \
                 away: the whole log is then scanned and records removed by DeleteRecords may reappear"
            ),
        })?),
    };
    let clean = checkpoint::read_file(&dir.join(CLEAN_SHUTDOWN_FILE), faults).await?;
    let clean_next_offset = clean
        .as_deref()
        .and_then(|b| checkpoint::decode(Kind::CleanShutdown, b).ok())
        .and_then(|p| p.try_into().ok())
        .map(u64::from_be_bytes);
    if clean.is_some() {
        faults.check(IoOp::Remove, &dir.join(CLEAN_SHUTDOWN_FILE))?;
        platform::remove(dir.join(CLEAN_SHUTDOWN_FILE))
            .await
            .map_err(|e| LogError::io("removing", dir.join(CLEAN_SHUTDOWN_FILE), e))?;
        checkpoint::sync_dir(dir, faults).await?;
    }
    // Without a checkpoint (a new log, or one whose file was moved away) nothing is trusted: scan everything.
    let (mut log_start_offset, recovery_point) = match saved {
        Some(s) => (s.log_start_offset, s.recovery_point),
        None => (0, 0),
    };
    report.clean_shutdown = clean_next_offset.is_some_and(|n| n == recovery_point);

    let mut segments: VecDeque<Segment> = VecDeque::new();
    let mut cut = false;
    // One past the last offset of the longest valid prefix of segments, if any segment exists.
    let mut valid_end = None;
    let bases = listing.segments;
    for (n, &base) in bases.iter().enumerate() {
        let path = segment_path(dir, base, "log");
        if cut {
            report.bytes_truncated += segment::file_len(&path)?;
            remove_segment_files(dir, base, faults).await?;
            report.segments_removed += 1;
            continue;
        }
        let expected_base = segments.back().map(|s: &Segment| s.next_offset);
        if expected_base.is_some_and(|e| e != base) {
            // A hole between segments: everything from here on is unusable.
            cut = true;
            report.bytes_truncated += segment::file_len(&path)?;
            remove_segment_files(dir, base, faults).await?;
            report.segments_removed += 1;
            continue;
        }
        let next_base = bases.get(n + 1).copied();
        let trusted_end =
            if base < recovery_point { Some(next_base.unwrap_or(recovery_point).min(recovery_point)) } else { None };
        let loaded = match trusted_end {
            Some(end) => segment::load_indexed(dir, base, end, faults).await?,
            None => None,
        };
        let segment = match loaded {
            Some(s) => {
                report.segments_loaded += 1;
                s
            }
            None => {
                report.segments_scanned += 1;
                let ScanOutcome { segment, file_len, torn } = segment::scan(dir, base, config, faults).await?;
                if let Some(end) = trusted_end {
                    // Below the recovery point every batch was durable and acknowledged: a bad
                    // batch there is damage, not a torn write. Cutting the log at it would delete
                    // every later segment, so the partition stays offline instead, untouched.
                    if torn || segment.next_offset < end {
                        return Err(LogError::Corrupt {
                            path,
                            position: segment.size,
                            reason: format!(
                                "a durable segment holds offsets {base}..{} but its data ends or is damaged at \
                                 offset {}; nothing was truncated",
                                end - 1,
                                segment.next_offset
                            ),
                        });
                    }
                }
                if torn {
                    report.bytes_truncated += file_len - segment.size;
                }
                segment
            }
        };
        valid_end = Some(segment.next_offset);
        segments.push_back(segment);
    }
    // Drop an empty trailing segment: appends will open a fresh one.
    while segments.back().is_some_and(|s| s.size == 0) {
        let s = segments.pop_back().expect("checked");
        remove_segment_files(dir, s.base_offset, faults).await?;
    }
    if let Some(first) = segments.front() {
        log_start_offset = log_start_offset.max(first.base_offset);
    }
    // A log start offset past the surviving data (DeleteRecords beyond what was durable) wins,
    // as in Kafka: offsets below it are never handed out again.
    let next_offset = valid_end.unwrap_or(recovery_point).max(log_start_offset);
    // Seal every scanned segment: sync its data (it may have been written and never synced),
    // truncate the preallocated tail, write its indexes. Only then may the recovery point move
    // past it.
    // Without space for index files a segment stays sealed and unfinalized (the recovery point
    // stays before it); a later flush finalizes it.
    let mut no_space = None;
    for s in segments.iter_mut().filter(|s| !s.finalized) {
        s.sealed = true;
        if no_space.is_some() {
            // Its index files wait for space; its data is made durable now (no space needed),
            // since the log counts it as durable from here on.
            if let Some(file) = &s.file {
                let path = segment_path(dir, s.base_offset, "log");
                faults.check(IoOp::Sync, &path)?;
                file.fdatasync().await.map_err(|e| LogError::io("syncing", &path, e))?;
            }
            continue;
        }
        let (index, time_index) = s.encode_indexes();
        let sizes = SegmentSizes { size: s.size, allocated: s.allocated, sync_data: true };
        match finalize_files(dir, s.base_offset, s.file.as_deref(), sizes, index, time_index, faults).await {
            Err(e) if e.is_no_space() => no_space = Some(e),
            Err(e) => return Err(e),
            Ok(()) => {
                s.allocated = s.size;
                s.finalized = true;
            }
        }
    }
    // Segments wholly below the log start offset are left over from an interrupted deletion.
    while segments.front().is_some_and(|s| s.next_offset <= log_start_offset) {
        let s = segments.pop_front().expect("checked");
        remove_segment_files(dir, s.base_offset, faults).await?;
        report.segments_removed += 1;
    }
    let recovery_point = segments.iter().find(|s| !s.finalized).map_or(next_offset, |s| s.base_offset);
    let state = PartitionState { log_start_offset, recovery_point };
    // Without space the old state file stands: it is behind, never ahead (the next start scans more).
    match checkpoint::write_atomic(dir, STATE_FILE, state.encode(), faults).await {
        Err(e) if e.is_no_space() => no_space = Some(e),
        other => other?,
    }
    report.no_space = no_space.map(|e| e.to_string());
    report.high_watermark = recover_high_watermark(dir, log_start_offset, next_offset, faults).await?;
    let (epochs, epochs_changed) = recover_epochs(dir, log_start_offset, next_offset, faults).await?;
    let st = State {
        segments,
        log_start_offset,
        next_offset,
        written_offset: next_offset,
        durable_offset: next_offset,
        recovery_point,
        cache: VecDeque::new(),
        cache_bytes: 0,
        unflushed_bytes: 0,
        failed: None,
        waiters: Vec::new(),
        append_waiters: Vec::new(),
        next_waiter_id: 0,
        flush_requested: false,
        last_sync_ms: 0,
        producers: ProducerStates::default(),
        pending_snapshots: VecDeque::new(),
        snapshot_offset: None,
        tail_epoch: 0,
        rollbacks: VecDeque::new(),
        appends_paused: None,
        space_stalled: false,
        epochs_version: u64::from(epochs_changed),
        epochs,
        epochs_written: 0,
    };
    debug_assert!(BLOCK_BYTES as usize >= BATCH_HEADER_BYTES);
    Ok((st, report))
}

/// The leader-epoch cache as recovered: the file's entries within [log start, log end); a log
/// with data and no file (written before epochs were recorded) reads as epoch 0 from its start.
/// Returns whether that differs from the file (it is then written at the next flush).
async fn recover_epochs(
    dir: &Path,
    log_start_offset: u64,
    next_offset: u64,
    faults: &Faults,
) -> Result<(LeaderEpochs, bool), LogError> {
    let path = dir.join(LEADER_EPOCHS_FILE);
    let saved = match checkpoint::read_file(&path, faults).await? {
        None => None,
        Some(bytes) => {
            let decoded = checkpoint::decode(Kind::LeaderEpochs, &bytes).and_then(LeaderEpochs::decode);
            Some(decoded.map_err(|reason| LogError::Corrupt {
                path: path.clone(),
                position: 0,
                reason: format!(
                    "{reason}. To recover, move the file away: the log then reads as written in epoch 0, and a \
                     follower of it may truncate more than it needs to"
                ),
            })?)
        }
    };
    let mut epochs = match &saved {
        Some(e) => e.clone(),
        None if next_offset > log_start_offset => LeaderEpochs::from_start(log_start_offset),
        None => LeaderEpochs::default(),
    };
    epochs.truncate_from_end(next_offset);
    epochs.truncate_from_start(log_start_offset);
    let changed = saved.as_ref() != Some(&epochs) && !(saved.is_none() && epochs == LeaderEpochs::default());
    Ok((epochs, changed))
}

/// The saved high watermark, brought within [log start, log end] (a truncation or a crash may
/// have left the log shorter than it was when it was saved). A damaged file counts as none:
/// the replication layer then starts from the log start, which only delays consumers.
async fn recover_high_watermark(
    dir: &Path,
    log_start_offset: u64,
    next_offset: u64,
    faults: &Faults,
) -> Result<Option<u64>, LogError> {
    let Some(bytes) = checkpoint::read_file(&dir.join(HIGH_WATERMARK_FILE), faults).await? else {
        return Ok(None);
    };
    let saved = checkpoint::decode(Kind::HighWatermark, &bytes)
        .ok()
        .and_then(|p| <[u8; 8]>::try_from(p).ok())
        .map(u64::from_be_bytes);
    Ok(saved.map(|hw| hw.clamp(log_start_offset, next_offset)))
}
