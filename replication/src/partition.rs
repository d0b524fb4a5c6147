//! The partition (replica) layer: one [`Partition`] per partition this node holds a replica
//! of, owning its log and its replica state (role, leader epoch, in-sync replicas, the high
//! watermark) and the fetches parked on it. Kafka's request handlers talk to this layer,
//! never to the log: appending as leader (with the acknowledgement the producer asked for),
//! reading up to what consumers may see, and the offsets ListOffsets asks for.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use ringtail_log::{AppendInfo, Durability, DurableWait, LogError, PartitionLog, ReadBatches};

use crate::error::PartitionError;
use crate::ids::{LeaderEpoch, NodeId, PartitionId};
use crate::limits::UNFLUSHED_BYTES_MAX;

/// What this node's replica of a partition does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Takes appends and serves consumers.
    Leader,
    /// Copies the leader's log (replication fetches it; not built yet) and refuses appends.
    Follower { leader: Option<NodeId> },
    /// The replica's storage failed: it answers a storage error until the broker restarts.
    Offline,
}

/// The acknowledgement a producer asked for (Kafka's `acks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// acks=0: no answer at all.
    None,
    /// acks=1: the leader has the batch (durably, under sync durability).
    Leader,
    /// acks=all (-1): every in-sync replica has it: the high watermark has passed it.
    All,
}

impl Acks {
    /// Kafka's wire value, or `None` for anything but -1, 0 and 1.
    pub fn from_kafka(acks: i16) -> Option<Acks> {
        match acks {
            0 => Some(Acks::None),
            1 => Some(Acks::Leader),
            -1 => Some(Acks::All),
            _ => None,
        }
    }
}

/// How far a read may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Consumers: up to the high watermark (Kafka's READ_UNCOMMITTED; without transactions
    /// READ_COMMITTED reads the same, since the last stable offset equals the high watermark).
    HighWatermark,
    /// Followers and verification: up to the log end.
    LogEnd,
}

/// Which offset ListOffsets asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    Earliest,
    Latest,
    /// The first offset whose record timestamp is at or after this (milliseconds).
    Timestamp(i64),
    /// The record with the largest timestamp (KIP-734).
    MaxTimestamp,
    /// The newest offset in tiered storage (KIP-1005): none while nothing is tiered.
    LatestTiered,
}

/// An accepted append and what the producer's acknowledgement must wait for.
#[must_use = "the producer's acknowledgement waits on `wait`"]
pub struct Appended {
    pub info: AppendInfo,
    pub wait: AckWait,
}

/// What an acknowledgement waits for, once every append of a request is queued (so that
/// one group commit covers them all).
pub enum AckWait {
    Now,
    /// Until the batch is durable on this replica.
    Durable(DurableWait),
    /// Until the batch is written to its file: backpressure for acks=0 and async durability
    /// once a partition holds too much unwritten data.
    Written(DurableWait),
    /// Until the high watermark passes `last_offset` (acks=all). Under sync durability the
    /// leader's own durability comes first: it fails if the batch could not be written (no
    /// space) and was taken back, where the high watermark alone would wait for whatever is
    /// appended at that offset next.
    HighWatermark {
        last_offset: u64,
        local: Option<DurableWait>,
    },
}

/// Replica state; changed only through the partition's methods.
#[derive(Debug)]
struct ReplicaState {
    role: Role,
    leader_epoch: LeaderEpoch,
    /// In-sync replicas, this node included while it leads.
    isr: Vec<NodeId>,
    /// The log end offset each follower last reported (leaders only).
    followers: Vec<(NodeId, u64)>,
    /// Offsets below are visible to consumers. Never moves back while this node leads.
    high_watermark: u64,
}

/// One partition's replica on this node.
///
/// Owned by the shard that owns the partition (`!Send`): every call happens on that shard's
/// executor. The shard's partition table holds it; handlers reach it through routing.
pub struct Partition {
    id: PartitionId,
    topic: Rc<str>,
    local: NodeId,
    log: Rc<PartitionLog>,
    state: RefCell<ReplicaState>,
    /// Fetches waiting for the high watermark to move, by registration id.
    parked: RefCell<Vec<(u64, Waker)>>,
    next_parked_id: Cell<u64>,
    this: Weak<Partition>,
}

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partition").field("topic", &self.topic).field("index", &self.id.index).finish_non_exhaustive()
    }
}

