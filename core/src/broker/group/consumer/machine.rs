//! One consumer-protocol group (KIP-848) as a state machine: members with epochs, the group
//! epoch and the target assignment computed by a server-side assignor, and each member's
//! reconciliation from its current assignment towards its target: partitions are revoked before
//! they are given to another member, and a member is given a partition only once no other member
//! owns it.
//!
//! Deterministic and std only (time comes in as `now_ms`; the simulation compiles this file on
//! its own). What must be stored is for the caller to notice (`ConsumerGroup::changed`).

use std::collections::{BTreeMap, BTreeSet};

use super::assignor::{self, Assignment, MemberSpec, TopicUuid};

/// A member epoch of 0 joins the group.
pub const JOIN_EPOCH: i32 = 0;
/// A member epoch of -1 leaves the group.
pub const LEAVE_EPOCH: i32 = -1;
/// A static member leaving with -2 will be back: its partitions wait for it until its session
/// expires.
pub const STATIC_LEAVE_EPOCH: i32 = -2;

/// Where a member is in its reconciliation (Kafka's MemberState names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// It has the assignment of its epoch.
    Stable,
    /// It must give partitions up before it can move to the next epoch.
    UnrevokedPartitions,
    /// It is at the target epoch but some of its target partitions are still owned by others.
    UnreleasedPartitions,
}

/// A topic as the coordinator sees it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicInfo {
    pub id: TopicUuid,
    pub partitions: i32,
}

/// The cluster's topics, as the caller knows them (the metadata image).
pub trait Topics {
    fn get(&self, name: &str) -> Option<TopicInfo>;
    /// Names of the topics a (validated) regular expression matches.
    fn matching(&self, regex: &str) -> BTreeSet<String>;
}

/// A ConsumerGroupHeartbeat, checked for well-formedness by the caller.
#[derive(Debug, Clone, Default)]
pub struct Heartbeat {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    /// -1: unchanged.
    pub rebalance_timeout_ms: i32,
    /// `None`: unchanged.
    pub topic_names: Option<Vec<String>>,
    /// `None`: unchanged; empty: none.
    pub topic_regex: Option<String>,
    /// `None`: unchanged; a known assignor's name.
    pub server_assignor: Option<String>,
    /// The partitions the member owns now; `None`: unchanged.
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
}

/// A heartbeat's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub member_id: String,
    pub member_epoch: i32,
    /// `None`: unchanged since the last answer.
    pub assignment: Option<Assignment>,
}

/// Why a heartbeat was refused (Kafka's errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    UnknownMemberId,
    FencedMemberEpoch,
    UnreleasedInstanceId,
    FencedInstanceId,
    GroupMaxSizeReached { members_max: usize },
}

/// The coordinator's settings for consumer groups (per group where group configs say so).
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub session_timeout_ms: i32,
    pub members_max: usize,
    pub default_assignor: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub topic_names: Vec<String>,
    pub topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    pub epoch: i32,
    pub previous_epoch: i32,
    pub state: MemberState,
    /// Partitions it may use.
    pub assigned: Assignment,
    /// Partitions it must give up.
    pub revoking: Assignment,
    /// The existing topics its names and regex resolve to.
    pub subscribed: BTreeSet<String>,
    pub session_deadline_ms: i64,
    /// Set while it has partitions to revoke: it is removed if it has not by then.
    pub rebalance_deadline_ms: Option<i64>,
}

impl Member {
    fn new(member_id: String, hb: &Heartbeat, now_ms: i64, settings: &Settings) -> Member {
        Member {
            instance_id: hb.instance_id.clone(),
            rack_id: hb.rack_id.clone(),
            client_id: hb.client_id.clone(),
            client_host: hb.client_host.clone(),
            rebalance_timeout_ms: hb.rebalance_timeout_ms,
            session_deadline_ms: now_ms + i64::from(settings.session_timeout_ms),
            ..Member::empty(member_id)
        }
    }

