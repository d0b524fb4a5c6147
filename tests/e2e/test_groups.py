"""Consumer groups with real clients against the real binary: members sharing a topic, a member
killed with SIGKILL, committed offsets surviving a broker crash, several groups on one topic,
kafka-python and kcat as group members, the admin APIs, static membership, the `ringtail group`
command, and the group requests' error codes over raw sockets.

Group members that a test must be able to kill run as processes (group_member.py), each recording
what it was assigned and processed to a file; the test reads those files.
"""

import collections
import json
import logging
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import (Consumer, ConsumerGroupState, ConsumerGroupTopicPartitions, KafkaError, KafkaException,
                             TopicPartition)
from kafka import KafkaAdminClient, KafkaConsumer
from kafka import TopicPartition as KPTopicPartition
from kafka.errors import GroupSubscribedToTopicError, NoError

import helpers
import kwire
from conftest import free_port, ringtail_bin
from kwire import i8, i32, i64, string

pytestmark = pytest.mark.timeout(90)

TIMEOUT_S = helpers.ADMIN_TIMEOUT_S
MEMBER_SCRIPT = Path(__file__).with_name("group_member.py")
MEMBER_STOP_TIMEOUT_S = 20.0
# Limits of the waits below; a wait that runs out says what it was waiting for.
CONSUME_TIMEOUT_S = 60.0
SETTLE_TIMEOUT_S = 30.0
# Kafka's group.min.session.timeout.ms, which Ringtail's --group-session-timeout-ms-min defaults to.
SESSION_TIMEOUT_MIN_MS = 6000
# Kafka's group.initial.rebalance.delay.ms, which Ringtail's --group-initial-rebalance-delay-ms defaults to.
INITIAL_REBALANCE_DELAY_DEFAULT_S = 3.0
# After a member dies, the rest of its partitions' reassignment beyond the session timeout: the
# survivors' next heartbeat (500 ms), their rejoin and sync.
TAKEOVER_SLACK_S = 4.0
# Kafka's offset.metadata.max.bytes.
OFFSET_METADATA_BYTES_MAX = 4096
NO_JOIN_DELAY = ("--group-initial-rebalance-delay-ms", "0")
# Enough for members started together to join the first generation, without the default's 3 s.
SHORT_JOIN_DELAY = ("--group-initial-rebalance-delay-ms", "1000")


# ---- group members as processes -------------------------------------------------------------

class Member:
    """A group_member.py process and what it has recorded so far (read with refresh())."""

    def __init__(self, name: str, workdir: Path, args: list[str]):
        self.name = name
        # Under the consumer protocol (KIP-848) an assignment lists only the partitions added.
        self.incremental = "--protocol" in args and args[args.index("--protocol") + 1] == "consumer"
        self.out_path = workdir / f"{name}.record"
        self.err_path = workdir / f"{name}.stderr"
        with open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen([sys.executable, str(MEMBER_SCRIPT), "--out", str(self.out_path), *args],
                                         stdin=subprocess.DEVNULL, stdout=err, stderr=err, cwd=workdir)
        self.stopped_on_purpose = False
        self._read_bytes = 0
        self._partial = b""
        self.events: list[tuple[str, float, str]] = []  # (kind, time, rest of line) of every non-message line
        self.messages: list[tuple[int, int, float, str]] = []  # (partition, offset, time, value)

    def refresh(self) -> "Member":
        try:
            with open(self.out_path, "rb") as f:
                f.seek(self._read_bytes)
                data = f.read()
        except FileNotFoundError:
            return self
        self._read_bytes += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()  # a line still being written (or cut by SIGKILL)
        for line in lines:
            text = line.decode()
            kind, rest = text.split(" ", 1)
            if kind == "m":
                p, o, t, value = rest.split(" ", 3)
                self.messages.append((int(p), int(o), float(t), value))
            else:
                t, _, detail = rest.partition(" ")
                self.events.append((kind, float(t), detail))
        return self

    def check_running(self) -> None:
        if self.proc.poll() is not None and not self.stopped_on_purpose:
            raise AssertionError(f"member {self.name} (pid {self.proc.pid}) exited with code "
                                 f"{self.proc.returncode}:\n{self.stderr_tail()}")

    def stderr_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.err_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def count(self, kind: str) -> int:
        return sum(1 for k, _, _ in self.events if k == kind)

    def times(self, kind: str) -> list[float]:
        return [t for k, t, _ in self.events if k == kind]

    def assigned_at(self, partition: int, after: float) -> float | None:
        """When this member was first assigned `partition` after time `after`."""
        for kind, t, detail in self.events:
            if kind == "assigned" and t > after and detail != "-" and partition in map(int, detail.split(",")):
                return t
        return None

    @property
    def assignment(self) -> set[int]:
        """Partitions held now, replaying assigned/revoked/lost events (eager rebalancing)."""
        held: set[int] = set()
        for kind, _, detail in self.events:
            if kind not in ("assigned", "revoked", "lost"):
                continue
            parts = set() if detail == "-" else {int(p) for p in detail.split(",")}
            if kind != "assigned":
                held = held - parts
            else:
                held = held | parts if self.incremental else parts
        return held

    @property
    def committed(self) -> dict[int, int]:
        """Highest offset the broker acknowledged as committed, per partition."""
        out: dict[int, int] = {}
        for kind, _, detail in self.events:
            if kind == "committed":
                for item in detail.split(","):
                    p, o = map(int, item.split(":"))
                    out[p] = max(out.get(p, -1), o)
        return out

    def summary(self) -> str:
        self.refresh()
        events = [f"{k} {d}" for k, _, d in self.events if k != "committed"][-8:]
        return (f"{self.name} (pid {self.proc.pid}, {'running' if self.proc.poll() is None else f'exit {self.proc.returncode}'}): "
                f"{len(self.messages)} messages, assignment {sorted(self.assignment)}, events {events}\n"
                f"  stderr: {self.stderr_tail(5)!r}")

    def stop(self) -> None:
        """SIGTERM by pid: the member commits, leaves (unless static) and must exit 0."""
        self.stopped_on_purpose = True
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=MEMBER_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise AssertionError(f"member {self.name} did not stop within {MEMBER_STOP_TIMEOUT_S} s of SIGTERM:\n"
                                 f"{self.stderr_tail()}")
        self.refresh()
        assert code == 0 and self.count("closed") == 1, (
            f"member {self.name} exited with {code} after SIGTERM, events {self.events[-5:]}:\n{self.stderr_tail()}")

    def kill9(self) -> None:
        self.stopped_on_purpose = True
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


@pytest.fixture
def group_members(broker_factory, tmp_path):
    """Starts group_member.py processes: group_members(bootstrap, group, topic, name, **options),
    options being its flags (session_timeout_ms=6000, batch_delay_ms=50, instance_id="a", ...).
    Depends on broker_factory so that members are gone before the brokers are stopped."""
    started: list[Member] = []
    workdir = tmp_path / "members"
    workdir.mkdir()

    def start(bootstrap: str, group: str, topic: str, name: str, **options) -> Member:
        args = ["--bootstrap", bootstrap, "--group", group, "--topic", topic, "--client-id", name]
        for key, value in options.items():
            args += [f"--{key.replace('_', '-')}", str(value)]
        member = Member(name, workdir, args)
        started.append(member)
        return member

    yield start
    for m in started:
        if m.proc.poll() is None:
            os.kill(m.proc.pid, signal.SIGKILL)
            m.proc.wait()


def summaries(members: list[Member]) -> str:
    return "\n".join(m.summary() for m in members)


def processed(members: list[Member]) -> collections.Counter:
    """How many times each (partition, offset) was processed, over all members."""
    return collections.Counter((p, o) for m in members for p, o, _, _ in m.messages)


