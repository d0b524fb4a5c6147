//! Our codecs of the admin APIs (records deletion, ACLs, configs, log directories, client quotas,
//! producers, topic partitions) against Kafka's generated schemas (the `kafka-protocol` crate,
//! test-only): for every supported version, requests encoded by the oracle decode to the same
//! fields with our decoders, and responses we encode decode to the same fields with the oracle.

mod common;

use std::fmt::Debug;

use bytes::Bytes;
use common::{broker_ids, id, nullable, oracle_decode, oracle_encode, string, topic_name, versions};
use kafka_protocol::messages as kp;
use kafka_protocol::protocol::{Decodable, Encodable};
use ringtail_net::header::ApiKey;
use ringtail_net::messages::acls::*;
use ringtail_net::messages::alter_configs::*;
use ringtail_net::messages::alter_replica_log_dirs::*;
use ringtail_net::messages::delete_records::*;
use ringtail_net::messages::describe_client_quotas::*;
use ringtail_net::messages::describe_log_dirs::*;
use ringtail_net::messages::describe_producers::*;
use ringtail_net::messages::describe_topic_partitions::*;
use ringtail_net::messages::elect_leaders::*;
use ringtail_net::messages::incremental_alter_configs::*;
use ringtail_net::messages::partition_reassignments::*;
use ringtail_net::{DecodeError, Reader, Writer};

type Decode<T> = fn(&mut Reader, i16) -> Result<T, DecodeError>;

/// Encodes `theirs` with the oracle at `v` and decodes it with ours, checking every byte was read
/// and the fields came out as `expected`.
fn check_request<M: Encodable, T: PartialEq + Debug>(theirs: &M, v: i16, decode: Decode<T>, expected: T) {
    let mut r = Reader::new(oracle_encode(theirs, v));
    let ours = decode(&mut r, v).unwrap_or_else(|e| panic!("v{v}: {e}"));
    assert_eq!(r.remaining(), 0, "v{v}: bytes left after our decoder");
    assert_eq!(ours, expected, "v{v}");
}

/// Encodes `ours` at `v` and decodes it with the oracle, which must read every byte; `back` turns
/// the oracle's message into ours, which must equal what was encoded.
fn check_response<M: Decodable, T: PartialEq + Debug>(
    ours: &T,
    v: i16,
    encode: impl FnOnce(&T, &mut Writer, i16),
    back: impl FnOnce(&M) -> T,
) {
    let mut w = Writer::new();
    encode(ours, &mut w, v);
    let theirs: M = oracle_decode(w.buf.freeze(), v);
    assert_eq!(&back(&theirs), ours, "v{v}");
}

// DeleteRecords.

fn delete_records_request_from(theirs: &kp::DeleteRecordsRequest) -> DeleteRecordsRequest {
    DeleteRecordsRequest {
        topics: theirs
            .topics
            .iter()
            .map(|t| DeleteRecordsTopic {
                name: topic_name(&t.name),
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| DeleteRecordsPartition { partition_index: p.partition_index, offset: p.offset })
                    .collect(),
            })
            .collect(),
        timeout_ms: theirs.timeout_ms,
    }
}

fn delete_records_response() -> DeleteRecordsResponse {
    let partition = |partition_index: i32, low_watermark: i64, error_code: i16| DeleteRecordsPartitionResult {
        partition_index,
        low_watermark,
        error_code,
    };
    DeleteRecordsResponse {
        throttle_time_ms: 25,
        topics: vec![
            DeleteRecordsTopicResult {
                name: "orders".into(),
                partitions: vec![partition(0, 42, 0), partition(1, -1, 6)],
            },
            DeleteRecordsTopicResult { name: "payments".into(), partitions: vec![partition(2, 7, 0)] },
        ],
    }
}

fn delete_records_response_from(theirs: &kp::DeleteRecordsResponse) -> DeleteRecordsResponse {
    DeleteRecordsResponse {
        throttle_time_ms: theirs.throttle_time_ms,
        topics: theirs
            .topics
            .iter()
            .map(|t| DeleteRecordsTopicResult {
                name: topic_name(&t.name),
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| DeleteRecordsPartitionResult {
                        partition_index: p.partition_index,
                        low_watermark: p.low_watermark,
                        error_code: p.error_code,
                    })
                    .collect(),
            })
            .collect(),
    }
}

#[test]
fn delete_records() {
    for v in versions(ApiKey::DeleteRecords) {
        let req = common::delete_records_request(v);
        check_request(&req, v, DeleteRecordsRequest::decode, delete_records_request_from(&req));
        check_response(&delete_records_response(), v, DeleteRecordsResponse::encode, delete_records_response_from);
    }
}

// DescribeAcls, CreateAcls, DeleteAcls.

