//! Hostile input for every response decoder of the client half: valid responses (from the
//! oracle, with unknown tagged fields) truncated at every byte and with every 4-byte window
//! overwritten by `0x7fffffff`. Decoding must return, never panic, and never allocate much more
//! than the response itself (`common::hostile`): a broker, or whatever answers in its place,
//! cannot make a client allocate what the frame does not hold.

mod common;

use common::client::{client_response_bytes, client_versions, consumer_protocol_assignment_bytes};
use common::hostile::{check_hostile, LargestAllocation};
use ringtail_net::client::consumer_protocol::ConsumerProtocolAssignment;
use ringtail_net::client::fetch::FetchRequest;
use ringtail_net::client::groups::{
    DescribeGroupsRequest, FindCoordinatorRequest, ListGroupsRequest, OffsetFetchRequest,
};
use ringtail_net::client::{
    api_versions, create_topics, init_producer_id, list_offsets, metadata, offset_for_leader_epoch, produce, ClientApi,
    ClientRequest,
};
use ringtail_net::Reader;

#[global_allocator]
static ALLOCATOR: LargestAllocation = LargestAllocation;

/// Every version of the response to `Q`.
fn check<Q: ClientRequest>() {
    let api = Q::API;
    for v in client_versions(api) {
        check_hostile(&format!("{api:?} response v{v}"), &client_response_bytes(api, v), |bytes| {
            Q::decode_response(&mut Reader::new(bytes), v).is_err()
        });
    }
}

#[test]
fn every_api_is_covered() {
    // One test per API below; a new API in the client's table needs one here too.
    assert_eq!(ClientApi::all().count(), 21);
}

#[test]
fn describe_cluster() {
    check::<ringtail_net::client::cluster::DescribeClusterRequest>();
}

#[test]
fn cluster_operations() {
    use ringtail_net::client::cluster_ops::*;
    check::<AlterPartitionReassignmentsRequest>();
    check::<ListPartitionReassignmentsRequest>();
    check::<ElectLeadersRequest>();
    check::<UnregisterBrokerRequest>();
    check::<AddRaftVoterRequest>();
    check::<RemoveRaftVoterRequest>();
}

#[test]
fn describe_quorum() {
    check::<ringtail_net::client::cluster::DescribeQuorumRequest>();
}

#[test]
fn api_versions() {
    check::<api_versions::ApiVersionsRequest>();
}

#[test]
fn metadata() {
    check::<metadata::MetadataRequest>();
}

#[test]
fn list_offsets() {
    check::<list_offsets::ListOffsetsRequest>();
}

#[test]
fn fetch() {
    check::<FetchRequest>();
}

#[test]
fn produce() {
    check::<produce::ProduceRequest>();
}

#[test]
fn create_topics() {
    check::<create_topics::CreateTopicsRequest>();
}

#[test]
fn init_producer_id() {
    check::<init_producer_id::InitProducerIdRequest>();
}

#[test]
fn list_groups() {
    check::<ListGroupsRequest>();
}

#[test]
fn find_coordinator() {
    check::<FindCoordinatorRequest>();
}

#[test]
fn describe_groups() {
    check::<DescribeGroupsRequest>();
}

#[test]
fn offset_fetch() {
    check::<OffsetFetchRequest>();
}

#[test]
fn offset_for_leader_epoch() {
    check::<offset_for_leader_epoch::OffsetForLeaderEpochRequest>();
}

#[test]
fn consumer_protocol_assignment() {
    for v in 0..=3 {
        check_hostile(&format!("consumer protocol assignment v{v}"), &consumer_protocol_assignment_bytes(v), |bytes| {
            ConsumerProtocolAssignment::decode(&mut Reader::new(bytes)).is_err()
        });
    }
}
