//! Our codecs against Kafka's generated schemas (the `kafka-protocol` crate, test-only): for
//! every supported version, requests encoded by the oracle decode to the same fields with our
//! decoders, and responses we encode decode to the same fields with the oracle. Versions the
//! oracle no longer knows (Kafka 4 dropped them) are checked against a neighbouring version that
//! is the same on the wire, or against bytes laid out by hand from Kafka's older schemas.

mod common;

use bytes::Bytes;
use common::{oracle_decode, oracle_encode, versions};
use kafka_protocol::messages as kp;
use kafka_protocol::protocol::StrBytes;
use ringtail_net::header::ApiKey;
use ringtail_net::messages::api_versions::{ApiVersionsRequest, ApiVersionsResponse};
use ringtail_net::messages::create_partitions::*;
use ringtail_net::messages::create_topics::*;
use ringtail_net::messages::delete_topics::*;
use ringtail_net::messages::describe_cluster::*;
use ringtail_net::messages::describe_configs::*;
use ringtail_net::messages::list_offsets::*;
use ringtail_net::messages::metadata::*;
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

fn string(x: &StrBytes) -> String {
    x.as_str().to_owned()
}

fn nullable(x: &Option<StrBytes>) -> Option<String> {
    x.as_ref().map(string)
}

fn topic_name(x: &kp::TopicName) -> String {
    string(&x.0)
}

fn broker_ids(x: &[kp::BrokerId]) -> Vec<i32> {
    x.iter().map(|id| id.0).collect()
}

fn id<T: AsRef<[u8]>>(x: &T) -> [u8; 16] {
    x.as_ref().try_into().expect("uuids are 16 bytes")
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

        let resp = ApiVersionsResponse::supported(0);
        let mut w = Writer::new();
        resp.encode(&mut w, v);
        let theirs: kp::ApiVersionsResponse = oracle_decode(w.buf.freeze(), v);
        assert_eq!(theirs.error_code, 0);
        assert_eq!(theirs.api_keys.len(), resp.api_keys.len(), "v{v}");
        for (a, b) in theirs.api_keys.iter().zip(&resp.api_keys) {
            assert_eq!((a.api_key, a.min_version, a.max_version), (b.api_key, b.min_version, b.max_version));
        }
    }
}

fn metadata_request_from(theirs: &kp::MetadataRequest) -> MetadataRequest {
    MetadataRequest {
        topics: theirs.topics.as_ref().map(|topics| {
            topics
                .iter()
                .map(|t| MetadataRequestTopic { topic_id: id(&t.topic_id), name: t.name.as_ref().map(topic_name) })
                .collect()
        }),
        allow_auto_topic_creation: theirs.allow_auto_topic_creation,
        include_cluster_authorized_operations: theirs.include_cluster_authorized_operations,
        include_topic_authorized_operations: theirs.include_topic_authorized_operations,
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
    }
}

