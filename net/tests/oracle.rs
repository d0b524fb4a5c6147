//! Our codecs against Kafka's generated schemas (the `kafka-protocol` crate, test-only): for
//! every supported version, requests encoded by the oracle decode to the same fields with our
//! decoders, and responses we encode decode to the same fields with the oracle. Versions the
//! oracle no longer knows (Kafka 4 dropped them) are checked against a neighbouring version that
//! is the same on the wire, or against bytes laid out by hand from Kafka's older schemas.

mod common;

use bytes::Bytes;
use common::convert::*;
use common::{broker_ids, id, nullable, oracle_decode, oracle_encode, string, topic_name, versions};
use kafka_protocol::messages as kp;
use kafka_protocol::protocol::StrBytes;
use ringtail_net::header::ApiKey;
use ringtail_net::messages::api_versions::{
    ApiVersionsRequest, ApiVersionsResponse, FinalizedFeature, SupportedFeature,
};
use ringtail_net::messages::create_partitions::*;
use ringtail_net::messages::create_topics::*;
use ringtail_net::messages::delete_groups::*;
use ringtail_net::messages::delete_topics::*;
use ringtail_net::messages::describe_cluster::*;
use ringtail_net::messages::describe_configs::*;
use ringtail_net::messages::describe_groups::*;
use ringtail_net::messages::describe_quorum::*;
use ringtail_net::messages::find_coordinator::*;
use ringtail_net::messages::heartbeat::*;
use ringtail_net::messages::init_producer_id::*;
use ringtail_net::messages::join_group::*;
use ringtail_net::messages::leave_group::*;
use ringtail_net::messages::list_groups::*;
use ringtail_net::messages::list_offsets::*;
use ringtail_net::messages::metadata::*;
use ringtail_net::messages::offset_commit::*;
use ringtail_net::messages::offset_delete::*;
use ringtail_net::messages::offset_fetch::*;
use ringtail_net::messages::sync_group::*;
use ringtail_net::{DecodeError, Reader, Writer};

/// Decodes `bytes` with one of our decoders, checking it consumed every byte.
fn decode_ours<T>(bytes: Bytes, v: i16, decode: impl FnOnce(&mut Reader, i16) -> Result<T, DecodeError>) -> T {
    let mut r = Reader::new(bytes);
    let ours = decode(&mut r, v).unwrap_or_else(|e| panic!("v{v}: {e}"));
    assert_eq!(r.remaining(), 0, "v{v}: bytes left after our decoder");
    ours
}

/// Encodes with one of our encoders.
fn encode_ours(encode: impl FnOnce(&mut Writer)) -> Bytes {
    let mut w = Writer::new();
    encode(&mut w);
    w.buf.freeze()
}

/// `bytes` after `prefix`: turns an old version's response into its successor's, when the
/// successor only adds leading fields.
fn prefixed(prefix: &[u8], bytes: Bytes) -> Bytes {
    [prefix, &bytes[..]].concat().into()
}

#[test]
fn api_versions() {
    for v in versions(ApiKey::ApiVersions) {
        let req = kp::ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("kcat"))
            .with_client_software_version(StrBytes::from_static_str("1.7.1"));
        let mut r = Reader::new(oracle_encode(&req, v));
        let ours = ApiVersionsRequest::decode(&mut r, v).unwrap();
        assert_eq!(r.remaining(), 0, "v{v}");
        if v >= 3 {
            assert_eq!(ours.client_software_name.as_deref(), Some("kcat"));
        }

        let mut resp = ApiVersionsResponse::supported(0);
        resp.supported_features = vec![
            SupportedFeature { name: "metadata.version".into(), min_version: 7, max_version: 27 },
            SupportedFeature { name: "group.version".into(), min_version: 0, max_version: 1 },
        ];
        resp.finalized_features_epoch = 42;
        resp.finalized_features =
            vec![FinalizedFeature { name: "metadata.version".into(), max_version_level: 27, min_version_level: 27 }];
        let mut w = Writer::new();
        resp.encode(&mut w, v);
        let theirs: kp::ApiVersionsResponse = oracle_decode(w.buf.freeze(), v);
        assert_eq!(theirs.error_code, 0);
        if v >= 3 {
            // Below v4 a feature whose lowest level is 0 is left out, as Kafka does.
            assert_eq!(theirs.supported_features.len(), if v >= 4 { 2 } else { 1 }, "v{v}");
            let supported = &theirs.supported_features[0];
            assert_eq!(
                (supported.name.as_str(), supported.min_version, supported.max_version),
                ("metadata.version", 7, 27)
            );
            assert_eq!(theirs.finalized_features_epoch, 42);
            let finalized = &theirs.finalized_features[0];
            assert_eq!(
                (finalized.name.as_str(), finalized.max_version_level, finalized.min_version_level),
                ("metadata.version", 27, 27)
            );
        }
        assert_eq!(theirs.api_keys.len(), resp.api_keys.len(), "v{v}");
        for (a, b) in theirs.api_keys.iter().zip(&resp.api_keys) {
            assert_eq!((a.api_key, a.min_version, a.max_version), (b.api_key, b.min_version, b.max_version));
        }
    }
}

/// A response with a non-default value in every field `v` has; the fields it lacks hold the
/// defaults the oracle decodes them to.
fn metadata_response(v: i16) -> MetadataResponse {
    let partition = |index: i32, error_code: i16| MetadataResponsePartition {
        error_code,
        partition_index: index,
        leader_id: index + 1,
        leader_epoch: if v >= 7 { 40 + index } else { -1 },
        replica_nodes: vec![1, 2, 3],
        isr_nodes: vec![index + 1, 3],
        offline_replicas: if v >= 5 { vec![2] } else { vec![] },
    };
    MetadataResponse {
        throttle_time_ms: if v >= 3 { 25 } else { 0 },
        brokers: vec![
            MetadataResponseBroker {
                node_id: 1,
                host: "b1.example".into(),
                port: 9092,
                rack: if v >= 1 { Some("rack-a".into()) } else { None },
            },
            MetadataResponseBroker { node_id: 2, host: "b2.example".into(), port: 9093, rack: None },
        ],
        cluster_id: if v >= 2 { Some("ringtail-cluster".into()) } else { None },
        controller_id: if v >= 1 { 2 } else { -1 },
        topics: vec![
            MetadataResponseTopic {
                error_code: 0,
                name: Some("orders".into()),
                topic_id: if v >= 10 { [0xa1; 16] } else { [0; 16] },
                is_internal: v >= 1,
                partitions: vec![partition(0, 0), partition(1, 9)],
                topic_authorized_operations: if v >= 8 { 0x0ff8 } else { i32::MIN },
            },
            MetadataResponseTopic {
                error_code: if v >= 12 { 100 } else { 3 },
                // A null name is only valid when the topic was asked for by id (version 12+).
                name: if v >= 12 { None } else { Some("missing".into()) },
                topic_id: if v >= 10 { [0xb2; 16] } else { [0; 16] },
                is_internal: false,
                partitions: vec![],
                topic_authorized_operations: if v >= 8 { 0 } else { i32::MIN },
            },
        ],
        cluster_authorized_operations: if (8..=10).contains(&v) { 0x1ff } else { i32::MIN },
        error_code: if v >= 13 { 35 } else { 0 },
    }
}

