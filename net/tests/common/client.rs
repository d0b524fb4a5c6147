//! Samples for the client half, built by the oracle for every version a client speaks: the
//! requests the common module does not already have, and responses with a non-default value in
//! every field the version has and, in flexible versions, an unknown tagged field at every level
//! (which a decoder must skip).

use bytes::Bytes;
use kafka_protocol::messages as kp;
use ringtail_net::client::ClientApi;
use ringtail_net::Writer;

use super::{group, oracle_encode, s, topic, uuid};

/// The tag of the unknown tagged fields: above every tag Kafka's schemas of these messages use.
pub const UNKNOWN_TAG: i32 = 99;

/// An unknown tagged field's value.
pub fn unknown() -> Bytes {
    Bytes::from_static(b"\x07future")
}

pub fn client_versions(api: ClientApi) -> std::ops::RangeInclusive<i16> {
    let (lo, hi) = api.versions();
    lo..=hi
}

pub fn api_versions_request(v: i16) -> kp::ApiVersionsRequest {
    let request = kp::ApiVersionsRequest::default();
    if v >= 3 {
        request.with_client_software_name(s("ringtail-bench")).with_client_software_version(s("0.1.0"))
    } else {
        request
    }
}

/// A follower's fetch from version 12 (cluster id; replica state from version 15), a consumer's
/// before, with topics named below version 13 and by id from it.
pub fn fetch_request(v: i16) -> kp::FetchRequest {
    use kp::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic, ReplicaState};
    let partition = |index: i32, offset: i64| {
        FetchPartition::default()
            .with_partition(index)
            .with_current_leader_epoch(if v >= 9 { 3 + index } else { -1 })
            .with_fetch_offset(offset)
            .with_last_fetched_epoch(if v >= 12 { 2 } else { -1 })
            .with_log_start_offset(if v >= 5 { 5 } else { -1 })
            .with_partition_max_bytes(1 << 20)
    };
    let fetch_topic = |name: &'static str, id: u8, partitions| {
        let t = FetchTopic::default().with_partitions(partitions);
        if v >= 13 {
            t.with_topic_id(uuid(id))
        } else {
            t.with_topic(topic(name))
        }
    };
    let forgotten = ForgottenTopic::default().with_partitions(vec![0, 4]);
    let forgotten = if v >= 13 { forgotten.with_topic_id(uuid(0x0f)) } else { forgotten.with_topic(topic("old")) };
    kp::FetchRequest::default()
        .with_replica_id(kp::BrokerId(if v <= 14 { 7 } else { -1 }))
        .with_replica_state(if v >= 15 {
            ReplicaState::default().with_replica_id(kp::BrokerId(7)).with_replica_epoch(11)
        } else {
            ReplicaState::default()
        })
        .with_cluster_id(if v >= 12 { Some(s("ringtail-cluster")) } else { None })
        .with_max_wait_ms(500)
        .with_min_bytes(1)
        .with_max_bytes(50 << 20)
        .with_isolation_level(1)
        .with_session_id(if v >= 7 { 4 } else { 0 })
        .with_session_epoch(if v >= 7 { 2 } else { -1 })
        .with_topics(vec![
            fetch_topic("orders", 0xa1, vec![partition(0, 42), partition(1, 0)]),
            fetch_topic("payments", 0xb2, vec![partition(2, 7)]),
        ])
        .with_forgotten_topics_data(if v >= 7 { vec![forgotten] } else { vec![] })
        .with_rack_id(if v >= 11 { s("rack-a") } else { s("") })
}

pub fn produce_request(v: i16) -> kp::ProduceRequest {
    use kp::produce_request::{PartitionProduceData, TopicProduceData};
    let produce_topic = |name: &'static str, id: u8, partitions| {
        let t = TopicProduceData::default().with_partition_data(partitions);
        if v >= 13 {
            t.with_topic_id(uuid(id))
        } else {
            t.with_name(topic(name))
        }
    };
    let partition = |index: i32, records: Option<&'static [u8]>| {
        PartitionProduceData::default().with_index(index).with_records(records.map(Bytes::from_static))
    };
    kp::ProduceRequest::default()
        .with_transactional_id(Some(kp::TransactionalId(s("orders-txn"))))
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![
            produce_topic("orders", 0xa1, vec![partition(0, Some(b"batch-bytes")), partition(3, None)]),
            produce_topic("payments", 0xb2, vec![partition(1, Some(b""))]),
        ])
}

