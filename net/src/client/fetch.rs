//! Fetch (key 1), versions 4-15, from the client's side: consumers (`ringtail-bench`) and
//! followers fetching from their leaders. From version 13 topics are named by id; from version
//! 15 a follower names itself in the tagged `ReplicaState` instead of `replica_id`.
//!
//! The response has types of its own: a client reads each partition's records as one `Bytes`
//! slice of the response frame (never copied), where the server's `messages::fetch` writes
//! chunks, and it reads the aborted transactions the server does not write.

use bytes::Bytes;

use super::{client_request, ClientApi};
use crate::codec::{DecodeError, Reader, Writer};
pub use crate::messages::fetch::{DivergingEpoch, FetchPartition, FetchRequest, FetchTopic, ForgottenTopic};
pub use crate::messages::leader_hints::CurrentLeader;

client_request!(FetchRequest, ClientApi::Fetch, FetchResponse);

impl FetchRequest {
    /// Topics go by `name` below version 13 and by `topic_id` from it. A follower sets
    /// `replica_id` (and, from version 15, `replica_epoch`): below version 15 it is a field of
    /// its own, from version 15 the tagged `ReplicaState`, written when either is not -1.
    /// `cluster_id` (tagged, version 12 on) is written when set.
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ClientApi::Fetch.is_flexible(version);
        if version <= 14 {
            w.i32(self.replica_id);
        }
        w.i32(self.max_wait_ms);
        w.i32(self.min_bytes);
        w.i32(self.max_bytes);
        w.i8(self.isolation_level);
        if version >= 7 {
            w.i32(self.session_id);
            w.i32(self.session_epoch);
        }
        w.array_len(flexible, self.topics.len());
        for topic in &self.topics {
            write_topic_name_or_id(w, &topic.name, &topic.topic_id, version, flexible);
            w.array_len(flexible, topic.partitions.len());
            for partition in &topic.partitions {
                partition.encode(w, version, flexible);
            }
            w.no_tagged_fields(flexible);
        }
        if version >= 7 {
            w.array_len(flexible, self.forgotten_topics.len());
            for topic in &self.forgotten_topics {
                write_topic_name_or_id(w, &topic.name, &topic.topic_id, version, flexible);
                w.i32_array(flexible, &topic.partitions);
                w.no_tagged_fields(flexible);
            }
        }
        if version >= 11 {
            w.string(flexible, &self.rack_id);
        }
        if flexible {
            w.tagged_fields(&self.tagged_fields(version));
        }
    }

    /// Tags 0 (ClusterId) and 1 (ReplicaState, version 15 on), each only when set.
    fn tagged_fields(&self, version: i16) -> Vec<(u32, Bytes)> {
        let mut fields = Vec::new();
        if let Some(cluster_id) = &self.cluster_id {
            let mut v = Writer::new();
            v.nullable_string(true, Some(cluster_id));
            fields.push((0, v.buf.freeze()));
        }
        if version >= 15 && (self.replica_id != -1 || self.replica_epoch != -1) {
            let mut v = Writer::new();
            v.i32(self.replica_id);
            v.i64(self.replica_epoch);
            v.no_tagged_fields(true);
            fields.push((1, v.buf.freeze()));
        }
        fields
    }
}

fn write_topic_name_or_id(w: &mut Writer, name: &str, topic_id: &[u8; 16], version: i16, flexible: bool) {
    if version >= 13 {
        w.uuid(topic_id);
    } else {
        w.string(flexible, name);
    }
}

