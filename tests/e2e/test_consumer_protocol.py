"""The consumer group protocol of KIP-848 (group.protocol=consumer) with confluent-kafka against
the real binary: the broker assigns partitions, members reconcile incrementally, and members that
keep their partitions are never asked to give them up when another one leaves or dies."""

import time

from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient

import helpers
import kwire
from helpers import create_topic, produce_numbered, topic_name
from test_groups import (group_members, processed, ringtail_group_json, summaries,  # noqa: F401 (fixture)
                         wait_committed_to_end, wait_consumed)

PARTITIONS = 6
# Fast heartbeats and a short session so a killed member's partitions move within seconds.
FAST_GROUPS = ("--group-consumer-heartbeat-interval-ms", "500", "--group-consumer-session-timeout-ms", "6000",
               "--group-initial-rebalance-delay-ms", "0")
SETTLE_TIMEOUT_S = 40.0

API_CONSUMER_GROUP_HEARTBEAT = 68
FENCED_MEMBER_EPOCH = 110
UNSUPPORTED_ASSIGNOR = 112
INVALID_REQUEST = 42
INVALID_REGULAR_EXPRESSION = 128
GROUP_ID_NOT_FOUND = 69


def wait_split(members, partitions: int, timeout_s: float = SETTLE_TIMEOUT_S) -> dict[str, set[int]]:
    """Until each partition is held by exactly one member and the shares differ by at most one."""
    def settled():
        for m in members:
            m.refresh()
            m.check_running()
        held = {m.name: m.assignment for m in members}
        sizes = [len(s) for s in held.values()]
        every = sorted(p for s in held.values() for p in s)
        if every == list(range(partitions)) and max(sizes) - min(sizes) <= 1:
            return held
        return None

    return helpers.wait_for(settled, timeout_s, lambda: f"an even split of {partitions} partitions:\n"
                            + summaries(members), interval_s=0.2)


def revoked_partitions(member, since: float) -> set[int]:
    """Partitions the member was asked to give up (or lost) after `since` (time.monotonic())."""
    out = set()
    for kind, t, detail in member.refresh().events:
        if t > since and kind in ("revoked", "lost") and detail != "-":
            out |= {int(p) for p in detail.split(",")}
    return out


def test_members_reconcile_incrementally_and_offsets_survive_a_restart(broker_factory, group_members):
    broker = broker_factory(*FAST_GROUPS)
    topic = topic_name("kip848")
    group = topic_name("g848")
    create_topic(broker.bootstrap, topic, PARTITIONS)
    produced = produce_numbered(broker.bootstrap, topic, 600, PARTITIONS)

    members = [group_members(broker.bootstrap, group, topic, name, protocol="consumer") for name in ("a", "b", "c")]
    wait_split(members, PARTITIONS)
    wait_consumed(members, produced)
    a, b, c = members
    before = {m.name: set(m.assignment) for m in members}
    settled_at = time.monotonic()

    # `ringtail group describe` shows the members' epochs, current and target assignments.
    described = helpers.wait_for(lambda: (lambda d: d if d["state"] == "Stable" else None)(
        ringtail_group_json(broker.bootstrap, "describe", group)), 15, "the group Stable in `ringtail group describe`")
    assert described["group_type"] == "consumer" and described["protocol"] == "uniform", described
    assert described["group_epoch"] == described["assignment_epoch"] > 0, described
    shown = {m["client_id"]: m for m in described["members"]}
    assert sorted(shown) == ["a", "b", "c"], shown
    for name, m in shown.items():
        current = {p for t in m["assignment"] for p in t["partitions"] if t["topic"] == topic}
        target = {p for t in m["target_assignment"] for p in t["partitions"] if t["topic"] == topic}
        assert current == target == before[name] and m["member_epoch"] == described["group_epoch"], (name, m)
    assert {o["partition"]: o["member_id"] for o in described["offsets"]} == {
        p: shown[name]["member_id"] for name, ps in before.items() for p in ps}

    # c leaves cleanly: a and b keep what they had and take c's share; nothing of theirs is revoked.
    c.stop()
    held = wait_split([a, b], PARTITIONS)
    for m in (a, b):
        assert before[m.name] <= held[m.name], f"{m.name} lost a partition: {before[m.name]} -> {held[m.name]}"
        assert not revoked_partitions(m, settled_at), f"{m.name} was asked to revoke {revoked_partitions(m, settled_at)}"
    more = produce_numbered(broker.bootstrap, topic, 600, PARTITIONS, first=600)
    wait_consumed([a, b, c], {**produced, **more})

    # b is killed once its work is committed: a takes everything after b's session ends, and
    # again gives nothing up.
    wait_committed_to_end(broker.bootstrap, group, topic, PARTITIONS)
    killed_at = time.monotonic()
    b.kill9()
    held = wait_split([a], PARTITIONS)
    assert held["a"] == set(range(PARTITIONS))
    assert not revoked_partitions(a, killed_at), f"a was asked to revoke {revoked_partitions(a, killed_at)}"
    last = produce_numbered(broker.bootstrap, topic, 600, PARTITIONS, first=1200)
    everything = {**produced, **more, **last}
    wait_consumed([a, b, c], everything)

    # Every message processed once by the group.
    counts = processed([a, b, c])
    assert set(counts) == set(everything)
    twice = {k: n for k, n in counts.items() if n > 1}
    assert not twice, f"processed more than once: {sorted(twice)[:10]}"

    # The group is listed and described as a consumer-protocol group.
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    listed = {g.group_id: g for g in admin.list_consumer_groups().result(timeout=30).valid}
    assert group in listed and str(listed[group].type).endswith("CONSUMER"), listed.get(group)
    desc = admin.describe_consumer_groups([group])[group].result(timeout=30)
    assert [m.client_id for m in desc.members] == ["a"], desc.members
    assert sorted(tp.partition for tp in desc.members[0].assignment.topic_partitions) == list(range(PARTITIONS))

    # Committed offsets and the group survive a restart of the broker.
    wait_committed_to_end(broker.bootstrap, group, topic, PARTITIONS)
    a.stop()
    committed = helpers.committed_offsets(broker.bootstrap, group)
    epoch = ringtail_group_json(broker.bootstrap, "describe", group)["group_epoch"]
    broker.restart()
    assert helpers.committed_offsets(broker.bootstrap, group) == committed
    def loaded():
        try:
            d = ringtail_group_json(broker.bootstrap, "describe", group)
        except AssertionError:  # the coordinator still loading
            return None
        return d if d.get("group_type") == "consumer" else None

    after = helpers.wait_for(loaded, 15, "the group loaded after the restart", interval_s=0.3)
    assert after["group_epoch"] == epoch and after["state"] == "Empty", after


