//! Shared by the oracle and hostile-input tests: valid requests built and encoded by the oracle
//! (the `kafka-protocol` crate) for every supported version, with a non-default value in every
//! field the version has.

// Each test binary uses only part of this module.
#![allow(dead_code)]

pub mod client;
pub mod convert;
pub mod hostile;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages as kp;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use ringtail_net::header::ApiKey;
use ringtail_net::Writer;

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

/// Our form of the oracle's string types.
pub fn string(x: &StrBytes) -> String {
    x.as_str().to_owned()
}

pub fn nullable(x: &Option<StrBytes>) -> Option<String> {
    x.as_ref().map(string)
}

pub fn topic_name(x: &kp::TopicName) -> String {
    string(&x.0)
}

pub fn broker_ids(x: &[kp::BrokerId]) -> Vec<i32> {
    x.iter().map(|id| id.0).collect()
}

/// A uuid's 16 bytes.
pub fn id<T: AsRef<[u8]>>(x: &T) -> [u8; 16] {
    x.as_ref().try_into().expect("uuids are 16 bytes")
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

pub fn group(x: &'static str) -> kp::GroupId {
    kp::GroupId(s(x))
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
        .with_timeout_ms(if v >= 10 { 30_000 } else { 0 })
        .with_topics(vec![
            ListOffsetsTopic::default().with_name(topic("orders")).with_partitions(vec![
                partition(0, -2),
                partition(1, 1_700_000_000_000),
                partition(3, -3),
            ]),
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

pub fn describe_quorum_request() -> kp::DescribeQuorumRequest {
    use kafka_protocol::messages::describe_quorum_request as rq;
    kp::DescribeQuorumRequest::default().with_topics(vec![rq::TopicData::default()
        .with_topic_name(topic("__cluster_metadata"))
        .with_partitions(vec![rq::PartitionData::default().with_partition_index(0)])])
}

pub fn describe_cluster_request(v: i16) -> kp::DescribeClusterRequest {
    kp::DescribeClusterRequest::default()
        .with_include_cluster_authorized_operations(true)
        .with_endpoint_type(if v >= 1 { 2 } else { 1 })
        .with_include_fenced_brokers(v >= 2)
}

pub fn find_coordinator_request(v: i16) -> kp::FindCoordinatorRequest {
    match v {
        0 => kp::FindCoordinatorRequest::default().with_key(s("orders-app")),
        1..=3 => kp::FindCoordinatorRequest::default().with_key(s("tx-a")).with_key_type(1),
        _ => kp::FindCoordinatorRequest::default().with_key_type(1).with_coordinator_keys(vec![s("tx-a"), s("tx-b")]),
    }
}

pub fn join_group_request(v: i16) -> kp::JoinGroupRequest {
    use kp::join_group_request::JoinGroupRequestProtocol;
    let protocol = |name: &'static str, metadata: &'static [u8]| {
        JoinGroupRequestProtocol::default().with_name(s(name)).with_metadata(Bytes::from_static(metadata))
    };
    kp::JoinGroupRequest::default()
        .with_group_id(group("orders-app"))
        .with_session_timeout_ms(45_000)
        .with_rebalance_timeout_ms(if v >= 1 { 300_000 } else { -1 })
        .with_member_id(s("consumer-1-5f2a"))
        .with_group_instance_id(if v >= 5 { Some(s("instance-a")) } else { None })
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![protocol("cooperative-sticky", b"\x00\x03sub"), protocol("range", b"")])
        .with_reason(if v >= 8 { Some(s("the metadata of a subscribed topic changed")) } else { None })
}

pub fn sync_group_request(v: i16) -> kp::SyncGroupRequest {
    use kp::sync_group_request::SyncGroupRequestAssignment;
    let assignment = |member_id: &'static str, assignment: &'static [u8]| {
        SyncGroupRequestAssignment::default()
            .with_member_id(s(member_id))
            .with_assignment(Bytes::from_static(assignment))
    };
    kp::SyncGroupRequest::default()
        .with_group_id(group("orders-app"))
        .with_generation_id(7)
        .with_member_id(s("consumer-1-5f2a"))
        .with_group_instance_id(if v >= 3 { Some(s("instance-a")) } else { None })
        .with_protocol_type(if v >= 5 { Some(s("consumer")) } else { None })
        .with_protocol_name(if v >= 5 { Some(s("range")) } else { None })
        .with_assignments(vec![assignment("consumer-1-5f2a", b"\x00\x01orders"), assignment("consumer-2-9c1d", b"")])
}

pub fn heartbeat_request(v: i16) -> kp::HeartbeatRequest {
    kp::HeartbeatRequest::default()
        .with_group_id(group("orders-app"))
        .with_generation_id(7)
        .with_member_id(s("consumer-1-5f2a"))
        .with_group_instance_id(if v >= 3 { Some(s("instance-a")) } else { None })
}

pub fn leave_group_request(v: i16) -> kp::LeaveGroupRequest {
    use kp::leave_group_request::MemberIdentity;
    let request = kp::LeaveGroupRequest::default().with_group_id(group("orders-app"));
    if v >= 3 {
        request.with_members(vec![
            MemberIdentity::default().with_member_id(s("consumer-1-5f2a")).with_reason(if v >= 5 {
                Some(s("the consumer is being closed"))
            } else {
                None
            }),
            MemberIdentity::default().with_member_id(s("")).with_group_instance_id(Some(s("instance-b"))),
        ])
    } else {
        request.with_member_id(s("consumer-1-5f2a"))
    }
}

/// The commit timestamp of a partition in an OffsetCommit v1 request.
pub fn commit_timestamp(partition_index: i32) -> i64 {
    1_700_000_000_000 + i64::from(partition_index)
}

/// Versions 0 and 1, which the oracle no longer encodes, are laid out by hand from Kafka's schemas
/// of those versions: version 0 has neither generation nor member id, version 1 adds them and a
/// commit timestamp per partition, and neither has the retention time of version 2.
pub fn offset_commit_request_bytes(v: i16) -> Bytes {
    let req = offset_commit_request(v);
    if v >= 2 {
        return oracle_encode(&req, v);
    }
    let mut w = Writer::new();
    w.string(false, &req.group_id.0);
    if v == 1 {
        w.i32(req.generation_id_or_member_epoch);
        w.string(false, &req.member_id);
    }
    w.array_len(false, req.topics.len());
    for t in &req.topics {
        w.string(false, &t.name.0);
        w.array_len(false, t.partitions.len());
        for p in &t.partitions {
            w.i32(p.partition_index);
            w.i64(p.committed_offset);
            if v == 1 {
                w.i64(commit_timestamp(p.partition_index));
            }
            w.nullable_string(false, p.committed_metadata.as_deref());
        }
    }
    w.buf.freeze()
}

pub fn offset_commit_request(v: i16) -> kp::OffsetCommitRequest {
    use kp::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
    let partition = |index: i32, offset: i64, metadata: Option<&'static str>| {
        OffsetCommitRequestPartition::default()
            .with_partition_index(index)
            .with_committed_offset(offset)
            .with_committed_leader_epoch(if v >= 6 { 5 + index } else { -1 })
            .with_committed_metadata(metadata.map(s))
    };
    kp::OffsetCommitRequest::default()
        .with_group_id(group("orders-app"))
        .with_generation_id_or_member_epoch(if v >= 1 { 7 } else { -1 })
        .with_member_id(s(if v >= 1 { "consumer-1-5f2a" } else { "" }))
        .with_group_instance_id(if v >= 7 { Some(s("instance-a")) } else { None })
        .with_retention_time_ms(if (2..=4).contains(&v) { 86_400_000 } else { -1 })
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(topic("orders"))
                .with_partitions(vec![partition(0, 42, Some("checkpoint 9")), partition(1, 0, None)]),
            OffsetCommitRequestTopic::default().with_name(topic("payments")).with_partitions(vec![partition(
                2,
                1_000_000,
                Some(""),
            )]),
        ])
}

