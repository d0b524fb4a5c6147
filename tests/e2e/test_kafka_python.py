"""kafka-python (a pure-Python client with its own protocol code) against the real broker:
admin topic creation, 10,000 acknowledged messages, and consumption by manual assignment."""

import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

import helpers

TIMEOUT_S = 30


def test_admin_create_topics(broker):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=TIMEOUT_S * 1000)
    try:
        names = [helpers.topic_name("kp-admin-a"), helpers.topic_name("kp-admin-b")]
        admin.create_topics([NewTopic(names[0], num_partitions=3, replication_factor=1),
                             NewTopic(names[1], num_partitions=1, replication_factor=1)])
        assert set(names) <= set(admin.list_topics())
        described = {t.get("name", t.get("topic")): t for t in admin.describe_topics(names)}
        assert {n: len(described[n]["partitions"]) for n in names} == {names[0]: 3, names[1]: 1}
        with pytest.raises(TopicAlreadyExistsError):
            admin.create_topics([NewTopic(names[0], num_partitions=3, replication_factor=1)])
    finally:
        admin.close()
    # librdkafka sees the same topics.
    assert helpers.partition_count(broker.bootstrap, names[0]) == 3


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_produce_and_consume_10k(broker, compression):
    topic = helpers.topic_name("kp-data")
    partitions = 3
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    admin.close()

    count = 10_000
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", enable_idempotence=False,
                             compression_type=compression, linger_ms=5)
    try:
        futures = [producer.send(topic, key=f"k{i % 31}".encode(), value=f"value-{i}".encode())
                   for i in range(count)]
        producer.flush(TIMEOUT_S)
        acked = {}
        for i, f in enumerate(futures):
            md = f.get(timeout=TIMEOUT_S)  # raises if the broker refused the message
            acked[(md.partition, md.offset)] = f"value-{i}".encode()
    finally:
        producer.close(timeout=TIMEOUT_S)
    assert len(acked) == count, "two messages were acknowledged at the same offset"

    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest", consumer_timeout_ms=TIMEOUT_S * 1000)
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        assert sum(end.values()) == count
        assert consumer.beginning_offsets(tps) == {tp: 0 for tp in tps}
        got = {}
        deadline = time.monotonic() + TIMEOUT_S
        while len(got) < count:
            assert time.monotonic() < deadline, f"read {len(got)} of {count} messages in {TIMEOUT_S} s"
            for tp, records in consumer.poll(timeout_ms=500, max_records=5000).items():
                for r in records:
                    assert (r.partition, r.offset) not in got, f"offset {r.partition}/{r.offset} read twice"
                    got[(r.partition, r.offset)] = r.value
        assert got == acked
        for p in range(partitions):
            offsets = sorted(o for (q, o) in got if q == p)
            assert offsets == list(range(end[TopicPartition(topic, p)])), f"partition {p}: offsets have gaps"
    finally:
        consumer.close()
