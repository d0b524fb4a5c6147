//! The cluster operations' APIs from the client's side, for `ringtail cluster`:
//! AlterPartitionReassignments (key 45, v0-1), ListPartitionReassignments (key 46, v0),
//! ElectLeaders (key 43, v0-2), UnregisterBroker (key 64, v0), AddRaftVoter (key 80, v0) and
//! RemoveRaftVoter (key 81, v0).

use super::{client_request, ClientApi};
use crate::codec::{DecodeError, Reader, Writer};
pub use crate::messages::elect_leaders::{
    ElectLeadersRequest, ElectLeadersResponse, ElectTopicPartitions, ElectionPartitionResult, ReplicaElectionResult,
    ELECTION_PREFERRED, ELECTION_UNCLEAN,
};
pub use crate::messages::partition_reassignments::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ListPartitionReassignmentsRequest,
    ListPartitionReassignmentsResponse, ListPartitionReassignmentsTopic, OngoingPartitionReassignment,
    OngoingTopicReassignment, ReassignablePartition, ReassignablePartitionResponse, ReassignableTopic,
    ReassignableTopicResponse,
};
pub use crate::messages::raft_voters::{AddRaftVoterRequest, RaftVoterResponse, RemoveRaftVoterRequest};
pub use crate::messages::unregister_broker::{UnregisterBrokerRequest, UnregisterBrokerResponse};

client_request!(
    AlterPartitionReassignmentsRequest,
    ClientApi::AlterPartitionReassignments,
    AlterPartitionReassignmentsResponse
);
client_request!(
    ListPartitionReassignmentsRequest,
    ClientApi::ListPartitionReassignments,
    ListPartitionReassignmentsResponse
);
client_request!(ElectLeadersRequest, ClientApi::ElectLeaders, ElectLeadersResponse);
client_request!(UnregisterBrokerRequest, ClientApi::UnregisterBroker, UnregisterBrokerResponse);
client_request!(AddRaftVoterRequest, ClientApi::AddRaftVoter, RaftVoterResponse);
client_request!(RemoveRaftVoterRequest, ClientApi::RemoveRaftVoter, RaftVoterResponse);

impl AlterPartitionReassignmentsRequest {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ClientApi::AlterPartitionReassignments.is_flexible(version);
        w.i32(self.timeout_ms);
        if version >= 1 {
            w.bool(self.allow_replication_factor_change);
        }
        w.array_len(flexible, self.topics.len());
        for t in &self.topics {
            w.string(flexible, &t.name);
            w.array_len(flexible, t.partitions.len());
            for p in &t.partitions {
                w.i32(p.partition_index);
                match &p.replicas {
                    Some(replicas) => w.i32_array(flexible, replicas),
                    None => w.nullable_array_len(flexible, None),
                }
                w.no_tagged_fields(flexible);
            }
            w.no_tagged_fields(flexible);
        }
        w.no_tagged_fields(flexible);
    }
}

impl AlterPartitionReassignmentsResponse {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ClientApi::AlterPartitionReassignments.is_flexible(version);
        let throttle_time_ms = r.i32()?;
        let allow_replication_factor_change = if version >= 1 { r.bool()? } else { true };
        let error_code = r.i16()?;
        let error_message = r.nullable_string(flexible)?;
        let responses = r.array(flexible, "responses", |r| {
            let name = r.string(flexible)?;
            let partitions = r.array(flexible, "partitions", |r| {
                let partition_index = r.i32()?;
                let error_code = r.i16()?;
                let error_message = r.nullable_string(flexible)?;
                r.tagged_fields(flexible)?;
                Ok(ReassignablePartitionResponse { partition_index, error_code, error_message })
            })?;
            r.tagged_fields(flexible)?;
            Ok(ReassignableTopicResponse { name, partitions })
        })?;
        r.tagged_fields(flexible)?;
        Ok(AlterPartitionReassignmentsResponse {
            throttle_time_ms,
            allow_replication_factor_change,
            error_code,
            error_message,
            responses,
        })
    }
}

impl ListPartitionReassignmentsRequest {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ClientApi::ListPartitionReassignments.is_flexible(version);
        w.i32(self.timeout_ms);
        match &self.topics {
            None => w.nullable_array_len(flexible, None),
            Some(topics) => {
                w.array_len(flexible, topics.len());
                for t in topics {
                    w.string(flexible, &t.name);
                    w.i32_array(flexible, &t.partition_indexes);
                    w.no_tagged_fields(flexible);
                }
            }
        }
        w.no_tagged_fields(flexible);
    }
}

