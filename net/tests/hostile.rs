//! Hostile input for every request decoder: valid requests (from the oracle) truncated at every
//! byte and with every 4-byte window overwritten by `0x7fffffff`. Decoding must return, never
//! panic, and never allocate much more than the request itself, which proves the decoders take
//! every count and length through `Reader`'s bounds (`common::hostile`).

mod common;

use common::hostile::{check_hostile, LargestAllocation};
use common::{request_bytes, versions};
use ringtail_net::header::ApiKey;
use ringtail_net::messages::acls::{CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};
use ringtail_net::messages::alter_configs::AlterConfigsRequest;
use ringtail_net::messages::alter_replica_log_dirs::AlterReplicaLogDirsRequest;
use ringtail_net::messages::create_partitions::CreatePartitionsRequest;
use ringtail_net::messages::create_topics::CreateTopicsRequest;
use ringtail_net::messages::delete_groups::DeleteGroupsRequest;
use ringtail_net::messages::delete_records::DeleteRecordsRequest;
use ringtail_net::messages::delete_topics::DeleteTopicsRequest;
use ringtail_net::messages::describe_client_quotas::DescribeClientQuotasRequest;
use ringtail_net::messages::describe_cluster::DescribeClusterRequest;
use ringtail_net::messages::describe_configs::DescribeConfigsRequest;
use ringtail_net::messages::describe_groups::DescribeGroupsRequest;
use ringtail_net::messages::describe_log_dirs::DescribeLogDirsRequest;
use ringtail_net::messages::describe_producers::DescribeProducersRequest;
use ringtail_net::messages::describe_quorum::DescribeQuorumRequest;
use ringtail_net::messages::describe_topic_partitions::DescribeTopicPartitionsRequest;
use ringtail_net::messages::elect_leaders::ElectLeadersRequest;
use ringtail_net::messages::find_coordinator::FindCoordinatorRequest;
use ringtail_net::messages::heartbeat::HeartbeatRequest;
use ringtail_net::messages::incremental_alter_configs::IncrementalAlterConfigsRequest;
use ringtail_net::messages::init_producer_id::InitProducerIdRequest;
use ringtail_net::messages::join_group::JoinGroupRequest;
use ringtail_net::messages::leave_group::LeaveGroupRequest;
use ringtail_net::messages::list_groups::ListGroupsRequest;
use ringtail_net::messages::list_offsets::ListOffsetsRequest;
use ringtail_net::messages::metadata::MetadataRequest;
use ringtail_net::messages::offset_commit::OffsetCommitRequest;
use ringtail_net::messages::offset_delete::OffsetDeleteRequest;
use ringtail_net::messages::offset_fetch::OffsetFetchRequest;
use ringtail_net::messages::offset_for_leader_epoch::OffsetForLeaderEpochRequest;
use ringtail_net::messages::partition_reassignments::{
    AlterPartitionReassignmentsRequest, ListPartitionReassignmentsRequest,
};
use ringtail_net::messages::sync_group::SyncGroupRequest;
use ringtail_net::{DecodeError, Reader};

#[global_allocator]
static ALLOCATOR: LargestAllocation = LargestAllocation;

type Decode<T> = fn(&mut Reader, i16) -> Result<T, DecodeError>;

fn check<T>(key: ApiKey, decode: Decode<T>) {
    for v in versions(key) {
        check_hostile(&format!("{key:?} v{v}"), &request_bytes(key, v), |bytes| {
            decode(&mut Reader::new(bytes), v).is_err()
        });
    }
}

#[test]
fn metadata() {
    check(ApiKey::Metadata, MetadataRequest::decode);
}

#[test]
fn list_offsets() {
    check(ApiKey::ListOffsets, ListOffsetsRequest::decode);
}

#[test]
fn create_topics() {
    check(ApiKey::CreateTopics, CreateTopicsRequest::decode);
}

#[test]
fn delete_topics() {
    check(ApiKey::DeleteTopics, DeleteTopicsRequest::decode);
}

#[test]
fn create_partitions() {
    check(ApiKey::CreatePartitions, CreatePartitionsRequest::decode);
}

#[test]
fn describe_configs() {
    check(ApiKey::DescribeConfigs, DescribeConfigsRequest::decode);
}

#[test]
fn describe_cluster() {
    check(ApiKey::DescribeCluster, DescribeClusterRequest::decode);
}

#[test]
fn describe_quorum() {
    check(ApiKey::DescribeQuorum, DescribeQuorumRequest::decode);
}

