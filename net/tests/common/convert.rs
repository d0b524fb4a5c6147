//! The oracle's messages (the `kafka-protocol` crate's types) in our types, field by field, so
//! a test compares whole messages: what our decoder read against what the oracle encoded, or
//! what the oracle read against what our encoder wrote.

use kafka_protocol::messages as kp;
use ringtail_net::messages::create_topics::*;
use ringtail_net::messages::describe_groups::*;
use ringtail_net::messages::find_coordinator::*;
use ringtail_net::messages::list_groups::*;
use ringtail_net::messages::list_offsets::*;
use ringtail_net::messages::metadata::*;
use ringtail_net::messages::offset_fetch::*;

use super::{broker_ids, id, nullable, string, topic_name};

pub fn group_name(x: &kp::GroupId) -> String {
    string(&x.0)
}

pub fn metadata_request_from(theirs: &kp::MetadataRequest) -> MetadataRequest {
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

pub fn metadata_response_from(theirs: &kp::MetadataResponse) -> MetadataResponse {
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
        error_code: theirs.error_code,
    }
}

pub fn list_offsets_request_from(theirs: &kp::ListOffsetsRequest) -> ListOffsetsRequest {
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
        timeout_ms: theirs.timeout_ms,
    }
}

pub fn list_offsets_response_from(theirs: &kp::ListOffsetsResponse) -> ListOffsetsResponse {
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

pub fn create_topics_request_from(theirs: &kp::CreateTopicsRequest) -> CreateTopicsRequest {
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

pub fn create_topics_response_from(theirs: &kp::CreateTopicsResponse) -> CreateTopicsResponse {
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

pub fn find_coordinator_request_from(theirs: &kp::FindCoordinatorRequest, v: i16) -> FindCoordinatorRequest {
    FindCoordinatorRequest {
        key_type: theirs.key_type,
        coordinator_keys: if v >= 4 {
            theirs.coordinator_keys.iter().map(string).collect()
        } else {
            vec![string(&theirs.key)]
        },
    }
}

pub fn find_coordinator_response_from(theirs: &kp::FindCoordinatorResponse, v: i16) -> FindCoordinatorResponse {
    FindCoordinatorResponse {
        throttle_time_ms: theirs.throttle_time_ms,
        coordinators: if v >= 4 {
            theirs
                .coordinators
                .iter()
                .map(|c| Coordinator {
                    key: string(&c.key),
                    node_id: c.node_id.0,
                    host: string(&c.host),
                    port: c.port,
                    error_code: c.error_code,
                    error_message: nullable(&c.error_message),
                })
                .collect()
        } else {
            vec![Coordinator {
                key: String::new(),
                node_id: theirs.node_id.0,
                host: string(&theirs.host),
                port: theirs.port,
                error_code: theirs.error_code,
                // Not on the wire in version 0, where the oracle's default is an empty string.
                error_message: if v >= 1 { nullable(&theirs.error_message) } else { None },
            }]
        },
    }
}

pub fn offset_fetch_request_from(theirs: &kp::OffsetFetchRequest, v: i16) -> OffsetFetchRequest {
    let groups = if v >= 8 {
        theirs
            .groups
            .iter()
            .map(|g| OffsetFetchRequestGroup {
                group_id: group_name(&g.group_id),
                member_id: nullable(&g.member_id),
                member_epoch: g.member_epoch,
                topics: g.topics.as_ref().map(|topics| {
                    topics
                        .iter()
                        .map(|t| OffsetFetchRequestTopic {
                            name: topic_name(&t.name),
                            partition_indexes: t.partition_indexes.clone(),
                        })
                        .collect()
                }),
            })
            .collect()
    } else {
        vec![OffsetFetchRequestGroup {
            group_id: group_name(&theirs.group_id),
            member_id: None,
            member_epoch: -1,
            topics: theirs.topics.as_ref().map(|topics| {
                topics
                    .iter()
                    .map(|t| OffsetFetchRequestTopic {
                        name: topic_name(&t.name),
                        partition_indexes: t.partition_indexes.clone(),
                    })
                    .collect()
            }),
        }]
    };
    OffsetFetchRequest { groups, require_stable: theirs.require_stable }
}

pub fn offset_fetch_response_from(theirs: &kp::OffsetFetchResponse, v: i16) -> OffsetFetchResponse {
    let groups = if v >= 8 {
        theirs
            .groups
            .iter()
            .map(|g| OffsetFetchResponseGroup {
                group_id: group_name(&g.group_id),
                topics: g
                    .topics
                    .iter()
                    .map(|t| OffsetFetchResponseTopic {
                        name: topic_name(&t.name),
                        partitions: t
                            .partitions
                            .iter()
                            .map(|p| OffsetFetchResponsePartition {
                                partition_index: p.partition_index,
                                committed_offset: p.committed_offset,
                                committed_leader_epoch: p.committed_leader_epoch,
                                metadata: nullable(&p.metadata),
                                error_code: p.error_code,
                            })
                            .collect(),
                    })
                    .collect(),
                error_code: g.error_code,
            })
            .collect()
    } else {
        let topics = theirs
            .topics
            .iter()
            .map(|t| OffsetFetchResponseTopic {
                name: topic_name(&t.name),
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| OffsetFetchResponsePartition {
                        partition_index: p.partition_index,
                        committed_offset: p.committed_offset,
                        committed_leader_epoch: p.committed_leader_epoch,
                        metadata: nullable(&p.metadata),
                        error_code: p.error_code,
                    })
                    .collect(),
            })
            .collect();
        vec![OffsetFetchResponseGroup { group_id: String::new(), topics, error_code: theirs.error_code }]
    };
    OffsetFetchResponse { throttle_time_ms: theirs.throttle_time_ms, groups }
}

pub fn list_groups_response_from(theirs: &kp::ListGroupsResponse) -> ListGroupsResponse {
    ListGroupsResponse {
        throttle_time_ms: theirs.throttle_time_ms,
        error_code: theirs.error_code,
        groups: theirs
            .groups
            .iter()
            .map(|g| ListedGroup {
                group_id: group_name(&g.group_id),
                protocol_type: string(&g.protocol_type),
                group_state: string(&g.group_state),
                group_type: string(&g.group_type),
            })
            .collect(),
    }
}

pub fn describe_groups_response_from(theirs: &kp::DescribeGroupsResponse) -> DescribeGroupsResponse {
    DescribeGroupsResponse {
        throttle_time_ms: theirs.throttle_time_ms,
        groups: theirs
            .groups
            .iter()
            .map(|g| DescribedGroup {
                error_code: g.error_code,
                error_message: nullable(&g.error_message),
                group_id: group_name(&g.group_id),
                group_state: string(&g.group_state),
                protocol_type: string(&g.protocol_type),
                protocol_data: string(&g.protocol_data),
                members: g
                    .members
                    .iter()
                    .map(|m| DescribedGroupMember {
                        member_id: string(&m.member_id),
                        group_instance_id: nullable(&m.group_instance_id),
                        client_id: string(&m.client_id),
                        client_host: string(&m.client_host),
                        member_metadata: m.member_metadata.clone(),
                        member_assignment: m.member_assignment.clone(),
                    })
                    .collect(),
                authorized_operations: g.authorized_operations,
            })
            .collect(),
    }
}