#[test]
fn metadata() {
    for v in versions(ApiKey::Metadata) {
        let req = common::metadata_request(v);
        let ours = decode_ours(oracle_encode(&req, v), v, MetadataRequest::decode);
        assert_eq!(ours, metadata_request_from(&req), "v{v}");

        // "Every topic" is an empty array in version 0 and a null one later; both read as `None`.
        let all = kp::MetadataRequest::default().with_topics(if v == 0 { Some(vec![]) } else { None });
        let ours = decode_ours(oracle_encode(&all, v), v, MetadataRequest::decode);
        assert_eq!(ours.topics, None, "v{v}");
        assert!(ours.allow_auto_topic_creation, "v{v}: Kafka's default applies");
        if v >= 1 {
            let none = kp::MetadataRequest::default().with_topics(Some(vec![]));
            let ours = decode_ours(oracle_encode(&none, v), v, MetadataRequest::decode);
            assert_eq!(ours.topics, Some(vec![]), "v{v}: an empty array asks for no topics");
        }

        let resp = metadata_response(v);
        let theirs: kp::MetadataResponse = oracle_decode(encode_ours(|w| resp.encode(w, v)), v);
        assert_eq!(metadata_response_from(&theirs), resp, "v{v}");
    }
}

fn list_offsets_response(v: i16) -> ListOffsetsResponse {
    let partition = |index: i32, error_code: i16| ListOffsetsPartitionResponse {
        partition_index: index,
        error_code,
        timestamp: 1_700_000_000_000 + i64::from(index),
        offset: 500 + i64::from(index),
        leader_epoch: if v >= 4 { 7 + index } else { -1 },
    };
    ListOffsetsResponse {
        throttle_time_ms: if v >= 2 { 12 } else { 0 },
        topics: vec![
            ListOffsetsTopicResponse { name: "orders".into(), partitions: vec![partition(0, 0), partition(1, 6)] },
            ListOffsetsTopicResponse { name: "payments".into(), partitions: vec![partition(2, 0)] },
        ],
    }
}

#[test]
fn list_offsets() {
    for v in versions(ApiKey::ListOffsets) {
        let req = common::list_offsets_request(v);
        let ours = decode_ours(oracle_encode(&req, v), v, ListOffsetsRequest::decode);
        assert_eq!(ours, list_offsets_request_from(&req), "v{v}");

        let resp = list_offsets_response(v);
        let theirs: kp::ListOffsetsResponse = oracle_decode(encode_ours(|w| resp.encode(w, v)), v);
        assert_eq!(list_offsets_response_from(&theirs), resp, "v{v}");
    }
}

fn create_topics_response(v: i16) -> CreateTopicsResponse {
    let configs = vec![
        CreatableTopicConfigs {
            name: "cleanup.policy".into(),
            value: Some("compact".into()),
            read_only: false,
            config_source: 1,
            is_sensitive: false,
        },
        CreatableTopicConfigs {
            name: "sasl.jaas.config".into(),
            value: None,
            read_only: true,
            config_source: 5,
            is_sensitive: true,
        },
    ];
    CreateTopicsResponse {
        throttle_time_ms: if v >= 2 { 30 } else { 0 },
        topics: vec![
            CreatableTopicResult {
                name: "orders".into(),
                topic_id: if v >= 7 { [0xd4; 16] } else { [0; 16] },
                error_code: 0,
                error_message: None,
                num_partitions: if v >= 5 { 3 } else { -1 },
                replication_factor: if v >= 5 { 2 } else { -1 },
                configs: Some(if v >= 5 { configs } else { vec![] }),
            },
            CreatableTopicResult {
                name: "payments".into(),
                topic_id: [0; 16],
                error_code: 36,
                error_message: if v >= 1 { Some("Topic 'payments' already exists.".into()) } else { None },
                num_partitions: -1,
                replication_factor: -1,
                // The configs of a topic that failed are null (version 5+).
                configs: if v >= 5 { None } else { Some(vec![]) },
            },
        ],
    }
}

#[test]
fn create_topics() {
    for v in versions(ApiKey::CreateTopics) {
        let req = common::create_topics_request(v);
        let ours = decode_ours(common::create_topics_request_bytes(v), v, CreateTopicsRequest::decode);
        assert_eq!(ours, create_topics_request_from(&req), "v{v}");

        let resp = create_topics_response(v);
        let bytes = encode_ours(|w| resp.encode(w, v));
        match v {
            // Version 0: name and error code per topic, from Kafka's schema of that version.
            0 => {
                let mut w = Writer::new();
                w.array_len(false, 2);
                w.string(false, "orders");
                w.i16(0);
                w.string(false, "payments");
                w.i16(36);
                assert_eq!(bytes, w.buf.freeze(), "v0");
            }
            // Version 1 is version 2 without the leading throttle time.
            1 => {
                let theirs: kp::CreateTopicsResponse = oracle_decode(prefixed(&0i32.to_be_bytes(), bytes), 2);
                assert_eq!(create_topics_response_from(&theirs), resp, "v1");
            }
            _ => {
                let theirs: kp::CreateTopicsResponse = oracle_decode(bytes, v);
                assert_eq!(create_topics_response_from(&theirs), resp, "v{v}");
            }
        }
    }
}

fn delete_topics_request_from(theirs: &kp::DeleteTopicsRequest) -> DeleteTopicsRequest {
    DeleteTopicsRequest {
        topics: theirs
            .topics
            .iter()
            .map(|t| DeleteTopicState { name: t.name.as_ref().map(topic_name), topic_id: id(&t.topic_id) })
            .collect(),
        topic_names: theirs.topic_names.iter().map(topic_name).collect(),
        timeout_ms: theirs.timeout_ms,
    }
}

