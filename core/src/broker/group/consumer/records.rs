//! The values of the consumer-protocol group records in `__consumer_offsets`, in Kafka's schemas
//! (value version 0, flexible encoding): ConsumerGroupMetadataValue (the group epoch),
//! ConsumerGroupMemberMetadataValue, ConsumerGroupTargetAssignmentMetadataValue,
//! ConsumerGroupTargetAssignmentMemberValue and ConsumerGroupCurrentMemberAssignmentValue. Tagged
//! fields Kafka added later (metadata hash, creation time, assignment epochs per partition) are
//! neither written nor needed, and skipped when read.

use std::collections::HashMap;

use bytes::Bytes;
use ringtail_net::{DecodeError, Reader, Writer};

use super::super::records::RecordKey;
use super::assignor::Assignment;
use super::machine::{ConsumerGroup, MemberState};

const VALUE_VERSION: i16 = 0;

fn start() -> Writer {
    let mut w = Writer::new();
    w.i16(VALUE_VERSION);
    w
}

fn finish(mut w: Writer) -> Bytes {
    w.no_tagged_fields(true);
    w.buf.freeze()
}

fn open(bytes: Bytes, what: &'static str) -> Result<Reader, DecodeError> {
    let mut r = Reader::new(bytes);
    if r.i16()? != VALUE_VERSION {
        return Err(DecodeError::Invalid { what, reason: "unknown version" });
    }
    Ok(r)
}

fn write_assignment(w: &mut Writer, a: &Assignment) {
    let topics: Vec<_> = a.iter().filter(|(_, ps)| !ps.is_empty()).collect();
    w.array_len(true, topics.len());
    for (id, ps) in topics {
        w.uuid(id);
        let ps: Vec<i32> = ps.iter().copied().collect();
        w.i32_array(true, &ps);
        w.no_tagged_fields(true);
    }
}

fn read_assignment(r: &mut Reader) -> Result<Assignment, DecodeError> {
    let mut a = Assignment::new();
    for (id, ps) in r.array(true, "topic partitions", |r| {
        let id = r.uuid()?;
        let ps = r.array(true, "partitions", |r| r.i32())?;
        r.tagged_fields(true)?;
        Ok((id, ps))
    })? {
        a.entry(id).or_default().extend(ps);
    }
    Ok(a)
}

/// ConsumerGroupMetadataValue and ConsumerGroupTargetAssignmentMetadataValue: one epoch.
pub fn encode_epoch(epoch: i32) -> Bytes {
    let mut w = start();
    w.i32(epoch);
    finish(w)
}

pub fn decode_epoch(bytes: Bytes) -> Result<i32, DecodeError> {
    let mut r = open(bytes, "consumer group epoch")?;
    let epoch = r.i32()?;
    r.tagged_fields(true)?;
    Ok(epoch)
}

/// ConsumerGroupMemberMetadataValue.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberValue {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub topic_names: Vec<String>,
    pub topic_regex: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
}

impl MemberValue {
    pub fn encode(&self) -> Bytes {
        let mut w = start();
        w.nullable_string(true, self.instance_id.as_deref());
        w.nullable_string(true, self.rack_id.as_deref());
        w.string(true, &self.client_id);
        w.string(true, &self.client_host);
        w.array_len(true, self.topic_names.len());
        for t in &self.topic_names {
            w.string(true, t);
        }
        w.nullable_string(true, self.topic_regex.as_deref());
        w.i32(self.rebalance_timeout_ms);
        w.nullable_string(true, self.server_assignor.as_deref());
        finish(w)
    }

    pub fn decode(bytes: Bytes) -> Result<MemberValue, DecodeError> {
        let mut r = open(bytes, "consumer group member")?;
        let v = MemberValue {
            instance_id: r.nullable_string(true)?,
            rack_id: r.nullable_string(true)?,
            client_id: r.string(true)?,
            client_host: r.string(true)?,
            topic_names: r.array(true, "subscribed topic names", |r| r.string(true))?,
            topic_regex: r.nullable_string(true)?,
            rebalance_timeout_ms: r.i32()?,
            server_assignor: r.nullable_string(true)?,
        };
        r.tagged_fields(true)?;
        Ok(v)
    }
}

/// ConsumerGroupTargetAssignmentMemberValue.
pub fn encode_target(a: &Assignment) -> Bytes {
    let mut w = start();
    write_assignment(&mut w, a);
    finish(w)
}

pub fn decode_target(bytes: Bytes) -> Result<Assignment, DecodeError> {
    let mut r = open(bytes, "consumer group target assignment")?;
    let a = read_assignment(&mut r)?;
    r.tagged_fields(true)?;
    Ok(a)
}

/// ConsumerGroupCurrentMemberAssignmentValue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignmentValue {
    pub epoch: i32,
    pub previous_epoch: i32,
    pub state: MemberState,
    pub assigned: Assignment,
    pub revoking: Assignment,
}

/// Kafka's MemberState bytes.
fn state_byte(state: MemberState) -> i8 {
    match state {
        MemberState::UnrevokedPartitions => 0,
        MemberState::UnreleasedPartitions => 1,
        MemberState::Stable => 2,
    }
}

