//! Shared by the oracle and hostile-input tests: valid requests built and encoded by the oracle
//! (the `kafka-protocol` crate) for every supported version, with a non-default value in every
//! field the version has.

// Each test binary uses only part of this module.
#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages as kp;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use ringtail_net::header::ApiKey;

/// Encodes `msg` with the oracle at `version`.
pub fn oracle_encode<M: Encodable>(msg: &M, version: i16) -> Bytes {
    let mut buf = BytesMut::new();
    msg.encode(&mut buf, version).expect("oracle encodes");
    buf.freeze()
}

/// Decodes our encoding with the oracle, checking it consumed every byte.
pub fn oracle_decode<M: Decodable>(bytes: Bytes, version: i16) -> M {
    let mut b = bytes;
    let msg = M::decode(&mut b, version).expect("oracle decodes our encoding");
    assert!(b.is_empty(), "{} bytes left after the oracle decoded our encoding", b.len());
    msg
}

pub fn versions(key: ApiKey) -> std::ops::RangeInclusive<i16> {
    let (lo, hi) = key.versions();
    lo..=hi
}

pub fn s(x: &'static str) -> StrBytes {
    StrBytes::from_static_str(x)
}

pub fn topic(x: &'static str) -> kp::TopicName {
    kp::TopicName(s(x))
}

/// A topic id of sixteen `b` bytes. Generic so the oracle's `Uuid` type need not be named: the
/// `uuid` crate is not a dependency of ours.
pub fn uuid<T: TryFrom<Vec<u8>>>(b: u8) -> T
where
    T::Error: std::fmt::Debug,
{
    T::try_from(vec![b; 16]).expect("16 bytes make a uuid")
}

pub fn metadata_request(v: i16) -> kp::MetadataRequest {
    use kp::metadata_request::MetadataRequestTopic;
    let topics = if v >= 10 {
        // From version 10 a topic may be named by id alone.
        vec![
            MetadataRequestTopic::default().with_topic_id(uuid(0xa1)).with_name(Some(topic("orders"))),
            MetadataRequestTopic::default().with_topic_id(uuid(0xb2)).with_name(None),
        ]
    } else {
        vec![
            MetadataRequestTopic::default().with_name(Some(topic("orders"))),
            MetadataRequestTopic::default().with_name(Some(topic("payments"))),
        ]
    };
    kp::MetadataRequest::default()
        .with_topics(Some(topics))
        .with_allow_auto_topic_creation(v < 4)
        .with_include_cluster_authorized_operations((8..=10).contains(&v))
        .with_include_topic_authorized_operations(v >= 8)
}

pub fn list_offsets_request(v: i16) -> kp::ListOffsetsRequest {
    use kp::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    let partition = |index: i32, timestamp: i64| {
        ListOffsetsPartition::default()
            .with_partition_index(index)
            .with_current_leader_epoch(if v >= 4 { 11 + index } else { -1 })
            .with_timestamp(timestamp)
    };
    kp::ListOffsetsRequest::default()
        .with_replica_id(kp::BrokerId(-1))
        .with_isolation_level(if v >= 2 { 1 } else { 0 })
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(topic("orders"))
                .with_partitions(vec![partition(0, -2), partition(1, 1_700_000_000_000)]),
            ListOffsetsTopic::default().with_name(topic("payments")).with_partitions(vec![partition(2, -1)]),
        ])
}

/// Versions 0 and 1, which the oracle no longer encodes, are derived from version 2: version 1 is
/// the same on the wire, and version 0 lacks only the trailing `validate_only`.
pub fn create_topics_request_bytes(v: i16) -> Bytes {
    let bytes = oracle_encode(&create_topics_request(v), v.max(2));
    if v == 0 {
        bytes.slice(..bytes.len() - 1)
    } else {
        bytes
    }
}