def wait_consumed(members: list[Member], produced: dict, timeout_s: float = CONSUME_TIMEOUT_S) -> None:
    """Waits until the members together have processed every produced (partition, offset)."""
    expected = set(produced)

    def done():
        for m in members:
            m.refresh()
            m.check_running()
        return expected <= set(processed(members))

    helpers.wait_for(done, timeout_s, lambda: (
        f"{len(expected - set(processed(members)))} of {len(expected)} messages still unprocessed:\n"
        + summaries(members)), interval_s=0.2)


def wait_settled(members: list[Member], partitions: int, timeout_s: float = SETTLE_TIMEOUT_S) -> dict[str, set[int]]:
    """Waits until every member holds some partitions and each partition is held by exactly one
    member. Returns {member name: partitions}."""
    def settled():
        for m in members:
            m.refresh()
            m.check_running()
        held = {m.name: m.assignment for m in members}
        if all(held.values()) and sorted(p for s in held.values() for p in s) == list(range(partitions)):
            return held
        return None

    return helpers.wait_for(settled, timeout_s, lambda: f"the group to settle over {partitions} partitions:\n"
                            + summaries(members), interval_s=0.1)


def wait_committed_to_end(bootstrap: str, group: str, topic: str, partitions: int) -> None:
    ends = {(topic, p): o for p, o in helpers.end_offsets(bootstrap, topic, partitions).items()}
    helpers.wait_for(lambda: {k: o for k, (o, _) in helpers.committed_offsets(bootstrap, group).items()} == ends,
                     15, lambda: f"{group}'s committed offsets {helpers.committed_offsets(bootstrap, group)} "
                     f"to reach the end offsets {ends}", interval_s=0.2)


# ---- in-process clients ---------------------------------------------------------------------

def group_consumer(bootstrap: str, group: str, **extra) -> Consumer:
    """A confluent-kafka group member in this process, committing only when told to."""
    conf = {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "enable.partition.eof": False,
            "session.timeout.ms": SESSION_TIMEOUT_MIN_MS, "heartbeat.interval.ms": 500,
            "logger": helpers.RDKAFKA_LOGGER}
    conf.update(extra)
    return Consumer(conf)


def consume_n(c: Consumer, n: int, timeout_s: float = 30.0) -> list:
    """The next n messages (waiting for the group's assignment first); fails on a consumer error."""
    got = []
    deadline = time.monotonic() + timeout_s
    while len(got) < n:
        assert time.monotonic() < deadline, f"consumed {len(got)} of {n} messages in {timeout_s} s"
        for m in c.consume(num_messages=min(1000, n - len(got)), timeout=0.2):
            assert m.error() is None, f"consumer error: {m.error()}"
            got.append(m)
    return got


def assert_alive(broker) -> None:
    assert broker.is_running(), f"broker exited with code {broker.proc.returncode}"
    assert kwire.broker_answers(broker.bootstrap), "broker no longer answers ApiVersions on a new connection"


# ---- 1. sharing, failure, durability --------------------------------------------------------

@pytest.mark.timeout(120)
def test_three_members_share_100k_messages_exactly_once(broker, group_members):
    """Default broker flags, so the initial rebalance delay (3 s) gathers the three members, started
    together, into one generation of two partitions each. No member fails, so every message is
    processed by exactly one member, once."""
    topic, group, partitions = helpers.topic_name("grp-share"), helpers.topic_name("share"), 6
    helpers.create_topic(broker.bootstrap, topic, partitions)
    produced = helpers.produce_numbered(broker.bootstrap, topic, 100_000, partitions)

    members = [group_members(broker.bootstrap, group, topic, f"share-{i}") for i in range(3)]
    held = wait_settled(members, partitions)
    wait_consumed(members, produced)
    wait_committed_to_end(broker.bootstrap, group, topic, partitions)

    for m in members:
        assert (m.count("assigned"), m.count("revoked")) == (1, 0), (
            f"{m.name} went through several generations although all three joined within the initial "
            f"rebalance delay:\n{summaries(members)}")
    first_start = min(m.times("start")[0] for m in members)
    first_assignment = min(m.times("assigned")[0] for m in members)
    assert first_assignment - first_start >= INITIAL_REBALANCE_DELAY_DEFAULT_S - 0.1, (
        f"the first assignment came {first_assignment - first_start:.2f} s after the first member started; the "
        f"default initial rebalance delay is {INITIAL_REBALANCE_DELAY_DEFAULT_S} s")
    assert sorted(len(s) for s in held.values()) == [2, 2, 2], f"range assignment of 6 partitions to 3: {held}"

    for m in members:
        m.stop()
    counts = processed(members)
    duplicates = sorted(k for k, n in counts.items() if n > 1)
    assert not duplicates, f"{len(duplicates)} messages processed more than once, e.g. {duplicates[:5]}"
    assert set(counts) == set(produced)
    for m in members:
        for p, o, _, value in m.messages:
            assert value.encode() == produced[(p, o)], f"{topic}[{p}]@{o}: read {value!r}"
        assert {p for p, _, _, _ in m.messages} <= held[m.name], f"{m.name} processed partitions it did not hold"
    wait_committed_to_end(broker.bootstrap, group, topic, partitions)


@pytest.mark.timeout(120)
def test_killed_member_partitions_are_taken_over_within_the_session_timeout(broker_factory, group_members):
    """One of three slow members is killed with SIGKILL mid-consumption. Within its session timeout
    (6 s) plus a few seconds the others take its partitions over, resuming from its last commit:
    every message is processed, and only messages past the dead member's last commit twice."""
    broker = broker_factory(*SHORT_JOIN_DELAY)
    topic, group, partitions = helpers.topic_name("grp-kill"), helpers.topic_name("kill"), 6
    helpers.create_topic(broker.bootstrap, topic, partitions)
    produced = helpers.produce_numbered(broker.bootstrap, topic, 30_000, partitions)

    # About 2,000 messages/s each: the victim is far from done with its 10,000 when it is killed.
    slow = {"batch_size": 100, "batch_delay_ms": 50, "session_timeout_ms": SESSION_TIMEOUT_MIN_MS}
    members = [group_members(broker.bootstrap, group, topic, f"kill-{i}", **slow) for i in range(3)]
    wait_settled(members, partitions)
    victim, survivors = members[0], members[1:]
    helpers.wait_for(lambda: len(victim.refresh().messages) >= 1000, 30,
                     lambda: f"the victim to process 1000 messages:\n{summaries(members)}")

    victim_partitions = victim.assignment
    killed_at = time.monotonic()
    victim.kill9()
    wait_consumed(members, produced)
    victim.refresh()

    victim_next = {p: max(o for q, o, _, _ in victim.messages if q == p) + 1
                   for p in victim_partitions if any(q == p for q, _, _, _ in victim.messages)}
    ends = helpers.end_offsets(broker.bootstrap, topic, partitions)
    unfinished = {p for p in victim_partitions if victim_next.get(p, 0) < ends[p]}
    assert unfinished, "the victim had finished its partitions before it was killed; the test proves nothing"
    # Measured to the survivor's assignment: how soon its first message follows depends on how
    # much this deliberately slow consumer had already fetched for its other partitions.
    takeover = {}
    for p in unfinished:
        times = [t for m in survivors if (t := m.assigned_at(p, killed_at)) is not None]
        assert times, f"partition {p} of the killed member was never assigned to another member"
        takeover[p] = round(min(times) - killed_at, 2)
    assert max(takeover.values()) < SESSION_TIMEOUT_MIN_MS / 1000 + TAKEOVER_SLACK_S, (
        f"the killed member's partitions were reassigned {takeover} s after SIGKILL; session timeout "
        f"{SESSION_TIMEOUT_MIN_MS} ms + {TAKEOVER_SLACK_S} s slack")
    for p in unfinished:
        assert any(q == p and t > killed_at for m in survivors for q, _, t, _ in m.messages), (
            f"partition {p} of the killed member was never consumed by the others")

    survivor_counts = processed(survivors)
    twice_by_survivors = sorted(k for k, n in survivor_counts.items() if n > 1)
    assert not twice_by_survivors, (
        f"the surviving members processed {len(twice_by_survivors)} messages twice, e.g. {twice_by_survivors[:5]}")
    victim_committed = victim.committed
    again = sorted({(p, o) for p, o, _, _ in victim.messages} & set(survivor_counts))
    not_allowed = [(p, o) for p, o in again if p not in victim_partitions or o < victim_committed.get(p, 0)]
    assert not not_allowed, (
        f"{len(not_allowed)} messages were processed again although the killed member had committed past "
        f"them (its last commits: {victim_committed}), e.g. {not_allowed[:5]}")

    wait_settled(survivors, partitions)
    for m in survivors:
        m.stop()
    wait_committed_to_end(broker.bootstrap, group, topic, partitions)