def test_a_classic_and_a_consumer_group_each_read_every_message(broker_factory):
    broker = broker_factory(*FAST_GROUPS)
    topic = topic_name("side")
    create_topic(broker.bootstrap, topic, 3)
    produced = produce_numbered(broker.bootstrap, topic, 900, 3)
    groups = {protocol: topic_name(protocol) for protocol in ("classic", "consumer")}
    consumers = {}
    for protocol, group in groups.items():
        consumers[protocol] = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                                        "auto.offset.reset": "earliest", "enable.partition.eof": False,
                                        "group.protocol": protocol})
        consumers[protocol].subscribe([topic])
    seen = {protocol: {} for protocol in groups}
    deadline = time.monotonic() + 60
    more = {}
    # Both read at once, while more is produced.
    while any(len(seen[p]) < len(produced) + len(more) for p in groups) and time.monotonic() < deadline:
        for protocol, c in consumers.items():
            m = c.poll(0.1)
            if m is not None:
                assert m.error() is None, m.error()
                seen[protocol][(m.partition(), m.offset())] = m.value()
        if not more and all(seen[p] for p in groups):
            more = produce_numbered(broker.bootstrap, topic, 300, 3, first=900)
    for c in consumers.values():
        c.close()
    for protocol in groups:
        assert seen[protocol] == {**produced, **more}, f"{protocol} group read {len(seen[protocol])} of {len(produced) + len(more)}"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})  # must outlive its futures
    types = {g.group_id: str(g.type) for g in admin.list_consumer_groups().result(timeout=30).valid}
    assert types.get(groups["classic"], "").endswith("CLASSIC") and types.get(groups["consumer"], "").endswith("CONSUMER"), (types, groups)


def cgh_body(group: str, member: str, epoch: int, *, rebalance_timeout_ms: int = 30000,
             topics: list[str] | None = None, regex: str | None = None, assignor: str | None = None,
             owned: list | None = None) -> bytes:
    """ConsumerGroupHeartbeat v1 (flexible) body."""
    def cstr(s):
        return kwire.uvarint(0) if s is None else kwire.compact_string(s)
    body = cstr(group) + cstr(member) + kwire.i32(epoch) + cstr(None) + cstr(None) + kwire.i32(rebalance_timeout_ms)
    body += kwire.uvarint(0) if topics is None else kwire.uvarint(len(topics) + 1) + b"".join(cstr(t) for t in topics)
    body += cstr(regex) + cstr(assignor)
    body += kwire.uvarint(0) if owned is None else kwire.uvarint(len(owned) + 1)
    return body + b"\0"


