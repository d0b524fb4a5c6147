//! The classic group membership protocol as a state machine: groups, members, generations,
//! rebalances, session and rebalance timeouts, static membership, and the committed offsets
//! cache. Deterministic: time comes in as `now_ms`, and nothing here touches the disk; what must
//! be stored is queued in `Groups::writes` for the caller to append to `__consumer_offsets`.
//!
//! Owned by the shard that owns the groups' `__consumer_offsets` partitions; never shared.
//! Answers to JoinGroup and SyncGroup that must wait for other members travel on one-message
//! channels kept with the member.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;

use super::consumer::machine::{CommitRefusal, ConsumerGroup, Settings, Topics};
use super::consumer::records::{assignment_bytes, group_records, record_order, subscription_bytes};
use super::error::GroupError;
use super::records::{GroupValue, OffsetValue, RecordKey, StoredMember};
/// A member as the leader's JoinGroup answer lists it: the wire form itself.
pub use ringtail_net::messages::join_group::JoinGroupResponseMember as JoinMember;

/// Members per group (Kafka's group.max.size).
pub const GROUP_MEMBERS_MAX: usize = 1000;
/// Protocols a member may offer in one JoinGroup.
pub const MEMBER_PROTOCOLS_MAX: usize = 32;
/// Groups one shard coordinates; joins and commits that would create more are refused.
pub const GROUPS_PER_SHARD_MAX: usize = 100_000;
/// How long an empty group without committed offsets is kept before it is forgotten (Kafka's
/// offsets.retention.check.interval.ms: its cleanup runs that often).
const EMPTY_GROUP_KEPT_MS: i64 = 600_000;
/// How long a deleted group's record offset is remembered, so that a commit that was in
/// flight when the group was deleted cannot bring its offsets back.
const DELETED_GROUP_MEMORY_MS: i64 = 60_000;
/// Bytes of metadata a committed offset may carry (Kafka's offset.metadata.max.bytes).
pub const OFFSET_METADATA_BYTES_MAX: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// Kafka's names, as DescribeGroups and ListGroups report them.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

pub use crate::config::GroupConfig;

#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub group_id: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    pub client_id: String,
    pub client_host: String,
    /// JoinGroup v4+ clients are told MEMBER_ID_REQUIRED on their first join.
    pub member_id_required: bool,
}

/// The answer to a JoinGroup: the generation joined, or why the member did not join.
#[derive(Debug, Clone, Default)]
pub struct JoinResponse {
    /// Why the member did not join; `None` when it did.
    pub error: Option<GroupError>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    /// The leader need not compute an assignment: a returning static leader keeps the old one.
    pub skip_assignment: bool,
    pub member_id: String,
    /// Every member with its metadata for the leader; empty for the other members.
    pub members: Vec<JoinMember>,
}

fn join_error(error: GroupError, member_id: &str) -> JoinResponse {
    JoinResponse { error: Some(error), generation_id: -1, member_id: member_id.to_string(), ..JoinResponse::default() }
}

#[derive(Debug, Clone)]
pub struct SyncRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

/// The answer to a SyncGroup: the member's assignment, or why there is none.
#[derive(Debug, Clone, Default)]
pub struct SyncResponse {
    /// Why the member got no assignment; `None` when it did.
    pub error: Option<GroupError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

fn sync_error(error: GroupError) -> SyncResponse {
    SyncResponse { error: Some(error), ..SyncResponse::default() }
}

/// A member as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSummary {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSummary {
    pub group_id: String,
    /// Kafka's name of the group's state.
    pub state: String,
    /// "classic" or "consumer".
    pub group_type: &'static str,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberSummary>,
}

/// A committed offset with the `__consumer_offsets` offset of the record that holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub value: OffsetValue,
    pub record_offset: u64,
}

struct Member {
    member_id: String,
    group_instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout_ms: i32,
    rebalance_timeout_ms: i32,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    awaiting_join: Option<flume::Sender<JoinResponse>>,
    awaiting_sync: Option<flume::Sender<SyncResponse>>,
    session_deadline_ms: i64,
}

impl Member {
    fn metadata(&self, protocol: Option<&str>) -> Bytes {
        protocol
            .and_then(|p| self.protocols.iter().find(|(name, _)| name == p))
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

pub struct Group {
    id: String,
    pub(super) state: GroupState,
    protocol_type: Option<String>,
    protocol: Option<String>,
    generation: i32,
    leader: Option<String>,
    /// In join order: the first is the leader when a new one is needed.
    members: Vec<Member>,
    /// Dynamic members told MEMBER_ID_REQUIRED, with the time they must join by.
    pending: Vec<(String, i64)>,
    rebalance_deadline_ms: i64,
    /// A new group waits this long for more members before its first rebalance completes.
    join_not_before_ms: i64,
    initial_delay_cap_ms: i64,
    state_timestamp_ms: i64,
    offsets: BTreeMap<(String, i32), Committed>,
    /// Set while the group uses the consumer protocol (KIP-848); its classic members are then
    /// none and its classic state Empty.
    pub(super) consumer: Option<ConsumerGroup>,
    /// The consumer-group records last queued for `__consumer_offsets`, by key: what the next
    /// change is compared with.
    pub(super) consumer_stored: HashMap<RecordKey, Bytes>,
}

impl Group {
    pub(super) fn new(id: &str, now_ms: i64) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            protocol_type: None,
            protocol: None,
            generation: 0,
            leader: None,
            members: Vec::new(),
            pending: Vec::new(),
            rebalance_deadline_ms: 0,
            join_not_before_ms: 0,
            initial_delay_cap_ms: 0,
            state_timestamp_ms: now_ms,
            offsets: BTreeMap::new(),
            consumer: None,
            consumer_stored: HashMap::new(),
        }
    }

    /// A classic group without members (or a consumer one without members): it may change
    /// protocol.
    pub(super) fn is_empty(&self) -> bool {
        self.members.is_empty()
            && self.pending.is_empty()
            && self.consumer.as_ref().is_none_or(|c| c.members.is_empty())
    }

