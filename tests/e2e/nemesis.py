"""Nemesis runs against a real cluster: three `ringtail serve` nodes (voters and brokers) while
an idempotent producer (confluent-kafka, acks=all) writes numbered records to a topic of 6
partitions with replication factor 3 and min.insync.replicas=2, a consumer group reads it
throughout, and an admin client creates and deletes (replicated) topics; faults are injected
at random: kill -9 of a node (the active controller a third of the time) and its restart, SIGSTOP past the session timeout and SIGCONT, and a network partition cutting
a node off from the others and its heal. With network namespaces (netns.py, where the machine
allows them) each node has an address of its own and the cut covers everything between brokers
(controller RPCs, heartbeats, replica fetches) while clients still reach the cut node; without
them, only the controller links are cut (proxies, netfault.py). At the end every node is
restarted, every partition waits for its full ISR, and each partition is read through every
node and each replica is read on its own broker (Kafka's debugging replica id). Counted, all
of which must be zero:

- lost: acknowledged records missing from the log;
- duplicated: records stored twice;
- divergent: an acknowledged record found at another offset than acknowledged, a partition
  read differently through two nodes, two replicas of a partition holding different batches,
  a record the consumer group read that the log does not hold (it read past what was
  committed), or nodes that disagree on the topics and their leaders;
- metadata lost: a topic whose creation was acknowledged (and not deleted) that is missing,
  or a deleted one still there.

`run(workdir, seconds, seed)` is used by `scripts/nemesis --minutes N` and, short, by the
test suite (test_nemesis.py). Every process it starts it stops by pid.
"""

import json
import os
import random
import signal
import sys
import threading
import time
from pathlib import Path

from confluent_kafka import KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import Cluster  # noqa: E402
from helpers import consumer  # noqa: E402

import kwire  # noqa: E402
import netns  # noqa: E402

PARTITIONS = 6
REPLICATION_FACTOR = 3
TOPIC_CONFIG = {"min.insync.replicas": "2"}
# Followers out of sync for this long leave the ISR (Kafka's 30 s would outlast most faults).
CLUSTER_FLAGS = ["--replica-lag-time-max-ms", "5000"]
QUIET = {"logger": None}


class Counts:
    def __init__(self):
        self.acked: dict[bytes, tuple[int, int]] = {}
        self.failed = 0
        self.lock = threading.Lock()


def produce(bootstrap: str, topic: str, stop: threading.Event, counts: Counts) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                  "message.timeout.ms": 60000, "linger.ms": 5, "log_level": 0})

    def report(err, msg):
        with counts.lock:
            if err is None:
                counts.acked[msg.value()] = (msg.partition(), msg.offset())
            else:
                counts.failed += 1

    n = 0
    while not stop.is_set():
        try:
            p.produce(topic, value=b"%d" % n, key=b"%d" % n, on_delivery=report)
            n += 1
        except BufferError:
            pass
        p.poll(0.002 if n % 50 == 0 else 0)
        if n % 200 == 0:
            time.sleep(0.02)
    p.flush(90)


def admin_churn(cluster: Cluster, stop: threading.Event, created: dict[str, bool | None], rng: random.Random,
                errors: list[str]) -> None:
    """Creates a topic now and then and deletes an older one; remembers what was acknowledged.
    A request that failed (a retriable error, a timeout) may or may not have happened, as in
    Kafka: its topic is marked unknown (None) and not checked."""
    i = 0
    while not stop.is_set():
        time.sleep(rng.uniform(0.5, 2.0))
        live = cluster.live()
        if not live:
            continue
        client = AdminClient({"bootstrap.servers": ",".join(b.bootstrap for b in live), "log_level": 0})
        name = f"churn-{i}"
        i += 1
        try:
            client.create_topics([NewTopic(name, 2, REPLICATION_FACTOR)], request_timeout=15)[name].result(timeout=20)
            created[name] = True
        except KafkaException as e:
            created[name] = None
            errors.append(f"create {name}: {e.args[0].name()}")
            continue
        old = [t for t, alive in created.items() if alive]
        if len(old) > 3:
            victim = rng.choice(old[:-1])
            try:
                client.delete_topics([victim], request_timeout=15)[victim].result(timeout=20)
                created[victim] = False
            except KafkaException as e:
                created[victim] = None
                errors.append(f"delete {victim}: {e.args[0].name()}")


