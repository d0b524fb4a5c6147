//! ElectLeaders (key 43), versions 0-2: elect the preferred replica (the first of its replicas)
//! as each partition's leader, or (version 1 on) an unclean leader for partitions with none.
//! Flexible from version 2.

use crate::codec::{DecodeError, Reader, Writer};
use crate::header::ApiKey;

/// Kafka's election types.
pub const ELECTION_PREFERRED: i8 = 0;
pub const ELECTION_UNCLEAN: i8 = 1;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ElectLeadersRequest {
    /// Preferred (0) or unclean (1); preferred below version 1, which lacks the field.
    pub election_type: i8,
    /// The partitions by topic; `None` elects for every partition.
    pub topic_partitions: Option<Vec<ElectTopicPartitions>>,
    pub timeout_ms: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ElectTopicPartitions {
    pub topic: String,
    pub partitions: Vec<i32>,
}

impl ElectLeadersRequest {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ApiKey::ElectLeaders.is_flexible(version);
        let election_type = if version >= 1 { r.i8()? } else { ELECTION_PREFERRED };
        let topic_partitions = r.nullable_array(flexible, "topic partitions", |r| {
            let topic = r.string(flexible)?;
            let partitions = r.array(flexible, "partitions", |r| r.i32())?;
            r.tagged_fields(flexible)?;
            Ok(ElectTopicPartitions { topic, partitions })
        })?;
        let timeout_ms = r.i32()?;
        r.tagged_fields(flexible)?;
        Ok(ElectLeadersRequest { election_type, topic_partitions, timeout_ms })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ElectLeadersResponse {
    pub throttle_time_ms: i32,
    /// Version 1 on.
    pub error_code: i16,
    pub replica_election_results: Vec<ReplicaElectionResult>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicaElectionResult {
    pub topic: String,
    pub partition_result: Vec<ElectionPartitionResult>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ElectionPartitionResult {
    pub partition_id: i32,
    pub error_code: i16,
    pub error_message: Option<String>,
}

impl ElectLeadersResponse {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ApiKey::ElectLeaders.is_flexible(version);
        w.i32(self.throttle_time_ms);
        if version >= 1 {
            w.i16(self.error_code);
        }
        w.array_len(flexible, self.replica_election_results.len());
        for topic in &self.replica_election_results {
            w.string(flexible, &topic.topic);
            w.array_len(flexible, topic.partition_result.len());
            for p in &topic.partition_result {
                w.i32(p.partition_id);
                w.i16(p.error_code);
                w.nullable_string(flexible, p.error_message.as_deref());
                w.no_tagged_fields(flexible);
            }
            w.no_tagged_fields(flexible);
        }
        w.no_tagged_fields(flexible);
    }
}