impl Partition {
    /// A replica over an open log. `leader` and `isr` come from the metadata image.
    pub fn new(
        id: PartitionId,
        topic: Rc<str>,
        local: NodeId,
        log: Rc<PartitionLog>,
        leader: Option<NodeId>,
        leader_epoch: LeaderEpoch,
        isr: Vec<NodeId>,
    ) -> Rc<Partition> {
        let role = if leader == Some(local) { Role::Leader } else { Role::Follower { leader } };
        let state = ReplicaState { role, leader_epoch, isr, followers: Vec::new(), high_watermark: 0 };
        let partition = Rc::new_cyclic(|this| Partition {
            id,
            topic,
            local,
            log,
            state: RefCell::new(state),
            parked: RefCell::new(Vec::new()),
            next_parked_id: Cell::new(0),
            this: this.clone(),
        });
        partition.high_watermark();
        partition
    }

    pub fn id(&self) -> PartitionId {
        self.id
    }

    pub fn topic(&self) -> &Rc<str> {
        &self.topic
    }

    /// The log, for the shard's maintenance (flushes, retention, closing, statistics). Request
    /// handlers go through the partition's own methods.
    pub fn log(&self) -> &Rc<PartitionLog> {
        &self.log
    }

    pub fn role(&self) -> Role {
        if self.log.failed().is_some() {
            return Role::Offline;
        }
        self.state.borrow().role
    }

    pub fn leader_epoch(&self) -> LeaderEpoch {
        self.state.borrow().leader_epoch
    }

    pub fn isr(&self) -> Vec<NodeId> {
        self.state.borrow().isr.clone()
    }

    pub fn log_start_offset(&self) -> u64 {
        self.log.log_start_offset()
    }

    pub fn log_end_offset(&self) -> u64 {
        self.log.log_end_offset()
    }

    /// What this replica can vouch for: durable offsets under sync durability (Ringtail's
    /// promise: acknowledged means on disk), everything appended under async.
    fn local_stable_offset(&self) -> u64 {
        match self.log.config().durability {
            Durability::Sync => self.log.durable_offset(),
            Durability::Async => self.log.log_end_offset(),
        }
    }

    /// Offsets below the high watermark are on every in-sync replica and visible to
    /// consumers: the minimum of this replica's stable offset and what each other in-sync
    /// replica reported. It never moves back.
    pub fn high_watermark(&self) -> u64 {
        let local = self.local_stable_offset();
        let mut st = self.state.borrow_mut();
        let mut candidate = local;
        for node in st.isr.iter().filter(|&&n| n != self.local) {
            let reported = st.followers.iter().find(|(n, _)| n == node).map_or(0, |&(_, o)| o);
            candidate = candidate.min(reported);
        }
        if candidate > st.high_watermark {
            st.high_watermark = candidate;
        }
        debug_assert!(st.high_watermark <= self.log.log_end_offset());
        st.high_watermark
    }

    /// Takes a new leader, epoch and ISR from the metadata image. A leader epoch never goes
    /// back; a stale change is ignored.
    pub fn apply_leadership(&self, leader: Option<NodeId>, leader_epoch: LeaderEpoch, isr: Vec<NodeId>) {
        let mut st = self.state.borrow_mut();
        if leader_epoch < st.leader_epoch {
            return;
        }
        // A replica whose storage failed stays offline whoever leads.
        if !matches!(st.role, Role::Offline) {
            st.role = if leader == Some(self.local) { Role::Leader } else { Role::Follower { leader } };
        }
        if leader_epoch > st.leader_epoch {
            st.followers.clear();
        }
        st.leader_epoch = leader_epoch;
        st.isr = isr;
        drop(st);
        self.high_watermark();
        self.wake_parked();
    }

    /// A follower's fetch told the leader how far its log reaches: the high watermark may move.
    pub fn update_follower(&self, node: NodeId, log_end_offset: u64) {
        let before = self.state.borrow().high_watermark;
        {
            let mut st = self.state.borrow_mut();
            match st.followers.iter_mut().find(|(n, _)| *n == node) {
                Some((_, offset)) => *offset = log_end_offset,
                None => st.followers.push((node, log_end_offset)),
            }
        }
        if self.high_watermark() > before {
            self.wake_parked();
        }
    }

    fn wake_parked(&self) {
        let parked = std::mem::take(&mut *self.parked.borrow_mut());
        parked.into_iter().for_each(|(_, w)| w.wake());
    }

    /// This replica's leader epoch if it leads, else who does.
    pub fn check_leader(&self) -> Result<LeaderEpoch, PartitionError> {
        if let Some(e) = self.log.failed() {
            return Err(PartitionError::Log(e));
        }
        let st = self.state.borrow();
        match st.role {
            Role::Leader => Ok(st.leader_epoch),
            Role::Follower { leader } => Err(PartitionError::NotLeader { leader, epoch: st.leader_epoch }),
            Role::Offline => Err(PartitionError::NotLeader { leader: None, epoch: st.leader_epoch }),
        }
    }