def consume_group(bootstrap: str, topic: str, group: str, stop: threading.Event, read: set[bytes]) -> None:
    """A consumer group member reading throughout (auto commit): what it reads is remembered."""
    c = consumer(bootstrap, **{"group.id": group, "enable.auto.commit": True, "enable.auto.offset.store": True,
                               "auto.offset.reset": "earliest", "session.timeout.ms": 10000, "log_level": 0})
    try:
        c.subscribe([topic])
        while not stop.is_set():
            for m in c.consume(num_messages=1000, timeout=0.2):
                if not m.error():
                    read.add(m.value())
    finally:
        try:
            c.close()
        except Exception:  # noqa: BLE001 - a coordinator down at the end
            pass


def replicas_agree(cluster: Cluster, topic: str, log) -> list[str]:
    """Waits for every partition's full ISR, then reads each replica on its own broker (the
    debugging replica id, up to the replica's log end): the partitions whose replicas differ."""
    via = cluster.nodes[1].bootstrap
    deadline = time.monotonic() + 90
    parts = {}
    while time.monotonic() < deadline:
        try:
            md = AdminClient({"bootstrap.servers": via, "log_level": 0}).list_topics(topic, timeout=10)
            parts = {p.id: (sorted(p.replicas), sorted(p.isrs)) for p in md.topics[topic].partitions.values()}
            if parts and all(r == i for r, i in parts.values()):
                break
        except Exception:  # noqa: BLE001
            pass
        time.sleep(0.5)
    else:
        log(f"ISR not full after 90 s: {parts}")
    differ = []
    for p, (replicas, isr) in sorted(parts.items()):
        copies = {n: kwire.replica_records(cluster.nodes[n].bootstrap, topic, p) for n in replicas}
        first = copies[replicas[0]]
        differ += [f"partition {p} replica on node {n} ({len(c)} batches, node {replicas[0]}: {len(first)})"
                   for n, c in copies.items() if c != first]
    return differ


def faults(cluster: Cluster, stop: threading.Event, rng: random.Random, log) -> None:
    while not stop.is_set():
        time.sleep(rng.uniform(2.0, 5.0))
        if stop.is_set():
            break
        down = [i for i, b in cluster.nodes.items() if not b.is_running()]
        if down:
            node = rng.choice(down)
            log(f"restart node {node}")
            try:
                cluster.nodes[node].start(timeout_s=30)
            except Exception as e:  # noqa: BLE001
                log(f"restart of node {node} failed: {e}")
            continue
        try:
            leader = kwire.describe_quorum_v0(cluster.live()[0].bootstrap)["leader"]
        except Exception:  # noqa: BLE001
            leader = -1
        node = leader if leader in cluster.nodes and rng.random() < 0.3 else rng.choice(list(cluster.nodes))
        b = cluster.nodes[node]
        which = rng.random()
        what = " (active controller)" if node == leader else ""
        if which < 0.45:
            log(f"kill -9 node {node}{what}")
            b.kill9()
        elif which < 0.7:
            pause = rng.uniform(2.0, 5.0)
            log(f"SIGSTOP node {node}{what} for {pause:.1f} s")
            os.kill(b.pid, signal.SIGSTOP)
            time.sleep(pause)
            os.kill(b.pid, signal.SIGCONT)
        else:
            cut = rng.uniform(2.0, 8.0)
            log(f"partition node {node}{what} from the other nodes for {cut:.1f} s")
            if cluster.netns is not None:
                cluster.netns.isolate(node)
                time.sleep(cut)
                cluster.netns.heal()
            else:
                cluster.links.isolate(node)
                time.sleep(cut)
                cluster.links.heal()


def read_partition(bootstrap: str, topic: str, partition: int, end: int, timeout_s: float = 60) -> list[tuple[int, bytes]]:
    c = consumer(bootstrap, **{"log_level": 0})
    out = []
    try:
        c.assign([TopicPartition(topic, partition, 0)])
        deadline = time.monotonic() + timeout_s
        while (not out or out[-1][0] < end - 1) and time.monotonic() < deadline:
            for m in c.consume(num_messages=5000, timeout=0.5):
                if m.error():
                    continue
                out.append((m.offset(), m.value()))
    finally:
        c.close()
    return out