    fn member(&mut self, member_id: &str) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.member_id == member_id)
    }

    fn has_member(&self, member_id: &str) -> bool {
        self.members.iter().any(|m| m.member_id == member_id)
    }

    fn by_instance(&self, instance: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.group_instance_id.as_deref() == Some(instance))
    }

    /// Whether `member_id` is not the member registered for `instance` (another process with
    /// the same group.instance.id replaced it).
    fn fenced(&self, instance: Option<&str>, member_id: &str) -> bool {
        match instance.and_then(|i| self.by_instance(i)) {
            Some(m) => !member_id.is_empty() && m.member_id != member_id,
            None => false,
        }
    }

    fn set_state(&mut self, state: GroupState, now_ms: i64) {
        self.state = state;
        self.state_timestamp_ms = now_ms;
    }

    /// Protocols every member supports, in the first member's order of preference.
    fn candidate_protocols(&self) -> Vec<String> {
        let Some(first) = self.members.first() else { return Vec::new() };
        first
            .protocols
            .iter()
            .map(|(name, _)| name.clone())
            .filter(|name| self.members.iter().all(|m| m.protocols.iter().any(|(n, _)| n == name)))
            .collect()
    }

    fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return true;
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && self.candidate_protocols().iter().any(|c| protocols.iter().any(|(n, _)| n == c))
    }

    /// Each member votes for its most preferred candidate; the most votes win, ties going to
    /// the earlier candidate.
    fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes = vec![0usize; candidates.len()];
        for m in &self.members {
            if let Some(i) = m.protocols.iter().find_map(|(n, _)| candidates.iter().position(|c| c == n)) {
                votes[i] += 1;
            }
        }
        let best = votes.iter().enumerate().max_by_key(|&(i, v)| (*v, std::cmp::Reverse(i)))?.0;
        candidates.get(best).cloned()
    }

    fn is_leader(&self, member_id: &str) -> bool {
        self.leader.as_deref() == Some(member_id)
    }

    /// The join answer for a member of the current generation.
    fn join_answer(&self, member_id: &str, skip_assignment: bool) -> JoinResponse {
        let leader = self.is_leader(member_id);
        JoinResponse {
            error: None,
            generation_id: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            skip_assignment: leader && skip_assignment,
            member_id: member_id.to_string(),
            members: if leader {
                self.members
                    .iter()
                    .map(|m| JoinMember {
                        member_id: m.member_id.clone(),
                        group_instance_id: m.group_instance_id.clone(),
                        metadata: m.metadata(self.protocol.as_deref()),
                    })
                    .collect()
            } else {
                Vec::new()
            },
        }
    }

    fn prepare_rebalance(&mut self, now_ms: i64) {
        if self.state == GroupState::CompletingRebalance {
            // The assignment being handed out is void: its members must join again.
            for m in &mut self.members {
                m.assignment = Bytes::new();
                if let Some(tx) = m.awaiting_sync.take() {
                    let _ = tx.try_send(sync_error(GroupError::RebalanceInProgress));
                }
            }
        }
        if self.state != GroupState::PreparingRebalance {
            let timeout = self.members.iter().map(|m| m.rebalance_timeout_ms).max().unwrap_or(0);
            self.rebalance_deadline_ms = now_ms + i64::from(timeout);
            self.join_not_before_ms = now_ms;
            self.set_state(GroupState::PreparingRebalance, now_ms);
        }
    }

    fn remove_member(&mut self, member_id: &str, now_ms: i64) {
        let Some(i) = self.members.iter().position(|m| m.member_id == member_id) else { return };
        let m = self.members.remove(i);
        if let Some(tx) = m.awaiting_join {
            let _ = tx.try_send(join_error(GroupError::UnknownMemberId, member_id));
        }
        if let Some(tx) = m.awaiting_sync {
            let _ = tx.try_send(sync_error(GroupError::UnknownMemberId));
        }
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => self.prepare_rebalance(now_ms),
            _ => {}
        }
    }
}

/// All groups of one shard.
pub struct Groups {
    pub config: GroupConfig,
    pub(super) groups: HashMap<String, Group>,
    /// Records to append to `__consumer_offsets`: group metadata after each rebalance.
    pub writes: Vec<(RecordKey, Option<Bytes>)>,
    next_member_number: u64,
    /// Recently deleted groups: the record offset of the deletion and when it happened.
    deleted: HashMap<String, (u64, i64)>,
}

/// Why a JoinGroup or other request was refused before touching any group.
fn validate_group_id(group_id: &str) -> Result<(), GroupError> {
    if group_id.is_empty() {
        return Err(GroupError::InvalidGroupId);
    }
    Ok(())
}

fn reply<T>(value: T) -> flume::Receiver<T> {
    let (tx, rx) = flume::bounded(1);
    let _ = tx.try_send(value);
    rx
}

impl Groups {
    pub fn new(config: GroupConfig) -> Groups {
        Groups { config, groups: HashMap::new(), writes: Vec::new(), next_member_number: 0, deleted: HashMap::new() }
    }

    fn new_member_id(&mut self, prefix: &str) -> String {
        self.next_member_number += 1;
        format!("{prefix}-{}-{}", ringtail_replication::ids::random_hex(), self.next_member_number)
    }

