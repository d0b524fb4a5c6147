"""Cluster operations on real `ringtail serve` processes with clients running: a fourth broker
joins, kafka-python's admin client moves a partition onto it (listed while it runs) and cancels a
second move mid-way, then `ringtail cluster rebalance --execute` (killed once and run again)
evens out replicas and leaders; a broker is drained under the same traffic, stopped and
unregistered. Afterwards every acknowledged message is there exactly once and in order, every
replica is identical, and no delivery failed."""

import json
import os
import signal
import subprocess
import threading
import time

from confluent_kafka import Consumer
from kafka import TopicPartition as KPTopicPartition

from conftest import ringtail_bin
from helpers import consume_all, producer, topic_name
from test_reassignment import listed, reassign
from test_replication import assert_replicas_identical, create, partitions_of, produce_idempotent, wait_isr

PARTITIONS = 6


class Traffic:
    """An idempotent acks=all producer sending value i to partition i % partitions, paced, and a
    consumer group reading everything, both in threads until `stop`."""

    def __init__(self, bootstrap: str, topic: str, partitions: int):
        self.bootstrap, self.topic, self.partitions = bootstrap, topic, partitions
        self.acked: set[bytes] = set()
        self.errors = []
        self.sent = 0
        self.group_seen: set[bytes] = set()
        self.group_errors = []
        self.done = threading.Event()
        self.threads = [threading.Thread(target=self.produce), threading.Thread(target=self.consume)]
        for t in self.threads:
            t.start()

    def produce(self):
        p = producer(self.bootstrap, **{"enable.idempotence": True, "acks": "all", "linger.ms": 5,
                                        "message.timeout.ms": 120000})

        def delivered(err, msg):
            (self.errors.append(err) if err is not None else self.acked.add(msg.value()))
        i = 0
        while not self.done.is_set():
            try:
                p.produce(self.topic, value=b"%d" % i, partition=i % self.partitions, on_delivery=delivered)
                i += 1
            except BufferError:
                p.poll(0.05)
            if i % 50 == 0:
                p.poll(0)
                time.sleep(0.02)
        p.flush(120)
        self.sent = i

    def consume(self):
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"{self.topic}-group",
                      "auto.offset.reset": "earliest", "enable.auto.commit": True})
        c.subscribe([self.topic])
        try:
            # Until stopped and everything acknowledged is read.
            while not (self.done.is_set() and self.sent and self.acked <= self.group_seen):
                for m in c.consume(num_messages=1000, timeout=0.5):
                    if m.error():
                        self.group_errors.append(m.error())
                    else:
                        self.group_seen.add(m.value())
                if self.done.is_set() and time.monotonic() > self.deadline:
                    break
        finally:
            c.close()

    def stop(self, timeout_s: float = 150):
        self.deadline = time.monotonic() + 90
        self.done.set()
        for t in self.threads:
            t.join(timeout_s)
            assert not t.is_alive(), "traffic did not stop"

    def check(self, cluster, via: str):
        """No failed delivery; every acknowledged message once, per partition in the order sent;
        the group read them all; every replica identical."""
        assert not self.errors, f"{len(self.errors)} deliveries failed: {self.errors[:3]}"
        assert len(self.acked) == self.sent and self.sent > 0, (len(self.acked), self.sent)
        got = consume_all(via, self.topic, self.partitions)
        for p, msgs in got.items():
            values = [int(m.value()) for m in msgs]
            assert values == sorted(values), f"partition {p} out of order"
            assert all(v % self.partitions == p for v in values)
        values = [m.value() for msgs in got.values() for m in msgs]
        assert len(values) == len(set(values)), "duplicates"
        assert set(values) == self.acked, (len(values), len(self.acked))
        assert not self.group_errors, self.group_errors[:3]
        assert self.acked <= self.group_seen, f"the group missed {len(self.acked - self.group_seen)}"
        assert_replicas_identical(cluster, self.topic, self.partitions)


