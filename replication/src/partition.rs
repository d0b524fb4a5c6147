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
use crate::limits::{ISR_PROPOSAL_ANSWER_MS_MAX, UNFLUSHED_BYTES_MAX};
use crate::metadata::isr::{IsrDecided, IsrProposal};
use crate::metadata::PartitionImage;

/// What this node's replica of a partition does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Takes appends and serves consumers.
    Leader,
    /// Copies the leader's log (its replica fetcher fetches it) and refuses appends.
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

/// A ListOffsets answer: the offset, the record's timestamp (-1 unless a timestamp was
/// looked up) and the leader epoch that goes with the offset (-1 when unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FoundOffset {
    pub offset: u64,
    pub timestamp: i64,
    pub leader_epoch: i32,
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
        /// The leader epoch the batch was appended in: the wait ends, unacknowledged, when this
        /// replica stops leading in it (its batch may be cut and another stored at its offset).
        leader_epoch: LeaderEpoch,
    },
}

/// A follower as its leader sees it (Kafka's replica state on the leader).
#[derive(Debug, Clone, Copy)]
struct FollowerProgress {
    node: NodeId,
    /// The offset its last fetch started at: what it holds (durably, under sync durability).
    log_end: u64,
    /// The last time it had caught up with the leader's log end (Kafka's lastCaughtUpTimeMs).
    caught_up_ms: i64,
    /// When it last fetched, and the leader's log end then.
    last_fetch_ms: i64,
    last_fetch_leader_end: u64,
}

/// An ISR change sent to the controller and not answered yet.
#[derive(Debug, Clone)]
struct PendingIsr {
    isr: Vec<NodeId>,
    sent_ms: i64,
}

/// Replica state; changed only through the partition's methods.
#[derive(Debug)]
struct ReplicaState {
    role: Role,
    leader_epoch: LeaderEpoch,
    /// Nodes holding a replica (from the metadata).
    replicas: Vec<NodeId>,
    /// In-sync replicas as the metadata (or the controller's answer) last said, this node
    /// included while it leads.
    isr: Vec<NodeId>,
    /// The partition epoch of that state.
    partition_epoch: i32,
    /// While an ISR change is with the controller, the high watermark waits for the union of
    /// the old and the proposed ISR (Kafka's maximal ISR): a replica joining may be elected as
    /// soon as the controller commits, before this leader hears of it.
    pending: Option<PendingIsr>,
    /// What each follower's fetches said (leaders only).
    followers: Vec<FollowerProgress>,
    /// Offsets below are visible to consumers. Never moves back while this node leads; a
    /// follower takes its leader's (within its own log).
    high_watermark: u64,
    /// The last high watermark saved to the partition's checkpoint file.
    saved_high_watermark: Option<u64>,
    /// When this node became leader, and its log end then: the first offset of its epoch.
    leader_since_ms: i64,
    leader_epoch_start: u64,
    /// The topic's min.insync.replicas: acks=all needs at least this many in-sync replicas.
    min_insync: usize,
}

impl ReplicaState {
    /// The nodes the high watermark waits for: the ISR, and the replicas a pending change adds.
    fn maximal_isr(&self) -> impl Iterator<Item = NodeId> + '_ {
        let added = self.pending.iter().flat_map(|p| p.isr.iter().copied().filter(|n| !self.isr.contains(n)));
        self.isr.iter().copied().chain(added)
    }
}