    fn store_group(&mut self, group_id: &str) {
        let Some(g) = self.groups.get(group_id) else { return };
        let value = GroupValue {
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            generation: g.generation,
            protocol: g.protocol.clone(),
            leader: g.leader.clone(),
            current_state_timestamp_ms: g.state_timestamp_ms,
            members: g
                .members
                .iter()
                .map(|m| StoredMember {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: m.metadata(g.protocol.as_deref()),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        };
        self.writes.push((RecordKey::Group { group: group_id.to_string() }, Some(value.encode())));
    }

    pub fn join(&mut self, req: JoinRequest, now_ms: i64) -> flume::Receiver<JoinResponse> {
        match self.try_join(req, now_ms) {
            Ok(rx) => rx,
            Err((error, member_id)) => reply(join_error(error, &member_id)),
        }
    }

    fn try_join(
        &mut self,
        req: JoinRequest,
        now_ms: i64,
    ) -> Result<flume::Receiver<JoinResponse>, (GroupError, String)> {
        let fail = |error: GroupError| (error, req.member_id.clone());
        validate_group_id(&req.group_id).map_err(fail)?;
        if !(self.config.session_timeout_ms_min..=self.config.session_timeout_ms_max).contains(&req.session_timeout_ms)
        {
            return Err(fail(GroupError::InvalidSessionTimeout {
                session_timeout_ms: req.session_timeout_ms,
                min_ms: self.config.session_timeout_ms_min,
                max_ms: self.config.session_timeout_ms_max,
            }));
        }
        if req.protocol_type.is_empty() || req.protocols.is_empty() || req.protocols.len() > MEMBER_PROTOCOLS_MAX {
            return Err(fail(GroupError::InconsistentGroupProtocol));
        }
        if !self.groups.contains_key(&req.group_id) {
            if !req.member_id.is_empty() {
                return Err(fail(GroupError::UnknownMemberId));
            }
            if self.groups.len() >= GROUPS_PER_SHARD_MAX {
                return Err(fail(GroupError::CoordinatorNotAvailable));
            }
            self.groups.insert(req.group_id.clone(), Group::new(&req.group_id, now_ms));
        }
        let new_id = if req.member_id.is_empty() {
            let prefix = req.group_instance_id.clone().unwrap_or_else(|| req.client_id.clone());
            Some(self.new_member_id(&prefix))
        } else {
            None
        };
        let config = self.config;
        let g = self.groups.get_mut(&req.group_id).expect("inserted above");
        if g.state == GroupState::Dead {
            return Err(fail(GroupError::CoordinatorNotAvailable));
        }
        if g.consumer.is_some() {
            if !g.is_empty() {
                return Err(fail(GroupError::InconsistentGroupProtocol));
            }
            // An empty consumer-protocol group is joined with the classic protocol: it becomes
            // a classic group, keeping its offsets.
            tracing::info!(group = %req.group_id, "empty consumer group joined with the classic protocol: now classic");
            g.consumer = None;
            let group_id = req.group_id.clone();
            self.store_consumer(&group_id);
            return self.try_join(req, now_ms);
        }
        if !g.supports(&req.protocol_type, &req.protocols) {
            return Err(fail(GroupError::InconsistentGroupProtocol));
        }
        let (tx, rx) = flume::bounded(1);
        let instance = req.group_instance_id.as_deref();
        if let Some(new_id) = new_id {
            if let Some(old_id) = instance.and_then(|i| g.by_instance(i)).map(|m| m.member_id.clone()) {
                // A static member came back (or a second process uses its instance id): the new
                // member id replaces the old, and the old one is fenced.
                let member = g.member(&old_id).expect("found by instance");
                if let Some(old) = member.awaiting_join.take() {
                    let _ = old.try_send(join_error(GroupError::FencedInstanceId, &old_id));
                }
                if let Some(old) = member.awaiting_sync.take() {
                    let _ = old.try_send(sync_error(GroupError::FencedInstanceId));
                }
                member.member_id = new_id.clone();
                member.client_id = req.client_id.clone();
                member.client_host = req.client_host.clone();
                member.session_timeout_ms = req.session_timeout_ms;
                member.rebalance_timeout_ms = req.rebalance_timeout_ms;
                member.protocols = req.protocols.clone();
                member.session_deadline_ms = now_ms + i64::from(req.session_timeout_ms);
                if g.leader.as_deref() == Some(old_id.as_str()) {
                    g.leader = Some(new_id.clone());
                }
                // Kafka's rule (KIP-345): no rebalance if the group would still pick the same
                // protocol; subscription bytes change with every generation and do not count.
                let unchanged = g.select_protocol() == g.protocol;
                match g.state {
                    GroupState::Stable if unchanged => {
                        // The member gets its assignment back without a rebalance; a returning
                        // leader is told to skip assigning. The new member id is stored, so a
                        // coordinator restart does not fence the member under its old id.
                        let _ = tx.try_send(g.join_answer(&new_id, true));
                        let group_id = req.group_id.clone();
                        self.store_group(&group_id);
                        return Ok(rx);
                    }
                    GroupState::PreparingRebalance => {
                        g.member(&new_id).expect("renamed").awaiting_join = Some(tx);
                    }
                    _ => {
                        g.prepare_rebalance(now_ms);
                        g.member(&new_id).expect("renamed").awaiting_join = Some(tx);
                    }
                }
            } else if g.members.len() + g.pending.len() >= GROUP_MEMBERS_MAX {
                return Err((GroupError::GroupMaxSizeReached { members_max: GROUP_MEMBERS_MAX }, String::new()));
            } else if req.member_id_required && instance.is_none() {
                // KIP-394: a dynamic member first learns its id, then joins with it, so that a
                // client retrying a lost response does not leave a ghost member behind.
                g.pending.push((new_id.clone(), now_ms + i64::from(req.session_timeout_ms)));
                return Err((GroupError::MemberIdRequired, new_id));
            } else {
                add_member(g, &req, new_id, tx, now_ms, config)?;
            }
        } else {
            if g.fenced(instance, &req.member_id) {
                return Err(fail(GroupError::FencedInstanceId));
            }
            if let Some(i) = g.pending.iter().position(|(id, _)| *id == req.member_id) {
                g.pending.remove(i);
                add_member(g, &req, req.member_id.clone(), tx, now_ms, config)?;
            } else if !g.has_member(&req.member_id) {
                return Err(fail(GroupError::UnknownMemberId));
            } else {
                let state = g.state;
                let is_leader = g.is_leader(&req.member_id);
                let member = g.member(&req.member_id).expect("checked");
                let unchanged = member.protocols == req.protocols;
                member.session_deadline_ms = now_ms + i64::from(member.session_timeout_ms);
                match state {
                    GroupState::PreparingRebalance => {
                        member.protocols = req.protocols.clone();
                        member.session_timeout_ms = req.session_timeout_ms;
                        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
                        member.awaiting_join = Some(tx);
                    }
                    GroupState::CompletingRebalance if unchanged => {
                        // It lost the join answer: send it again.
                        let _ = tx.try_send(g.join_answer(&req.member_id, false));
                        return Ok(rx);
                    }
                    GroupState::Stable if unchanged && !is_leader => {
                        let _ = tx.try_send(g.join_answer(&req.member_id, false));
                        return Ok(rx);
                    }
                    GroupState::CompletingRebalance | GroupState::Stable => {
                        member.protocols = req.protocols.clone();
                        member.awaiting_join = Some(tx);
                        g.prepare_rebalance(now_ms);
                    }
                    GroupState::Empty | GroupState::Dead => return Err(fail(GroupError::UnknownMemberId)),
                }
            }
        }
        if g.protocol_type.is_none() {
            g.protocol_type = Some(req.protocol_type.clone());
        }
        let group_id = req.group_id.clone();
        self.try_complete_join(&group_id, now_ms);
        Ok(rx)
    }

    /// Completes the rebalance of a group in PreparingRebalance once every member has joined
    /// (and a new group's initial delay has passed), or once the rebalance timeout expires,
    /// dropping the members that did not join.
    fn try_complete_join(&mut self, group_id: &str, now_ms: i64) {
        let Some(g) = self.groups.get_mut(group_id) else { return };
        if g.state != GroupState::PreparingRebalance {
            return;
        }
        let all_joined = g.pending.is_empty() && g.members.iter().all(|m| m.awaiting_join.is_some());
        let ready = all_joined && now_ms >= g.join_not_before_ms;
        if !ready && now_ms < g.rebalance_deadline_ms {
            return;
        }
        let late: Vec<String> =
            g.members.iter().filter(|m| m.awaiting_join.is_none()).map(|m| m.member_id.clone()).collect();
        for id in late {
            g.remove_member(&id, now_ms);
        }
        g.pending.clear();
        g.generation += 1;
        // The new generation's assignment comes with the leader's SyncGroup.
        for m in &mut g.members {
            m.assignment = Bytes::new();
        }
        if g.members.is_empty() {
            g.protocol = None;
            g.leader = None;
            g.set_state(GroupState::Empty, now_ms);
            // Stored now, like a completed assignment: the generation must not go back.
            self.store_group(group_id);
        } else {
            g.protocol = g.select_protocol();
            if !g.leader.as_ref().is_some_and(|l| g.has_member(l)) {
                g.leader = g.members.first().map(|m| m.member_id.clone());
            }
            g.set_state(GroupState::CompletingRebalance, now_ms);
            let answers: Vec<(flume::Sender<JoinResponse>, JoinResponse)> = g
                .members
                .iter()
                .map(|m| m.member_id.clone())
                .collect::<Vec<_>>()
                .into_iter()
                .filter_map(|id| {
                    let answer = g.join_answer(&id, false);
                    let m = g.member(&id).expect("listed");
                    m.session_deadline_ms = now_ms + i64::from(m.session_timeout_ms);
                    m.awaiting_join.take().map(|tx| (tx, answer))
                })
                .collect();
            for (tx, answer) in answers {
                let _ = tx.try_send(answer);
            }
        }
    }

    pub fn sync(&mut self, req: SyncRequest, now_ms: i64) -> flume::Receiver<SyncResponse> {
        let Some(g) = self.groups.get_mut(&req.group_id) else {
            return reply(sync_error(if req.group_id.is_empty() {
                GroupError::InvalidGroupId
            } else {
                GroupError::UnknownMemberId
            }));
        };
        if g.fenced(req.group_instance_id.as_deref(), &req.member_id) {
            return reply(sync_error(GroupError::FencedInstanceId));
        }
        if !g.has_member(&req.member_id) {
            return reply(sync_error(GroupError::UnknownMemberId));
        }
        if req.generation_id != g.generation {
            return reply(sync_error(GroupError::IllegalGeneration));
        }
        if req.protocol_type.as_ref().is_some_and(|t| Some(t) != g.protocol_type.as_ref())
            || req.protocol_name.as_ref().is_some_and(|p| Some(p) != g.protocol.as_ref())
        {
            return reply(sync_error(GroupError::InconsistentGroupProtocol));
        }
        let answer = |g: &Group, assignment: Bytes| SyncResponse {
            error: None,
            protocol_type: g.protocol_type.clone(),
            protocol_name: g.protocol.clone(),
            assignment,
        };
        match g.state {
            GroupState::Empty | GroupState::Dead => reply(sync_error(GroupError::UnknownMemberId)),
            GroupState::PreparingRebalance => reply(sync_error(GroupError::RebalanceInProgress)),
            GroupState::Stable => {
                let m = g.member(&req.member_id).expect("checked");
                m.session_deadline_ms = now_ms + i64::from(m.session_timeout_ms);
                let assignment = m.assignment.clone();
                reply(answer(g, assignment))
            }
            GroupState::CompletingRebalance => {
                let (tx, rx) = flume::bounded(1);
                let m = g.member(&req.member_id).expect("checked");
                m.session_deadline_ms = now_ms + i64::from(m.session_timeout_ms);
                m.awaiting_sync = Some(tx);
                if g.is_leader(&req.member_id) {
                    let mut assignments: HashMap<String, Bytes> = req.assignments.into_iter().collect();
                    let ready: Vec<(flume::Sender<SyncResponse>, SyncResponse)> = g
                        .members
                        .iter_mut()
                        .map(|m| {
                            m.assignment = assignments.remove(&m.member_id).unwrap_or_default();
                            (m.awaiting_sync.take(), m.assignment.clone())
                        })
                        .collect::<Vec<_>>()
                        .into_iter()
                        .filter_map(|(tx, a)| tx.map(|tx| (tx, answer(g, a))))
                        .collect();
                    g.set_state(GroupState::Stable, now_ms);
                    for (tx, a) in ready {
                        let _ = tx.try_send(a);
                    }
                    let group_id = g.id.clone();
                    self.store_group(&group_id);
                }
                rx
            }
        }
    }

    pub fn heartbeat(
        &mut self,
        group_id: &str,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
        now_ms: i64,
    ) -> Result<(), GroupError> {
        let Some(g) = self.groups.get_mut(group_id) else {
            return Err(if group_id.is_empty() { GroupError::InvalidGroupId } else { GroupError::UnknownMemberId });
        };
        if g.fenced(instance, member_id) {
            return Err(GroupError::FencedInstanceId);
        }
        let state = g.state;
        let current = g.generation;
        let Some(m) = g.member(member_id) else { return Err(GroupError::UnknownMemberId) };
        if generation != current {
            return Err(GroupError::IllegalGeneration);
        }
        match state {
            GroupState::Empty | GroupState::Dead => Err(GroupError::UnknownMemberId),
            GroupState::PreparingRebalance => {
                m.session_deadline_ms = now_ms + i64::from(m.session_timeout_ms);
                Err(GroupError::RebalanceInProgress)
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                m.session_deadline_ms = now_ms + i64::from(m.session_timeout_ms);
                Ok(())
            }
        }
    }

    /// Members leaving, by member id or group instance id; a result for each.
    pub fn leave(
        &mut self,
        group_id: &str,
        leaving: &[(String, Option<String>)],
        now_ms: i64,
    ) -> Vec<Result<(), GroupError>> {
        let Some(g) = self.groups.get_mut(group_id) else {
            return vec![Err(GroupError::UnknownMemberId); leaving.len()];
        };
        let mut results = Vec::with_capacity(leaving.len());
        for (member_id, instance) in leaving {
            let result = if let Some(instance) = instance {
                match g.by_instance(instance).map(|m| m.member_id.clone()) {
                    None => Err(GroupError::UnknownMemberId),
                    Some(id) if !member_id.is_empty() && *member_id != id => Err(GroupError::FencedInstanceId),
                    Some(id) => {
                        g.remove_member(&id, now_ms);
                        Ok(())
                    }
                }
            } else if let Some(i) = g.pending.iter().position(|(id, _)| id == member_id) {
                g.pending.remove(i);
                Ok(())
            } else if g.has_member(member_id) {
                g.remove_member(member_id, now_ms);
                Ok(())
            } else {
                Err(GroupError::UnknownMemberId)
            };
            results.push(result);
        }
        self.try_complete_join(group_id, now_ms);
        results
    }

    /// Expires members whose session ended, pending members that never joined, and
    /// rebalances past their deadline.
    pub fn tick(&mut self, now_ms: i64, topics: &dyn Topics) {
        let ids: Vec<String> = self.groups.keys().cloned().collect();
        for id in ids {
            self.expire_consumer_members(&id, topics, now_ms);
            let g = self.groups.get_mut(&id).expect("listed");
            g.pending.retain(|(_, deadline)| *deadline > now_ms);
            let expired: Vec<String> = g
                .members
                .iter()
                .filter(|m| m.awaiting_join.is_none() && m.awaiting_sync.is_none() && m.session_deadline_ms <= now_ms)
                .map(|m| m.member_id.clone())
                .collect();
            for member_id in expired {
                tracing::info!(group = %id, member = %member_id, "member session expired; rebalancing");
                g.remove_member(&member_id, now_ms);
            }
            self.try_complete_join(&id, now_ms);
            let g = &self.groups[&id];
            if g.state == GroupState::Empty
                && g.offsets.is_empty()
                && g.is_empty()
                && now_ms - g.state_timestamp_ms >= EMPTY_GROUP_KEPT_MS
            {
                // Nothing left to remember (Kafka drops such groups at its next cleanup too).
                let g = self.groups.remove(&id).expect("listed");
                self.writes.extend(g.consumer_stored.into_keys().map(|k| (k, None)));
                self.writes.push((RecordKey::Group { group: id }, None));
            }
        }
        self.deleted.retain(|_, (_, at)| now_ms - *at < DELETED_GROUP_MEMORY_MS);
    }

    /// Checks that a member may commit offsets for the group; creates the group for a
    /// commit from outside group management (generation < 0), as Kafka does.
    pub fn validate_commit(
        &mut self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance: Option<&str>,
        now_ms: i64,
    ) -> Result<(), GroupError> {
        let Some(g) = self.groups.get_mut(group_id) else {
            if generation < 0 {
                if self.groups.len() >= GROUPS_PER_SHARD_MAX {
                    return Err(GroupError::CoordinatorNotAvailable);
                }
                self.groups.insert(group_id.to_string(), Group::new(group_id, now_ms));
                return Ok(());
            }
            return Err(GroupError::IllegalGeneration);
        };
        if let Some(c) = &g.consumer {
            return c.validate_member(member_id, generation).map_err(commit_refusal);
        }
        if g.fenced(instance, member_id) {
            return Err(GroupError::FencedInstanceId);
        }
        if generation < 0 && g.state == GroupState::Empty {
            return Ok(());
        }
        if g.state == GroupState::CompletingRebalance {
            return Err(GroupError::RebalanceInProgress);
        }
        let current = g.generation;
        let Some(m) = g.member(member_id) else { return Err(GroupError::UnknownMemberId) };
        if generation != current {
            return Err(GroupError::IllegalGeneration);
        }
        m.session_deadline_ms = now_ms + i64::from(m.session_timeout_ms);
        Ok(())
    }

    /// Records a committed offset (or its deletion) once its record is durable. A record older
    /// than the one already applied is ignored: durable waits may finish in any order.
    pub fn apply_offset(&mut self, group_id: &str, tp: (String, i32), value: Option<OffsetValue>, record_offset: u64) {
        if self.deleted.get(group_id).is_some_and(|(deleted_at, _)| *deleted_at > record_offset) {
            return;
        }
        let now = ringtail_log::now_ms();
        let g = self.groups.entry(group_id.to_string()).or_insert_with(|| Group::new(group_id, now));
        match g.offsets.get(&tp) {
            Some(c) if c.record_offset > record_offset => {}
            _ => match value {
                Some(value) => {
                    g.offsets.insert(tp, Committed { value, record_offset });
                }
                None => {
                    g.offsets.remove(&tp);
                }
            },
        }
    }

    /// Restores a group from its stored metadata when `__consumer_offsets` is replayed.
    pub fn apply_group(&mut self, group_id: &str, value: Option<GroupValue>, now_ms: i64) {
        let Some(v) = value else {
            self.groups.remove(group_id);
            return;
        };
        let g = self.groups.entry(group_id.to_string()).or_insert_with(|| Group::new(group_id, now_ms));
        g.generation = v.generation;
        g.protocol_type = (!v.protocol_type.is_empty()).then_some(v.protocol_type);
        g.protocol = v.protocol.clone();
        g.leader = v.leader;
        g.members = v
            .members
            .into_iter()
            .map(|m| Member {
                member_id: m.member_id,
                group_instance_id: m.group_instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                session_timeout_ms: m.session_timeout_ms,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                protocols: vec![(v.protocol.clone().unwrap_or_default(), m.subscription)],
                assignment: m.assignment,
                awaiting_join: None,
                awaiting_sync: None,
                // Members get a full session to find the restarted coordinator.
                session_deadline_ms: now_ms + i64::from(m.session_timeout_ms),
            })
            .collect();
        g.pending.clear();
        g.state = if g.members.is_empty() { GroupState::Empty } else { GroupState::Stable };
        g.state_timestamp_ms = v.current_state_timestamp_ms;
    }

    /// Committed offsets of a group: all of them, or the partitions asked for (-1 where none).
    pub fn committed(
        &self,
        group_id: &str,
        wanted: Option<&[(String, Vec<i32>)]>,
    ) -> Vec<(String, i32, Option<Committed>)> {
        let offsets = self.groups.get(group_id).map(|g| &g.offsets);
        match wanted {
            Some(topics) => topics
                .iter()
                .flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p)))
                .map(|(t, p)| {
                    let c = offsets.and_then(|o| o.get(&(t.clone(), p))).cloned();
                    (t, p, c)
                })
                .collect(),
            None => offsets.into_iter().flatten().map(|((t, p), c)| (t.clone(), *p, Some(c.clone()))).collect(),
        }
    }

    /// Committed offsets of the groups, (group, topic, partition, offset), for metrics: at most
    /// `limit` of them (in the map's order, stable while the groups do not change), and how
    /// many more there are.
    pub fn all_committed(&self, limit: usize) -> (Vec<(String, String, i32, i64)>, u64) {
        let total: usize = self.groups.values().map(|g| g.offsets.len()).sum();
        let mut out: Vec<(String, String, i32, i64)> = self
            .groups
            .values()
            .flat_map(|g| g.offsets.iter().map(|((t, p), c)| (g.id.clone(), t.clone(), *p, c.value.offset)))
            .take(limit)
            .collect();
        out.sort();
        let omitted = (total - out.len()) as u64;
        (out, omitted)
    }

    /// Whether the group has no committed offset for `tp` yet.
    pub fn offset_is_new(&self, group_id: &str, tp: &(String, i32)) -> bool {
        self.groups.get(group_id).is_none_or(|g| !g.offsets.contains_key(tp))
    }

    /// Partitions the group holds committed offsets for.
    pub fn offset_count(&self, group_id: &str) -> usize {
        self.groups.get(group_id).map_or(0, |g| g.offsets.len())
    }

    /// The classic state; a consumer-protocol group with members counts as Stable.
    pub fn state(&self, group_id: &str) -> Option<GroupState> {
        self.groups.get(group_id).map(|g| match &g.consumer {
            Some(c) if !c.members.is_empty() => GroupState::Stable,
            _ => g.state,
        })
    }

    /// Topics the members of a `consumer` group subscribe to, read from their subscriptions.
    pub fn subscribed_topics(&self, group_id: &str) -> Option<Vec<String>> {
        let g = self.groups.get(group_id)?;
        if let Some(c) = &g.consumer {
            let topics: std::collections::BTreeSet<String> =
                c.members.values().flat_map(|m| m.subscribed.iter().cloned()).collect();
            return (!c.members.is_empty()).then(|| topics.into_iter().collect());
        }
        if g.protocol_type.as_deref() != Some("consumer") || g.members.is_empty() {
            return None;
        }
        let mut topics = Vec::new();
        for m in &g.members {
            let metadata = m.metadata(g.protocol.as_deref());
            topics.extend(parse_subscription(metadata).unwrap_or_default());
        }
        topics.sort();
        topics.dedup();
        Some(topics)
    }

    /// Checks that DeleteGroups may delete the group: it exists and has no members.
    pub fn check_delete(&self, group_id: &str) -> Result<(), GroupError> {
        let Some(g) = self.groups.get(group_id) else { return Err(GroupError::GroupIdNotFound) };
        if !g.is_empty() || g.state != GroupState::Empty {
            return Err(GroupError::NonEmptyGroup);
        }
        Ok(())
    }

    /// Forgets a group whose tombstones end at `record_offset`; commits appended before them
    /// and applied later are ignored.
    /// Forgets every group `belongs` names (their partition is no longer led here): members
    /// waiting for a JoinGroup or SyncGroup answer are dropped, so they are told to find the
    /// coordinator again.
    pub fn unload(&mut self, belongs: impl Fn(&str) -> bool) -> usize {
        let before = self.groups.len();
        self.groups.retain(|id, _| !belongs(id));
        self.deleted.retain(|id, _| !belongs(id));
        self.writes.retain(|(key, _)| !belongs(key.group()));
        before - self.groups.len()
    }

    pub fn remove(&mut self, group_id: &str, record_offset: u64, now_ms: i64) {
        self.groups.remove(group_id);
        self.deleted.insert(group_id.to_string(), (record_offset, now_ms));
    }

    pub fn describe(&self, group_id: &str) -> GroupSummary {
        let Some(g) = self.groups.get(group_id) else {
            return GroupSummary {
                group_id: group_id.to_string(),
                state: GroupState::Dead.name().to_string(),
                group_type: "classic",
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
            };
        };
        if let Some(c) = &g.consumer {
            return classic_summary(group_id, c);
        }
        let stable = g.state == GroupState::Stable;
        GroupSummary {
            group_id: group_id.to_string(),
            state: g.state.name().to_string(),
            group_type: "classic",
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: if stable { g.protocol.clone().unwrap_or_default() } else { String::new() },
            members: g
                .members
                .iter()
                .map(|m| MemberSummary {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable { m.metadata(g.protocol.as_deref()) } else { Bytes::new() },
                    assignment: if stable { m.assignment.clone() } else { Bytes::new() },
                })
                .collect(),
        }
    }

    /// Every group: id, state, protocol type, group type ("classic" or "consumer").
    pub fn list(&self) -> Vec<(String, String, String, &'static str)> {
        self.groups
            .values()
            .map(|g| match &g.consumer {
                Some(c) => (g.id.clone(), c.state().to_string(), "consumer".to_string(), "consumer"),
                None => {
                    (g.id.clone(), g.state.name().to_string(), g.protocol_type.clone().unwrap_or_default(), "classic")
                }
            })
            .collect()
    }
}

