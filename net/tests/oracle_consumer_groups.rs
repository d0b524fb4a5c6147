//! Our codecs of the consumer group protocol (KIP-848: ConsumerGroupHeartbeat, key 68, and
//! ConsumerGroupDescribe, key 69) against Kafka's generated schemas (the `kafka-protocol`
//! crate, test-only), for every supported version, both directions, and the client half's
//! ConsumerGroupDescribe (`ringtail group describe`).

mod common;

use bytes::Bytes;
use common::{group, id, nullable, oracle_decode, oracle_encode, s, string, topic, topic_name, uuid, versions};
use kafka_protocol::messages as kp;
use kafka_protocol::messages::consumer_group_describe_response as kd;
use kafka_protocol::messages::consumer_group_heartbeat_request as khq;
use kafka_protocol::messages::consumer_group_heartbeat_response as khs;
use ringtail_net::client::ClientRequest;
use ringtail_net::header::ApiKey;
use ringtail_net::messages::consumer_group_describe::*;
use ringtail_net::messages::consumer_group_heartbeat::*;
use ringtail_net::{Reader, Writer};

const TOPIC_ID: [u8; 16] = [7; 16];

#[test]
fn consumer_group_heartbeat_request() {
    for v in versions(ApiKey::ConsumerGroupHeartbeat) {
        let theirs = kp::ConsumerGroupHeartbeatRequest::default()
            .with_group_id(group("g"))
            .with_member_id(s("m-1"))
            .with_member_epoch(4)
            .with_instance_id(Some(s("i-1")))
            .with_rack_id(Some(s("r1")))
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(Some(vec![topic("a"), topic("b")]))
            .with_subscribed_topic_regex(if v >= 1 { Some(s("x.*")) } else { None })
            .with_server_assignor(Some(s("range")))
            .with_topic_partitions(Some(vec![khq::TopicPartitions::default()
                .with_topic_id(uuid(7))
                .with_partitions(vec![0, 3])]));
        let mut r = Reader::new(oracle_encode(&theirs, v));
        let ours = ConsumerGroupHeartbeatRequest::decode(&mut r, v).unwrap();
        assert_eq!(r.remaining(), 0, "v{v}");
        assert_eq!(
            ours,
            ConsumerGroupHeartbeatRequest {
                group_id: "g".into(),
                member_id: "m-1".into(),
                member_epoch: 4,
                instance_id: Some("i-1".into()),
                rack_id: Some("r1".into()),
                rebalance_timeout_ms: 30_000,
                subscribed_topic_names: Some(vec!["a".into(), "b".into()]),
                subscribed_topic_regex: (v >= 1).then(|| "x.*".into()),
                server_assignor: Some("range".into()),
                topic_partitions: Some(vec![TopicPartitions { topic_id: TOPIC_ID, partitions: vec![0, 3] }]),
            },
            "v{v}"
        );
        // Nulls: "unchanged since the last heartbeat".
        let nulls = kp::ConsumerGroupHeartbeatRequest::default().with_group_id(group("g")).with_member_epoch(5);
        let ours = ConsumerGroupHeartbeatRequest::decode(&mut Reader::new(oracle_encode(&nulls, v)), v).unwrap();
        assert_eq!((ours.subscribed_topic_names, ours.topic_partitions, ours.server_assignor), (None, None, None));
    }
}

#[test]
fn consumer_group_heartbeat_response() {
    for v in versions(ApiKey::ConsumerGroupHeartbeat) {
        for assignment in [None, Some(vec![TopicPartitions { topic_id: TOPIC_ID, partitions: vec![1, 2] }])] {
            let ours = ConsumerGroupHeartbeatResponse {
                throttle_time_ms: 0,
                error_code: 0,
                error_message: None,
                member_id: Some("m-1".into()),
                member_epoch: 9,
                heartbeat_interval_ms: 5000,
                assignment,
            };
            let mut w = Writer::new();
            ours.encode(&mut w, v);
            let theirs: kp::ConsumerGroupHeartbeatResponse = oracle_decode(w.buf.freeze(), v);
            let back = ConsumerGroupHeartbeatResponse {
                throttle_time_ms: theirs.throttle_time_ms,
                error_code: theirs.error_code,
                error_message: nullable(&theirs.error_message),
                member_id: nullable(&theirs.member_id),
                member_epoch: theirs.member_epoch,
                heartbeat_interval_ms: theirs.heartbeat_interval_ms,
                assignment: theirs.assignment.as_ref().map(|a: &khs::Assignment| {
                    a.topic_partitions
                        .iter()
                        .map(|t| TopicPartitions { topic_id: id(&t.topic_id), partitions: t.partitions.clone() })
                        .collect()
                }),
            };
            assert_eq!(back, ours, "v{v}");
        }
    }
}

