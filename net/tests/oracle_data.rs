//! Produce and Fetch codecs against Kafka's generated schemas (the `kafka-protocol` crate,
//! test-only), for every supported version.

mod common;

use bytes::Bytes;
use common::{oracle_encode, topic, uuid, versions};
use kafka_protocol::messages as kp;
use kafka_protocol::protocol::{Decodable, Message, StrBytes};
use ringtail_net::header::ApiKey;
use ringtail_net::messages::fetch::{
    DivergingEpoch, FetchPartitionResponse, FetchRequest, FetchResponse, FetchTopicResponse, ForgottenTopic,
};
use ringtail_net::messages::leader_hints::{CurrentLeader, NodeEndpoint};
use ringtail_net::messages::produce::{
    ProducePartitionResponse, ProduceRequest, ProduceResponse, ProduceTopicResponse,
};
use ringtail_net::{Chunk, Reader, Writer};

/// A topic named up to version 12, by id from version 13.
fn produce_topic(v: i16, name: &'static str, id: u8) -> kp::produce_request::TopicProduceData {
    let t = kp::produce_request::TopicProduceData::default();
    if v >= 13 {
        t.with_topic_id(uuid(id))
    } else {
        t.with_name(topic(name))
    }
}

#[test]
fn produce() {
    // Kafka 4 dropped Produce v0-2 (message formats 0 and 1); the oracle cannot encode them.
    for v in versions(ApiKey::Produce).filter(|v| *v >= kp::ProduceRequest::VERSIONS.min) {
        let req = kp::ProduceRequest::default()
            .with_transactional_id(if v >= 3 {
                Some(kp::TransactionalId(StrBytes::from_static_str("tx")))
            } else {
                None
            })
            .with_acks(-1)
            .with_timeout_ms(1500)
            .with_topic_data(vec![
                produce_topic(v, "a", 0xa1).with_partition_data(vec![
                    kp::produce_request::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(Bytes::from_static(b"batch-bytes"))),
                    kp::produce_request::PartitionProduceData::default().with_index(3).with_records(None),
                ]),
                produce_topic(v, "b", 0xb1),
            ]);
        let mut r = Reader::new(oracle_encode(&req, v));
        let ours = ProduceRequest::decode(&mut r, v).unwrap();
        assert_eq!(r.remaining(), 0, "v{v}");
        assert_eq!(ours.transactional_id.as_deref(), if v >= 3 { Some("tx") } else { None });
        assert_eq!((ours.acks, ours.timeout_ms, ours.topics.len()), (-1, 1500, 2));
        assert_eq!(ours.topics[0].partitions[0].records.as_deref(), Some(&b"batch-bytes"[..]));
        assert_eq!((ours.topics[0].partitions[1].index, ours.topics[0].partitions[1].records.is_none()), (3, true));
        if v >= 13 {
            assert_eq!((ours.topics[0].name.as_str(), ours.topics[0].topic_id), ("", [0xa1; 16]));
        } else {
            assert_eq!((ours.topics[0].name.as_str(), ours.topics[0].topic_id), ("a", [0; 16]));
        }

        let resp = ProduceResponse {
            throttle_time_ms: 5,
            topics: vec![ProduceTopicResponse {
                name: "a".into(),
                topic_id: [0xa1; 16],
                partitions: vec![ProducePartitionResponse {
                    index: 2,
                    error_code: 87,
                    base_offset: 100,
                    log_append_time_ms: 7,
                    log_start_offset: 9,
                    error_message: Some("bad batch".into()),
                    current_leader: (v >= 10).then_some(CurrentLeader { leader_id: 3, leader_epoch: 9 }),
                }],
            }],
            node_endpoints: if v >= 10 { endpoints() } else { Vec::new() },
        };
        let mut w = Writer::new();
        resp.encode(&mut w, v);
        let mut b = w.buf.freeze();
        let theirs = kp::ProduceResponse::decode(&mut b, v).unwrap();
        assert!(b.is_empty(), "v{v}");
        let t = &theirs.responses[0];
        if v >= 13 {
            assert_eq!((t.name.as_str(), t.topic_id.as_bytes()), ("", &[0xa1; 16]), "v{v}");
        } else {
            assert_eq!((t.name.as_str(), t.topic_id.is_nil()), ("a", true), "v{v}");
        }
        let p = &t.partition_responses[0];
        assert_eq!((p.index, p.error_code, p.base_offset), (2, 87, 100), "v{v}");
        if v >= 2 {
            assert_eq!(p.log_append_time_ms, 7);
        }
        if v >= 5 {
            assert_eq!(p.log_start_offset, 9);
        }
        if v >= 8 {
            assert_eq!(p.error_message.as_ref().map(|s| s.as_str()), Some("bad batch"));
        }
        if v >= 1 {
            assert_eq!(theirs.throttle_time_ms, 5);
        }
        if v >= 10 {
            assert_eq!((p.current_leader.leader_id.0, p.current_leader.leader_epoch), (3, 9), "v{v}");
            let e = &theirs.node_endpoints[0];
            assert_eq!((e.node_id.0, e.host.as_str(), e.port, e.rack.as_deref()), (3, "b3.example", 9094, Some("r1")));
        }
    }
}

