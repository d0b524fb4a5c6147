//! Records of the internal `__consumer_offsets` topic, in Kafka's own schemas so that Kafka's
//! tools could read them: offset commits (key version 1, value version 3), classic group
//! metadata (key version 2, value version 3), and the consumer-protocol group records of KIP-848
//! (key types 3, 5, 6, 7 and 8; their values are in `consumer::records`). A null value is a
//! tombstone: the key is deleted.

use bytes::Bytes;
use ringtail_net::{DecodeError, Reader, Writer};

const OFFSET_KEY_VERSION: i16 = 1;
const GROUP_KEY_VERSION: i16 = 2;
const OFFSET_VALUE_VERSION: i16 = 3;
/// KIP-848's record types (the key's version field is the record type).
const CONSUMER_GROUP_KEY: i16 = 3;
const CONSUMER_MEMBER_KEY: i16 = 5;
const CONSUMER_TARGET_EPOCH_KEY: i16 = 6;
const CONSUMER_TARGET_KEY: i16 = 7;
const CONSUMER_ASSIGNMENT_KEY: i16 = 8;
const GROUP_VALUE_VERSION: i16 = 3;

/// The key of a record: what it is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordKey {
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    Group {
        group: String,
    },
    /// A consumer-protocol group's epoch (ConsumerGroupMetadata).
    ConsumerGroup {
        group: String,
    },
    /// A member's subscription and identity (ConsumerGroupMemberMetadata).
    ConsumerMember {
        group: String,
        member: String,
    },
    /// The epoch of the target assignment (ConsumerGroupTargetAssignmentMetadata).
    ConsumerTargetEpoch {
        group: String,
    },
    /// A member's target assignment (ConsumerGroupTargetAssignmentMember).
    ConsumerTarget {
        group: String,
        member: String,
    },
    /// A member's current assignment and epochs (ConsumerGroupCurrentMemberAssignment).
    ConsumerAssignment {
        group: String,
        member: String,
    },
}

impl RecordKey {
    pub fn group(&self) -> &str {
        match self {
            RecordKey::Offset { group, .. }
            | RecordKey::Group { group }
            | RecordKey::ConsumerGroup { group }
            | RecordKey::ConsumerMember { group, .. }
            | RecordKey::ConsumerTargetEpoch { group }
            | RecordKey::ConsumerTarget { group, .. }
            | RecordKey::ConsumerAssignment { group, .. } => group,
        }
    }

    pub fn encode(&self) -> Bytes {
        let mut w = Writer::new();
        match self {
            RecordKey::Offset { group, topic, partition } => {
                w.i16(OFFSET_KEY_VERSION);
                w.string(false, group);
                w.string(false, topic);
                w.i32(*partition);
            }
            RecordKey::Group { group } => {
                w.i16(GROUP_KEY_VERSION);
                w.string(false, group);
            }
            RecordKey::ConsumerGroup { group } | RecordKey::ConsumerTargetEpoch { group } => {
                let kind = if matches!(self, RecordKey::ConsumerGroup { .. }) {
                    CONSUMER_GROUP_KEY
                } else {
                    CONSUMER_TARGET_EPOCH_KEY
                };
                w.i16(kind);
                w.string(false, group);
            }
            RecordKey::ConsumerMember { group, member }
            | RecordKey::ConsumerTarget { group, member }
            | RecordKey::ConsumerAssignment { group, member } => {
                w.i16(match self {
                    RecordKey::ConsumerMember { .. } => CONSUMER_MEMBER_KEY,
                    RecordKey::ConsumerTarget { .. } => CONSUMER_TARGET_KEY,
                    _ => CONSUMER_ASSIGNMENT_KEY,
                });
                w.string(false, group);
                w.string(false, member);
            }
        }
        w.buf.freeze()
    }

