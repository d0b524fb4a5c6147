"""A confluent-kafka (librdkafka) producer measured the way ringtail-bench measures, for the
agreement check in BENCHMARKS.md: messages of SIZE bytes to PARTITIONS partitions of a new
topic, as fast as possible or at RATE msg/s, for SECONDS after WARMUP seconds; publish latency
is from the time a message was due (its scheduled send time at a fixed rate, its produce()
call otherwise) to its delivery report.

Usage: python confluent_producer.py BOOTSTRAP [--rate N] [--seconds S] [--warmup S] [--size B]
       [--partitions N] [--linger-ms L] [--batch-bytes B] [--max-in-flight N]
Prints one JSON line: msgs_per_s, mb_per_s, and latency percentiles in ms.
"""

import argparse
import json
import time
import uuid

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bootstrap")
    ap.add_argument("--rate", type=int, default=0)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--warmup", type=float, default=5)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--partitions", type=int, default=16)
    ap.add_argument("--linger-ms", type=int, default=1)
    ap.add_argument("--batch-bytes", type=int, default=1 << 20)
    # ringtail-bench's default, which is the Java client's; librdkafka's own is 1,000,000.
    ap.add_argument("--max-in-flight", type=int, default=5)
    a = ap.parse_args()
    topic = f"confluent-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": a.bootstrap})  # must outlive the future
    admin.create_topics([NewTopic(topic, num_partitions=a.partitions, replication_factor=1)])[topic].result(30)
    p = Producer({"bootstrap.servers": a.bootstrap, "acks": "all", "linger.ms": a.linger_ms,
                  "batch.size": a.batch_bytes, "enable.idempotence": False,
                  "max.in.flight.requests.per.connection": a.max_in_flight,
                  "queue.buffering.max.kbytes": 1 << 20, "queue.buffering.max.messages": 1_000_000})
    payload = b"x" * a.size
    latencies = []
    counted = [0]
    start = time.perf_counter()
    measure_from, end = start + a.warmup, start + a.warmup + a.seconds

    def delivered(err, _msg, due):
        now = time.perf_counter()
        if err is None and measure_from <= due < end:
            latencies.append(now - due)
            counted[0] += 1

    interval = 1.0 / a.rate if a.rate else 0.0
    n = 0
    due = start
    partition = 0
    while True:
        now = time.perf_counter()
        if now >= end:
            break
        if a.rate:
            if due > now:
                p.poll(0)
                time.sleep(min(due - now, 0.0005))
                continue
            when = due
            due += interval
        else:
            when = now
        try:
            p.produce(topic, payload, partition=partition, on_delivery=lambda e, m, w=when: delivered(e, m, w))
        except BufferError:
            p.poll(0.001)
            continue
        n += 1
        if n % 1000 == 0:
            partition = (partition + 1) % a.partitions  # sticky, like the harness's no-key mode
        p.poll(0)
    p.flush(60)
    latencies.sort()

    def pct(q):
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 3) if latencies else None

    print(json.dumps({"client": "confluent-kafka", "rate": a.rate, "msgs_per_s": round(counted[0] / a.seconds),
                      "mb_per_s": round(counted[0] * a.size / a.seconds / 1e6, 1),
                      "p50_ms": pct(0.5), "p99_ms": pct(0.99), "p99_9_ms": pct(0.999),
                      "max_ms": round(latencies[-1] * 1000, 3) if latencies else None}))


if __name__ == "__main__":
    main()