    /// A member with an id and nothing else: at epoch 0, owning nothing (one being replayed from
    /// its records starts so).
    pub fn empty(member_id: String) -> Member {
        Member {
            member_id,
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            rebalance_timeout_ms: 0,
            topic_names: Vec::new(),
            topic_regex: None,
            server_assignor: None,
            epoch: JOIN_EPOCH,
            previous_epoch: LEAVE_EPOCH,
            state: MemberState::Stable,
            assigned: Assignment::new(),
            revoking: Assignment::new(),
            subscribed: BTreeSet::new(),
            session_deadline_ms: 0,
            rebalance_deadline_ms: None,
        }
    }
}

/// A consumer-protocol group.
#[derive(Debug, Clone, Default)]
pub struct ConsumerGroup {
    /// Bumped whenever members, subscriptions or the subscribed topics change.
    pub epoch: i32,
    /// The group epoch the target assignment was computed at.
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, Member>,
    pub target: BTreeMap<String, Assignment>,
    /// The subscribed topics as of the last refresh: id and partition count by name.
    pub topics: BTreeMap<String, (TopicUuid, i32)>,
    /// The assignor the target was computed with.
    pub assignor: String,
    /// Who owns each partition (assigned or being revoked).
    owners: BTreeMap<(TopicUuid, i32), String>,
    /// Whether the state changed since the caller last stored it.
    pub changed: bool,
    /// Something that moves the group epoch happened in this call: the epoch moves once.
    epoch_due: bool,
}

fn flatten(a: &Assignment) -> impl Iterator<Item = (TopicUuid, i32)> + '_ {
    a.iter().flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
}

fn overlaps(a: &Assignment, b: &Assignment) -> bool {
    flatten(a).any(|(t, p)| b.get(&t).is_some_and(|s| s.contains(&p)))
}

fn is_subset(a: &Assignment, b: &Assignment) -> bool {
    flatten(a).all(|(t, p)| b.get(&t).is_some_and(|s| s.contains(&p)))
}

fn insert(a: &mut Assignment, t: TopicUuid, p: i32) {
    a.entry(t).or_default().insert(p);
}

impl ConsumerGroup {
    pub fn new() -> ConsumerGroup {
        ConsumerGroup::default()
    }