pub fn offset_for_leader_epoch_request(v: i16) -> kp::OffsetForLeaderEpochRequest {
    use kp::offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
    let partition = |index: i32, epoch: i32| {
        OffsetForLeaderPartition::default().with_partition(index).with_current_leader_epoch(9).with_leader_epoch(epoch)
    };
    kp::OffsetForLeaderEpochRequest::default().with_replica_id(kp::BrokerId(if v >= 3 { 7 } else { -2 })).with_topics(
        vec![
            OffsetForLeaderTopic::default()
                .with_topic(topic("orders"))
                .with_partitions(vec![partition(0, 4), partition(1, 8)]),
            OffsetForLeaderTopic::default().with_topic(topic("payments")).with_partitions(vec![partition(2, 0)]),
        ],
    )
}

pub fn api_versions_response(v: i16) -> kp::ApiVersionsResponse {
    use kp::api_versions_response::{ApiVersion, FinalizedFeatureKey, SupportedFeatureKey};
    let api = |key: i16, min: i16, max: i16| {
        ApiVersion::default()
            .with_api_key(key)
            .with_min_version(min)
            .with_max_version(max)
            .with_unknown_tagged_field(UNKNOWN_TAG, unknown())
    };
    let response = kp::ApiVersionsResponse::default()
        .with_error_code(0)
        .with_api_keys(vec![api(0, 3, 13), api(1, 4, 18), api(18, 0, 4)])
        .with_throttle_time_ms(if v >= 1 { 17 } else { 0 });
    if v < 3 {
        return response;
    }
    response
        .with_supported_features(vec![
            SupportedFeatureKey::default()
                .with_name(s("metadata.version"))
                .with_min_version(7)
                .with_max_version(27)
                .with_unknown_tagged_field(UNKNOWN_TAG, unknown()),
            SupportedFeatureKey::default().with_name(s("group.version")).with_min_version(1).with_max_version(1),
        ])
        .with_finalized_features_epoch(42)
        .with_finalized_features(vec![FinalizedFeatureKey::default()
            .with_name(s("metadata.version"))
            .with_max_version_level(27)
            .with_min_version_level(26)
            .with_unknown_tagged_field(UNKNOWN_TAG, unknown())])
        .with_zk_migration_ready(true)
        .with_unknown_tagged_field(UNKNOWN_TAG, unknown())
}

pub fn metadata_response(v: i16) -> kp::MetadataResponse {
    use kp::metadata_response::{MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic};
    let broker = |node_id: i32, host: &'static str, rack: Option<&'static str>| {
        MetadataResponseBroker::default()
            .with_node_id(kp::BrokerId(node_id))
            .with_host(s(host))
            .with_port(9090 + node_id)
            .with_rack(if v >= 1 { rack.map(s) } else { None })
            .with_unknown_tagged_field(UNKNOWN_TAG, unknown())
    };
    let partition = |index: i32, error_code: i16| {
        MetadataResponsePartition::default()
            .with_error_code(error_code)
            .with_partition_index(index)
            .with_leader_id(kp::BrokerId(index + 1))
            .with_leader_epoch(if v >= 7 { 40 + index } else { -1 })
            .with_replica_nodes(vec![kp::BrokerId(1), kp::BrokerId(2), kp::BrokerId(3)])
            .with_isr_nodes(vec![kp::BrokerId(index + 1), kp::BrokerId(3)])
            .with_offline_replicas(if v >= 5 { vec![kp::BrokerId(2)] } else { vec![] })
            .with_unknown_tagged_field(UNKNOWN_TAG, unknown())
    };
    let authorized = |ops: i32| if v >= 8 { ops } else { i32::MIN };
    kp::MetadataResponse::default()
        .with_throttle_time_ms(if v >= 3 { 25 } else { 0 })
        .with_brokers(vec![broker(1, "b1.example", Some("rack-a")), broker(2, "b2.example", None)])
        .with_cluster_id(if v >= 2 { Some(s("ringtail-cluster")) } else { None })
        .with_controller_id(kp::BrokerId(if v >= 1 { 2 } else { -1 }))
        .with_topics(vec![
            MetadataResponseTopic::default()
                .with_error_code(0)
                .with_name(Some(topic("orders")))
                .with_topic_id(if v >= 10 { uuid(0xa1) } else { uuid(0) })
                .with_is_internal(v >= 1)
                .with_partitions(vec![partition(0, 0), partition(1, 9)])
                .with_topic_authorized_operations(authorized(0x0ff8))
                .with_unknown_tagged_field(UNKNOWN_TAG, unknown()),
            MetadataResponseTopic::default()
                .with_error_code(if v >= 12 { 100 } else { 3 })
                .with_name(if v >= 12 { None } else { Some(topic("missing")) })
                .with_topic_id(if v >= 10 { uuid(0xb2) } else { uuid(0) })
                .with_topic_authorized_operations(authorized(0)),
        ])
        .with_cluster_authorized_operations(if (8..=10).contains(&v) { 0x1ff } else { i32::MIN })
        .with_error_code(if v >= 13 { 35 } else { 0 })
        .with_unknown_tagged_field(UNKNOWN_TAG, unknown())
}

