//! Fetch (key 1), versions 4-18. Responses are encoded as a list of chunks so record bytes go
//! out as the log's `Bytes`, never copied into the response buffer. From version 13 topics are
//! named by id; from version 15 a follower identifies itself in the tagged `ReplicaState`
//! instead of `replica_id`.

use super::leader_hints::{encoded_endpoints, CurrentLeader, NodeEndpoint};
use crate::chunk::Chunk;
use crate::codec::{DecodeError, Reader, Writer};
use crate::header::ApiKey;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchRequest {
    /// -1 for consumers; a follower's broker id. From version 15 it comes from the tagged
    /// `ReplicaState` (-1 when absent).
    pub replica_id: i32,
    /// The follower's broker epoch (`ReplicaState`, version 15 on), -1 otherwise.
    pub replica_epoch: i64,
    /// The tagged `ClusterId` (version 12 on), checked by followers' leaders.
    pub cluster_id: Option<String>,
    pub max_wait_ms: i32,
    pub min_bytes: i32,
    pub max_bytes: i32,
    pub isolation_level: i8,
    pub session_id: i32,
    pub session_epoch: i32,
    pub topics: Vec<FetchTopic>,
    pub forgotten_topics: Vec<ForgottenTopic>,
    pub rack_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchTopic {
    /// Empty from version 13, which names the topic by `topic_id` alone.
    pub name: String,
    /// All zeros below version 13.
    pub topic_id: [u8; 16],
    pub partitions: Vec<FetchPartition>,
}

/// A topic whose partitions leave an incremental fetch session (version 7 on).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForgottenTopic {
    /// Empty from version 13.
    pub name: String,
    /// All zeros below version 13.
    pub topic_id: [u8; 16],
    pub partitions: Vec<i32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchPartition {
    pub partition: i32,
    pub current_leader_epoch: i32,
    pub fetch_offset: i64,
    pub last_fetched_epoch: i32,
    pub log_start_offset: i64,
    pub partition_max_bytes: i32,
}

impl FetchRequest {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ApiKey::Fetch.is_flexible(version);
        let mut req = FetchRequest { replica_id: -1, replica_epoch: -1, session_epoch: -1, ..FetchRequest::default() };
        if version <= 14 {
            req.replica_id = r.i32()?;
        }
        req.max_wait_ms = r.i32()?;
        req.min_bytes = r.i32()?;
        req.max_bytes = r.i32()?;
        req.isolation_level = r.i8()?;
        if version >= 7 {
            req.session_id = r.i32()?;
            req.session_epoch = r.i32()?;
        }
        req.topics = r.array(flexible, "fetch topics", |r| {
            let (name, topic_id) = topic_name_or_id(r, version, flexible)?;
            let partitions = r.array(flexible, "fetch partitions", |r| FetchPartition::decode(r, version, flexible))?;
            r.tagged_fields(flexible)?;
            Ok(FetchTopic { name, topic_id, partitions })
        })?;
        if version >= 7 {
            req.forgotten_topics = r.array(flexible, "forgotten topics", |r| {
                let (name, topic_id) = topic_name_or_id(r, version, flexible)?;
                let partitions = r.array(flexible, "forgotten partitions", |r| r.i32())?;
                r.tagged_fields(flexible)?;
                Ok(ForgottenTopic { name, topic_id, partitions })
            })?;
        }
        if version >= 11 {
            req.rack_id = r.string(flexible)?;
        }
        r.tagged_fields_with(flexible, |tag, r| {
            match tag {
                0 => req.cluster_id = r.nullable_string(true)?,
                // ReplicaState, read from version 15 (older versions carry `replica_id` instead).
                1 if version >= 15 => {
                    req.replica_id = r.i32()?;
                    req.replica_epoch = r.i64()?;
                    r.tagged_fields(true)?;
                }
                _ => {}
            }
            Ok(())
        })?;
        Ok(req)
    }
}

/// A topic's name (up to version 12) or id (from version 13).
fn topic_name_or_id(r: &mut Reader, version: i16, flexible: bool) -> Result<(String, [u8; 16]), DecodeError> {
    if version >= 13 {
        Ok((String::new(), r.uuid()?))
    } else {
        Ok((r.string(flexible)?, [0; 16]))
    }
}