/// A response with resources and ACLs, and one with only an error.
fn describe_acls_responses() -> [DescribeAclsResponse; 2] {
    let acl = |principal: &str, operation: i8, permission_type: i8| AclDescription {
        principal: principal.into(),
        host: "*".into(),
        operation,
        permission_type,
    };
    let found = DescribeAclsResponse {
        throttle_time_ms: 25,
        error_code: 0,
        error_message: None,
        resources: vec![
            DescribeAclsResource {
                resource_type: 2,
                resource_name: "orders".into(),
                pattern_type: 4,
                acls: vec![acl("User:alice", 3, 3), acl("User:bob", 4, 2)],
            },
            DescribeAclsResource {
                resource_type: 3,
                resource_name: "orders-app".into(),
                pattern_type: 3,
                acls: vec![],
            },
        ],
    };
    let failed = DescribeAclsResponse {
        throttle_time_ms: 0,
        error_code: 31,
        error_message: Some("Cluster authorization failed.".into()),
        resources: vec![],
    };
    [found, failed]
}

fn describe_acls_response_from(theirs: &kp::DescribeAclsResponse) -> DescribeAclsResponse {
    DescribeAclsResponse {
        throttle_time_ms: theirs.throttle_time_ms,
        error_code: theirs.error_code,
        error_message: nullable(&theirs.error_message),
        resources: theirs
            .resources
            .iter()
            .map(|r| DescribeAclsResource {
                resource_type: r.resource_type,
                resource_name: string(&r.resource_name),
                pattern_type: r.pattern_type,
                acls: r
                    .acls
                    .iter()
                    .map(|a| AclDescription {
                        principal: string(&a.principal),
                        host: string(&a.host),
                        operation: a.operation,
                        permission_type: a.permission_type,
                    })
                    .collect(),
            })
            .collect(),
    }
}

#[test]
fn describe_acls() {
    for v in versions(ApiKey::DescribeAcls) {
        let req = common::describe_acls_request(v);
        let filter = AclFilter {
            resource_type_filter: req.resource_type_filter,
            resource_name_filter: nullable(&req.resource_name_filter),
            pattern_type_filter: req.pattern_type_filter,
            principal_filter: nullable(&req.principal_filter),
            host_filter: nullable(&req.host_filter),
            operation: req.operation,
            permission_type: req.permission_type,
        };
        check_request(&req, v, DescribeAclsRequest::decode, DescribeAclsRequest { filter });
        for resp in describe_acls_responses() {
            check_response(&resp, v, DescribeAclsResponse::encode, describe_acls_response_from);
        }
    }
}

#[test]
fn create_acls() {
    for v in versions(ApiKey::CreateAcls) {
        let req = common::create_acls_request(v);
        let expected = CreateAclsRequest {
            creations: req
                .creations
                .iter()
                .map(|c| AclCreation {
                    resource_type: c.resource_type,
                    resource_name: string(&c.resource_name),
                    resource_pattern_type: c.resource_pattern_type,
                    principal: string(&c.principal),
                    host: string(&c.host),
                    operation: c.operation,
                    permission_type: c.permission_type,
                })
                .collect(),
        };
        check_request(&req, v, CreateAclsRequest::decode, expected);

        let resp = CreateAclsResponse {
            throttle_time_ms: 25,
            results: vec![
                AclCreationResult { error_code: 0, error_message: None },
                AclCreationResult { error_code: 87, error_message: Some("The resource name is invalid.".into()) },
            ],
        };
        check_response(&resp, v, CreateAclsResponse::encode, |theirs: &kp::CreateAclsResponse| CreateAclsResponse {
            throttle_time_ms: theirs.throttle_time_ms,
            results: theirs
                .results
                .iter()
                .map(|r| AclCreationResult { error_code: r.error_code, error_message: nullable(&r.error_message) })
                .collect(),
        });
    }
}

fn delete_acls_response() -> DeleteAclsResponse {
    let matching = DeleteAclsMatchingAcl {
        error_code: 0,
        error_message: None,
        resource_type: 2,
        resource_name: "orders".into(),
        pattern_type: 4,
        principal: "User:alice".into(),
        host: "*".into(),
        operation: 4,
        permission_type: 3,
    };
    let failed = DeleteAclsMatchingAcl {
        error_code: 58,
        error_message: Some("The ACL could not be deleted.".into()),
        resource_type: 3,
        resource_name: "orders-app".into(),
        pattern_type: 3,
        principal: "User:bob".into(),
        host: "10.0.0.8".into(),
        operation: 3,
        permission_type: 2,
    };
    DeleteAclsResponse {
        throttle_time_ms: 25,
        filter_results: vec![
            DeleteAclsFilterResult { error_code: 0, error_message: None, matching_acls: vec![matching, failed] },
            DeleteAclsFilterResult {
                error_code: 31,
                error_message: Some("Cluster authorization failed.".into()),
                matching_acls: vec![],
            },
        ],
    }
}

fn delete_acls_response_from(theirs: &kp::DeleteAclsResponse) -> DeleteAclsResponse {
    DeleteAclsResponse {
        throttle_time_ms: theirs.throttle_time_ms,
        filter_results: theirs
            .filter_results
            .iter()
            .map(|f| DeleteAclsFilterResult {
                error_code: f.error_code,
                error_message: nullable(&f.error_message),
                matching_acls: f
                    .matching_acls
                    .iter()
                    .map(|a| DeleteAclsMatchingAcl {
                        error_code: a.error_code,
                        error_message: nullable(&a.error_message),
                        resource_type: a.resource_type,
                        resource_name: string(&a.resource_name),
                        pattern_type: a.pattern_type,
                        principal: string(&a.principal),
                        host: string(&a.host),
                        operation: a.operation,
                        permission_type: a.permission_type,
                    })
                    .collect(),
            })
            .collect(),
    }
}