/// What a follower's fetch gets from its leader before any records: go on and read, or its log
/// diverged (Kafka's DivergingEpoch: the largest epoch at or below the follower's last one, and
/// where it ends on the leader).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowerFetch {
    Read,
    Diverging { epoch: i32, end_offset: i64 },
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
    /// A replica over an open log, in the state the metadata image gives it. A high watermark
    /// the log saved is where it starts.
    pub fn new(
        id: PartitionId,
        topic: Rc<str>,
        local: NodeId,
        log: Rc<PartitionLog>,
        image: &PartitionImage,
    ) -> Rc<Partition> {
        let role = if image.leader == Some(local) { Role::Leader } else { Role::Follower { leader: image.leader } };
        let saved = log.recovery_report().high_watermark;
        let state = ReplicaState {
            role,
            leader_epoch: image.leader_epoch,
            replicas: image.replicas.clone(),
            isr: image.isr.clone(),
            partition_epoch: image.partition_epoch,
            pending: None,
            followers: Vec::new(),
            high_watermark: saved.unwrap_or(0).min(log.log_end_offset()),
            saved_high_watermark: saved,
            leader_since_ms: ringtail_log::now_ms(),
            leader_epoch_start: log.log_end_offset(),
            min_insync: 1,
        };
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

    /// The leader as this replica knows it (itself while it leads).
    pub fn leader(&self) -> Option<NodeId> {
        match self.state.borrow().role {
            Role::Leader => Some(self.local),
            Role::Follower { leader } => leader,
            Role::Offline => None,
        }
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

    pub fn replicas(&self) -> Vec<NodeId> {
        self.state.borrow().replicas.clone()
    }

    /// The topic's min.insync.replicas, taken when the replica opens and when it changes.
    pub fn set_min_insync(&self, min_insync: usize) {
        self.state.borrow_mut().min_insync = min_insync.max(1);
    }

    /// Offsets below the high watermark are on every in-sync replica and visible to
    /// consumers. A leader's is the minimum of this replica's stable offset and what each
    /// other in-sync replica (with a pending change, each of the maximal ISR) reported; it
    /// never moves back. A follower's is its leader's, within its own log.
    pub fn high_watermark(&self) -> u64 {
        let mut st = self.state.borrow_mut();
        if !matches!(st.role, Role::Leader) {
            st.high_watermark = st.high_watermark.min(self.log.log_end_offset());
            return st.high_watermark;
        }
        let mut candidate = self.local_stable_offset();
        for node in st.maximal_isr().filter(|&n| n != self.local) {
            let reported = st.followers.iter().find(|f| f.node == node).map_or(0, |f| f.log_end);
            candidate = candidate.min(reported);
        }
        if candidate > st.high_watermark {
            st.high_watermark = candidate;
        }
        debug_assert!(st.high_watermark <= self.log.log_end_offset());
        st.high_watermark
    }

    /// Takes the partition's state from the metadata image: leader, epochs, replicas, ISR. A
    /// leader epoch never goes back, nor does the partition epoch within one leader epoch: a
    /// stale change is ignored. Becoming leader starts the epoch at the log end (followers are
    /// given a whole `replica.lag.time.max.ms` from now).
    pub fn apply_state(&self, image: &PartitionImage, now_ms: i64) {
        let mut st = self.state.borrow_mut();
        let newer_epoch = image.leader_epoch > st.leader_epoch;
        if image.leader_epoch < st.leader_epoch || (!newer_epoch && image.partition_epoch < st.partition_epoch) {
            return;
        }
        let was_leader = matches!(st.role, Role::Leader);
        // A replica whose storage failed stays offline whoever leads.
        if !matches!(st.role, Role::Offline) {
            st.role =
                if image.leader == Some(self.local) { Role::Leader } else { Role::Follower { leader: image.leader } };
        }
        let is_leader = matches!(st.role, Role::Leader);
        if newer_epoch || was_leader != is_leader {
            st.followers.clear();
            st.pending = None;
            if is_leader {
                st.leader_since_ms = now_ms;
                st.leader_epoch_start = self.log.log_end_offset();
            }
        }
        if image.partition_epoch > st.partition_epoch || newer_epoch {
            // The controller has decided whatever was pending, one way or the other.
            st.pending = None;
        }
        st.leader_epoch = image.leader_epoch;
        st.partition_epoch = image.partition_epoch;
        st.replicas = image.replicas.clone();
        st.isr = image.isr.clone();
        drop(st);
        self.high_watermark();
        self.wake_parked();
    }

    /// A follower's fetch from `fetch_offset` told the leader how far its log reaches: its
    /// catch-up time follows Kafka's rule (caught up now if it reached the leader's log end,
    /// or as of its previous fetch if it reached the log end of then), and the high watermark
    /// may move.
    pub fn update_follower(&self, node: NodeId, fetch_offset: u64, now_ms: i64) {
        let leader_end = self.log.log_end_offset();
        let before = {
            let mut st = self.state.borrow_mut();
            let since = st.leader_since_ms;
            let index = match st.followers.iter().position(|f| f.node == node) {
                Some(i) => i,
                None => {
                    st.followers.push(FollowerProgress {
                        node,
                        log_end: 0,
                        caught_up_ms: since,
                        last_fetch_ms: i64::MIN,
                        last_fetch_leader_end: 0,
                    });
                    st.followers.len() - 1
                }
            };
            let f = &mut st.followers[index];
            if fetch_offset >= leader_end {
                f.caught_up_ms = now_ms;
            } else if fetch_offset >= f.last_fetch_leader_end && f.last_fetch_ms != i64::MIN {
                f.caught_up_ms = f.caught_up_ms.max(f.last_fetch_ms);
            }
            f.log_end = fetch_offset;
            f.last_fetch_ms = now_ms;
            f.last_fetch_leader_end = leader_end;
            st.high_watermark
        };
        if self.high_watermark() > before {
            self.wake_parked();
        }
    }

    /// Checks a follower's fetch as this partition's leader: the follower must hold a replica
    /// and know the current leader epoch; a log that diverged from this one (its last fetched
    /// epoch ends earlier here, or is not here) is told where; an offset outside this log is
    /// out of range. Otherwise its progress is noted and it reads from `fetch_offset`.
    pub fn follower_fetch(
        &self,
        node: NodeId,
        fetch_offset: i64,
        last_fetched_epoch: i32,
        current_leader_epoch: i32,
        now_ms: i64,
    ) -> Result<FollowerFetch, PartitionError> {
        self.check_leader()?;
        self.check_current_leader_epoch(current_leader_epoch)?;
        if node == self.local || !self.state.borrow().replicas.contains(&node) {
            return Err(PartitionError::NotReplica { node });
        }
        if let Some(diverging) = self.diverging(fetch_offset, last_fetched_epoch) {
            return Ok(diverging);
        }
        let (start, end) = (self.log.log_start_offset(), self.log.log_end_offset());
        if fetch_offset < start as i64 || fetch_offset as u64 > end {
            return Err(PartitionError::OffsetOutOfRange {
                offset: fetch_offset,
                log_start_offset: start,
                log_end_offset: end,
            });
        }
        self.update_follower(node, fetch_offset as u64, now_ms);
        Ok(FollowerFetch::Read)
    }

    /// Kafka's check of a fetch's last fetched epoch (a follower's, or a consumer's from Fetch
    /// v12 on, -1 for none): the fetcher's log diverged from this one when that epoch is not
    /// here or ends here before `fetch_offset`; it is told the epoch and where it ends.
    fn diverging(&self, fetch_offset: i64, last_fetched_epoch: i32) -> Option<FollowerFetch> {
        if last_fetched_epoch < 0 {
            return None;
        }
        let (epoch, end_offset) = self.log.leader_epoch_end_offset(last_fetched_epoch);
        (epoch < last_fetched_epoch || end_offset < fetch_offset)
            .then_some(FollowerFetch::Diverging { epoch, end_offset })
    }

    /// Checks a consumer's fetch as this partition's leader: its view of the leader epoch
    /// (KIP-320), and the epoch of the last batch it read, whose log may have been cut since
    /// (the consumer is told where, and truncates its position).
    pub fn consumer_fetch(
        &self,
        fetch_offset: i64,
        last_fetched_epoch: i32,
        current_leader_epoch: i32,
    ) -> Result<FollowerFetch, PartitionError> {
        self.check_current_leader_epoch(current_leader_epoch)?;
        Ok(self.diverging(fetch_offset, last_fetched_epoch).unwrap_or(FollowerFetch::Read))
    }

    /// The ISR this leader should propose now, if it differs from the current one and no
    /// change is with the controller: in-sync followers that have not caught up for
    /// `lag_max_ms` leave; followers that reached the high watermark and the start of this
    /// leader's epoch join (the controller checks that their brokers are live). A change
    /// pending longer than the controller takes to answer is forgotten.
    /// Only replicas `eligible` says may join (their brokers are unfenced and not shutting down in
    /// this node's metadata; the controller checks again).
    pub fn isr_proposal(&self, now_ms: i64, lag_max_ms: i64, eligible: impl Fn(NodeId) -> bool) -> Option<IsrProposal> {
        if !matches!(self.role(), Role::Leader) {
            return None;
        }
        let high_watermark = self.high_watermark();
        let leader_end = self.log.log_end_offset();
        let mut st = self.state.borrow_mut();
        if let Some(p) = &st.pending {
            if now_ms.saturating_sub(p.sent_ms) < ISR_PROPOSAL_ANSWER_MS_MAX {
                return None;
            }
            st.pending = None;
        }
        let progress = |node: NodeId| st.followers.iter().find(|f| f.node == node);
        let in_sync = |node: NodeId| {
            node == self.local
                || match progress(node) {
                    Some(f) => f.log_end >= leader_end || now_ms.saturating_sub(f.caught_up_ms) <= lag_max_ms,
                    None => now_ms.saturating_sub(st.leader_since_ms) <= lag_max_ms,
                }
        };
        let joins = |node: NodeId| {
            eligible(node)
                && progress(node).is_some_and(|f| f.log_end >= high_watermark && f.log_end >= st.leader_epoch_start)
        };
        let isr: Vec<NodeId> =
            st.replicas.iter().copied().filter(|&n| if st.isr.contains(&n) { in_sync(n) } else { joins(n) }).collect();
        let mut current = st.isr.clone();
        let mut proposed = isr.clone();
        current.sort_unstable();
        proposed.sort_unstable();
        if current == proposed || !isr.contains(&self.local) {
            return None;
        }
        Some(IsrProposal {
            partition: self.id,
            leader_epoch: st.leader_epoch,
            partition_epoch: st.partition_epoch,
            isr,
        })
    }

    /// The proposal went to the controller: the high watermark waits for the maximal ISR
    /// until it is answered.
    pub fn isr_proposed(&self, proposal: &IsrProposal, now_ms: i64) {
        let mut st = self.state.borrow_mut();
        if proposal.leader_epoch == st.leader_epoch && proposal.partition_epoch == st.partition_epoch {
            st.pending = Some(PendingIsr { isr: proposal.isr.clone(), sent_ms: now_ms });
        }
    }

    /// The controller's answer to a proposal: a new state is taken at once (the metadata brings
    /// the same later); a refusal ends the pending change (the metadata brings the current state).
    pub fn isr_answered(&self, proposal: &IsrProposal, answer: Option<&IsrDecided>) {
        let mut st = self.state.borrow_mut();
        if proposal.leader_epoch != st.leader_epoch || proposal.partition_epoch != st.partition_epoch {
            return;
        }
        st.pending = None;
        if let Some(d) = answer.filter(|d| d.leader_epoch == st.leader_epoch && d.partition_epoch > st.partition_epoch)
        {
            st.isr = d.isr.clone();
            st.partition_epoch = d.partition_epoch;
        }
        drop(st);
        self.high_watermark();
        self.wake_parked();
    }

    /// The epoch of the last batch in this replica's log, or -1 for an empty log: a
    /// follower's fetch carries it (Kafka's LastFetchedEpoch).
    pub fn last_fetched_epoch(&self) -> i32 {
        if self.log.log_end_offset() <= self.log.log_start_offset() {
            return -1;
        }
        self.log.leader_epochs().last().map_or(-1, |&(epoch, _)| epoch)
    }

    /// Appends batches fetched from the leader, as it wrote them. Refused if this replica leads.
    pub fn append_as_follower(&self, records: Bytes, now_ms: i64) -> Result<AppendInfo, PartitionError> {
        if let Some(e) = self.log.failed() {
            return Err(PartitionError::Log(e));
        }
        if matches!(self.state.borrow().role, Role::Leader) {
            return Err(PartitionError::NotFollower);
        }
        Ok(self.log.append_replicated(records, now_ms)?)
    }

    /// Takes the leader's high watermark (within this replica's log) after a fetch.
    pub fn follow_high_watermark(&self, leader_high_watermark: u64) {
        let moved = {
            let mut st = self.state.borrow_mut();
            if matches!(st.role, Role::Leader) {
                return;
            }
            let hw = leader_high_watermark.min(self.log.log_end_offset());
            let moved = hw != st.high_watermark;
            st.high_watermark = hw;
            moved
        };
        if moved {
            self.wake_parked();
        }
    }

    /// A follower's log diverged from its leader's at `epoch`, which ends at `end_offset` on
    /// the leader: cut it where both agree (the lower of the two ends of that epoch; all of it
    /// if this log has no epoch that old). The offset the log ends at now.
    pub async fn truncate_diverged(&self, epoch: i32, end_offset: i64) -> Result<u64, PartitionError> {
        let (mine, my_end) = self.log.leader_epoch_end_offset(epoch);
        let cut = match mine {
            e if e < 0 || my_end < 0 => self.log.log_start_offset(),
            _ => (end_offset.max(0) as u64).min(my_end as u64),
        };
        let end = self.log.truncate_to(cut).await?;
        self.high_watermark();
        Ok(end)
    }

    /// A follower behind its leader's log start (retention or DeleteRecords there) or ahead of
    /// its log end: emptied and started again at `offset` (Kafka's truncateFullyAndStartAt),
    /// or cut back to `offset` when that is inside this log.
    pub async fn restart_at(&self, offset: u64) -> Result<(), PartitionError> {
        if offset < self.log.log_end_offset() && offset >= self.log.log_start_offset() {
            self.log.truncate_to(offset).await?;
        } else {
            self.log.restart_at(offset).await?;
        }
        self.high_watermark();
        Ok(())
    }

    /// Follows the leader's log start (retention or DeleteRecords there), within this log.
    pub async fn follow_log_start(&self, leader_log_start: u64) -> Result<(), PartitionError> {
        let target = leader_log_start.min(self.log.log_end_offset());
        if target > self.log.log_start_offset() {
            self.log.advance_log_start_offset(target).await?;
        }
        Ok(())
    }

    /// Saves the high watermark if it moved since the last save (a replica restarting as a
    /// follower or a new leader starts from it, and consumers of a new leader are not held
    /// back to the log start meanwhile).
    pub async fn checkpoint_high_watermark(&self) -> Result<(), PartitionError> {
        let hw = self.high_watermark();
        if self.state.borrow().saved_high_watermark == Some(hw) || self.log.failed().is_some() {
            return Ok(());
        }
        self.log.save_high_watermark(hw).await?;
        self.state.borrow_mut().saved_high_watermark = Some(hw);
        Ok(())
    }

    /// Followers' lag as the leader sees it: (node, offsets behind the log end, ms since caught up).
    pub fn follower_lag(&self, now_ms: i64) -> Vec<(NodeId, u64, i64)> {
        let end = self.log.log_end_offset();
        let st = self.state.borrow();
        if !matches!(st.role, Role::Leader) {
            return Vec::new();
        }
        st.replicas
            .iter()
            .filter(|&&n| n != self.local)
            .map(|&n| match st.followers.iter().find(|f| f.node == n) {
                Some(f) => (n, end.saturating_sub(f.log_end), now_ms.saturating_sub(f.caught_up_ms).max(0)),
                None => (n, end.saturating_sub(st.high_watermark), now_ms.saturating_sub(st.leader_since_ms).max(0)),
            })
            .collect()
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
        if acks == Acks::All {
            let st = self.state.borrow();
            if st.isr.len() < st.min_insync {
                return Err(PartitionError::NotEnoughReplicas { isr: st.isr.len(), min_insync: st.min_insync });
            }
        }
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
        let leader = {
            let st = self.state.borrow();
            (st.leader_epoch.0, st.leader_epoch_start)
        };
        Ok(self.log.leader_epoch_end_offset_as_leader(epoch, leader))
    }

    /// OffsetForLeaderEpoch from a debugging tool (replica id -2): this replica's own cache,
    /// whatever its role.
    pub fn local_end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.log.leader_epoch_end_offset(epoch)
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
        AckWait::HighWatermark { last_offset, local, leader_epoch: self.leader_epoch() }
    }

    /// Waits for what an append's acknowledgement needs.
    pub async fn wait_acked(&self, wait: AckWait) -> Result<(), PartitionError> {
        match wait {
            AckWait::Now => Ok(()),
            AckWait::Durable(w) | AckWait::Written(w) => Ok(w.await?),
            AckWait::HighWatermark { last_offset, local, leader_epoch } => {
                if let Some(local) = local {
                    local.await?;
                }
                let mut wait = self.wait_for_data(last_offset);
                wait.leader_epoch = Some(leader_epoch);
                wait.await;
                let still_leading = self.role() == Role::Leader && self.leader_epoch() == leader_epoch;
                match self.log.failed() {
                    Some(e) => Err(PartitionError::Log(e)),
                    // Leadership moved (and maybe back): the batch may have been cut and the
                    // offset reused, so it is not acknowledged; the client retries at the
                    // leader, whose idempotence check finds it if it is there (Kafka completes
                    // a pending produce of a replica that stops leading the same way).
                    None if !still_leading => Err(self
                        .check_leader()
                        .err()
                        .unwrap_or(PartitionError::NotLeader { leader: None, epoch: self.leader_epoch() })),
                    // Committed, but by fewer replicas than the topic asks for (Kafka answers the
                    // same: the write is there, the producer is told it may not be safe).
                    None if self.high_watermark() > last_offset => {
                        let st = self.state.borrow();
                        match st.isr.len() < st.min_insync {
                            true => Err(PartitionError::NotEnoughReplicasAfterAppend {
                                isr: st.isr.len(),
                                min_insync: st.min_insync,
                            }),
                            false => Ok(()),
                        }
                    }
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
        self.read_with(offset, max_bytes, isolation, false).await
    }

    /// `read` for a fetch that sends the batches on: a cold read of verified sealed data may
    /// come back as a file range (`ReadBatches::file`, the log's `read_to_send`).
    pub async fn read_to_send(
        &self,
        offset: i64,
        max_bytes: usize,
        isolation: Isolation,
    ) -> Result<ReadBatches, PartitionError> {
        self.read_with(offset, max_bytes, isolation, true).await
    }

    async fn read_with(
        &self,
        offset: i64,
        max_bytes: usize,
        isolation: Isolation,
        to_send: bool,
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
        let read = match to_send {
            true => self.log.read_to_send(offset as u64, max_bytes, limit).await,
            false => self.log.read(offset as u64, max_bytes, limit).await,
        };
        read.map_err(|e| match e {
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

    /// The offset ListOffsets answers, or `None` when no visible record is that late.
    pub async fn offset_for(&self, spec: OffsetSpec) -> Result<Option<FoundOffset>, PartitionError> {
        if let Some(e) = self.log.failed() {
            return Err(PartitionError::Log(e));
        }
        // A new leader whose high watermark has not reached the start of its epoch does not know
        // yet what is committed (KIP-207): the client retries.
        {
            let hw = self.high_watermark();
            let st = self.state.borrow();
            if matches!(st.role, Role::Leader) && hw < st.leader_epoch_start {
                return Err(PartitionError::OffsetNotAvailable);
            }
        }
        // The leader epoch of the answer, as Kafka gives it: the current one for the latest
        // offset, the epoch that wrote the record otherwise (-1 when the cache names none). A
        // consumer keeps it with its position and validates that against OffsetForLeaderEpoch
        // after a leader change, so it must name an epoch this log knows.
        let epoch_at = |offset: u64| self.log.epoch_at(offset).unwrap_or(-1);
        let visible = |found: Option<(u64, i64)>| match found {
            Some((offset, timestamp)) if offset < self.high_watermark() => {
                Some(FoundOffset { offset, timestamp, leader_epoch: epoch_at(offset) })
            }
            _ => None,
        };
        Ok(match spec {
            OffsetSpec::Latest => {
                Some(FoundOffset { offset: self.high_watermark(), timestamp: -1, leader_epoch: self.leader_epoch().0 })
            }
            OffsetSpec::Earliest => {
                let offset = self.log.log_start_offset();
                Some(FoundOffset { offset, timestamp: -1, leader_epoch: epoch_at(offset) })
            }
            OffsetSpec::Timestamp(t) => visible(self.log.offset_for_timestamp(t).await?),
            // As in Kafka, a newest record above the high watermark is not answered.
            OffsetSpec::MaxTimestamp => visible(self.log.offset_of_max_timestamp().await?),
            OffsetSpec::LatestTiered => None,
        })
    }

    /// Completes once the high watermark is past `offset` (data a consumer at `offset` can
    /// read), or when the partition's storage fails. Long-polling fetches park here, on the
    /// owner shard; drop the future to stop waiting.
    pub fn wait_for_data(&self, offset: u64) -> DataWait {
        DataWait { partition: self.this.clone(), offset, leader_epoch: None, log_wait: None, id: None }
    }
}

/// Future of [`Partition::wait_for_data`].
pub struct DataWait {
    partition: Weak<Partition>,
    offset: u64,
    /// An acknowledgement's wait also ends when this replica stops leading in this epoch.
    leader_epoch: Option<LeaderEpoch>,
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
            if self.leader_epoch.is_some_and(|e| partition.role() != Role::Leader || partition.leader_epoch() != e) {
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