fn delete_topics_response(v: i16) -> DeleteTopicsResponse {
    DeleteTopicsResponse {
        throttle_time_ms: if v >= 1 { 40 } else { 0 },
        responses: vec![
            DeletableTopicResult {
                name: Some("orders".into()),
                topic_id: if v >= 6 { [0xe5; 16] } else { [0; 16] },
                error_code: 0,
                error_message: None,
            },
            DeletableTopicResult {
                // Deleted by an id that is not known: no name (version 6+).
                name: if v >= 6 { None } else { Some("payments".into()) },
                topic_id: if v >= 6 { [0xc3; 16] } else { [0; 16] },
                error_code: if v >= 6 { 100 } else { 3 },
                error_message: if v >= 5 { Some("This server does not host this topic.".into()) } else { None },
            },
        ],
    }
}

fn delete_topics_response_from(theirs: &kp::DeleteTopicsResponse) -> DeleteTopicsResponse {
    DeleteTopicsResponse {
        throttle_time_ms: theirs.throttle_time_ms,
        responses: theirs
            .responses
            .iter()
            .map(|t| DeletableTopicResult {
                name: t.name.as_ref().map(topic_name),
                topic_id: id(&t.topic_id),
                error_code: t.error_code,
                error_message: nullable(&t.error_message),
            })
            .collect(),
    }
}

#[test]
fn delete_topics() {
    for v in versions(ApiKey::DeleteTopics) {
        let req = common::delete_topics_request(v);
        let ours = decode_ours(common::delete_topics_request_bytes(v), v, DeleteTopicsRequest::decode);
        assert_eq!(ours, delete_topics_request_from(&req), "v{v}");

        let resp = delete_topics_response(v);
        let bytes = encode_ours(|w| resp.encode(w, v));
        // Version 0 is version 1 without the leading throttle time.
        let theirs: kp::DeleteTopicsResponse =
            if v == 0 { oracle_decode(prefixed(&0i32.to_be_bytes(), bytes), 1) } else { oracle_decode(bytes, v) };
        assert_eq!(delete_topics_response_from(&theirs), resp, "v{v}");
    }
}

fn create_partitions_request_from(theirs: &kp::CreatePartitionsRequest) -> CreatePartitionsRequest {
    CreatePartitionsRequest {
        topics: theirs
            .topics
            .iter()
            .map(|t| CreatePartitionsTopic {
                name: topic_name(&t.name),
                count: t.count,
                assignments: t.assignments.as_ref().map(|assignments| {
                    assignments
                        .iter()
                        .map(|a| CreatePartitionsAssignment { broker_ids: broker_ids(&a.broker_ids) })
                        .collect()
                }),
            })
            .collect(),
        timeout_ms: theirs.timeout_ms,
        validate_only: theirs.validate_only,
    }
}

fn create_partitions_response() -> CreatePartitionsResponse {
    CreatePartitionsResponse {
        throttle_time_ms: 50,
        results: vec![
            CreatePartitionsTopicResult { name: "orders".into(), error_code: 0, error_message: None },
            CreatePartitionsTopicResult {
                name: "payments".into(),
                error_code: 37,
                error_message: Some("Topic currently has 8 partitions, which is higher than 4.".into()),
            },
        ],
    }
}

fn create_partitions_response_from(theirs: &kp::CreatePartitionsResponse) -> CreatePartitionsResponse {
    CreatePartitionsResponse {
        throttle_time_ms: theirs.throttle_time_ms,
        results: theirs
            .results
            .iter()
            .map(|r| CreatePartitionsTopicResult {
                name: topic_name(&r.name),
                error_code: r.error_code,
                error_message: nullable(&r.error_message),
            })
            .collect(),
    }
}

#[test]
fn create_partitions() {
    for v in versions(ApiKey::CreatePartitions) {
        let req = common::create_partitions_request(v);
        let ours = decode_ours(oracle_encode(&req, v), v, CreatePartitionsRequest::decode);
        assert_eq!(ours, create_partitions_request_from(&req), "v{v}");

        let resp = create_partitions_response();
        let theirs: kp::CreatePartitionsResponse = oracle_decode(encode_ours(|w| resp.encode(w, v)), v);
        assert_eq!(create_partitions_response_from(&theirs), resp, "v{v}");
    }
}

fn describe_configs_request_from(theirs: &kp::DescribeConfigsRequest) -> DescribeConfigsRequest {
    DescribeConfigsRequest {
        resources: theirs
            .resources
            .iter()
            .map(|r| DescribeConfigsResource {
                resource_type: r.resource_type,
                resource_name: string(&r.resource_name),
                configuration_keys: r.configuration_keys.as_ref().map(|keys| keys.iter().map(string).collect()),
            })
            .collect(),
        include_synonyms: theirs.include_synonyms,
        include_documentation: theirs.include_documentation,
    }
}

fn describe_configs_response(v: i16) -> DescribeConfigsResponse {
    let configs = vec![
        DescribeConfigsResourceResult {
            name: "retention.ms".into(),
            value: Some("86400000".into()),
            read_only: false,
            is_default: false,
            config_source: if v >= 1 { 1 } else { -1 },
            is_sensitive: false,
            synonyms: if v >= 1 {
                vec![
                    DescribeConfigsSynonym { name: "retention.ms".into(), value: Some("86400000".into()), source: 1 },
                    DescribeConfigsSynonym { name: "log.retention.ms".into(), value: None, source: 5 },
                ]
            } else {
                vec![]
            },
            config_type: if v >= 3 { 5 } else { 0 },
            documentation: Some(if v >= 3 { "How long to keep a log segment." } else { "" }.into()),
        },
        DescribeConfigsResourceResult {
            name: "sasl.jaas.config".into(),
            value: None,
            read_only: true,
            is_default: v == 0,
            config_source: if v >= 1 { 5 } else { -1 },
            is_sensitive: true,
            synonyms: vec![],
            config_type: if v >= 3 { 9 } else { 0 },
            documentation: if v >= 3 { None } else { Some(String::new()) },
        },
    ];
    DescribeConfigsResponse {
        throttle_time_ms: 60,
        results: vec![
            DescribeConfigsResult {
                error_code: 0,
                error_message: None,
                resource_type: 2,
                resource_name: "orders".into(),
                configs,
            },
            DescribeConfigsResult {
                error_code: 3,
                error_message: Some("Topic 'gone' does not exist.".into()),
                resource_type: 2,
                resource_name: "gone".into(),
                configs: vec![],
            },
        ],
    }
}