pub fn list_offsets_response(v: i16) -> kp::ListOffsetsResponse {
    use kp::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
    let partition = |index: i32, error_code: i16| {
        ListOffsetsPartitionResponse::default()
            .with_partition_index(index)
            .with_error_code(error_code)
            .with_timestamp(1_700_000_000_000 + i64::from(index))
            .with_offset(500 + i64::from(index))
            .with_leader_epoch(if v >= 4 { 7 + index } else { -1 })
            .with_unknown_tagged_field(UNKNOWN_TAG, unknown())
    };
    kp::ListOffsetsResponse::default()
        .with_throttle_time_ms(if v >= 2 { 12 } else { 0 })
        .with_topics(vec![
            ListOffsetsTopicResponse::default()
                .with_name(topic("orders"))
                .with_partitions(vec![partition(0, 0), partition(1, 6)])
                .with_unknown_tagged_field(UNKNOWN_TAG, unknown()),
            ListOffsetsTopicResponse::default().with_name(topic("payments")).with_partitions(vec![partition(2, 0)]),
        ])
        .with_unknown_tagged_field(UNKNOWN_TAG, unknown())
}

/// A partition with records, diverging epoch, leader hint and snapshot id (version 12 on) and
/// aborted transactions; one with null records and aborted transactions; topics named below
/// version 13 and by id from it.
pub fn fetch_response(v: i16) -> kp::FetchResponse {
    use kp::fetch_response::{
        AbortedTransaction, EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch, PartitionData, SnapshotId,
    };
    let aborted = |producer_id: i64, first_offset: i64| {
        AbortedTransaction::default()
            .with_producer_id(kp::ProducerId(producer_id))
            .with_first_offset(first_offset)
            .with_unknown_tagged_field(UNKNOWN_TAG, unknown())
    };
    let full = PartitionData::default()
        .with_partition_index(1)
        .with_error_code(0)
        .with_high_watermark(99)
        .with_last_stable_offset(97)
        .with_log_start_offset(if v >= 5 { 3 } else { -1 })
        .with_aborted_transactions(Some(vec![aborted(4001, 50), aborted(4002, 60)]))
        .with_preferred_read_replica(kp::BrokerId(if v >= 11 { 2 } else { -1 }))
        .with_records(Some(Bytes::from_static(b"first-batch+second-batch")))
        .with_unknown_tagged_field(UNKNOWN_TAG, unknown());
    let full = if v >= 12 {
        full.with_diverging_epoch(EpochEndOffset::default().with_epoch(4).with_end_offset(77))
            .with_current_leader(LeaderIdAndEpoch::default().with_leader_id(kp::BrokerId(3)).with_leader_epoch(9))
            .with_snapshot_id(SnapshotId::default().with_end_offset(70).with_epoch(4))
    } else {
        full
    };
    let empty = PartitionData::default()
        .with_partition_index(2)
        .with_error_code(6)
        .with_high_watermark(-1)
        .with_aborted_transactions(None)
        .with_records(None);
    let fetched = |name: &'static str, id: u8, partitions| {
        let t = FetchableTopicResponse::default()
            .with_partitions(partitions)
            .with_unknown_tagged_field(UNKNOWN_TAG, unknown());
        if v >= 13 {
            t.with_topic_id(uuid(id))
        } else {
            t.with_topic(topic(name))
        }
    };
    kp::FetchResponse::default()
        .with_throttle_time_ms(8)
        .with_error_code(if v >= 7 { 71 } else { 0 })
        .with_session_id(if v >= 7 { 123 } else { 0 })
        .with_responses(vec![fetched("orders", 0xa1, vec![full, empty]), fetched("payments", 0xb2, vec![])])
        .with_unknown_tagged_field(UNKNOWN_TAG, unknown())
}