def run(workdir: Path, seconds: float, seed: int, log=print) -> dict:
    rng = random.Random(seed)
    brokers = []
    spaces = netns.Namespaces([1, 2, 3]) if netns.available() else None
    log(f"network partitions: {'network namespaces' if spaces else 'controller-link proxies'}")
    cluster = Cluster(workdir, brokers, 3, CLUSTER_FLAGS, links=spaces is None, netns=spaces)
    try:
        cluster.start()
        cluster.wait_brokers({1, 2, 3}, timeout_s=60)
        topic = f"nemesis-{seed}"
        client = AdminClient({"bootstrap.servers": cluster.bootstrap, "log_level": 0})
        client.create_topics([NewTopic(topic, PARTITIONS, REPLICATION_FACTOR, config=TOPIC_CONFIG)])[topic].result(
            timeout=30)
        group_read: set[bytes] = set()
        counts = Counts()
        created: dict[str, bool | None] = {}
        admin_errors: list[str] = []
        stop = threading.Event()
        threads = [
            threading.Thread(target=produce, args=(cluster.bootstrap, topic, stop, counts)),
            threading.Thread(target=admin_churn, args=(cluster, stop, created, random.Random(seed + 1), admin_errors)),
            threading.Thread(target=faults, args=(cluster, stop, random.Random(seed + 2), log)),
            threading.Thread(target=consume_group, args=(cluster.bootstrap, topic, f"nemesis-group-{seed}", stop,
                                                         group_read)),
        ]
        for t in threads:
            t.start()
        time.sleep(seconds)
        stop.set()
        threads[2].join()
        threads[1].join()
        threads[3].join()
        # Every node back before the producer's last retries give up.
        for i, b in cluster.nodes.items():
            if not b.is_running():
                b.start(timeout_s=30)
        threads[0].join()
        cluster.wait_brokers({1, 2, 3}, timeout_s=60)

        # Read every partition through every node.
        c = consumer(cluster.nodes[1].bootstrap)
        ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=30, cached=False)[1]
                for p in range(PARTITIONS)}
        c.close()
        reads = {n: {p: read_partition(b.bootstrap, topic, p, ends[p]) for p in range(PARTITIONS)}
                 for n, b in cluster.nodes.items()}
        stored: dict[bytes, list[tuple[int, int]]] = {}
        for p, records in reads[1].items():
            for offset, value in records:
                stored.setdefault(value, []).append((p, offset))
        lost = [v for v in counts.acked if v not in stored]
        duplicated = [v for v, where in stored.items() if len(where) > 1]
        divergent = [v for v, at in counts.acked.items() if v in stored and at not in stored[v]]
        divergent += [f"node {n} partition {p}" for n in reads for p in range(PARTITIONS) if reads[n][p] != reads[1][p]]
        divergent += replicas_agree(cluster, topic, log)
        divergent += [f"the group read {v.decode()}, which the log does not hold" for v in group_read if v not in stored]
        # Metadata: every node describes the same topics and leaders, and acknowledged changes hold.
        views = {}
        for n, b in cluster.nodes.items():
            md = AdminClient({"bootstrap.servers": b.bootstrap, "log_level": 0}).list_topics(timeout=30)
            views[n] = {t: sorted((p.id, p.leader) for p in md.topics[t].partitions.values())
                        for t in md.topics if not t.startswith("__")}
        divergent += [f"node {n} metadata" for n in views if views[n] != views[1]]
        metadata_lost = [t for t, alive in created.items() if alive is not None and alive != (t in views[1])]
        return {
            "seed": seed,
            "seconds": seconds,
            "acknowledged": len(counts.acked),
            "not_acknowledged": counts.failed,
            "stored": sum(len(r) for r in reads[1].values()),
            "group_read": len(group_read),
            "topics_created": sum(1 for v in created.values() if v is not None),
            "admin_requests_failed": admin_errors[:20],
            "lost": len(lost),
            "duplicated": len(duplicated),
            "divergent": len(divergent),
            "metadata_lost": len(metadata_lost),
            "examples": {"lost": [x.decode() for x in lost[:5]], "duplicated": [x.decode() for x in duplicated[:5]],
                         "divergent": [str(x) for x in divergent[:5]], "metadata_lost": metadata_lost[:5]},
        }
    finally:
        if cluster.links is not None:
            cluster.links.heal()
        if spaces is not None:
            spaces.heal()
        for b in brokers:
            if b.proc is not None and b.proc.poll() is None:
                try:
                    os.kill(b.pid, signal.SIGCONT)
                except OSError:
                    pass
                b.stop()
        if cluster.links is not None:
            cluster.links.close()
        if spaces is not None:
            spaces.close()


if __name__ == "__main__":
    import argparse
    import tempfile

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=5)
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    with tempfile.TemporaryDirectory(prefix="ringtail-nemesis-") as d:
        started = time.strftime("%H:%M:%S")
        result = run(Path(d), args.minutes * 60, seed, log=lambda m: print(f"{time.strftime('%H:%M:%S')} {m}",
                                                                          flush=True))
        print(json.dumps(result, indent=2))
        bad = result["lost"] + result["duplicated"] + result["divergent"] + result["metadata_lost"]
        print(f"nemesis seed {seed} from {started}: {result['acknowledged']} acknowledged, lost {result['lost']}, "
              f"duplicated {result['duplicated']}, divergent {result['divergent']}, "
              f"metadata lost {result['metadata_lost']}")
        sys.exit(1 if bad else 0)
