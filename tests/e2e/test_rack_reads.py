"""Nearest-replica reads (KIP-392) on real `ringtail serve` processes in three racks: with the
rack-aware replica selector, a confluent-kafka consumer that sets client.rack reads from the
in-sync replica of its rack (the brokers' bytes-out metrics show where the bytes came from); one
without a rack reads from the leader; a fetch past a follower's high watermark is answered
empty, never out of range."""

from confluent_kafka import Consumer, TopicPartition

import kwire
from helpers import topic_name
from test_replication import create, metric_sum, partitions_of, produce_idempotent, wait_isr

MESSAGES = 2000


def read_all(bootstrap: str, topic: str, rack: str | None) -> list[bytes]:
    config = {"bootstrap.servers": bootstrap, "group.id": topic_name("g"), "enable.auto.commit": False}
    if rack is not None:
        config["client.rack"] = rack
    c = Consumer(config)
    got = []
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        import time
        deadline = time.monotonic() + 60
        while len(got) < MESSAGES:
            assert time.monotonic() < deadline, f"read {len(got)} of {MESSAGES}"
            for m in c.consume(num_messages=1000, timeout=0.5):
                assert not m.error(), m.error()
                got.append(m.value())
    finally:
        c.close()
    return got


def bytes_out(cluster, topic: str) -> dict[int, float]:
    return {n: metric_sum(b, "ringtail_topic_bytes_out_total", f'topic="{topic}"') for n, b in cluster.nodes.items()}


def test_a_consumer_with_a_rack_reads_from_the_replica_in_its_rack(cluster_factory):
    cluster = cluster_factory(voters=3, start=False, extra=["--replica-selector-class", "rack-aware"])
    for n, node in cluster.nodes.items():
        node.args += ["--rack", f"rack-{n}"]
    cluster.start()
    cluster.wait_brokers({1, 2, 3})
    topic = topic_name("racks")
    create(cluster.bootstrap, topic, 1, 3, {"min.insync.replicas": "2"})
    wait_isr(cluster, topic, [1, 2, 3])
    acked, errors = produce_idempotent(cluster.bootstrap, topic, 0, MESSAGES, 1)
    assert not errors and len(acked) == MESSAGES
    leader = partitions_of(cluster.bootstrap, topic)[0][0]
    follower = next(n for n in (1, 2, 3) if n != leader)
    written = sum(len(v) for v in acked)

    before = bytes_out(cluster, topic)
    got = read_all(cluster.bootstrap, topic, f"rack-{follower}")
    assert set(got) == acked and len(got) == MESSAGES
    after = bytes_out(cluster, topic)
    delta = {n: after[n] - before[n] for n in after}
    assert delta[follower] >= written, delta
    assert delta[leader] == 0, f"the leader sent records to a consumer of another rack: {delta}"

    # Without a rack: from the leader.
    got = read_all(cluster.bootstrap, topic, None)
    assert len(got) == MESSAGES
    again = bytes_out(cluster, topic)
    assert again[leader] - after[leader] >= written and again[follower] == after[follower], (after, again)

    # The leader's own answer to a consumer of the follower's rack, and the follower's to one
    # fetching past its high watermark: empty, no error, no reset.
    with kwire.connect(cluster.nodes[leader].bootstrap) as s:
        sent = kwire.fetch_v11(s, topic, 0, 0, rack=f"rack-{follower}")
        assert sent["preferred_read_replica"] == follower and sent["records"] == b"", sent
        mine = kwire.fetch_v11(s, topic, 0, 0, rack=f"rack-{leader}")
        assert mine["preferred_read_replica"] == -1 and mine["records"], "its own rack reads here"
    with kwire.connect(cluster.nodes[follower].bootstrap) as s:
        hw = kwire.fetch_v11(s, topic, 0, 0, rack=f"rack-{follower}")["high_watermark"]
        past = kwire.fetch_v11(s, topic, 0, hw + 1000, rack=f"rack-{follower}")
        assert past["error_code"] == 0 and past["records"] == b"", past
        # Without a rack, a follower still answers NOT_LEADER_OR_FOLLOWER (6), as before.
        assert kwire.fetch_v11(s, topic, 0, 0)["error_code"] == 6
