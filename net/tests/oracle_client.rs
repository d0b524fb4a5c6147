//! The client half against Kafka's generated schemas (the `kafka-protocol` crate, test-only),
//! for every version a client speaks: a request we encode is, byte for byte, the oracle's
//! encoding of the same fields, so the oracle reads it to the same fields; a response the oracle
//! encodes with a non-default value in every field the version has, and an unknown tagged field
//! at every level of flexible versions, decodes with our decoder to the same fields. Versions the
//! oracle no longer knows (CreateTopics v0-1) are checked against bytes derived from the next
//! version, as `oracle.rs` does.

mod common;

use bytes::{Bytes, BytesMut};
use common::client::{self as samples, client_versions};
use common::convert::*;
use common::{id, nullable, oracle_decode, oracle_encode, string, topic_name, versions};
use kafka_protocol::messages as kp;
use kafka_protocol::protocol::Encodable;
use ringtail_net::client::api_versions::*;
use ringtail_net::client::consumer_protocol::*;
use ringtail_net::client::create_topics::*;
use ringtail_net::client::fetch::{self, FetchRequest, FetchResponse, FetchedPartition, FetchedTopic};
use ringtail_net::client::groups::*;
use ringtail_net::client::init_producer_id::*;
use ringtail_net::client::leader_hints::{CurrentLeader, DivergingEpoch, NodeEndpoint};
use ringtail_net::client::list_offsets::*;
use ringtail_net::client::metadata::*;
use ringtail_net::client::offset_for_leader_epoch::*;
use ringtail_net::client::produce::*;
use ringtail_net::client::{self, ClientApi, ClientRequest};
use ringtail_net::header::ApiKey;
use ringtail_net::{Reader, Writer};

/// Our encoding of `request` at `v`.
fn encode<Q: ClientRequest>(request: &Q, v: i16) -> Bytes {
    let mut w = Writer::new();
    request.encode_request(&mut w, v);
    w.buf.freeze()
}

/// Checks that we encode `ours` at `v` as `theirs`, the oracle's encoding of the same fields.
fn check_request<Q: ClientRequest>(ours: &Q, v: i16, theirs: Bytes) {
    assert_eq!(encode(ours, v), theirs, "{:?} v{v}: our encoding differs from the oracle's", Q::API);
}

/// Decodes a response to `Q` with our decoder, checking it consumed every byte.
fn decode<Q: ClientRequest>(bytes: Bytes, v: i16) -> Q::Response {
    let mut r = Reader::new(bytes);
    let response = Q::decode_response(&mut r, v).unwrap_or_else(|e| panic!("{:?} v{v}: {e}", Q::API));
    assert_eq!(r.remaining(), 0, "{:?} v{v}: bytes left after our decoder", Q::API);
    response
}

#[test]
fn header_versions_agree_with_the_oracle() {
    for api in ClientApi::all() {
        let key = kp::ApiKey::try_from(api.key()).expect("the oracle knows every API a client speaks");
        for v in client_versions(api) {
            assert_eq!(key.request_header_version(v), if api.is_flexible(v) { 2 } else { 1 }, "{api:?} v{v}");
            let tagged = key.response_header_version(v) == 1;
            assert_eq!(api.response_header_has_tagged_fields(v), tagged, "{api:?} v{v}");
        }
    }
}

#[test]
fn frames() {
    let request = MetadataRequest { topics: None, allow_auto_topic_creation: true, ..MetadataRequest::default() };
    for v in [8, 12] {
        let frame = client::request_frame(&request, v, 41, Some("ringtail-group"));
        let mut body = frame.slice(4..);
        assert_eq!(frame.len() - 4, u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize);
        let header_version = kp::ApiKey::Metadata.request_header_version(v);
        let header: kp::RequestHeader =
            kafka_protocol::protocol::Decodable::decode(&mut body, header_version).expect("oracle reads our header");
        assert_eq!((header.request_api_key, header.request_api_version, header.correlation_id), (3, v, 41));
        assert_eq!(nullable(&header.client_id).as_deref(), Some("ringtail-group"));
        assert_eq!(body, encode(&request, v), "v{v}");

        // A response frame: the oracle's header, then the body.
        let mut frame = BytesMut::new();
        let response_header = kp::ResponseHeader::default()
            .with_correlation_id(41)
            .with_unknown_tagged_field(samples::UNKNOWN_TAG, samples::unknown());
        response_header.encode(&mut frame, kp::ApiKey::Metadata.response_header_version(v)).unwrap();
        frame.extend_from_slice(&oracle_encode(&samples::metadata_response(v), v));
        let (correlation_id, response) = client::decode_response::<MetadataRequest>(frame.freeze(), v).unwrap();
        assert_eq!(correlation_id, 41);
        assert_eq!(response, metadata_response_from(&samples::metadata_response(v)), "v{v}");
    }
}