fn metadata_response_from(theirs: &kp::MetadataResponse) -> MetadataResponse {
    MetadataResponse {
        throttle_time_ms: theirs.throttle_time_ms,
        brokers: theirs
            .brokers
            .iter()
            .map(|b| MetadataResponseBroker {
                node_id: b.node_id.0,
                host: string(&b.host),
                port: b.port,
                rack: nullable(&b.rack),
            })
            .collect(),
        cluster_id: nullable(&theirs.cluster_id),
        controller_id: theirs.controller_id.0,
        topics: theirs
            .topics
            .iter()
            .map(|t| MetadataResponseTopic {
                error_code: t.error_code,
                name: t.name.as_ref().map(topic_name),
                topic_id: id(&t.topic_id),
                is_internal: t.is_internal,
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| MetadataResponsePartition {
                        error_code: p.error_code,
                        partition_index: p.partition_index,
                        leader_id: p.leader_id.0,
                        leader_epoch: p.leader_epoch,
                        replica_nodes: broker_ids(&p.replica_nodes),
                        isr_nodes: broker_ids(&p.isr_nodes),
                        offline_replicas: broker_ids(&p.offline_replicas),
                    })
                    .collect(),
                topic_authorized_operations: t.topic_authorized_operations,
            })
            .collect(),
        cluster_authorized_operations: theirs.cluster_authorized_operations,
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

fn list_offsets_request_from(theirs: &kp::ListOffsetsRequest) -> ListOffsetsRequest {
    ListOffsetsRequest {
        replica_id: theirs.replica_id.0,
        isolation_level: theirs.isolation_level,
        topics: theirs
            .topics
            .iter()
            .map(|t| ListOffsetsTopic {
                name: topic_name(&t.name),
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| ListOffsetsPartition {
                        partition_index: p.partition_index,
                        current_leader_epoch: p.current_leader_epoch,
                        timestamp: p.timestamp,
                    })
                    .collect(),
            })
            .collect(),
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

fn list_offsets_response_from(theirs: &kp::ListOffsetsResponse) -> ListOffsetsResponse {
    ListOffsetsResponse {
        throttle_time_ms: theirs.throttle_time_ms,
        topics: theirs
            .topics
            .iter()
            .map(|t| ListOffsetsTopicResponse {
                name: topic_name(&t.name),
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| ListOffsetsPartitionResponse {
                        partition_index: p.partition_index,
                        error_code: p.error_code,
                        timestamp: p.timestamp,
                        offset: p.offset,
                        leader_epoch: p.leader_epoch,
                    })
                    .collect(),
            })
            .collect(),
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

fn create_topics_request_from(theirs: &kp::CreateTopicsRequest) -> CreateTopicsRequest {
    CreateTopicsRequest {
        topics: theirs
            .topics
            .iter()
            .map(|t| CreatableTopic {
                name: topic_name(&t.name),
                num_partitions: t.num_partitions,
                replication_factor: t.replication_factor,
                assignments: t
                    .assignments
                    .iter()
                    .map(|a| CreatableReplicaAssignment {
                        partition_index: a.partition_index,
                        broker_ids: broker_ids(&a.broker_ids),
                    })
                    .collect(),
                configs: t
                    .configs
                    .iter()
                    .map(|c| CreatableTopicConfig { name: string(&c.name), value: nullable(&c.value) })
                    .collect(),
            })
            .collect(),
        timeout_ms: theirs.timeout_ms,
        validate_only: theirs.validate_only,
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

fn create_topics_response_from(theirs: &kp::CreateTopicsResponse) -> CreateTopicsResponse {
    CreateTopicsResponse {
        throttle_time_ms: theirs.throttle_time_ms,
        topics: theirs
            .topics
            .iter()
            .map(|t| CreatableTopicResult {
                name: topic_name(&t.name),
                topic_id: id(&t.topic_id),
                error_code: t.error_code,
                error_message: nullable(&t.error_message),
                num_partitions: t.num_partitions,
                replication_factor: t.replication_factor,
                configs: t.configs.as_ref().map(|configs| {
                    configs
                        .iter()
                        .map(|c| CreatableTopicConfigs {
                            name: string(&c.name),
                            value: nullable(&c.value),
                            read_only: c.read_only,
                            config_source: c.config_source,
                            is_sensitive: c.is_sensitive,
                        })
                        .collect()
                }),
            })
            .collect(),
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
            DescribeClusterBroker { broker_id: 1, host: "b1.example".into(), port: 9092, rack: Some("rack-a".into()) },
            DescribeClusterBroker { broker_id: 2, host: "b2.example".into(), port: 9093, rack: None },
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
        };
        assert_eq!(ours, expected, "v{v}");

        let resp = describe_cluster_response(v);
        let theirs: kp::DescribeClusterResponse = oracle_decode(encode_ours(|w| resp.encode(w, v)), v);
        assert_eq!(describe_cluster_response_from(&theirs), resp, "v{v}");
    }
}
