"""Client-side helpers shared by the end-to-end tests: topic names, admin calls, producing
numbered messages fast, consuming a whole topic with confluent-kafka by manual assignment, and
reading a consumer group's committed offsets."""

import logging
import time
import uuid

from confluent_kafka import (OFFSET_BEGINNING, Consumer, ConsumerGroupTopicPartitions, KafkaError, Producer,
                             TopicPartition)
from confluent_kafka.admin import AdminClient, NewTopic

ADMIN_TIMEOUT_S = 15.0
# librdkafka logs through Python logging, so pytest shows them with a failing test only (a client
# kept alive by a failure's traceback would otherwise print reconnect errors for the whole run).
RDKAFKA_LOGGER = logging.getLogger("rdkafka")


def topic_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, "logger": RDKAFKA_LOGGER})


def producer(bootstrap: str, **extra) -> Producer:
    """A producer as Ringtail supports them today: acks=all, no idempotence."""
    conf = {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, "enable.idempotence": False,
            "logger": RDKAFKA_LOGGER}
    conf.update(extra)
    return Producer(conf)


def create_topic(bootstrap: str, name: str, partitions: int, config: dict | None = None) -> None:
    client = admin(bootstrap)  # must outlive the future
    futures = client.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})],
        operation_timeout=10, request_timeout=ADMIN_TIMEOUT_S)
    futures[name].result(timeout=ADMIN_TIMEOUT_S)


def partition_count(bootstrap: str, name: str) -> int:
    md = admin(bootstrap).list_topics(timeout=ADMIN_TIMEOUT_S)
    assert name in md.topics, f"topic {name} not in metadata: {sorted(md.topics)}"
    t = md.topics[name]
    assert t.error is None, t.error
    return len(t.partitions)


def consumer(bootstrap: str, **extra) -> Consumer:
    """A consumer that never joins a group or commits: for manual assignment only."""
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": "e2e-unused",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "error",
        "enable.partition.eof": False,
        "logger": RDKAFKA_LOGGER,
    }
    conf.update(extra)
    return Consumer(conf)


def high_watermarks(bootstrap: str, topic: str, partitions: int) -> dict[int, tuple[int, int]]:
    c = consumer(bootstrap)
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=ADMIN_TIMEOUT_S, cached=False)
                for p in range(partitions)}
    finally:
        c.close()


def consume_all(bootstrap: str, topic: str, partitions: int, timeout_s: float = 60.0,
                expected_end: dict[int, int] | None = None, start: dict[int, int] | None = None) -> dict[int, list]:
    """Reads every partition from its beginning (or from `start`) up to its high watermark (read
    first, or given in `expected_end`). Returns {partition: [message, ...]} in the order received;
    fails on any consumer error or when the deadline passes."""
    if expected_end is None:
        expected_end = {p: hw for p, (_low, hw) in high_watermarks(bootstrap, topic, partitions).items()}
    c = consumer(bootstrap)
    got: dict[int, list] = {p: [] for p in range(partitions)}
    next_offset = {p: 0 if start is None else start[p] for p in range(partitions)}
    try:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING if start is None else start[p])
                  for p in range(partitions)])
        deadline = time.monotonic() + timeout_s
        while any(next_offset[p] < expected_end[p] for p in range(partitions)):
            if time.monotonic() > deadline:
                raise AssertionError(f"consuming {topic} timed out: read up to {next_offset}, "
                                     f"expected to reach {expected_end}")
            for m in c.consume(num_messages=10000, timeout=0.5):
                if m.error():
                    raise AssertionError(f"consumer error on {topic}: {m.error()}")
                got[m.partition()].append(m)
                next_offset[m.partition()] = m.offset() + 1
    finally:
        c.close()
    return got


def assert_contiguous(topic: str, got: dict[int, list], low: int = 0) -> None:
    """Every partition's messages have offsets low, low+1, ... with no gap or repeat."""
    for p, msgs in got.items():
        offsets = [m.offset() for m in msgs]
        assert offsets == list(range(low, low + len(offsets))), (
            f"{topic}[{p}]: offsets are not contiguous from {low}: first gap or repeat after "
            f"{next((a for a, b in zip(offsets, offsets[1:]) if b != a + 1), None)}")


def is_ok(err) -> bool:
    return err is None or (isinstance(err, KafkaError) and err.code() == KafkaError.NO_ERROR)


def produce_numbered(bootstrap: str, topic: str, count: int, partitions: int, first: int = 0) -> dict[tuple[int, int], bytes]:
    """Produces values b"first" .. b"first+count-1", value i to partition i % partitions, as fast as
    librdkafka batches them. Returns {(partition, offset): value} from the delivery reports; fails
    on any delivery error."""
    reports: dict[tuple[int, int], bytes] = {}
    errors = []

    def delivered(err, msg):
        if is_ok(err):
            reports[(msg.partition(), msg.offset())] = msg.value()
        else:
            errors.append(err)

    p = producer(bootstrap, **{"linger.ms": 20, "batch.num.messages": 10_000,
                               "queue.buffering.max.messages": 200_000})
    for i in range(first, first + count):
        while True:
            try:
                p.produce(topic, value=b"%d" % i, partition=i % partitions, on_delivery=delivered)
                break
            except BufferError:
                p.poll(0.05)
        if i % 1000 == 0:
            p.poll(0)
    assert p.flush(60) == 0, "messages still undelivered after 60 s"
    assert not errors, f"{len(errors)} delivery errors, first: {errors[:5]}"
    assert len(reports) == count, f"{count} messages produced, {len(reports)} distinct offsets acknowledged"
    return reports


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    """{partition: high watermark}."""
    return {p: hw for p, (_low, hw) in high_watermarks(bootstrap, topic, partitions).items()}


def committed_offsets(bootstrap: str, group: str) -> dict[tuple[str, int], tuple[int, str | None]]:
    """Every committed offset of a group, through the AdminClient (OffsetFetch for all topics):
    {(topic, partition): (offset, metadata)}."""
    client = admin(bootstrap)  # must outlive the future
    futures = client.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)],
                                                 request_timeout=ADMIN_TIMEOUT_S)
    result = futures[group].result(timeout=ADMIN_TIMEOUT_S)
    assert result.group_id == group
    out = {}
    for tp in result.topic_partitions or []:
        assert tp.error is None, f"OffsetFetch of {group} {tp.topic}[{tp.partition}]: {tp.error}"
        if tp.offset >= 0:
            out[(tp.topic, tp.partition)] = (tp.offset, tp.metadata)
    return out


def wait_for(condition, timeout_s: float, what: str, interval_s: float = 0.05):
    """Calls condition() until it returns something truthy, and returns that; fails after timeout_s
    with `what` (a string, or a function giving one, for details known only at the time)."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what() if callable(what) else what}")
        time.sleep(interval_s)


def flip_middle_byte(path) -> None:
    """Damages a file (a stopped broker's segment) by flipping the byte at its middle."""
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.seek(size // 2)
        byte = f.read(1)
        f.seek(size // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