#[test]
fn api_versions() {
    for v in client_versions(ClientApi::ApiVersions) {
        let req = samples::api_versions_request(v);
        let ours = ApiVersionsRequest {
            client_software_name: Some(string(&req.client_software_name)),
            client_software_version: Some(string(&req.client_software_version)),
        };
        check_request(&ours, v, oracle_encode(&req, v));

        let theirs = samples::api_versions_response(v);
        let expected = ApiVersionsResponse {
            error_code: theirs.error_code,
            api_keys: theirs
                .api_keys
                .iter()
                .map(|k| ApiVersion { api_key: k.api_key, min_version: k.min_version, max_version: k.max_version })
                .collect(),
            throttle_time_ms: theirs.throttle_time_ms,
            supported_features: theirs
                .supported_features
                .iter()
                .map(|f| SupportedFeature {
                    name: string(&f.name),
                    min_version: f.min_version,
                    max_version: f.max_version,
                })
                .collect(),
            finalized_features_epoch: theirs.finalized_features_epoch,
            finalized_features: theirs
                .finalized_features
                .iter()
                .map(|f| FinalizedFeature {
                    name: string(&f.name),
                    max_version_level: f.max_version_level,
                    min_version_level: f.min_version_level,
                })
                .collect(),
        };
        assert_eq!(decode::<ApiVersionsRequest>(oracle_encode(&theirs, v), v), expected, "v{v}");

        // A broker that does not speak `v` answers UNSUPPORTED_VERSION in version 0.
        let refused = samples::api_versions_response(0).with_error_code(35);
        let decoded = decode::<ApiVersionsRequest>(oracle_encode(&refused, 0), v);
        assert_eq!((decoded.error_code, decoded.api_keys.len()), (35, 3), "v{v}");
    }
}

#[test]
fn metadata() {
    for v in client_versions(ClientApi::Metadata) {
        let req = common::metadata_request(v);
        check_request(&metadata_request_from(&req), v, oracle_encode(&req, v));
        // Every topic: an empty array in version 0, a null one later.
        let all = MetadataRequest { topics: None, allow_auto_topic_creation: true, ..MetadataRequest::default() };
        let theirs = kp::MetadataRequest::default().with_topics(if v == 0 { Some(vec![]) } else { None });
        check_request(&all, v, oracle_encode(&theirs, v));

        let theirs = samples::metadata_response(v);
        let ours = decode::<MetadataRequest>(oracle_encode(&theirs, v), v);
        assert_eq!(ours, metadata_response_from(&theirs), "v{v}");
    }
}

#[test]
fn list_offsets() {
    for v in client_versions(ClientApi::ListOffsets) {
        let req = common::list_offsets_request(v);
        check_request(&list_offsets_request_from(&req), v, oracle_encode(&req, v));

        let theirs = samples::list_offsets_response(v);
        let ours = decode::<ListOffsetsRequest>(oracle_encode(&theirs, v), v);
        assert_eq!(ours, list_offsets_response_from(&theirs), "v{v}");
    }
}