#[test]
fn delete_acls() {
    for v in versions(ApiKey::DeleteAcls) {
        let req = common::delete_acls_request(v);
        let expected = DeleteAclsRequest {
            filters: req
                .filters
                .iter()
                .map(|f| AclFilter {
                    resource_type_filter: f.resource_type_filter,
                    resource_name_filter: nullable(&f.resource_name_filter),
                    pattern_type_filter: f.pattern_type_filter,
                    principal_filter: nullable(&f.principal_filter),
                    host_filter: nullable(&f.host_filter),
                    operation: f.operation,
                    permission_type: f.permission_type,
                })
                .collect(),
        };
        check_request(&req, v, DeleteAclsRequest::decode, expected);
        check_response(&delete_acls_response(), v, DeleteAclsResponse::encode, delete_acls_response_from);
    }
}

#[test]
fn acl_defaults_are_kafkas() {
    assert_eq!(AclFilter::default().pattern_type_filter, kp::DescribeAclsRequest::default().pattern_type_filter);
    let creation = kp::create_acls_request::AclCreation::default();
    assert_eq!(AclCreation::default().resource_pattern_type, creation.resource_pattern_type);
    let resource = kp::describe_acls_response::DescribeAclsResource::default();
    assert_eq!(DescribeAclsResource::default().pattern_type, resource.pattern_type);
    let matching = kp::delete_acls_response::DeleteAclsMatchingAcl::default();
    assert_eq!(DeleteAclsMatchingAcl::default().pattern_type, matching.pattern_type);
}

// AlterConfigs and IncrementalAlterConfigs.

/// The per-resource results both config APIs answer with.
fn alter_configs_resource_responses() -> Vec<AlterConfigsResourceResponse> {
    vec![
        AlterConfigsResourceResponse {
            error_code: 0,
            error_message: None,
            resource_type: 2,
            resource_name: "orders".into(),
        },
        AlterConfigsResourceResponse {
            error_code: 40,
            error_message: Some("Invalid value abc for configuration retention.ms.".into()),
            resource_type: 4,
            resource_name: "1".into(),
        },
    ]
}

macro_rules! resource_responses_from {
    ($responses:expr) => {
        $responses
            .iter()
            .map(|r| AlterConfigsResourceResponse {
                error_code: r.error_code,
                error_message: nullable(&r.error_message),
                resource_type: r.resource_type,
                resource_name: string(&r.resource_name),
            })
            .collect()
    };
}

#[test]
fn alter_configs() {
    for v in versions(ApiKey::AlterConfigs) {
        let req = common::alter_configs_request(v);
        let expected = AlterConfigsRequest {
            resources: req
                .resources
                .iter()
                .map(|r| AlterConfigsResource {
                    resource_type: r.resource_type,
                    resource_name: string(&r.resource_name),
                    configs: r
                        .configs
                        .iter()
                        .map(|c| AlterableConfig { name: string(&c.name), value: nullable(&c.value) })
                        .collect(),
                })
                .collect(),
            validate_only: req.validate_only,
        };
        check_request(&req, v, AlterConfigsRequest::decode, expected);

        let resp = AlterConfigsResponse { throttle_time_ms: 25, responses: alter_configs_resource_responses() };
        check_response(&resp, v, AlterConfigsResponse::encode, |theirs: &kp::AlterConfigsResponse| {
            AlterConfigsResponse {
                throttle_time_ms: theirs.throttle_time_ms,
                responses: resource_responses_from!(theirs.responses),
            }
        });
    }
}

#[test]
fn incremental_alter_configs() {
    for v in versions(ApiKey::IncrementalAlterConfigs) {
        let req = common::incremental_alter_configs_request(v);
        let expected = IncrementalAlterConfigsRequest {
            resources: req
                .resources
                .iter()
                .map(|r| IncrementalAlterConfigsResource {
                    resource_type: r.resource_type,
                    resource_name: string(&r.resource_name),
                    configs: r
                        .configs
                        .iter()
                        .map(|c| IncrementalAlterableConfig {
                            name: string(&c.name),
                            config_operation: c.config_operation,
                            value: nullable(&c.value),
                        })
                        .collect(),
                })
                .collect(),
            validate_only: req.validate_only,
        };
        check_request(&req, v, IncrementalAlterConfigsRequest::decode, expected);

        let resp =
            IncrementalAlterConfigsResponse { throttle_time_ms: 25, responses: alter_configs_resource_responses() };
        check_response(
            &resp,
            v,
            IncrementalAlterConfigsResponse::encode,
            |theirs: &kp::IncrementalAlterConfigsResponse| IncrementalAlterConfigsResponse {
                throttle_time_ms: theirs.throttle_time_ms,
                responses: resource_responses_from!(theirs.responses),
            },
        );
    }
}