pub fn produce_response(v: i16) -> kp::ProduceResponse {
    use kp::produce_response::{
        BatchIndexAndErrorMessage, LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse, TopicProduceResponse,
    };
    let partition = |index: i32, error_code: i16| {
        let p = PartitionProduceResponse::default()
            .with_index(index)
            .with_error_code(error_code)
            .with_base_offset(100 + i64::from(index))
            .with_log_append_time_ms(1_700_000_000_000)
            .with_log_start_offset(if v >= 5 { 9 } else { -1 })
            .with_unknown_tagged_field(UNKNOWN_TAG, unknown());
        let p = if v >= 8 {
            p.with_record_errors(vec![BatchIndexAndErrorMessage::default()
                .with_batch_index(2)
                .with_batch_index_error_message(Some(s("bad record")))
                .with_unknown_tagged_field(UNKNOWN_TAG, unknown())])
                .with_error_message(Some(s("bad batch")))
        } else {
            p
        };
        if v >= 10 {
            p.with_current_leader(LeaderIdAndEpoch::default().with_leader_id(kp::BrokerId(3)).with_leader_epoch(9))
        } else {
            p
        }
    };
    let produced = |name: &'static str, id: u8, partitions| {
        let t = TopicProduceResponse::default()
            .with_partition_responses(partitions)
            .with_unknown_tagged_field(UNKNOWN_TAG, unknown());
        if v >= 13 {
            t.with_topic_id(uuid(id))
        } else {
            t.with_name(topic(name))
        }
    };
    let response = kp::ProduceResponse::default()
        .with_responses(vec![
            produced("orders", 0xa1, vec![partition(0, 0), partition(1, 87)]),
            produced("payments", 0xb2, vec![]),
        ])
        .with_throttle_time_ms(5)
        .with_unknown_tagged_field(UNKNOWN_TAG, unknown());
    if v >= 10 {
        response.with_node_endpoints(vec![NodeEndpoint::default()
            .with_node_id(kp::BrokerId(3))
            .with_host(s("b3.example"))
            .with_port(9094)
            .with_rack(Some(s("rack-c")))
            .with_unknown_tagged_field(UNKNOWN_TAG, unknown())])
    } else {
        response
    }
}

/// Versions 2-7 (the oracle knows no older ones).
pub fn create_topics_response(v: i16) -> kp::CreateTopicsResponse {
    use kp::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
    let config = |name: &'static str, value: Option<&'static str>, source: i8, sensitive: bool| {
        CreatableTopicConfigs::default()
            .with_name(s(name))
            .with_value(value.map(s))
            .with_read_only(sensitive)
            .with_config_source(source)
            .with_is_sensitive(sensitive)
            .with_unknown_tagged_field(UNKNOWN_TAG, unknown())
    };
    let created = CreatableTopicResult::default()
        .with_name(topic("orders"))
        .with_topic_id(if v >= 7 { uuid(0xd4) } else { uuid(0) })
        .with_error_code(0)
        .with_error_message(None)
        .with_unknown_tagged_field(UNKNOWN_TAG, unknown());
    let created = if v >= 5 {
        created.with_topic_config_error_code(40).with_num_partitions(3).with_replication_factor(2).with_configs(Some(
            vec![config("cleanup.policy", Some("compact"), 1, false), config("sasl.jaas.config", None, 5, true)],
        ))
    } else {
        created
    };
    let refused = CreatableTopicResult::default()
        .with_name(topic("payments"))
        .with_error_code(36)
        .with_error_message(Some(s("Topic 'payments' already exists.")))
        .with_configs(if v >= 5 { None } else { Some(vec![]) });
    kp::CreateTopicsResponse::default()
        .with_throttle_time_ms(30)
        .with_topics(vec![created, refused])
        .with_unknown_tagged_field(UNKNOWN_TAG, unknown())
}

