"""confluent-kafka (librdkafka) against the real broker: the admin API, keyed production with
every compression codec, consumption by assignment, watermarks and offsets by timestamp, and
partition placement over both shards."""

import collections
import hashlib
import time

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import ConfigResource, NewPartitions, NewTopic, ResourceType

import helpers
import kwire

TIMEOUT_S = helpers.ADMIN_TIMEOUT_S


def placement(broker, topic: str) -> list[int]:
    """Owner shard of each partition, as the broker recorded it (`ringtail metadata`)."""
    return broker.shards_of(topic)


def value_of(i: int) -> bytes:
    digest = hashlib.sha256(str(i).encode()).hexdigest()
    return f"{i}:{digest[:16]}:{'payload-' * 6}".encode()


def test_admin_topic_lifecycle(broker):
    a = helpers.admin(broker.bootstrap)
    topic = helpers.topic_name("ck-admin")

    futures = a.create_topics([NewTopic(topic, num_partitions=6, replication_factor=1,
                                        config={"retention.ms": "3600000"})], request_timeout=TIMEOUT_S)
    assert futures[topic].result(timeout=TIMEOUT_S) is None
    assert helpers.partition_count(broker.bootstrap, topic) == 6
    md = a.list_topics(topic=topic, timeout=TIMEOUT_S)
    for p in md.topics[topic].partitions.values():
        assert (p.leader, p.replicas, p.isrs, p.error) == (0, [0], [0], None)

    again = a.create_topics([NewTopic(topic, num_partitions=6, replication_factor=1)], request_timeout=TIMEOUT_S)
    with pytest.raises(KafkaException) as err:
        again[topic].result(timeout=TIMEOUT_S)
    assert err.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS
    assert helpers.partition_count(broker.bootstrap, topic) == 6, "a refused create must not change the topic"

    grow = a.create_partitions([NewPartitions(topic, 8)], request_timeout=TIMEOUT_S)
    assert grow[topic].result(timeout=TIMEOUT_S) is None
    assert helpers.partition_count(broker.bootstrap, topic) == 8
    assert len(placement(broker, topic)) == 8

    shrink = a.create_partitions([NewPartitions(topic, 4)], request_timeout=TIMEOUT_S)
    with pytest.raises(KafkaException) as err:
        shrink[topic].result(timeout=TIMEOUT_S)
    assert err.value.args[0].code() == KafkaError.INVALID_PARTITIONS

    resource = ConfigResource(ResourceType.TOPIC, topic)
    configs = a.describe_configs([resource], request_timeout=TIMEOUT_S)[resource].result(timeout=TIMEOUT_S)
    assert "retention.ms" in configs, sorted(configs)
    assert configs["retention.ms"].value == "3600000"
    assert not configs["retention.ms"].is_default
    assert configs["cleanup.policy"].value == "delete"
    assert configs["cleanup.policy"].is_default

    deleted = a.delete_topics([topic], request_timeout=TIMEOUT_S)
    assert deleted[topic].result(timeout=TIMEOUT_S) is None
    assert topic not in a.list_topics(timeout=TIMEOUT_S).topics
    assert topic not in broker.metadata()["topics"]
    deadline = time.monotonic() + 10
    while list(broker.data_dir.glob(f"{topic}-*")):
        assert time.monotonic() < deadline, (
            f"partition directories of the deleted topic remain: {list(broker.data_dir.glob(f'{topic}-*'))}")
        time.sleep(0.05)

    gone = a.delete_topics([topic], request_timeout=TIMEOUT_S)
    with pytest.raises(KafkaException) as err:
        gone[topic].result(timeout=TIMEOUT_S)
    assert err.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART

    # The name can be used again, and nothing of the old topic shows through.
    helpers.create_topic(broker.bootstrap, topic, 2)
    assert helpers.high_watermarks(broker.bootstrap, topic, 2) == {0: (0, 0), 1: (0, 0)}
    p = helpers.producer(broker.bootstrap)
    p.produce(topic, value=b"reborn", partition=1)
    assert p.flush(TIMEOUT_S) == 0
    got = helpers.consume_all(broker.bootstrap, topic, 2)
    assert [(m.partition(), m.offset(), m.value()) for msgs in got.values() for m in msgs] == [(1, 0, b"reborn")]