// AlterReplicaLogDirs and DescribeLogDirs.

#[test]
fn alter_replica_log_dirs() {
    for v in versions(ApiKey::AlterReplicaLogDirs) {
        let req = common::alter_replica_log_dirs_request(v);
        let expected = AlterReplicaLogDirsRequest {
            dirs: req
                .dirs
                .iter()
                .map(|d| AlterReplicaLogDir {
                    path: string(&d.path),
                    topics: d
                        .topics
                        .iter()
                        .map(|t| AlterReplicaLogDirTopic {
                            name: topic_name(&t.name),
                            partitions: t.partitions.clone(),
                        })
                        .collect(),
                })
                .collect(),
        };
        check_request(&req, v, AlterReplicaLogDirsRequest::decode, expected);

        let partition =
            |partition_index: i32, error_code: i16| AlterReplicaLogDirPartitionResult { partition_index, error_code };
        let resp = AlterReplicaLogDirsResponse {
            throttle_time_ms: 25,
            results: vec![
                AlterReplicaLogDirTopicResult {
                    topic_name: "orders".into(),
                    partitions: vec![partition(0, 0), partition(1, 57)],
                },
                AlterReplicaLogDirTopicResult { topic_name: "payments".into(), partitions: vec![partition(2, 0)] },
            ],
        };
        check_response(&resp, v, AlterReplicaLogDirsResponse::encode, |theirs: &kp::AlterReplicaLogDirsResponse| {
            AlterReplicaLogDirsResponse {
                throttle_time_ms: theirs.throttle_time_ms,
                results: theirs
                    .results
                    .iter()
                    .map(|t| AlterReplicaLogDirTopicResult {
                        topic_name: topic_name(&t.topic_name),
                        partitions: t.partitions.iter().map(|p| partition(p.partition_index, p.error_code)).collect(),
                    })
                    .collect(),
            }
        });
    }
}

fn describe_log_dirs_request_from(theirs: &kp::DescribeLogDirsRequest) -> DescribeLogDirsRequest {
    DescribeLogDirsRequest {
        topics: theirs.topics.as_ref().map(|topics| {
            topics
                .iter()
                .map(|t| DescribableLogDirTopic { topic: topic_name(&t.topic), partitions: t.partitions.clone() })
                .collect()
        }),
    }
}

/// A response with a non-default value in every field `v` has; the fields it lacks hold the
/// defaults the oracle decodes them to.
fn describe_log_dirs_response(v: i16) -> DescribeLogDirsResponse {
    let partition = |partition_index: i32, is_future_key: bool| DescribeLogDirsPartition {
        partition_index,
        partition_size: 1_048_576 + i64::from(partition_index),
        offset_lag: 3,
        is_future_key,
    };
    DescribeLogDirsResponse {
        throttle_time_ms: 25,
        error_code: if v >= 3 { 29 } else { 0 },
        results: vec![
            DescribeLogDirsResult {
                error_code: 0,
                log_dir: "/var/lib/ringtail/data-1".into(),
                topics: vec![
                    DescribeLogDirsTopic {
                        name: "orders".into(),
                        partitions: vec![partition(0, false), partition(1, true)],
                    },
                    DescribeLogDirsTopic { name: "payments".into(), partitions: vec![] },
                ],
                total_bytes: if v >= 4 { 500_000_000_000 } else { -1 },
                usable_bytes: if v >= 4 { 123_456_789 } else { -1 },
            },
            DescribeLogDirsResult {
                error_code: 56,
                log_dir: "/var/lib/ringtail/data-2".into(),
                topics: vec![],
                total_bytes: if v >= 4 { 0 } else { -1 },
                usable_bytes: -1,
            },
        ],
    }
}

fn describe_log_dirs_response_from(theirs: &kp::DescribeLogDirsResponse) -> DescribeLogDirsResponse {
    DescribeLogDirsResponse {
        throttle_time_ms: theirs.throttle_time_ms,
        error_code: theirs.error_code,
        results: theirs
            .results
            .iter()
            .map(|r| DescribeLogDirsResult {
                error_code: r.error_code,
                log_dir: string(&r.log_dir),
                topics: r
                    .topics
                    .iter()
                    .map(|t| DescribeLogDirsTopic {
                        name: topic_name(&t.name),
                        partitions: t
                            .partitions
                            .iter()
                            .map(|p| DescribeLogDirsPartition {
                                partition_index: p.partition_index,
                                partition_size: p.partition_size,
                                offset_lag: p.offset_lag,
                                is_future_key: p.is_future_key,
                            })
                            .collect(),
                    })
                    .collect(),
                total_bytes: r.total_bytes,
                usable_bytes: r.usable_bytes,
            })
            .collect(),
    }
}