fn describe_configs_response_from(theirs: &kp::DescribeConfigsResponse) -> DescribeConfigsResponse {
    DescribeConfigsResponse {
        throttle_time_ms: theirs.throttle_time_ms,
        results: theirs
            .results
            .iter()
            .map(|r| DescribeConfigsResult {
                error_code: r.error_code,
                error_message: nullable(&r.error_message),
                resource_type: r.resource_type,
                resource_name: string(&r.resource_name),
                configs: r
                    .configs
                    .iter()
                    .map(|c| DescribeConfigsResourceResult {
                        name: string(&c.name),
                        value: nullable(&c.value),
                        read_only: c.read_only,
                        // Version 0 only, which the oracle does not decode.
                        is_default: false,
                        config_source: c.config_source,
                        is_sensitive: c.is_sensitive,
                        synonyms: c
                            .synonyms
                            .iter()
                            .map(|s| DescribeConfigsSynonym {
                                name: string(&s.name),
                                value: nullable(&s.value),
                                source: s.source,
                            })
                            .collect(),
                        config_type: c.config_type,
                        documentation: nullable(&c.documentation),
                    })
                    .collect(),
            })
            .collect(),
    }
}

#[test]
fn describe_configs() {
    for v in versions(ApiKey::DescribeConfigs) {
        let req = common::describe_configs_request(v);
        let ours = decode_ours(common::describe_configs_request_bytes(v), v, DescribeConfigsRequest::decode);
        assert_eq!(ours, describe_configs_request_from(&req), "v{v}");

        let resp = describe_configs_response(v);
        let bytes = encode_ours(|w| resp.encode(w, v));
        if v == 0 {
            // Laid out from Kafka's schema of version 0: `is_default` where later versions have
            // `config_source`, and no synonyms.
            let mut w = Writer::new();
            w.i32(60);
            w.array_len(false, 2);
            w.i16(0);
            w.nullable_string(false, None);
            w.i8(2);
            w.string(false, "orders");
            w.array_len(false, 2);
            w.string(false, "retention.ms");
            w.nullable_string(false, Some("86400000"));
            w.bool(false);
            w.bool(false);
            w.bool(false);
            w.string(false, "sasl.jaas.config");
            w.nullable_string(false, None);
            w.bool(true);
            w.bool(true);
            w.bool(true);
            w.i16(3);
            w.nullable_string(false, Some("Topic 'gone' does not exist."));
            w.i8(2);
            w.string(false, "gone");
            w.array_len(false, 0);
            assert_eq!(bytes, w.buf.freeze(), "v0");
        } else {
            let theirs: kp::DescribeConfigsResponse = oracle_decode(bytes, v);
            assert_eq!(describe_configs_response_from(&theirs), resp, "v{v}");
        }
    }
}

fn describe_cluster_response(v: i16) -> DescribeClusterResponse {
    DescribeClusterResponse {
        throttle_time_ms: 70,
        error_code: 1,
        error_message: Some("not all brokers answered".into()),
        endpoint_type: if v >= 1 { 2 } else { 1 },
        cluster_id: "ringtail-cluster".into(),
        controller_id: 3,
        brokers: vec![
            DescribeClusterBroker {
                broker_id: 1,
                host: "b1.example".into(),
                port: 9092,
                rack: Some("rack-a".into()),
                is_fenced: v >= 2,
            },
            DescribeClusterBroker { broker_id: 2, host: "b2.example".into(), port: 9093, rack: None, is_fenced: false },
        ],
        cluster_authorized_operations: 0x1ff,
    }
}

fn describe_cluster_response_from(theirs: &kp::DescribeClusterResponse) -> DescribeClusterResponse {
    DescribeClusterResponse {
        throttle_time_ms: theirs.throttle_time_ms,
        error_code: theirs.error_code,
        error_message: nullable(&theirs.error_message),
        endpoint_type: theirs.endpoint_type,
        cluster_id: string(&theirs.cluster_id),
        controller_id: theirs.controller_id.0,
        brokers: theirs
            .brokers
            .iter()
            .map(|b| DescribeClusterBroker {
                broker_id: b.broker_id.0,
                host: string(&b.host),
                port: b.port,
                rack: nullable(&b.rack),
                is_fenced: b.is_fenced,
            })
            .collect(),
        cluster_authorized_operations: theirs.cluster_authorized_operations,
    }
}

#[test]
fn describe_cluster() {
    for v in versions(ApiKey::DescribeCluster) {
        let req = common::describe_cluster_request(v);
        let ours = decode_ours(oracle_encode(&req, v), v, DescribeClusterRequest::decode);
        let expected = DescribeClusterRequest {
            include_cluster_authorized_operations: req.include_cluster_authorized_operations,
            endpoint_type: req.endpoint_type,
            include_fenced_brokers: req.include_fenced_brokers,
        };
        assert_eq!(ours, expected, "v{v}");

        let resp = describe_cluster_response(v);
        let theirs: kp::DescribeClusterResponse = oracle_decode(encode_ours(|w| resp.encode(w, v)), v);
        assert_eq!(describe_cluster_response_from(&theirs), resp, "v{v}");
    }
}