    /// Kafka's group states: Empty, Assigning, Reconciling, Stable.
    pub fn state(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.epoch != self.assignment_epoch {
            "Assigning"
        } else if self.members.values().any(|m| {
            m.epoch != STATIC_LEAVE_EPOCH && (m.epoch != self.assignment_epoch || m.state != MemberState::Stable)
        }) {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    fn by_instance(&self, instance: &str) -> Option<&Member> {
        self.members.values().find(|m| m.instance_id.as_deref() == Some(instance))
    }

    /// Replaces a member's partitions, keeping the owner index true.
    fn set_partitions(&mut self, member_id: &str, assigned: Assignment, revoking: Assignment) {
        let Some(m) = self.members.get_mut(member_id) else { return };
        for tp in flatten(&m.assigned).chain(flatten(&m.revoking)) {
            if self.owners.get(&tp).map(String::as_str) == Some(member_id) {
                self.owners.remove(&tp);
            }
        }
        for tp in flatten(&assigned).chain(flatten(&revoking)) {
            self.owners.insert(tp, member_id.to_string());
        }
        m.assigned = assigned;
        m.revoking = revoking;
    }

    /// The group epoch is to move (once, at the next refresh, however many changes there are).
    fn bump(&mut self) {
        self.epoch_due = true;
        self.changed = true;
    }

    fn remove_member(&mut self, member_id: &str) {
        self.set_partitions(member_id, Assignment::new(), Assignment::new());
        if self.members.remove(member_id).is_some() {
            self.target.remove(member_id);
            self.bump();
        }
    }

    /// Resolves a member's subscription against the topics that exist now.
    fn resolve(member: &Member, topics: &dyn Topics) -> BTreeSet<String> {
        let mut names: BTreeSet<String> =
            member.topic_names.iter().filter(|n| topics.get(n).is_some()).cloned().collect();
        if let Some(regex) = member.topic_regex.as_deref().filter(|r| !r.is_empty()) {
            names.extend(topics.matching(regex));
        }
        names
    }

    /// Brings the subscribed topics' metadata up to date (a topic created, deleted or grown
    /// bumps the group epoch) and computes a new target assignment when the group epoch moved.
    fn refresh(&mut self, topics: &dyn Topics, settings: &Settings) {
        let mut now: BTreeMap<String, (TopicUuid, i32)> = BTreeMap::new();
        for m in self.members.values() {
            for name in &m.subscribed {
                if let Some(t) = topics.get(name) {
                    now.insert(name.clone(), (t.id, t.partitions));
                }
            }
        }
        if now != self.topics {
            self.topics = now;
            self.bump();
        }
        if std::mem::take(&mut self.epoch_due) {
            self.epoch += 1;
        }
        if self.epoch != self.assignment_epoch {
            self.assignor = self.chosen_assignor(settings);
            let specs: Vec<MemberSpec> = self
                .members
                .values()
                .map(|m| MemberSpec {
                    member_id: &m.member_id,
                    instance_id: m.instance_id.as_deref(),
                    topics: &m.subscribed,
                })
                .collect();
            self.target = assignor::assign(&self.assignor, &specs, &self.topics, &self.target);
            self.assignment_epoch = self.epoch;
            self.changed = true;
        }
    }

    /// The assignor most members ask for (ties to the default, then by name), else the default.
    fn chosen_assignor(&self, settings: &Settings) -> String {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = m.server_assignor.as_deref() {
                *votes.entry(a).or_default() += 1;
            }
        }
        votes
            .into_iter()
            .max_by_key(|&(name, n)| (n, name == settings.default_assignor, std::cmp::Reverse(name)))
            .map_or(settings.default_assignor.to_string(), |(name, _)| name.to_string())
    }

    /// Handles one heartbeat (join, leave, or a member's regular heartbeat).
    pub fn heartbeat(
        &mut self,
        hb: Heartbeat,
        topics: &dyn Topics,
        settings: &Settings,
        now_ms: i64,
    ) -> Result<Answer, Refusal> {
        if hb.member_epoch == LEAVE_EPOCH || hb.member_epoch == STATIC_LEAVE_EPOCH {
            return self.leave(&hb, topics, settings);
        }
        let full = hb.member_epoch == JOIN_EPOCH;
        if hb.member_epoch == JOIN_EPOCH {
            self.join(&hb, settings, now_ms)?;
        } else {
            let m = self.members.get(&hb.member_id).ok_or(Refusal::UnknownMemberId)?;
            if m.epoch == STATIC_LEAVE_EPOCH {
                return Err(Refusal::UnknownMemberId);
            }
            if hb.instance_id.is_some() && m.instance_id.is_some() && hb.instance_id != m.instance_id {
                return Err(Refusal::FencedInstanceId);
            }
            let lost_answer = hb.member_epoch == m.previous_epoch
                && hb.owned.as_ref().is_some_and(|owned| is_subset(owned, &m.assigned));
            if hb.member_epoch != m.epoch && !lost_answer {
                return Err(Refusal::FencedMemberEpoch);
            }
        }
        let before = {
            let m = &self.members[&hb.member_id];
            (m.epoch, m.assigned.clone())
        };
        // What the member says of itself.
        let m = self.members.get_mut(&hb.member_id).expect("joined or found");
        m.session_deadline_ms = now_ms + i64::from(settings.session_timeout_ms);
        if let Some(rack) = &hb.rack_id {
            m.rack_id = Some(rack.clone());
        }
        if hb.rebalance_timeout_ms >= 0 {
            m.rebalance_timeout_ms = hb.rebalance_timeout_ms;
        }
        let mut subscription_changed = false;
        if let Some(names) = &hb.topic_names {
            let mut names = names.clone();
            names.sort();
            names.dedup();
            if names != m.topic_names {
                m.topic_names = names;
                subscription_changed = true;
            }
        }
        if let Some(regex) = &hb.topic_regex {
            let regex = Some(regex.clone()).filter(|r| !r.is_empty());
            if regex != m.topic_regex {
                m.topic_regex = regex;
                subscription_changed = true;
            }
        }
        if let Some(a) = &hb.server_assignor {
            if m.server_assignor.as_ref() != Some(a) {
                m.server_assignor = Some(a.clone());
                subscription_changed = true;
            }
        }
        let resolved = Self::resolve(m, topics);
        if resolved != m.subscribed {
            m.subscribed = resolved;
            subscription_changed = true;
        }
        if subscription_changed {
            self.bump();
        }
        self.refresh(topics, settings);
        self.reconcile(&hb.member_id, hb.owned.as_ref(), now_ms);
        debug_assert_eq!(self.check_invariants(), Ok(()));
        let m = &self.members[&hb.member_id];
        let changed = m.epoch != before.0 || m.assigned != before.1;
        // Also when the member is behind: it missed an answer (it sent the previous epoch, or
        // reports partitions other than its own), so it learns its assignment again rather
        // than waiting for its rebalance timeout.
        let behind =
            hb.member_epoch != m.epoch || hb.owned.as_ref().is_some_and(|o| flatten(o).ne(flatten(&m.assigned)));
        let full = full || behind;
        Ok(Answer {
            member_id: m.member_id.clone(),
            member_epoch: m.epoch,
            assignment: (full || changed).then(|| m.assigned.clone()),
        })
    }

    fn join(&mut self, hb: &Heartbeat, settings: &Settings, now_ms: i64) -> Result<(), Refusal> {
        if let Some(instance) = hb.instance_id.as_deref() {
            if let Some(old) = self.by_instance(instance).filter(|m| m.member_id != hb.member_id) {
                if old.epoch != STATIC_LEAVE_EPOCH {
                    return Err(Refusal::UnreleasedInstanceId);
                }
                // A static member back under a new member id takes over its old self: the
                // same partitions and target, no rebalance.
                let old_id = old.member_id.clone();
                let mut member = self.members.get(&old_id).expect("found").clone();
                let (assigned, revoking) = (member.assigned.clone(), member.revoking.clone());
                self.set_partitions(&old_id, Assignment::new(), Assignment::new());
                self.members.remove(&old_id);
                let target = self.target.remove(&old_id);
                member.member_id = hb.member_id.clone();
                member.epoch = member.previous_epoch;
                member.client_id = hb.client_id.clone();
                member.client_host = hb.client_host.clone();
                member.session_deadline_ms = now_ms + i64::from(settings.session_timeout_ms);
                self.members.insert(hb.member_id.clone(), member);
                self.set_partitions(&hb.member_id, assigned, revoking);
                if let Some(target) = target {
                    self.target.insert(hb.member_id.clone(), target);
                }
                self.changed = true;
                return Ok(());
            }
        }
        if self.members.contains_key(&hb.member_id) {
            // Joining again under its id (it lost its state): it starts over.
            self.remove_member(&hb.member_id);
        }
        if self.members.len() >= settings.members_max {
            return Err(Refusal::GroupMaxSizeReached { members_max: settings.members_max });
        }
        self.members.insert(hb.member_id.clone(), Member::new(hb.member_id.clone(), hb, now_ms, settings));
        self.bump();
        Ok(())
    }

    fn leave(&mut self, hb: &Heartbeat, topics: &dyn Topics, settings: &Settings) -> Result<Answer, Refusal> {
        let found = self
            .members
            .get(&hb.member_id)
            .or_else(|| hb.instance_id.as_deref().and_then(|i| self.by_instance(i)))
            .map(|m| (m.member_id.clone(), m.instance_id.is_some()));
        let Some((member_id, is_static)) = found else { return Err(Refusal::UnknownMemberId) };
        if hb.member_epoch == STATIC_LEAVE_EPOCH && is_static {
            // Its partitions stay its own until it comes back or its session ends.
            let m = self.members.get_mut(&member_id).expect("found");
            if m.epoch != STATIC_LEAVE_EPOCH {
                m.previous_epoch = m.epoch;
                m.epoch = STATIC_LEAVE_EPOCH;
                m.rebalance_deadline_ms = None;
                self.changed = true;
            }
        } else {
            self.remove_member(&member_id);
            self.refresh(topics, settings);
        }
        Ok(Answer { member_id: hb.member_id.clone(), member_epoch: hb.member_epoch, assignment: None })
    }

    /// Moves a member towards its target (Kafka's CurrentAssignmentBuilder). `owned`: what the
    /// member reported owning, `None` if it did not say.
    fn reconcile(&mut self, member_id: &str, owned: Option<&Assignment>, now_ms: i64) {
        let m = &self.members[member_id];
        // Whether the member may still hold any of `partitions`.
        let still_owns = |partitions: &Assignment| owned.is_none_or(|o| overlaps(o, partitions));
        let from_epoch = match m.state {
            MemberState::Stable if m.epoch == self.assignment_epoch => return,
            MemberState::Stable | MemberState::UnreleasedPartitions => m.epoch,
            MemberState::UnrevokedPartitions => {
                if still_owns(&m.revoking) {
                    return;
                }
                // Revoked: it may move on.
                m.epoch
            }
        };
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let current = m.assigned.clone();
        let mut keep = Assignment::new();
        let mut revoke = Assignment::new();
        let mut gain = Assignment::new();
        let mut unreleased = false;
        for (t, p) in flatten(&current) {
            if target.get(&t).is_some_and(|s| s.contains(&p)) {
                insert(&mut keep, t, p);
            } else {
                insert(&mut revoke, t, p);
            }
        }
        for (t, p) in flatten(&target) {
            if current.get(&t).is_some_and(|s| s.contains(&p)) {
                continue;
            }
            match self.owners.get(&(t, p)) {
                Some(owner) if owner != member_id => unreleased = true,
                _ => insert(&mut gain, t, p),
            }
        }
        let target_epoch = self.assignment_epoch;
        let previous = m.epoch;
        if !revoke.is_empty() && still_owns(&revoke) {
            // Give up first, at the current epoch.
            let deadline = m.rebalance_deadline_ms.unwrap_or(now_ms + i64::from(m.rebalance_timeout_ms.max(0)));
            self.set_partitions(member_id, keep, revoke);
            let m = self.members.get_mut(member_id).expect("member");
            m.state = MemberState::UnrevokedPartitions;
            m.epoch = from_epoch;
            m.rebalance_deadline_ms = Some(deadline);
        } else {
            for (t, p) in flatten(&gain) {
                insert(&mut keep, t, p);
            }
            self.set_partitions(member_id, keep, Assignment::new());
            let m = self.members.get_mut(member_id).expect("member");
            m.state = if unreleased { MemberState::UnreleasedPartitions } else { MemberState::Stable };
            if m.epoch != target_epoch {
                m.previous_epoch = previous;
                m.epoch = target_epoch;
            }
            m.rebalance_deadline_ms = None;
        }
        self.changed = true;
    }

    /// Ends the members whose session or revocation time ran out; their ids.
    pub fn expire(&mut self, topics: &dyn Topics, settings: &Settings, now_ms: i64) -> Vec<String> {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.session_deadline_ms <= now_ms || m.rebalance_deadline_ms.is_some_and(|d| d <= now_ms))
            .map(|m| m.member_id.clone())
            .collect();
        for id in &gone {
            self.remove_member(id);
        }
        if !gone.is_empty() {
            self.refresh(topics, settings);
        }
        gone
    }

