"""Kafka 4.1 protocol currency against the real broker: the API versions clients infer a 4.1
broker from, features, topic ids in Produce and Fetch, the max-timestamp ListOffsets query, and
the admin APIs tools call (DeleteRecords, DescribeLogDirs, DescribeTopicPartitions with its
cursor, DescribeProducers, the ACL APIs answering SECURITY_DISABLED)."""

import time

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition as CTopicPartition
from confluent_kafka.admin import AclBinding, AclBindingFilter, AclOperation, AclPermissionType, ResourcePatternType
from confluent_kafka.admin import ResourceType
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import SecurityDisabledError

import helpers

TIMEOUT_S = 30


def kp_admin(broker):
    return KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=TIMEOUT_S * 1000)


def test_kafka_python_infers_kafka_4_1_and_reads_features(broker):
    admin = kp_admin(broker)
    try:
        assert admin._manager.broker_version[:2] == (4, 1)
        features = admin.describe_features()
        assert features["metadata.version"]["supported"] == (7, 27)
        assert features["metadata.version"]["finalized"] == (27, 27)
        assert features["metadata.version"]["finalized_epoch"] >= 0
        # Ringtail does not serve KIP-848 groups or transactions yet: honest ranges.
        assert features["group.version"] == {"supported": (0, 0)}
        assert features["transaction.version"] == {"supported": (0, 0)}
    finally:
        admin.close()


def test_topic_ids_in_produce_and_fetch(broker):
    """kafka-python speaks Produce v13 and Fetch v18 to a 4.1 broker: both name topics by id."""
    topic = helpers.topic_name("ids")
    helpers.create_topic(broker.bootstrap, topic, 2)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    try:
        sent = [producer.send(topic, key=b"k", value=f"v{i}".encode(), partition=i % 2) for i in range(50)]
        producer.flush(TIMEOUT_S)
        acked = sorted((f.get(timeout=TIMEOUT_S).partition, f.get(timeout=TIMEOUT_S).offset) for f in sent)
    finally:
        producer.close(timeout=TIMEOUT_S)
    assert acked == sorted([(0, o) for o in range(25)] + [(1, o) for o in range(25)])
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=TIMEOUT_S * 1000)
    try:
        tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        got = []
        deadline = time.monotonic() + TIMEOUT_S
        while len(got) < 50:
            assert time.monotonic() < deadline, f"read {len(got)} of 50"
            for records in consumer.poll(timeout_ms=500).values():
                got.extend(r.value for r in records)
        assert sorted(got) == sorted(f"v{i}".encode() for i in range(50))
    finally:
        consumer.close()
    # The versions used were the topic-id ones.
    admin = kp_admin(broker)
    try:
        versions = admin.api_versions()
        assert versions[0][1] >= 13 and versions[1][1] >= 17, versions
    finally:
        admin.close()


def test_list_offsets_max_timestamp(broker):
    """ListOffsets -3 (KIP-734): the offset of the record with the largest timestamp."""
    topic = helpers.topic_name("maxts")
    helpers.create_topic(broker.bootstrap, topic, 1)
    p = helpers.producer(broker.bootstrap, **{"linger.ms": 0})
    now = int(time.time() * 1000)
    stamps = [now - 5000, now - 1000, now - 3000, now - 4000]
    for i, ts in enumerate(stamps):
        p.produce(topic, value=f"m{i}".encode(), partition=0, timestamp=ts)
        p.flush(TIMEOUT_S)
    admin = helpers.admin(broker.bootstrap)
    from confluent_kafka.admin import OffsetSpec
    result = admin.list_offsets({CTopicPartition(topic, 0): OffsetSpec.max_timestamp()})
    info = list(result.values())[0].result(timeout=TIMEOUT_S)
    assert (info.offset, info.timestamp) == (1, now - 1000)


def test_delete_records_moves_the_low_watermark(broker):
    topic = helpers.topic_name("delrec")
    helpers.create_topic(broker.bootstrap, topic, 1)
    helpers.produce_numbered(broker.bootstrap, topic, 100, 1)
    admin = kp_admin(broker)
    try:
        result = admin.delete_records({TopicPartition(topic, 0): 40})
        low = result[TopicPartition(topic, 0)]
        assert low.get("low_watermark", low) == 40 if isinstance(low, dict) else low == 40
        # Asking past the high watermark is refused; asking below the start is a no-op.
        with pytest.raises(Exception):
            admin.delete_records({TopicPartition(topic, 0): 101})
    finally:
        admin.close()
    assert helpers.high_watermarks(broker.bootstrap, topic, 1)[0] == (40, 100)
    got = helpers.consume_all(broker.bootstrap, topic, 1, start={0: 40})
    assert [m.offset() for m in got[0]] == list(range(40, 100))
    # The new log start survives a restart.
    broker.restart()
    assert helpers.high_watermarks(broker.bootstrap, topic, 1)[0] == (40, 100)