    /// Appends a producer's batch as this partition's leader: validated, assigned offsets,
    /// checked against the producer's sequence, queued for the next group commit. The
    /// returned wait is what the acknowledgement `acks` asks for.
    pub fn append_as_leader(&self, records: Bytes, acks: Acks, now_ms: i64) -> Result<Appended, PartitionError> {
        let epoch = self.check_leader()?;
        let info = self.log.append(records, epoch.0, now_ms)?;
        let sync = self.log.config().durability == Durability::Sync;
        let wait = match acks {
            Acks::All => self.ack_wait_all(info.last_offset, info.tail_epoch),
            Acks::Leader if sync => AckWait::Durable(self.log.wait_durable_since(info.last_offset, info.tail_epoch)),
            // acks=0 and async durability answer before the write; past this much unwritten
            // data the producer waits for the disk (backpressure).
            _ if self.log.unflushed_bytes() > UNFLUSHED_BYTES_MAX => {
                AckWait::Written(self.log.wait_written_since(info.last_offset, info.tail_epoch))
            }
            _ => AckWait::Now,
        };
        Ok(Appended { info, wait })
    }

    /// Checks a request's view of the leader epoch (Fetch v9+, ListOffsets v4+,
    /// OffsetForLeaderEpoch v2+ carry it; -1 skips the check): an older one is fenced, a newer
    /// one is not known here yet (this replica's metadata is behind), both retriable.
    pub fn check_current_leader_epoch(&self, requested: i32) -> Result<(), PartitionError> {
        let current = self.leader_epoch();
        match requested {
            -1 => Ok(()),
            r if r < current.0 => Err(PartitionError::FencedLeaderEpoch { requested: LeaderEpoch(r), current }),
            r if r > current.0 => Err(PartitionError::UnknownLeaderEpoch { requested: LeaderEpoch(r), current }),
            _ => Ok(()),
        }
    }

    /// OffsetForLeaderEpoch as leader: the largest epoch at or below `epoch` that wrote to this
    /// log and the offset where it ends (Kafka's answer), for a follower finding where its log
    /// diverges or a consumer validating its position after a leader change.
    pub fn end_offset_for_epoch(&self, epoch: i32, current_leader_epoch: i32) -> Result<(i32, i64), PartitionError> {
        self.check_leader()?;
        self.check_current_leader_epoch(current_leader_epoch)?;
        Ok(self.log.leader_epoch_end_offset(epoch))
    }

    /// DeleteRecords as leader: moves the log start offset to `offset` (-1: the high
    /// watermark), deleting the sealed segments wholly below it, and returns the new log start
    /// (Kafka's low watermark). An offset past the high watermark is out of range; one below
    /// the log start changes nothing.
    pub async fn delete_records(&self, offset: i64) -> Result<u64, PartitionError> {
        self.check_leader()?;
        let high_watermark = self.high_watermark();
        let target = match offset {
            -1 => high_watermark,
            o if o >= 0 && o as u64 <= high_watermark => o as u64,
            o => {
                return Err(PartitionError::OffsetOutOfRange {
                    offset: o,
                    log_start_offset: self.log.log_start_offset(),
                    log_end_offset: high_watermark,
                })
            }
        };
        self.log.advance_log_start_offset(target).await?;
        Ok(self.log.log_start_offset())
    }

    /// What acks=all waits for, for a batch ending at `last_offset` appended at the log's tail
    /// epoch `tail_epoch` ([`ringtail_log::AppendInfo::tail_epoch`]).
    pub fn ack_wait_all(&self, last_offset: u64, tail_epoch: u64) -> AckWait {
        let local = match self.log.config().durability {
            Durability::Sync => Some(self.log.wait_durable_since(last_offset, tail_epoch)),
            Durability::Async => None,
        };
        AckWait::HighWatermark { last_offset, local }
    }

    /// Waits for what an append's acknowledgement needs.
    pub async fn wait_acked(&self, wait: AckWait) -> Result<(), PartitionError> {
        match wait {
            AckWait::Now => Ok(()),
            AckWait::Durable(w) | AckWait::Written(w) => Ok(w.await?),
            AckWait::HighWatermark { last_offset, local } => {
                if let Some(local) = local {
                    local.await?;
                }
                self.wait_for_data(last_offset).await;
                match self.log.failed() {
                    Some(e) => Err(PartitionError::Log(e)),
                    None if self.high_watermark() > last_offset => Ok(()),
                    // The wait ended without the batch committed: leadership moved away.
                    None => Err(self
                        .check_leader()
                        .err()
                        .unwrap_or(PartitionError::NotLeader { leader: None, epoch: self.leader_epoch() })),
                }
            }
        }
    }

