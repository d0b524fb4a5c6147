//! Consumer-protocol groups (KIP-848): the pure state machine (`machine`) and the server-side
//! assignors (`assignor`), both std only so that the simulation compiles the same files; here,
//! what ties them to the coordinator: the cluster's topics as the machine sees them, the group's
//! protocol changes (an empty group moves between classic and consumer), heartbeats and
//! expiry, and the classic APIs' view of a consumer group.

pub mod assignor;
pub mod machine;
pub mod records;

use std::collections::BTreeSet;

use bytes::Bytes;
use ringtail_replication::metadata::image::MetadataImage;

use self::machine::{Answer, ConsumerGroup, Heartbeat, Member, MemberState, Refusal, Settings, TopicInfo, Topics};
use self::records::{AssignmentValue, MemberValue};
use super::error::GroupError;
use super::records::RecordKey;
use super::state::{commit_refusal, Groups, GROUPS_PER_SHARD_MAX};
use ringtail_replication::metadata::controller::OFFSETS_TOPIC;

/// Longest topic regular expression a member may subscribe with.
pub const REGEX_BYTES_MAX: usize = 1024;
/// Compiled size limit of a topic regular expression (the regex crate's own bound).
const REGEX_COMPILED_BYTES_MAX: usize = 1 << 20;
/// Topic names one member may subscribe to.
pub const SUBSCRIBED_TOPICS_MAX: usize = 10_000;

/// The metadata image as the state machine sees it. Internal topics are never matched by a
/// regular expression (as in Kafka).
pub struct ImageTopics<'a>(pub &'a MetadataImage);

impl Topics for ImageTopics<'_> {
    fn get(&self, name: &str) -> Option<TopicInfo> {
        self.0.topic(name).map(|t| TopicInfo { id: t.id.0, partitions: t.partitions.len() as i32 })
    }

    fn matching(&self, regex: &str) -> BTreeSet<String> {
        let Ok(re) = compile(regex) else { return BTreeSet::new() };
        self.0
            .topics()
            .filter(|t| !t.name.starts_with("__") && t.name.as_ref() != OFFSETS_TOPIC && re.is_match(&t.name))
            .map(|t| t.name.to_string())
            .collect()
    }
}

/// A subscription's regular expression, matched against whole topic names (Kafka's rule).
pub fn compile(regex: &str) -> Result<regex::Regex, GroupError> {
    if regex.len() > REGEX_BYTES_MAX {
        return Err(GroupError::InvalidRegularExpression(format!(
            "{} bytes, above the limit of {REGEX_BYTES_MAX}",
            regex.len()
        )));
    }
    regex::RegexBuilder::new(&format!("^(?:{regex})$"))
        .size_limit(REGEX_COMPILED_BYTES_MAX)
        .build()
        .map_err(|e| GroupError::InvalidRegularExpression(e.to_string()))
}

fn refusal(r: Refusal) -> GroupError {
    match r {
        Refusal::UnknownMemberId => GroupError::UnknownMemberId,
        Refusal::FencedMemberEpoch => GroupError::FencedMemberEpoch,
        Refusal::UnreleasedInstanceId => GroupError::UnreleasedInstanceId,
        Refusal::FencedInstanceId => GroupError::FencedInstanceId,
        Refusal::GroupMaxSizeReached { members_max } => GroupError::GroupMaxSizeReached { members_max },
    }
}

/// Checks a heartbeat's shape (Kafka's rules for ConsumerGroupHeartbeat), before any group is
/// touched.
pub fn validate(
    group_id: &str,
    hb: &Heartbeat,
    version: i16,
    assignors: &crate::config::ConsumerAssignors,
) -> Result<(), GroupError> {
    let invalid = |why: &str| Err(GroupError::InvalidRequest(why.to_string()));
    if group_id.is_empty() {
        return Err(GroupError::InvalidGroupId);
    }
    if (hb.member_epoch > 0 || hb.member_epoch == machine::LEAVE_EPOCH || version >= 1) && hb.member_id.is_empty() {
        return invalid("MemberId can't be empty.");
    }
    if hb.member_id.len() > 255 {
        return invalid("MemberId is longer than 255 bytes.");
    }
    match hb.member_epoch {
        machine::JOIN_EPOCH => {
            if hb.rebalance_timeout_ms < 0 {
                return invalid("RebalanceTimeoutMs must be provided in first request.");
            }
            if hb.owned.as_ref().is_none_or(|o| !o.is_empty()) {
                return invalid("TopicPartitions must be empty when (re-)joining.");
            }
            if hb.topic_names.is_none() && hb.topic_regex.is_none() {
                return invalid(
                    "Either SubscribedTopicNames or SubscribedTopicRegex must be non-null when (re-)joining.",
                );
            }
        }
        machine::STATIC_LEAVE_EPOCH if hb.instance_id.is_none() => return invalid("InstanceId can't be null."),
        e if e < machine::STATIC_LEAVE_EPOCH => return invalid("MemberEpoch is invalid."),
        _ => {}
    }
    if hb.topic_names.as_ref().is_some_and(|n| n.len() > SUBSCRIBED_TOPICS_MAX) {
        return invalid(&format!("more than {SUBSCRIBED_TOPICS_MAX} subscribed topic names"));
    }
    if let Some(regex) = hb.topic_regex.as_deref().filter(|r| !r.is_empty()) {
        compile(regex)?;
    }
    if let Some(a) = &hb.server_assignor {
        if !assignors.contains(a) {
            return Err(GroupError::UnsupportedAssignor(format!(
                "{a} (this broker allows {})",
                assignors.names().join(", ")
            )));
        }
    }
    Ok(())
}

