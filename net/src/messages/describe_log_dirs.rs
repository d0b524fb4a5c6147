//! DescribeLogDirs (key 35), versions 1-4: the log directories of a broker, with the size of
//! each replica in them and (version 4) the space left on their volumes.

use crate::codec::{DecodeError, Reader, Writer};
use crate::header::ApiKey;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribeLogDirsRequest {
    /// The partitions to describe, `None` for every partition.
    pub topics: Option<Vec<DescribableLogDirTopic>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribableLogDirTopic {
    /// The topic name.
    pub topic: String,
    /// The partition indexes.
    pub partitions: Vec<i32>,
}

impl DescribeLogDirsRequest {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ApiKey::DescribeLogDirs.is_flexible(version);
        let topics = r.nullable_array(flexible, "topics", |r| {
            let topic = r.string(flexible)?;
            let partitions = r.array(flexible, "partitions", Reader::i32)?;
            r.tagged_fields(flexible)?;
            Ok(DescribableLogDirTopic { topic, partitions })
        })?;
        r.tagged_fields(flexible)?;
        Ok(DescribeLogDirsRequest { topics })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribeLogDirsResponse {
    pub throttle_time_ms: i32,
    /// Version 3+: an error for the whole request (authorization fails here).
    pub error_code: i16,
    pub results: Vec<DescribeLogDirsResult>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeLogDirsResult {
    pub error_code: i16,
    /// The absolute path of the directory.
    pub log_dir: String,
    pub topics: Vec<DescribeLogDirsTopic>,
    /// Version 4+: the size of the directory's volume in bytes; -1 when not known.
    pub total_bytes: i64,
    /// Version 4+: the bytes of the volume still usable; -1 when not known.
    pub usable_bytes: i64,
}

impl Default for DescribeLogDirsResult {
    fn default() -> Self {
        DescribeLogDirsResult {
            error_code: 0,
            log_dir: String::new(),
            topics: Vec::new(),
            total_bytes: -1,
            usable_bytes: -1,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribeLogDirsTopic {
    pub name: String,
    pub partitions: Vec<DescribeLogDirsPartition>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribeLogDirsPartition {
    pub partition_index: i32,
    /// The bytes of the partition's log segments in this directory.
    pub partition_size: i64,
    /// How far the log end offset is behind the high watermark for the current log, or behind
    /// the current log's end for a future log.
    pub offset_lag: i64,
    /// Whether this is a future log, made by AlterReplicaLogDirs to replace the current one.
    pub is_future_key: bool,
}

impl DescribeLogDirsResponse {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ApiKey::DescribeLogDirs.is_flexible(version);
        w.i32(self.throttle_time_ms);
        if version >= 3 {
            w.i16(self.error_code);
        }
        w.array_len(flexible, self.results.len());
        for result in &self.results {
            result.encode(w, version, flexible);
        }
        w.no_tagged_fields(flexible);
    }
}

impl DescribeLogDirsResult {
    fn encode(&self, w: &mut Writer, version: i16, flexible: bool) {
        w.i16(self.error_code);
        w.string(flexible, &self.log_dir);
        w.array_len(flexible, self.topics.len());
        for topic in &self.topics {
            w.string(flexible, &topic.name);
            w.array_len(flexible, topic.partitions.len());
            for partition in &topic.partitions {
                w.i32(partition.partition_index);
                w.i64(partition.partition_size);
                w.i64(partition.offset_lag);
                w.bool(partition.is_future_key);
                w.no_tagged_fields(flexible);
            }
            w.no_tagged_fields(flexible);
        }
        if version >= 4 {
            w.i64(self.total_bytes);
            w.i64(self.usable_bytes);
        }
        w.no_tagged_fields(flexible);
    }
}