impl AssignmentValue {
    pub fn encode(&self) -> Bytes {
        let mut w = start();
        w.i32(self.epoch);
        w.i32(self.previous_epoch);
        w.i8(state_byte(self.state));
        write_assignment(&mut w, &self.assigned);
        write_assignment(&mut w, &self.revoking);
        finish(w)
    }

    pub fn decode(bytes: Bytes) -> Result<AssignmentValue, DecodeError> {
        let mut r = open(bytes, "consumer group member assignment")?;
        let epoch = r.i32()?;
        let previous_epoch = r.i32()?;
        let state = match r.i8()? {
            0 => MemberState::UnrevokedPartitions,
            1 => MemberState::UnreleasedPartitions,
            // Kafka's UNKNOWN (127) and anything else: reconciled again from the target.
            _ => MemberState::Stable,
        };
        let assigned = read_assignment(&mut r)?;
        let revoking = read_assignment(&mut r)?;
        r.tagged_fields(true)?;
        Ok(AssignmentValue { epoch, previous_epoch, state, assigned, revoking })
    }
}

/// The order records of one change are appended in: the group's epoch and members' metadata,
/// then the target, then members' current assignments; tombstones of members last.
pub fn record_order(key: &RecordKey, tombstone: bool) -> u8 {
    let kind = match key {
        RecordKey::ConsumerGroup { .. } => 0,
        RecordKey::ConsumerMember { .. } => 1,
        RecordKey::ConsumerTarget { .. } => 2,
        RecordKey::ConsumerTargetEpoch { .. } => 3,
        RecordKey::ConsumerAssignment { .. } => 4,
        _ => 5,
    };
    kind + if tombstone { 10 } else { 0 }
}

/// Every record that describes a consumer group now, by key.
pub fn group_records(group_id: &str, c: &ConsumerGroup) -> HashMap<RecordKey, Bytes> {
    let group = || group_id.to_string();
    let mut out = HashMap::with_capacity(2 + 3 * c.members.len());
    out.insert(RecordKey::ConsumerGroup { group: group() }, encode_epoch(c.epoch));
    out.insert(RecordKey::ConsumerTargetEpoch { group: group() }, encode_epoch(c.assignment_epoch));
    for m in c.members.values() {
        let member = m.member_id.clone();
        let value = MemberValue {
            instance_id: m.instance_id.clone(),
            rack_id: m.rack_id.clone(),
            client_id: m.client_id.clone(),
            client_host: m.client_host.clone(),
            topic_names: m.topic_names.clone(),
            topic_regex: m.topic_regex.clone(),
            rebalance_timeout_ms: m.rebalance_timeout_ms,
            server_assignor: m.server_assignor.clone(),
        };
        out.insert(RecordKey::ConsumerMember { group: group(), member: member.clone() }, value.encode());
        if let Some(t) = c.target.get(&member) {
            out.insert(RecordKey::ConsumerTarget { group: group(), member: member.clone() }, encode_target(t));
        }
        let current = AssignmentValue {
            epoch: m.epoch,
            previous_epoch: m.previous_epoch,
            state: m.state,
            assigned: m.assigned.clone(),
            revoking: m.revoking.clone(),
        };
        out.insert(RecordKey::ConsumerAssignment { group: group(), member }, current.encode());
    }
    out
}

/// The classic consumer protocol's Subscription, version 0.
pub fn subscription_bytes(topics: &[String]) -> Bytes {
    let mut w = Writer::new();
    w.i16(0);
    w.array_len(false, topics.len());
    for t in topics {
        w.string(false, t);
    }
    w.nullable_bytes(false, None);
    w.buf.freeze()
}

/// The classic consumer protocol's Assignment, version 0.
pub fn assignment_bytes(topics: &[(String, Vec<i32>)]) -> Bytes {
    let mut w = Writer::new();
    w.i16(0);
    w.array_len(false, topics.len());
    for (t, ps) in topics {
        w.string(false, t);
        w.i32_array(false, ps);
    }
    w.nullable_bytes(false, None);
    w.buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip() {
        assert_eq!(decode_epoch(encode_epoch(17)).unwrap(), 17);
        let member = MemberValue {
            instance_id: Some("i".into()),
            rack_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            topic_names: vec!["a".into(), "b".into()],
            topic_regex: Some("x.*".into()),
            rebalance_timeout_ms: 30_000,
            server_assignor: Some("range".into()),
        };
        assert_eq!(MemberValue::decode(member.encode()).unwrap(), member);
        let mut a = Assignment::new();
        a.entry([3; 16]).or_default().extend([0, 2, 5]);
        assert_eq!(decode_target(encode_target(&a)).unwrap(), a);
        let v = AssignmentValue {
            epoch: 4,
            previous_epoch: 3,
            state: MemberState::UnrevokedPartitions,
            assigned: a.clone(),
            revoking: Assignment::new(),
        };
        assert_eq!(AssignmentValue::decode(v.encode()).unwrap(), v);
    }
}