impl Groups {
    /// A ConsumerGroupHeartbeat (checked by `validate`): creates the group on a join, turns an
    /// empty classic group into a consumer one, and runs the state machine.
    pub fn consumer_heartbeat(
        &mut self,
        group_id: &str,
        hb: Heartbeat,
        topics: &dyn Topics,
        session_timeout_ms: i32,
        now_ms: i64,
    ) -> Result<Answer, GroupError> {
        // The group's own session timeout (a group config) or the broker's.
        let settings = Settings { session_timeout_ms, ..self.consumer_settings() };
        if !self.groups.contains_key(group_id) {
            if hb.member_epoch != machine::JOIN_EPOCH {
                return Err(GroupError::UnknownMemberId);
            }
            if self.groups.len() >= GROUPS_PER_SHARD_MAX {
                return Err(GroupError::CoordinatorNotAvailable);
            }
            let mut g = super::state::Group::new(group_id, now_ms);
            g.consumer = Some(ConsumerGroup::new());
            self.groups.insert(group_id.to_string(), g);
        }
        let g = self.groups.get_mut(group_id).expect("inserted above");
        if g.consumer.is_none() {
            if !g.is_empty() {
                return Err(GroupError::WrongGroupType(format!(
                    "{group_id} is a classic group with members; it can use the consumer protocol once they leave"
                )));
            }
            if hb.member_epoch != machine::JOIN_EPOCH {
                return Err(GroupError::UnknownMemberId);
            }
            tracing::info!(group = %group_id, "empty classic group joined with the consumer protocol: now a consumer group");
            g.consumer = Some(ConsumerGroup::new());
        }
        let c = g.consumer.as_mut().expect("set above");
        if c.members.values().any(|m| m.subscribed.is_empty()) {
            // Loaded from __consumer_offsets: subscriptions are resolved against today's topics.
            c.resolve_all(topics);
        }
        let answer = c.heartbeat(hb, topics, &settings, now_ms).map_err(refusal);
        self.store_consumer(group_id);
        answer
    }