    /// Reads whole batches from `offset` up to `max_bytes` (at least one batch if any is
    /// visible), never past what `isolation` allows. An offset at or past the visible end
    /// returns nothing; one outside the log is out of range.
    pub async fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        isolation: Isolation,
    ) -> Result<ReadBatches, PartitionError> {
        if let Some(e) = self.log.failed() {
            return Err(PartitionError::Log(e));
        }
        let log_end_offset = self.log.log_end_offset();
        if offset < 0 || offset as u64 > log_end_offset {
            return Err(PartitionError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log.log_start_offset(),
                log_end_offset,
            });
        }
        let limit = match isolation {
            Isolation::HighWatermark => self.high_watermark(),
            Isolation::LogEnd => log_end_offset,
        };
        if offset as u64 >= limit {
            return Ok(ReadBatches { next_offset: offset as u64, ..ReadBatches::default() });
        }
        self.log.read(offset as u64, max_bytes, limit).await.map_err(|e| match e {
            LogError::OffsetOutOfRange { log_start_offset, log_end_offset, .. } => {
                PartitionError::OffsetOutOfRange { offset, log_start_offset, log_end_offset }
            }
            e => PartitionError::Log(e),
        })
    }

    /// True when a read at `offset` is served from memory (no disk read, no read budget).
    pub fn is_cached(&self, offset: u64) -> bool {
        self.log.is_cached(offset)
    }

    /// The offset (and, for a timestamp, the record's timestamp) ListOffsets answers, or
    /// `None` when no visible record is that late.
    pub async fn offset_for(&self, spec: OffsetSpec) -> Result<Option<(u64, i64)>, PartitionError> {
        if let Some(e) = self.log.failed() {
            return Err(PartitionError::Log(e));
        }
        match spec {
            OffsetSpec::Latest => Ok(Some((self.high_watermark(), -1))),
            OffsetSpec::Earliest => Ok(Some((self.log.log_start_offset(), -1))),
            OffsetSpec::Timestamp(t) => match self.log.offset_for_timestamp(t).await? {
                Some((offset, timestamp)) if offset < self.high_watermark() => Ok(Some((offset, timestamp))),
                _ => Ok(None),
            },
            // As in Kafka, a newest record above the high watermark is not answered.
            OffsetSpec::MaxTimestamp => match self.log.offset_of_max_timestamp().await? {
                Some((offset, timestamp)) if offset < self.high_watermark() => Ok(Some((offset, timestamp))),
                _ => Ok(None),
            },
            OffsetSpec::LatestTiered => Ok(None),
        }
    }

    /// Completes once the high watermark is past `offset` (data a consumer at `offset` can
    /// read), or when the partition's storage fails. Long-polling fetches park here, on the
    /// owner shard; drop the future to stop waiting.
    pub fn wait_for_data(&self, offset: u64) -> DataWait {
        DataWait { partition: self.this.clone(), offset, log_wait: None, id: None }
    }
}

/// Future of [`Partition::wait_for_data`].
pub struct DataWait {
    partition: Weak<Partition>,
    offset: u64,
    /// This replica's own progress, while it is what holds the high watermark back.
    log_wait: Option<DurableWait>,
    /// Registration among the partition's parked fetches.
    id: Option<u64>,
}

impl Future for DataWait {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(partition) = self.partition.upgrade() else { return Poll::Ready(()) };
        loop {
            if partition.high_watermark() > self.offset || partition.log.failed().is_some() {
                return Poll::Ready(());
            }
            if partition.local_stable_offset() > self.offset {
                // Other replicas hold it back: woken by `update_follower` or a leadership change.
                break;
            }
            let offset = self.offset;
            let wait = self.log_wait.get_or_insert_with(|| match partition.log.config().durability {
                Durability::Sync => partition.log.wait_durable(offset),
                Durability::Async => partition.log.wait_appended(offset),
            });
            match Pin::new(wait).poll(cx) {
                Poll::Ready(_) => self.log_wait = None,
                Poll::Pending => break,
            }
        }
        let mut parked = partition.parked.borrow_mut();
        match self.id.and_then(|id| parked.iter_mut().find(|(i, _)| *i == id)) {
            Some((_, waker)) => waker.clone_from(cx.waker()),
            None => {
                let id = partition.next_parked_id.get() + 1;
                partition.next_parked_id.set(id);
                parked.push((id, cx.waker().clone()));
                self.id = Some(id);
            }
        }
        Poll::Pending
    }
}

impl Drop for DataWait {
    fn drop(&mut self) {
        if let (Some(id), Some(partition)) = (self.id, self.partition.upgrade()) {
            if let Ok(mut parked) = partition.parked.try_borrow_mut() {
                parked.retain(|(i, _)| *i != id);
            }
        }
    }
}