/// Every version: 2-7 from the oracle; version 1 is version 2 without the leading throttle
/// time; version 0 has a name and an error code per topic (Kafka's schema of that version).
pub fn create_topics_response_bytes(v: i16) -> Bytes {
    let response = create_topics_response(v.max(2));
    match v {
        0 => {
            let mut w = Writer::new();
            w.array_len(false, response.topics.len());
            for t in &response.topics {
                w.string(false, &t.name.0);
                w.i16(t.error_code);
            }
            w.buf.freeze()
        }
        1 => oracle_encode(&response, 2).slice(4..),
        _ => oracle_encode(&response, v),
    }
}

pub fn init_producer_id_response(_v: i16) -> kp::InitProducerIdResponse {
    kp::InitProducerIdResponse::default()
        .with_throttle_time_ms(5)
        .with_error_code(47)
        .with_producer_id(kp::ProducerId(1 << 40))
        .with_producer_epoch(7)
        .with_unknown_tagged_field(UNKNOWN_TAG, unknown())
}

pub fn list_groups_response(v: i16) -> kp::ListGroupsResponse {
    use kp::list_groups_response::ListedGroup;
    let listed = |group_id: &'static str, state: &'static str| {
        ListedGroup::default()
            .with_group_id(group(group_id))
            .with_protocol_type(s("consumer"))
            .with_group_state(if v >= 4 { s(state) } else { s("") })
            .with_group_type(if v >= 5 { s("classic") } else { s("") })
            .with_unknown_tagged_field(UNKNOWN_TAG, unknown())
    };
    kp::ListGroupsResponse::default()
        .with_throttle_time_ms(if v >= 1 { 150 } else { 0 })
        .with_error_code(14)
        .with_groups(vec![listed("orders-app", "Stable"), listed("audit", "Empty")])
        .with_unknown_tagged_field(UNKNOWN_TAG, unknown())
}

pub fn find_coordinator_response(v: i16) -> kp::FindCoordinatorResponse {
    use kp::find_coordinator_response::Coordinator;
    let response = kp::FindCoordinatorResponse::default()
        .with_throttle_time_ms(if v >= 1 { 3 } else { 0 })
        .with_unknown_tagged_field(UNKNOWN_TAG, unknown());
    if v >= 4 {
        let coordinator = |key: &'static str, node_id: i32, error_code: i16, message: Option<&'static str>| {
            Coordinator::default()
                .with_key(s(key))
                .with_node_id(kp::BrokerId(node_id))
                .with_host(s("b2.example"))
                .with_port(9093)
                .with_error_code(error_code)
                .with_error_message(message.map(s))
                .with_unknown_tagged_field(UNKNOWN_TAG, unknown())
        };
        response.with_coordinators(vec![
            coordinator("orders-app", 2, 0, None),
            coordinator("audit", -1, 15, Some("no coordinator yet")),
        ])
    } else {
        response
            .with_error_code(15)
            .with_error_message(if v >= 1 { Some(s("no coordinator yet")) } else { None })
            .with_node_id(kp::BrokerId(2))
            .with_host(s("b2.example"))
            .with_port(9093)
    }
}

pub fn describe_groups_response(v: i16) -> kp::DescribeGroupsResponse {
    use kp::describe_groups_response::{DescribedGroup, DescribedGroupMember};
    let member = |id: &'static str, instance: Option<&'static str>, assignment: &'static [u8]| {
        DescribedGroupMember::default()
            .with_member_id(s(id))
            .with_group_instance_id(if v >= 4 { instance.map(s) } else { None })
            .with_client_id(s("consumer-1"))
            .with_client_host(s("/10.0.0.7"))
            .with_member_metadata(Bytes::from_static(b"\x00\x03sub"))
            .with_member_assignment(Bytes::from_static(assignment))
            .with_unknown_tagged_field(UNKNOWN_TAG, unknown())
    };
    kp::DescribeGroupsResponse::default()
        .with_throttle_time_ms(if v >= 1 { 160 } else { 0 })
        .with_groups(vec![
            DescribedGroup::default()
                .with_group_id(group("orders-app"))
                .with_group_state(s("Stable"))
                .with_protocol_type(s("consumer"))
                .with_protocol_data(s("range"))
                .with_members(vec![
                    member("consumer-1-5f2a", Some("instance-a"), b"\x00\x01orders"),
                    member("consumer-2-9c1d", None, b""),
                ])
                .with_authorized_operations(if v >= 3 { 0x0f8 } else { i32::MIN })
                .with_unknown_tagged_field(UNKNOWN_TAG, unknown()),
            DescribedGroup::default()
                .with_error_code(16)
                .with_error_message(if v >= 6 { Some(s("not the coordinator")) } else { None })
                .with_group_id(group("audit")),
        ])
        .with_unknown_tagged_field(UNKNOWN_TAG, unknown())
}