    /// Applies one consumer-group record replayed from `__consumer_offsets`.
    pub fn apply_consumer(&mut self, key: RecordKey, value: Option<Bytes>, now_ms: i64) -> Result<(), String> {
        let group_id = key.group().to_string();
        let session = i64::from(self.config.consumer_session_timeout_ms);
        if value.is_some() && !self.groups.contains_key(&group_id) {
            self.groups.insert(group_id.clone(), super::state::Group::new(&group_id, now_ms));
        }
        let Some(g) = self.groups.get_mut(&group_id) else { return Ok(()) };
        match &value {
            Some(v) => g.consumer_stored.insert(key.clone(), v.clone()),
            None => g.consumer_stored.remove(&key),
        };
        let bad = |e: ringtail_net::DecodeError| e.to_string();
        if let (RecordKey::ConsumerGroup { .. }, None) = (&key, &value) {
            g.consumer = None;
            return Ok(());
        }
        let c = g.consumer.get_or_insert_with(ConsumerGroup::new);
        match (key, value) {
            (RecordKey::ConsumerGroup { .. }, Some(v)) => c.epoch = records::decode_epoch(v).map_err(bad)?,
            (RecordKey::ConsumerTargetEpoch { .. }, Some(v)) => {
                c.assignment_epoch = records::decode_epoch(v).map_err(bad)?
            }
            (RecordKey::ConsumerTargetEpoch { .. }, None) => {}
            (RecordKey::ConsumerMember { member, .. }, Some(v)) => {
                let v = MemberValue::decode(v).map_err(bad)?;
                let mut m = c.members.get(&member).cloned().unwrap_or_else(|| Member::empty(member.clone()));
                m.instance_id = v.instance_id;
                m.rack_id = v.rack_id;
                m.client_id = v.client_id;
                m.client_host = v.client_host;
                m.topic_names = v.topic_names;
                m.topic_regex = v.topic_regex;
                m.rebalance_timeout_ms = v.rebalance_timeout_ms;
                m.server_assignor = v.server_assignor;
                // A full session to find the new coordinator.
                m.session_deadline_ms = now_ms + session;
                c.restore_member(m);
            }
            (RecordKey::ConsumerMember { member, .. }, None) => c.forget_member(&member),
            (RecordKey::ConsumerTarget { member, .. }, Some(v)) => {
                c.target.insert(member, records::decode_target(v).map_err(bad)?);
            }
            (RecordKey::ConsumerTarget { member, .. }, None) => {
                c.target.remove(&member);
            }
            (RecordKey::ConsumerAssignment { member, .. }, Some(v)) => {
                let v = AssignmentValue::decode(v).map_err(bad)?;
                let mut m = c.members.get(&member).cloned().unwrap_or_else(|| Member::empty(member.clone()));
                m.epoch = v.epoch;
                m.previous_epoch = v.previous_epoch;
                m.state = v.state;
                m.assigned = v.assigned;
                m.revoking = v.revoking;
                m.session_deadline_ms = now_ms + session;
                m.rebalance_deadline_ms = (m.state == MemberState::UnrevokedPartitions)
                    .then_some(now_ms + i64::from(m.rebalance_timeout_ms.max(0)));
                c.restore_member(m);
            }
            (RecordKey::ConsumerAssignment { .. }, None) => {}
            _ => {}
        }
        c.changed = false;
        Ok(())
    }

    /// OffsetFetch by a named member: checked only for consumer-protocol groups (Kafka's rule).
    pub fn validate_consumer_fetch(&self, group_id: &str, member_id: &str, epoch: i32) -> Result<(), GroupError> {
        match self.groups.get(group_id).and_then(|g| g.consumer.as_ref()) {
            Some(c) => c.validate_member(member_id, epoch).map_err(commit_refusal),
            None => Ok(()),
        }
    }