def cgh(sock, body: bytes, correlation_id: int = 5) -> dict:
    head = kwire.i16(API_CONSUMER_GROUP_HEARTBEAT) + kwire.i16(1) + kwire.i32(correlation_id) + kwire.string("e2e") + b"\0"
    sock.sendall(kwire.frame(head + body))
    resp = kwire.recv_frame(sock)
    assert resp is not None, "the broker closed the connection instead of answering"
    r = kwire.Reader(resp)
    assert r.i32() == correlation_id
    kwire.skip_tagged(r)
    r.i32()  # throttle
    error = r.i16()
    n = kwire.read_uvarint(r)
    message = r.take(n - 1).decode() if n else None
    n = kwire.read_uvarint(r)
    member = r.take(n - 1).decode() if n else None
    return {"error": error, "message": message, "member_id": member, "epoch": r.i32(), "interval": r.i32()}


def test_hostile_consumer_group_heartbeats_get_kafkas_errors(broker_factory):
    broker = broker_factory(*FAST_GROUPS)
    topic = topic_name("hostile848")
    create_topic(broker.bootstrap, topic, 2)
    group = topic_name("hg")
    coordinator = broker.bootstrap  # one broker: it coordinates every group
    with kwire.connect(coordinator) as sock:
        joined = helpers.wait_for(lambda: (lambda r: r if r["error"] == 0 else None)(
            cgh(sock, cgh_body(group, "m-1", 0, topics=[topic], owned=[]))), 30, "the join to be answered")
        assert joined["epoch"] > 0 and joined["interval"] == 500, joined
        # An epoch ahead of the member's: fenced. An unknown member: unknown.
        assert cgh(sock, cgh_body(group, "m-1", joined["epoch"] + 7))["error"] == FENCED_MEMBER_EPOCH
        assert cgh(sock, cgh_body(group, "nobody", 3))["error"] == kwire.UNKNOWN_MEMBER_ID
        # Malformed joins: no member id (v1), no rebalance timeout, no subscription, owned partitions.
        assert cgh(sock, cgh_body(group, "", 0, topics=[topic], owned=[]))["error"] == INVALID_REQUEST
        assert cgh(sock, cgh_body(group, "m-2", 0, rebalance_timeout_ms=-1, topics=[topic], owned=[]))["error"] == INVALID_REQUEST
        assert cgh(sock, cgh_body(group, "m-2", 0, owned=[]))["error"] == INVALID_REQUEST
        assert cgh(sock, cgh_body(group, "m-2", -3))["error"] == INVALID_REQUEST
        assert cgh(sock, cgh_body("", "m-2", 0, topics=[topic], owned=[]))["error"] == kwire.INVALID_GROUP_ID
        # A huge subscription, a bad regex, an unknown assignor.
        huge = [f"t{i:06d}" for i in range(20_000)]
        answer = cgh(sock, cgh_body(group, "m-2", 0, topics=huge, owned=[]))
        assert answer["error"] == INVALID_REQUEST and "subscribed topic names" in answer["message"], answer
        assert cgh(sock, cgh_body(group, "m-2", 0, regex="(unclosed", owned=[]))["error"] == INVALID_REGULAR_EXPRESSION
        assert cgh(sock, cgh_body(group, "m-2", 0, regex="a" * 5000, owned=[]))["error"] == INVALID_REGULAR_EXPRESSION
        assert cgh(sock, cgh_body(group, "m-2", 0, topics=[topic], assignor="sticky", owned=[]))["error"] == UNSUPPORTED_ASSIGNOR
        # A truncated request closes the connection; the broker stays up.
        head = kwire.i16(API_CONSUMER_GROUP_HEARTBEAT) + kwire.i16(1) + kwire.i32(9) + kwire.string("e2e") + b"\0"
        sock.sendall(kwire.frame(head + cgh_body(group, "m-1", 1)[:7]))
        assert kwire.closed_by_peer(sock)
    assert broker.is_running() and kwire.broker_answers(broker.bootstrap)
    # The classic API on a consumer group with members: refused, the group untouched.
    with kwire.connect(coordinator) as sock:
        still = cgh(sock, cgh_body(group, "m-1", joined["epoch"]))
        assert still["error"] == 0 and still["epoch"] == joined["epoch"], still


