"""Nemesis runs against a real cluster: three `ringtail serve` nodes (voters and brokers) on
127.0.0.1 while an idempotent producer (confluent-kafka, acks=all) writes numbered records and
an admin client creates and deletes topics; faults are injected at random: kill -9 of a node
(the active controller half of the time) and its restart, SIGSTOP past the election timeout
and SIGCONT, and a network partition cutting a node off from the others (every controller
link goes through a proxy, netfault.py) and its heal. At the end every node is restarted and each partition is read through every
node. Counted, all of which must be zero:

- lost: acknowledged records missing from the log;
- duplicated: records stored twice;
- divergent: an acknowledged record found at another offset than acknowledged, a partition
  read differently through two nodes, or nodes that disagree on the topics and their leaders;
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

PARTITIONS = 6
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
            client.create_topics([NewTopic(name, 2, 1)], request_timeout=15)[name].result(timeout=20)
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
        node = leader if leader in cluster.nodes and rng.random() < 0.5 else rng.choice(list(cluster.nodes))
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
            cut = rng.uniform(2.0, 6.0)
            log(f"partition node {node}{what} from the other nodes for {cut:.1f} s")
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
    cluster = Cluster(workdir, brokers, 3, [], links=True)
    try:
        cluster.start()
        cluster.wait_brokers({1, 2, 3}, timeout_s=60)
        topic = f"nemesis-{seed}"
        client = AdminClient({"bootstrap.servers": cluster.bootstrap, "log_level": 0})
        client.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(timeout=30)
        counts = Counts()
        created: dict[str, bool | None] = {}
        admin_errors: list[str] = []
        stop = threading.Event()
        threads = [
            threading.Thread(target=produce, args=(cluster.bootstrap, topic, stop, counts)),
            threading.Thread(target=admin_churn, args=(cluster, stop, created, random.Random(seed + 1), admin_errors)),
            threading.Thread(target=faults, args=(cluster, stop, random.Random(seed + 2), log)),
        ]
        for t in threads:
            t.start()
        time.sleep(seconds)
        stop.set()
        threads[2].join()
        threads[1].join()
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
        cluster.links.heal()
        for b in brokers:
            if b.proc is not None and b.proc.poll() is None:
                try:
                    os.kill(b.pid, signal.SIGCONT)
                except OSError:
                    pass
                b.stop()
        cluster.links.close()


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