/// Version 0, which the oracle no longer encodes, is the same on the wire as version 1.
pub fn offset_fetch_request_bytes(v: i16) -> Bytes {
    oracle_encode(&offset_fetch_request(v), v.max(1))
}

pub fn offset_fetch_request(v: i16) -> kp::OffsetFetchRequest {
    let request = kp::OffsetFetchRequest::default().with_require_stable(v >= 7);
    if v >= 8 {
        use kp::offset_fetch_request::{OffsetFetchRequestGroup, OffsetFetchRequestTopics};
        let t = |name: &'static str, partitions: Vec<i32>| {
            OffsetFetchRequestTopics::default().with_name(topic(name)).with_partition_indexes(partitions)
        };
        request.with_groups(vec![
            OffsetFetchRequestGroup::default()
                .with_group_id(group("orders-app"))
                .with_member_id(if v >= 9 { Some(s("member-1")) } else { None })
                .with_member_epoch(if v >= 9 { 5 } else { -1 })
                .with_topics(Some(vec![t("orders", vec![0, 1]), t("payments", vec![2])])),
            OffsetFetchRequestGroup::default().with_group_id(group("audit")).with_topics(None),
        ])
    } else {
        use kp::offset_fetch_request::OffsetFetchRequestTopic;
        let t = |name: &'static str, partitions: Vec<i32>| {
            OffsetFetchRequestTopic::default().with_name(topic(name)).with_partition_indexes(partitions)
        };
        request
            .with_group_id(group("orders-app"))
            .with_topics(Some(vec![t("orders", vec![0, 1]), t("payments", vec![2])]))
    }
}