#[test]
fn describe_quorum() {
    use kafka_protocol::messages::describe_quorum_request as rq;
    use kafka_protocol::messages::describe_quorum_response as rs;
    for v in versions(ApiKey::DescribeQuorum) {
        let req = kp::DescribeQuorumRequest::default().with_topics(vec![rq::TopicData::default()
            .with_topic_name(common::topic("__cluster_metadata"))
            .with_partitions(vec![rq::PartitionData::default().with_partition_index(0)])]);
        let ours = decode_ours(oracle_encode(&req, v), v, DescribeQuorumRequest::decode);
        assert_eq!(ours.topics, vec![("__cluster_metadata".to_string(), vec![0])], "v{v}");

        let replica = |id: i32, end: i64| ReplicaState {
            replica_id: id,
            replica_directory_id: if v >= 2 { [id as u8; 16] } else { [0; 16] },
            log_end_offset: end,
            last_fetch_timestamp: if v >= 1 { 1_700_000_000_000 + end } else { -1 },
            last_caught_up_timestamp: if v >= 1 { 1_700_000_000_000 } else { -1 },
        };
        let resp = DescribeQuorumResponse {
            error_code: 0,
            error_message: if v >= 2 { Some("fine".into()) } else { None },
            topics: vec![QuorumTopic {
                topic_name: "__cluster_metadata".into(),
                partitions: vec![QuorumPartition {
                    partition_index: 0,
                    error_code: 0,
                    error_message: None,
                    leader_id: 2,
                    leader_epoch: 7,
                    high_watermark: 120,
                    current_voters: vec![replica(1, 120), replica(2, 120), replica(3, 99)],
                    observers: vec![replica(4, 120)],
                }],
            }],
            nodes: if v >= 2 {
                vec![QuorumNode { node_id: 1, listeners: vec![("CONTROLLER".into(), "h1".into(), 9093)] }]
            } else {
                Vec::new()
            },
        };
        let theirs: rs::DescribeQuorumResponse = oracle_decode(encode_ours(|w| resp.encode(w, v)), v);
        let back = |r: &rs::ReplicaState| ReplicaState {
            replica_id: r.replica_id.0,
            replica_directory_id: *r.replica_directory_id.as_bytes(),
            log_end_offset: r.log_end_offset,
            last_fetch_timestamp: r.last_fetch_timestamp,
            last_caught_up_timestamp: r.last_caught_up_timestamp,
        };
        let decoded = DescribeQuorumResponse {
            error_code: theirs.error_code,
            // Absent below version 2 (the oracle then reads its default).
            error_message: nullable(&theirs.error_message).filter(|_| v >= 2),
            topics: theirs
                .topics
                .iter()
                .map(|t| QuorumTopic {
                    topic_name: topic_name(&t.topic_name),
                    partitions: t
                        .partitions
                        .iter()
                        .map(|p| QuorumPartition {
                            partition_index: p.partition_index,
                            error_code: p.error_code,
                            error_message: nullable(&p.error_message).filter(|_| v >= 2),
                            leader_id: p.leader_id.0,
                            leader_epoch: p.leader_epoch,
                            high_watermark: p.high_watermark,
                            current_voters: p.current_voters.iter().map(back).collect(),
                            observers: p.observers.iter().map(back).collect(),
                        })
                        .collect(),
                })
                .collect(),
            nodes: theirs
                .nodes
                .iter()
                .map(|n| QuorumNode {
                    node_id: n.node_id.0,
                    listeners: n.listeners.iter().map(|l| (string(&l.name), string(&l.host), l.port)).collect(),
                })
                .collect(),
        };
        assert_eq!(decoded, resp, "v{v}");
    }
}

fn find_coordinator_response(v: i16) -> FindCoordinatorResponse {
    let coordinator = |key: &str, error_code: i16| Coordinator {
        // Versions 0-3 do not send the key.
        key: if v >= 4 { key.into() } else { String::new() },
        node_id: if error_code == 0 { 2 } else { -1 },
        host: if error_code == 0 { "b2.example".into() } else { String::new() },
        port: if error_code == 0 { 9093 } else { -1 },
        error_code,
        error_message: if v >= 1 && error_code != 0 { Some("no coordinator yet".into()) } else { None },
    };
    FindCoordinatorResponse {
        throttle_time_ms: if v >= 1 { 3 } else { 0 },
        coordinators: if v >= 4 {
            vec![coordinator("tx-a", 0), coordinator("tx-b", 15)]
        } else {
            vec![coordinator("tx-a", 15)]
        },
    }
}

#[test]
fn find_coordinator() {
    for v in versions(ApiKey::FindCoordinator) {
        let req = common::find_coordinator_request(v);
        let ours = decode_ours(oracle_encode(&req, v), v, FindCoordinatorRequest::decode);
        assert_eq!(ours, find_coordinator_request_from(&req, v), "v{v}");

        let resp = find_coordinator_response(v);
        let theirs: kp::FindCoordinatorResponse = oracle_decode(encode_ours(|w| resp.encode(w, v)), v);
        assert_eq!(find_coordinator_response_from(&theirs, v), resp, "v{v}");
    }
}

fn join_group_request_from(theirs: &kp::JoinGroupRequest, v: i16) -> JoinGroupRequest {
    JoinGroupRequest {
        group_id: group_name(&theirs.group_id),
        session_timeout_ms: theirs.session_timeout_ms,
        // Version 0 has no rebalance timeout: the session timeout stands in, as in Kafka.
        rebalance_timeout_ms: if v >= 1 { theirs.rebalance_timeout_ms } else { theirs.session_timeout_ms },
        member_id: string(&theirs.member_id),
        group_instance_id: nullable(&theirs.group_instance_id),
        protocol_type: string(&theirs.protocol_type),
        protocols: theirs
            .protocols
            .iter()
            .map(|p| JoinGroupRequestProtocol { name: string(&p.name), metadata: p.metadata.clone() })
            .collect(),
        reason: nullable(&theirs.reason),
    }
}

fn join_group_response(v: i16) -> JoinGroupResponse {
    JoinGroupResponse {
        throttle_time_ms: if v >= 2 { 80 } else { 0 },
        error_code: 27,
        generation_id: 12,
        protocol_type: if v >= 7 { Some("consumer".into()) } else { None },
        protocol_name: Some("range".into()),
        leader: "consumer-1-5f2a".into(),
        skip_assignment: v >= 9,
        member_id: "consumer-2-9c1d".into(),
        members: vec![
            JoinGroupResponseMember {
                member_id: "consumer-1-5f2a".into(),
                group_instance_id: if v >= 5 { Some("instance-a".into()) } else { None },
                metadata: Bytes::from_static(b"\x00\x03sub"),
            },
            JoinGroupResponseMember {
                member_id: "consumer-2-9c1d".into(),
                group_instance_id: None,
                metadata: Bytes::new(),
            },
        ],
    }
}

fn join_group_response_from(theirs: &kp::JoinGroupResponse) -> JoinGroupResponse {
    JoinGroupResponse {
        throttle_time_ms: theirs.throttle_time_ms,
        error_code: theirs.error_code,
        generation_id: theirs.generation_id,
        protocol_type: nullable(&theirs.protocol_type),
        protocol_name: nullable(&theirs.protocol_name),
        leader: string(&theirs.leader),
        skip_assignment: theirs.skip_assignment,
        member_id: string(&theirs.member_id),
        members: theirs
            .members
            .iter()
            .map(|m| JoinGroupResponseMember {
                member_id: string(&m.member_id),
                group_instance_id: nullable(&m.group_instance_id),
                metadata: m.metadata.clone(),
            })
            .collect(),
    }
}

#[test]
fn join_group() {
    for v in versions(ApiKey::JoinGroup) {
        let req = common::join_group_request(v);
        let ours = decode_ours(oracle_encode(&req, v), v, JoinGroupRequest::decode);
        assert_eq!(ours, join_group_request_from(&req, v), "v{v}");

        let resp = join_group_response(v);
        let theirs: kp::JoinGroupResponse = oracle_decode(encode_ours(|w| resp.encode(w, v)), v);
        assert_eq!(join_group_response_from(&theirs), resp, "v{v}");

        // An error answer has no protocol: null from version 7, an empty string before.
        let failed = JoinGroupResponse { error_code: 79, protocol_name: None, ..JoinGroupResponse::default() };
        let theirs: kp::JoinGroupResponse = oracle_decode(encode_ours(|w| failed.encode(w, v)), v);
        assert_eq!(nullable(&theirs.protocol_name), if v >= 7 { None } else { Some(String::new()) }, "v{v}");
    }
}