#[test]
fn describe_log_dirs() {
    for v in versions(ApiKey::DescribeLogDirs) {
        let req = common::describe_log_dirs_request(v);
        check_request(&req, v, DescribeLogDirsRequest::decode, describe_log_dirs_request_from(&req));
        // A null topic list asks for every partition.
        let every = kp::DescribeLogDirsRequest::default().with_topics(None);
        check_request(&every, v, DescribeLogDirsRequest::decode, DescribeLogDirsRequest { topics: None });
        check_response(
            &describe_log_dirs_response(v),
            v,
            DescribeLogDirsResponse::encode,
            describe_log_dirs_response_from,
        );
    }
    let kafka = kp::describe_log_dirs_response::DescribeLogDirsResult::default();
    assert_eq!(
        (DescribeLogDirsResult::default().total_bytes, DescribeLogDirsResult::default().usable_bytes),
        (kafka.total_bytes, kafka.usable_bytes)
    );
}

// DescribeClientQuotas.

fn describe_client_quotas_response() -> DescribeClientQuotasResponse {
    let entity = |entity_type: &str, entity_name: Option<&str>| EntityData {
        entity_type: entity_type.into(),
        entity_name: entity_name.map(Into::into),
    };
    let value = |key: &str, value: f64| ValueData { key: key.into(), value };
    DescribeClientQuotasResponse {
        throttle_time_ms: 25,
        error_code: 0,
        error_message: None,
        entries: Some(vec![
            EntryData {
                entity: vec![entity("user", Some("alice")), entity("client-id", None)],
                values: vec![value("producer_byte_rate", 1_048_576.0), value("request_percentage", 12.5)],
            },
            EntryData { entity: vec![entity("ip", Some("10.0.0.7"))], values: vec![] },
        ]),
    }
}

fn describe_client_quotas_response_from(theirs: &kp::DescribeClientQuotasResponse) -> DescribeClientQuotasResponse {
    DescribeClientQuotasResponse {
        throttle_time_ms: theirs.throttle_time_ms,
        error_code: theirs.error_code,
        error_message: nullable(&theirs.error_message),
        entries: theirs.entries.as_ref().map(|entries| {
            entries
                .iter()
                .map(|e| EntryData {
                    entity: e
                        .entity
                        .iter()
                        .map(|x| EntityData {
                            entity_type: string(&x.entity_type),
                            entity_name: nullable(&x.entity_name),
                        })
                        .collect(),
                    values: e.values.iter().map(|x| ValueData { key: string(&x.key), value: x.value }).collect(),
                })
                .collect()
        }),
    }
}

#[test]
fn describe_client_quotas() {
    for v in versions(ApiKey::DescribeClientQuotas) {
        let req = common::describe_client_quotas_request(v);
        let expected = DescribeClientQuotasRequest {
            components: req
                .components
                .iter()
                .map(|c| ComponentData {
                    entity_type: string(&c.entity_type),
                    match_type: c.match_type,
                    r#match: nullable(&c._match),
                })
                .collect(),
            strict: req.strict,
        };
        check_request(&req, v, DescribeClientQuotasRequest::decode, expected);

        let failed = DescribeClientQuotasResponse {
            throttle_time_ms: 0,
            error_code: 42,
            error_message: Some("Unknown entity type badger.".into()),
            entries: None,
        };
        for resp in [describe_client_quotas_response(), failed] {
            check_response(&resp, v, DescribeClientQuotasResponse::encode, describe_client_quotas_response_from);
        }
    }
}

// DescribeProducers.

fn describe_producers_response() -> DescribeProducersResponse {
    let producer = ProducerState {
        producer_id: 4001,
        producer_epoch: 3,
        last_sequence: 99,
        last_timestamp: 1_700_000_000_000,
        coordinator_epoch: 2,
        current_txn_start_offset: 1234,
    };
    let idle = ProducerState { producer_id: 4002, producer_epoch: 0, ..ProducerState::default() };
    DescribeProducersResponse {
        throttle_time_ms: 25,
        topics: vec![
            DescribeProducersTopicResponse {
                name: "orders".into(),
                partitions: vec![
                    DescribeProducersPartitionResponse {
                        partition_index: 0,
                        error_code: 0,
                        error_message: None,
                        active_producers: vec![producer, idle],
                    },
                    DescribeProducersPartitionResponse {
                        partition_index: 1,
                        error_code: 6,
                        error_message: Some("This broker is not the leader of orders-1.".into()),
                        active_producers: vec![],
                    },
                ],
            },
            DescribeProducersTopicResponse { name: "payments".into(), partitions: vec![] },
        ],
    }
}