pub fn offset_delete_request(_v: i16) -> kp::OffsetDeleteRequest {
    use kp::offset_delete_request::{OffsetDeleteRequestPartition, OffsetDeleteRequestTopic};
    let t = |name: &'static str, partitions: &[i32]| {
        OffsetDeleteRequestTopic::default().with_name(topic(name)).with_partitions(
            partitions.iter().map(|p| OffsetDeleteRequestPartition::default().with_partition_index(*p)).collect(),
        )
    };
    kp::OffsetDeleteRequest::default()
        .with_group_id(group("orders-app"))
        .with_topics(vec![t("orders", &[0, 1]), t("payments", &[2])])
}

pub fn list_groups_request(v: i16) -> kp::ListGroupsRequest {
    kp::ListGroupsRequest::default()
        .with_states_filter(if v >= 4 { vec![s("Stable"), s("Empty")] } else { vec![] })
        .with_types_filter(if v >= 5 { vec![s("classic")] } else { vec![] })
}

pub fn describe_groups_request(v: i16) -> kp::DescribeGroupsRequest {
    kp::DescribeGroupsRequest::default()
        .with_groups(vec![group("orders-app"), group("audit")])
        .with_include_authorized_operations(v >= 3)
}

pub fn delete_groups_request(_v: i16) -> kp::DeleteGroupsRequest {
    kp::DeleteGroupsRequest::default().with_groups_names(vec![group("orders-app"), group("audit")])
}

pub fn init_producer_id_request(v: i16) -> kp::InitProducerIdRequest {
    let request = kp::InitProducerIdRequest::default()
        .with_transactional_id(Some(kp::TransactionalId(s("orders-txn"))))
        .with_transaction_timeout_ms(60_000);
    if v >= 3 {
        request.with_producer_id(kp::ProducerId(4001)).with_producer_epoch(3)
    } else {
        request
    }
}

pub fn delete_records_request(_v: i16) -> kp::DeleteRecordsRequest {
    use kp::delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
    let partition =
        |index: i32, offset: i64| DeleteRecordsPartition::default().with_partition_index(index).with_offset(offset);
    kp::DeleteRecordsRequest::default()
        .with_topics(vec![
            DeleteRecordsTopic::default()
                .with_name(topic("orders"))
                .with_partitions(vec![partition(0, 42), partition(1, -1)]),
            DeleteRecordsTopic::default().with_name(topic("payments")).with_partitions(vec![partition(2, 7)]),
        ])
        .with_timeout_ms(30_000)
}