pub fn create_topics_request(v: i16) -> kp::CreateTopicsRequest {
    use kp::create_topics_request::{CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig};
    kp::CreateTopicsRequest::default()
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(topic("orders"))
                .with_num_partitions(3)
                .with_replication_factor(2)
                .with_configs(vec![
                    CreatableTopicConfig::default().with_name(s("cleanup.policy")).with_value(Some(s("compact"))),
                    CreatableTopicConfig::default().with_name(s("retention.ms")).with_value(None),
                ]),
            CreatableTopic::default()
                .with_name(topic("payments"))
                .with_num_partitions(-1)
                .with_replication_factor(-1)
                .with_assignments(vec![
                    CreatableReplicaAssignment::default()
                        .with_partition_index(0)
                        .with_broker_ids(vec![kp::BrokerId(1), kp::BrokerId(2)]),
                    CreatableReplicaAssignment::default()
                        .with_partition_index(1)
                        .with_broker_ids(vec![kp::BrokerId(2), kp::BrokerId(3)]),
                ]),
        ])
        .with_timeout_ms(30_000)
        .with_validate_only(v >= 1)
}

/// Version 0, which the oracle no longer encodes, is the same on the wire as version 1.
pub fn delete_topics_request_bytes(v: i16) -> Bytes {
    oracle_encode(&delete_topics_request(v), v.max(1))
}

pub fn delete_topics_request(v: i16) -> kp::DeleteTopicsRequest {
    use kp::delete_topics_request::DeleteTopicState;
    let request = kp::DeleteTopicsRequest::default().with_timeout_ms(15_000);
    if v >= 6 {
        request.with_topics(vec![
            DeleteTopicState::default().with_name(Some(topic("orders"))),
            DeleteTopicState::default().with_name(None).with_topic_id(uuid(0xc3)),
        ])
    } else {
        request.with_topic_names(vec![topic("orders"), topic("payments")])
    }
}

pub fn create_partitions_request(_v: i16) -> kp::CreatePartitionsRequest {
    use kp::create_partitions_request::{CreatePartitionsAssignment, CreatePartitionsTopic};
    let assignment = |ids: &[i32]| {
        CreatePartitionsAssignment::default().with_broker_ids(ids.iter().copied().map(kp::BrokerId).collect())
    };
    kp::CreatePartitionsRequest::default()
        .with_topics(vec![
            CreatePartitionsTopic::default().with_name(topic("orders")).with_count(6).with_assignments(None),
            CreatePartitionsTopic::default()
                .with_name(topic("payments"))
                .with_count(4)
                .with_assignments(Some(vec![assignment(&[1, 2]), assignment(&[2, 3])])),
        ])
        .with_timeout_ms(20_000)
        .with_validate_only(true)
}

/// Version 0, which the oracle no longer encodes, is version 1 without the trailing
/// `include_synonyms`.
pub fn describe_configs_request_bytes(v: i16) -> Bytes {
    let bytes = oracle_encode(&describe_configs_request(v), v.max(1));
    if v == 0 {
        bytes.slice(..bytes.len() - 1)
    } else {
        bytes
    }
}

pub fn describe_configs_request(v: i16) -> kp::DescribeConfigsRequest {
    use kp::describe_configs_request::DescribeConfigsResource;
    kp::DescribeConfigsRequest::default()
        .with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s("orders"))
                .with_configuration_keys(Some(vec![s("retention.ms"), s("cleanup.policy")])),
            DescribeConfigsResource::default()
                .with_resource_type(4)
                .with_resource_name(s("1"))
                .with_configuration_keys(None),
        ])
        .with_include_synonyms(v >= 1)
        .with_include_documentation(v >= 3)
}

pub fn describe_cluster_request(v: i16) -> kp::DescribeClusterRequest {
    kp::DescribeClusterRequest::default()
        .with_include_cluster_authorized_operations(true)
        .with_endpoint_type(if v >= 1 { 2 } else { 1 })
}

/// A valid encoded request of every API this module covers, at `v`.
pub fn request_bytes(key: ApiKey, v: i16) -> Bytes {
    match key {
        ApiKey::Metadata => oracle_encode(&metadata_request(v), v),
        ApiKey::ListOffsets => oracle_encode(&list_offsets_request(v), v),
        ApiKey::CreateTopics => create_topics_request_bytes(v),
        ApiKey::DeleteTopics => delete_topics_request_bytes(v),
        ApiKey::CreatePartitions => oracle_encode(&create_partitions_request(v), v),
        ApiKey::DescribeConfigs => describe_configs_request_bytes(v),
        ApiKey::DescribeCluster => oracle_encode(&describe_cluster_request(v), v),
        other => panic!("no sample request for {other:?}"),
    }
}