def test_committed_offsets_survive_a_broker_kill9(broker_factory):
    """Offsets committed (and acknowledged) before the broker is killed with SIGKILL are there after
    the restart: through OffsetFetch from the consumer and the AdminClient, and as the point where a
    new member of the group starts (auto.offset.reset=error: no fallback)."""
    broker = broker_factory(*NO_JOIN_DELAY, "--offsets-topic-partitions", "5")
    topic, group, partitions = helpers.topic_name("grp-crash"), helpers.topic_name("crash"), 4
    helpers.create_topic(broker.bootstrap, topic, partitions)
    helpers.produce_numbered(broker.bootstrap, topic, 400, partitions)  # 100 per partition
    targets = {0: 10, 1: 37, 2: 99, 3: 100}
    expected = {(topic, p): (o, f"resume-{p}") for p, o in targets.items()}

    c = group_consumer(broker.bootstrap, group)
    try:
        c.subscribe([topic])
        assert len({(m.partition(), m.offset()) for m in consume_n(c, 400)}) == 400
        done = c.commit(offsets=[TopicPartition(topic, p, o, f"resume-{p}") for p, o in targets.items()],
                        asynchronous=False)
        assert all(tp.error is None for tp in done), done
    finally:
        c.close()
    assert helpers.committed_offsets(broker.bootstrap, group) == expected, "before the crash"
    with kwire.connect(broker.bootstrap) as s:
        internal = kwire.topics_v1(s).get(kwire.CONSUMER_OFFSETS_TOPIC)
        assert internal == {"error": kwire.NONE, "is_internal": True, "partitions": 5}, (
            f"{kwire.CONSUMER_OFFSETS_TOPIC} in Metadata: {internal}")
        latest = kwire.list_offsets_v1(s, kwire.CONSUMER_OFFSETS_TOPIC, list(range(5)))
        assert sum(offset for _, offset in latest.values()) > 0, (
            f"the commits wrote nothing to {kwire.CONSUMER_OFFSETS_TOPIC}: {latest}")

    broker.kill9()
    broker.start()

    assert helpers.committed_offsets(broker.bootstrap, group) == expected, "AdminClient OffsetFetch after the crash"
    c = group_consumer(broker.bootstrap, group, **{"auto.offset.reset": "error"})
    try:
        c.subscribe([topic])
        got = consume_n(c, sum(100 - o for o in targets.values()))
        committed = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=TIMEOUT_S)
        assert {tp.partition: (tp.offset, tp.metadata) for tp in committed} == {
            p: (o, f"resume-{p}") for p, o in targets.items()}
        offsets = collections.defaultdict(list)
        for m in got:
            offsets[m.partition()].append(m.offset())
        assert dict(offsets) == {p: list(range(o, 100)) for p, o in targets.items() if o < 100}, (
            "after the restart the group did not resume at its committed offsets")
        extra = c.consume(num_messages=10, timeout=0.5)
        assert not extra, f"messages beyond the end: {[(m.partition(), m.offset(), m.error()) for m in extra]}"
    finally:
        c.close()


def test_each_group_receives_every_message(broker_factory, group_members):
    """Publish-subscribe across groups, point-to-point within one: two groups on one topic each get
    every message once, and group `a`'s two members split the partitions."""
    broker = broker_factory(*SHORT_JOIN_DELAY)
    topic, partitions = helpers.topic_name("grp-two"), 4
    helpers.create_topic(broker.bootstrap, topic, partitions)
    produced = helpers.produce_numbered(broker.bootstrap, topic, 20_000, partitions)
    group_a, group_b = helpers.topic_name("two-a"), helpers.topic_name("two-b")

    a = [group_members(broker.bootstrap, group_a, topic, f"a-{i}") for i in range(2)]
    b = [group_members(broker.bootstrap, group_b, topic, "b-0")]
    held_a = wait_settled(a, partitions)
    wait_consumed(a, produced)
    wait_consumed(b, produced)
    for group, members in ((group_a, a), (group_b, b)):
        counts = processed(members)
        assert set(counts) == set(produced)
        duplicates = sorted(k for k, n in counts.items() if n > 1)
        assert not duplicates, f"group {group}: {len(duplicates)} messages processed twice, e.g. {duplicates[:5]}"
        wait_committed_to_end(broker.bootstrap, group, topic, partitions)
    assert all(m.messages for m in a), f"group a did not share the work:\n{summaries(a)}"
    assert sorted(len(s) for s in held_a.values()) == [2, 2], held_a
    for m in a + b:
        m.stop()


# ---- 2. other clients -----------------------------------------------------------------------

def test_kafka_python_group_commits_and_resumes(broker_factory, caplog):
    """kafka-python's KafkaConsumer as a group member: consumes everything, commits; after it closes,
    a new member of the group reads only what came after the commit."""
    # The group flow as kafka-python saw it, shown if this fails.
    caplog.set_level(logging.DEBUG, logger="kafka.coordinator")
    broker = broker_factory(*NO_JOIN_DELAY)
    topic, group, partitions = helpers.topic_name("grp-kp"), helpers.topic_name("kp"), 3
    helpers.create_topic(broker.bootstrap, topic, partitions)
    first = helpers.produce_numbered(broker.bootstrap, topic, 3000, partitions)
    first_ends = helpers.end_offsets(broker.bootstrap, topic, partitions)

    def member() -> KafkaConsumer:
        return KafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id=group, client_id="kp-e2e",
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             session_timeout_ms=SESSION_TIMEOUT_MIN_MS, heartbeat_interval_ms=1000)

    def poll_exactly(c: KafkaConsumer, expected: dict) -> None:
        got = {}
        deadline = time.monotonic() + 30
        while len(got) < len(expected):
            assert time.monotonic() < deadline, f"kafka-python consumed {len(got)} of {len(expected)} messages"
            # A long poll timeout: kafka-python 3.0.12 drops a rejoin that outlives one poll()
            # (the leader's first assignment has no metadata for the new topic, so it rejoins at
            # once; if that join and sync take longer than the poll timeout, as under load, the
            # next poll sees no rejoin needed and never applies the assignment or restarts its
            # heartbeat, and the broker rightly expires the session). poll returns early with
            # records, so this costs nothing when the join is quick.
            for records in c.poll(timeout_ms=5000, max_records=5000).values():
                for r in records:
                    assert (r.partition, r.offset) not in got, f"{r.partition}/{r.offset} consumed twice"
                    got[(r.partition, r.offset)] = r.value
        assert got == expected

    c = member()
    try:
        poll_exactly(c, first)
        assert {tp.partition for tp in c.assignment()} == set(range(partitions))
        c.commit()
        assert {p: c.committed(KPTopicPartition(topic, p)) for p in range(partitions)} == first_ends
    finally:
        c.close(autocommit=False)

    second = helpers.produce_numbered(broker.bootstrap, topic, 300, partitions, first=3000)
    c = member()
    try:
        poll_exactly(c, second)  # nothing of the first 3000 again
        c.commit()
    finally:
        c.close(autocommit=False)
    ends = helpers.end_offsets(broker.bootstrap, topic, partitions)
    assert {k: o for k, (o, _) in helpers.committed_offsets(broker.bootstrap, group).items()} == {
        (topic, p): o for p, o in ends.items()}, "librdkafka's OffsetFetch sees kafka-python's commits"