pub fn alter_partition_reassignments_request(v: i16) -> kp::AlterPartitionReassignmentsRequest {
    use kp::alter_partition_reassignments_request::{ReassignablePartition, ReassignableTopic};
    let partition = |index: i32, replicas: Option<&[i32]>| {
        ReassignablePartition::default()
            .with_partition_index(index)
            .with_replicas(replicas.map(|r| r.iter().map(|n| kp::BrokerId(*n)).collect()))
    };
    kp::AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(60_000)
        .with_allow_replication_factor_change(v == 0)
        .with_topics(vec![
            ReassignableTopic::default()
                .with_name(topic("orders"))
                .with_partitions(vec![partition(0, Some(&[4, 1, 2])), partition(1, None)]),
            ReassignableTopic::default().with_name(topic("payments")).with_partitions(vec![partition(2, Some(&[3]))]),
        ])
}

pub fn elect_leaders_request(v: i16, all: bool) -> kp::ElectLeadersRequest {
    use kp::elect_leaders_request::TopicPartitions;
    kp::ElectLeadersRequest::default()
        .with_election_type(if v >= 1 { 1 } else { 0 })
        .with_timeout_ms(30_000)
        .with_topic_partitions((!all).then(|| {
            vec![
                TopicPartitions::default().with_topic(topic("orders")).with_partitions(vec![0, 2]),
                TopicPartitions::default().with_topic(topic("payments")).with_partitions(vec![]),
            ]
        }))
}

pub fn list_partition_reassignments_request(all: bool) -> kp::ListPartitionReassignmentsRequest {
    use kp::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
    kp::ListPartitionReassignmentsRequest::default().with_timeout_ms(30_000).with_topics((!all).then(|| {
        vec![
            ListPartitionReassignmentsTopics::default().with_name(topic("orders")).with_partition_indexes(vec![0, 3]),
            ListPartitionReassignmentsTopics::default().with_name(topic("payments")).with_partition_indexes(vec![]),
        ]
    }))
}

pub fn add_raft_voter_request() -> kp::AddRaftVoterRequest {
    use kp::add_raft_voter_request::Listener;
    kp::AddRaftVoterRequest::default()
        .with_cluster_id(Some(s("MkU3OEVBNTcwNTJENDM2Qk")))
        .with_timeout_ms(30_000)
        .with_voter_id(4)
        .with_voter_directory_id(uuid(0))
        .with_listeners(vec![Listener::default().with_name(s("CONTROLLER")).with_host(s("127.0.0.1")).with_port(9493)])
}

pub fn remove_raft_voter_request() -> kp::RemoveRaftVoterRequest {
    kp::RemoveRaftVoterRequest::default().with_cluster_id(None).with_voter_id(3).with_voter_directory_id(uuid(0))
}

pub fn describe_acls_request(_v: i16) -> kp::DescribeAclsRequest {
    kp::DescribeAclsRequest::default()
        .with_resource_type_filter(2)
        .with_resource_name_filter(Some(s("orders")))
        .with_pattern_type_filter(4)
        .with_principal_filter(Some(s("User:alice")))
        .with_host_filter(Some(s("10.0.0.7")))
        .with_operation(3)
        .with_permission_type(3)
}

pub fn create_acls_request(_v: i16) -> kp::CreateAclsRequest {
    use kp::create_acls_request::AclCreation;
    kp::CreateAclsRequest::default().with_creations(vec![
        AclCreation::default()
            .with_resource_type(2)
            .with_resource_name(s("orders"))
            .with_resource_pattern_type(4)
            .with_principal(s("User:alice"))
            .with_host(s("*"))
            .with_operation(4)
            .with_permission_type(3),
        AclCreation::default()
            .with_resource_type(3)
            .with_resource_name(s("orders-app"))
            .with_resource_pattern_type(3)
            .with_principal(s("User:bob"))
            .with_host(s("10.0.0.8"))
            .with_operation(3)
            .with_permission_type(2),
    ])
}

pub fn delete_acls_request(_v: i16) -> kp::DeleteAclsRequest {
    use kp::delete_acls_request::DeleteAclsFilter;
    kp::DeleteAclsRequest::default().with_filters(vec![
        DeleteAclsFilter::default()
            .with_resource_type_filter(2)
            .with_resource_name_filter(Some(s("orders")))
            .with_pattern_type_filter(2)
            .with_principal_filter(Some(s("User:alice")))
            .with_host_filter(Some(s("*")))
            .with_operation(4)
            .with_permission_type(3),
        DeleteAclsFilter::default()
            .with_resource_type_filter(1)
            .with_resource_name_filter(None)
            .with_pattern_type_filter(1)
            .with_principal_filter(None)
            .with_host_filter(None)
            .with_operation(1)
            .with_permission_type(1),
    ])
}

