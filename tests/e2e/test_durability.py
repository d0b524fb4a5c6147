"""Crash and restart tests: a producer writes numbered messages while the broker is killed
with SIGKILL (or stopped with SIGTERM); after a restart on the same data directory every
acknowledged message must be there, where it was acknowledged, in order, without gaps or
damage."""

import hashlib
import threading
import time

import pytest

import helpers

PARTITIONS = 4
RUN_BEFORE_CRASH_S = 2.0
ACKED_BEFORE_CRASH_MIN = 1000
PRODUCE_DEADLINE_S = 30.0


def value_of(n: int) -> bytes:
    return f"{n}:{hashlib.sha256(str(n).encode()).hexdigest()}".encode()


def parse(value: bytes) -> int:
    """The message number, after checking the value is exactly what was sent."""
    n_text, _, digest = value.partition(b":")
    n = int(n_text)
    assert value == value_of(n), f"damaged value {value[:80]!r}"
    return n


class BackgroundProducer:
    """Produces messages 0, 1, 2, ... round-robin over the partitions from its own thread, and
    records the (partition, offset) of every message whose delivery report succeeded."""

    def __init__(self, bootstrap: str, topic: str):
        self.topic = topic
        self.producer = helpers.producer(bootstrap, **{"linger.ms": 2, "message.timeout.ms": 10_000})
        self.acked: dict[int, tuple[int, int]] = {}
        self.failed = 0
        self.sent = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _delivered(self, err, msg):
        n = int(msg.value().split(b":", 1)[0])
        if helpers.is_ok(err):
            self.acked[n] = (msg.partition(), msg.offset())
        else:
            self.failed += 1

    def _run(self):
        n = 0
        while not self.stop.is_set():
            try:
                self.producer.produce(self.topic, value=value_of(n), partition=n % PARTITIONS,
                                      on_delivery=self._delivered)
                n += 1
                self.sent = n
            except BufferError:
                self.producer.poll(0.05)
            self.producer.poll(0)
        # Whatever was not acknowledged by now never will be: drop it and collect the reports.
        self.producer.purge(in_queue=True, in_flight=True, blocking=True)
        self.producer.flush(15)

    def start(self):
        self.thread.start()

    def finish(self):
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive(), "producer thread did not stop"


def produce_until_interrupted(broker, topic: str, interrupt) -> BackgroundProducer:
    """Runs a BackgroundProducer for ~2 s (and at least some acknowledgements), calls
    interrupt(broker) while it is still producing, then stops it."""
    bp = BackgroundProducer(broker.bootstrap, topic)
    bp.start()
    started = time.monotonic()
    while time.monotonic() - started < RUN_BEFORE_CRASH_S or len(bp.acked) < ACKED_BEFORE_CRASH_MIN:
        assert time.monotonic() - started < PRODUCE_DEADLINE_S, (
            f"only {len(bp.acked)} acknowledgements after {PRODUCE_DEADLINE_S} s ({bp.failed} failures)")
        assert bp.thread.is_alive()
        time.sleep(0.05)
    # The producer must still be producing when the broker goes down. Checked just before the
    # interrupt: once the broker is gone, a producer whose queue is full cannot send any more.
    sent_before = bp.sent
    time.sleep(0.2)
    assert bp.sent > sent_before, "the producer stopped producing before the interrupt"
    interrupt(broker)
    bp.finish()
    return bp


def check_log(broker, topic: str, bp: BackgroundProducer, acked_must_survive: bool) -> dict[int, list]:
    """Reads the whole topic after a restart and checks it against what was acknowledged."""
    got = helpers.consume_all(broker.bootstrap, topic, PARTITIONS)
    helpers.assert_contiguous(topic, got)
    present = {}
    for part, msgs in got.items():
        numbers = [parse(m.value()) for m in msgs]
        # One producer sending each partition's messages in order, and a crash can only cut
        # the tail: each partition holds exactly the first k messages sent to it.
        expected = list(range(part, part + PARTITIONS * len(numbers), PARTITIONS))
        if numbers != expected:
            bad = next(i for i, (a, b) in enumerate(zip(numbers, expected)) if a != b)
            raise AssertionError(f"{topic}[{part}] at offset {bad}: message {numbers[bad]}, expected "
                                 f"{expected[bad]} (out of order, duplicated or with a gap)")
        for m, n in zip(msgs, numbers):
            present[n] = (part, m.offset())
    if acked_must_survive:
        lost = sorted(n for n in bp.acked if n not in present)
        assert not lost, (f"{len(lost)} of {len(bp.acked)} acknowledged messages are missing after the "
                          f"restart, e.g. {lost[:10]}; {len(present)} messages present")
    moved = [(n, bp.acked[n], present[n]) for n in bp.acked if n in present and present[n] != bp.acked[n]]
    assert not moved, f"messages read at other offsets than acknowledged (n, acked, read): {moved[:10]}"
    return got


def check_appends_continue(broker, topic: str, got: dict[int, list]) -> None:
    """New messages after the restart land right after the recovered ones and can be read."""
    p = helpers.producer(broker.bootstrap)
    reports = []
    for part in range(PARTITIONS):
        p.produce(topic, value=b"after-restart", partition=part,
                  on_delivery=lambda err, msg: reports.append((err, msg.partition(), msg.offset())))
    assert p.flush(15) == 0
    assert all(helpers.is_ok(err) for err, _, _ in reports), reports
    assert sorted((part, off) for _, part, off in reports) == [(part, len(got[part])) for part in range(PARTITIONS)]
    ends = {part: len(got[part]) for part in range(PARTITIONS)}
    again = helpers.consume_all(broker.bootstrap, topic, PARTITIONS, start=ends)
    for part in range(PARTITIONS):
        assert [(m.offset(), m.value()) for m in again[part]] == [(ends[part], b"after-restart")]


@pytest.mark.parametrize("flags", [[], ["--durability", "sync"]], ids=["default", "sync"])
def test_acknowledged_messages_survive_kill9(broker_factory, flags):
    broker = broker_factory(*flags)
    topic = helpers.topic_name("crash")
    helpers.create_topic(broker.bootstrap, topic, PARTITIONS)

    bp = produce_until_interrupted(broker, topic, lambda b: b.kill9())
    assert len(bp.acked) >= ACKED_BEFORE_CRASH_MIN

    broker.start()
    got = check_log(broker, topic, bp, acked_must_survive=True)
    check_appends_continue(broker, topic, got)


def test_acknowledged_messages_survive_sigterm(broker):
    topic = helpers.topic_name("sigterm")
    helpers.create_topic(broker.bootstrap, topic, PARTITIONS)

    bp = produce_until_interrupted(broker, topic, lambda b: b.stop_cleanly())
    broker.start()
    got = check_log(broker, topic, bp, acked_must_survive=True)
    check_appends_continue(broker, topic, got)


def test_kill9_under_async_durability_leaves_a_clean_prefix(broker_factory):
    """Async durability may lose acknowledged messages in a crash (that is its contract), but what
    survives must still be a clean prefix of each partition: no gaps, no damage."""
    broker = broker_factory("--durability", "async")
    topic = helpers.topic_name("crash-async")
    helpers.create_topic(broker.bootstrap, topic, PARTITIONS)

    bp = produce_until_interrupted(broker, topic, lambda b: b.kill9())
    broker.start()
    got = check_log(broker, topic, bp, acked_must_survive=False)
    check_appends_continue(broker, topic, got)