impl FetchPartition {
    fn decode(r: &mut Reader, version: i16, flexible: bool) -> Result<Self, DecodeError> {
        let partition = r.i32()?;
        let current_leader_epoch = if version >= 9 { r.i32()? } else { -1 };
        let fetch_offset = r.i64()?;
        let last_fetched_epoch = if version >= 12 { r.i32()? } else { -1 };
        let log_start_offset = if version >= 5 { r.i64()? } else { -1 };
        let partition_max_bytes = r.i32()?;
        // Tagged ReplicaDirectoryId (version 17, KIP-853) matters only with several log dirs;
        // tagged HighWatermark (version 18) only to KRaft voters fetching the metadata log.
        r.tagged_fields(flexible)?;
        Ok(FetchPartition {
            partition,
            current_leader_epoch,
            fetch_offset,
            last_fetched_epoch,
            log_start_offset,
            partition_max_bytes,
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchResponse {
    pub throttle_time_ms: i32,
    pub error_code: i16,
    pub session_id: i32,
    pub topics: Vec<FetchTopicResponse>,
    /// Tagged, version 16 on (KIP-951): the endpoints of the leaders named in `current_leader`.
    pub node_endpoints: Vec<NodeEndpoint>,
}

/// Where a follower's log diverges from the leader's (tagged, version 12 on): the largest epoch
/// the leader has at or below the follower's last fetched epoch, and that epoch's end offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DivergingEpoch {
    pub epoch: i32,
    pub end_offset: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchTopicResponse {
    /// Written up to version 12.
    pub name: String,
    /// Written from version 13.
    pub topic_id: [u8; 16],
    pub partitions: Vec<FetchPartitionResponse>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPartitionResponse {
    pub partition_index: i32,
    pub error_code: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// Whole record batches, as chunks to send in order (in memory, or file ranges sent
    /// without a copy).
    pub records: Vec<Chunk>,
    /// Tagged (tag 0), version 12 on: for a follower whose log diverges from the leader's.
    pub diverging_epoch: Option<DivergingEpoch>,
    /// Tagged (tag 1), version 12 on (KIP-951): who leads the partition, when this broker
    /// does not.
    pub current_leader: Option<CurrentLeader>,
    /// Version 11 on (KIP-392): the replica the consumer should fetch from next, -1 for none.
    pub preferred_read_replica: i32,
}

impl Default for FetchPartitionResponse {
    fn default() -> Self {
        FetchPartitionResponse {
            partition_index: 0,
            error_code: 0,
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            records: Vec::new(),
            diverging_epoch: None,
            current_leader: None,
            preferred_read_replica: -1,
        }
    }
}

impl FetchResponse {
    /// Encodes the body after `w`'s current contents (the response header) and returns the
    /// chunks of the whole response in order: encoded fields interleaved with record bytes.
    pub fn encode_chunks(&self, mut w: Writer, version: i16) -> Vec<Chunk> {
        let flexible = ApiKey::Fetch.is_flexible(version);
        let mut chunks = Vec::new();
        w.i32(self.throttle_time_ms);
        if version >= 7 {
            w.i16(self.error_code);
            w.i32(self.session_id);
        }
        w.array_len(flexible, self.topics.len());
        for t in &self.topics {
            if version <= 12 {
                w.string(flexible, &t.name);
            } else {
                w.uuid(&t.topic_id);
            }
            w.array_len(flexible, t.partitions.len());
            for p in &t.partitions {
                w.i32(p.partition_index);
                w.i16(p.error_code);
                w.i64(p.high_watermark);
                w.i64(p.last_stable_offset);
                if version >= 5 {
                    w.i64(p.log_start_offset);
                }
                // No aborted transactions: transactions are not supported yet.
                w.nullable_array_len(flexible, Some(0));
                if version >= 11 {
                    w.i32(p.preferred_read_replica);
                }
                let length: usize = p.records.iter().map(Chunk::len).sum();
                w.bytes_length(flexible, Some(length));
                if length > 0 {
                    chunks.push(Chunk::Mem(w.buf.split().freeze()));
                    chunks.extend(p.records.iter().filter(|c| !c.is_empty()).cloned());
                }
                p.encode_tagged_fields(&mut w, flexible);
            }
            w.no_tagged_fields(flexible);
        }
        if version >= 16 && !self.node_endpoints.is_empty() {
            w.tagged_fields(&[(0, encoded_endpoints(&self.node_endpoints))]);
        } else {
            w.no_tagged_fields(flexible);
        }
        chunks.push(Chunk::Mem(w.buf.split().freeze()));
        chunks
    }
}

impl FetchPartitionResponse {
    /// Tags 0 (DivergingEpoch) and 1 (CurrentLeader), each only when present.
    fn encode_tagged_fields(&self, w: &mut Writer, flexible: bool) {
        if !flexible {
            return;
        }
        let mut fields = Vec::new();
        if let Some(d) = self.diverging_epoch {
            let mut v = Writer::new();
            v.i32(d.epoch);
            v.i64(d.end_offset);
            v.no_tagged_fields(true);
            fields.push((0, v.buf.freeze()));
        }
        if let Some(leader) = self.current_leader {
            fields.push((1, leader.encoded()));
        }
        w.tagged_fields(&fields);
    }
}