    /// A consumer group's state for ConsumerGroupDescribe; `None` if there is no such group,
    /// `Some(Err)` if the group is classic.
    pub fn consumer_group(&self, group_id: &str) -> Option<Result<ConsumerGroup, ()>> {
        let g = self.groups.get(group_id)?;
        Some(g.consumer.clone().ok_or(()))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::assignor::Assignment;
    use super::machine::{Heartbeat, TopicInfo, Topics};
    use super::*;
    use crate::broker::group::state::{GroupConfig, Groups};

    struct Catalog;

    impl Topics for Catalog {
        fn get(&self, name: &str) -> Option<TopicInfo> {
            (name == "t").then_some(TopicInfo { id: [5; 16], partitions: 6 })
        }
        fn matching(&self, _: &str) -> BTreeSet<String> {
            BTreeSet::new()
        }
    }

    const A: crate::config::ConsumerAssignors = crate::config::ConsumerAssignors::const_default();

    const CONFIG: GroupConfig = GroupConfig {
        session_timeout_ms_min: 6_000,
        session_timeout_ms_max: 300_000,
        initial_rebalance_delay_ms: 0,
        consumer_session_timeout_ms: 45_000,
        consumer_heartbeat_interval_ms: 5_000,
        consumer_assignors: A,
        offsets_per_group_max: 100,
    };

    fn join(id: &str) -> Heartbeat {
        Heartbeat {
            member_id: id.into(),
            member_epoch: 0,
            rebalance_timeout_ms: 30_000,
            topic_names: Some(vec!["t".into()]),
            owned: Some(Assignment::new()),
            client_id: format!("client-{id}"),
            ..Heartbeat::default()
        }
    }

    /// Replays queued writes into a fresh coordinator, as a load of `__consumer_offsets` does
    /// (the log keeps the last value of each key).
    fn replay(writes: &[(RecordKey, Option<Bytes>)]) -> Groups {
        let mut last: Vec<(RecordKey, Option<Bytes>)> = Vec::new();
        for (k, v) in writes {
            last.retain(|(key, _)| key != k);
            last.push((k.clone(), v.clone()));
        }
        let mut fresh = Groups::new(CONFIG);
        for (k, v) in last {
            fresh.apply_consumer(k, v, 1_000).unwrap();
        }
        fresh
    }

    #[test]
    fn a_consumer_group_survives_a_replay_of_its_records() {
        let mut groups = Groups::new(CONFIG);
        let mut owned: BTreeMap<String, Assignment> = BTreeMap::new();
        for id in ["a", "b", "c"] {
            let answer = groups.consumer_heartbeat("g", join(id), &Catalog, 45_000, 0).unwrap();
            owned.insert(id.into(), answer.assignment.unwrap());
        }
        for _ in 0..4 {
            for id in ["a", "b", "c"] {
                let epoch = groups.consumer_group("g").unwrap().unwrap().members[id].epoch;
                let hb = Heartbeat {
                    member_id: id.into(),
                    member_epoch: epoch,
                    rebalance_timeout_ms: -1,
                    owned: Some(owned[id].clone()),
                    ..Heartbeat::default()
                };
                if let Some(a) = groups.consumer_heartbeat("g", hb, &Catalog, 45_000, 0).unwrap().assignment {
                    owned.insert(id.into(), a);
                }
            }
        }
        let before = groups.consumer_group("g").unwrap().unwrap();
        assert_eq!(before.state(), "Stable");
        let writes = std::mem::take(&mut groups.writes);
        assert!(writes.iter().any(|(k, _)| matches!(k, RecordKey::ConsumerAssignment { .. })));
        let mut after = replay(&writes);
        let loaded = after.consumer_group("g").unwrap().unwrap();
        assert_eq!((loaded.epoch, loaded.assignment_epoch), (before.epoch, before.assignment_epoch));
        assert_eq!(loaded.target, before.target);
        for (id, m) in &before.members {
            let l = &loaded.members[id];
            assert_eq!((l.epoch, l.previous_epoch, l.state), (m.epoch, m.previous_epoch, m.state), "{id}");
            assert_eq!((&l.assigned, &l.revoking, &l.client_id), (&m.assigned, &m.revoking, &m.client_id), "{id}");
        }
        loaded.check_invariants().unwrap();
        // Members carry on with the new coordinator at their epochs, keeping their partitions.
        for id in ["a", "b", "c"] {
            let hb = Heartbeat {
                member_id: id.into(),
                member_epoch: before.members[id].epoch,
                rebalance_timeout_ms: -1,
                owned: Some(owned[id].clone()),
                ..Heartbeat::default()
            };
            let answer = after.consumer_heartbeat("g", hb, &Catalog, 45_000, 2_000).unwrap();
            assert_eq!(answer.assignment.unwrap_or_else(|| owned[id].clone()), owned[id], "{id}");
        }
        // A member leaves: its records are deleted by tombstones.
        let leave = Heartbeat { member_id: "c".into(), member_epoch: -1, ..Heartbeat::default() };
        after.consumer_heartbeat("g", leave, &Catalog, 45_000, 3_000).unwrap();
        let tombstones: Vec<&RecordKey> = after.writes.iter().filter(|(_, v)| v.is_none()).map(|(k, _)| k).collect();
        assert!(tombstones.contains(&&RecordKey::ConsumerMember { group: "g".into(), member: "c".into() }));
        assert!(tombstones.contains(&&RecordKey::ConsumerAssignment { group: "g".into(), member: "c".into() }));
        let mut all = writes;
        all.extend(after.writes.iter().cloned());
        let replayed = replay(&all);
        assert_eq!(replayed.consumer_group("g").unwrap().unwrap().members.len(), 2);
    }

    #[test]
    fn heartbeats_are_checked_before_any_group_is_touched() {
        let hb = join("m");
        assert!(validate("g", &hb, 1, &A).is_ok());
        assert!(matches!(validate("", &hb, 1, &A), Err(GroupError::InvalidGroupId)));
        assert!(matches!(
            validate("g", &Heartbeat { member_id: String::new(), ..join("") }, 1, &A),
            Err(GroupError::InvalidRequest(_))
        ));
        assert!(validate("g", &Heartbeat { member_id: String::new(), ..join("") }, 0, &A).is_ok());
        let bad_regex = Heartbeat { topic_regex: Some("(".into()), ..join("m") };
        assert!(matches!(validate("g", &bad_regex, 1, &A), Err(GroupError::InvalidRegularExpression(_))));
        let assignor = Heartbeat { server_assignor: Some("sticky".into()), ..join("m") };
        assert!(matches!(validate("g", &assignor, 1, &A), Err(GroupError::UnsupportedAssignor(_))));
        let owned = Heartbeat { owned: None, ..join("m") };
        assert!(matches!(validate("g", &owned, 1, &A), Err(GroupError::InvalidRequest(_))));
        assert!(compile("t.*").unwrap().is_match("topic"));
        assert!(!compile("t").unwrap().is_match("topic"), "a regex matches whole names");
    }
}