pub fn offset_fetch_response(v: i16) -> kp::OffsetFetchResponse {
    let response = kp::OffsetFetchResponse::default()
        .with_throttle_time_ms(if v >= 3 { 130 } else { 0 })
        .with_unknown_tagged_field(UNKNOWN_TAG, unknown());
    let epoch = |index: i32| if v >= 5 { 5 + index } else { -1 };
    if v >= 8 {
        use kp::offset_fetch_response::{
            OffsetFetchResponseGroup, OffsetFetchResponsePartitions, OffsetFetchResponseTopics,
        };
        let partition = |index: i32, offset: i64, metadata: Option<&'static str>, error_code: i16| {
            OffsetFetchResponsePartitions::default()
                .with_partition_index(index)
                .with_committed_offset(offset)
                .with_committed_leader_epoch(epoch(index))
                .with_metadata(metadata.map(s))
                .with_error_code(error_code)
                .with_unknown_tagged_field(UNKNOWN_TAG, unknown())
        };
        let topics = vec![OffsetFetchResponseTopics::default()
            .with_name(topic("orders"))
            .with_partitions(vec![partition(0, 42, Some("checkpoint 9"), 0), partition(1, -1, None, 3)])
            .with_unknown_tagged_field(UNKNOWN_TAG, unknown())];
        response.with_groups(vec![
            OffsetFetchResponseGroup::default()
                .with_group_id(group("orders-app"))
                .with_topics(topics)
                .with_unknown_tagged_field(UNKNOWN_TAG, unknown()),
            OffsetFetchResponseGroup::default().with_group_id(group("audit")).with_error_code(16),
        ])
    } else {
        use kp::offset_fetch_response::{OffsetFetchResponsePartition, OffsetFetchResponseTopic};
        let partition = |index: i32, offset: i64, metadata: Option<&'static str>, error_code: i16| {
            OffsetFetchResponsePartition::default()
                .with_partition_index(index)
                .with_committed_offset(offset)
                .with_committed_leader_epoch(epoch(index))
                .with_metadata(metadata.map(s))
                .with_error_code(error_code)
                .with_unknown_tagged_field(UNKNOWN_TAG, unknown())
        };
        response
            .with_topics(vec![
                OffsetFetchResponseTopic::default()
                    .with_name(topic("orders"))
                    .with_partitions(vec![partition(0, 42, Some("checkpoint 9"), 0), partition(1, -1, None, 3)])
                    .with_unknown_tagged_field(UNKNOWN_TAG, unknown()),
                OffsetFetchResponseTopic::default().with_name(topic("payments")),
            ])
            .with_error_code(if v >= 2 { 14 } else { 0 })
    }
}

pub fn offset_for_leader_epoch_response(_v: i16) -> kp::OffsetForLeaderEpochResponse {
    use kp::offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
    let partition = |index: i32, error_code: i16, epoch: i32, end_offset: i64| {
        EpochEndOffset::default()
            .with_error_code(error_code)
            .with_partition(index)
            .with_leader_epoch(epoch)
            .with_end_offset(end_offset)
            .with_unknown_tagged_field(UNKNOWN_TAG, unknown())
    };
    kp::OffsetForLeaderEpochResponse::default()
        .with_throttle_time_ms(21)
        .with_topics(vec![
            OffsetForLeaderTopicResult::default()
                .with_topic(topic("orders"))
                .with_partitions(vec![partition(0, 0, 4, 1200), partition(1, 74, -1, -1)])
                .with_unknown_tagged_field(UNKNOWN_TAG, unknown()),
            OffsetForLeaderTopicResult::default().with_topic(topic("payments")),
        ])
        .with_unknown_tagged_field(UNKNOWN_TAG, unknown())
}

/// An assignment of the consumer protocol, at `v` (0-3).
pub fn consumer_protocol_assignment(_v: i16) -> kp::ConsumerProtocolAssignment {
    use kp::consumer_protocol_assignment::TopicPartition;
    kp::ConsumerProtocolAssignment::default()
        .with_assigned_partitions(vec![
            TopicPartition::default().with_topic(topic("orders")).with_partitions(vec![0, 2]),
            TopicPartition::default().with_topic(topic("payments")).with_partitions(vec![]),
        ])
        .with_user_data(Some(Bytes::from_static(b"sticky")))
}