fn sync_group_request_from(theirs: &kp::SyncGroupRequest) -> SyncGroupRequest {
    SyncGroupRequest {
        group_id: group_name(&theirs.group_id),
        generation_id: theirs.generation_id,
        member_id: string(&theirs.member_id),
        group_instance_id: nullable(&theirs.group_instance_id),
        protocol_type: nullable(&theirs.protocol_type),
        protocol_name: nullable(&theirs.protocol_name),
        assignments: theirs
            .assignments
            .iter()
            .map(|a| SyncGroupRequestAssignment { member_id: string(&a.member_id), assignment: a.assignment.clone() })
            .collect(),
    }
}

fn sync_group_response(v: i16) -> SyncGroupResponse {
    SyncGroupResponse {
        throttle_time_ms: if v >= 1 { 90 } else { 0 },
        error_code: 27,
        protocol_type: if v >= 5 { Some("consumer".into()) } else { None },
        protocol_name: if v >= 5 { Some("range".into()) } else { None },
        assignment: Bytes::from_static(b"\x00\x01orders"),
    }
}

fn sync_group_response_from(theirs: &kp::SyncGroupResponse) -> SyncGroupResponse {
    SyncGroupResponse {
        throttle_time_ms: theirs.throttle_time_ms,
        error_code: theirs.error_code,
        protocol_type: nullable(&theirs.protocol_type),
        protocol_name: nullable(&theirs.protocol_name),
        assignment: theirs.assignment.clone(),
    }
}

#[test]
fn sync_group() {
    for v in versions(ApiKey::SyncGroup) {
        let req = common::sync_group_request(v);
        let ours = decode_ours(oracle_encode(&req, v), v, SyncGroupRequest::decode);
        assert_eq!(ours, sync_group_request_from(&req), "v{v}");

        let resp = sync_group_response(v);
        let theirs: kp::SyncGroupResponse = oracle_decode(encode_ours(|w| resp.encode(w, v)), v);
        assert_eq!(sync_group_response_from(&theirs), resp, "v{v}");
    }
}

#[test]
fn heartbeat() {
    for v in versions(ApiKey::Heartbeat) {
        let req = common::heartbeat_request(v);
        let ours = decode_ours(oracle_encode(&req, v), v, HeartbeatRequest::decode);
        let expected = HeartbeatRequest {
            group_id: group_name(&req.group_id),
            generation_id: req.generation_id,
            member_id: string(&req.member_id),
            group_instance_id: nullable(&req.group_instance_id),
        };
        assert_eq!(ours, expected, "v{v}");

        let resp = HeartbeatResponse { throttle_time_ms: if v >= 1 { 100 } else { 0 }, error_code: 27 };
        let theirs: kp::HeartbeatResponse = oracle_decode(encode_ours(|w| resp.encode(w, v)), v);
        let back = HeartbeatResponse { throttle_time_ms: theirs.throttle_time_ms, error_code: theirs.error_code };
        assert_eq!(back, resp, "v{v}");
    }
}

#[test]
fn init_producer_id() {
    for v in versions(ApiKey::InitProducerId) {
        let req = common::init_producer_id_request(v);
        let ours = decode_ours(oracle_encode(&req, v), v, InitProducerIdRequest::decode);
        let expected = InitProducerIdRequest {
            transactional_id: Some("orders-txn".into()),
            transaction_timeout_ms: 60_000,
            producer_id: if v >= 3 { 4001 } else { -1 },
            producer_epoch: if v >= 3 { 3 } else { -1 },
        };
        assert_eq!(ours, expected, "v{v}");
        // Idempotence only: no transactional id.
        let bare = kp::InitProducerIdRequest::default().with_transactional_id(None);
        let ours = decode_ours(oracle_encode(&bare, v), v, InitProducerIdRequest::decode);
        assert_eq!(ours.transactional_id, None, "v{v}");

        let resp =
            InitProducerIdResponse { throttle_time_ms: 5, error_code: 0, producer_id: 1 << 40, producer_epoch: 7 };
        let theirs: kp::InitProducerIdResponse = oracle_decode(encode_ours(|w| resp.encode(w, v)), v);
        let back = InitProducerIdResponse {
            throttle_time_ms: theirs.throttle_time_ms,
            error_code: theirs.error_code,
            producer_id: theirs.producer_id.0,
            producer_epoch: theirs.producer_epoch,
        };
        assert_eq!(back, resp, "v{v}");
    }
}

fn leave_group_request_from(theirs: &kp::LeaveGroupRequest, v: i16) -> LeaveGroupRequest {
    LeaveGroupRequest {
        group_id: group_name(&theirs.group_id),
        members: if v >= 3 {
            theirs
                .members
                .iter()
                .map(|m| MemberIdentity {
                    member_id: string(&m.member_id),
                    group_instance_id: nullable(&m.group_instance_id),
                    reason: nullable(&m.reason),
                })
                .collect()
        } else {
            vec![MemberIdentity { member_id: string(&theirs.member_id), group_instance_id: None, reason: None }]
        },
    }
}

fn leave_group_response(v: i16, error_code: i16) -> LeaveGroupResponse {
    LeaveGroupResponse {
        throttle_time_ms: if v >= 1 { 110 } else { 0 },
        error_code,
        members: vec![
            MemberResponse { member_id: "consumer-1-5f2a".into(), group_instance_id: None, error_code: 0 },
            MemberResponse { member_id: String::new(), group_instance_id: Some("instance-b".into()), error_code: 25 },
        ],
    }
}

fn leave_group_response_from(theirs: &kp::LeaveGroupResponse) -> LeaveGroupResponse {
    LeaveGroupResponse {
        throttle_time_ms: theirs.throttle_time_ms,
        error_code: theirs.error_code,
        members: theirs
            .members
            .iter()
            .map(|m| MemberResponse {
                member_id: string(&m.member_id),
                group_instance_id: nullable(&m.group_instance_id),
                error_code: m.error_code,
            })
            .collect(),
    }
}

