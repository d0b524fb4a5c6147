"""A cluster of real `ringtail serve` processes on 127.0.0.1 (three voters, `--shards 1` each,
pinned to the CPUs in turn): formation, placement over the brokers, clients bootstrapping from
any node, consumer groups over partitions led by every broker, a broker-only node joining,
and DescribeQuorum."""

import json
import subprocess
import time

from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import NewTopic
from kafka import KafkaAdminClient, KafkaConsumer

import kwire
from conftest import port_accepts, ringtail_bin
from helpers import admin, consume_all, consumer, produce_numbered, topic_name


def cluster_status(bootstrap: str) -> dict:
    out = subprocess.run([str(ringtail_bin()), "cluster", "status", "--bootstrap", bootstrap, "--json"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def leaders_of(bootstrap: str, topic: str) -> dict[int, int]:
    """Partition -> leader node, from the Metadata `bootstrap` answers."""
    md = admin(bootstrap).list_topics(topic, timeout=10)
    return {p.id: p.leader for p in md.topics[topic].partitions.values()}


def create(bootstrap: str, topic: str, partitions: int, factor: int = 1) -> None:
    client = admin(bootstrap)  # must outlive the future
    for f in client.create_topics([NewTopic(topic, partitions, factor)], request_timeout=30).values():
        f.result(timeout=30)


def test_three_nodes_form_a_cluster_and_spread_a_topic_over_all_brokers(cluster_factory):
    cluster = cluster_factory(voters=3)
    n1, n2, n3 = (cluster.nodes[i] for i in (1, 2, 3))

    # kcat, confluent-kafka and kafka-python see the three brokers from any node.
    out = subprocess.run(["kcat", "-b", n2.bootstrap, "-L", "-m", "10"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert " 3 brokers:" in out.stdout, out.stdout
    for b in (n1, n2, n3):
        assert f"at {b.bootstrap}" in out.stdout, out.stdout
    assert cluster.brokers_seen(n3) == {1, 2, 3}
    kp_admin = KafkaAdminClient(bootstrap_servers=n1.bootstrap, request_timeout_ms=10000)
    try:
        described = kp_admin.describe_cluster()
        assert sorted(b["broker_id"] for b in described["brokers"]) == [1, 2, 3], described
        assert described["cluster_id"], described
        # kafka-python's DescribeQuorum (KIP-853 version): three voters, one leader.
        quorum = kp_admin.describe_metadata_quorum()
        partition = quorum["topics"][0]["partitions"][0]
        assert partition["error"] is None, quorum
        assert partition["leader_id"] in (1, 2, 3), quorum
        assert sorted(v["replica_id"] for v in partition["current_voters"]) == [1, 2, 3], quorum
        assert sorted(n["node_id"] for n in quorum.get("nodes", [])) in ([], [1, 2, 3]), quorum
    finally:
        kp_admin.close()

    # 12 partitions land 4 per broker; a replication factor above the brokers is refused, saying why.
    topic = topic_name("spread")
    create(n1.bootstrap, topic, 12)
    leaders = cluster.wait_for("every broker to know the topic", lambda: leaders_of(n3.bootstrap, topic))
    per_broker = {n: list(leaders.values()).count(n) for n in (1, 2, 3)}
    assert per_broker == {1: 4, 2: 4, 3: 4}, leaders
    try:
        create(n2.bootstrap, topic_name("rf4"), 3, factor=4)
        raise AssertionError("replication factor 4 was accepted with 3 brokers")
    except KafkaException as e:
        assert e.args[0].name() == "INVALID_REPLICATION_FACTOR", e
        assert "3 unfenced brokers" in e.args[0].str(), e

    # A partition sent to a broker that does not lead it: NOT_LEADER_OR_FOLLOWER (6), and the
    # client library moves on by itself (below).
    p_led_by_1 = next(p for p, n in leaders.items() if n == 1)
    with kwire.connect(n2.bootstrap) as sock:
        error, _, _ = kwire.produce_v8(sock, topic, p_led_by_1, kwire.record_batch([b"x"]))
    assert error == 6, error

    # Produce through one node, consume through another: every record, in order per partition.
    sent = produce_numbered(n3.bootstrap, topic, 1200, 12)
    got = consume_all(n2.bootstrap, topic, 12)
    assert sum(len(v) for v in got.values()) == 1200
    for p, msgs in got.items():
        numbers = [int(m.value()) for m in msgs]
        assert numbers == sorted(numbers), f"partition {p} out of order"
    assert {m.value() for msgs in got.values() for m in msgs} == set(sent.values())

    # The quorum: node 1..3 vote, one leads; the high watermark (the next entry of the quorum's
    # log) is past the entries so far and no voter's log end is beyond it plus what is in flight.
    quorum = cluster.quorum()
    assert quorum["leader"] in (1, 2, 3), quorum
    assert sorted(v["id"] for v in quorum["voters"]) == [1, 2, 3], quorum
    assert quorum["high_watermark"] >= 3, quorum
    leader = next(v for v in quorum["voters"] if v["id"] == quorum["leader"])
    assert leader["log_end"] >= quorum["high_watermark"], quorum

    # `ringtail cluster status`, as JSON and as a table.
    status = cluster_status(n2.bootstrap)
    assert status["active_controller"] == quorum["leader"], status
    assert [n["node_id"] for n in status["nodes"]] == [1, 2, 3], status
    for n in status["nodes"]:
        assert n["roles"] == ["controller", "broker"] and not n["fenced"] and n["log_end"] > 0, status
    # The topic and __consumer_offsets (the consumers above asked for their coordinator).
    assert sum(n["partitions_led"] for n in status["nodes"]) >= 12 and status["offline_partitions"] == 0, status
    table = subprocess.run([str(ringtail_bin()), "cluster", "status", "--bootstrap", n1.bootstrap],
                           capture_output=True, text=True, timeout=30)
    assert table.returncode == 0, table.stderr
    assert f"active controller: {quorum['leader']}" in table.stdout, table.stdout
    assert n3.bootstrap in table.stdout, table.stdout


def test_a_consumer_group_spans_partitions_led_by_every_broker(cluster_factory):
    cluster = cluster_factory(voters=3)
    topic = topic_name("group")
    create(cluster.nodes[1].bootstrap, topic, 6)
    leaders = cluster.wait_for("the topic's leaders", lambda: leaders_of(cluster.nodes[2].bootstrap, topic))
    assert set(leaders.values()) == {1, 2, 3}, leaders
    produce_numbered(cluster.nodes[2].bootstrap, topic, 600, 6)

    group = topic_name("g")
    members = [consumer(cluster.nodes[i].bootstrap, **{"group.id": group, "session.timeout.ms": 10000,
                                                       "auto.offset.reset": "earliest",
                                                       "enable.auto.offset.store": True})
               for i in (1, 2, 3)]
    try:
        for m in members:
            m.subscribe([topic])
        seen: dict[int, set[bytes]] = {}
        owners: dict[int, set[int]] = {}
        deadline = time.monotonic() + 60
        while sum(len(v) for v in seen.values()) < 600 and time.monotonic() < deadline:
            for i, m in enumerate(members):
                msg = m.poll(0.2)
                if msg is None or msg.error():
                    continue
                seen.setdefault(msg.partition(), set()).add(msg.value())
                owners.setdefault(i, set()).add(msg.partition())
        assert sum(len(v) for v in seen.values()) == 600, {p: len(v) for p, v in seen.items()}
        assert len(owners) == 3, f"every member got partitions: {owners}"
        for m in members:
            m.commit(asynchronous=False)
        committed = members[0].committed([TopicPartition(topic, p) for p in range(6)], timeout=10)
        assert sum(tp.offset for tp in committed if tp.offset >= 0) == 600, committed
    finally:
        for m in members:
            m.close()

    # The group's coordinator is the leader of its __consumer_offsets partition; kafka-python
    # finds it from any node and reads the committed offsets.
    kc = KafkaConsumer(bootstrap_servers=cluster.nodes[3].bootstrap, group_id=group, enable_auto_commit=False)
    try:
        offsets = {p: kc.committed(__import__("kafka").TopicPartition(topic, p)) for p in range(6)}
        assert sum(offsets.values()) == 600, offsets
    finally:
        kc.close()


def test_a_broker_only_node_joins_and_takes_partitions_of_new_topics(cluster_factory):
    cluster = cluster_factory(voters=3)
    first = topic_name("before")
    create(cluster.nodes[1].bootstrap, first, 6)
    four = cluster.add(4, roles="broker", extra=["--rack", "rack-x"])
    four.start()
    cluster.wait_brokers({1, 2, 3, 4})
    md = admin(cluster.nodes[2].bootstrap).list_topics(timeout=10)
    kp_admin = KafkaAdminClient(bootstrap_servers=cluster.nodes[1].bootstrap, request_timeout_ms=10000)
    try:
        racks = {b["broker_id"]: b["rack"] for b in kp_admin.describe_cluster()["brokers"]}
    finally:
        kp_admin.close()
    assert racks[4] == "rack-x" and racks[1] is None, racks
    assert sorted(md.brokers) == [1, 2, 3, 4]
    # Existing partitions stay where they are (Kafka's behaviour); new topics use node 4 too.
    assert 4 not in leaders_of(four.bootstrap, first).values()
    later = topic_name("after")
    create(four.bootstrap, later, 8)
    leaders = cluster.wait_for("the new topic's leaders", lambda: leaders_of(cluster.nodes[1].bootstrap, later))
    per_broker = {n: list(leaders.values()).count(n) for n in (1, 2, 3, 4)}
    assert per_broker[4] >= 2, per_broker
    sent = produce_numbered(cluster.nodes[2].bootstrap, later, 400, 8)
    got = consume_all(four.bootstrap, later, 8)
    assert {m.value() for msgs in got.values() for m in msgs} == set(sent.values())
    # Node 4 is no voter: the quorum lists it as neither voter nor observer of the vote.
    quorum = cluster.quorum()
    assert sorted(v["id"] for v in quorum["voters"]) == [1, 2, 3], quorum
    assert kwire.describe_quorum_v0(four.bootstrap)["leader"] == quorum["leader"]


def test_a_dedicated_controller_forms_the_quorum_votes_and_serves_no_clients(cluster_factory):
    # Node 1 is controller only (Kafka's dedicated controller): it forms the quorum as the
    # lowest voter, records the cluster id it committed, is no broker and has no Kafka port.
    cluster = cluster_factory(voters=3, controllers_only=(1,))
    ctl = cluster.nodes[1]
    assert not port_accepts(ctl.port)
    brokers = cluster.nodes[2].bootstrap
    assert cluster.brokers_seen(cluster.nodes[2]) == {2, 3}
    quorum = cluster.quorum()
    assert sorted(v["id"] for v in quorum["voters"]) == [1, 2, 3], quorum
    status = cluster_status(brokers)
    cluster_id = status["cluster_id"]
    assert cluster_id and f"cluster.id={cluster_id}" in (ctl.data_dir / "meta.properties").read_text()
    topic = topic_name("dedicated")
    create(brokers, topic, 4)
    assert sorted(set(leaders_of(brokers, topic).values())) == [2, 3]
    sent = produce_numbered(brokers, topic, 200, 4)
    # The dedicated controller killed: the quorum goes on with the other two, and it rejoins.
    ctl.kill9()
    create(cluster.nodes[3].bootstrap, topic_name("without-it"), 2)
    committed = cluster.quorum()["high_watermark"]
    ctl.start()
    cluster.wait_for("the dedicated controller to catch up with what was committed without it",
                     lambda: [v["log_end"] for v in cluster.quorum()["voters"] if v["id"] == 1][0] >= committed)
    got = consume_all(cluster.nodes[3].bootstrap, topic, 4)
    assert {m.value() for msgs in got.values() for m in msgs} == set(sent.values())
    # Its /ready answers like a broker's.
    assert ctl.is_ready()
