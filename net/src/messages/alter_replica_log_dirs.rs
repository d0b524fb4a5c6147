//! AlterReplicaLogDirs (key 34), versions 1-2: move replicas on a broker to other log
//! directories.

use crate::codec::{DecodeError, Reader, Writer};
use crate::header::ApiKey;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlterReplicaLogDirsRequest {
    pub dirs: Vec<AlterReplicaLogDir>,
}

/// A log directory and the replicas to move into it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlterReplicaLogDir {
    /// The absolute path of the directory.
    pub path: String,
    pub topics: Vec<AlterReplicaLogDirTopic>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlterReplicaLogDirTopic {
    pub name: String,
    /// The partition indexes.
    pub partitions: Vec<i32>,
}

impl AlterReplicaLogDirsRequest {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ApiKey::AlterReplicaLogDirs.is_flexible(version);
        let dirs = r.array(flexible, "dirs", |r| {
            let path = r.string(flexible)?;
            let topics = r.array(flexible, "topics", |r| {
                let name = r.string(flexible)?;
                let partitions = r.array(flexible, "partitions", Reader::i32)?;
                r.tagged_fields(flexible)?;
                Ok(AlterReplicaLogDirTopic { name, partitions })
            })?;
            r.tagged_fields(flexible)?;
            Ok(AlterReplicaLogDir { path, topics })
        })?;
        r.tagged_fields(flexible)?;
        Ok(AlterReplicaLogDirsRequest { dirs })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlterReplicaLogDirsResponse {
    pub throttle_time_ms: i32,
    pub results: Vec<AlterReplicaLogDirTopicResult>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlterReplicaLogDirTopicResult {
    pub topic_name: String,
    pub partitions: Vec<AlterReplicaLogDirPartitionResult>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlterReplicaLogDirPartitionResult {
    pub partition_index: i32,
    pub error_code: i16,
}

impl AlterReplicaLogDirsResponse {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ApiKey::AlterReplicaLogDirs.is_flexible(version);
        w.i32(self.throttle_time_ms);
        w.array_len(flexible, self.results.len());
        for result in &self.results {
            w.string(flexible, &result.topic_name);
            w.array_len(flexible, result.partitions.len());
            for partition in &result.partitions {
                w.i32(partition.partition_index);
                w.i16(partition.error_code);
                w.no_tagged_fields(flexible);
            }
            w.no_tagged_fields(flexible);
        }
        w.no_tagged_fields(flexible);
    }
}
