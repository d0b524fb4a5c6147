"""Replication on real `ringtail serve` processes (three nodes on 127.0.0.1, `--shards 1` each):
followers fetch from their leaders, the in-sync replicas follow who has caught up, acks=all
waits for every in-sync replica, a leader's loss moves leadership to an in-sync replica with
nothing acknowledged lost, and every replica ends up holding the same batches at the same
offsets (read from each broker with Kafka's debugging replica id)."""

import time

from confluent_kafka import KafkaError, TopicPartition
from confluent_kafka.admin import NewTopic

import kwire
from helpers import admin, consume_all, flip_middle_byte, producer, topic_name


def create(bootstrap: str, topic: str, partitions: int, factor: int, config: dict | None = None) -> None:
    client = admin(bootstrap)  # must outlive the future
    for f in client.create_topics([NewTopic(topic, partitions, factor, config=config or {})],
                                  request_timeout=30).values():
        f.result(timeout=30)


def partitions_of(bootstrap: str, topic: str) -> dict[int, tuple[int, list[int], list[int]]]:
    """Partition -> (leader, replicas, isr) as `bootstrap` describes them."""
    md = admin(bootstrap).list_topics(topic, timeout=10)
    return {p.id: (p.leader, sorted(p.replicas), sorted(p.isrs)) for p in md.topics[topic].partitions.values()}


def wait_isr(cluster, topic: str, expected: list[int], timeout_s: float = 30.0, via: int | None = None) -> dict:
    """Waits until every partition has a leader and the ISR `expected`, as node `via` (default:
    the first live node) describes it. A node just restarted describes its metadata as it was
    until it caught up: ask one that stayed up."""
    via = (cluster.nodes[via] if via is not None else cluster.live()[0]).bootstrap

    seen = {}

    def full():
        seen["parts"] = parts = partitions_of(via, topic)
        return parts if all(isr == expected and leader >= 0 for leader, _, isr in parts.values()) else None
    try:
        return cluster.wait_for(f"every partition of {topic} with ISR {expected}", full, timeout_s)
    except AssertionError as e:
        raise AssertionError(f"{e}; partitions (leader, replicas, isr): {seen.get('parts')}") from None


def produce_idempotent(bootstrap: str, topic: str, first: int, count: int, partitions: int,
                       **extra) -> tuple[set[bytes], list]:
    """Sends values first..first+count-1 (value i to partition i % partitions) with an idempotent
    acks=all producer; returns the values acknowledged and the delivery errors."""
    acked: set[bytes] = set()
    errors = []

    def delivered(err, msg):
        if err is None:
            acked.add(msg.value())
        else:
            errors.append(err)

    conf = {"enable.idempotence": True, "acks": "all", "linger.ms": 5, "message.timeout.ms": 60000}
    conf.update(extra)
    p = producer(bootstrap, **conf)
    for i in range(first, first + count):
        while True:
            try:
                p.produce(topic, value=b"%d" % i, partition=i % partitions, on_delivery=delivered)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    p.flush(90)
    return acked, errors


