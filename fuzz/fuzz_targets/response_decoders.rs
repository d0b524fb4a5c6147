//! Fuzz target for every response decoder of `ringtail-net`'s client half: whatever the bytes,
//! a decoder returns a value or a `DecodeError`; it never panics, and (with the bounded reader)
//! never allocates beyond what the frame can hold. A Fetch response's records it accepts are
//! slices of the input, never copies.
//!
//! Input layout: byte 0 picks the decoder (an index into the APIs a client speaks, then the
//! consumer protocol's assignment), byte 1 the version (modulo the API's version range), and the
//! rest is the response body after the header.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use ringtail_net::client::consumer_protocol::ConsumerProtocolAssignment;
use ringtail_net::client::*;
use ringtail_net::Reader;

fuzz_target!(|data: &[u8]| {
    let Some((&[decoder, version], body)) = data.split_first_chunk::<2>() else { return };
    let apis: Vec<ClientApi> = ClientApi::all().collect();
    let body = Bytes::copy_from_slice(body);
    let mut r = Reader::new(body.clone());
    let r = &mut r;
    let Some(&api) = apis.get(usize::from(decoder) % (apis.len() + 1)) else {
        let _ = ConsumerProtocolAssignment::decode(r);
        return;
    };
    let (lo, hi) = api.versions();
    let version = lo + i16::from(version) % (hi - lo + 1);
    let _ = match api {
        ClientApi::Produce => produce::ProduceResponse::decode(r, version).map(drop),
        ClientApi::Fetch => fetch::FetchResponse::decode(r, version).map(|response| {
            let input = body.as_ptr_range();
            for records in response.topics.iter().flat_map(|t| &t.partitions).filter_map(|p| p.records.as_ref()) {
                assert!(records.is_empty() || input.contains(&records.as_ptr()), "records copied out of the frame");
            }
        }),
        ClientApi::ListOffsets => list_offsets::ListOffsetsResponse::decode(r, version).map(drop),
        ClientApi::Metadata => metadata::MetadataResponse::decode(r, version).map(drop),
        ClientApi::OffsetFetch => groups::OffsetFetchResponse::decode(r, version).map(drop),
        ClientApi::FindCoordinator => groups::FindCoordinatorResponse::decode(r, version).map(drop),
        ClientApi::DescribeGroups => groups::DescribeGroupsResponse::decode(r, version).map(drop),
        ClientApi::ListGroups => groups::ListGroupsResponse::decode(r, version).map(drop),
        ClientApi::ApiVersions => api_versions::ApiVersionsResponse::decode(r, version).map(drop),
        ClientApi::CreateTopics => create_topics::CreateTopicsResponse::decode(r, version).map(drop),
        ClientApi::InitProducerId => init_producer_id::InitProducerIdResponse::decode(r, version).map(drop),
        ClientApi::OffsetForLeaderEpoch => {
            offset_for_leader_epoch::OffsetForLeaderEpochResponse::decode(r, version).map(drop)
        }
        ClientApi::DescribeCluster => cluster::DescribeClusterResponse::decode(r, version).map(drop),
        ClientApi::DescribeQuorum => cluster::DescribeQuorumResponse::decode(r, version).map(drop),
        ClientApi::AlterPartitionReassignments => {
            cluster_ops::AlterPartitionReassignmentsResponse::decode(r, version).map(drop)
        }
        ClientApi::ListPartitionReassignments => {
            cluster_ops::ListPartitionReassignmentsResponse::decode(r, version).map(drop)
        }
        ClientApi::ElectLeaders => cluster_ops::ElectLeadersResponse::decode(r, version).map(drop),
        ClientApi::UnregisterBroker => cluster_ops::UnregisterBrokerResponse::decode(r, version).map(drop),
        ClientApi::ConsumerGroupDescribe => groups::ConsumerGroupDescribeResponse::decode(r, version).map(drop),
        ClientApi::AddRaftVoter | ClientApi::RemoveRaftVoter => {
            cluster_ops::RaftVoterResponse::decode(r, version).map(drop)
        }
    };
});