/// The assignment with its version in front, as SyncGroup carries it.
pub fn consumer_protocol_assignment_bytes(v: i16) -> Bytes {
    [&v.to_be_bytes()[..], &oracle_encode(&consumer_protocol_assignment(v), v)].concat().into()
}

/// A valid encoded response of every API a client speaks, at `v`.
pub fn client_response_bytes(api: ClientApi, v: i16) -> Bytes {
    match api {
        ClientApi::ApiVersions => oracle_encode(&api_versions_response(v), v),
        ClientApi::Metadata => oracle_encode(&metadata_response(v), v),
        ClientApi::ListOffsets => oracle_encode(&list_offsets_response(v), v),
        ClientApi::Fetch => oracle_encode(&fetch_response(v), v),
        ClientApi::Produce => oracle_encode(&produce_response(v), v),
        ClientApi::CreateTopics => create_topics_response_bytes(v),
        ClientApi::InitProducerId => oracle_encode(&init_producer_id_response(v), v),
        ClientApi::ListGroups => oracle_encode(&list_groups_response(v), v),
        ClientApi::FindCoordinator => oracle_encode(&find_coordinator_response(v), v),
        ClientApi::DescribeGroups => oracle_encode(&describe_groups_response(v), v),
        ClientApi::OffsetFetch => oracle_encode(&offset_fetch_response(v), v),
        ClientApi::OffsetForLeaderEpoch => oracle_encode(&offset_for_leader_epoch_response(v), v),
        ClientApi::DescribeCluster => oracle_encode(&describe_cluster_response(v), v),
        ClientApi::DescribeQuorum => oracle_encode(&describe_quorum_response(v), v),
        ClientApi::AlterPartitionReassignments => oracle_encode(&alter_partition_reassignments_response(v), v),
        ClientApi::ListPartitionReassignments => oracle_encode(&list_partition_reassignments_response(v), v),
        ClientApi::ElectLeaders => oracle_encode(&elect_leaders_response(v), v),
        ClientApi::UnregisterBroker => oracle_encode(&unregister_broker_response(v), v),
        ClientApi::ConsumerGroupDescribe => oracle_encode(
            &kp::ConsumerGroupDescribeResponse::default().with_groups(vec![
                kp::consumer_group_describe_response::DescribedGroup::default()
                    .with_group_id(kp::GroupId(s("g")))
                    .with_group_state(s("Stable"))
                    .with_members(vec![kp::consumer_group_describe_response::Member::default()
                        .with_member_id(s("m"))
                        .with_client_id(s("c"))])
                    .with_unknown_tagged_field(UNKNOWN_TAG, unknown()),
            ]),
            v,
        ),
        ClientApi::AddRaftVoter => oracle_encode(
            &kp::AddRaftVoterResponse::default()
                .with_throttle_time_ms(9)
                .with_error_code(126)
                .with_error_message(Some(s("a voter already")))
                .with_unknown_tagged_field(UNKNOWN_TAG, unknown()),
            v,
        ),
        ClientApi::RemoveRaftVoter => oracle_encode(
            &kp::RemoveRaftVoterResponse::default()
                .with_throttle_time_ms(9)
                .with_error_code(127)
                .with_error_message(Some(s("not a voter")))
                .with_unknown_tagged_field(UNKNOWN_TAG, unknown()),
            v,
        ),
    }
}

pub fn alter_partition_reassignments_response(v: i16) -> kp::AlterPartitionReassignmentsResponse {
    use kp::alter_partition_reassignments_response::{ReassignablePartitionResponse, ReassignableTopicResponse};
    let partition = |index: i32, code: i16, message: Option<&'static str>| {
        ReassignablePartitionResponse::default()
            .with_partition_index(index)
            .with_error_code(code)
            .with_error_message(message.map(s))
            .with_unknown_tagged_field(UNKNOWN_TAG, unknown())
    };
    kp::AlterPartitionReassignmentsResponse::default()
        .with_throttle_time_ms(5)
        .with_allow_replication_factor_change(v == 0)
        .with_error_code(0)
        .with_error_message(Some(s("partly")))
        .with_responses(vec![ReassignableTopicResponse::default()
            .with_name(topic("orders"))
            .with_partitions(vec![partition(0, 0, None), partition(1, 85, Some("not moving"))])
            .with_unknown_tagged_field(UNKNOWN_TAG, unknown())])
        .with_unknown_tagged_field(UNKNOWN_TAG, unknown())
}