def metric_sum(broker, name: str, label: str | None = None) -> float:
    """The sum of a metric's samples in a broker's /metrics (those whose labels include `label`,
    `key="value"`, when given)."""
    import urllib.request
    with urllib.request.urlopen(f"http://{broker.host}:{broker.admin_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    total = 0.0
    for line in text.splitlines():
        labels = line.split("}", 1)[0] if line.startswith(name + "{") else None
        if (labels is not None and (label is None or label in labels)) or \
                (label is None and line.startswith(name + " ")):
            total += float(line.rsplit(" ", 1)[1])
    return total


def assert_replicas_identical(cluster, topic: str, partitions: int) -> None:
    """Every replica of every partition holds the same batches at the same offsets."""
    for index in range(partitions):
        _, replicas, _ = partitions_of(cluster.live()[0].bootstrap, topic)[index]
        copies = {node: kwire.replica_records(cluster.nodes[node].bootstrap, topic, index) for node in replicas}
        reference = next(iter(copies.values()))
        for node, batches in copies.items():
            assert batches == reference, (
                f"{topic}-{index}: replica on node {node} differs "
                f"({len(batches)} batches, the first replica {len(reference)})")


def test_a_replicated_topic_loses_nothing_when_its_leader_is_killed(cluster_factory):
    cluster = cluster_factory(voters=3)
    topic = topic_name("replicated")
    create(cluster.bootstrap, topic, 3, 3, {"min.insync.replicas": "2"})
    wait_isr(cluster, topic, [1, 2, 3])

    acked, errors = produce_idempotent(cluster.bootstrap, topic, 0, 3000, 3)
    assert not errors and len(acked) == 3000, (len(acked), errors[:3])

    # Kill -9 the leader of partition 0 while a producer runs: it fails over to an in-sync replica.
    victim = partitions_of(cluster.bootstrap, topic)[0][0]
    cluster.nodes[victim].kill9()
    survivors = [n for n in (1, 2, 3) if n != victim]
    wait_isr(cluster, topic, survivors)
    more, errors = produce_idempotent(cluster.bootstrap, topic, 3000, 3000, 3)
    assert not errors and len(more) == 3000, (len(more), errors[:3])
    acked |= more
    # /metrics of the survivors: their partitions are under-replicated, and followers were fed.
    alive = [cluster.nodes[n] for n in survivors]
    assert sum(metric_sum(b, "ringtail_under_replicated_partitions") for b in alive) >= 3
    assert sum(metric_sum(b, "ringtail_replication_bytes_in_total") for b in alive) > 0
    assert sum(metric_sum(b, "ringtail_replication_bytes_out_total") for b in alive) > 0
    import json
    import subprocess
    from conftest import ringtail_bin
    out = subprocess.run([str(ringtail_bin()), "cluster", "status", "--bootstrap", alive[0].bootstrap, "--json"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    status = json.loads(out.stdout)
    assert status["under_replicated_partitions"] >= 3 and status["offline_partitions"] == 0, status

    got = consume_all(cluster.bootstrap, topic, 3)
    values = [m.value() for p in got.values() for m in p]
    assert len(values) == len(set(values)), "a message was stored twice"
    assert set(values) == acked, f"lost: {sorted(acked - set(values))[:10]}"
    for index, messages in got.items():
        numbers = [int(m.value()) for m in messages]
        assert numbers == sorted(numbers), f"partition {index} out of send order"
        assert all(n % 3 == index for n in numbers)

    # The killed node comes back, catches up, rejoins every ISR, and holds what the others hold.
    cluster.nodes[victim].start()
    wait_isr(cluster, topic, [1, 2, 3], timeout_s=60, via=survivors[0])
    assert_replicas_identical(cluster, topic, 3)
    assert sum(metric_sum(cluster.nodes[n], "ringtail_isr_expands_total") for n in (1, 2, 3)) >= 1
    cluster.wait_for("no partition under-replicated",
                     lambda: sum(metric_sum(cluster.nodes[n], "ringtail_under_replicated_partitions")
                                 for n in (1, 2, 3)) == 0)


def test_acks_all_is_refused_below_min_insync_replicas_and_acks_1_still_works(cluster_factory):
    cluster = cluster_factory(voters=3)
    topic = topic_name("min-insync")
    create(cluster.bootstrap, topic, 1, 2, {"min.insync.replicas": "2"})
    leader, replicas, _ = wait_isr(cluster, topic, sorted(partitions_of(cluster.bootstrap, topic)[0][1]))[0]
    acked, errors = produce_idempotent(cluster.bootstrap, topic, 0, 100, 1)
    assert not errors and len(acked) == 100

    # The follower is stopped: once fenced it leaves the ISR, and acks=all is refused.
    follower = next(n for n in replicas if n != leader)
    cluster.nodes[follower].kill9()
    live = next(b for i, b in cluster.nodes.items() if i != follower).bootstrap
    cluster.wait_for("the ISR to shrink to the leader", lambda: partitions_of(live, topic)[0][2] == [leader])
    refused, errors = produce_idempotent(live, topic, 100, 5, 1, **{"message.timeout.ms": 3000})
    assert not refused, "acks=all acknowledged with fewer in-sync replicas than min.insync.replicas"
    assert errors and all(e.code() in (KafkaError.NOT_ENOUGH_REPLICAS, KafkaError._MSG_TIMED_OUT)
                          for e in errors), errors[:3]

    # acks=1 does not need the follower; everything committed still reads.
    one, errors = produce_idempotent(live, topic, 200, 50, 1, **{"acks": "1", "enable.idempotence": False})
    assert not errors and len(one) == 50
    got = consume_all(live, topic, 1)
    values = {m.value() for m in got[0]}
    assert acked | one <= values
    assert not any(b"%d" % i in values for i in range(100, 105)), "a refused message was stored"

    # The follower returns: acks=all works again once it is back in sync.
    cluster.nodes[follower].start()
    wait_isr(cluster, topic, sorted(replicas), timeout_s=60, via=leader)
    again, errors = produce_idempotent(cluster.bootstrap, topic, 300, 50, 1)
    assert not errors and len(again) == 50
    time.sleep(0.5)
    assert_replicas_identical(cluster, topic, 1)


def coordinator_of(bootstrap: str, group: str) -> int:
    """The node id of a group's coordinator (FindCoordinator v1), or -1 while there is none."""
    with kwire.connect(bootstrap.split(",")[0]) as sock:
        answer = kwire.find_coordinator_v1(sock, group)
    return answer["node_id"] if answer["error"] == 0 else -1


def test_committed_offsets_survive_the_kill_of_the_coordinators_broker(cluster_factory):
    from helpers import committed_offsets

    cluster = cluster_factory(voters=3)
    topic = topic_name("group-failover")
    create(cluster.bootstrap, topic, 6, 3, {"min.insync.replicas": "2"})
    wait_isr(cluster, topic, [1, 2, 3])
    acked, errors = produce_idempotent(cluster.bootstrap, topic, 0, 1200, 6)
    assert not errors and len(acked) == 1200

    group = topic_name("g")
    conf = {"group.id": group, "session.timeout.ms": 6000, "auto.offset.reset": "earliest",
            "enable.auto.commit": False, "enable.auto.offset.store": True}
    seen, position = read_and_commit(cluster.bootstrap, topic, conf, 600)
    # Every __consumer_offsets partition is replicated to every broker once the topic exists.
    wait_isr(cluster, "__consumer_offsets", [1, 2, 3])
    before = committed_offsets(cluster.bootstrap, group)
    assert {p: o for (_, p), (o, _) in before.items()} == {p: o for p, o in position.items() if o >= 0}, before

    assert_group_resumes_after_the_coordinator_is_killed(cluster, topic, conf, seen, before, acked)


def read_and_commit(bootstrap: str, topic: str, conf: dict, count: int) -> tuple[list[bytes], dict[int, int]]:
    """A group member (confluent-kafka, `conf`) reads `count` messages of `topic` (6 partitions)
    and commits: the values read, and its position per partition."""
    from helpers import consumer

    first = consumer(bootstrap, **conf)
    seen: list[bytes] = []
    try:
        first.subscribe([topic])
        deadline = time.monotonic() + 60
        while len(seen) < count and time.monotonic() < deadline:
            for m in first.consume(num_messages=count - len(seen), timeout=0.5):
                assert not m.error(), m.error()
                seen.append(m.value())
        assert len(seen) == count, len(seen)
        first.commit(asynchronous=False)
        position = {tp.partition: tp.offset for tp in first.position(
            [TopicPartition(topic, p) for p in range(6)])}
    finally:
        first.close()
    return seen, position


def assert_group_resumes_after_the_coordinator_is_killed(cluster, topic: str, conf: dict, seen: list[bytes],
                                                         before: dict, acked: set[bytes]) -> None:
    """Kills -9 the broker coordinating group `conf["group.id"]` (which committed `before` after
    reading `seen` of `topic`'s 1200 messages `acked`): the new coordinator has the same
    committed offsets, and the group reads the rest from them, exactly once."""
    from helpers import committed_offsets, consumer

    group = conf["group.id"]
    coordinator = coordinator_of(cluster.bootstrap, group)
    cluster.nodes[coordinator].kill9()
    survivors = [n for n in (1, 2, 3) if n != coordinator]
    survivor = cluster.nodes[survivors[0]].bootstrap
    cluster.wait_for("a new coordinator", lambda: coordinator_of(survivor, group) in survivors, timeout_s=30)
    # The new coordinator answers COORDINATOR_LOAD_IN_PROGRESS while it replays the partition.
    after = cluster.wait_for("the new coordinator's committed offsets", lambda: committed_offsets(survivor, group))
    assert after == before, "committed offsets changed with the coordinator"

    # The group resumes under the new coordinator from its committed offsets: the rest, once.
    second = consumer(survivor, **conf)
    rest: list[bytes] = []
    try:
        second.subscribe([topic])
        deadline = time.monotonic() + 60
        while len(rest) < 600 and time.monotonic() < deadline:
            for m in second.consume(num_messages=600, timeout=0.5):
                assert not m.error(), m.error()
                rest.append(m.value())
        time.sleep(1)
        rest += [m.value() for m in second.consume(num_messages=100, timeout=1)]
    finally:
        second.close()
    assert len(rest) == 600 and not set(rest) & set(seen), (len(rest), len(set(rest) & set(seen)))
    assert set(rest) | set(seen) == acked


def test_acks_all_honours_the_request_timeout_while_a_follower_is_paused(cluster_factory):
    import os
    import signal

    cluster = cluster_factory(voters=3)
    topic = topic_name("timeout")
    create(cluster.bootstrap, topic, 1, 2)
    leader, replicas, _ = wait_isr(cluster, topic, sorted(partitions_of(cluster.bootstrap, topic)[0][1]))[0]
    follower = next(n for n in replicas if n != leader)
    b = cluster.nodes[follower]
    os.kill(b.pid, signal.SIGSTOP)
    try:
        # In the ISR still (30 s of lag allowed), so acks=all waits for it: answered at the
        # request's timeout with REQUEST_TIMED_OUT (7), not held until the follower returns.
        with kwire.connect(cluster.nodes[leader].bootstrap) as sock:
            started = time.monotonic()
            error, _ = kwire.produce_v3(sock, topic, 0, kwire.record_batch([b"x"]), acks=-1, timeout_ms=1000)
            took = time.monotonic() - started
            assert error == 7, error
            assert 0.9 < took < 5, took
            # acks=1 does not wait for it.
            error, _ = kwire.produce_v3(sock, topic, 0, kwire.record_batch([b"y"]), acks=1, timeout_ms=1000)
            assert error == 0, error
    finally:
        os.kill(b.pid, signal.SIGCONT)
    # Once it is back, acks=all succeeds again (and the timed-out batch was committed meanwhile).
    acked, errors = produce_idempotent(cluster.bootstrap, topic, 0, 10, 1)
    assert not errors and len(acked) == 10
    values = {m.value() for m in consume_all(cluster.bootstrap, topic, 1)[0]}
    assert {b"x", b"y"} <= values


def test_a_clean_shutdown_moves_leadership_first_and_producers_see_no_failure(cluster_factory):
    import threading

    cluster = cluster_factory(voters=3)
    topic = topic_name("controlled")
    create(cluster.bootstrap, topic, 3, 3, {"min.insync.replicas": "2"})
    wait_isr(cluster, topic, [1, 2, 3])
    leaders = {leader for leader, _, _ in partitions_of(cluster.bootstrap, topic).values()}
    victim = sorted(leaders)[0]
    survivors = [n for n in (1, 2, 3) if n != victim]
    bootstrap = ",".join(cluster.nodes[n].bootstrap for n in survivors)
    acked: set[bytes] = set()
    errors = []

    def send():
        # Paced over about ten seconds, so that the shutdown falls in the middle.
        p = producer(bootstrap, **{"enable.idempotence": True, "acks": "all", "linger.ms": 5,
                                   "message.timeout.ms": 60000})

        def delivered(err, msg):
            (errors.append(err) if err is not None else acked.add(msg.value()))
        for i in range(20000):
            while True:
                try:
                    p.produce(topic, value=b"%d" % i, partition=i % 3, on_delivery=delivered)
                    break
                except BufferError:
                    p.poll(0.05)
            if i % 100 == 0:
                p.poll(0)
                time.sleep(0.05)
        p.flush(90)

    t = threading.Thread(target=send)
    t.start()
    time.sleep(1.5)
    # SIGTERM: the broker asks to be fenced first, so its leadership moves before it stops;
    # clients see only retriable errors, and every message is delivered.
    assert t.is_alive(), "the producer finished before the shutdown: nothing was tested"
    cluster.nodes[victim].stop_cleanly()
    t.join(120)
    assert not t.is_alive()
    assert not errors and len(acked) == 20000, (len(acked), errors[:3])
    via = cluster.nodes[survivors[0]].bootstrap
    cluster.wait_for("leadership away from the stopped broker", lambda: all(
        leader in survivors for leader, _, _ in partitions_of(via, topic).values()))
    got = consume_all(via, topic, 3)
    values = [m.value() for p in got.values() for m in p]
    assert len(values) == len(set(values)) and set(values) == acked


def test_consumers_validate_their_position_with_offset_for_leader_epoch_after_a_failover(cluster_factory):
    """KIP-320 with a real client: kafka-python's consumer, seeing the leader epoch move past its
    position's, asks the new leader where its epoch ends (OffsetForLeaderEpoch) and goes on from
    its position, neither re-reading nor skipping. Stale and future epochs are fenced."""
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KPTopicPartition

    cluster = cluster_factory(voters=3)
    topic = topic_name("validate")
    create(cluster.bootstrap, topic, 1, 3, {"min.insync.replicas": "2"})
    wait_isr(cluster, topic, [1, 2, 3])
    acked, errors = produce_idempotent(cluster.bootstrap, topic, 0, 100, 1)
    assert not errors and len(acked) == 100

    old_leader = partitions_of(cluster.bootstrap, topic)[0][0]
    with kwire.connect(cluster.nodes[old_leader].bootstrap) as s:
        error, offset, old_epoch = kwire.list_offsets_v4(s, topic, 0)
        assert (error, offset) == (0, 100)
        assert kwire.offset_for_leader_epoch_v3(s, topic, 0, old_epoch, old_epoch) == (0, old_epoch, 100)
        error, _, earliest_epoch = kwire.list_offsets_v4(s, topic, 0, timestamp=-2)
        assert (error, earliest_epoch) == (0, old_epoch), "the earliest offset names the epoch that wrote it"

    tp = KPTopicPartition(topic, 0)
    consumer = KafkaConsumer(bootstrap_servers=cluster.bootstrap, group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest", metadata_max_age_ms=1000)
    try:
        consumer.assign([tp])

        def read(count: int) -> list[int]:
            got: list[int] = []
            deadline = time.time() + 60
            while len(got) < count and time.time() < deadline:
                for records in consumer.poll(timeout_ms=500).values():
                    got.extend(int(r.value) for r in records)
            return got

        assert read(100) == list(range(100))
        # The leader goes; a survivor leads at a newer epoch and takes 100 more.
        cluster.nodes[old_leader].kill9()
        survivors = [n for n in (1, 2, 3) if n != old_leader]
        wait_isr(cluster, topic, survivors)
        new_leader = partitions_of(cluster.nodes[survivors[0]].bootstrap, topic)[0][0]
        more, errors = produce_idempotent(cluster.nodes[new_leader].bootstrap, topic, 100, 100, 1)
        assert not errors and len(more) == 100
        # Exactly the new messages: a position wrongly judged truncated would re-read from 0.
        assert read(100) == list(range(100, 200))
        assert not consumer.poll(timeout_ms=1000), "a message came twice"
    finally:
        consumer.close()
    requests = metric_sum(cluster.nodes[new_leader], "ringtail_requests_total", 'api="OffsetForLeaderEpoch"')
    assert requests >= 1, "the consumer never validated its position"

    with kwire.connect(cluster.nodes[new_leader].bootstrap) as s:
        error, offset, epoch = kwire.list_offsets_v4(s, topic, 0)
        assert error == 0 and offset == 200 and epoch > old_epoch
        # Where each epoch ends on the new leader; an epoch past its own is undefined.
        assert kwire.offset_for_leader_epoch_v3(s, topic, 0, old_epoch, epoch) == (0, old_epoch, 100)
        assert kwire.offset_for_leader_epoch_v3(s, topic, 0, epoch, epoch) == (0, epoch, 200)
        assert kwire.offset_for_leader_epoch_v3(s, topic, 0, epoch + 1) == (0, -1, -1)
        # A client behind the leader's epoch is fenced, one ahead of it told to refresh (KIP-320).
        fenced, unknown = 74, 75
        assert kwire.offset_for_leader_epoch_v3(s, topic, 0, old_epoch, old_epoch)[0] == fenced
        assert kwire.offset_for_leader_epoch_v3(s, topic, 0, epoch, epoch + 1)[0] == unknown
        assert kwire.list_offsets_v4(s, topic, 0, current_leader_epoch=old_epoch)[0] == fenced
        assert kwire.list_offsets_v4(s, topic, 0, current_leader_epoch=epoch + 1)[0] == unknown
    # A follower is not the leader: it answers NOT_LEADER_OR_FOLLOWER, or with its own cache to
    # Kafka's debugging replica id.
    follower = next(n for n in survivors if n != new_leader)
    with kwire.connect(cluster.nodes[follower].bootstrap) as s:
        assert kwire.offset_for_leader_epoch_v3(s, topic, 0, old_epoch)[0] == 6
        assert kwire.offset_for_leader_epoch_v3(s, topic, 0, old_epoch, replica_id=-2) == (0, old_epoch, 100)


def produce_kib_messages(bootstrap: str, topic: str, count: int) -> None:
    """`count` acks=all messages of 1 KiB (numbered in their first 8 bytes) to partition 0, in
    ~16 KB batches: 3000 of them fill a few 1 MiB segments."""
    p = producer(bootstrap, **{"acks": "all", "batch.size": 16384, "linger.ms": 5})
    for i in range(count):
        p.produce(topic, value=b"%08d" % i + b"v" * 1016, partition=0)
        if i % 500 == 0:
            p.poll(0)
    assert p.flush(60) == 0


def damage_first_segment(broker, topic: str) -> None:
    """Flips a byte in the middle of a stopped broker's first segment of `topic`-0 (sealed:
    found only when read, not at start-up)."""
    segment = broker.data_dir / f"{topic}-0" / ("0" * 20 + ".log")
    assert segment.stat().st_size > 512 * 1024, "the first segment should be sealed and nearly full"
    flip_middle_byte(segment)


def read_until_damage(broker, topic: str, count: int, replica_id: int = -1) -> None:
    """Reads `topic`-0 on `broker` from offset 0 until an error, which must be
    KAFKA_STORAGE_ERROR (the damage found)."""
    with kwire.connect(broker.bootstrap) as s:
        offset, error = 0, kwire.NONE
        while error == kwire.NONE and offset < count:
            got = kwire.fetch_v4(s, topic, 0, offset, replica_id=replica_id)
            error = got["error_code"]
            batches = kwire.parse_batch_headers(got["records"])
            if batches:
                offset = batches[-1]["base_offset"] + batches[-1]["last_offset_delta"] + 1
        assert error == 56, f"the damage was not found (error {error} at offset {offset})"  # KAFKA_STORAGE_ERROR


def test_a_damaged_follower_leaves_the_isr_is_rebuilt_from_the_leader_and_rejoins(cluster_factory):
    """A follower whose copy of a sealed segment is corrupt: the read that finds it takes the
    replica offline, the broker reports it in its heartbeat, the controller takes it out of the
    ISR, the broker deletes its files and fetches the partition again from the leader, and it
    rejoins the ISR holding what the others hold."""
    # The scrubber is off: here a read is what finds the damage (with it on, it is found
    # as soon as the broker starts; test_limits.py shows that on a single node).
    cluster = cluster_factory(voters=3, extra=["--scrub-bytes-per-second", "0"])
    topic = topic_name("damaged-follower")
    create(cluster.bootstrap, topic, 1, 3, {"min.insync.replicas": "2", "segment.bytes": str(1 << 20)})
    wait_isr(cluster, topic, [1, 2, 3])
    produce_kib_messages(cluster.bootstrap, topic, 3000)
    wait_isr(cluster, topic, [1, 2, 3])
    leader = partitions_of(cluster.bootstrap, topic)[0][0]
    follower = next(n for n in (1, 2, 3) if n != leader)
    node = cluster.nodes[follower]
    node.stop_cleanly()
    damage_first_segment(node, topic)
    node.start()
    others = [n for n in (1, 2, 3) if n != follower]
    wait_isr(cluster, topic, [1, 2, 3], timeout_s=60, via=others[0])
    # A read of its own copy (the debugging replica id) finds the damage.
    read_until_damage(node, topic, 3000, replica_id=-2)
    # Rebuilt from the leader and back in sync.
    cluster.wait_for("the damaged replica rebuilt", lambda: metric_sum(node, "ringtail_replicas_rebuilt_total") >= 1,
                     timeout_s=60)
    wait_isr(cluster, topic, [1, 2, 3], timeout_s=60, via=others[0])
    assert_replicas_identical(cluster, topic, 1)
    assert "rebuilding a damaged replica" in node.log_text()
    got = consume_all(cluster.bootstrap, topic, 1)
    assert [int(m.value()[:8]) for m in got[0]] == list(range(3000))


def test_a_damaged_last_in_sync_replica_takes_its_partition_offline_rather_than_lose_data(cluster_factory):
    """The leader's replica is damaged while it is the only in-sync one: the controller takes
    its leadership away and elects nobody (the other replica is behind), so the partition is
    offline; the damaged replica is not rebuilt (that would lose what only it holds), and the
    other replica coming back does not lead either (unclean election is off)."""
    # The scrubber is off: here a read is what finds the damage (with it on, it is found
    # as soon as the broker starts; test_limits.py shows that on a single node).
    cluster = cluster_factory(voters=3, extra=["--scrub-bytes-per-second", "0"])
    topic = topic_name("damaged-last")
    create(cluster.bootstrap, topic, 1, 2, {"segment.bytes": str(1 << 20)})
    _, (a, b), _ = partitions_of(cluster.bootstrap, topic)[0]
    other = next(n for n in (1, 2, 3) if n not in (a, b))
    wait_isr(cluster, topic, [a, b])
    produce_kib_messages(cluster.bootstrap, topic, 3000)
    # Replica a's copy is damaged while it is stopped; it comes back and catches up (the damage
    # is in the middle of a sealed segment, found only when read).
    damaged = cluster.nodes[a]
    damaged.stop_cleanly()
    wait_isr(cluster, topic, [b], via=other)
    damage_first_segment(damaged, topic)
    damaged.start()
    wait_isr(cluster, topic, [a, b], timeout_s=60, via=other)
    # Replica b's broker stops: a leads alone. Then a read finds the damage.
    cluster.nodes[b].stop_cleanly()
    cluster.wait_for("the damaged replica leading alone",
                     lambda: partitions_of(cluster.nodes[other].bootstrap, topic)[0] == (a, [a, b], [a]))
    read_until_damage(damaged, topic, 3000)
    cluster.wait_for("the partition offline",
                     lambda: partitions_of(cluster.nodes[other].bootstrap, topic)[0][0] == -1)
    # b returns; it is not in sync, so it does not lead, and nothing is rebuilt.
    cluster.nodes[b].start()
    time.sleep(3)
    leader, _, isr = partitions_of(cluster.nodes[other].bootstrap, topic)[0]
    assert (leader, isr) == (-1, [a]), (leader, isr)
    assert metric_sum(damaged, "ringtail_replicas_rebuilt_total") == 0
    assert (damaged.data_dir / f"{topic}-0" / ("0" * 20 + ".log")).exists(), "the last in-sync copy was deleted"


def test_a_replication_factor_1_offsets_topic_is_raised_and_its_groups_survive_a_coordinator_kill(cluster_factory):
    """A cluster whose `__consumer_offsets` was created with one replica per partition (here with
    --offsets-topic-replication-factor 1; a single node grown into a cluster has the same): once
    its brokers run with the default factor 3, the topic is raised (replicas added on the other
    brokers, which catch up and join every ISR), offsets committed before are kept, and the group
    survives the kill -9 of its coordinator."""
    from helpers import committed_offsets

    cluster = cluster_factory(voters=3, extra=["--offsets-topic-replication-factor", "1"])
    topic = topic_name("raise")
    create(cluster.bootstrap, topic, 6, 3, {"min.insync.replicas": "2"})
    wait_isr(cluster, topic, [1, 2, 3])
    acked, errors = produce_idempotent(cluster.bootstrap, topic, 0, 1200, 6)
    assert not errors and len(acked) == 1200
    conf = {"group.id": topic_name("g"), "session.timeout.ms": 6000, "auto.offset.reset": "earliest",
            "enable.auto.commit": False, "enable.auto.offset.store": True}
    seen, _ = read_and_commit(cluster.bootstrap, topic, conf, 600)
    offsets = partitions_of(cluster.bootstrap, "__consumer_offsets")
    assert offsets and all(len(replicas) == 1 for _, replicas, _ in offsets.values()), offsets
    before = committed_offsets(cluster.bootstrap, conf["group.id"])
    assert before

    # Every node restarts, one at a time, with the default offsets.topic.replication.factor (3).
    for n in (1, 2, 3):
        node = cluster.nodes[n]
        node.stop_cleanly()
        i = node.args.index("--offsets-topic-replication-factor")
        del node.args[i:i + 2]
        node.start()
        wait_isr(cluster, topic, [1, 2, 3], timeout_s=60, via=n % 3 + 1)
    # A group's FindCoordinator raises it (each one tries again while a broker that just restarted
    # is not yet unfenced where it is decided); the new replicas catch up and join every ISR.
    cluster.wait_for("__consumer_offsets raised by FindCoordinator", lambda: coordinator_of(
        cluster.bootstrap, conf["group.id"]) > 0 and all(
        len(replicas) == 3 for _, replicas, _ in partitions_of(cluster.bootstrap, "__consumer_offsets").values()),
        timeout_s=60, interval_s=1)
    wait_isr(cluster, "__consumer_offsets", [1, 2, 3], timeout_s=90)
    assert committed_offsets(cluster.bootstrap, conf["group.id"]) == before
    assert "raised the replication factor of __consumer_offsets" in "".join(
        cluster.nodes[n].log_text() for n in (1, 2, 3))
    assert_group_resumes_after_the_coordinator_is_killed(cluster, topic, conf, seen, before, acked)