def test_describe_log_dirs_lists_every_partition(broker):
    topic = helpers.topic_name("logdirs")
    helpers.create_topic(broker.bootstrap, topic, 3)
    helpers.produce_numbered(broker.bootstrap, topic, 300, 3)
    admin = kp_admin(broker)
    try:
        result = admin.describe_log_dirs()
    finally:
        admin.close()
    assert [b["broker"] for b in result] == [0]
    [log_dir] = result[0]["log_dirs"]
    assert log_dir["error_code"] == 0 and log_dir["log_dir"].endswith("data")
    assert 0 < log_dir["usable_bytes"] <= log_dir["total_bytes"]
    sizes = {}
    for t in log_dir["topics"]:
        for p in t["partitions"]:
            sizes[(t["name"], p["partition_index"])] = (p["partition_size"], p["offset_lag"])
    for index in range(3):
        size, lag = sizes[(topic, index)]
        assert size > 0 and lag == 0
    assert (("__consumer_offsets", 0) in sizes)


def test_describe_topic_partitions_pages_with_a_cursor(broker):
    topics = [helpers.topic_name(f"dtp{i}") for i in range(3)]
    for t in topics:
        helpers.create_topic(broker.bootstrap, t, 4)
    admin = kp_admin(broker)
    try:
        seen = []
        cursor = None
        pages = 0
        while True:
            page = admin.describe_topic_partitions(topics, response_partition_limit=5, cursor=cursor)
            pages += 1
            for t in page["topics"]:
                seen.extend((t["name"], p["partition_index"]) for p in t["partitions"])
            cursor = page.get("next_cursor")
            if not cursor:
                break
            assert pages < 10
    finally:
        admin.close()
    assert pages == 3
    assert sorted(seen) == sorted((t, i) for t in topics for i in range(4))


def test_describe_producers_after_idempotent_writes(broker):
    topic = helpers.topic_name("producers")
    helpers.create_topic(broker.bootstrap, topic, 1)
    p = helpers.producer(broker.bootstrap, **{"enable.idempotence": True})
    for i in range(10):
        p.produce(topic, value=f"m{i}".encode(), partition=0)
    p.flush(TIMEOUT_S)
    admin = kp_admin(broker)
    try:
        states = admin.describe_producers([TopicPartition(topic, 0)])
    finally:
        admin.close()
    state = states[TopicPartition(topic, 0)]
    producers = state.active_producers if hasattr(state, "active_producers") else state["active_producers"]
    assert len(producers) == 1
    last_sequence = producers[0].last_sequence if hasattr(producers[0], "last_sequence") else producers[0]["last_sequence"]
    assert last_sequence == 9


def test_acl_apis_answer_security_disabled(broker):
    admin = helpers.admin(broker.bootstrap)
    acl_filter = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY,
                                  AclPermissionType.ANY)
    # librdkafka answers an empty list (it does not surface the top-level error); before, the
    # request got no answer at all and timed out.
    try:
        assert admin.describe_acls(acl_filter).result(timeout=TIMEOUT_S) == []
    except KafkaException as e:
        assert e.args[0].code() == KafkaError.SECURITY_DISABLED, e
    binding = AclBinding(ResourceType.TOPIC, "t", ResourcePatternType.LITERAL, "User:alice", "*", AclOperation.READ,
                         AclPermissionType.ALLOW)
    for future in admin.create_acls([binding]).values():
        with pytest.raises(KafkaException) as raised:
            future.result(timeout=TIMEOUT_S)
        assert raised.value.args[0].code() == KafkaError.SECURITY_DISABLED
    kp = kp_admin(broker)
    try:
        from kafka.admin import ACLFilter, ACLOperation, ACLPermissionType, ResourcePatternFilter
        from kafka.admin import ResourceType as KResourceType, ACLResourcePatternType
        with pytest.raises(SecurityDisabledError):
            kp.describe_acls(ACLFilter(principal=None, host="*", operation=ACLOperation.ANY,
                                       permission_type=ACLPermissionType.ANY,
                                       resource_pattern=ResourcePatternFilter(KResourceType.ANY, None,
                                                                              ACLResourcePatternType.ANY)))
    finally:
        kp.close()