def kcat_group_command(bootstrap: str, group: str, topic: str, *extra: str) -> list[str]:
    return ["kcat", "-b", bootstrap, "-G", group, "-q", "-u", "-f", "%p %o %s\\n",
            "-X", "auto.offset.reset=earliest", *extra, topic]


def parse_kcat(text: str) -> list[tuple[int, int, bytes]]:
    """kcat's "%p %o %s" lines; a last line without its newline (still being written) is left out."""
    out = []
    for line in text[:text.rfind("\n") + 1].splitlines():
        p, o, v = line.split(" ", 2)
        out.append((int(p), int(o), v.encode()))
    return out


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed (scripts/e2e installs it)")
def test_kcat_balanced_consumers_share_and_resume(broker_factory, tmp_path):
    """Two `kcat -G` members split a topic and together consume all of it; on SIGTERM they commit
    and leave; a later `kcat -G -e` in the same group reads only the new messages and exits."""
    broker = broker_factory(*SHORT_JOIN_DELAY)
    topic, group, partitions = helpers.topic_name("grp-kcat"), helpers.topic_name("kcat"), 4
    helpers.create_topic(broker.bootstrap, topic, partitions)
    produced = helpers.produce_numbered(broker.bootstrap, topic, 10_000, partitions)

    procs, outputs = [], []
    try:
        for i in range(2):
            outputs.append(tmp_path / f"kcat-{i}.out")
            with open(outputs[-1], "wb") as out, open(tmp_path / f"kcat-{i}.err", "wb") as err:
                procs.append(subprocess.Popen(kcat_group_command(broker.bootstrap, group, topic),
                                              stdin=subprocess.DEVNULL, stdout=out, stderr=err))

        def read_all():
            for i, p in enumerate(procs):
                assert p.poll() is None, (f"kcat member {i} exited with {p.returncode}: "
                                          f"{(tmp_path / f'kcat-{i}.err').read_text(errors='replace')}")
            return [parse_kcat(path.read_text(errors="replace")) for path in outputs]

        helpers.wait_for(lambda: {(p, o) for rows in read_all() for p, o, _ in rows} >= set(produced),
                         CONSUME_TIMEOUT_S, "the two kcat members to consume every message", interval_s=0.2)
        for p in procs:
            os.kill(p.pid, signal.SIGTERM)
        for i, p in enumerate(procs):
            assert p.wait(timeout=20) == 0, (tmp_path / f"kcat-{i}.err").read_text(errors="replace")
    finally:
        for p in procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()

    per_member = [parse_kcat(path.read_text()) for path in outputs]
    rows = [r for member in per_member for r in member]
    counts = collections.Counter((p, o) for p, o, _ in rows)
    assert not [k for k, n in counts.items() if n > 1], "kcat members consumed messages twice"
    assert {(p, o): v for p, o, v in rows} == produced
    member_partitions = [{p for p, _, _ in member} for member in per_member]
    assert all(member_partitions) and not member_partitions[0] & member_partitions[1], (
        f"the two kcat members did not split the partitions: {member_partitions}")
    wait_committed_to_end(broker.bootstrap, group, topic, partitions)

    second = helpers.produce_numbered(broker.bootstrap, topic, 400, partitions, first=10_000)
    run = subprocess.run(kcat_group_command(broker.bootstrap, group, topic, "-e"),
                         capture_output=True, timeout=60)
    assert run.returncode == 0, run.stderr.decode(errors="replace")
    assert {(p, o): v for p, o, v in parse_kcat(run.stdout.decode())} == second, (
        "kcat -G did not resume at the group's committed offsets")


# ---- 3. admin, static membership, CLI -------------------------------------------------------

def test_admin_client_lists_describes_and_deletes_groups(broker_factory, group_members):
    """confluent-kafka's AdminClient (ListGroups, DescribeGroups, DeleteGroups, OffsetFetch,
    OffsetCommit for alter) and kafka-python's for OffsetDelete, which confluent-kafka lacks."""
    broker = broker_factory(*SHORT_JOIN_DELAY)
    topic, group, partitions = helpers.topic_name("grp-admin"), helpers.topic_name("admin"), 4
    helpers.create_topic(broker.bootstrap, topic, partitions)
    produced = helpers.produce_numbered(broker.bootstrap, topic, 400, partitions)
    ends = helpers.end_offsets(broker.bootstrap, topic, partitions)
    members = {name: group_members(broker.bootstrap, group, topic, name) for name in ("adm-0", "adm-1")}
    held = wait_settled(list(members.values()), partitions)
    wait_consumed(list(members.values()), produced)
    wait_committed_to_end(broker.bootstrap, group, topic, partitions)

    a = helpers.admin(broker.bootstrap)

    def listed() -> dict:
        result = a.list_consumer_groups(request_timeout=TIMEOUT_S).result(timeout=TIMEOUT_S)
        assert not result.errors, result.errors
        return {g.group_id: g for g in result.valid}

    def described():
        return a.describe_consumer_groups([group], request_timeout=TIMEOUT_S)[group].result(timeout=TIMEOUT_S)

    listing = listed()[group]
    assert (listing.state, listing.is_simple_consumer_group) == (ConsumerGroupState.STABLE, False)
    d = described()
    assert (d.group_id, d.state, d.partition_assignor, d.is_simple_consumer_group, d.coordinator.id) == (
        group, ConsumerGroupState.STABLE, "range", False, 0)
    assert sorted(m.client_id for m in d.members) == ["adm-0", "adm-1"]
    for m in d.members:
        assert "127.0.0.1" in m.host, m.host
        assert m.group_instance_id is None
        assert {tp.partition for tp in m.assignment.topic_partitions if tp.topic == topic} == held[m.client_id]

    with pytest.raises(KafkaException) as err:
        a.delete_consumer_groups([group], request_timeout=TIMEOUT_S)[group].result(timeout=TIMEOUT_S)
    assert err.value.args[0].code() == KafkaError.NON_EMPTY_GROUP
    kp = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=int(TIMEOUT_S * 1000))
    try:
        tp0 = KPTopicPartition(topic, 0)
        assert kp.delete_group_offsets(group, [tp0]) == {tp0: GroupSubscribedToTopicError}, (
            "OffsetDelete of a topic the stable group consumes")

        for m in members.values():
            m.stop()
        listing = listed()[group]
        assert listing.state == ConsumerGroupState.EMPTY
        d = described()
        assert (d.state, d.members) == (ConsumerGroupState.EMPTY, [])
        assert {k: o for k, (o, _) in helpers.committed_offsets(broker.bootstrap, group).items()} == {
            (topic, p): o for p, o in ends.items()}, "leaving the group must keep its offsets"

        assert kp.delete_group_offsets(group, [tp0]) == {tp0: NoError}
    finally:
        kp.close()
    assert set(helpers.committed_offsets(broker.bootstrap, group)) == {(topic, p) for p in (1, 2, 3)}

    altered = a.alter_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 1, 5)])], request_timeout=TIMEOUT_S)
    result = altered[group].result(timeout=TIMEOUT_S)
    assert [(tp.partition, tp.offset, tp.error) for tp in result.topic_partitions] == [(1, 5, None)]
    assert helpers.committed_offsets(broker.bootstrap, group)[(topic, 1)][0] == 5

    assert a.delete_consumer_groups([group], request_timeout=TIMEOUT_S)[group].result(timeout=TIMEOUT_S) is None
    assert group not in listed()
    assert helpers.committed_offsets(broker.bootstrap, group) == {}, "deleting a group deletes its offsets"
    with pytest.raises(KafkaException) as err:
        a.delete_consumer_groups([group], request_timeout=TIMEOUT_S)[group].result(timeout=TIMEOUT_S)
    assert err.value.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND


def test_static_member_restart_keeps_its_partitions_without_a_rebalance(broker_factory, group_members):
    """A member with group.instance.id that restarts within its session timeout gets its partitions
    back and resumes at its commits, and the other member is never revoked."""
    session_timeout_ms = 10_000
    broker = broker_factory(*SHORT_JOIN_DELAY)
    topic, group, partitions = helpers.topic_name("grp-static"), helpers.topic_name("static"), 4
    helpers.create_topic(broker.bootstrap, topic, partitions)
    first = helpers.produce_numbered(broker.bootstrap, topic, 4000, partitions)

    def start(name: str, instance_id: str) -> Member:
        return group_members(broker.bootstrap, group, topic, name, instance_id=instance_id,
                             session_timeout_ms=session_timeout_ms)

    a, b = start("static-a", "instance-a"), start("static-b", "instance-b")
    held = wait_settled([a, b], partitions)
    wait_consumed([a, b], first)
    b_events = len(b.events)

    a.stop()  # a static member does not send LeaveGroup when it closes
    stopped_at = time.monotonic()
    a2 = start("static-a-restarted", "instance-a")
    helpers.wait_for(lambda: a2.refresh().assignment, session_timeout_ms / 1000,
                     lambda: f"the restarted static member's assignment:\n{summaries([a, a2, b])}")
    assert a2.times("assigned")[0] - stopped_at < session_timeout_ms / 1000
    assert a2.assignment == held["static-a"], "the restarted static member got other partitions"

    second = helpers.produce_numbered(broker.bootstrap, topic, 400, partitions, first=4000)
    wait_consumed([a2, b], second)
    assert {(p, o) for p, o, _, _ in a2.messages} <= set(second), (
        "the restarted static member did not resume at its committed offsets")
    time.sleep(1.5)  # three heartbeat intervals: a rebalance would have reached b by now
    b.refresh()
    assert [k for k, _, _ in b.events[b_events:] if k != "committed"] == [], (
        f"the other member was rebalanced by the static member's restart:\n{summaries([a2, b])}")
    assert b.assignment == held["static-b"]

    a = helpers.admin(broker.bootstrap)  # must outlive the future
    d = a.describe_consumer_groups([group], request_timeout=TIMEOUT_S)[group].result(timeout=TIMEOUT_S)
    assert d.state == ConsumerGroupState.STABLE
    assert sorted((m.group_instance_id, m.client_id) for m in d.members) == [
        ("instance-a", "static-a-restarted"), ("instance-b", "static-b")]
    a2.stop()
    b.stop()


def ringtail_group(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(ringtail_bin()), "group", *args], capture_output=True, text=True, timeout=30)


def ringtail_group_json(bootstrap: str, *args: str):
    out = ringtail_group(*args, "--bootstrap", bootstrap, "--json")
    assert out.returncode == 0, f"ringtail group {' '.join(args)} exited {out.returncode}:\n{out.stderr}"
    return json.loads(out.stdout)


def test_group_cli_lists_and_describes_groups(broker_factory):
    """`ringtail group list/describe --json` show a group's state, members, assignment, committed
    offsets and lag; an unknown group is Dead; an unreachable broker is an error."""
    broker = broker_factory(*NO_JOIN_DELAY)
    assert ringtail_group_json(broker.bootstrap, "list") == []
    topic, group, partitions = helpers.topic_name("grp-cli"), helpers.topic_name("cli"), 3
    helpers.create_topic(broker.bootstrap, topic, partitions)
    helpers.produce_numbered(broker.bootstrap, topic, 300, partitions)  # 100 per partition
    committed = {0: 10, 1: 100, 2: 57}

    c = group_consumer(broker.bootstrap, group, **{"client.id": "cli-e2e"})
    try:
        c.subscribe([topic])
        consume_n(c, 300)
        done = c.commit(offsets=[TopicPartition(topic, 0, committed[0], "cli-meta"),
                                 TopicPartition(topic, 1, committed[1]), TopicPartition(topic, 2, committed[2])],
                        asynchronous=False)
        assert all(tp.error is None for tp in done), done
        p = helpers.producer(broker.bootstrap)
        for i in range(20):
            p.produce(topic, value=b"later-%d" % i, partition=1)
        assert p.flush(TIMEOUT_S) == 0
        log_end = {0: 100, 1: 120, 2: 100}
        expected_offsets = [{"topic": topic, "partition": q, "committed": committed[q], "log_end": log_end[q],
                             "lag": log_end[q] - committed[q]} for q in range(partitions)]

        def offsets_of(described: dict) -> list[dict]:
            rows = sorted(described["offsets"], key=lambda r: (r["topic"], r["partition"]))
            # confluent-kafka sends the metadata with its C string's NUL; the broker keeps what it got.
            assert rows[0]["metadata"] in ("cli-meta", "cli-meta\x00"), rows[0]
            return [{k: r[k] for k in ("topic", "partition", "committed", "log_end", "lag")} for r in rows]

        assert {"group": group, "state": "Stable", "protocol_type": "consumer", "group_type": "classic"} in ringtail_group_json(
            broker.bootstrap, "list")
        d = ringtail_group_json(broker.bootstrap, "describe", group)
        assert {k: d[k] for k in ("group", "state", "protocol_type", "protocol")} == {
            "group": group, "state": "Stable", "protocol_type": "consumer", "protocol": "range"}
        (member,) = d["members"]
        assert (member["member_id"], member["group_instance_id"], member["client_id"]) == (c.memberid(), None, "cli-e2e")
        assert "127.0.0.1" in member["client_host"], member
        assert [{"topic": a["topic"], "partitions": sorted(a["partitions"])} for a in member["assignment"]] == [
            {"topic": topic, "partitions": [0, 1, 2]}]
        assert offsets_of(d) == expected_offsets

        text = ringtail_group("describe", group, "--bootstrap", broker.bootstrap)
        assert text.returncode == 0 and group in text.stdout and topic in text.stdout, text
    finally:
        c.close()

    d = ringtail_group_json(broker.bootstrap, "describe", group)
    assert (d["state"], d["members"]) == ("Empty", [])
    assert offsets_of(d) == expected_offsets, "leaving the group keeps its offsets"
    assert {"group": group, "state": "Empty", "protocol_type": "consumer", "group_type": "classic"} in ringtail_group_json(
        broker.bootstrap, "list")

    unknown = ringtail_group_json(broker.bootstrap, "describe", "no-such-group")
    assert (unknown["group"], unknown["state"], unknown["members"], unknown["offsets"]) == (
        "no-such-group", "Dead", [], [])

    nobody = f"127.0.0.1:{free_port()}"
    for args in (["list"], ["describe", group]):
        out = ringtail_group(*args, "--bootstrap", nobody, "--json")
        assert out.returncode != 0 and out.stderr.strip(), (
            f"ringtail group {args[0]} against {nobody} (nothing listening): exit {out.returncode}, "
            f"stderr {out.stderr!r}")


# ---- 4. the group requests by hand ----------------------------------------------------------

RAW_TOPIC = "raw-topic"


def join_alone(sock: socket.socket, group: str, instance_id: str | None = None, session_timeout_ms: int = 30000,
               assignment: bytes | None = None) -> tuple[str, int]:
    """Joins `group` as its only member (answering MEMBER_ID_REQUIRED if asked) and syncs, as leader,
    an assignment of RAW_TOPIC to itself. Returns (member_id, generation)."""
    subscription = kwire.consumer_subscription([RAW_TOPIC])
    if assignment is None:
        assignment = kwire.consumer_assignment({RAW_TOPIC: [0, 1]})

    def join(member_id: str) -> dict:
        return kwire.join_group_v5(sock, group, member_id=member_id, instance_id=instance_id,
                                   session_timeout_ms=session_timeout_ms, protocols=[("range", subscription)])

    joined = join("")
    if joined["error"] == kwire.MEMBER_ID_REQUIRED:
        joined = join(joined["member_id"])
    assert joined["error"] == kwire.NONE, joined
    member, generation = joined["member_id"], joined["generation"]
    assert joined["leader"] == member and joined["members"] == [(member, instance_id, subscription)], joined
    assert kwire.sync_group_v3(sock, group, generation, member, {member: assignment}, instance_id) == (
        kwire.NONE, assignment)
    return member, generation