fn fetch_request_from(theirs: &kp::FetchRequest, v: i16) -> FetchRequest {
    let (replica_id, replica_epoch) = if v >= 15 {
        (theirs.replica_state.replica_id.0, theirs.replica_state.replica_epoch)
    } else {
        (theirs.replica_id.0, -1)
    };
    FetchRequest {
        replica_id,
        replica_epoch,
        cluster_id: nullable(&theirs.cluster_id),
        max_wait_ms: theirs.max_wait_ms,
        min_bytes: theirs.min_bytes,
        max_bytes: theirs.max_bytes,
        isolation_level: theirs.isolation_level,
        session_id: theirs.session_id,
        session_epoch: theirs.session_epoch,
        topics: theirs
            .topics
            .iter()
            .map(|t| fetch::FetchTopic {
                name: topic_name(&t.topic),
                topic_id: id(&t.topic_id),
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| fetch::FetchPartition {
                        partition: p.partition,
                        current_leader_epoch: p.current_leader_epoch,
                        fetch_offset: p.fetch_offset,
                        last_fetched_epoch: p.last_fetched_epoch,
                        log_start_offset: p.log_start_offset,
                        partition_max_bytes: p.partition_max_bytes,
                    })
                    .collect(),
            })
            .collect(),
        forgotten_topics: theirs
            .forgotten_topics_data
            .iter()
            .map(|t| fetch::ForgottenTopic {
                name: topic_name(&t.topic),
                topic_id: id(&t.topic_id),
                partitions: t.partitions.clone(),
            })
            .collect(),
        rack_id: string(&theirs.rack_id),
    }
}