#[test]
fn leave_group() {
    for v in versions(ApiKey::LeaveGroup) {
        let req = common::leave_group_request(v);
        let ours = decode_ours(oracle_encode(&req, v), v, LeaveGroupRequest::decode);
        assert_eq!(ours, leave_group_request_from(&req, v), "v{v}");

        // Versions 0-2 have no per-member results: the top-level error code, or else the first
        // member error, stands for them.
        for (error_code, sent) in [(0, 25), (16, 16)] {
            let resp = leave_group_response(v, error_code);
            let theirs: kp::LeaveGroupResponse = oracle_decode(encode_ours(|w| resp.encode(w, v)), v);
            let expected = if v >= 3 { resp } else { LeaveGroupResponse { error_code: sent, members: vec![], ..resp } };
            assert_eq!(leave_group_response_from(&theirs), expected, "v{v}");
        }
    }
}

fn offset_commit_request_from(theirs: &kp::OffsetCommitRequest, v: i16) -> OffsetCommitRequest {
    OffsetCommitRequest {
        group_id: group_name(&theirs.group_id),
        generation_id_or_member_epoch: theirs.generation_id_or_member_epoch,
        member_id: string(&theirs.member_id),
        group_instance_id: nullable(&theirs.group_instance_id),
        retention_time_ms: theirs.retention_time_ms,
        topics: theirs
            .topics
            .iter()
            .map(|t| OffsetCommitRequestTopic {
                name: topic_name(&t.name),
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| OffsetCommitRequestPartition {
                        partition_index: p.partition_index,
                        committed_offset: p.committed_offset,
                        committed_leader_epoch: p.committed_leader_epoch,
                        // Version 1 only, which the oracle does not know.
                        commit_timestamp: if v == 1 { common::commit_timestamp(p.partition_index) } else { -1 },
                        committed_metadata: nullable(&p.committed_metadata),
                    })
                    .collect(),
            })
            .collect(),
    }
}

fn offset_commit_response(v: i16) -> OffsetCommitResponse {
    let partition =
        |partition_index: i32, error_code: i16| OffsetCommitResponsePartition { partition_index, error_code };
    OffsetCommitResponse {
        throttle_time_ms: if v >= 3 { 120 } else { 0 },
        topics: vec![
            OffsetCommitResponseTopic { name: "orders".into(), partitions: vec![partition(0, 0), partition(1, 22)] },
            OffsetCommitResponseTopic { name: "payments".into(), partitions: vec![partition(2, 3)] },
        ],
    }
}

fn offset_commit_response_from(theirs: &kp::OffsetCommitResponse) -> OffsetCommitResponse {
    OffsetCommitResponse {
        throttle_time_ms: theirs.throttle_time_ms,
        topics: theirs
            .topics
            .iter()
            .map(|t| OffsetCommitResponseTopic {
                name: topic_name(&t.name),
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| OffsetCommitResponsePartition {
                        partition_index: p.partition_index,
                        error_code: p.error_code,
                    })
                    .collect(),
            })
            .collect(),
    }
}

#[test]
fn offset_commit() {
    for v in versions(ApiKey::OffsetCommit) {
        let req = common::offset_commit_request(v);
        let ours = decode_ours(common::offset_commit_request_bytes(v), v, OffsetCommitRequest::decode);
        assert_eq!(ours, offset_commit_request_from(&req, v), "v{v}");

        let resp = offset_commit_response(v);
        // Versions 0 and 1 are the same on the wire as version 2.
        let theirs: kp::OffsetCommitResponse = oracle_decode(encode_ours(|w| resp.encode(w, v)), v.max(2));
        assert_eq!(offset_commit_response_from(&theirs), resp, "v{v}");
    }
}

fn offset_fetch_response(v: i16) -> OffsetFetchResponse {
    let partition = |partition_index: i32, committed_offset: i64, metadata: Option<&str>, error_code: i16| {
        OffsetFetchResponsePartition {
            partition_index,
            committed_offset,
            committed_leader_epoch: if v >= 5 && committed_offset >= 0 { 5 + partition_index } else { -1 },
            metadata: metadata.map(Into::into),
            error_code,
        }
    };
    let topics = vec![
        OffsetFetchResponseTopic {
            name: "orders".into(),
            partitions: vec![partition(0, 42, Some("checkpoint 9"), 0), partition(1, -1, Some(""), 0)],
        },
        OffsetFetchResponseTopic { name: "payments".into(), partitions: vec![partition(2, -1, None, 3)] },
    ];
    OffsetFetchResponse {
        throttle_time_ms: if v >= 3 { 130 } else { 0 },
        groups: if v >= 8 {
            vec![
                OffsetFetchResponseGroup { group_id: "orders-app".into(), topics, error_code: 0 },
                OffsetFetchResponseGroup { group_id: "audit".into(), topics: vec![], error_code: 16 },
            ]
        } else {
            // No group id on the wire; a group error code from version 2.
            vec![OffsetFetchResponseGroup { group_id: String::new(), topics, error_code: if v >= 2 { 14 } else { 0 } }]
        },
    }
}

#[test]
fn offset_fetch() {
    for v in versions(ApiKey::OffsetFetch) {
        let req = common::offset_fetch_request(v);
        let ours = decode_ours(common::offset_fetch_request_bytes(v), v, OffsetFetchRequest::decode);
        assert_eq!(ours, offset_fetch_request_from(&req, v), "v{v}");

        // A null topic list asks for every topic, from version 2; it is refused before.
        if (2..=7).contains(&v) {
            let all = kp::OffsetFetchRequest::default().with_group_id(common::group("audit")).with_topics(None);
            let ours = decode_ours(oracle_encode(&all, v), v, OffsetFetchRequest::decode);
            assert_eq!(
                ours.groups,
                vec![OffsetFetchRequestGroup {
                    group_id: "audit".into(),
                    member_id: None,
                    member_epoch: -1,
                    topics: None
                }],
                "v{v}"
            );
        } else if v < 2 {
            let mut w = Writer::new();
            w.string(false, "audit");
            w.nullable_array_len(false, None);
            let e = OffsetFetchRequest::decode(&mut Reader::new(w.buf.freeze()), v).unwrap_err();
            assert!(matches!(e, DecodeError::Invalid { what: "topics", .. }), "v{v}: {e}");
        }

        let resp = offset_fetch_response(v);
        // Version 0 is the same on the wire as version 1.
        let theirs: kp::OffsetFetchResponse = oracle_decode(encode_ours(|w| resp.encode(w, v)), v.max(1));
        assert_eq!(offset_fetch_response_from(&theirs, v), resp, "v{v}");
    }
}

fn offset_delete_request_from(theirs: &kp::OffsetDeleteRequest) -> OffsetDeleteRequest {
    OffsetDeleteRequest {
        group_id: group_name(&theirs.group_id),
        topics: theirs
            .topics
            .iter()
            .map(|t| OffsetDeleteRequestTopic {
                name: topic_name(&t.name),
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| OffsetDeleteRequestPartition { partition_index: p.partition_index })
                    .collect(),
            })
            .collect(),
    }
}

