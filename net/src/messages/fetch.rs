//! Fetch (key 1), versions 4-12. Responses are encoded as a list of chunks so record bytes go
//! out as the log's `Bytes`, never copied into the response buffer.

use bytes::Bytes;

use crate::codec::{DecodeError, Reader, Writer};
use crate::header::ApiKey;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchRequest {
    pub replica_id: i32,
    pub max_wait_ms: i32,
    pub min_bytes: i32,
    pub max_bytes: i32,
    pub isolation_level: i8,
    pub session_id: i32,
    pub session_epoch: i32,
    pub topics: Vec<FetchTopic>,
    pub forgotten_topics: Vec<(String, Vec<i32>)>,
    pub rack_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchTopic {
    pub name: String,
    pub partitions: Vec<FetchPartition>,
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
        let mut req = FetchRequest {
            replica_id: r.i32()?,
            max_wait_ms: r.i32()?,
            min_bytes: r.i32()?,
            max_bytes: r.i32()?,
            isolation_level: r.i8()?,
            session_epoch: -1,
            ..FetchRequest::default()
        };
        if version >= 7 {
            req.session_id = r.i32()?;
            req.session_epoch = r.i32()?;
        }
        req.topics = r.array(flexible, "fetch topics", |r| {
            let name = r.string(flexible)?;
            let partitions = r.array(flexible, "fetch partitions", |r| {
                let partition = r.i32()?;
                let current_leader_epoch = if version >= 9 { r.i32()? } else { -1 };
                let fetch_offset = r.i64()?;
                let last_fetched_epoch = if version >= 12 { r.i32()? } else { -1 };
                let log_start_offset = if version >= 5 { r.i64()? } else { -1 };
                let partition_max_bytes = r.i32()?;
                r.tagged_fields(flexible)?;
                Ok(FetchPartition {
                    partition,
                    current_leader_epoch,
                    fetch_offset,
                    last_fetched_epoch,
                    log_start_offset,
                    partition_max_bytes,
                })
            })?;
            r.tagged_fields(flexible)?;
            Ok(FetchTopic { name, partitions })
        })?;
        if version >= 7 {
            req.forgotten_topics = r.array(flexible, "forgotten topics", |r| {
                let name = r.string(flexible)?;
                let partitions = r.array(flexible, "forgotten partitions", |r| r.i32())?;
                r.tagged_fields(flexible)?;
                Ok((name, partitions))
            })?;
        }
        if version >= 11 {
            req.rack_id = r.string(flexible)?;
        }
        r.tagged_fields(flexible)?;
        Ok(req)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchResponse {
    pub throttle_time_ms: i32,
    pub error_code: i16,
    pub session_id: i32,
    pub topics: Vec<FetchTopicResponse>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchTopicResponse {
    pub name: String,
    pub partitions: Vec<FetchPartitionResponse>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPartitionResponse {
    pub partition_index: i32,
    pub error_code: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// Whole record batches, as chunks to send in order.
    pub records: Vec<Bytes>,
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
        }
    }
}

impl FetchResponse {
    /// Encodes the body after `w`'s current contents (the response header) and returns the
    /// chunks of the whole response in order: encoded fields interleaved with record bytes.
    pub fn encode_chunks(&self, mut w: Writer, version: i16) -> Vec<Bytes> {
        let flexible = ApiKey::Fetch.is_flexible(version);
        let mut chunks = Vec::new();
        w.i32(self.throttle_time_ms);
        if version >= 7 {
            w.i16(self.error_code);
            w.i32(self.session_id);
        }
        w.array_len(flexible, self.topics.len());
        for t in &self.topics {
            w.string(flexible, &t.name);
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
                    w.i32(-1); // preferred_read_replica
                }
                let length: usize = p.records.iter().map(Bytes::len).sum();
                w.bytes_length(flexible, Some(length));
                if length > 0 {
                    chunks.push(w.buf.split().freeze());
                    chunks.extend(p.records.iter().filter(|c| !c.is_empty()).cloned());
                }
                w.no_tagged_fields(flexible);
            }
            w.no_tagged_fields(flexible);
        }
        w.no_tagged_fields(flexible);
        chunks.push(w.buf.split().freeze());
        chunks
    }
}