pub fn list_partition_reassignments_response(_v: i16) -> kp::ListPartitionReassignmentsResponse {
    use kp::list_partition_reassignments_response::{OngoingPartitionReassignment, OngoingTopicReassignment};
    let ids = |n: &[i32]| n.iter().map(|i| kp::BrokerId(*i)).collect::<Vec<_>>();
    kp::ListPartitionReassignmentsResponse::default()
        .with_throttle_time_ms(6)
        .with_error_message(Some(s("fine")))
        .with_topics(vec![OngoingTopicReassignment::default()
            .with_name(topic("orders"))
            .with_partitions(vec![OngoingPartitionReassignment::default()
                .with_partition_index(2)
                .with_replicas(ids(&[4, 1, 2, 3]))
                .with_adding_replicas(ids(&[4]))
                .with_removing_replicas(ids(&[3]))
                .with_unknown_tagged_field(UNKNOWN_TAG, unknown())])
            .with_unknown_tagged_field(UNKNOWN_TAG, unknown())])
        .with_unknown_tagged_field(UNKNOWN_TAG, unknown())
}

pub fn elect_leaders_response(_v: i16) -> kp::ElectLeadersResponse {
    use kp::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
    let partition = |id: i32, code: i16, message: Option<&'static str>| {
        PartitionResult::default()
            .with_partition_id(id)
            .with_error_code(code)
            .with_error_message(message.map(s))
            .with_unknown_tagged_field(UNKNOWN_TAG, unknown())
    };
    kp::ElectLeadersResponse::default()
        .with_throttle_time_ms(7)
        .with_replica_election_results(vec![ReplicaElectionResult::default()
            .with_topic(topic("orders"))
            .with_partition_result(vec![partition(0, 0, None), partition(2, 84, Some("leads already"))])
            .with_unknown_tagged_field(UNKNOWN_TAG, unknown())])
        .with_unknown_tagged_field(UNKNOWN_TAG, unknown())
}

pub fn unregister_broker_response(_v: i16) -> kp::UnregisterBrokerResponse {
    kp::UnregisterBrokerResponse::default()
        .with_throttle_time_ms(8)
        .with_error_code(102)
        .with_error_message(Some(s("broker 9 is not registered")))
        .with_unknown_tagged_field(UNKNOWN_TAG, unknown())
}

pub fn describe_cluster_response(v: i16) -> kp::DescribeClusterResponse {
    use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
    kp::DescribeClusterResponse::default()
        .with_throttle_time_ms(3)
        .with_error_message(Some(s("fine")))
        .with_endpoint_type(1)
        .with_cluster_id(s("cluster"))
        .with_controller_id(kp::BrokerId(2))
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(kp::BrokerId(2))
            .with_host(s("h2"))
            .with_port(9092)
            .with_rack(Some(s("r")))
            .with_is_fenced(v >= 2)])
}

pub fn describe_quorum_response(v: i16) -> kp::DescribeQuorumResponse {
    use kafka_protocol::messages::describe_quorum_response as q;
    let replica = |id: i32| {
        q::ReplicaState::default()
            .with_replica_id(kp::BrokerId(id))
            .with_log_end_offset(40 + i64::from(id))
            .with_last_fetch_timestamp(if v >= 1 { 1000 } else { -1 })
            .with_last_caught_up_timestamp(if v >= 1 { 900 } else { -1 })
    };
    let partition = q::PartitionData::default()
        .with_leader_id(kp::BrokerId(1))
        .with_leader_epoch(3)
        .with_high_watermark(41)
        .with_current_voters(vec![replica(1), replica(2)])
        .with_observers(vec![replica(4)]);
    let topic = q::TopicData::default().with_topic_name(topic("__cluster_metadata")).with_partitions(vec![partition]);
    let nodes = if v >= 2 {
        vec![q::Node::default()
            .with_node_id(kp::BrokerId(1))
            .with_listeners(vec![q::Listener::default().with_name(s("CONTROLLER")).with_host(s("h")).with_port(9093)])]
    } else {
        Vec::new()
    };
    kp::DescribeQuorumResponse::default().with_topics(vec![topic]).with_nodes(nodes)
}