pub fn alter_configs_request(_v: i16) -> kp::AlterConfigsRequest {
    use kp::alter_configs_request::{AlterConfigsResource, AlterableConfig};
    kp::AlterConfigsRequest::default()
        .with_resources(vec![
            AlterConfigsResource::default().with_resource_type(2).with_resource_name(s("orders")).with_configs(vec![
                AlterableConfig::default().with_name(s("retention.ms")).with_value(Some(s("3600000"))),
                AlterableConfig::default().with_name(s("cleanup.policy")).with_value(None),
            ]),
            AlterConfigsResource::default().with_resource_type(4).with_resource_name(s("1")).with_configs(vec![]),
        ])
        .with_validate_only(true)
}

pub fn incremental_alter_configs_request(_v: i16) -> kp::IncrementalAlterConfigsRequest {
    use kp::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
    kp::IncrementalAlterConfigsRequest::default()
        .with_resources(vec![
            AlterConfigsResource::default().with_resource_type(2).with_resource_name(s("orders")).with_configs(vec![
                AlterableConfig::default()
                    .with_name(s("retention.ms"))
                    .with_config_operation(0)
                    .with_value(Some(s("3600000"))),
                AlterableConfig::default().with_name(s("cleanup.policy")).with_config_operation(1).with_value(None),
            ]),
            AlterConfigsResource::default().with_resource_type(4).with_resource_name(s("")).with_configs(vec![
                AlterableConfig::default()
                    .with_name(s("log.cleaner.threads"))
                    .with_config_operation(2)
                    .with_value(Some(s("2"))),
            ]),
        ])
        .with_validate_only(true)
}

pub fn alter_replica_log_dirs_request(_v: i16) -> kp::AlterReplicaLogDirsRequest {
    use kp::alter_replica_log_dirs_request::{AlterReplicaLogDir, AlterReplicaLogDirTopic};
    let t = |name: &'static str, partitions: Vec<i32>| {
        AlterReplicaLogDirTopic::default().with_name(topic(name)).with_partitions(partitions)
    };
    kp::AlterReplicaLogDirsRequest::default().with_dirs(vec![
        AlterReplicaLogDir::default()
            .with_path(s("/var/lib/ringtail/data-1"))
            .with_topics(vec![t("orders", vec![0, 1]), t("payments", vec![2])]),
        AlterReplicaLogDir::default().with_path(s("/var/lib/ringtail/data-2")).with_topics(vec![t("audit", vec![5])]),
    ])
}

pub fn describe_log_dirs_request(_v: i16) -> kp::DescribeLogDirsRequest {
    use kp::describe_log_dirs_request::DescribableLogDirTopic;
    let t = |name: &'static str, partitions: Vec<i32>| {
        DescribableLogDirTopic::default().with_topic(topic(name)).with_partitions(partitions)
    };
    kp::DescribeLogDirsRequest::default().with_topics(Some(vec![t("orders", vec![0, 1]), t("payments", vec![2])]))
}

pub fn describe_client_quotas_request(_v: i16) -> kp::DescribeClientQuotasRequest {
    use kp::describe_client_quotas_request::ComponentData;
    kp::DescribeClientQuotasRequest::default()
        .with_components(vec![
            ComponentData::default().with_entity_type(s("user")).with_match_type(0).with_match(Some(s("alice"))),
            ComponentData::default().with_entity_type(s("client-id")).with_match_type(1).with_match(None),
        ])
        .with_strict(true)
}

pub fn describe_producers_request(_v: i16) -> kp::DescribeProducersRequest {
    use kp::describe_producers_request::TopicRequest;
    kp::DescribeProducersRequest::default().with_topics(vec![
        TopicRequest::default().with_name(topic("orders")).with_partition_indexes(vec![0, 1]),
        TopicRequest::default().with_name(topic("payments")).with_partition_indexes(vec![2]),
    ])
}