def cli(*args: str, timeout_s: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run([str(ringtail_bin()), "cluster", *args], capture_output=True, text=True, timeout=timeout_s)
    if check:
        assert out.returncode == 0, f"ringtail cluster {' '.join(args)}: {out.returncode}\n{out.stdout}\n{out.stderr}"
    return out


def leaders_per_broker(bootstrap: str, topic: str) -> dict[int, int]:
    counts: dict[int, int] = {}
    for leader, _, _ in partitions_of(bootstrap, topic).values():
        counts[leader] = counts.get(leader, 0) + 1
    return counts


def four_brokers(cluster_factory):
    """Three voters and a broker-only node 4, all registered: the cluster and node 4."""
    cluster = cluster_factory(voters=3)
    extra = cluster.add(4)
    extra.start()
    cluster.wait_brokers({1, 2, 3, 4})
    return cluster, extra


def test_a_new_broker_takes_moved_partitions_and_its_share_after_a_resumed_rebalance(cluster_factory):
    cluster = cluster_factory(voters=3)
    topic = topic_name("grow")
    create(cluster.bootstrap, topic, PARTITIONS, 3, {"min.insync.replicas": "2"})
    wait_isr(cluster, topic, [1, 2, 3])
    old = ",".join(cluster.nodes[n].bootstrap for n in (1, 2, 3))
    traffic = Traffic(old, topic, PARTITIONS)
    try:
        new = cluster.add(4)
        new.start()
        cluster.wait_brokers({1, 2, 3, 4})
        time.sleep(1)

        # kafka-python moves partition 0 onto broker 4 and starts moving partition 1; broker 4 is
        # paused meanwhile, so that both are listed under way; the second is cancelled mid-move.
        os.kill(new.pid, signal.SIGSTOP)
        try:
            cluster.wait_for("broker 4 fenced", lambda: cluster.brokers_seen(cluster.nodes[1]) == {1, 2, 3})
            source = partitions_of(old, topic)[0][1]
            first, second = (topic, 0), (topic, 1)
            assert reassign(old, {first: [4] + source[1:]}) == {KPTopicPartition(*first): None}
            assert reassign(old, {second: [4, 1, 2]}) == {KPTopicPartition(*second): None}
            ongoing = cluster.wait_for("both moves listed", lambda: (lambda l: l if len(l) == 2 else None)(listed(old)))
            assert ongoing[first]["adding_replicas"] == [4], ongoing
            shown = json.loads(cli("reassignments", "--bootstrap", cluster.nodes[1].bootstrap, "--json").stdout)
            assert {(o["topic"], o["partition"]) for o in shown} == {first, second}, shown
            assert reassign(old, {second: None}) == {KPTopicPartition(*second): None}
        finally:
            os.kill(new.pid, signal.SIGCONT)
        cluster.wait_for("the first move complete", lambda: not listed(old), timeout_s=90)
        assert 4 in partitions_of(old, topic)[0][1] and 4 not in partitions_of(old, topic)[1][1]

        # The plan, printed without --execute, moves replicas onto broker 4.
        plan = json.loads(cli("rebalance", "--bootstrap", old, "--json").stdout)
        assert not plan["executed"] and plan["moves"], plan
        assert any(4 in m["to"] and 4 not in m["from"] for m in plan["moves"]), plan

        # Executed, killed while its moves are under way, and run again: it resumes.
        os.kill(new.pid, signal.SIGSTOP)  # holds the moves onto broker 4 until the kill
        proc = subprocess.Popen([str(ringtail_bin()), "cluster", "rebalance", "--execute", "--bootstrap", old],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            cluster.wait_for("the rebalance's moves under way", lambda: listed(old), timeout_s=60)
            proc.kill()
            proc.wait(10)
            # Checked while broker 4 is still paused: once it runs, it may finish the moves
            # before the next look. Until its session ends, a client may still send the listing
            # to broker 4 and time out: asked again then.
            cluster.wait_for("the moves still listed after the killed command", lambda: listed(old))
        finally:
            os.kill(new.pid, signal.SIGCONT)
            if proc.poll() is None:
                proc.kill()
        report = json.loads(cli("rebalance", "--execute", "--bootstrap", old, "--json").stdout)
        assert report["executed"] and not report["elections_failed"], report
        assert not listed(old)
        assert not json.loads(cli("rebalance", "--bootstrap", old, "--json").stdout)["moves"], "balanced"
    finally:
        traffic.stop()

    bootstrap = cluster.bootstrap
    rows = {b["node_id"]: b for b in json.loads(cli("brokers", "--bootstrap", bootstrap, "--json").stdout)}
    replicas = [rows[n]["replicas"] for n in (1, 2, 3, 4)]
    preferred = [rows[n]["preferred_leaders"] for n in (1, 2, 3, 4)]
    # Over every partition of the cluster (`__consumer_offsets` too) ...
    assert max(replicas) - min(replicas) <= 1 and max(preferred) - min(preferred) <= 1, rows

    def even_leaders():
        leads = {b["node_id"]: b["leaders"] for b in json.loads(cli("brokers", "--bootstrap", bootstrap,
                                                                      "--json").stdout)}
        return leads if max(leads.values()) - min(leads.values()) <= 1 else None
    cluster.wait_for("leaders even over the four brokers", even_leaders)
    # ... and within the topic: broker 4 holds and leads its share of it.
    mine = partitions_of(bootstrap, topic)
    assert sum(4 in r for _, r, _ in mine.values()) >= PARTITIONS * 3 // 4 - 1, mine
    assert leaders_per_broker(bootstrap, topic).get(4, 0) >= 1, mine
    traffic.check(cluster, bootstrap)


def test_a_drained_broker_is_stopped_and_unregistered_with_no_failed_delivery(cluster_factory):
    cluster, extra = four_brokers(cluster_factory)
    topic = topic_name("drain")
    create(cluster.bootstrap, topic, 4, 3, {"min.insync.replicas": "2"})
    pair = topic_name("pair")
    # Two replicas on brokers 4 and 1: used below to show the refusal.
    from confluent_kafka.admin import NewTopic

    from helpers import admin
    confluent = admin(cluster.bootstrap)  # must outlive its futures
    for f in confluent.create_topics([NewTopic(pair, num_partitions=1, replication_factor=-1, replica_assignment=[[4, 1]])]).values():
        f.result(timeout=30)
    cluster.wait_for("topics in sync", lambda: all(
        len(isr) == len(r) for _, r, isr in list(partitions_of(cluster.bootstrap, topic).values())
        + list(partitions_of(cluster.bootstrap, pair).values())))
    rest = ",".join(cluster.nodes[n].bootstrap for n in (1, 2, 3))

    # Broker 1 stopped: broker 4 holds the pair topic's only in-sync replica, and draining it is
    # refused before anything moves.
    cluster.nodes[1].stop_cleanly()
    via = ",".join(cluster.nodes[n].bootstrap for n in (2, 3, 4))
    # As every broker the command may ask describes it (their metadata copies follow the
    # controller's at their own pace).
    cluster.wait_for("broker 1 out of the pair's ISR", lambda: all(
        partitions_of(cluster.nodes[n].bootstrap, pair)[0][2] == [4] for n in (2, 3, 4)))
    refused = cli("drain", "4", "--bootstrap", via, check=False)
    assert refused.returncode != 0 and "last in-sync replica" in refused.stderr, refused.stderr
    assert not listed(via)
    cluster.nodes[1].start()
    cluster.wait_for("broker 1 back in sync", lambda: partitions_of(via, pair)[0][2] == [1, 4], timeout_s=60)
    cluster.wait_for("the topic in sync", lambda: all(
        len(isr) == 3 for _, _, isr in partitions_of(via, topic).values()), timeout_s=60)

    traffic = Traffic(rest, topic, 4)
    try:
        time.sleep(2)
        report = json.loads(cli("drain", "4", "--bootstrap", rest, "--json").stdout)
        assert report["moves"], report
        after = {**partitions_of(rest, topic), **{("pair", k): v for k, v in partitions_of(rest, pair).items()}}
        assert all(4 not in replicas for _, replicas, _ in after.values()), after
        # Stopped under traffic: it leads nothing and holds nothing, so clients see no error.
        extra.stop_cleanly()
        time.sleep(2)
    finally:
        traffic.stop()
    traffic.check(cluster, rest)

    # Unregistered once its session has ended; a broker still holding replicas is refused.
    holding = cli("unregister", "1", "--bootstrap", rest, check=False)
    assert holding.returncode != 0 and "is running" in holding.stderr, holding.stderr
    cluster.wait_for("broker 4 unregistered", lambda: cli("unregister", "4", "--bootstrap", rest,
                                                          check=False).returncode == 0, timeout_s=30, interval_s=1)
    rows = json.loads(cli("brokers", "--bootstrap", rest, "--json").stdout)
    assert sorted(b["node_id"] for b in rows) == [1, 2, 3], rows
    gone = cli("unregister", "4", "--bootstrap", rest, check=False)
    assert gone.returncode != 0 and "error 102" in gone.stderr, gone.stderr


def test_a_replica_moved_off_a_stopped_broker_is_deleted_when_it_returns(cluster_factory):
    cluster, extra = four_brokers(cluster_factory)
    topic = topic_name("away")
    create(cluster.bootstrap, topic, 1, 3, {"min.insync.replicas": "2"})
    wait_isr(cluster, topic, [1, 2, 3])
    acked, _ = produce_idempotent(cluster.bootstrap, topic, 0, 500, 1)
    assert len(acked) == 500
    cluster.nodes[3].stop_cleanly()
    via = ",".join(cluster.nodes[n].bootstrap for n in (1, 2, 4))
    assert reassign(via, {(topic, 0): [1, 2, 4]})
    cluster.wait_for("the move complete", lambda: not listed(via) and partitions_of(via, topic)[0][2] == [1, 2, 4],
                     timeout_s=60)
    assert (cluster.nodes[3].data_dir / f"{topic}-0").exists(), "still there while broker 3 is down"
    cluster.nodes[3].start()
    cluster.wait_for("broker 3's old replica gone", lambda: not (cluster.nodes[3].data_dir / f"{topic}-0").exists(),
                     timeout_s=60)
    assert partitions_of(cluster.bootstrap, topic)[0][1] == [1, 2, 4]
    got = consume_all(cluster.bootstrap, topic, 1)
    assert {m.value() for m in got[0]} == acked
