"""Replication throttles on real `ringtail serve` processes: a reassignment's new replica
copies an existing partition at the leader's `leader.replication.throttled.rate` (and, in a
second move, at the follower's `follower.replication.throttled.rate`), within 20% of it, while
in-sync replication and clients' acks=all writes go on unthrottled."""

import time

from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic, ResourceType

from helpers import admin, producer, topic_name
from test_reassignment import listed, reassign
from test_replication import metric_sum, partitions_of

RATE = 3_000_000  # bytes per second
MESSAGES = 20_000  # of 1 KiB: about 20 MB, 7 s at the rate
TIMEOUT_S = 30


def alter(client, resource_type, name, key, value):
    resource = ConfigResource(resource_type, name, incremental_configs=[
        ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)])
    client.incremental_alter_configs([resource])[resource].result(timeout=TIMEOUT_S)


def copy_rate(cluster, broker, metric: str, topic: str, done) -> tuple[float, float]:
    """Samples `metric` on `broker` every 250 ms until `done()`; the rate over the copy (from
    the first sample that moved to the last), and how long it took."""
    samples = []
    deadline = time.monotonic() + 120
    while not done():
        assert time.monotonic() < deadline, "the copy did not finish"
        samples.append((time.monotonic(), metric_sum(broker, metric)))
        time.sleep(0.25)
    samples.append((time.monotonic(), metric_sum(broker, metric)))
    moving = [i for i in range(1, len(samples)) if samples[i][1] > samples[i - 1][1]]
    assert moving, samples
    (t0, b0), (t1, b1) = samples[moving[0] - 1], samples[moving[-1]]
    return (b1 - b0) / (t1 - t0), t1 - t0


def test_a_reassignment_copies_at_the_throttled_rate(cluster_factory):
    cluster = cluster_factory(voters=3)
    topic = topic_name("throttled")
    client = admin(cluster.bootstrap)  # must outlive its futures
    for f in client.create_topics([NewTopic(topic, num_partitions=1, replication_factor=-1,
                                            replica_assignment=[[1]])]).values():
        f.result(timeout=TIMEOUT_S)
    p = producer(cluster.bootstrap, **{"acks": "1", "linger.ms": 20, "batch.size": 262144})
    payload = b"x" * 1024
    for i in range(MESSAGES):
        while True:
            try:
                p.produce(topic, value=payload, partition=0)
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(60) == 0
    written = MESSAGES * 1024

    # Leader side: broker 1 sends the new replica on broker 2 at most RATE.
    alter(client, ResourceType.BROKER, "1", "leader.replication.throttled.rate", str(RATE))
    alter(client, ResourceType.TOPIC, topic, "leader.replication.throttled.replicas", "0:1")
    assert reassign(cluster.bootstrap, {(topic, 0): [1, 2]})
    rate, took = copy_rate(cluster, cluster.nodes[1], "ringtail_replication_bytes_out_total", topic,
                           lambda: not listed(cluster.bootstrap))
    print(f"leader-side throttle {RATE} B/s: copied {written} bytes at {rate:.0f} B/s ({rate / RATE:.3f}x) in {took:.1f} s")
    assert partitions_of(cluster.bootstrap, topic)[0][2] == [1, 2]
    assert took > 0.6 * written / RATE, f"{written} bytes in {took:.1f} s"
    assert 0.8 * RATE <= rate <= 1.2 * RATE, f"replication ran at {rate:.0f} B/s under a {RATE} B/s throttle"

    # In-sync replication is not throttled: an acks=all write to the in-sync pair is answered at
    # once although the leader's budget is spent.
    acked = []
    p2 = producer(cluster.bootstrap, **{"acks": "all"})
    started = time.monotonic()
    p2.produce(topic, value=b"in-sync", partition=0, on_delivery=lambda err, msg: acked.append(err))
    p2.flush(30)
    assert acked == [None] and time.monotonic() - started < 5

    # Follower side: broker 3 fetches its new replica at most RATE.
    alter(client, ResourceType.BROKER, "1", "leader.replication.throttled.rate", "9223372036854775807")
    alter(client, ResourceType.BROKER, "3", "follower.replication.throttled.rate", str(RATE))
    alter(client, ResourceType.TOPIC, topic, "follower.replication.throttled.replicas", "0:3")
    assert reassign(cluster.bootstrap, {(topic, 0): [1, 2, 3]})
    rate, took = copy_rate(cluster, cluster.nodes[3], "ringtail_replication_bytes_in_total", topic,
                           lambda: not listed(cluster.bootstrap))
    print(f"follower-side throttle {RATE} B/s: copied at {rate:.0f} B/s ({rate / RATE:.3f}x) in {took:.1f} s")
    assert partitions_of(cluster.bootstrap, topic)[0][2] == [1, 2, 3]
    assert 0.8 * RATE <= rate <= 1.2 * RATE, f"replication ran at {rate:.0f} B/s under a {RATE} B/s throttle"