def describe(sock: socket.socket, group: str) -> dict:
    return kwire.describe_groups_v4(sock, [group])[group]


@pytest.fixture
def raw_broker(broker_factory):
    """A broker with no initial rebalance delay and RAW_TOPIC (2 partitions)."""
    broker = broker_factory(*NO_JOIN_DELAY)
    with kwire.connect(broker.bootstrap) as s:
        assert kwire.create_topics_v1(s, [(RAW_TOPIC, 2)]) == {RAW_TOPIC: (kwire.NONE, None)}
    return broker


def test_join_group_errors(raw_broker):
    group = "raw-join"
    subscription = kwire.consumer_subscription([RAW_TOPIC])
    with kwire.connect(raw_broker.bootstrap) as s:
        coordinator = kwire.find_coordinator_v1(s, group)
        assert (coordinator["error"], coordinator["node_id"], coordinator["host"], coordinator["port"]) == (
            kwire.NONE, 0, "127.0.0.1", raw_broker.port)

        def join(**kwargs) -> dict:
            kwargs.setdefault("protocols", [("range", subscription)])
            return kwire.join_group_v5(s, kwargs.pop("group", group), **kwargs)

        assert join(group="")["error"] == kwire.INVALID_GROUP_ID
        assert join(session_timeout_ms=SESSION_TIMEOUT_MIN_MS - 1)["error"] == kwire.INVALID_SESSION_TIMEOUT
        assert join(member_id="never-issued")["error"] == kwire.UNKNOWN_MEMBER_ID
        assert join(protocol_type="")["error"] == kwire.INCONSISTENT_GROUP_PROTOCOL
        assert join(protocols=[])["error"] == kwire.INCONSISTENT_GROUP_PROTOCOL

        # From JoinGroup v4 a new member must come back with the member id it is given.
        first = join(session_timeout_ms=SESSION_TIMEOUT_MIN_MS)
        assert (first["error"], first["generation"]) == (kwire.MEMBER_ID_REQUIRED, -1), first
        member = first["member_id"]
        assert member, "MEMBER_ID_REQUIRED must carry the member id to join with"
        joined = join(member_id=member, session_timeout_ms=SESSION_TIMEOUT_MIN_MS)
        assert joined["error"] == kwire.NONE, joined
        assert joined["generation"] >= 1
        assert (joined["member_id"], joined["leader"], joined["protocol"]) == (member, member, "range")
        assert joined["members"] == [(member, None, subscription)]

        # A consumer group takes no member that shares no protocol with it.
        assert join(protocol_type="connect")["error"] == kwire.INCONSISTENT_GROUP_PROTOCOL
        assert join(protocols=[("sticky-only", subscription)])["error"] == kwire.INCONSISTENT_GROUP_PROTOCOL
        assignment = kwire.consumer_assignment({RAW_TOPIC: [0, 1]})
        assert kwire.sync_group_v3(s, group, joined["generation"], member, {member: assignment}) == (
            kwire.NONE, assignment)
        assert kwire.heartbeat_v3(s, group, joined["generation"], member) == kwire.NONE
    assert_alive(raw_broker)


def test_stale_member_and_generation_are_refused(raw_broker):
    group = "raw-stale"
    with kwire.connect(raw_broker.bootstrap) as s:
        member, gen = join_alone(s, group)
        assignment = kwire.consumer_assignment({RAW_TOPIC: [0, 1]})

        assert kwire.heartbeat_v3(s, group, gen, member) == kwire.NONE
        assert kwire.heartbeat_v3(s, group, gen, "not-a-member") == kwire.UNKNOWN_MEMBER_ID
        assert kwire.heartbeat_v3(s, "no-such-group", gen, member) == kwire.UNKNOWN_MEMBER_ID
        assert kwire.heartbeat_v3(s, group, gen + 1, member) == kwire.ILLEGAL_GENERATION
        assert kwire.heartbeat_v3(s, group, gen - 1, member) == kwire.ILLEGAL_GENERATION
        assert kwire.heartbeat_v3(s, "", gen, member) == kwire.INVALID_GROUP_ID
        assert kwire.sync_group_v3(s, group, gen + 1, member, {member: assignment})[0] == kwire.ILLEGAL_GENERATION
        assert kwire.sync_group_v3(s, group, gen, "not-a-member", {})[0] == kwire.UNKNOWN_MEMBER_ID

        tp0, tp1 = (RAW_TOPIC, 0), (RAW_TOPIC, 1)

        def commit(generation: int, member_id: str, offset: int = 5) -> int:
            (error,) = kwire.offset_commit_v7(s, group, generation, member_id, {tp0: (offset, "m")}).values()
            return error

        assert commit(gen, member) == kwire.NONE
        assert commit(gen, "not-a-member", 6) == kwire.UNKNOWN_MEMBER_ID
        assert commit(gen + 1, member, 6) == kwire.ILLEGAL_GENERATION
        assert commit(-1, "", 6) == kwire.UNKNOWN_MEMBER_ID, "a commit without a member is only for an empty group"
        error, fetched = kwire.offset_fetch_v5(s, group, {RAW_TOPIC: [0, 1]})
        assert error == kwire.NONE
        assert fetched[tp0] == (5, "m", kwire.NONE), "a refused commit changed the committed offset"
        assert (fetched[tp1][0], fetched[tp1][2]) == (-1, kwire.NONE), "no offset was committed for partition 1"

        unknown = kwire.offset_commit_v7(s, group, gen, member, {("no-such-topic", 0): (1, None), (RAW_TOPIC, 99): (1, None)})
        assert unknown == {("no-such-topic", 0): kwire.UNKNOWN_TOPIC_OR_PARTITION,
                           (RAW_TOPIC, 99): kwire.UNKNOWN_TOPIC_OR_PARTITION}
        sized = {tp1: (7, "x" * OFFSET_METADATA_BYTES_MAX)}
        assert kwire.offset_commit_v7(s, group, gen, member, sized) == {tp1: kwire.NONE}
        too_big = {tp1: (8, "x" * (OFFSET_METADATA_BYTES_MAX + 1))}
        assert kwire.offset_commit_v7(s, group, gen, member, too_big) == {tp1: kwire.OFFSET_METADATA_TOO_LARGE}
        assert kwire.offset_fetch_v5(s, group, {RAW_TOPIC: [1]})[1][tp1][0] == 7

        d = describe(s, group)
        assert (d["error"], d["state"], d["protocol_type"], d["protocol"]) == (kwire.NONE, "Stable", "consumer", "range")
        (m,) = d["members"]
        assert (m["member_id"], m["instance_id"], m["client_id"], m["assignment"]) == (member, None, "e2e-raw", assignment)
        assert m["metadata"] == kwire.consumer_subscription([RAW_TOPIC])
        assert "127.0.0.1" in m["client_host"], m
        assert kwire.list_groups_v2(s) == (kwire.NONE, {group: "consumer"})
        assert kwire.heartbeat_v3(s, group, gen, member) == kwire.NONE, "the refused requests hurt the member"
    assert_alive(raw_broker)


