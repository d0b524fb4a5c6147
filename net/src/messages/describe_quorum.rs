//! DescribeQuorum (key 55), versions 0-2: the controller quorum's leader, epoch, high
//! watermark and each voter's and observer's progress (KIP-595, KIP-836, KIP-853's nodes).
//! Every version is flexible.

use crate::codec::{DecodeError, Reader, Writer};
use crate::header::ApiKey;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribeQuorumRequest {
    /// (topic, partition indexes): Kafka's one is `__cluster_metadata` partition 0.
    pub topics: Vec<(String, Vec<i32>)>,
}

impl DescribeQuorumRequest {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ApiKey::DescribeQuorum.is_flexible(version);
        let topics = r.array(flexible, "topics", |r| {
            let name = r.string(flexible)?;
            let partitions = r.array(flexible, "partitions", |r| {
                let index = r.i32()?;
                r.tagged_fields(flexible)?;
                Ok(index)
            })?;
            r.tagged_fields(flexible)?;
            Ok((name, partitions))
        })?;
        r.tagged_fields(flexible)?;
        Ok(DescribeQuorumRequest { topics })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribeQuorumResponse {
    pub error_code: i16,
    /// Sent from version 2.
    pub error_message: Option<String>,
    pub topics: Vec<QuorumTopic>,
    /// Sent from version 2: where each voter is reached.
    pub nodes: Vec<QuorumNode>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuorumTopic {
    pub topic_name: String,
    pub partitions: Vec<QuorumPartition>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuorumPartition {
    pub partition_index: i32,
    pub error_code: i16,
    /// Sent from version 2.
    pub error_message: Option<String>,
    pub leader_id: i32,
    pub leader_epoch: i32,
    pub high_watermark: i64,
    pub current_voters: Vec<ReplicaState>,
    pub observers: Vec<ReplicaState>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicaState {
    pub replica_id: i32,
    /// Sent from version 2.
    pub replica_directory_id: [u8; 16],
    pub log_end_offset: i64,
    /// Sent from version 1; -1 when unknown.
    pub last_fetch_timestamp: i64,
    /// Sent from version 1; -1 when unknown.
    pub last_caught_up_timestamp: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuorumNode {
    pub node_id: i32,
    /// (listener name, host, port).
    pub listeners: Vec<(String, String, u16)>,
}

impl DescribeQuorumResponse {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ApiKey::DescribeQuorum.is_flexible(version);
        w.i16(self.error_code);
        if version >= 2 {
            w.nullable_string(flexible, self.error_message.as_deref());
        }
        w.array_len(flexible, self.topics.len());
        for t in &self.topics {
            w.string(flexible, &t.topic_name);
            w.array_len(flexible, t.partitions.len());
            for p in &t.partitions {
                w.i32(p.partition_index);
                w.i16(p.error_code);
                if version >= 2 {
                    w.nullable_string(flexible, p.error_message.as_deref());
                }
                w.i32(p.leader_id);
                w.i32(p.leader_epoch);
                w.i64(p.high_watermark);
                for replicas in [&p.current_voters, &p.observers] {
                    w.array_len(flexible, replicas.len());
                    for r in replicas {
                        w.i32(r.replica_id);
                        if version >= 2 {
                            w.uuid(&r.replica_directory_id);
                        }
                        w.i64(r.log_end_offset);
                        if version >= 1 {
                            w.i64(r.last_fetch_timestamp);
                            w.i64(r.last_caught_up_timestamp);
                        }
                        w.no_tagged_fields(flexible);
                    }
                }
                w.no_tagged_fields(flexible);
            }
            w.no_tagged_fields(flexible);
        }
        if version >= 2 {
            w.array_len(flexible, self.nodes.len());
            for n in &self.nodes {
                w.i32(n.node_id);
                w.array_len(flexible, n.listeners.len());
                for (name, host, port) in &n.listeners {
                    w.string(flexible, name);
                    w.string(flexible, host);
                    w.i16(*port as i16);
                    w.no_tagged_fields(flexible);
                }
                w.no_tagged_fields(flexible);
            }
        }
        w.no_tagged_fields(flexible);
    }
}