fn described(theirs: &kd::Assignment) -> Vec<DescribedTopicPartitions> {
    theirs
        .topic_partitions
        .iter()
        .map(|t| DescribedTopicPartitions {
            topic_id: id(&t.topic_id),
            topic_name: topic_name(&t.topic_name),
            partitions: t.partitions.clone(),
        })
        .collect()
}

fn sample_describe_response(v: i16) -> ConsumerGroupDescribeResponse {
    let tp =
        |ps: Vec<i32>| vec![DescribedTopicPartitions { topic_id: TOPIC_ID, topic_name: "t".into(), partitions: ps }];
    ConsumerGroupDescribeResponse {
        throttle_time_ms: 0,
        groups: vec![
            DescribedConsumerGroup {
                error_code: 0,
                error_message: None,
                group_id: "g".into(),
                group_state: "Reconciling".into(),
                group_epoch: 7,
                assignment_epoch: 7,
                assignor_name: "uniform".into(),
                members: vec![DescribedMember {
                    member_id: "m-1".into(),
                    instance_id: Some("i".into()),
                    rack_id: None,
                    member_epoch: 6,
                    client_id: "c".into(),
                    client_host: "/127.0.0.1".into(),
                    subscribed_topic_names: vec!["t".into()],
                    subscribed_topic_regex: None,
                    assignment: tp(vec![0, 1]),
                    target_assignment: tp(vec![0]),
                    member_type: if v >= 1 { 1 } else { -1 },
                }],
                authorized_operations: i32::MIN,
            },
            DescribedConsumerGroup {
                error_code: 69,
                error_message: Some("the group classic is not a consumer group".into()),
                group_id: "classic".into(),
                authorized_operations: i32::MIN,
                ..DescribedConsumerGroup::default()
            },
        ],
    }
}

#[test]
fn consumer_group_describe() {
    for v in versions(ApiKey::ConsumerGroupDescribe) {
        let theirs = kp::ConsumerGroupDescribeRequest::default()
            .with_group_ids(vec![group("g"), group("h")])
            .with_include_authorized_operations(true);
        let mut r = Reader::new(oracle_encode(&theirs, v));
        let ours = ConsumerGroupDescribeRequest::decode(&mut r, v).unwrap();
        assert_eq!(r.remaining(), 0);
        assert_eq!(
            ours,
            ConsumerGroupDescribeRequest {
                group_ids: vec!["g".into(), "h".into()],
                include_authorized_operations: true
            }
        );
        // The client half writes the oracle's bytes.
        let mut w = Writer::new();
        ours.encode_request(&mut w, v);
        assert_eq!(w.buf.freeze(), oracle_encode(&theirs, v), "v{v}");

        let ours = sample_describe_response(v);
        let mut w = Writer::new();
        ours.encode(&mut w, v);
        let bytes: Bytes = w.buf.freeze();
        let theirs: kp::ConsumerGroupDescribeResponse = oracle_decode(bytes.clone(), v);
        let back = ConsumerGroupDescribeResponse {
            throttle_time_ms: theirs.throttle_time_ms,
            groups: theirs
                .groups
                .iter()
                .map(|g| DescribedConsumerGroup {
                    error_code: g.error_code,
                    error_message: nullable(&g.error_message),
                    group_id: string(&g.group_id.0),
                    group_state: string(&g.group_state),
                    group_epoch: g.group_epoch,
                    assignment_epoch: g.assignment_epoch,
                    assignor_name: string(&g.assignor_name),
                    members: g
                        .members
                        .iter()
                        .map(|m| DescribedMember {
                            member_id: string(&m.member_id),
                            instance_id: nullable(&m.instance_id),
                            rack_id: nullable(&m.rack_id),
                            member_epoch: m.member_epoch,
                            client_id: string(&m.client_id),
                            client_host: string(&m.client_host),
                            subscribed_topic_names: m.subscribed_topic_names.iter().map(topic_name).collect(),
                            subscribed_topic_regex: nullable(&m.subscribed_topic_regex),
                            assignment: described(&m.assignment),
                            target_assignment: described(&m.target_assignment),
                            member_type: m.member_type,
                        })
                        .collect(),
                    authorized_operations: g.authorized_operations,
                })
                .collect(),
        };
        assert_eq!(back, ours, "v{v}");
        // And the client half reads what the broker writes.
        let mut r = Reader::new(bytes);
        assert_eq!(ConsumerGroupDescribeRequest::decode_response(&mut r, v).unwrap(), ours, "v{v}");
        assert_eq!(r.remaining(), 0);
    }
}
