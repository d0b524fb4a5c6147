//! OffsetFetch (key 9), versions 0-9: the offsets a group has committed. Versions 0-7 ask for
//! one group, versions 8-9 for several; both read as a list of groups, and the response is
//! written in the shape of the version.

use crate::codec::{DecodeError, Reader, Writer};
use crate::header::ApiKey;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetFetchRequest {
    /// Exactly one group in versions 0-7.
    pub groups: Vec<OffsetFetchRequestGroup>,
    /// Version 7+: answer UNSTABLE_OFFSET_COMMIT rather than offsets a pending transaction
    /// may still change.
    pub require_stable: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetFetchRequestGroup {
    pub group_id: String,
    /// The member asking, for groups of the consumer protocol (version 9 on); null otherwise.
    pub member_id: Option<String>,
    /// The member's epoch (version 9 on); -1 when not a member of a consumer-protocol group.
    pub member_epoch: i32,
    /// `None` asks for every topic with committed offsets (version 2+).
    pub topics: Option<Vec<OffsetFetchRequestTopic>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetFetchRequestTopic {
    pub name: String,
    pub partition_indexes: Vec<i32>,
}

impl OffsetFetchRequest {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ApiKey::OffsetFetch.is_flexible(version);
        let groups = if version >= 8 {
            r.array(flexible, "groups", |r| {
                let group_id = r.string(flexible)?;
                let (member_id, member_epoch) =
                    if version >= 9 { (r.nullable_string(flexible)?, r.i32()?) } else { (None, -1) };
                let topics = decode_topics(r, flexible)?;
                r.tagged_fields(flexible)?;
                Ok(OffsetFetchRequestGroup { group_id, member_id, member_epoch, topics })
            })?
        } else {
            let group_id = r.string(flexible)?;
            let topics = decode_topics(r, flexible)?;
            if topics.is_none() && version < 2 {
                return Err(DecodeError::Invalid { what: "topics", reason: "null before version 2" });
            }
            vec![OffsetFetchRequestGroup { group_id, member_id: None, member_epoch: -1, topics }]
        };
        let require_stable = if version >= 7 { r.bool()? } else { false };
        r.tagged_fields(flexible)?;
        Ok(OffsetFetchRequest { groups, require_stable })
    }
}

fn decode_topics(r: &mut Reader, flexible: bool) -> Result<Option<Vec<OffsetFetchRequestTopic>>, DecodeError> {
    r.nullable_array(flexible, "topics", |r| {
        let name = r.string(flexible)?;
        let partition_indexes = r.array(flexible, "partition indexes", Reader::i32)?;
        r.tagged_fields(flexible)?;
        Ok(OffsetFetchRequestTopic { name, partition_indexes })
    })
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetFetchResponse {
    /// Version 3+.
    pub throttle_time_ms: i32,
    /// In the order asked for. Versions 0-7 send the first group only, and must be given exactly
    /// one.
    pub groups: Vec<OffsetFetchResponseGroup>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetFetchResponseGroup {
    /// Not sent below version 8.
    pub group_id: String,
    pub topics: Vec<OffsetFetchResponseTopic>,
    /// Not sent below version 2: as Kafka does, the handler must then report a group error in
    /// every partition asked for instead.
    pub error_code: i16,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetFetchResponseTopic {
    pub name: String,
    pub partitions: Vec<OffsetFetchResponsePartition>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetFetchResponsePartition {
    pub partition_index: i32,
    /// -1 when the group has no offset for the partition.
    pub committed_offset: i64,
    /// Version 5+; -1 when unknown.
    pub committed_leader_epoch: i32,
    pub metadata: Option<String>,
    pub error_code: i16,
}

impl OffsetFetchResponse {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ApiKey::OffsetFetch.is_flexible(version);
        if version >= 3 {
            w.i32(self.throttle_time_ms);
        }
        if version >= 8 {
            w.array_len(flexible, self.groups.len());
            for group in &self.groups {
                w.string(flexible, &group.group_id);
                encode_topics(w, &group.topics, version, flexible);
                w.i16(group.error_code);
                w.no_tagged_fields(flexible);
            }
        } else {
            debug_assert_eq!(self.groups.len(), 1, "OffsetFetch v{version} answers exactly one group");
            let none = OffsetFetchResponseGroup::default();
            let group = self.groups.first().unwrap_or(&none);
            encode_topics(w, &group.topics, version, flexible);
            if version >= 2 {
                w.i16(group.error_code);
            } else {
                debug_assert_eq!(group.error_code, 0, "OffsetFetch v{version} has no group error code");
            }
        }
        w.no_tagged_fields(flexible);
    }
}

fn encode_topics(w: &mut Writer, topics: &[OffsetFetchResponseTopic], version: i16, flexible: bool) {
    w.array_len(flexible, topics.len());
    for topic in topics {
        w.string(flexible, &topic.name);
        w.array_len(flexible, topic.partitions.len());
        for partition in &topic.partitions {
            w.i32(partition.partition_index);
            w.i64(partition.committed_offset);
            if version >= 5 {
                w.i32(partition.committed_leader_epoch);
            }
            w.nullable_string(flexible, partition.metadata.as_deref());
            w.i16(partition.error_code);
            w.no_tagged_fields(flexible);
        }
        w.no_tagged_fields(flexible);
    }
}