/// Kafka's defaults (an epoch or id of -1) stand for an absent tagged field.
fn fetch_response_from(theirs: &kp::FetchResponse) -> FetchResponse {
    FetchResponse {
        throttle_time_ms: theirs.throttle_time_ms,
        error_code: theirs.error_code,
        session_id: theirs.session_id,
        topics: theirs
            .responses
            .iter()
            .map(|t| FetchedTopic {
                name: topic_name(&t.topic),
                topic_id: id(&t.topic_id),
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| FetchedPartition {
                        partition_index: p.partition_index,
                        error_code: p.error_code,
                        high_watermark: p.high_watermark,
                        last_stable_offset: p.last_stable_offset,
                        log_start_offset: p.log_start_offset,
                        diverging_epoch: (p.diverging_epoch.epoch != -1).then_some(DivergingEpoch {
                            epoch: p.diverging_epoch.epoch,
                            end_offset: p.diverging_epoch.end_offset,
                        }),
                        current_leader: (p.current_leader.leader_id.0 != -1).then_some(CurrentLeader {
                            leader_id: p.current_leader.leader_id.0,
                            leader_epoch: p.current_leader.leader_epoch,
                        }),
                        aborted_transactions: p.aborted_transactions.as_ref().map(|aborted| {
                            aborted
                                .iter()
                                .map(|a| fetch::AbortedTransaction {
                                    producer_id: a.producer_id.0,
                                    first_offset: a.first_offset,
                                })
                                .collect()
                        }),
                        preferred_read_replica: p.preferred_read_replica.0,
                        records: p.records.clone(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

#[test]
fn fetch() {
    for v in client_versions(ClientApi::Fetch) {
        let req = samples::fetch_request(v);
        check_request(&fetch_request_from(&req, v), v, oracle_encode(&req, v));

        let theirs = samples::fetch_response(v);
        let frame = oracle_encode(&theirs, v);
        let ours = decode::<FetchRequest>(frame.clone(), v);
        assert_eq!(ours, fetch_response_from(&theirs), "v{v}");
        assert_eq!(ours.topics[0].partitions[0].current_leader.is_some(), v >= 12, "v{v}");
        // Record bytes are a slice of the frame, not a copy.
        let records = ours.topics[0].partitions[0].records.as_ref().expect("records");
        let frame_range = frame.as_ptr_range();
        assert!(frame_range.contains(&records.as_ptr()), "v{v}: records copied out of the frame");
    }
}

#[test]
fn fetch_as_a_follower_and_as_a_consumer() {
    // From version 15 a follower's id and epoch travel in the tagged ReplicaState, which a
    // consumer (both -1) leaves out.
    for (replica_id, replica_epoch, tagged) in [(7, 11, true), (-1, -1, false)] {
        let ours = FetchRequest { replica_id, replica_epoch, ..FetchRequest::default() };
        let theirs: kp::FetchRequest = oracle_decode(encode(&ours, 15), 15);
        assert_eq!(
            (theirs.replica_state.replica_id.0, theirs.replica_state.replica_epoch),
            (replica_id, replica_epoch)
        );
        assert_eq!(theirs.replica_id.0, -1);
        let consumer = FetchRequest { replica_id: -1, replica_epoch: -1, ..FetchRequest::default() };
        assert_eq!(encode(&ours, 15).len() > encode(&consumer, 15).len(), tagged);
    }
}

fn produce_request_from(theirs: &kp::ProduceRequest) -> ProduceRequest {
    ProduceRequest {
        transactional_id: theirs.transactional_id.as_ref().map(|id| string(&id.0)),
        acks: theirs.acks,
        timeout_ms: theirs.timeout_ms,
        topics: theirs
            .topic_data
            .iter()
            .map(|t| ProduceTopic {
                name: topic_name(&t.name),
                topic_id: id(&t.topic_id),
                partitions: t
                    .partition_data
                    .iter()
                    .map(|p| ProducePartition { index: p.index, records: p.records.clone() })
                    .collect(),
            })
            .collect(),
    }
}

/// A partition's `record_errors` are not kept (see `ProduceResponse::decode`).
fn produce_response_from(theirs: &kp::ProduceResponse) -> ProduceResponse {
    ProduceResponse {
        topics: theirs
            .responses
            .iter()
            .map(|t| ProduceTopicResponse {
                name: topic_name(&t.name),
                topic_id: id(&t.topic_id),
                partitions: t
                    .partition_responses
                    .iter()
                    .map(|p| ProducePartitionResponse {
                        index: p.index,
                        error_code: p.error_code,
                        base_offset: p.base_offset,
                        log_append_time_ms: p.log_append_time_ms,
                        log_start_offset: p.log_start_offset,
                        error_message: nullable(&p.error_message),
                        current_leader: (p.current_leader.leader_id.0 != -1).then_some(CurrentLeader {
                            leader_id: p.current_leader.leader_id.0,
                            leader_epoch: p.current_leader.leader_epoch,
                        }),
                    })
                    .collect(),
            })
            .collect(),
        throttle_time_ms: theirs.throttle_time_ms,
        node_endpoints: theirs
            .node_endpoints
            .iter()
            .map(|e| NodeEndpoint {
                node_id: e.node_id.0,
                host: string(&e.host),
                port: e.port,
                rack: nullable(&e.rack),
            })
            .collect(),
    }
}

#[test]
fn produce() {
    for v in client_versions(ClientApi::Produce) {
        let req = samples::produce_request(v);
        check_request(&produce_request_from(&req), v, oracle_encode(&req, v));

        let theirs = samples::produce_response(v);
        let ours = decode::<ProduceRequest>(oracle_encode(&theirs, v), v);
        assert_eq!(ours, produce_response_from(&theirs), "v{v}");
        assert_eq!(ours.topics[0].partitions[0].current_leader.is_some(), v >= 10, "v{v}");
        assert_eq!(ours.node_endpoints.len(), usize::from(v >= 10), "v{v}");
    }
}

#[test]
fn create_topics() {
    for v in client_versions(ClientApi::CreateTopics) {
        let req = common::create_topics_request(v);
        check_request(&create_topics_request_from(&req), v, common::create_topics_request_bytes(v));

        let theirs = samples::create_topics_response(v.max(2));
        let ours = decode::<CreateTopicsRequest>(samples::create_topics_response_bytes(v), v);
        // What versions 0-4 lack reads as Kafka's defaults (the oracle's differ for some).
        let mut expected = create_topics_response_from(&theirs);
        for t in &mut expected.topics {
            if v < 1 {
                t.error_message = None;
            }
            if v < 5 {
                t.configs = None;
            }
        }
        if v < 2 {
            expected.throttle_time_ms = 0;
        }
        assert_eq!(ours, expected, "v{v}");
    }
}

#[test]
fn init_producer_id() {
    for v in client_versions(ClientApi::InitProducerId) {
        let req = common::init_producer_id_request(v);
        let ours = InitProducerIdRequest {
            transactional_id: req.transactional_id.as_ref().map(|id| string(&id.0)),
            transaction_timeout_ms: req.transaction_timeout_ms,
            producer_id: req.producer_id.0,
            producer_epoch: req.producer_epoch,
        };
        check_request(&ours, v, oracle_encode(&req, v));

        let theirs = samples::init_producer_id_response(v);
        let expected = InitProducerIdResponse {
            throttle_time_ms: theirs.throttle_time_ms,
            error_code: theirs.error_code,
            producer_id: theirs.producer_id.0,
            producer_epoch: theirs.producer_epoch,
        };
        assert_eq!(decode::<InitProducerIdRequest>(oracle_encode(&theirs, v), v), expected, "v{v}");
    }
}

#[test]
fn list_groups() {
    for v in client_versions(ClientApi::ListGroups) {
        let req = common::list_groups_request(v);
        let ours = ListGroupsRequest {
            states_filter: req.states_filter.iter().map(string).collect(),
            types_filter: req.types_filter.iter().map(string).collect(),
        };
        check_request(&ours, v, oracle_encode(&req, v));

        let theirs = samples::list_groups_response(v);
        let ours = decode::<ListGroupsRequest>(oracle_encode(&theirs, v), v);
        assert_eq!(ours, list_groups_response_from(&theirs), "v{v}");
    }
}

#[test]
fn find_coordinator() {
    for v in client_versions(ClientApi::FindCoordinator) {
        let req = common::find_coordinator_request(v);
        check_request(&find_coordinator_request_from(&req, v), v, oracle_encode(&req, v));

        let theirs = samples::find_coordinator_response(v);
        let ours = decode::<FindCoordinatorRequest>(oracle_encode(&theirs, v), v);
        assert_eq!(ours, find_coordinator_response_from(&theirs, v), "v{v}");
    }
}

#[test]
fn describe_groups() {
    for v in client_versions(ClientApi::DescribeGroups) {
        let req = common::describe_groups_request(v);
        let ours = DescribeGroupsRequest {
            groups: req.groups.iter().map(group_name).collect(),
            include_authorized_operations: req.include_authorized_operations,
        };
        check_request(&ours, v, oracle_encode(&req, v));

        let theirs = samples::describe_groups_response(v);
        let ours = decode::<DescribeGroupsRequest>(oracle_encode(&theirs, v), v);
        assert_eq!(ours, describe_groups_response_from(&theirs), "v{v}");
    }
}

#[test]
fn offset_fetch() {
    for v in client_versions(ClientApi::OffsetFetch) {
        let req = common::offset_fetch_request(v);
        check_request(&offset_fetch_request_from(&req, v), v, oracle_encode(&req, v));
        // Every topic a group committed: a null topic list, from version 2.
        if (2..=7).contains(&v) {
            let all = OffsetFetchRequest {
                groups: vec![OffsetFetchRequestGroup {
                    group_id: "audit".into(),
                    member_epoch: -1,
                    ..Default::default()
                }],
                require_stable: false,
            };
            let theirs = kp::OffsetFetchRequest::default().with_group_id(common::group("audit")).with_topics(None);
            check_request(&all, v, oracle_encode(&theirs, v));
        }

        let theirs = samples::offset_fetch_response(v);
        let ours = decode::<OffsetFetchRequest>(oracle_encode(&theirs, v), v);
        assert_eq!(ours, offset_fetch_response_from(&theirs, v), "v{v}");
    }
}

fn offset_for_leader_epoch_request_from(req: &kp::OffsetForLeaderEpochRequest, v: i16) -> OffsetForLeaderEpochRequest {
    OffsetForLeaderEpochRequest {
        // Versions before 3 lack the field; the decoder reads it as a consumer's -1.
        replica_id: if v >= 3 { req.replica_id.0 } else { -1 },
        topics: req
            .topics
            .iter()
            .map(|t| OffsetForLeaderTopic {
                name: topic_name(&t.topic),
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| OffsetForLeaderPartition {
                        partition: p.partition,
                        current_leader_epoch: p.current_leader_epoch,
                        leader_epoch: p.leader_epoch,
                    })
                    .collect(),
            })
            .collect(),
    }
}

fn offset_for_leader_epoch_response_from(theirs: &kp::OffsetForLeaderEpochResponse) -> OffsetForLeaderEpochResponse {
    OffsetForLeaderEpochResponse {
        throttle_time_ms: theirs.throttle_time_ms,
        topics: theirs
            .topics
            .iter()
            .map(|t| OffsetForLeaderTopicResult {
                name: topic_name(&t.topic),
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| EpochEndOffset {
                        error_code: p.error_code,
                        partition: p.partition,
                        leader_epoch: p.leader_epoch,
                        end_offset: p.end_offset,
                    })
                    .collect(),
            })
            .collect(),
    }
}

#[test]
fn offset_for_leader_epoch() {
    for v in client_versions(ClientApi::OffsetForLeaderEpoch) {
        let req = samples::offset_for_leader_epoch_request(v);
        let mut ours = offset_for_leader_epoch_request_from(&req, v);
        ours.replica_id = req.replica_id.0;
        check_request(&ours, v, oracle_encode(&req, v));

        let theirs = samples::offset_for_leader_epoch_response(v);
        let expected = offset_for_leader_epoch_response_from(&theirs);
        assert_eq!(decode::<OffsetForLeaderEpochRequest>(oracle_encode(&theirs, v), v), expected, "v{v}");
    }
}

/// The broker's side of the same API: requests the oracle encodes decode to the same fields,
/// and responses the broker encodes decode with the oracle to what was encoded.
#[test]
fn offset_for_leader_epoch_served() {
    for v in versions(ApiKey::OffsetForLeaderEpoch) {
        let req = samples::offset_for_leader_epoch_request(v);
        let mut r = Reader::new(oracle_encode(&req, v));
        let decoded = OffsetForLeaderEpochRequest::decode(&mut r, v).unwrap_or_else(|e| panic!("v{v}: {e}"));
        assert_eq!(r.remaining(), 0, "v{v}: bytes left after our decoder");
        assert_eq!(decoded, offset_for_leader_epoch_request_from(&req, v), "v{v}");

        let response = offset_for_leader_epoch_response_from(&samples::offset_for_leader_epoch_response(v));
        let mut w = Writer::new();
        response.encode(&mut w, v);
        let theirs: kp::OffsetForLeaderEpochResponse = oracle_decode(w.buf.freeze(), v);
        assert_eq!(offset_for_leader_epoch_response_from(&theirs), response, "v{v}");
    }
}

#[test]
fn consumer_protocol_assignment() {
    for v in 0..=3 {
        let theirs = samples::consumer_protocol_assignment(v);
        let mut r = Reader::new(samples::consumer_protocol_assignment_bytes(v));
        let ours = ConsumerProtocolAssignment::decode(&mut r).unwrap();
        assert_eq!(r.remaining(), 0, "v{v}");
        let expected = ConsumerProtocolAssignment {
            assigned_partitions: theirs
                .assigned_partitions
                .iter()
                .map(|tp| AssignedPartitions { topic: topic_name(&tp.topic), partitions: tp.partitions.clone() })
                .collect(),
            user_data: theirs.user_data.clone(),
        };
        assert_eq!(ours, expected, "v{v}");
    }
    // A later version is read as version 3, its added fields left unread.
    let later = [&4i16.to_be_bytes()[..], &samples::consumer_protocol_assignment_bytes(3)[2..], b"more"].concat();
    let mut r = Reader::new(Bytes::from(later));
    let ours = ConsumerProtocolAssignment::decode(&mut r).unwrap();
    assert_eq!((ours.assigned_partitions.len(), r.remaining()), (2, 4));
    let negative = Bytes::from_static(&[0xff, 0xff, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
    assert!(ConsumerProtocolAssignment::decode(&mut Reader::new(negative)).is_err());
}

/// DescribeCluster and DescribeQuorum (for `ringtail cluster status`): our requests are the
/// oracle's bytes; our responses (the broker's encoders, checked against the oracle in
/// `oracle.rs`) decode with the client's decoders to the same fields.
#[test]
fn describe_cluster_and_quorum() {
    use ringtail_net::client::cluster::*;
    for v in client_versions(ClientApi::DescribeCluster) {
        let theirs = common::describe_cluster_request(v);
        let ours = DescribeClusterRequest {
            include_cluster_authorized_operations: theirs.include_cluster_authorized_operations,
            endpoint_type: theirs.endpoint_type,
            include_fenced_brokers: theirs.include_fenced_brokers,
        };
        check_request(&ours, v, oracle_encode(&theirs, v));
        let resp = DescribeClusterResponse {
            throttle_time_ms: 5,
            error_code: 0,
            error_message: Some("m".into()),
            endpoint_type: 1,
            cluster_id: "c".into(),
            controller_id: 2,
            brokers: vec![DescribeClusterBroker {
                broker_id: 2,
                host: "h".into(),
                port: 9092,
                rack: Some("r".into()),
                is_fenced: v >= 2,
            }],
            cluster_authorized_operations: i32::MIN,
        };
        let mut w = Writer::new();
        resp.encode(&mut w, v);
        assert_eq!(decode::<DescribeClusterRequest>(w.buf.freeze(), v), resp, "v{v}");
    }
    for v in client_versions(ClientApi::DescribeQuorum) {
        let ours = DescribeQuorumRequest { topics: vec![("__cluster_metadata".into(), vec![0])] };
        check_request(&ours, v, oracle_encode(&common::describe_quorum_request(), v));
        let replica = |id: i32| ReplicaState {
            replica_id: id,
            replica_directory_id: if v >= 2 { [id as u8; 16] } else { [0; 16] },
            log_end_offset: 40 + i64::from(id),
            last_fetch_timestamp: if v >= 1 { 1000 } else { -1 },
            last_caught_up_timestamp: if v >= 1 { 900 } else { -1 },
        };
        let resp = DescribeQuorumResponse {
            error_code: 0,
            error_message: None,
            topics: vec![QuorumTopic {
                topic_name: "__cluster_metadata".into(),
                partitions: vec![QuorumPartition {
                    partition_index: 0,
                    error_code: 0,
                    error_message: None,
                    leader_id: 1,
                    leader_epoch: 3,
                    high_watermark: 41,
                    current_voters: vec![replica(1), replica(2)],
                    observers: vec![replica(4)],
                }],
            }],
            nodes: if v >= 2 {
                vec![QuorumNode { node_id: 1, listeners: vec![("CONTROLLER".into(), "h".into(), 9093)] }]
            } else {
                Vec::new()
            },
        };
        let mut w = Writer::new();
        resp.encode(&mut w, v);
        assert_eq!(decode::<DescribeQuorumRequest>(w.buf.freeze(), v), resp, "v{v}");
    }
}

#[test]
fn cluster_operations() {
    use ringtail_net::client::cluster_ops::*;
    for v in client_versions(ClientApi::AlterPartitionReassignments) {
        let partition =
            |partition_index: i32, replicas: Option<Vec<i32>>| ReassignablePartition { partition_index, replicas };
        let ours = AlterPartitionReassignmentsRequest {
            timeout_ms: 60_000,
            allow_replication_factor_change: v == 0,
            topics: vec![
                ReassignableTopic {
                    name: "orders".into(),
                    partitions: vec![partition(0, Some(vec![4, 1, 2])), partition(1, None)],
                },
                ReassignableTopic { name: "payments".into(), partitions: vec![partition(2, Some(vec![3]))] },
            ],
        };
        check_request(&ours, v, oracle_encode(&common::alter_partition_reassignments_request(v), v));
        let got = decode::<AlterPartitionReassignmentsRequest>(
            oracle_encode(&samples::alter_partition_reassignments_response(v), v),
            v,
        );
        let result = |partition_index: i32, error_code: i16, message: Option<&str>| ReassignablePartitionResponse {
            partition_index,
            error_code,
            error_message: message.map(String::from),
        };
        let expected = AlterPartitionReassignmentsResponse {
            throttle_time_ms: 5,
            allow_replication_factor_change: v == 0,
            error_code: 0,
            error_message: Some("partly".into()),
            responses: vec![ReassignableTopicResponse {
                name: "orders".into(),
                partitions: vec![result(0, 0, None), result(1, 85, Some("not moving"))],
            }],
        };
        assert_eq!(got, expected, "v{v}");
    }
    for v in client_versions(ClientApi::ListPartitionReassignments) {
        for all in [false, true] {
            let ours = ListPartitionReassignmentsRequest {
                timeout_ms: 30_000,
                topics: (!all).then(|| {
                    vec![
                        ListPartitionReassignmentsTopic { name: "orders".into(), partition_indexes: vec![0, 3] },
                        ListPartitionReassignmentsTopic { name: "payments".into(), partition_indexes: vec![] },
                    ]
                }),
            };
            check_request(&ours, v, oracle_encode(&common::list_partition_reassignments_request(all), v));
        }
        let got = decode::<ListPartitionReassignmentsRequest>(
            oracle_encode(&samples::list_partition_reassignments_response(v), v),
            v,
        );
        let expected = ListPartitionReassignmentsResponse {
            throttle_time_ms: 6,
            error_code: 0,
            error_message: Some("fine".into()),
            topics: vec![OngoingTopicReassignment {
                name: "orders".into(),
                partitions: vec![OngoingPartitionReassignment {
                    partition_index: 2,
                    replicas: vec![4, 1, 2, 3],
                    adding_replicas: vec![4],
                    removing_replicas: vec![3],
                }],
            }],
        };
        assert_eq!(got, expected, "v{v}");
    }
    for v in client_versions(ClientApi::ElectLeaders) {
        for all in [false, true] {
            let ours = ElectLeadersRequest {
                election_type: if v >= 1 { ELECTION_UNCLEAN } else { ELECTION_PREFERRED },
                topic_partitions: (!all).then(|| {
                    vec![
                        ElectTopicPartitions { topic: "orders".into(), partitions: vec![0, 2] },
                        ElectTopicPartitions { topic: "payments".into(), partitions: vec![] },
                    ]
                }),
                timeout_ms: 30_000,
            };
            check_request(&ours, v, oracle_encode(&common::elect_leaders_request(v, all), v));
        }
        let got = decode::<ElectLeadersRequest>(oracle_encode(&samples::elect_leaders_response(v), v), v);
        let result = |partition_id: i32, error_code: i16, message: Option<&str>| ElectionPartitionResult {
            partition_id,
            error_code,
            error_message: message.map(String::from),
        };
        let expected = ElectLeadersResponse {
            throttle_time_ms: 7,
            error_code: 0,
            replica_election_results: vec![ReplicaElectionResult {
                topic: "orders".into(),
                partition_result: vec![result(0, 0, None), result(2, 84, Some("leads already"))],
            }],
        };
        assert_eq!(got, expected, "v{v}");
    }
    for v in client_versions(ClientApi::UnregisterBroker) {
        let ours = UnregisterBrokerRequest { broker_id: 9 };
        check_request(
            &ours,
            v,
            oracle_encode(&kp::UnregisterBrokerRequest::default().with_broker_id(kp::BrokerId(9)), v),
        );
        let got = decode::<UnregisterBrokerRequest>(oracle_encode(&samples::unregister_broker_response(v), v), v);
        let expected = UnregisterBrokerResponse {
            throttle_time_ms: 8,
            error_code: 102,
            error_message: Some("broker 9 is not registered".into()),
        };
        assert_eq!(got, expected, "v{v}");
        // The broker's encoding, read back by the client's decoder.
        let mut w = Writer::new();
        expected.encode(&mut w, v);
        assert_eq!(decode::<UnregisterBrokerRequest>(w.buf.freeze(), v), expected, "v{v}");
    }
}

#[test]
fn raft_voters() {
    use ringtail_net::client::cluster_ops::*;
    for v in client_versions(ClientApi::AddRaftVoter) {
        let ours = AddRaftVoterRequest {
            cluster_id: Some("MkU3OEVBNTcwNTJENDM2Qk".into()),
            timeout_ms: 30_000,
            voter_id: 4,
            voter_directory_id: [0; 16],
            listeners: vec![("CONTROLLER".into(), "127.0.0.1".into(), 9493)],
        };
        check_request(&ours, v, oracle_encode(&common::add_raft_voter_request(), v));
        let got = decode::<AddRaftVoterRequest>(samples::client_response_bytes(ClientApi::AddRaftVoter, v), v);
        let expected =
            RaftVoterResponse { throttle_time_ms: 9, error_code: 126, error_message: Some("a voter already".into()) };
        assert_eq!(got, expected, "v{v}");
    }
    for v in client_versions(ClientApi::RemoveRaftVoter) {
        let ours = RemoveRaftVoterRequest { cluster_id: None, voter_id: 3, voter_directory_id: [0; 16] };
        check_request(&ours, v, oracle_encode(&common::remove_raft_voter_request(), v));
        let got = decode::<RemoveRaftVoterRequest>(samples::client_response_bytes(ClientApi::RemoveRaftVoter, v), v);
        let expected =
            RaftVoterResponse { throttle_time_ms: 9, error_code: 127, error_message: Some("not a voter".into()) };
        assert_eq!(got, expected, "v{v}");
    }
}