#[test]
fn find_coordinator() {
    check(ApiKey::FindCoordinator, FindCoordinatorRequest::decode);
}

#[test]
fn join_group() {
    check(ApiKey::JoinGroup, JoinGroupRequest::decode);
}

#[test]
fn sync_group() {
    check(ApiKey::SyncGroup, SyncGroupRequest::decode);
}

#[test]
fn heartbeat() {
    check(ApiKey::Heartbeat, HeartbeatRequest::decode);
}

#[test]
fn init_producer_id() {
    check(ApiKey::InitProducerId, InitProducerIdRequest::decode);
}

#[test]
fn leave_group() {
    check(ApiKey::LeaveGroup, LeaveGroupRequest::decode);
}

#[test]
fn offset_commit() {
    check(ApiKey::OffsetCommit, OffsetCommitRequest::decode);
}

#[test]
fn offset_fetch() {
    check(ApiKey::OffsetFetch, OffsetFetchRequest::decode);
}

#[test]
fn offset_delete() {
    check(ApiKey::OffsetDelete, OffsetDeleteRequest::decode);
}

#[test]
fn list_groups() {
    check(ApiKey::ListGroups, ListGroupsRequest::decode);
}

#[test]
fn describe_groups() {
    check(ApiKey::DescribeGroups, DescribeGroupsRequest::decode);
}

#[test]
fn delete_groups() {
    check(ApiKey::DeleteGroups, DeleteGroupsRequest::decode);
}

#[test]
fn elect_leaders() {
    check(ApiKey::ElectLeaders, ElectLeadersRequest::decode);
}

#[test]
fn alter_partition_reassignments() {
    check(ApiKey::AlterPartitionReassignments, AlterPartitionReassignmentsRequest::decode);
}

#[test]
fn raft_voters() {
    use ringtail_net::messages::raft_voters::*;
    check(ApiKey::AddRaftVoter, AddRaftVoterRequest::decode);
    check(ApiKey::RemoveRaftVoter, RemoveRaftVoterRequest::decode);
}

#[test]
fn consumer_group_protocol() {
    check(
        ApiKey::ConsumerGroupHeartbeat,
        ringtail_net::messages::consumer_group_heartbeat::ConsumerGroupHeartbeatRequest::decode,
    );
    check(
        ApiKey::ConsumerGroupDescribe,
        ringtail_net::messages::consumer_group_describe::ConsumerGroupDescribeRequest::decode,
    );
}

#[test]
fn unregister_broker() {
    check(ApiKey::UnregisterBroker, ringtail_net::messages::unregister_broker::UnregisterBrokerRequest::decode);
}

#[test]
fn list_partition_reassignments() {
    check(ApiKey::ListPartitionReassignments, ListPartitionReassignmentsRequest::decode);
}

#[test]
fn offset_for_leader_epoch() {
    check(ApiKey::OffsetForLeaderEpoch, OffsetForLeaderEpochRequest::decode);
}

#[test]
fn delete_records() {
    check(ApiKey::DeleteRecords, DeleteRecordsRequest::decode);
}

#[test]
fn describe_acls() {
    check(ApiKey::DescribeAcls, DescribeAclsRequest::decode);
}

#[test]
fn create_acls() {
    check(ApiKey::CreateAcls, CreateAclsRequest::decode);
}

#[test]
fn delete_acls() {
    check(ApiKey::DeleteAcls, DeleteAclsRequest::decode);
}

#[test]
fn alter_configs() {
    check(ApiKey::AlterConfigs, AlterConfigsRequest::decode);
}

#[test]
fn incremental_alter_configs() {
    check(ApiKey::IncrementalAlterConfigs, IncrementalAlterConfigsRequest::decode);
}

#[test]
fn alter_replica_log_dirs() {
    check(ApiKey::AlterReplicaLogDirs, AlterReplicaLogDirsRequest::decode);
}

#[test]
fn describe_log_dirs() {
    check(ApiKey::DescribeLogDirs, DescribeLogDirsRequest::decode);
}

#[test]
fn describe_client_quotas() {
    check(ApiKey::DescribeClientQuotas, DescribeClientQuotasRequest::decode);
}

#[test]
fn describe_producers() {
    check(ApiKey::DescribeProducers, DescribeProducersRequest::decode);
}

#[test]
fn describe_topic_partitions() {
    check(ApiKey::DescribeTopicPartitions, DescribeTopicPartitionsRequest::decode);
}
