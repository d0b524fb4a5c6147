"""Clean shutdown and restart: SIGTERM stops the broker promptly with exit code 0 even while
clients wait on it, and a restart (also with fewer shards) finds every topic, config and
message where it was."""

import signal
import time

import pytest
from confluent_kafka.admin import ConfigResource, ResourceType

import helpers
import kwire
from kwire import i8, i32, i64, string

# Kafka answers parked fetches when it shuts down; a broker should not sit out its grace period.
PROMPT_STOP_S = 5.0


def produce_numbered(bootstrap: str, topic: str, partitions: int, count: int) -> None:
    p = helpers.producer(bootstrap)
    for i in range(count):
        p.produce(topic, value=f"{i}".encode(), partition=i % partitions)
    assert p.flush(30) == 0


def snapshot(bootstrap: str, topic: str, partitions: int) -> dict[int, list[bytes]]:
    got = helpers.consume_all(bootstrap, topic, partitions)
    helpers.assert_contiguous(topic, got)
    return {p: [m.value() for m in msgs] for p, msgs in got.items()}


@pytest.mark.parametrize("shards,max_wait_ms", [(2, 1_000), (1, 30_000)],
                         ids=["two-shards-1s-wait", "one-shard-30s-wait"])
def test_sigterm_while_a_fetch_long_polls(broker_factory, shards, max_wait_ms):
    """SIGTERM while a fetch is parked. With two shards the fetch waits on both (one partition
    each), and even a 1 s wait must not hold the broker for its whole shutdown grace period; a
    30 s wait should be cut short and answered at shutdown, as Kafka does."""
    broker = broker_factory(shards=shards)
    topic = "long-poll"
    with kwire.connect(broker.bootstrap) as s:
        assert kwire.create_topics_v1(s, [(topic, 2)]) == {topic: (kwire.NONE, None)}
    assert set(broker.shards_of(topic)) == set(range(shards))

    with kwire.connect(broker.bootstrap) as s:
        # Both partitions are empty: the fetch parks for up to max_wait_ms.
        body = (i32(-1) + i32(max_wait_ms) + i32(1) + i32(1 << 20) + i8(0)
                + kwire.array([string(topic) + kwire.array([i32(p) + i64(0) + i32(1 << 20) for p in (0, 1)])]))
        s.sendall(kwire.request(kwire.API_FETCH, 4, body, correlation_id=41))
        # Nothing outside the broker shows when the fetch is parked; give it time to arrive.
        time.sleep(0.3)
        assert broker.is_running()

        code = broker.stop(timeout_s=PROMPT_STOP_S)
        assert code != -signal.SIGKILL, (
            f"broker still running {PROMPT_STOP_S} s after SIGTERM with a fetch parked "
            f"({shards} shards, max_wait_ms={max_wait_ms})")
        assert code == 0, f"exit code {code} after SIGTERM"


def test_sigterm_while_creating_a_topic(broker):
    """SIGTERM while the controller creates a big topic: the broker still exits 0, and after a
    restart the topic either does not exist or exists whole, every partition usable."""
    topic, partitions = "big-topic", 2000  # takes the controller a few seconds
    with kwire.connect(broker.bootstrap) as s:
        body = (kwire.array([string(topic) + i32(partitions) + kwire.i16(1) + kwire.array([]) + kwire.array([])])
                + i32(60_000) + i8(0))
        s.sendall(kwire.request(kwire.API_CREATE_TOPICS, 1, body))
        time.sleep(0.2)  # let the creation start; nothing outside the broker shows it
        broker.stop_cleanly()

    # The restart opens what the creation left (up to 2,000 partitions: a file and directory
    # each); on a slow shared disk that takes longer than an ordinary start.
    broker.start(timeout_s=90)
    print(f"restart with the topic's partitions to open took {broker.last_start_s:.1f} s")
    with kwire.connect(broker.bootstrap) as s:
        topics = kwire.metadata_v1(s, None)["topics"]
        if topic in topics:
            assert topics[topic] == (kwire.NONE, partitions), "a half-created topic survived the restart"
            offsets = kwire.list_offsets_v1(s, topic, list(range(partitions)))
            bad = {p: r for p, r in offsets.items() if r != (kwire.NONE, 0)}
            assert len(offsets) == partitions and not bad, (
                f"partitions not usable after restart: {list(bad.items())[:5]}")


def test_clean_restart_keeps_topics_configs_and_messages(broker):
    topic = helpers.topic_name("restart")
    helpers.create_topic(broker.bootstrap, topic, 3, config={"retention.ms": "7200000"})
    produce_numbered(broker.bootstrap, topic, 3, 3000)
    before = snapshot(broker.bootstrap, topic, 3)
    metadata_before = broker.metadata()

    broker.restart()  # asserts exit code 0 after SIGTERM
    log_after = broker.log_text().rsplit("===== e2e: start #2", 1)[1]
    assert "unclean shutdown" not in log_after, "a clean stop must not need crash recovery:\n" + log_after

    assert broker.metadata()["topics"] == metadata_before["topics"]
    assert broker.metadata()["cluster_id"] == metadata_before["cluster_id"]
    assert helpers.partition_count(broker.bootstrap, topic) == 3
    assert snapshot(broker.bootstrap, topic, 3) == before
    a = helpers.admin(broker.bootstrap)
    resource = ConfigResource(ResourceType.TOPIC, topic)
    configs = a.describe_configs([resource])[resource].result(timeout=15)
    assert configs["retention.ms"].value == "7200000"

    produce_numbered(broker.bootstrap, topic, 3, 300)
    after = snapshot(broker.bootstrap, topic, 3)
    for p in range(3):
        assert after[p][:len(before[p])] == before[p] and len(after[p]) == len(before[p]) + 100


def test_restart_with_fewer_shards_keeps_every_partition(broker):
    topic = helpers.topic_name("reshard")
    helpers.create_topic(broker.bootstrap, topic, 4)
    produce_numbered(broker.bootstrap, topic, 4, 2000)
    before = snapshot(broker.bootstrap, topic, 4)

    broker.stop_cleanly()
    broker.shards = 1
    broker.start()
    assert broker.shards_of(topic) == [0, 0, 0, 0]
    assert snapshot(broker.bootstrap, topic, 4) == before
    produce_numbered(broker.bootstrap, topic, 4, 40)
    assert {p: len(v) for p, v in snapshot(broker.bootstrap, topic, 4).items()} == {
        p: len(before[p]) + 10 for p in range(4)}