/// Consumer-protocol groups (KIP-848): what the classic paths of this module need of them.
impl Groups {
    pub(super) fn consumer_settings(&self) -> Settings {
        Settings {
            session_timeout_ms: self.config.consumer_session_timeout_ms,
            members_max: GROUP_MEMBERS_MAX,
            default_assignor: self.config.consumer_assignors.default_name(),
        }
    }

    /// Queues the records of a consumer group that changed since they were last stored:
    /// Kafka's record types, only those whose value differs, and tombstones for the keys that
    /// are gone (a member left; the group became classic).
    pub(super) fn store_consumer(&mut self, group_id: &str) {
        let Some(g) = self.groups.get_mut(group_id) else { return };
        let now: HashMap<RecordKey, Bytes> = match g.consumer.as_mut() {
            Some(c) if !c.changed => return,
            Some(c) => {
                c.changed = false;
                group_records(group_id, c)
            }
            None if g.consumer_stored.is_empty() => return,
            None => HashMap::new(),
        };
        // Members' metadata first, their assignments last: replay applies them in this order.
        let mut changed: Vec<(RecordKey, Option<Bytes>)> = now
            .iter()
            .filter(|(k, v)| g.consumer_stored.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect();
        changed.extend(g.consumer_stored.keys().filter(|k| !now.contains_key(*k)).map(|k| (k.clone(), None)));
        changed.sort_by(|(a, x), (b, y)| (record_order(a, x.is_none()), a).cmp(&(record_order(b, y.is_none()), b)));
        g.consumer_stored = now;
        self.writes.extend(changed);
    }

    /// Removes the members of a consumer group whose session or revocation time ran out.
    pub(super) fn expire_consumer_members(&mut self, group_id: &str, topics: &dyn Topics, now_ms: i64) {
        let settings = self.consumer_settings();
        let Some(c) = self.groups.get_mut(group_id).and_then(|g| g.consumer.as_mut()) else { return };
        for member in c.expire(topics, &settings, now_ms) {
            tracing::info!(group = %group_id, member = %member, "consumer group member expired (session or revocation timeout)");
        }
        self.store_consumer(group_id);
    }
}

pub fn commit_refusal(r: CommitRefusal) -> GroupError {
    match r {
        CommitRefusal::UnknownMemberId => GroupError::UnknownMemberId,
        CommitRefusal::StaleMemberEpoch => GroupError::StaleMemberEpoch,
    }
}

/// A consumer group as DescribeGroups (the classic API) shows it: subscriptions and assignments
/// in the classic consumer protocol's encoding, as Kafka does, so older tools can read them.
pub fn classic_summary(group_id: &str, c: &ConsumerGroup) -> GroupSummary {
    let name_of = |id: &[u8; 16]| c.topics.iter().find(|(_, (t, _))| t == id).map(|(n, _)| n.clone());
    GroupSummary {
        group_id: group_id.to_string(),
        state: c.state().to_string(),
        group_type: "consumer",
        protocol_type: "consumer".to_string(),
        protocol: c.assignor.clone(),
        members: c
            .members
            .values()
            .map(|m| {
                let topics: Vec<String> = m.subscribed.iter().cloned().collect();
                let assigned: Vec<(String, Vec<i32>)> = m
                    .assigned
                    .iter()
                    .filter_map(|(id, ps)| name_of(id).map(|n| (n, ps.iter().copied().collect())))
                    .collect();
                MemberSummary {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: subscription_bytes(&topics),
                    assignment: assignment_bytes(&assigned),
                }
            })
            .collect(),
    }
}

fn add_member(
    g: &mut Group,
    req: &JoinRequest,
    member_id: String,
    tx: flume::Sender<JoinResponse>,
    now_ms: i64,
    config: GroupConfig,
) -> Result<(), (GroupError, String)> {
    if g.members.len() + g.pending.len() >= GROUP_MEMBERS_MAX {
        return Err((GroupError::GroupMaxSizeReached { members_max: GROUP_MEMBERS_MAX }, member_id));
    }
    g.members.push(Member {
        member_id,
        group_instance_id: req.group_instance_id.clone(),
        client_id: req.client_id.clone(),
        client_host: req.client_host.clone(),
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        protocols: req.protocols.clone(),
        assignment: Bytes::new(),
        awaiting_join: Some(tx),
        awaiting_sync: None,
        session_deadline_ms: now_ms + i64::from(req.session_timeout_ms),
    });
    let delay = i64::from(config.initial_rebalance_delay_ms);
    match g.state {
        GroupState::Empty => {
            // A new group waits a little for more members, so that consumers starting
            // together cause one rebalance, not one each (Kafka's initial rebalance delay).
            g.prepare_rebalance(now_ms);
            g.join_not_before_ms = now_ms + delay;
            g.initial_delay_cap_ms = now_ms + i64::from(req.rebalance_timeout_ms.max(0));
            g.rebalance_deadline_ms = g.rebalance_deadline_ms.max(g.join_not_before_ms);
        }
        GroupState::PreparingRebalance if g.join_not_before_ms > now_ms => {
            g.join_not_before_ms = (now_ms + delay).min(g.initial_delay_cap_ms.max(now_ms));
        }
        GroupState::PreparingRebalance => {}
        _ => g.prepare_rebalance(now_ms),
    }
    Ok(())
}

/// The topics of a ConsumerProtocolSubscription (version, topics, ...).
fn parse_subscription(metadata: Bytes) -> Option<Vec<String>> {
    let mut r = ringtail_net::Reader::new(metadata);
    let version = r.i16().ok()?;
    if version < 0 {
        return None;
    }
    r.array(false, "subscribed topics", |r| r.string(false)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts that a value matches a pattern, and shows the value when it does not
    /// (`GroupError` has no equality: it may carry a `PartitionError`).
    macro_rules! assert_matches {
        ($value:expr, $pattern:pat) => {
            let value = $value;
            assert!(matches!(value, $pattern), "{value:?} is not {}", stringify!($pattern));
        };
    }

    /// No topics: the classic tests have no consumer-protocol groups.
    struct NoTopics;

    impl Topics for NoTopics {
        fn get(&self, _: &str) -> Option<super::super::consumer::machine::TopicInfo> {
            None
        }
        fn matching(&self, _: &str) -> std::collections::BTreeSet<String> {
            Default::default()
        }
    }

    const CONFIG: GroupConfig = GroupConfig {
        session_timeout_ms_min: 6_000,
        session_timeout_ms_max: 300_000,
        initial_rebalance_delay_ms: 0,
        consumer_session_timeout_ms: 45_000,
        consumer_heartbeat_interval_ms: 5_000,
        consumer_assignors: crate::config::ConsumerAssignors::const_default(),
        offsets_per_group_max: 100,
    };

    fn join_req(member_id: &str, instance: Option<&str>, protocols: &[&str]) -> JoinRequest {
        JoinRequest {
            group_id: "g".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 30_000,
            member_id: member_id.into(),
            group_instance_id: instance.map(String::from),
            protocol_type: "consumer".into(),
            protocols: protocols.iter().map(|p| (p.to_string(), Bytes::from(p.to_string()))).collect(),
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            member_id_required: true,
        }
    }

    fn answered<T: Clone>(rx: &flume::Receiver<T>) -> Option<T> {
        rx.try_recv().ok()
    }

    /// Joins a dynamic member through MEMBER_ID_REQUIRED; returns the receiver of the second join.
    fn join_new(groups: &mut Groups, now: i64) -> (String, flume::Receiver<JoinResponse>) {
        let first = answered(&groups.join(join_req("", None, &["range"]), now)).unwrap();
        assert_matches!(&first.error, Some(GroupError::MemberIdRequired));
        let id = first.member_id.clone();
        (id.clone(), groups.join(join_req(&id, None, &["range"]), now))
    }

    fn sync(
        groups: &mut Groups,
        member: &str,
        generation: i32,
        assign: &[(&str, &str)],
    ) -> flume::Receiver<SyncResponse> {
        groups.sync(
            SyncRequest {
                group_id: "g".into(),
                generation_id: generation,
                member_id: member.into(),
                group_instance_id: None,
                protocol_type: None,
                protocol_name: None,
                assignments: assign.iter().map(|(m, a)| (m.to_string(), Bytes::from(a.to_string()))).collect(),
            },
            0,
        )
    }

    #[test]
    fn two_members_rebalance_and_sync() {
        let mut groups = Groups::new(CONFIG);
        let (a, rx_a) = join_new(&mut groups, 0);
        let join_a = answered(&rx_a).expect("a lone member completes the join at once");
        assert_eq!((join_a.generation_id, join_a.leader.as_str(), join_a.members.len()), (1, a.as_str(), 1));
        let sync_a = sync(&mut groups, &a, 1, &[(&a, "all")]);
        assert_eq!(answered(&sync_a).unwrap().assignment, Bytes::from("all"));
        assert_eq!(groups.state("g"), Some(GroupState::Stable));

        // A second member: the group rebalances; the first learns of it from its heartbeat.
        let (b, rx_b) = join_new(&mut groups, 100);
        assert!(answered(&rx_b).is_none());
        assert_matches!(groups.heartbeat("g", &a, None, 1, 100), Err(GroupError::RebalanceInProgress));
        let rx_a = groups.join(join_req(&a, None, &["range"]), 200);
        let (join_a, join_b) = (answered(&rx_a).unwrap(), answered(&rx_b).unwrap());
        assert_eq!((join_a.generation_id, join_b.generation_id), (2, 2));
        assert_eq!(join_a.leader, a);
        assert_eq!((join_a.members.len(), join_b.members.len()), (2, 0));
        let sync_b = sync(&mut groups, &b, 2, &[]);
        assert!(answered(&sync_b).is_none(), "followers wait for the leader's assignment");
        assert_matches!(answered(&sync(&mut groups, &b, 1, &[])).unwrap().error, Some(GroupError::IllegalGeneration));
        let sync_a = sync(&mut groups, &a, 2, &[(&a, "p0"), (&b, "p1")]);
        assert_eq!(answered(&sync_a).unwrap().assignment, Bytes::from("p0"));
        assert_eq!(answered(&sync_b).unwrap().assignment, Bytes::from("p1"));
        assert_matches!(groups.heartbeat("g", "nobody", None, 2, 300), Err(GroupError::UnknownMemberId));
        assert_matches!(groups.heartbeat("g", &b, None, 2, 300), Ok(()));
        // Every completed assignment is stored.
        assert!(groups.writes.iter().all(|(k, v)| matches!(k, RecordKey::Group { .. }) && v.is_some()));
        assert_eq!(groups.writes.len(), 2, "stored after each SyncGroup of the leader");
    }

    #[test]
    fn sessions_expire_and_members_leave() {
        let mut groups = Groups::new(CONFIG);
        let (a, rx_a) = join_new(&mut groups, 0);
        answered(&rx_a).unwrap();
        answered(&sync(&mut groups, &a, 1, &[])).unwrap();
        let (b, rx_b) = join_new(&mut groups, 0);
        let rx_a = groups.join(join_req(&a, None, &["range"]), 0);
        answered(&rx_a).unwrap();
        answered(&rx_b).unwrap();
        answered(&sync(&mut groups, &a, 2, &[])).unwrap();
        // b keeps heartbeating, a goes silent: after a's session timeout the group rebalances.
        for t in (1_000..=10_000).step_by(1_000) {
            assert_matches!(groups.heartbeat("g", &b, None, 2, t), Ok(()));
            groups.tick(t, &NoTopics);
        }
        groups.tick(10_001, &NoTopics);
        assert_eq!(groups.state("g"), Some(GroupState::PreparingRebalance));
        assert_matches!(groups.heartbeat("g", &a, None, 2, 10_001), Err(GroupError::UnknownMemberId));
        let rx_b = groups.join(join_req(&b, None, &["range"]), 10_002);
        let join_b = answered(&rx_b).unwrap();
        assert_eq!((join_b.generation_id, join_b.leader.as_str()), (3, b.as_str()));
        answered(&sync(&mut groups, &b, 3, &[])).unwrap();
        let left = groups.leave("g", &[(b.clone(), None), ("x".into(), None)], 10_003);
        assert_matches!(left.as_slice(), [Ok(()), Err(GroupError::UnknownMemberId)]);
        assert_eq!(groups.state("g"), Some(GroupState::Empty));
        assert!(groups.check_delete("g").is_ok());
        groups.remove("g", 100, 10_003);
        assert_matches!(groups.check_delete("g"), Err(GroupError::GroupIdNotFound));
        let v = OffsetValue { offset: 1, leader_epoch: -1, metadata: String::new(), commit_timestamp_ms: 0 };
        groups.apply_offset("g", ("t".into(), 0), Some(v), 99);
        assert!(groups.committed("g", None).is_empty(), "a commit older than the deletion stays deleted");
    }

    #[test]
    fn rebalance_timeout_drops_members_that_do_not_rejoin() {
        let mut groups = Groups::new(CONFIG);
        let (a, rx_a) = join_new(&mut groups, 0);
        answered(&rx_a).unwrap();
        answered(&sync(&mut groups, &a, 1, &[])).unwrap();
        let (_b, rx_b) = join_new(&mut groups, 1_000);
        // a keeps heartbeating but never rejoins.
        for t in (5_000..=30_000).step_by(5_000) {
            assert_matches!(groups.heartbeat("g", &a, None, 1, t), Err(GroupError::RebalanceInProgress));
            groups.tick(t, &NoTopics);
        }
        groups.tick(30_999, &NoTopics);
        assert!(answered(&rx_b).is_none());
        groups.tick(31_000, &NoTopics);
        let join_b = answered(&rx_b).unwrap();
        assert_eq!((join_b.generation_id, join_b.members.len()), (2, 1));
    }

    #[test]
    fn static_member_returns_without_rebalance_and_fences_the_old_id() {
        let mut groups = Groups::new(CONFIG);
        let rx = groups.join(join_req("", Some("i1"), &["range"]), 0);
        let first = answered(&rx).unwrap();
        assert!(first.error.is_none(), "static members need no MEMBER_ID_REQUIRED round: {:?}", first.error);
        let old = first.member_id.clone();
        answered(&sync(&mut groups, &old, 1, &[(&old, "p0")])).unwrap();
        // The process restarts and joins with the same instance id.
        let again = answered(&groups.join(join_req("", Some("i1"), &["range"]), 100)).unwrap();
        assert!(again.error.is_none(), "{:?}", again.error);
        assert_eq!(again.generation_id, 1, "same generation: no rebalance");
        assert_ne!(again.member_id, old);
        assert_eq!(groups.state("g"), Some(GroupState::Stable));
        assert_matches!(groups.heartbeat("g", &old, Some("i1"), 1, 200), Err(GroupError::FencedInstanceId));
        assert_matches!(groups.heartbeat("g", &again.member_id, Some("i1"), 1, 200), Ok(()));
        let back = answered(&sync(&mut groups, &again.member_id, 1, &[])).unwrap();
        assert_eq!(back.assignment, Bytes::from("p0"));
    }

    #[test]
    fn bad_joins_get_kafka_errors() {
        let mut groups = Groups::new(CONFIG);
        let refused = |groups: &mut Groups, req: JoinRequest| answered(&groups.join(req, 0)).unwrap().error;
        let mut empty_group = join_req("", None, &["range"]);
        empty_group.group_id = String::new();
        assert_matches!(refused(&mut groups, empty_group), Some(GroupError::InvalidGroupId));
        let mut short = join_req("", None, &["range"]);
        short.session_timeout_ms = 10;
        assert_matches!(
            refused(&mut groups, short),
            Some(GroupError::InvalidSessionTimeout { session_timeout_ms: 10, min_ms: 6_000, max_ms: 300_000 })
        );
        assert_matches!(refused(&mut groups, join_req("ghost", None, &["range"])), Some(GroupError::UnknownMemberId));
        assert_matches!(refused(&mut groups, join_req("", None, &[])), Some(GroupError::InconsistentGroupProtocol));
        let (a, rx) = join_new(&mut groups, 0);
        answered(&rx).unwrap();
        assert_matches!(
            refused(&mut groups, join_req("", None, &["roundrobin"])),
            Some(GroupError::InconsistentGroupProtocol)
        );
        assert_matches!(groups.validate_commit("g", 1, "ghost", None, 0), Err(GroupError::RebalanceInProgress));
        answered(&sync(&mut groups, &a, 1, &[])).unwrap();
        assert_matches!(groups.validate_commit("g", 1, "ghost", None, 0), Err(GroupError::UnknownMemberId));
        assert_matches!(groups.validate_commit("g", 7, &a, None, 0), Err(GroupError::IllegalGeneration));
        assert_matches!(groups.validate_commit("g", 1, &a, None, 0), Ok(()));
        assert_matches!(groups.check_delete("g"), Err(GroupError::NonEmptyGroup));
        assert_matches!(groups.validate_commit("other", -1, "", None, 0), Ok(()));
        assert_matches!(groups.validate_commit("third", 3, "m", None, 0), Err(GroupError::IllegalGeneration));
    }

    #[test]
    fn protocol_with_most_votes_wins_and_initial_delay_waits() {
        let config = GroupConfig { initial_rebalance_delay_ms: 3_000, ..CONFIG };
        let mut groups = Groups::new(config);
        let mut a = join_req("", None, &["range", "roundrobin"]);
        a.member_id_required = false;
        let rx_a = groups.join(a, 0);
        let mut b = join_req("", None, &["roundrobin", "range"]);
        b.member_id_required = false;
        let rx_b = groups.join(b.clone(), 1_000);
        let rx_c = groups.join(b, 2_000);
        groups.tick(4_999, &NoTopics);
        assert!(answered(&rx_a).is_none(), "the initial delay is extended by each new member");
        groups.tick(5_000, &NoTopics);
        let (ja, jb, jc) = (answered(&rx_a).unwrap(), answered(&rx_b).unwrap(), answered(&rx_c).unwrap());
        assert_eq!(ja.protocol_name.as_deref(), Some("roundrobin"));
        assert_eq!((ja.generation_id, jb.generation_id, jc.generation_id), (1, 1, 1));
    }

    #[test]
    fn offsets_apply_in_record_order_and_replay() {
        let mut groups = Groups::new(CONFIG);
        let v = |o| OffsetValue { offset: o, leader_epoch: -1, metadata: String::new(), commit_timestamp_ms: 0 };
        groups.apply_offset("g", ("t".into(), 0), Some(v(10)), 5);
        groups.apply_offset("g", ("t".into(), 0), Some(v(7)), 4);
        let got = groups.committed("g", Some(&[("t".into(), vec![0, 1])]));
        assert_eq!(got[0].2.as_ref().unwrap().value.offset, 10);
        assert!(got[1].2.is_none());
        groups.apply_offset("g", ("t".into(), 0), None, 6);
        assert!(groups.committed("g", None).is_empty());
        let stored = GroupValue {
            protocol_type: "consumer".into(),
            generation: 4,
            protocol: Some("range".into()),
            leader: Some("m".into()),
            current_state_timestamp_ms: 0,
            members: vec![StoredMember {
                member_id: "m".into(),
                group_instance_id: None,
                client_id: "c".into(),
                client_host: "h".into(),
                rebalance_timeout_ms: 30_000,
                session_timeout_ms: 10_000,
                subscription: Bytes::new(),
                assignment: Bytes::from("a"),
            }],
        };
        groups.apply_group("g", Some(stored), 1_000);
        assert_eq!(groups.state("g"), Some(GroupState::Stable));
        assert_matches!(groups.heartbeat("g", "m", None, 4, 2_000), Ok(()));
        groups.writes.clear();
        groups.tick(12_001, &NoTopics);
        assert_eq!(groups.state("g"), Some(GroupState::Empty), "a restored member that never returns expires");
        groups.tick(12_001 + EMPTY_GROUP_KEPT_MS, &NoTopics);
        // Empty and without offsets for long enough, the group is forgotten (its metadata
        // tombstoned).
        assert_eq!(groups.state("g"), None);
        assert_eq!(groups.writes.last(), Some(&(RecordKey::Group { group: "g".into() }, None)));
    }
}