    pub fn decode(bytes: Bytes) -> Result<RecordKey, DecodeError> {
        let mut r = Reader::new(bytes);
        match r.i16()? {
            0 | OFFSET_KEY_VERSION => {
                let group = r.string(false)?;
                let topic = r.string(false)?;
                let partition = r.i32()?;
                Ok(RecordKey::Offset { group, topic, partition })
            }
            GROUP_KEY_VERSION => Ok(RecordKey::Group { group: r.string(false)? }),
            CONSUMER_GROUP_KEY => Ok(RecordKey::ConsumerGroup { group: r.string(false)? }),
            CONSUMER_TARGET_EPOCH_KEY => Ok(RecordKey::ConsumerTargetEpoch { group: r.string(false)? }),
            kind @ (CONSUMER_MEMBER_KEY | CONSUMER_TARGET_KEY | CONSUMER_ASSIGNMENT_KEY) => {
                let group = r.string(false)?;
                let member = r.string(false)?;
                Ok(match kind {
                    CONSUMER_MEMBER_KEY => RecordKey::ConsumerMember { group, member },
                    CONSUMER_TARGET_KEY => RecordKey::ConsumerTarget { group, member },
                    _ => RecordKey::ConsumerAssignment { group, member },
                })
            }
            _ => Err(DecodeError::Invalid { what: "__consumer_offsets key", reason: "unknown key version" }),
        }
    }
}

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

impl OffsetValue {
    pub fn encode(&self) -> Bytes {
        let mut w = Writer::new();
        w.i16(OFFSET_VALUE_VERSION);
        w.i64(self.offset);
        w.i32(self.leader_epoch);
        w.string(false, &self.metadata);
        w.i64(self.commit_timestamp_ms);
        w.buf.freeze()
    }

    pub fn decode(bytes: Bytes) -> Result<OffsetValue, DecodeError> {
        let mut r = Reader::new(bytes);
        let version = r.i16()?;
        if !(0..=OFFSET_VALUE_VERSION).contains(&version) {
            return Err(DecodeError::Invalid { what: "offset commit value", reason: "unknown version" });
        }
        let offset = r.i64()?;
        let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
        let metadata = r.string(false)?;
        let commit_timestamp_ms = r.i64()?;
        if version == 1 {
            r.i64()?; // expire timestamp, no longer used
        }
        Ok(OffsetValue { offset, leader_epoch, metadata, commit_timestamp_ms })
    }
}

/// A member as stored with its group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A group's state after a completed rebalance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub current_state_timestamp_ms: i64,
    pub members: Vec<StoredMember>,
}

impl GroupValue {
    pub fn encode(&self) -> Bytes {
        let mut w = Writer::new();
        w.i16(GROUP_VALUE_VERSION);
        w.string(false, &self.protocol_type);
        w.i32(self.generation);
        w.nullable_string(false, self.protocol.as_deref());
        w.nullable_string(false, self.leader.as_deref());
        w.i64(self.current_state_timestamp_ms);
        w.array_len(false, self.members.len());
        for m in &self.members {
            w.string(false, &m.member_id);
            w.nullable_string(false, m.group_instance_id.as_deref());
            w.string(false, &m.client_id);
            w.string(false, &m.client_host);
            w.i32(m.rebalance_timeout_ms);
            w.i32(m.session_timeout_ms);
            w.nullable_bytes(false, Some(&m.subscription));
            w.nullable_bytes(false, Some(&m.assignment));
        }
        w.buf.freeze()
    }