impl FetchPartition {
    fn encode(&self, w: &mut Writer, version: i16, flexible: bool) {
        w.i32(self.partition);
        if version >= 9 {
            w.i32(self.current_leader_epoch);
        }
        w.i64(self.fetch_offset);
        if version >= 12 {
            w.i32(self.last_fetched_epoch);
        }
        if version >= 5 {
            w.i64(self.log_start_offset);
        }
        w.i32(self.partition_max_bytes);
        w.no_tagged_fields(flexible);
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchResponse {
    pub throttle_time_ms: i32,
    /// A top-level error (version 7 on, for fetch sessions); 0 below.
    pub error_code: i16,
    /// The fetch session's id (version 7 on); 0 below, and without a session.
    pub session_id: i32,
    pub topics: Vec<FetchedTopic>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchedTopic {
    /// Empty from version 13, which names the topic by `topic_id` alone.
    pub name: String,
    /// All zeros below version 13.
    pub topic_id: [u8; 16],
    pub partitions: Vec<FetchedPartition>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedPartition {
    pub partition_index: i32,
    pub error_code: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    /// -1 below version 5.
    pub log_start_offset: i64,
    /// Tagged (tag 0), version 12 on: where a follower's log diverges from the leader's.
    pub diverging_epoch: Option<DivergingEpoch>,
    /// Tagged (tag 1), version 12 on (KIP-951): who leads the partition, when the broker asked
    /// does not.
    pub current_leader: Option<CurrentLeader>,
    /// Transactions aborted within the records returned (for `read_committed` consumers).
    pub aborted_transactions: Option<Vec<AbortedTransaction>>,
    /// The replica to fetch from instead (version 11 on, KIP-392); -1 for this one.
    pub preferred_read_replica: i32,
    /// Whole record batches (the last one may be cut short), a slice of the response frame.
    pub records: Option<Bytes>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTransaction {
    pub producer_id: i64,
    pub first_offset: i64,
}

impl Default for FetchedPartition {
    fn default() -> Self {
        FetchedPartition {
            partition_index: 0,
            error_code: 0,
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            diverging_epoch: None,
            current_leader: None,
            aborted_transactions: None,
            preferred_read_replica: -1,
            records: None,
        }
    }
}

impl FetchResponse {
    /// Tagged fields left unread: the response's NodeEndpoints (version 16 on, not spoken) and
    /// a partition's SnapshotId (KRaft's metadata log only).
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ClientApi::Fetch.is_flexible(version);
        let throttle_time_ms = r.i32()?;
        let (error_code, session_id) = if version >= 7 { (r.i16()?, r.i32()?) } else { (0, 0) };
        let topics = r.array(flexible, "fetch topics", |r| {
            let (name, topic_id) =
                if version >= 13 { (String::new(), r.uuid()?) } else { (r.string(flexible)?, [0; 16]) };
            let partitions =
                r.array(flexible, "fetch partitions", |r| FetchedPartition::decode(r, version, flexible))?;
            r.tagged_fields(flexible)?;
            Ok(FetchedTopic { name, topic_id, partitions })
        })?;
        r.tagged_fields(flexible)?;
        Ok(FetchResponse { throttle_time_ms, error_code, session_id, topics })
    }
}

impl FetchedPartition {
    fn decode(r: &mut Reader, version: i16, flexible: bool) -> Result<Self, DecodeError> {
        let mut p = FetchedPartition {
            partition_index: r.i32()?,
            error_code: r.i16()?,
            high_watermark: r.i64()?,
            last_stable_offset: r.i64()?,
            ..FetchedPartition::default()
        };
        if version >= 5 {
            p.log_start_offset = r.i64()?;
        }
        p.aborted_transactions = r.nullable_array(flexible, "aborted transactions", |r| {
            let producer_id = r.i64()?;
            let first_offset = r.i64()?;
            r.tagged_fields(flexible)?;
            Ok(AbortedTransaction { producer_id, first_offset })
        })?;
        if version >= 11 {
            p.preferred_read_replica = r.i32()?;
        }
        p.records = r.nullable_bytes(flexible)?;
        r.tagged_fields_with(flexible, |tag, r| {
            match tag {
                0 => p.diverging_epoch = Some(DivergingEpoch::decode(r)?),
                1 => p.current_leader = Some(CurrentLeader::decode(r)?),
                _ => {}
            }
            Ok(())
        })?;
        Ok(p)
    }
}
