"""One consumer group member (confluent-kafka), run as its own process by test_groups.py so a test
can kill it like a real crash. It subscribes to one topic and records what it does to --out:

    start <t> <pid>
    assigned <t> <partitions>      after each assignment; partitions as 0,1,2 or - for none (with
                                   --protocol consumer, only the partitions added)
    revoked <t> <partitions>       after the revoked partitions' offsets were committed
    lost <t> <partitions>          the assignment was lost (no commit possible)
    m <partition> <offset> <t> <value>
    committed <t> <partition>:<offset>,...   offsets the broker acknowledged
    error <t> <text>
    closed <t>                     after a clean close (SIGTERM)

<t> is time.monotonic(), one clock for every process on the machine. Each batch of messages is
written with one os.write before its offsets are stored for commit, so a committed offset is never
ahead of what the file shows as processed: at-least-once, as an application would do it. Offsets
are committed every 200 ms, on revoke (synchronously) and on close.
SIGTERM closes the consumer (commit, LeaveGroup) and exits 0; SIGKILL is a crash.
"""

import argparse
import os
import signal
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--client-id", default="e2e-member")
    parser.add_argument("--instance-id", default=None, help="group.instance.id: static membership")
    parser.add_argument("--session-timeout-ms", type=int, default=6000)
    parser.add_argument("--heartbeat-interval-ms", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=1000, help="messages processed per batch")
    parser.add_argument("--batch-delay-ms", type=int, default=0, help="pause after each batch (slow consumer)")
    parser.add_argument("--offset-reset", default="earliest")
    parser.add_argument("--protocol", default="classic", choices=["classic", "consumer"],
                        help="group.protocol: classic, or consumer (KIP-848: the broker assigns, "
                             "callbacks list only the partitions added or revoked)")
    args = parser.parse_args()

    out = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def record(*lines: str) -> None:
        if lines:
            os.write(out, ("\n".join(lines) + "\n").encode())

    def partitions_text(partitions) -> str:
        ids = sorted(p.partition for p in partitions if p.topic == args.topic)
        return ",".join(map(str, ids)) or "-"

    def committed_text(partitions) -> str | None:
        done = [f"{p.partition}:{p.offset}" for p in partitions
                if p.topic == args.topic and p.error is None and p.offset >= 0]
        return ",".join(done) or None

    pending = []  # polled but not yet processed

    def process_pending() -> None:
        """Processes (records) the polled messages, then stores their offsets for the next commit.
        Called before any rebalance callback commits, so what is committed was processed."""
        if not pending:
            return
        now = time.monotonic()
        lines, next_offsets = [], {}
        for m in pending:
            if m.error():
                lines.append(f"error {now:.3f} {m.error()}")
                continue
            lines.append(f"m {m.partition()} {m.offset()} {now:.3f} {m.value().decode(errors='replace')}")
            next_offsets[m.partition()] = m.offset() + 1
        pending.clear()
        record(*lines)
        if next_offsets:
            try:
                consumer.store_offsets(offsets=[TopicPartition(args.topic, p, o) for p, o in next_offsets.items()])
            except KafkaException as e:  # the assignment was lost meanwhile
                record(f"error {time.monotonic():.3f} store_offsets failed: {e}")

    def on_commit(err, partitions):
        if err is not None and err.code() != KafkaError._NO_OFFSET:
            record(f"error {time.monotonic():.3f} commit failed: {err}")
        text = committed_text(partitions or [])
        if text:
            record(f"committed {time.monotonic():.3f} {text}")

    def on_assign(consumer, partitions):
        record(f"assigned {time.monotonic():.3f} {partitions_text(partitions)}")

    def on_revoke(consumer, partitions):
        # Commit what was processed before giving the partitions up, so the next owner starts
        # right after it: no message is processed twice when no member fails.
        process_pending()
        try:
            done = consumer.commit(asynchronous=False)
            text = committed_text(done or [])
            if text:
                record(f"committed {time.monotonic():.3f} {text}")
        except KafkaException as e:
            if e.args[0].code() != KafkaError._NO_OFFSET:
                record(f"error {time.monotonic():.3f} commit on revoke failed: {e}")
        record(f"revoked {time.monotonic():.3f} {partitions_text(partitions)}")

    def on_lost(consumer, partitions):
        process_pending()
        record(f"lost {time.monotonic():.3f} {partitions_text(partitions)}")

    conf = {
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "client.id": args.client_id,
        "enable.auto.commit": True,
        "auto.commit.interval.ms": 200,
        "enable.auto.offset.store": False,
        "auto.offset.reset": args.offset_reset,
        "enable.partition.eof": False,
        "session.timeout.ms": args.session_timeout_ms,
        "heartbeat.interval.ms": args.heartbeat_interval_ms,
        "max.poll.interval.ms": max(20_000, args.session_timeout_ms),
        "on_commit": on_commit,
    }
    if args.instance_id:
        conf["group.instance.id"] = args.instance_id
    if args.protocol == "consumer":
        # Session timeout and heartbeat interval are the broker's under this protocol.
        conf["group.protocol"] = "consumer"
        del conf["session.timeout.ms"], conf["heartbeat.interval.ms"]

    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    consumer = Consumer(conf)
    record(f"start {time.monotonic():.3f} {os.getpid()}")
    consumer.subscribe([args.topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)

    while not stopping:
        # poll() rather than consume(): a rebalance callback can then run between two messages
        # of a batch, and it processes the batch so far before it commits.
        m = consumer.poll(0 if pending else 0.2)
        if m is not None:
            pending.append(m)
        if m is None or len(pending) >= args.batch_size:
            had_messages = bool(pending)
            process_pending()
            if args.batch_delay_ms and had_messages:
                time.sleep(args.batch_delay_ms / 1000)
    process_pending()

    try:
        consumer.close()
    except KafkaException as e:
        record(f"error {time.monotonic():.3f} close failed: {e}")
        return 1
    record(f"closed {time.monotonic():.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