fn endpoints() -> Vec<NodeEndpoint> {
    vec![NodeEndpoint { node_id: 3, host: "b3.example".into(), port: 9094, rack: Some("r1".into()) }]
}

/// A topic named up to version 12, by id from version 13.
fn fetch_topic(v: i16, name: &'static str, id: u8) -> kp::fetch_request::FetchTopic {
    let t = kp::fetch_request::FetchTopic::default();
    if v >= 13 {
        t.with_topic_id(uuid(id))
    } else {
        t.with_topic(topic(name))
    }
}

#[test]
fn fetch() {
    for v in versions(ApiKey::Fetch) {
        let req = kp::FetchRequest::default()
            .with_replica_id(kp::BrokerId(if v <= 14 { 7 } else { -1 }))
            .with_replica_state(
                kp::fetch_request::ReplicaState::default()
                    .with_replica_id(kp::BrokerId(if v >= 15 { 7 } else { -1 }))
                    .with_replica_epoch(if v >= 15 { 11 } else { -1 }),
            )
            .with_cluster_id(if v >= 12 { Some(StrBytes::from_static_str("cluster-x")) } else { None })
            .with_max_wait_ms(500)
            .with_min_bytes(1)
            .with_max_bytes(52428800)
            .with_isolation_level(1)
            .with_session_id(if v >= 7 { 4 } else { 0 })
            .with_session_epoch(if v >= 7 { 2 } else { -1 })
            .with_topics(vec![fetch_topic(v, "t", 0x7e).with_partitions(vec![
                kp::fetch_request::FetchPartition::default()
                    .with_partition(1)
                    .with_current_leader_epoch(if v >= 9 { 3 } else { -1 })
                    .with_fetch_offset(42)
                    .with_last_fetched_epoch(if v >= 12 { 2 } else { -1 })
                    .with_log_start_offset(if v >= 5 { 5 } else { -1 })
                    .with_partition_max_bytes(1048576),
            ])])
            .with_forgotten_topics_data(if v >= 7 {
                let forgotten = kp::fetch_request::ForgottenTopic::default();
                let forgotten =
                    if v >= 13 { forgotten.with_topic_id(uuid(0x01)) } else { forgotten.with_topic(topic("old")) };
                vec![forgotten.with_partitions(vec![0, 1])]
            } else {
                vec![]
            })
            .with_rack_id(StrBytes::from_static_str(if v >= 11 { "rack-a" } else { "" }));
        let mut r = Reader::new(oracle_encode(&req, v));
        let ours = FetchRequest::decode(&mut r, v).unwrap();
        assert_eq!(r.remaining(), 0, "v{v}");
        assert_eq!((ours.max_wait_ms, ours.min_bytes, ours.max_bytes, ours.isolation_level), (500, 1, 52428800, 1));
        let p = &ours.topics[0].partitions[0];
        assert_eq!((p.partition, p.fetch_offset, p.partition_max_bytes), (1, 42, 1048576));
        let (name, id, forgotten_name, forgotten_id) =
            if v >= 13 { ("", [0x7e; 16], "", [0x01; 16]) } else { ("t", [0; 16], "old", [0; 16]) };
        assert_eq!((ours.topics[0].name.as_str(), ours.topics[0].topic_id), (name, id), "v{v}");
        assert_eq!(ours.replica_id, 7, "v{v}");
        assert_eq!(ours.replica_epoch, if v >= 15 { 11 } else { -1 }, "v{v}");
        assert_eq!(ours.cluster_id.as_deref(), if v >= 12 { Some("cluster-x") } else { None }, "v{v}");
        if v >= 7 {
            let forgotten =
                ForgottenTopic { name: forgotten_name.into(), topic_id: forgotten_id, partitions: vec![0, 1] };
            assert_eq!(ours.forgotten_topics, vec![forgotten]);
        }
        if v >= 11 {
            assert_eq!(ours.rack_id, "rack-a");
        }

        let records = [Bytes::from_static(b"first-batch"), Bytes::from_static(b"+second")];
        let resp = FetchResponse {
            throttle_time_ms: 1,
            error_code: 0,
            session_id: 0,
            node_endpoints: if v >= 16 { endpoints() } else { Vec::new() },
            topics: vec![FetchTopicResponse {
                name: "t".into(),
                topic_id: [0x7e; 16],
                partitions: vec![
                    FetchPartitionResponse {
                        partition_index: 1,
                        high_watermark: 99,
                        last_stable_offset: 99,
                        log_start_offset: 3,
                        records: records.iter().cloned().map(Chunk::Mem).collect(),
                        diverging_epoch: (v >= 12).then_some(DivergingEpoch { epoch: 4, end_offset: 77 }),
                        current_leader: (v >= 12).then_some(CurrentLeader { leader_id: 3, leader_epoch: 9 }),
                        preferred_read_replica: 2,
                        ..FetchPartitionResponse::default()
                    },
                    FetchPartitionResponse { partition_index: 2, error_code: 1, ..FetchPartitionResponse::default() },
                ],
            }],
        };
        let chunks = resp.encode_chunks(Writer::new(), v);
        let mut b =
            Bytes::from(chunks.iter().flat_map(|c| c.as_mem().expect("in memory").to_vec()).collect::<Vec<u8>>());
        let theirs = kp::FetchResponse::decode(&mut b, v).unwrap();
        assert!(b.is_empty(), "v{v}");
        if v >= 13 {
            assert_eq!(theirs.responses[0].topic_id.as_bytes(), &[0x7e; 16], "v{v}");
        } else {
            assert_eq!(theirs.responses[0].topic.as_str(), "t", "v{v}");
        }
        let p = &theirs.responses[0].partitions[0];
        assert_eq!((p.partition_index, p.high_watermark, p.last_stable_offset), (1, 99, 99), "v{v}");
        assert_eq!(p.records.as_deref(), Some(&b"first-batch+second"[..]));
        if v >= 11 {
            assert_eq!(p.preferred_read_replica.0, 2, "v{v}");
            assert_eq!(theirs.responses[0].partitions[1].preferred_read_replica.0, -1, "v{v}");
        }
        if v >= 12 {
            assert_eq!((p.diverging_epoch.epoch, p.diverging_epoch.end_offset), (4, 77), "v{v}");
            assert_eq!((p.current_leader.leader_id.0, p.current_leader.leader_epoch), (3, 9), "v{v}");
        }
        if v >= 16 {
            assert_eq!(theirs.node_endpoints[0].port, 9094, "v{v}");
        }
        assert_eq!(theirs.responses[0].partitions[1].error_code, 1);
        // Record bytes are passed through, not copied into the encoded fields.
        assert!(chunks.iter().any(|c| c.as_mem().is_some_and(|c| c.as_ptr() == records[0].as_ptr())));
    }
}