impl ListPartitionReassignmentsResponse {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ClientApi::ListPartitionReassignments.is_flexible(version);
        let throttle_time_ms = r.i32()?;
        let error_code = r.i16()?;
        let error_message = r.nullable_string(flexible)?;
        let topics = r.array(flexible, "topics", |r| {
            let name = r.string(flexible)?;
            let partitions = r.array(flexible, "partitions", |r| {
                let partition_index = r.i32()?;
                let replicas = r.array(flexible, "replicas", |r| r.i32())?;
                let adding_replicas = r.array(flexible, "adding replicas", |r| r.i32())?;
                let removing_replicas = r.array(flexible, "removing replicas", |r| r.i32())?;
                r.tagged_fields(flexible)?;
                Ok(OngoingPartitionReassignment { partition_index, replicas, adding_replicas, removing_replicas })
            })?;
            r.tagged_fields(flexible)?;
            Ok(OngoingTopicReassignment { name, partitions })
        })?;
        r.tagged_fields(flexible)?;
        Ok(ListPartitionReassignmentsResponse { throttle_time_ms, error_code, error_message, topics })
    }
}

impl ElectLeadersRequest {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ClientApi::ElectLeaders.is_flexible(version);
        if version >= 1 {
            w.i8(self.election_type);
        }
        match &self.topic_partitions {
            None => w.nullable_array_len(flexible, None),
            Some(topics) => {
                w.array_len(flexible, topics.len());
                for t in topics {
                    w.string(flexible, &t.topic);
                    w.i32_array(flexible, &t.partitions);
                    w.no_tagged_fields(flexible);
                }
            }
        }
        w.i32(self.timeout_ms);
        w.no_tagged_fields(flexible);
    }
}

impl ElectLeadersResponse {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ClientApi::ElectLeaders.is_flexible(version);
        let throttle_time_ms = r.i32()?;
        let error_code = if version >= 1 { r.i16()? } else { 0 };
        let replica_election_results = r.array(flexible, "election results", |r| {
            let topic = r.string(flexible)?;
            let partition_result = r.array(flexible, "partitions", |r| {
                let partition_id = r.i32()?;
                let error_code = r.i16()?;
                let error_message = r.nullable_string(flexible)?;
                r.tagged_fields(flexible)?;
                Ok(ElectionPartitionResult { partition_id, error_code, error_message })
            })?;
            r.tagged_fields(flexible)?;
            Ok(ReplicaElectionResult { topic, partition_result })
        })?;
        r.tagged_fields(flexible)?;
        Ok(ElectLeadersResponse { throttle_time_ms, error_code, replica_election_results })
    }
}

impl UnregisterBrokerRequest {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ClientApi::UnregisterBroker.is_flexible(version);
        w.i32(self.broker_id);
        w.no_tagged_fields(flexible);
    }
}

impl UnregisterBrokerResponse {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ClientApi::UnregisterBroker.is_flexible(version);
        let throttle_time_ms = r.i32()?;
        let error_code = r.i16()?;
        let error_message = r.nullable_string(flexible)?;
        r.tagged_fields(flexible)?;
        Ok(UnregisterBrokerResponse { throttle_time_ms, error_code, error_message })
    }
}

impl AddRaftVoterRequest {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ClientApi::AddRaftVoter.is_flexible(version);
        w.nullable_string(flexible, self.cluster_id.as_deref());
        w.i32(self.timeout_ms);
        w.i32(self.voter_id);
        w.uuid(&self.voter_directory_id);
        w.array_len(flexible, self.listeners.len());
        for (name, host, port) in &self.listeners {
            w.string(flexible, name);
            w.string(flexible, host);
            w.i16(*port as i16);
            w.no_tagged_fields(flexible);
        }
        w.no_tagged_fields(flexible);
    }
}

impl RemoveRaftVoterRequest {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ClientApi::RemoveRaftVoter.is_flexible(version);
        w.nullable_string(flexible, self.cluster_id.as_deref());
        w.i32(self.voter_id);
        w.uuid(&self.voter_directory_id);
        w.no_tagged_fields(flexible);
    }
}

impl RaftVoterResponse {
    pub fn decode(r: &mut Reader, _version: i16) -> Result<Self, DecodeError> {
        // Both APIs are flexible from version 0.
        let throttle_time_ms = r.i32()?;
        let error_code = r.i16()?;
        let error_message = r.nullable_string(true)?;
        r.tagged_fields(true)?;
        Ok(RaftVoterResponse { throttle_time_ms, error_code, error_message })
    }
}