def test_delete_groups_and_offsets(raw_broker):
    group = "raw-delete"
    tp0 = (RAW_TOPIC, 0)
    with kwire.connect(raw_broker.bootstrap) as s:
        member, gen = join_alone(s, group)
        assert kwire.offset_commit_v7(s, group, gen, member, {tp0: (3, None), (RAW_TOPIC, 1): (4, None)}) == {
            tp0: kwire.NONE, (RAW_TOPIC, 1): kwire.NONE}
        assert kwire.delete_groups_v1(s, [group, "never-existed"]) == {
            group: kwire.NON_EMPTY_GROUP, "never-existed": kwire.GROUP_ID_NOT_FOUND}
        assert kwire.offset_delete_v0(s, group, {RAW_TOPIC: [0]}) == (
            kwire.NONE, {tp0: kwire.GROUP_SUBSCRIBED_TO_TOPIC})
        assert describe(s, group)["state"] == "Stable"

        assert kwire.leave_group_v3(s, group, [(member, None)]) == (kwire.NONE, [(member, None, kwire.NONE)])
        assert kwire.heartbeat_v3(s, group, gen, member) == kwire.UNKNOWN_MEMBER_ID
        d = describe(s, group)
        assert (d["state"], d["members"]) == ("Empty", [])
        kept = {k: (offset, error) for k, (offset, _, error) in kwire.offset_fetch_v5(s, group)[1].items()}
        assert kept == {tp0: (3, kwire.NONE), (RAW_TOPIC, 1): (4, kwire.NONE)}, "an empty group keeps its offsets"

        assert kwire.offset_delete_v0(s, group, {RAW_TOPIC: [0]}) == (kwire.NONE, {tp0: kwire.NONE})
        assert set(kwire.offset_fetch_v5(s, group)[1]) == {(RAW_TOPIC, 1)}
        assert kwire.delete_groups_v1(s, [group]) == {group: kwire.NONE}
        d = describe(s, group)
        assert (d["state"], d["members"]) == ("Dead", []) and d["error"] in (kwire.NONE, kwire.GROUP_ID_NOT_FOUND), d
        assert group not in kwire.list_groups_v2(s)[1]
        assert kwire.offset_fetch_v5(s, group) == (kwire.NONE, {}), "a deleted group's offsets remain"
        assert kwire.delete_groups_v1(s, [group]) == {group: kwire.GROUP_ID_NOT_FOUND}
        # The name can be used again, from scratch.
        member, gen = join_alone(s, group)
        assert kwire.offset_fetch_v5(s, group) == (kwire.NONE, {})
    assert_alive(raw_broker)


def test_static_member_rejoin_fences_the_old_member_id(raw_broker):
    group, instance = "raw-static", "instance-1"
    assignment = kwire.consumer_assignment({RAW_TOPIC: [0, 1]})
    subscription = kwire.consumer_subscription([RAW_TOPIC])
    with kwire.connect(raw_broker.bootstrap) as s, kwire.connect(raw_broker.bootstrap) as s2:
        old, gen = join_alone(s, group, instance_id=instance, assignment=assignment)

        # The same instance comes back (a restart) while the group is stable: it gets a new member
        # id and the old one is fenced, without a rebalance.
        joined = kwire.join_group_v5(s2, group, instance_id=instance, protocols=[("range", subscription)])
        assert joined["error"] == kwire.NONE, joined
        new = joined["member_id"]
        assert new and new != old
        assert joined["generation"] == gen, "a static member's return must not start a new generation"
        assert kwire.sync_group_v3(s2, group, gen, new, {}, instance) == (kwire.NONE, assignment)
        assert kwire.heartbeat_v3(s2, group, gen, new, instance) == kwire.NONE

        assert kwire.heartbeat_v3(s, group, gen, old, instance) == kwire.FENCED_INSTANCE_ID
        assert kwire.offset_commit_v7(s, group, gen, old, {(RAW_TOPIC, 0): (1, None)}, instance) == {
            (RAW_TOPIC, 0): kwire.FENCED_INSTANCE_ID}
        d = describe(s, group)
        assert d["state"] == "Stable"
        assert [(m["member_id"], m["instance_id"]) for m in d["members"]] == [(new, instance)]

        assert kwire.leave_group_v3(s2, group, [(new, instance)]) == (kwire.NONE, [(new, instance, kwire.NONE)])
        assert describe(s, group)["state"] == "Empty"
    assert_alive(raw_broker)


def test_session_timeout_minimum_flag_and_expiry(broker_factory):
    """--group-session-timeout-ms-min lowers the minimum; a member that stops heartbeating is
    removed once its session timeout passes, and not before."""
    broker = broker_factory(*NO_JOIN_DELAY, "--group-session-timeout-ms-min", "1000")
    group = "raw-expiry"
    with kwire.connect(broker.bootstrap) as s:
        assert kwire.join_group_v5(s, group, session_timeout_ms=999)["error"] == kwire.INVALID_SESSION_TIMEOUT
        member, gen = join_alone(s, group, session_timeout_ms=1000)
        for _ in range(6):  # 2.4 s of heartbeats: more than twice the session timeout
            time.sleep(0.4)
            assert kwire.heartbeat_v3(s, group, gen, member) == kwire.NONE, "heartbeats must keep the member"
        stopped_at = time.monotonic()
        helpers.wait_for(lambda: describe(s, group)["members"] == [], 1 + TAKEOVER_SLACK_S,
                         "the silent member to expire")
        assert time.monotonic() - stopped_at > 0.9, "the member expired before its session timeout"
        assert describe(s, group)["state"] == "Empty"
        assert kwire.heartbeat_v3(s, group, gen, member) == kwire.UNKNOWN_MEMBER_ID
    assert_alive(broker)


def test_consumer_offsets_topic_is_internal(raw_broker):
    """Clients cannot write to __consumer_offsets; Metadata marks it internal, with
    --offsets-topic-partitions (default 16) partitions."""
    internal = kwire.CONSUMER_OFFSETS_TOPIC
    with kwire.connect(raw_broker.bootstrap) as s:
        # Before any group exists: a produce must not create it as an ordinary topic.
        assert kwire.produce_v3(s, internal, 0, kwire.record_batch([b"forged"]))[0] == kwire.INVALID_TOPIC_EXCEPTION
        member, gen = join_alone(s, "raw-internal")
        assert kwire.offset_commit_v7(s, "raw-internal", gen, member, {(RAW_TOPIC, 0): (9, None)}) == {
            (RAW_TOPIC, 0): kwire.NONE}
        assert kwire.topics_v1(s).get(internal) == {"error": kwire.NONE, "is_internal": True, "partitions": 16}
        before = kwire.list_offsets_v1(s, internal, list(range(16)))
        for p in (0, 15):
            error, _ = kwire.produce_v3(s, internal, p, kwire.record_batch([b"forged"]))
            assert error == kwire.INVALID_TOPIC_EXCEPTION, f"produce to {internal}[{p}] answered {error}"
        assert kwire.list_offsets_v1(s, internal, list(range(16))) == before, f"a refused produce changed {internal}"
        assert kwire.offset_fetch_v5(s, "raw-internal", {RAW_TOPIC: [0]})[1][(RAW_TOPIC, 0)][0] == 9
    assert_alive(raw_broker)


def test_consumer_offsets_topic_cannot_be_deleted(raw_broker):
    """A client's DeleteTopics of __consumer_offsets is refused (whatever the error code): deleting
    it would drop every group's offsets and leave the coordinators without a log."""
    internal = kwire.CONSUMER_OFFSETS_TOPIC
    with kwire.connect(raw_broker.bootstrap) as s:
        member, gen = join_alone(s, "raw-undeletable")
        assert kwire.offset_commit_v7(s, "raw-undeletable", gen, member, {(RAW_TOPIC, 0): (9, None)}) == {
            (RAW_TOPIC, 0): kwire.NONE}
        deleted = kwire.delete_topics_v1(s, [internal])
        assert deleted[internal] != kwire.NONE, f"a client deleted {internal}"
        assert kwire.topics_v1(s).get(internal) == {"error": kwire.NONE, "is_internal": True, "partitions": 16}
        error, fetched = kwire.offset_fetch_v5(s, "raw-undeletable", {RAW_TOPIC: [0]})
        assert (error, fetched[(RAW_TOPIC, 0)][0], fetched[(RAW_TOPIC, 0)][2]) == (kwire.NONE, 9, kwire.NONE), fetched
        assert kwire.offset_commit_v7(s, "raw-undeletable", gen, member, {(RAW_TOPIC, 0): (10, None)}) == {
            (RAW_TOPIC, 0): kwire.NONE}
    assert_alive(raw_broker)