pub fn describe_topic_partitions_request(_v: i16) -> kp::DescribeTopicPartitionsRequest {
    use kp::describe_topic_partitions_request::{Cursor, TopicRequest};
    kp::DescribeTopicPartitionsRequest::default()
        .with_topics(vec![
            TopicRequest::default().with_name(topic("orders")),
            TopicRequest::default().with_name(topic("payments")),
        ])
        .with_response_partition_limit(500)
        .with_cursor(Some(Cursor::default().with_topic_name(topic("payments")).with_partition_index(4)))
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
        ApiKey::FindCoordinator => oracle_encode(&find_coordinator_request(v), v),
        ApiKey::JoinGroup => oracle_encode(&join_group_request(v), v),
        ApiKey::SyncGroup => oracle_encode(&sync_group_request(v), v),
        ApiKey::Heartbeat => oracle_encode(&heartbeat_request(v), v),
        ApiKey::LeaveGroup => oracle_encode(&leave_group_request(v), v),
        ApiKey::OffsetCommit => offset_commit_request_bytes(v),
        ApiKey::OffsetFetch => offset_fetch_request_bytes(v),
        ApiKey::OffsetDelete => oracle_encode(&offset_delete_request(v), v),
        ApiKey::ListGroups => oracle_encode(&list_groups_request(v), v),
        ApiKey::DescribeGroups => oracle_encode(&describe_groups_request(v), v),
        ApiKey::DeleteGroups => oracle_encode(&delete_groups_request(v), v),
        ApiKey::InitProducerId => oracle_encode(&init_producer_id_request(v), v),
        ApiKey::DeleteRecords => oracle_encode(&delete_records_request(v), v),
        ApiKey::OffsetForLeaderEpoch => oracle_encode(&client::offset_for_leader_epoch_request(v), v),
        ApiKey::AlterPartitionReassignments => oracle_encode(&alter_partition_reassignments_request(v), v),
        ApiKey::ElectLeaders => oracle_encode(&elect_leaders_request(v, false), v),
        ApiKey::ListPartitionReassignments => oracle_encode(&list_partition_reassignments_request(false), v),
        ApiKey::DescribeAcls => oracle_encode(&describe_acls_request(v), v),
        ApiKey::CreateAcls => oracle_encode(&create_acls_request(v), v),
        ApiKey::DeleteAcls => oracle_encode(&delete_acls_request(v), v),
        ApiKey::AlterConfigs => oracle_encode(&alter_configs_request(v), v),
        ApiKey::IncrementalAlterConfigs => oracle_encode(&incremental_alter_configs_request(v), v),
        ApiKey::AlterReplicaLogDirs => oracle_encode(&alter_replica_log_dirs_request(v), v),
        ApiKey::DescribeLogDirs => oracle_encode(&describe_log_dirs_request(v), v),
        ApiKey::DescribeClientQuotas => oracle_encode(&describe_client_quotas_request(v), v),
        ApiKey::DescribeProducers => oracle_encode(&describe_producers_request(v), v),
        ApiKey::DescribeTopicPartitions => oracle_encode(&describe_topic_partitions_request(v), v),
        ApiKey::DescribeQuorum => oracle_encode(&describe_quorum_request(), v),
        ApiKey::UnregisterBroker => {
            oracle_encode(&kp::UnregisterBrokerRequest::default().with_broker_id(kp::BrokerId(4)), v)
        }
        ApiKey::ConsumerGroupHeartbeat => oracle_encode(
            &kp::ConsumerGroupHeartbeatRequest::default()
                .with_group_id(group("g"))
                .with_member_id(s("m-1"))
                .with_rebalance_timeout_ms(30_000)
                .with_subscribed_topic_names(Some(vec![topic("t")]))
                .with_topic_partitions(Some(Vec::new())),
            v,
        ),
        ApiKey::ConsumerGroupDescribe => {
            oracle_encode(&kp::ConsumerGroupDescribeRequest::default().with_group_ids(vec![group("g")]), v)
        }
        ApiKey::AddRaftVoter => oracle_encode(&add_raft_voter_request(), v),
        ApiKey::RemoveRaftVoter => oracle_encode(&remove_raft_voter_request(), v),
        other => panic!("no sample request for {other:?}"),
    }
}