    /// Checks a member's id and epoch for an offset commit or fetch (Kafka's rules): an empty id
    /// with a negative epoch is an admin or standalone client, allowed on an empty group only.
    pub fn validate_member(&self, member_id: &str, epoch: i32) -> Result<(), CommitRefusal> {
        if member_id.is_empty() && epoch < 0 {
            return if self.members.is_empty() { Ok(()) } else { Err(CommitRefusal::UnknownMemberId) };
        }
        let m = self.members.get(member_id).ok_or(CommitRefusal::UnknownMemberId)?;
        if epoch != m.epoch {
            return Err(CommitRefusal::StaleMemberEpoch);
        }
        Ok(())
    }

    /// Every partition is owned by at most one member, and the owner index matches the members
    /// (the simulation and tests check this after every step).
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut seen: BTreeMap<(TopicUuid, i32), &str> = BTreeMap::new();
        for m in self.members.values() {
            for tp in flatten(&m.assigned).chain(flatten(&m.revoking)) {
                if let Some(other) = seen.insert(tp, &m.member_id) {
                    return Err(format!("partition {:?}-{} owned by {other} and {}", tp.0[0], tp.1, m.member_id));
                }
            }
            if overlaps(&m.assigned, &m.revoking) {
                return Err(format!("{} both holds and revokes a partition", m.member_id));
            }
        }
        if seen.len() != self.owners.len()
            || seen.iter().any(|(tp, m)| self.owners.get(tp).map(String::as_str) != Some(*m))
        {
            return Err("the owner index disagrees with the members".into());
        }
        Ok(())
    }

    /// Resolves every member's subscription against the topics that exist now, without a new
    /// epoch (after a load from `__consumer_offsets`; the next refresh notices what changed).
    pub fn resolve_all(&mut self, topics: &dyn Topics) {
        for m in self.members.values_mut() {
            m.subscribed = Self::resolve(m, topics);
        }
    }

    /// Restores a member from stored state (replay of `__consumer_offsets`).
    pub fn restore_member(&mut self, member: Member) {
        let id = member.member_id.clone();
        let (assigned, revoking) = (member.assigned.clone(), member.revoking.clone());
        if self.members.contains_key(&id) {
            self.set_partitions(&id, Assignment::new(), Assignment::new());
        }
        self.members.insert(id.clone(), member);
        self.set_partitions(&id, assigned, revoking);
    }

    /// Forgets a member from stored state (a tombstone replayed).
    pub fn forget_member(&mut self, member_id: &str) {
        self.set_partitions(member_id, Assignment::new(), Assignment::new());
        self.members.remove(member_id);
        self.target.remove(member_id);
    }
}