    pub fn decode(bytes: Bytes) -> Result<GroupValue, DecodeError> {
        let mut r = Reader::new(bytes);
        let version = r.i16()?;
        if !(0..=GROUP_VALUE_VERSION).contains(&version) {
            return Err(DecodeError::Invalid { what: "group metadata value", reason: "unknown version" });
        }
        let protocol_type = r.string(false)?;
        let generation = r.i32()?;
        let protocol = r.nullable_string(false)?;
        let leader = r.nullable_string(false)?;
        let current_state_timestamp_ms = if version >= 2 { r.i64()? } else { -1 };
        let members = r.array(false, "group members", |r| {
            let member_id = r.string(false)?;
            let group_instance_id = if version >= 3 { r.nullable_string(false)? } else { None };
            let client_id = r.string(false)?;
            let client_host = r.string(false)?;
            let rebalance_timeout_ms = if version >= 1 { r.i32()? } else { -1 };
            let session_timeout_ms = r.i32()?;
            let subscription = r.bytes(false)?;
            let assignment = r.bytes(false)?;
            Ok(StoredMember {
                member_id,
                group_instance_id,
                client_id,
                client_host,
                rebalance_timeout_ms: if rebalance_timeout_ms < 0 { session_timeout_ms } else { rebalance_timeout_ms },
                session_timeout_ms,
                subscription,
                assignment,
            })
        })?;
        Ok(GroupValue { protocol_type, generation, protocol, leader, current_state_timestamp_ms, members })
    }
}

/// Kafka's partition of `__consumer_offsets` for a group: Java's `String.hashCode` of the
/// group id, made non-negative with Kafka's `Utils.abs`, modulo the partition count. The same group lands on the same
/// partition as in Kafka.
pub fn partition_for(group: &str, partitions: usize) -> i32 {
    let mut hash: i32 = 0;
    for unit in group.encode_utf16() {
        hash = hash.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    // Kafka's Utils.abs: Math.abs, except that i32::MIN maps to 0.
    let non_negative = if hash == i32::MIN { 0 } else { hash.abs() };
    (non_negative as usize % partitions.max(1)) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_round_trip() {
        for key in [
            RecordKey::Offset { group: "g".into(), topic: "t".into(), partition: 3 },
            RecordKey::Group { group: "payments".into() },
            RecordKey::ConsumerGroup { group: "g".into() },
            RecordKey::ConsumerMember { group: "g".into(), member: "m".into() },
            RecordKey::ConsumerTargetEpoch { group: "g".into() },
            RecordKey::ConsumerTarget { group: "g".into(), member: "m".into() },
            RecordKey::ConsumerAssignment { group: "g".into(), member: "m".into() },
        ] {
            assert_eq!(RecordKey::decode(key.encode()).unwrap(), key);
        }
        let offset = OffsetValue { offset: 42, leader_epoch: -1, metadata: "m".into(), commit_timestamp_ms: 7 };
        assert_eq!(OffsetValue::decode(offset.encode()).unwrap(), offset);
        let group = GroupValue {
            protocol_type: "consumer".into(),
            generation: 5,
            protocol: Some("range".into()),
            leader: Some("a".into()),
            current_state_timestamp_ms: 9,
            members: vec![StoredMember {
                member_id: "a".into(),
                group_instance_id: Some("i".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 45_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        assert_eq!(GroupValue::decode(group.encode()).unwrap(), group);
        assert!(RecordKey::decode(Bytes::from_static(&[0, 9, 0, 0])).is_err());
    }

    #[test]
    fn partitions_match_kafka() {
        // Java: Utils.abs("...".hashCode()) % 50.
        assert_eq!(partition_for("", 50), 0);
        // "polygenelubricants".hashCode() == Integer.MIN_VALUE: Utils.abs gives 0.
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        // Negative and positive hashes, values from Java's String.hashCode.
        assert_eq!(partition_for("my-group", 50), 1_906_497_762 % 50);
        assert_eq!(partition_for("abcdefghij", 50), 634_317_659 % 50);
        assert_eq!(partition_for("payments-consumers", 50), 1_080_531_101 % 50);
        assert_eq!(partition_for("a", 50), 97 % 50);
        assert_eq!(partition_for("ab", 50), (97 * 31 + 98) % 50);
        for p in 1..64 {
            assert!((0..p as i32).contains(&partition_for("group-with-a-long-name-é", p)));
        }
    }
}
