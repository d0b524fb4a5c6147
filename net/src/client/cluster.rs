//! DescribeCluster (key 60) and DescribeQuorum (key 55), versions 0-2, from the client's side:
//! the brokers (fenced ones too, from version 2) and the controller quorum's leader, epoch and
//! replicas, for `ringtail cluster status`.

use super::{client_request, ClientApi};
use crate::codec::{DecodeError, Reader, Writer};
pub use crate::messages::describe_cluster::{DescribeClusterBroker, DescribeClusterRequest, DescribeClusterResponse};
pub use crate::messages::describe_quorum::{
    DescribeQuorumRequest, DescribeQuorumResponse, QuorumNode, QuorumPartition, QuorumTopic, ReplicaState,
};

client_request!(DescribeClusterRequest, ClientApi::DescribeCluster, DescribeClusterResponse);
client_request!(DescribeQuorumRequest, ClientApi::DescribeQuorum, DescribeQuorumResponse);

impl DescribeClusterRequest {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ClientApi::DescribeCluster.is_flexible(version);
        w.bool(self.include_cluster_authorized_operations);
        if version >= 1 {
            w.i8(self.endpoint_type);
        }
        if version >= 2 {
            w.bool(self.include_fenced_brokers);
        }
        w.no_tagged_fields(flexible);
    }
}

impl DescribeClusterResponse {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ClientApi::DescribeCluster.is_flexible(version);
        let throttle_time_ms = r.i32()?;
        let error_code = r.i16()?;
        let error_message = r.nullable_string(flexible)?;
        let endpoint_type = if version >= 1 { r.i8()? } else { 1 };
        let cluster_id = r.string(flexible)?;
        let controller_id = r.i32()?;
        let brokers = r.array(flexible, "brokers", |r| {
            let broker_id = r.i32()?;
            let host = r.string(flexible)?;
            let port = r.i32()?;
            let rack = r.nullable_string(flexible)?;
            let is_fenced = if version >= 2 { r.bool()? } else { false };
            r.tagged_fields(flexible)?;
            Ok(DescribeClusterBroker { broker_id, host, port, rack, is_fenced })
        })?;
        let cluster_authorized_operations = r.i32()?;
        r.tagged_fields(flexible)?;
        Ok(DescribeClusterResponse {
            throttle_time_ms,
            error_code,
            error_message,
            endpoint_type,
            cluster_id,
            controller_id,
            brokers,
            cluster_authorized_operations,
        })
    }
}

impl DescribeQuorumRequest {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ClientApi::DescribeQuorum.is_flexible(version);
        w.array_len(flexible, self.topics.len());
        for (name, partitions) in &self.topics {
            w.string(flexible, name);
            w.array_len(flexible, partitions.len());
            for p in partitions {
                w.i32(*p);
                w.no_tagged_fields(flexible);
            }
            w.no_tagged_fields(flexible);
        }
        w.no_tagged_fields(flexible);
    }
}

fn replica(r: &mut Reader, version: i16, flexible: bool) -> Result<ReplicaState, DecodeError> {
    let replica_id = r.i32()?;
    let replica_directory_id = if version >= 2 { r.uuid()? } else { [0; 16] };
    let log_end_offset = r.i64()?;
    let (last_fetch_timestamp, last_caught_up_timestamp) = if version >= 1 { (r.i64()?, r.i64()?) } else { (-1, -1) };
    r.tagged_fields(flexible)?;
    Ok(ReplicaState {
        replica_id,
        replica_directory_id,
        log_end_offset,
        last_fetch_timestamp,
        last_caught_up_timestamp,
    })
}

impl DescribeQuorumResponse {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ClientApi::DescribeQuorum.is_flexible(version);
        let error_code = r.i16()?;
        let error_message = if version >= 2 { r.nullable_string(flexible)? } else { None };
        let topics = r.array(flexible, "topics", |r| {
            let topic_name = r.string(flexible)?;
            let partitions = r.array(flexible, "partitions", |r| {
                let partition_index = r.i32()?;
                let error_code = r.i16()?;
                let error_message = if version >= 2 { r.nullable_string(flexible)? } else { None };
                let leader_id = r.i32()?;
                let leader_epoch = r.i32()?;
                let high_watermark = r.i64()?;
                let current_voters = r.array(flexible, "voters", |r| replica(r, version, flexible))?;
                let observers = r.array(flexible, "observers", |r| replica(r, version, flexible))?;
                r.tagged_fields(flexible)?;
                Ok(QuorumPartition {
                    partition_index,
                    error_code,
                    error_message,
                    leader_id,
                    leader_epoch,
                    high_watermark,
                    current_voters,
                    observers,
                })
            })?;
            r.tagged_fields(flexible)?;
            Ok(QuorumTopic { topic_name, partitions })
        })?;
        let nodes = if version >= 2 {
            r.array(flexible, "nodes", |r| {
                let node_id = r.i32()?;
                let listeners =
                    r.array(flexible, "listeners", |r| crate::messages::raft_voters::listener(r, flexible))?;
                r.tagged_fields(flexible)?;
                Ok(QuorumNode { node_id, listeners })
            })?
        } else {
            Vec::new()
        };
        r.tagged_fields(flexible)?;
        Ok(DescribeQuorumResponse { error_code, error_message, topics, nodes })
    }
}