/// Why an offset commit or fetch by a member was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitRefusal {
    UnknownMemberId,
    StaleMemberEpoch,
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Catalog(BTreeMap<String, TopicInfo>);

    impl Topics for Catalog {
        fn get(&self, name: &str) -> Option<TopicInfo> {
            self.0.get(name).copied()
        }
        fn matching(&self, regex: &str) -> BTreeSet<String> {
            // Tests use prefixes ending in ".*".
            let prefix = regex.trim_end_matches(".*");
            self.0.keys().filter(|n| n.starts_with(prefix)).cloned().collect()
        }
    }

    const T: TopicUuid = [7; 16];
    const SETTINGS: Settings = Settings { session_timeout_ms: 45_000, members_max: 3, default_assignor: "uniform" };

    fn catalog(partitions: i32) -> Catalog {
        Catalog([("t".to_string(), TopicInfo { id: T, partitions })].into())
    }

    fn join(id: &str) -> Heartbeat {
        Heartbeat {
            member_id: id.into(),
            member_epoch: 0,
            rebalance_timeout_ms: 30_000,
            topic_names: Some(vec!["t".into()]),
            owned: Some(Assignment::new()),
            ..Heartbeat::default()
        }
    }

    fn beat(g: &ConsumerGroup, id: &str, owned: &Assignment) -> Heartbeat {
        Heartbeat {
            member_id: id.into(),
            member_epoch: g.members[id].epoch,
            rebalance_timeout_ms: -1,
            owned: Some(owned.clone()),
            ..Heartbeat::default()
        }
    }

    fn parts(a: &Assignment) -> BTreeSet<i32> {
        a.get(&T).cloned().unwrap_or_default()
    }

    /// Runs members that do what they are told until nothing changes; returns what each owns.
    fn settle(g: &mut ConsumerGroup, cat: &Catalog, owned: &mut BTreeMap<String, Assignment>) {
        for _ in 0..10 {
            let ids: Vec<String> = owned.keys().cloned().collect();
            for id in ids {
                let hb = beat(g, &id, &owned[&id]);
                let answer = g.heartbeat(hb, cat, &SETTINGS, 0).unwrap();
                if let Some(a) = answer.assignment {
                    owned.insert(id.clone(), a);
                }
                g.check_invariants().unwrap();
            }
        }
    }

    #[test]
    fn three_members_share_six_partitions_and_a_leaver_moves_only_its_own() {
        let cat = catalog(6);
        let mut g = ConsumerGroup::new();
        let mut owned = BTreeMap::new();
        for id in ["a", "b", "c"] {
            let answer = g.heartbeat(join(id), &cat, &SETTINGS, 0).unwrap();
            owned.insert(id.to_string(), answer.assignment.unwrap());
            g.check_invariants().unwrap();
        }
        settle(&mut g, &cat, &mut owned);
        assert_eq!(g.state(), "Stable");
        let sizes: Vec<usize> = owned.values().map(|a| parts(a).len()).collect();
        assert_eq!(sizes, vec![2, 2, 2]);
        let before = owned.clone();
        // c leaves: a and b keep theirs and each gains one.
        let leave = Heartbeat { member_id: "c".into(), member_epoch: LEAVE_EPOCH, ..Heartbeat::default() };
        g.heartbeat(leave, &cat, &SETTINGS, 0).unwrap();
        owned.remove("c");
        settle(&mut g, &cat, &mut owned);
        for id in ["a", "b"] {
            assert!(parts(&before[id]).is_subset(&parts(&owned[id])), "{id} lost a partition");
            assert_eq!(parts(&owned[id]).len(), 3);
        }
        assert_eq!(g.state(), "Stable");
    }

    #[test]
    fn a_partition_is_given_only_after_its_owner_revoked_it() {
        let cat = catalog(2);
        let mut g = ConsumerGroup::new();
        let a = g.heartbeat(join("a"), &cat, &SETTINGS, 0).unwrap().assignment.unwrap();
        assert_eq!(parts(&a), [0, 1].into());
        // b joins: it is told nothing yet, since a still owns both.
        let b = g.heartbeat(join("b"), &cat, &SETTINGS, 0).unwrap();
        assert!(parts(&b.assignment.unwrap()).is_empty());
        assert_eq!(g.members["b"].state, MemberState::UnreleasedPartitions);
        // a is asked to give one up, at its old epoch.
        let epoch_a = g.members["a"].epoch;
        let told = g.heartbeat(beat(&g, "a", &a), &cat, &SETTINGS, 0).unwrap();
        assert_eq!(told.member_epoch, epoch_a);
        let kept = told.assignment.unwrap();
        assert_eq!(parts(&kept).len(), 1);
        // Until a says it no longer owns it, b does not get it.
        let b_owned = Assignment::new();
        assert!(g.heartbeat(beat(&g, "b", &b_owned), &cat, &SETTINGS, 0).unwrap().assignment.is_none());
        // a acknowledges: its epoch moves on; then b gets the partition.
        let acked = g.heartbeat(beat(&g, "a", &kept), &cat, &SETTINGS, 0).unwrap();
        assert!(acked.member_epoch > epoch_a);
        let got = g.heartbeat(beat(&g, "b", &b_owned), &cat, &SETTINGS, 0).unwrap().assignment.unwrap();
        assert_eq!(parts(&got).len(), 1);
        assert!(parts(&got).is_disjoint(&parts(&kept)));
        g.check_invariants().unwrap();
        assert_eq!(g.state(), "Stable");
    }

    #[test]
    fn epochs_are_checked() {
        let cat = catalog(2);
        let mut g = ConsumerGroup::new();
        g.heartbeat(join("a"), &cat, &SETTINGS, 0).unwrap();
        let mut hb = beat(&g, "a", &Assignment::new());
        hb.member_epoch += 5;
        assert_eq!(g.heartbeat(hb, &cat, &SETTINGS, 0), Err(Refusal::FencedMemberEpoch));
        let mut unknown = beat(&g, "a", &Assignment::new());
        unknown.member_id = "zz".into();
        assert_eq!(g.heartbeat(unknown, &cat, &SETTINGS, 0), Err(Refusal::UnknownMemberId));
        for id in ["b", "c"] {
            g.heartbeat(join(id), &cat, &SETTINGS, 0).unwrap();
        }
        assert_eq!(g.heartbeat(join("d"), &cat, &SETTINGS, 0), Err(Refusal::GroupMaxSizeReached { members_max: 3 }));
        assert_eq!(g.validate_member("a", g.members["a"].epoch), Ok(()));
        assert_eq!(g.validate_member("a", 99), Err(CommitRefusal::StaleMemberEpoch));
        assert_eq!(g.validate_member("", -1), Err(CommitRefusal::UnknownMemberId));
    }

    #[test]
    fn a_silent_member_expires_and_its_partitions_move() {
        let cat = catalog(4);
        let mut g = ConsumerGroup::new();
        let mut owned = BTreeMap::new();
        for id in ["a", "b"] {
            let answer = g.heartbeat(join(id), &cat, &SETTINGS, 0).unwrap();
            owned.insert(id.to_string(), answer.assignment.unwrap());
        }
        settle(&mut g, &cat, &mut owned);
        assert_eq!(g.expire(&cat, &SETTINGS, 1000), Vec::<String>::new());
        // Only a heartbeats on.
        let answer = g.heartbeat(beat(&g, "a", &owned["a"]), &cat, &SETTINGS, 40_000).unwrap();
        if let Some(a) = answer.assignment {
            owned.insert("a".into(), a);
        }
        assert_eq!(g.expire(&cat, &SETTINGS, 50_000), vec!["b".to_string()]);
        owned.remove("b");
        settle(&mut g, &cat, &mut owned);
        assert_eq!(parts(&owned["a"]), (0..4).collect());
    }

    #[test]
    fn a_static_member_comes_back_to_its_partitions() {
        let cat = catalog(4);
        let mut g = ConsumerGroup::new();
        let mut owned = BTreeMap::new();
        for id in ["a", "b"] {
            let mut hb = join(id);
            hb.instance_id = Some(format!("i-{id}"));
            owned.insert(id.to_string(), g.heartbeat(hb, &cat, &SETTINGS, 0).unwrap().assignment.unwrap());
        }
        settle(&mut g, &cat, &mut owned);
        let had = owned["b"].clone();
        let epoch = g.epoch;
        let leave = Heartbeat {
            member_id: "b".into(),
            member_epoch: STATIC_LEAVE_EPOCH,
            instance_id: Some("i-b".into()),
            ..Heartbeat::default()
        };
        g.heartbeat(leave, &cat, &SETTINGS, 0).unwrap();
        // Another process with the same instance id while b is still in: refused.
        let mut other = join("x");
        other.instance_id = Some("i-a".into());
        assert_eq!(g.heartbeat(other, &cat, &SETTINGS, 0), Err(Refusal::UnreleasedInstanceId));
        // b's new process gets its partitions back without a new group epoch.
        let mut back = join("b2");
        back.instance_id = Some("i-b".into());
        let answer = g.heartbeat(back, &cat, &SETTINGS, 0).unwrap();
        assert_eq!(answer.assignment.unwrap(), had);
        assert_eq!(g.epoch, epoch);
        g.check_invariants().unwrap();
    }

    #[test]
    fn a_new_topic_matching_a_regex_is_assigned() {
        let mut cat = catalog(2);
        let mut g = ConsumerGroup::new();
        let mut hb = join("a");
        hb.topic_names = None;
        hb.topic_regex = Some("t.*".into());
        let first = g.heartbeat(hb, &cat, &SETTINGS, 0).unwrap().assignment.unwrap();
        assert_eq!(parts(&first).len(), 2);
        cat.0.insert("t2".into(), TopicInfo { id: [9; 16], partitions: 3 });
        let next = g.heartbeat(beat(&g, "a", &first), &cat, &SETTINGS, 0).unwrap().assignment.unwrap();
        assert_eq!(next.get(&[9; 16]).map(|s| s.len()), Some(3));
    }
}
