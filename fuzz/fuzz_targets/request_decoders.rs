//! Fuzz target for every request decoder of `ringtail-net`: whatever the bytes, a decoder
//! returns a value or a `DecodeError`; it never panics, and (with the bounded reader) never
//! allocates beyond what the frame can hold.
//!
//! Input layout: byte 0 picks the API (an index into the supported APIs), byte 1 the version
//! (modulo the API's version range), and the rest is the request body after the header.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use ringtail_net::header::ApiKey;
use ringtail_net::messages::*;
use ringtail_net::Reader;

fuzz_target!(|data: &[u8]| {
    let Some((&[api, version], body)) = data.split_first_chunk::<2>() else { return };
    let apis: Vec<(ApiKey, i16, i16)> = ApiKey::all().collect();
    let (key, lo, hi) = apis[usize::from(api) % apis.len()];
    let version = lo + i16::from(version) % (hi - lo + 1);
    let mut r = Reader::new(Bytes::copy_from_slice(body));
    let r = &mut r;
    let _ = match key {
        ApiKey::Produce => produce::ProduceRequest::decode(r, version).map(drop),
        ApiKey::Fetch => fetch::FetchRequest::decode(r, version).map(drop),
        ApiKey::ListOffsets => list_offsets::ListOffsetsRequest::decode(r, version).map(drop),
        ApiKey::Metadata => metadata::MetadataRequest::decode(r, version).map(drop),
        ApiKey::OffsetCommit => offset_commit::OffsetCommitRequest::decode(r, version).map(drop),
        ApiKey::OffsetFetch => offset_fetch::OffsetFetchRequest::decode(r, version).map(drop),
        ApiKey::FindCoordinator => find_coordinator::FindCoordinatorRequest::decode(r, version).map(drop),
        ApiKey::JoinGroup => join_group::JoinGroupRequest::decode(r, version).map(drop),
        ApiKey::Heartbeat => heartbeat::HeartbeatRequest::decode(r, version).map(drop),
        ApiKey::LeaveGroup => leave_group::LeaveGroupRequest::decode(r, version).map(drop),
        ApiKey::SyncGroup => sync_group::SyncGroupRequest::decode(r, version).map(drop),
        ApiKey::DescribeGroups => describe_groups::DescribeGroupsRequest::decode(r, version).map(drop),
        ApiKey::ListGroups => list_groups::ListGroupsRequest::decode(r, version).map(drop),
        ApiKey::ApiVersions => api_versions::ApiVersionsRequest::decode(r, version).map(drop),
        ApiKey::CreateTopics => create_topics::CreateTopicsRequest::decode(r, version).map(drop),
        ApiKey::DeleteTopics => delete_topics::DeleteTopicsRequest::decode(r, version).map(drop),
        ApiKey::DescribeConfigs => describe_configs::DescribeConfigsRequest::decode(r, version).map(drop),
        ApiKey::CreatePartitions => create_partitions::CreatePartitionsRequest::decode(r, version).map(drop),
        ApiKey::DeleteGroups => delete_groups::DeleteGroupsRequest::decode(r, version).map(drop),
        ApiKey::OffsetDelete => offset_delete::OffsetDeleteRequest::decode(r, version).map(drop),
        ApiKey::DescribeCluster => describe_cluster::DescribeClusterRequest::decode(r, version).map(drop),
        ApiKey::DescribeQuorum => describe_quorum::DescribeQuorumRequest::decode(r, version).map(drop),
        ApiKey::InitProducerId => init_producer_id::InitProducerIdRequest::decode(r, version).map(drop),
        ApiKey::DeleteRecords => delete_records::DeleteRecordsRequest::decode(r, version).map(drop),
        ApiKey::DescribeAcls => acls::DescribeAclsRequest::decode(r, version).map(drop),
        ApiKey::CreateAcls => acls::CreateAclsRequest::decode(r, version).map(drop),
        ApiKey::DeleteAcls => acls::DeleteAclsRequest::decode(r, version).map(drop),
        ApiKey::AlterConfigs => alter_configs::AlterConfigsRequest::decode(r, version).map(drop),
        ApiKey::AlterReplicaLogDirs => alter_replica_log_dirs::AlterReplicaLogDirsRequest::decode(r, version).map(drop),
        ApiKey::DescribeLogDirs => describe_log_dirs::DescribeLogDirsRequest::decode(r, version).map(drop),
        ApiKey::IncrementalAlterConfigs => {
            incremental_alter_configs::IncrementalAlterConfigsRequest::decode(r, version).map(drop)
        }
        ApiKey::DescribeClientQuotas => {
            describe_client_quotas::DescribeClientQuotasRequest::decode(r, version).map(drop)
        }
        ApiKey::DescribeProducers => describe_producers::DescribeProducersRequest::decode(r, version).map(drop),
        ApiKey::DescribeTopicPartitions => {
            describe_topic_partitions::DescribeTopicPartitionsRequest::decode(r, version).map(drop)
        }
        ApiKey::ElectLeaders => elect_leaders::ElectLeadersRequest::decode(r, version).map(drop),
        ApiKey::OffsetForLeaderEpoch => {
            offset_for_leader_epoch::OffsetForLeaderEpochRequest::decode(r, version).map(drop)
        }
        ApiKey::AlterPartitionReassignments => {
            partition_reassignments::AlterPartitionReassignmentsRequest::decode(r, version).map(drop)
        }
        ApiKey::ListPartitionReassignments => {
            partition_reassignments::ListPartitionReassignmentsRequest::decode(r, version).map(drop)
        }
        ApiKey::UnregisterBroker => unregister_broker::UnregisterBrokerRequest::decode(r, version).map(drop),
        ApiKey::ConsumerGroupHeartbeat => {
            consumer_group_heartbeat::ConsumerGroupHeartbeatRequest::decode(r, version).map(drop)
        }
        ApiKey::ConsumerGroupDescribe => {
            consumer_group_describe::ConsumerGroupDescribeRequest::decode(r, version).map(drop)
        }
        ApiKey::AddRaftVoter => raft_voters::AddRaftVoterRequest::decode(r, version).map(drop),
        ApiKey::RemoveRaftVoter => raft_voters::RemoveRaftVoterRequest::decode(r, version).map(drop),
    };
});