fn offset_delete_response() -> OffsetDeleteResponse {
    let partition =
        |partition_index: i32, error_code: i16| OffsetDeleteResponsePartition { partition_index, error_code };
    OffsetDeleteResponse {
        error_code: 16,
        throttle_time_ms: 140,
        topics: vec![
            OffsetDeleteResponseTopic { name: "orders".into(), partitions: vec![partition(0, 0), partition(1, 86)] },
            OffsetDeleteResponseTopic { name: "payments".into(), partitions: vec![partition(2, 3)] },
        ],
    }
}

fn offset_delete_response_from(theirs: &kp::OffsetDeleteResponse) -> OffsetDeleteResponse {
    OffsetDeleteResponse {
        error_code: theirs.error_code,
        throttle_time_ms: theirs.throttle_time_ms,
        topics: theirs
            .topics
            .iter()
            .map(|t| OffsetDeleteResponseTopic {
                name: topic_name(&t.name),
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| OffsetDeleteResponsePartition {
                        partition_index: p.partition_index,
                        error_code: p.error_code,
                    })
                    .collect(),
            })
            .collect(),
    }
}

#[test]
fn offset_delete() {
    for v in versions(ApiKey::OffsetDelete) {
        let req = common::offset_delete_request(v);
        let ours = decode_ours(oracle_encode(&req, v), v, OffsetDeleteRequest::decode);
        assert_eq!(ours, offset_delete_request_from(&req), "v{v}");

        let resp = offset_delete_response();
        let theirs: kp::OffsetDeleteResponse = oracle_decode(encode_ours(|w| resp.encode(w, v)), v);
        assert_eq!(offset_delete_response_from(&theirs), resp, "v{v}");
    }
}

fn list_groups_response(v: i16) -> ListGroupsResponse {
    let listed = |group_id: &str, group_state: &str| ListedGroup {
        group_id: group_id.into(),
        protocol_type: "consumer".into(),
        group_state: if v >= 4 { group_state.into() } else { String::new() },
        group_type: if v >= 5 { "classic".into() } else { String::new() },
    };
    ListGroupsResponse {
        throttle_time_ms: if v >= 1 { 150 } else { 0 },
        error_code: 14,
        groups: vec![listed("orders-app", "Stable"), listed("audit", "Empty")],
    }
}

#[test]
fn list_groups() {
    for v in versions(ApiKey::ListGroups) {
        let req = common::list_groups_request(v);
        let ours = decode_ours(oracle_encode(&req, v), v, ListGroupsRequest::decode);
        let expected = ListGroupsRequest {
            states_filter: req.states_filter.iter().map(string).collect(),
            types_filter: req.types_filter.iter().map(string).collect(),
        };
        assert_eq!(ours, expected, "v{v}");

        let resp = list_groups_response(v);
        let theirs: kp::ListGroupsResponse = oracle_decode(encode_ours(|w| resp.encode(w, v)), v);
        assert_eq!(list_groups_response_from(&theirs), resp, "v{v}");
    }
}

fn describe_groups_response(v: i16) -> DescribeGroupsResponse {
    DescribeGroupsResponse {
        throttle_time_ms: if v >= 1 { 160 } else { 0 },
        groups: vec![
            DescribedGroup {
                error_code: 0,
                error_message: None,
                group_id: "orders-app".into(),
                group_state: "Stable".into(),
                protocol_type: "consumer".into(),
                protocol_data: "range".into(),
                members: vec![
                    DescribedGroupMember {
                        member_id: "consumer-1-5f2a".into(),
                        group_instance_id: if v >= 4 { Some("instance-a".into()) } else { None },
                        client_id: "consumer-1".into(),
                        client_host: "/10.0.0.7".into(),
                        member_metadata: Bytes::from_static(b"\x00\x03sub"),
                        member_assignment: Bytes::from_static(b"\x00\x01orders"),
                    },
                    DescribedGroupMember {
                        member_id: "consumer-2-9c1d".into(),
                        group_instance_id: None,
                        client_id: "consumer-2".into(),
                        client_host: "/10.0.0.8".into(),
                        member_metadata: Bytes::new(),
                        member_assignment: Bytes::new(),
                    },
                ],
                authorized_operations: if v >= 3 { 0x0f8 } else { i32::MIN },
            },
            DescribedGroup {
                error_code: 16,
                error_message: if v >= 6 { Some("not the coordinator".into()) } else { None },
                group_id: "audit".into(),
                group_state: String::new(),
                protocol_type: String::new(),
                protocol_data: String::new(),
                members: vec![],
                authorized_operations: i32::MIN,
            },
        ],
    }
}

#[test]
fn describe_groups() {
    for v in versions(ApiKey::DescribeGroups) {
        let req = common::describe_groups_request(v);
        let ours = decode_ours(oracle_encode(&req, v), v, DescribeGroupsRequest::decode);
        let expected = DescribeGroupsRequest {
            groups: req.groups.iter().map(group_name).collect(),
            include_authorized_operations: req.include_authorized_operations,
        };
        assert_eq!(ours, expected, "v{v}");

        let resp = describe_groups_response(v);
        let theirs: kp::DescribeGroupsResponse = oracle_decode(encode_ours(|w| resp.encode(w, v)), v);
        assert_eq!(describe_groups_response_from(&theirs), resp, "v{v}");
    }
}

#[test]
fn delete_groups() {
    for v in versions(ApiKey::DeleteGroups) {
        let req = common::delete_groups_request(v);
        let ours = decode_ours(oracle_encode(&req, v), v, DeleteGroupsRequest::decode);
        assert_eq!(
            ours,
            DeleteGroupsRequest { groups_names: req.groups_names.iter().map(group_name).collect() },
            "v{v}"
        );

        let resp = DeleteGroupsResponse {
            throttle_time_ms: 170,
            results: vec![
                DeletableGroupResult { group_id: "orders-app".into(), error_code: 0 },
                DeletableGroupResult { group_id: "audit".into(), error_code: 68 },
            ],
        };
        let theirs: kp::DeleteGroupsResponse = oracle_decode(encode_ours(|w| resp.encode(w, v)), v);
        let back = DeleteGroupsResponse {
            throttle_time_ms: theirs.throttle_time_ms,
            results: theirs
                .results
                .iter()
                .map(|r| DeletableGroupResult { group_id: group_name(&r.group_id), error_code: r.error_code })
                .collect(),
        };
        assert_eq!(back, resp, "v{v}");
    }
}