def test_group_configs_set_one_groups_session_and_heartbeat(broker_factory):
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

    broker = broker_factory(*FAST_GROUPS)
    topic = topic_name("cfg848")
    create_topic(broker.bootstrap, topic, 2)
    group, other = topic_name("cfg"), topic_name("plain")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})  # must outlive its futures

    def alter(entries: dict[str, str]):
        res = ConfigResource(ResourceType.GROUP, group, incremental_configs=[
            ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in entries.items()])
        return admin.incremental_alter_configs([res])[res].result(timeout=30)

    alter({"consumer.heartbeat.interval.ms": "1500", "consumer.session.timeout.ms": "9000"})
    res = ConfigResource(ResourceType.GROUP, group)
    described = admin.describe_configs([res])[res].result(timeout=30)
    assert described["consumer.heartbeat.interval.ms"].value == "1500", described
    assert described["consumer.session.timeout.ms"].value == "9000", described
    # A heartbeat interval not below the session timeout, or an unknown key, is refused.
    for bad in ({"consumer.heartbeat.interval.ms": "9000"}, {"consumer.assignor": "x"}):
        try:
            alter(bad)
            raise AssertionError(f"{bad} was accepted")
        except KafkaException as e:
            assert e.args[0].code() in (40, 42), e  # INVALID_CONFIG, INVALID_REQUEST
    # Members of the group are told its interval; another group keeps the broker's.
    with kwire.connect(broker.bootstrap) as sock:
        for g, interval in ((group, 1500), (other, 500)):
            answer = helpers.wait_for(lambda: (lambda r: r if r["error"] == 0 else None)(
                cgh(sock, cgh_body(g, f"m-{g}", 0, topics=[topic], owned=[]))), 30, f"a join of {g}")
            assert answer["interval"] == interval, (g, answer)
    # The configs are metadata: they survive a restart.
    broker.restart()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    described = admin.describe_configs([res])[res].result(timeout=30)
    assert described["consumer.session.timeout.ms"].value == "9000", described


def read_new(bootstrap: str, group: str, topic: str, protocol: str, want: int, timeout_s: float = 60) -> list[int]:
    """Joins `group` with `protocol`, reads until `want` messages came, commits and leaves; the
    values read (numbers)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "group.protocol": protocol,
                  "auto.offset.reset": "earliest", "enable.partition.eof": False, "enable.auto.commit": False})
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + timeout_s
    while len(got) < want and time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is not None and m.error() is None:
            got.append(int(m.value()))
    c.commit(asynchronous=False)
    c.close()
    return sorted(got)


def test_an_empty_group_moves_between_the_classic_and_consumer_protocols(broker_factory):
    broker = broker_factory(*FAST_GROUPS)
    topic = topic_name("move")
    group = topic_name("moving")
    create_topic(broker.bootstrap, topic, 3)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})  # must outlive its futures

    def group_type():
        return {g.group_id: str(g.type) for g in admin.list_consumer_groups().result(timeout=30).valid}[group]

    first = 0
    for protocol in ("classic", "consumer", "classic"):
        produce_numbered(broker.bootstrap, topic, 300, 3, first=first)
        # Each generation of the group starts where the previous one committed.
        assert read_new(broker.bootstrap, group, topic, protocol, 300) == list(range(first, first + 300)), protocol
        assert group_type().endswith(protocol.upper()), (protocol, group_type())
        first += 300


def test_a_regular_expression_subscription_is_resolved_by_the_broker(broker_factory):
    broker = broker_factory(*FAST_GROUPS)
    prefix = topic_name("re")
    for name in ("a", "b"):
        create_topic(broker.bootstrap, f"{prefix}-{name}", 2)
    create_topic(broker.bootstrap, topic_name("other"), 2)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": topic_name("regex"),
                  "group.protocol": "consumer", "auto.offset.reset": "earliest", "enable.partition.eof": False,
                  "topic.metadata.refresh.interval.ms": 1000})
    assigned: set[tuple[str, int]] = set()
    c.subscribe([f"^{prefix}-.*"], on_assign=lambda _, ps: assigned.update((p.topic, p.partition) for p in ps))

    def holds(expected):
        c.poll(0.2)
        return assigned == expected

    try:
        helpers.wait_for(lambda: holds({(f"{prefix}-{n}", p) for n in ("a", "b") for p in (0, 1)}), 30,
                         lambda: f"both matching topics assigned, have {sorted(assigned)}")
        # A topic created later that matches is assigned too.
        create_topic(broker.bootstrap, f"{prefix}-c", 1)
        helpers.wait_for(lambda: holds({(f"{prefix}-{n}", p) for n in ("a", "b") for p in (0, 1)} | {(f"{prefix}-c", 0)}),
                         30, lambda: f"the new topic assigned too, have {sorted(assigned)}")
    finally:
        c.close()