def test_describe_cluster(broker):
    a = helpers.admin(broker.bootstrap)  # must outlive the future
    result = a.describe_cluster(request_timeout=TIMEOUT_S).result(timeout=TIMEOUT_S)
    assert result.cluster_id == broker.metadata()["cluster_id"]
    assert [(n.id, n.host, n.port) for n in result.nodes] == [(0, "127.0.0.1", broker.port)]
    assert result.controller.id == 0


def test_long_poll_wakes_on_new_data(broker):
    """A consumer waiting at the end of the log gets each new message when it arrives, not when
    its fetch wait (30 s here) runs out: on both shards."""
    topic = helpers.topic_name("ck-tail")
    helpers.create_topic(broker.bootstrap, topic, 2)
    c = helpers.consumer(broker.bootstrap, **{"fetch.wait.max.ms": 30_000})
    p = helpers.producer(broker.bootstrap, **{"linger.ms": 0})
    rounds = 10
    try:
        c.assign([TopicPartition(topic, part, 0) for part in range(2)])
        deadline = time.monotonic() + 20  # far less than rounds * 30 s
        for i in range(rounds):
            part = i % 2
            p.produce(topic, value=f"tail-{i}".encode(), partition=part)
            assert p.flush(TIMEOUT_S) == 0
            while True:
                assert time.monotonic() < deadline, f"message {i} was not delivered to the waiting consumer"
                m = c.poll(0.2)
                if m is None:
                    continue
                assert m.error() is None, m.error()
                assert (m.partition(), m.offset(), m.value()) == (part, i // 2, f"tail-{i}".encode())
                break
    finally:
        c.close()


def test_partitions_spread_over_both_shards(broker):
    topic = helpers.topic_name("ck-spread")
    helpers.create_topic(broker.bootstrap, topic, 6)
    shards = placement(broker, topic)
    assert len(shards) == 6
    assert set(shards) == {0, 1}, f"6 partitions on 2 shards were placed on {shards}"

    a = helpers.admin(broker.bootstrap)
    a.create_partitions([NewPartitions(topic, 8)], request_timeout=TIMEOUT_S)[topic].result(timeout=TIMEOUT_S)
    shards = placement(broker, topic)
    assert len(shards) == 8 and set(shards) == {0, 1}
    assert sorted(collections.Counter(shards).values()) == [4, 4], f"unbalanced placement {shards}"

    # Every partition, old and new, on either shard, takes writes and serves reads.
    p = helpers.producer(broker.bootstrap)
    for part in range(8):
        p.produce(topic, value=f"to-{part}".encode(), partition=part)
    assert p.flush(TIMEOUT_S) == 0
    got = helpers.consume_all(broker.bootstrap, topic, 8)
    assert {part: [m.value() for m in msgs] for part, msgs in got.items()} == {
        part: [f"to-{part}".encode()] for part in range(8)}


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_keyed_production_and_consumption(broker, codec):
    topic = helpers.topic_name(f"ck-{codec}")
    partitions = 4
    helpers.create_topic(broker.bootstrap, topic, partitions)
    count = 20_000

    reports = {}
    errors = []

    def delivered(err, msg):
        i = int(msg.value().split(b":", 1)[0])
        if not helpers.is_ok(err):
            errors.append((i, err))
        else:
            reports[i] = (msg.partition(), msg.offset())

    p = helpers.producer(broker.bootstrap, **{"compression.type": codec})
    for i in range(count):
        while True:
            try:
                p.produce(topic, key=f"key-{i % 101}".encode(), value=value_of(i), on_delivery=delivered)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    assert p.flush(60) == 0, "messages still undelivered after 60 s"
    assert not errors, f"{len(errors)} delivery errors, first: {errors[:5]}"
    assert len(reports) == count

    got = helpers.consume_all(broker.bootstrap, topic, partitions)
    helpers.assert_contiguous(topic, got)
    assert sum(len(m) for m in got.values()) == count
    key_partition = {}
    for part, msgs in got.items():
        previous = -1
        for m in msgs:
            i = int(m.value().split(b":", 1)[0])
            assert m.value() == value_of(i), f"{topic}[{part}]@{m.offset()}: value corrupted"
            assert m.key() == f"key-{i % 101}".encode()
            assert reports[i] == (part, m.offset()), (
                f"message {i} was acknowledged at {reports[i]} but read at {(part, m.offset())}")
            assert i > previous, f"{topic}[{part}]: message {i} after {previous}"
            previous = i
            assert key_partition.setdefault(m.key(), part) == part, f"key {m.key()} in two partitions"

    # The broker keeps batches exactly as the producer compressed them.
    for part in range(partitions):
        batches = kwire.stored_batches(broker.bootstrap, topic, part)
        codecs = {kwire.CODEC_NAMES[b["codec"]] for b in batches}
        assert codecs == {codec}, (
            f"{topic}[{part}]: stored batches use {codecs}, the producer was configured with {codec} "
            f"(librdkafka falls back to no compression when it thinks the broker lacks a codec)")
        assert all(b["crc_ok"] and b["magic"] == 2 for b in batches)


def test_watermarks_and_offsets_for_times(broker):
    topic = helpers.topic_name("ck-offsets")
    partitions = 2  # one per shard
    helpers.create_topic(broker.bootstrap, topic, partitions)
    assert set(placement(broker, topic)) == {0, 1}
    per_partition = {0: 1000, 1: 600}
    base_ms = int(time.time() * 1000) - 3_600_000
    step_ms = 10

    for (low, high) in helpers.high_watermarks(broker.bootstrap, topic, partitions).values():
        assert (low, high) == (0, 0), "an empty partition has both watermarks at 0"

    p = helpers.producer(broker.bootstrap, **{"compression.type": "none"})
    for part, n in per_partition.items():
        for chunk in range(0, n, 100):  # several batches per partition
            for i in range(chunk, min(n, chunk + 100)):
                p.produce(topic, value=f"{part}-{i}".encode(), partition=part, timestamp=base_ms + i * step_ms)
            assert p.flush(TIMEOUT_S) == 0

    c = helpers.consumer(broker.bootstrap)
    try:
        for part, n in per_partition.items():
            tp = TopicPartition(topic, part)
            assert c.get_watermark_offsets(tp, timeout=TIMEOUT_S, cached=False) == (0, n)

            def lookup(ts):
                (r,) = c.offsets_for_times([TopicPartition(topic, part, ts)], timeout=TIMEOUT_S)
                assert r.error is None, r.error
                return r.offset

            assert lookup(base_ms - 60_000) == 0, "a time before the first record finds offset 0"
            for k in (0, 1, 99, 100, 101, 250, n - 1):
                assert lookup(base_ms + k * step_ms) == k, f"partition {part}: exact timestamp of record {k}"
            for k in (0, 99, 250, n - 2):
                assert lookup(base_ms + k * step_ms + step_ms // 2) == k + 1, (
                    f"partition {part}: a time between records {k} and {k + 1} finds {k + 1}")
            assert lookup(base_ms + n * step_ms) == -1, "a time after the last record finds no offset"
    finally:
        c.close()

    got = helpers.consume_all(broker.bootstrap, topic, partitions)
    for part, msgs in got.items():
        assert [m.value() for m in msgs] == [f"{part}-{i}".encode() for i in range(per_partition[part])]
        assert [m.timestamp()[1] for m in msgs] == [base_ms + i * step_ms for i in range(per_partition[part])]