def group_requests_with_huge_counts() -> dict[str, tuple[int, int, bytes]]:
    """Group requests whose first array (or a bytes field) claims 0x7fffffff elements with only 4
    bytes following."""
    huge = i32(0x7FFFFFFF) + b"\x00\x00\x00\x01"
    join_head = string("huge") + i32(30000) + i32(30000) + string("") + string(None) + string("consumer")
    return {
        "join-group-protocols": (kwire.API_JOIN_GROUP, 5, join_head + huge),
        "join-group-metadata": (kwire.API_JOIN_GROUP, 5, join_head + i32(1) + string("range") + huge),
        "sync-group": (kwire.API_SYNC_GROUP, 3, string("huge") + i32(1) + string("m") + string(None) + huge),
        "leave-group": (kwire.API_LEAVE_GROUP, 3, string("huge") + huge),
        "offset-commit": (kwire.API_OFFSET_COMMIT, 7, string("huge") + i32(-1) + string("") + string(None) + huge),
        "offset-fetch": (kwire.API_OFFSET_FETCH, 5, string("huge") + huge),
        "describe-groups": (kwire.API_DESCRIBE_GROUPS, 4, huge),
        "delete-groups": (kwire.API_DELETE_GROUPS, 1, huge),
        "offset-delete": (kwire.API_OFFSET_DELETE, 0, string("huge") + huge),
    }


def test_group_requests_with_huge_counts_are_refused(raw_broker):
    for name, (api_key, version, body) in group_requests_with_huge_counts().items():
        with kwire.connect(raw_broker.bootstrap) as s:
            s.sendall(kwire.request(api_key, version, body, correlation_id=5))
            s.settimeout(10)
            try:
                answer = kwire.recv_frame(s)
            except socket.timeout:
                raise AssertionError(f"{name}: no answer and no close within 10 s")
            if answer is not None:
                assert struct.unpack(">i", answer[:4])[0] == 5, f"{name}: answer with another correlation id"
                assert len(answer) < 1 << 16, f"{name}: {len(answer)}-byte answer to a 30-byte request"
        assert_alive(raw_broker)


def test_mutated_group_requests(raw_broker):
    """Well-formed group requests with a few bytes changed or cut short, on many connections: the
    broker must survive them all and groups must still work afterwards."""
    seed = int(os.environ.get("E2E_SEED", time.time_ns() % 2**32))
    print(f"mutation seed: {seed} (rerun with E2E_SEED={seed})")
    rng = random.Random(seed)
    subscription = kwire.consumer_subscription([RAW_TOPIC])
    bodies = [
        (kwire.API_FIND_COORDINATOR, 1, string("mut") + i8(0)),
        (kwire.API_JOIN_GROUP, 5, string("mut") + i32(30000) + i32(30000) + string("") + string(None)
         + string("consumer") + kwire.array([string("range") + kwire.bytes_field(subscription)])),
        (kwire.API_SYNC_GROUP, 3, string("mut") + i32(1) + string("m") + string(None)
         + kwire.array([string("m") + kwire.bytes_field(kwire.consumer_assignment({RAW_TOPIC: [0]}))])),
        (kwire.API_HEARTBEAT, 3, string("mut") + i32(1) + string("m") + string("i")),
        (kwire.API_LEAVE_GROUP, 3, string("mut") + kwire.array([string("m") + string(None)])),
        (kwire.API_OFFSET_COMMIT, 7, string("mut") + i32(-1) + string("") + string(None)
         + kwire.array([string(RAW_TOPIC) + kwire.array([i32(0) + i64(1) + i32(-1) + string("meta")])])),
        (kwire.API_OFFSET_FETCH, 5, string("mut") + kwire.array([string(RAW_TOPIC) + kwire.array([i32(0)])])),
        (kwire.API_DESCRIBE_GROUPS, 4, kwire.array([string("mut")]) + i8(0)),
        (kwire.API_LIST_GROUPS, 2, b""),
        (kwire.API_DELETE_GROUPS, 1, kwire.array([string("mut")])),
        (kwire.API_OFFSET_DELETE, 0, string("mut") + kwire.array([string(RAW_TOPIC) + kwire.array([i32(0)])])),
    ]
    connections = [kwire.connect(raw_broker.bootstrap) for _ in range(20)]
    try:
        for _ in range(500):
            api_key, version, body = rng.choice(bodies)
            payload = bytearray(kwire.header(api_key, version, rng.randint(0, 1 << 30)) + body)
            for _ in range(rng.randint(1, 4)):
                payload[rng.randrange(len(payload))] = rng.randrange(256)
            if rng.random() < 0.3:
                payload = payload[:rng.randint(0, len(payload))]
            i = rng.randrange(len(connections))
            try:
                connections[i].sendall(kwire.frame(bytes(payload)))
            except OSError:  # closed by the broker after an earlier frame
                connections[i].close()
                connections[i] = kwire.connect(raw_broker.bootstrap)
    finally:
        for c in connections:
            c.close()
    assert_alive(raw_broker)
    with kwire.connect(raw_broker.bootstrap) as s:
        member, gen = join_alone(s, "after-mutations")
        assert kwire.heartbeat_v3(s, "after-mutations", gen, member) == kwire.NONE


def test_consumer_offsets_is_compacted_and_replays_after_kill9(broker_factory):
    """Commits that overwrite the same keys again and again make `__consumer_offsets` compact
    itself (live records re-appended, log start moved past the old ones); the latest offsets
    survive the compaction and a kill -9 with replay from the new log start."""
    broker = broker_factory(*NO_JOIN_DELAY, "--offsets-topic-partitions", "1")
    topic, group, partitions, rounds = helpers.topic_name("grp-compact"), helpers.topic_name("compact"), 100, 120
    with kwire.connect(broker.bootstrap) as s:
        assert kwire.create_topics_v1(s, [(topic, partitions)]) == {topic: (kwire.NONE, None)}
        for r in range(rounds):
            # Generation -1 and no member id: a commit from outside group management.
            errors = kwire.offset_commit_v7(s, group, -1, "", {(topic, p): (r * 1000 + p, f"m{r}") for p in range(partitions)})
            assert set(errors.values()) == {kwire.NONE}, errors
        # 12,000 records for 100 live keys: past the compaction threshold (2 x live + 10,000).
        start = lambda: kwire.list_offsets_v1(s, kwire.CONSUMER_OFFSETS_TOPIC, [0], timestamp=-2)[0][1]
        end = kwire.list_offsets_v1(s, kwire.CONSUMER_OFFSETS_TOPIC, [0])[0][1]
        assert end >= rounds * partitions
        helpers.wait_for(lambda: start() >= end, 15, lambda: f"__consumer_offsets to be compacted (start {start()}, end {end})")
        expected = {(topic, p): ((rounds - 1) * 1000 + p, f"m{rounds - 1}", kwire.NONE) for p in range(partitions)}
        assert kwire.offset_fetch_v5(s, group) == (kwire.NONE, expected)
    broker.kill9()
    broker.start()
    with kwire.connect(broker.bootstrap) as s:
        assert kwire.offset_fetch_v5(s, group) == (kwire.NONE, expected), "after kill -9 and replay"
        # Still writable after the restart, and still readable.
        assert kwire.offset_commit_v7(s, group, -1, "", {(topic, 0): (7, None)}) == {(topic, 0): kwire.NONE}
        assert kwire.offset_fetch_v5(s, group, {topic: [0]})[1][(topic, 0)][0] == 7