fn describe_producers_response_from(theirs: &kp::DescribeProducersResponse) -> DescribeProducersResponse {
    DescribeProducersResponse {
        throttle_time_ms: theirs.throttle_time_ms,
        topics: theirs
            .topics
            .iter()
            .map(|t| DescribeProducersTopicResponse {
                name: topic_name(&t.name),
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| DescribeProducersPartitionResponse {
                        partition_index: p.partition_index,
                        error_code: p.error_code,
                        error_message: nullable(&p.error_message),
                        active_producers: p
                            .active_producers
                            .iter()
                            .map(|s| ProducerState {
                                producer_id: s.producer_id.0,
                                producer_epoch: s.producer_epoch,
                                last_sequence: s.last_sequence,
                                last_timestamp: s.last_timestamp,
                                coordinator_epoch: s.coordinator_epoch,
                                current_txn_start_offset: s.current_txn_start_offset,
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

#[test]
fn describe_producers() {
    for v in versions(ApiKey::DescribeProducers) {
        let req = common::describe_producers_request(v);
        let expected = DescribeProducersRequest {
            topics: req
                .topics
                .iter()
                .map(|t| DescribeProducersTopic {
                    name: topic_name(&t.name),
                    partition_indexes: t.partition_indexes.clone(),
                })
                .collect(),
        };
        check_request(&req, v, DescribeProducersRequest::decode, expected);
        check_response(
            &describe_producers_response(),
            v,
            DescribeProducersResponse::encode,
            describe_producers_response_from,
        );
    }
    let kafka = kp::describe_producers_response::ProducerState::default();
    let ours = ProducerState::default();
    assert_eq!(
        (ours.last_sequence, ours.last_timestamp, ours.current_txn_start_offset),
        (kafka.last_sequence, kafka.last_timestamp, kafka.current_txn_start_offset)
    );
}

// DescribeTopicPartitions.

fn describe_topic_partitions_request_from(
    theirs: &kp::DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsRequest {
    DescribeTopicPartitionsRequest {
        topics: theirs.topics.iter().map(|t| topic_name(&t.name)).collect(),
        response_partition_limit: theirs.response_partition_limit,
        cursor: theirs.cursor.as_ref().map(|c| DescribeTopicPartitionsCursor {
            topic_name: topic_name(&c.topic_name),
            partition_index: c.partition_index,
        }),
    }
}

fn describe_topic_partitions_response(next_cursor: bool) -> DescribeTopicPartitionsResponse {
    let partition = |partition_index: i32, eligible: Option<Vec<i32>>| DescribeTopicPartitionsResponsePartition {
        error_code: if eligible.is_some() { 0 } else { 9 },
        partition_index,
        leader_id: partition_index + 1,
        leader_epoch: 40 + partition_index,
        replica_nodes: vec![1, 2, 3],
        isr_nodes: vec![partition_index + 1, 3],
        eligible_leader_replicas: eligible.clone(),
        last_known_elr: eligible.map(|mut replicas| {
            replicas.push(3);
            replicas
        }),
        offline_replicas: vec![2],
    };
    DescribeTopicPartitionsResponse {
        throttle_time_ms: 25,
        topics: vec![
            DescribeTopicPartitionsResponseTopic {
                error_code: 0,
                name: Some("orders".into()),
                topic_id: [0xa1; 16],
                is_internal: true,
                partitions: vec![partition(0, Some(vec![2])), partition(1, None)],
                topic_authorized_operations: 0x0ff8,
            },
            DescribeTopicPartitionsResponseTopic {
                error_code: 3,
                name: None,
                topic_id: [0; 16],
                is_internal: false,
                partitions: vec![],
                topic_authorized_operations: i32::MIN,
            },
        ],
        next_cursor: next_cursor
            .then(|| DescribeTopicPartitionsCursor { topic_name: "payments".into(), partition_index: 4 }),
    }
}

fn describe_topic_partitions_response_from(
    theirs: &kp::DescribeTopicPartitionsResponse,
) -> DescribeTopicPartitionsResponse {
    DescribeTopicPartitionsResponse {
        throttle_time_ms: theirs.throttle_time_ms,
        topics: theirs
            .topics
            .iter()
            .map(|t| DescribeTopicPartitionsResponseTopic {
                error_code: t.error_code,
                name: t.name.as_ref().map(topic_name),
                topic_id: id(&t.topic_id),
                is_internal: t.is_internal,
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| DescribeTopicPartitionsResponsePartition {
                        error_code: p.error_code,
                        partition_index: p.partition_index,
                        leader_id: p.leader_id.0,
                        leader_epoch: p.leader_epoch,
                        replica_nodes: broker_ids(&p.replica_nodes),
                        isr_nodes: broker_ids(&p.isr_nodes),
                        eligible_leader_replicas: p.eligible_leader_replicas.as_deref().map(broker_ids),
                        last_known_elr: p.last_known_elr.as_deref().map(broker_ids),
                        offline_replicas: broker_ids(&p.offline_replicas),
                    })
                    .collect(),
                topic_authorized_operations: t.topic_authorized_operations,
            })
            .collect(),
        next_cursor: theirs.next_cursor.as_ref().map(|c| DescribeTopicPartitionsCursor {
            topic_name: topic_name(&c.topic_name),
            partition_index: c.partition_index,
        }),
    }
}

#[test]
fn describe_topic_partitions() {
    for v in versions(ApiKey::DescribeTopicPartitions) {
        let req = common::describe_topic_partitions_request(v);
        check_request(&req, v, DescribeTopicPartitionsRequest::decode, describe_topic_partitions_request_from(&req));
        // Without a cursor, and with Kafka's defaults.
        let first = kp::DescribeTopicPartitionsRequest::default();
        check_request(&first, v, DescribeTopicPartitionsRequest::decode, DescribeTopicPartitionsRequest::default());
        for next_cursor in [true, false] {
            check_response(
                &describe_topic_partitions_response(next_cursor),
                v,
                DescribeTopicPartitionsResponse::encode,
                describe_topic_partitions_response_from,
            );
        }
    }
    let kafka = kp::describe_topic_partitions_response::DescribeTopicPartitionsResponseTopic::default();
    assert_eq!(
        DescribeTopicPartitionsResponseTopic::default().topic_authorized_operations,
        kafka.topic_authorized_operations
    );
    let kafka = kp::describe_topic_partitions_response::DescribeTopicPartitionsResponsePartition::default();
    assert_eq!(DescribeTopicPartitionsResponsePartition::default().leader_epoch, kafka.leader_epoch);
}

/// A cursor marker other than -1 and 1 is refused; Kafka writes no other.
#[test]
fn describe_topic_partitions_refuses_a_bad_cursor_marker() {
    let bytes = oracle_encode(&kp::DescribeTopicPartitionsRequest::default(), 0);
    // Topics (an empty compact array), the partition limit, the cursor marker, tagged fields.
    assert_eq!(bytes.len(), 7);
    assert_eq!(bytes[5], 0xff);
    let mut hostile = bytes.to_vec();
    hostile[5] = 0;
    let mut r = Reader::new(Bytes::from(hostile));
    let e = DescribeTopicPartitionsRequest::decode(&mut r, 0).unwrap_err();
    assert!(matches!(e, DecodeError::Invalid { what: "cursor", .. }), "{e}");
}

// AlterPartitionReassignments and ListPartitionReassignments.

#[test]
fn alter_partition_reassignments() {
    for v in versions(ApiKey::AlterPartitionReassignments) {
        let req = common::alter_partition_reassignments_request(v);
        let expected = AlterPartitionReassignmentsRequest {
            timeout_ms: req.timeout_ms,
            allow_replication_factor_change: req.allow_replication_factor_change,
            topics: req
                .topics
                .iter()
                .map(|t| ReassignableTopic {
                    name: topic_name(&t.name),
                    partitions: t
                        .partitions
                        .iter()
                        .map(|p| ReassignablePartition {
                            partition_index: p.partition_index,
                            replicas: p.replicas.as_ref().map(|r| broker_ids(r)),
                        })
                        .collect(),
                })
                .collect(),
        };
        check_request(&req, v, AlterPartitionReassignmentsRequest::decode, expected);
        let partition = |index: i32, error_code: i16, message: Option<&str>| ReassignablePartitionResponse {
            partition_index: index,
            error_code,
            error_message: message.map(String::from),
        };
        let ours = AlterPartitionReassignmentsResponse {
            throttle_time_ms: 3,
            allow_replication_factor_change: v >= 1,
            error_code: 0,
            error_message: None,
            responses: vec![ReassignableTopicResponse {
                name: "orders".into(),
                partitions: vec![partition(0, 0, None), partition(1, 85, Some("no reassignment in progress"))],
            }],
        };
        check_response(
            &ours,
            v,
            AlterPartitionReassignmentsResponse::encode,
            |t: &kp::AlterPartitionReassignmentsResponse| AlterPartitionReassignmentsResponse {
                throttle_time_ms: t.throttle_time_ms,
                allow_replication_factor_change: t.allow_replication_factor_change && v >= 1,
                error_code: t.error_code,
                error_message: nullable(&t.error_message),
                responses: t
                    .responses
                    .iter()
                    .map(|r| ReassignableTopicResponse {
                        name: topic_name(&r.name),
                        partitions: r
                            .partitions
                            .iter()
                            .map(|p| ReassignablePartitionResponse {
                                partition_index: p.partition_index,
                                error_code: p.error_code,
                                error_message: nullable(&p.error_message),
                            })
                            .collect(),
                    })
                    .collect(),
            },
        );
    }
}

#[test]
fn list_partition_reassignments() {
    for v in versions(ApiKey::ListPartitionReassignments) {
        for all in [false, true] {
            let req = common::list_partition_reassignments_request(all);
            let expected = ListPartitionReassignmentsRequest {
                timeout_ms: req.timeout_ms,
                topics: req.topics.as_ref().map(|ts| {
                    ts.iter()
                        .map(|t| ListPartitionReassignmentsTopic {
                            name: topic_name(&t.name),
                            partition_indexes: t.partition_indexes.clone(),
                        })
                        .collect()
                }),
            };
            check_request(&req, v, ListPartitionReassignmentsRequest::decode, expected);
        }
        let ours = ListPartitionReassignmentsResponse {
            throttle_time_ms: 0,
            error_code: 0,
            error_message: None,
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
        check_response(
            &ours,
            v,
            ListPartitionReassignmentsResponse::encode,
            |t: &kp::ListPartitionReassignmentsResponse| ListPartitionReassignmentsResponse {
                throttle_time_ms: t.throttle_time_ms,
                error_code: t.error_code,
                error_message: nullable(&t.error_message),
                topics: t
                    .topics
                    .iter()
                    .map(|r| OngoingTopicReassignment {
                        name: topic_name(&r.name),
                        partitions: r
                            .partitions
                            .iter()
                            .map(|p| OngoingPartitionReassignment {
                                partition_index: p.partition_index,
                                replicas: broker_ids(&p.replicas),
                                adding_replicas: broker_ids(&p.adding_replicas),
                                removing_replicas: broker_ids(&p.removing_replicas),
                            })
                            .collect(),
                    })
                    .collect(),
            },
        );
    }
}

// ElectLeaders.

#[test]
fn elect_leaders() {
    for v in versions(ApiKey::ElectLeaders) {
        for all in [false, true] {
            let req = common::elect_leaders_request(v, all);
            let expected = ElectLeadersRequest {
                election_type: req.election_type,
                topic_partitions: req.topic_partitions.as_ref().map(|ts| {
                    ts.iter()
                        .map(|t| ElectTopicPartitions { topic: topic_name(&t.topic), partitions: t.partitions.clone() })
                        .collect()
                }),
                timeout_ms: req.timeout_ms,
            };
            check_request(&req, v, ElectLeadersRequest::decode, expected);
        }
        let result = |id: i32, error_code: i16, message: Option<&str>| ElectionPartitionResult {
            partition_id: id,
            error_code,
            error_message: message.map(String::from),
        };
        let ours = ElectLeadersResponse {
            throttle_time_ms: 0,
            error_code: 0,
            replica_election_results: vec![ReplicaElectionResult {
                topic: "orders".into(),
                partition_result: vec![result(0, 0, None), result(2, 84, Some("the preferred replica leads already"))],
            }],
        };
        check_response(&ours, v, ElectLeadersResponse::encode, |t: &kp::ElectLeadersResponse| ElectLeadersResponse {
            throttle_time_ms: t.throttle_time_ms,
            error_code: t.error_code,
            replica_election_results: t
                .replica_election_results
                .iter()
                .map(|r| ReplicaElectionResult {
                    topic: topic_name(&r.topic),
                    partition_result: r
                        .partition_result
                        .iter()
                        .map(|p| ElectionPartitionResult {
                            partition_id: p.partition_id,
                            error_code: p.error_code,
                            error_message: nullable(&p.error_message),
                        })
                        .collect(),
                })
                .collect(),
        });
    }
}

// UnregisterBroker.

#[test]
fn unregister_broker() {
    use ringtail_net::messages::unregister_broker::*;
    for v in versions(ApiKey::UnregisterBroker) {
        let req = kp::UnregisterBrokerRequest::default().with_broker_id(kp::BrokerId(4));
        check_request(&req, v, UnregisterBrokerRequest::decode, UnregisterBrokerRequest { broker_id: 4 });
        let ours = UnregisterBrokerResponse {
            throttle_time_ms: 0,
            error_code: 42,
            error_message: Some("broker 4 is running: stop it first".into()),
        };
        check_response(&ours, v, UnregisterBrokerResponse::encode, |t: &kp::UnregisterBrokerResponse| {
            UnregisterBrokerResponse {
                throttle_time_ms: t.throttle_time_ms,
                error_code: t.error_code,
                error_message: nullable(&t.error_message),
            }
        });
    }
}

// AddRaftVoter and RemoveRaftVoter.

#[test]
fn raft_voters() {
    use ringtail_net::messages::raft_voters::*;
    for v in versions(ApiKey::AddRaftVoter) {
        let expected = AddRaftVoterRequest {
            cluster_id: Some("MkU3OEVBNTcwNTJENDM2Qk".into()),
            timeout_ms: 30_000,
            voter_id: 4,
            voter_directory_id: [0; 16],
            listeners: vec![("CONTROLLER".into(), "127.0.0.1".into(), 9493)],
        };
        check_request(&common::add_raft_voter_request(), v, AddRaftVoterRequest::decode, expected);
        let ours = RaftVoterResponse { throttle_time_ms: 0, error_code: 126, error_message: Some("a voter".into()) };
        check_response(&ours, v, RaftVoterResponse::encode, |t: &kp::AddRaftVoterResponse| RaftVoterResponse {
            throttle_time_ms: t.throttle_time_ms,
            error_code: t.error_code,
            error_message: nullable(&t.error_message),
        });
    }
    for v in versions(ApiKey::RemoveRaftVoter) {
        let expected = RemoveRaftVoterRequest { cluster_id: None, voter_id: 3, voter_directory_id: [0; 16] };
        check_request(&common::remove_raft_voter_request(), v, RemoveRaftVoterRequest::decode, expected);
        let ours = RaftVoterResponse { throttle_time_ms: 0, error_code: 0, error_message: None };
        check_response(&ours, v, RaftVoterResponse::encode, |t: &kp::RemoveRaftVoterResponse| RaftVoterResponse {
            throttle_time_ms: t.throttle_time_ms,
            error_code: t.error_code,
            error_message: nullable(&t.error_message),
        });
    }
}
