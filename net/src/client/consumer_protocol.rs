//! The consumer protocol's assignment (Kafka's `ConsumerProtocolAssignment`, versions 0-3): the
//! bytes a group's leader hands each member through SyncGroup, which DescribeGroups shows as a
//! member's assignment. Embedded in other messages, it carries its version in front and is never
//! flexible.

use bytes::Bytes;

use crate::codec::{DecodeError, Reader};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerProtocolAssignment {
    pub assigned_partitions: Vec<AssignedPartitions>,
    pub user_data: Option<Bytes>,
}

/// A topic's partitions assigned to the member (Kafka's `TopicPartition`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssignedPartitions {
    pub topic: String,
    pub partitions: Vec<i32>,
}

impl ConsumerProtocolAssignment {
    /// Reads an assignment with its leading version. Versions 0-3 have the same fields, and a
    /// later version may only add fields after them (Kafka reads it as the highest version it
    /// knows), so every version is read alike; bytes after the known fields are left in `r`.
    pub fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        if r.i16()? < 0 {
            return Err(DecodeError::Invalid { what: "consumer protocol assignment", reason: "negative version" });
        }
        let assigned_partitions = r.array(false, "assigned topics", |r| {
            let topic = r.string(false)?;
            let partitions = r.array(false, "assigned partitions", Reader::i32)?;
            Ok(AssignedPartitions { topic, partitions })
        })?;
        let user_data = r.nullable_bytes(false)?;
        Ok(ConsumerProtocolAssignment { assigned_partitions, user_data })
    }
}
