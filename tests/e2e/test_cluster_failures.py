"""A cluster losing nodes: the active controller killed (kill -9), paused (SIGSTOP past the
election timeout) or cut off by a network partition, a broker killed, two of three controllers down, the whole cluster
restarted; and a single node's data directory becoming a cluster's first node. Real
`ringtail serve` processes on 127.0.0.1, stopped by pid."""

import os
import shutil
import signal
import time

from confluent_kafka import KafkaException
from confluent_kafka.admin import NewTopic

from helpers import admin, consume_all, produce_numbered, topic_name
from test_disk_full import fill_file_system, small_fs  # noqa: F401 - small_fs is a fixture


def leaders_of(bootstrap: str, topic: str) -> dict[int, int]:
    md = admin(bootstrap).list_topics(topic, timeout=10)
    t = md.topics[topic]
    assert t.error is None, t.error
    return {p.id: p.leader for p in t.partitions.values()}


def try_create(bootstrap: str, topic: str, partitions: int, timeout_s: float = 20) -> str | None:
    """Creates a topic; None on success, else the error's name."""
    client = admin(bootstrap)  # must outlive the future
    try:
        f = client.create_topics([NewTopic(topic, partitions, 1)], request_timeout=timeout_s)[topic]
        f.result(timeout=timeout_s + 5)
        return None
    except KafkaException as e:
        return f"{e.args[0].name()}: {e.args[0].str()}"


def try_delete(bootstrap: str, topic: str, timeout_s: float = 20) -> str | None:
    client = admin(bootstrap)
    try:
        client.delete_topics([topic], request_timeout=timeout_s)[topic].result(timeout=timeout_s + 5)
        return None
    except KafkaException as e:
        return f"{e.args[0].name()}: {e.args[0].str()}"


def others(cluster, node: int):
    return [b for i, b in cluster.nodes.items() if i != node and b.is_running()]


def test_killing_the_active_controller_hands_over_and_the_node_rejoins(cluster_factory):
    cluster = cluster_factory(voters=3)
    old = cluster.active_controller()
    survivor = others(cluster, old)[0]
    cluster.nodes[old].kill9()
    # Within seconds another controller takes over and metadata changes go on.
    started = time.monotonic()
    topic = topic_name("after-kill")
    cluster.wait_for("a topic to be created after the kill", lambda: try_create(survivor.bootstrap, topic, 4) is None,
                     timeout_s=30, interval_s=0.5)
    took = time.monotonic() - started
    assert took < 20, f"creating a topic took {took:.1f} s after the controller died"
    new = cluster.wait_for("a new active controller", lambda: [
        q for q in [__import__("kwire").describe_quorum_v0(survivor.bootstrap)["leader"]] if q not in (-1, old)])[0]
    assert new != old
    assert try_delete(survivor.bootstrap, topic) is None
    # The killed node comes back, catches up, and is a broker again.
    cluster.nodes[old].start()
    cluster.wait_brokers({1, 2, 3})
    q = cluster.quorum()
    assert sorted(v["id"] for v in q["voters"]) == [1, 2, 3], q
    topic2 = topic_name("after-return")
    assert try_create(cluster.nodes[old].bootstrap, topic2, 6) is None
    leaders = cluster.wait_for("the new topic's leaders", lambda: leaders_of(cluster.nodes[old].bootstrap, topic2))
    assert set(leaders.values()) == {1, 2, 3}, leaders


def test_a_wiped_node_rejoins_with_the_cluster_id_and_catches_up_with_the_metadata(cluster_factory):
    # Node 3 loses its whole data directory (a replaced disk): started again with the same
    # flags, it adopts the cluster id from the quorum, its controller catches up from the
    # others, and its broker registers anew (its old partitions come back empty: replication
    # factor 1 has no other copy).
    cluster = cluster_factory(voters=3)
    topics = [topic_name(f"before-wipe-{i}") for i in range(3)]
    for t in topics:
        assert try_create(cluster.nodes[1].bootstrap, t, 3) is None
    wiped = cluster.nodes[3]
    cluster_id = next(line for line in (wiped.data_dir / "meta.properties").read_text().splitlines()
                      if line.startswith("cluster.id="))
    wiped.kill9()
    shutil.rmtree(wiped.data_dir)
    committed = cluster.quorum()["high_watermark"]
    wiped.start()
    cluster.wait_brokers({1, 2, 3})
    assert cluster_id in (wiped.data_dir / "meta.properties").read_text()
    cluster.wait_for("the wiped controller to hold the committed metadata again",
                     lambda: [v["log_end"] for v in cluster.quorum()["voters"] if v["id"] == 3][0] >= committed)
    assert set(topics) <= set(admin(wiped.bootstrap).list_topics(timeout=10).topics)
    assert try_create(wiped.bootstrap, topic_name("after-wipe"), 3) is None


def test_pausing_the_active_controller_past_the_election_timeout_hands_over(cluster_factory):
    cluster = cluster_factory(voters=3)
    old = cluster.active_controller()
    paused = cluster.nodes[old]
    survivor = others(cluster, old)[0]
    os.kill(paused.pid, signal.SIGSTOP)
    try:
        topic = topic_name("paused")
        errors = []

        def created():
            # A try that timed out on the client may still have been committed.
            error = try_create(survivor.bootstrap, topic, 2)
            errors.append(error)
            return error is None or (len(errors) > 1 and error.startswith("TOPIC_ALREADY_EXISTS"))

        try:
            cluster.wait_for("a topic to be created while the controller is paused", created, timeout_s=30,
                             interval_s=0.5)
        except AssertionError as e:
            raise AssertionError(f"{e}; errors: {errors}") from None
        leader = __import__("kwire").describe_quorum_v0(survivor.bootstrap)["leader"]
        assert leader not in (-1, old), leader
    finally:
        os.kill(paused.pid, signal.SIGCONT)
    # The paused node learns it lost: one leader, and it is a broker again once it heartbeats.
    cluster.wait_brokers({1, 2, 3})
    assert try_create(paused.bootstrap, topic_name("resumed"), 3) is None


def test_a_partitioned_active_controller_is_replaced_its_broker_fenced_and_both_return_when_healed(cluster_factory):
    # Every controller link goes through a proxy (netfault.Links); cutting them isolates a node
    # from the quorum while its Kafka clients still reach it.
    cluster = cluster_factory(voters=3, links=True)
    topic = topic_name("split")
    assert try_create(cluster.nodes[1].bootstrap, topic, 6) is None
    sent = produce_numbered(cluster.nodes[1].bootstrap, topic, 600, 6)
    old = cluster.active_controller()
    cut_off = cluster.nodes[old]
    survivor = others(cluster, old)[0]
    mine = [p for p, n in leaders_of(survivor.bootstrap, topic).items() if n == old]
    assert mine
    cluster.links.isolate(old)
    try:
        # The majority elects another controller, fences the cut-off broker (its partitions
        # lose their leader) and keeps taking metadata changes.
        cluster.wait_for("another active controller on the majority side",
                         lambda: __import__("kwire").describe_quorum_v0(survivor.bootstrap)["leader"] not in (-1, old),
                         timeout_s=20)
        cluster.wait_for("the cut-off broker fenced", lambda: old not in cluster.brokers_seen(survivor), timeout_s=20)
        assert all(leaders_of(survivor.bootstrap, topic)[p] == -1 for p in mine)
        during = topic_name("during")
        cluster.wait_for("a topic created on the majority side",
                         lambda: (try_create(survivor.bootstrap, during, 2) or "TOPIC_ALREADY_EXISTS").startswith(
                             "TOPIC_ALREADY_EXISTS"),
                         timeout_s=40, interval_s=0.5)
        # The cut-off node cannot change metadata: a retriable error naming the cause.
        error = try_create(cut_off.bootstrap, topic_name("minority"), 1, timeout_s=10)
        assert error is not None and error.split(":")[0] in ("REQUEST_TIMED_OUT", "_TIMED_OUT", "NOT_CONTROLLER"), error
    finally:
        cluster.links.heal()
    # Healed: one controller, every broker unfenced, the cut-off node's partitions led by it
    # again with every record, and it learned the change made without it.
    cluster.wait_brokers({1, 2, 3})
    cluster.wait_for("the partitions to be led again",
                     lambda: all(leaders_of(survivor.bootstrap, topic)[p] == old for p in mine), timeout_s=20)
    cluster.wait_for("the cut-off node to describe the topic created without it",
                     lambda: during in admin(cut_off.bootstrap).list_topics(timeout=10).topics, timeout_s=20)
    leaders = {__import__("kwire").describe_quorum_v0(n.bootstrap)["leader"] for n in cluster.nodes.values()}
    assert len(leaders) == 1 and -1 not in leaders, leaders
    got = consume_all(cut_off.bootstrap, topic, 6)
    assert {m.value() for msgs in got.values() for m in msgs} == set(sent.values())


def test_a_node_whose_disk_fills_keeps_serving_and_catches_up_when_space_returns(small_fs, cluster_factory):
    # Node 3's data directory is on a small file system of its own, filled while the cluster
    # changes its metadata: its controller's Raft stops on the failed write and is started
    # again until there is space, its broker's metadata copy waits, and nothing stops the node.
    cluster = cluster_factory(voters=3, start=False)
    full = cluster.nodes[3]
    full.data_dir = small_fs / "data"
    cluster.start()
    cluster.wait_brokers({1, 2, 3})
    topic = topic_name("before-full")
    assert try_create(cluster.nodes[1].bootstrap, topic, 6) is None
    sent = produce_numbered(cluster.nodes[1].bootstrap, topic, 300, 6)
    filler = fill_file_system(small_fs)
    made = [topic_name(f"while-full-{i}") for i in range(4)]
    for t in made:
        cluster.wait_for(f"{t} created while node 3's disk is full",
                         lambda t=t: (try_create(cluster.nodes[1].bootstrap, t, 3) or "TOPIC_ALREADY_EXISTS").startswith(
                             "TOPIC_ALREADY_EXISTS"), timeout_s=40, interval_s=0.5)
    time.sleep(3)
    assert full.is_running(), full.log_tail()
    log = full.log_text()
    print("node 3 on a full disk:", [line.split("  ")[-1][:160] for line in log.splitlines()
                                     if "no space" in line or "Raft" in line][:6])
    filler.unlink()
    committed = cluster.quorum()["high_watermark"]
    cluster.wait_for("node 3's controller to catch up once space returned",
                     lambda: [v["log_end"] for v in cluster.quorum()["voters"] if v["id"] == 3][0] >= committed,
                     timeout_s=60)
    cluster.wait_for("node 3's broker to apply the topics made while its disk was full",
                     lambda: set(made) <= set(admin(full.bootstrap).list_topics(timeout=10).topics), timeout_s=60)
    got = consume_all(full.bootstrap, topic, 6)
    assert {m.value() for msgs in got.values() for m in msgs} == set(sent.values())
    assert full.is_running()


def test_a_killed_broker_is_fenced_its_partitions_go_offline_and_return_with_their_data(cluster_factory):
    cluster = cluster_factory(voters=3)
    topic = topic_name("fence")
    assert try_create(cluster.nodes[1].bootstrap, topic, 6) is None
    leaders = cluster.wait_for("the topic's leaders", lambda: leaders_of(cluster.nodes[1].bootstrap, topic))
    sent = produce_numbered(cluster.nodes[1].bootstrap, topic, 600, 6)
    victim = next(n for n in (3, 2, 1) if n != cluster.active_controller())
    mine = [p for p, n in leaders.items() if n == victim]
    assert mine, leaders
    cluster.nodes[victim].kill9()
    watcher = others(cluster, victim)[0]
    # Fenced within the session timeout (3 s) plus a heartbeat check: its partitions lose their leader.
    killed_at = time.monotonic()
    cluster.wait_for("the killed broker's partitions to have no leader",
                     lambda: all(leaders_of(watcher.bootstrap, topic)[p] == -1 for p in mine), timeout_s=15)
    assert time.monotonic() - killed_at < 12
    assert victim not in cluster.brokers_seen(watcher)
    from test_cluster import cluster_status
    status = cluster_status(watcher.bootstrap)
    assert [n["fenced"] for n in status["nodes"] if n["node_id"] == victim] == [True], status
    assert status["offline_partitions"] == len(mine), status
    # The other brokers' partitions are served throughout.
    alive = [p for p in range(6) if p not in mine]
    from confluent_kafka import TopicPartition
    from helpers import consumer
    c = consumer(watcher.bootstrap)
    try:
        hw = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1] for p in alive}
    finally:
        c.close()
    assert all(h == 100 for h in hw.values()), hw
    # Back: registered, unfenced, leading its partitions again with every record.
    cluster.nodes[victim].start()
    cluster.wait_brokers({1, 2, 3})
    cluster.wait_for("the partitions to be led again",
                     lambda: all(leaders_of(watcher.bootstrap, topic)[p] == victim for p in mine), timeout_s=20)
    got = consume_all(watcher.bootstrap, topic, 6)
    assert {m.value() for msgs in got.values() for m in msgs} == set(sent.values())


def test_two_of_three_controllers_down_brokers_serve_and_changes_fail_retriably(cluster_factory):
    cluster = cluster_factory(voters=3)
    topic = topic_name("minority")
    assert try_create(cluster.nodes[1].bootstrap, topic, 6) is None
    leaders = cluster.wait_for("the topic's leaders", lambda: leaders_of(cluster.nodes[1].bootstrap, topic))
    keep = 3
    for n in (1, 2):
        cluster.nodes[n].kill9()
    survivor = cluster.nodes[keep]
    mine = [p for p, n in leaders.items() if n == keep]
    assert mine, leaders
    # The surviving broker keeps serving what it leads: produce and consume its partitions.
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": survivor.bootstrap, "acks": "all", "enable.idempotence": False})
    delivered = []
    for i in range(100):
        p.produce(topic, value=b"m%d" % i, partition=mine[i % len(mine)],
                  on_delivery=lambda err, msg: delivered.append(err))
    assert p.flush(30) == 0
    assert all(e is None for e in delivered), delivered
    # Metadata changes fail with a retriable error that names the cause.
    error = try_create(survivor.bootstrap, topic_name("no-majority"), 1, timeout_s=25)
    assert error is not None and error.startswith("REQUEST_TIMED_OUT"), error
    assert "controller quorum" in error, error
    # One controller back: a majority again, changes go through.
    cluster.nodes[1].start()
    cluster.wait_for("a topic to be created with a majority back",
                     lambda: try_create(survivor.bootstrap, topic_name("majority"), 2) is None,
                     timeout_s=40, interval_s=1)


def test_the_whole_cluster_restarts_with_every_topic_config_offset_and_record(cluster_factory):
    cluster = cluster_factory(voters=3)
    topic = topic_name("restart")
    client = admin(cluster.nodes[1].bootstrap)
    client.create_topics([NewTopic(topic, 6, 1, config={"retention.ms": "86400000"})])[topic].result(timeout=30)
    sent = produce_numbered(cluster.nodes[2].bootstrap, topic, 900, 6)
    from helpers import consumer
    from confluent_kafka import TopicPartition
    group = topic_name("g")
    c = consumer(cluster.nodes[3].bootstrap, **{"group.id": group})
    c.assign([TopicPartition(topic, p) for p in range(6)])
    c.commit(offsets=[TopicPartition(topic, p, 100 + p) for p in range(6)], asynchronous=False)
    c.close()
    for b in cluster.nodes.values():
        b.stop_cleanly()
    cluster.start()
    cluster.wait_brokers({1, 2, 3})
    # A restarted broker leads nothing until its new registration is in its metadata and it is
    # unfenced (its old process's leadership is not resumed from its copy).
    got = cluster.wait_for("every partition readable", lambda: consume_all(cluster.nodes[1].bootstrap, topic, 6))
    assert {m.value() for msgs in got.values() for m in msgs} == set(sent.values())
    from confluent_kafka.admin import ConfigResource
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    client = admin(cluster.nodes[2].bootstrap)  # must outlive the future
    configs = client.describe_configs([res])[res].result(timeout=30)
    assert configs["retention.ms"].value == "86400000"
    c = consumer(cluster.nodes[2].bootstrap, **{"group.id": group})
    committed = cluster.wait_for("the committed offsets", lambda: c.committed(
        [TopicPartition(topic, p) for p in range(6)], timeout=10))
    c.close()
    assert [tp.offset for tp in committed] == [100 + p for p in range(6)], committed


def test_a_single_nodes_data_directory_becomes_the_first_node_of_a_cluster(broker_factory, cluster_factory):
    single = broker_factory("--node-id", "1", shards=1)
    topic = topic_name("solo")
    from helpers import create_topic
    create_topic(single.bootstrap, topic, 3)
    sent = produce_numbered(single.bootstrap, topic, 300, 3)
    import kwire
    with kwire.connect(single.bootstrap) as sock:
        code, single_pid, _ = kwire.init_producer_id_v1(sock)
    assert code == 0
    single.stop_cleanly()
    cluster = cluster_factory(voters=3, start=False)
    first = cluster.nodes[1]
    first.data_dir = single.data_dir
    cluster.start()
    cluster.wait_brokers({1, 2, 3})
    # The single node's topic is the cluster's, led by node 1, with every record; the cluster id
    # is the single node's.
    assert set(leaders_of(cluster.nodes[3].bootstrap, topic).values()) == {1}
    got = consume_all(cluster.nodes[2].bootstrap, topic, 3)
    assert {m.value() for msgs in got.values() for m in msgs} == set(sent.values())
    before = (single.data_dir / "meta.properties").read_text()
    for b in cluster.nodes.values():
        assert (b.data_dir / "meta.properties").read_text().split("cluster.id=")[1].split()[0] == \
            before.split("cluster.id=")[1].split()[0]
    # Producer ids handed out by the single node are never handed out again, and two brokers
    # never hand out the same one.
    pids = []
    for n in (1, 2, 3, 2):
        with kwire.connect(cluster.nodes[n].bootstrap) as sock:
            code, pid, _ = kwire.init_producer_id_v1(sock)
        assert code == 0, code
        pids.append(pid)
    assert min(pids) > single_pid and len(set(pids)) == len(pids), (single_pid, pids)
    assert try_create(cluster.nodes[2].bootstrap, topic_name("more"), 3) is None


def test_a_data_directory_of_the_release_before_metadata_records_becomes_a_clusters_first_node(cluster_factory):
    """The `topics.toml` fixture of test_upgrade.py, started as node 1 of a cluster: migrated,
    then proposed as the cluster's first metadata, with every record and committed offset."""
    import tarfile
    from pathlib import Path
    fixture = Path(__file__).resolve().parent / "fixtures" / "data-dir-v0.tar.gz"
    cluster = cluster_factory(voters=3, start=False)
    first = cluster.nodes[1]
    with tarfile.open(fixture) as tar:
        tar.extractall(first.workdir, filter="data")
    cluster.start()
    cluster.wait_brokers({1, 2, 3})
    import test_upgrade
    old = test_upgrade.old_metadata()
    assert set(leaders_of(cluster.nodes[2].bootstrap, "orders").values()) == {1}
    got = consume_all(cluster.nodes[3].bootstrap, "orders", 3)
    for p in range(3):
        assert [m.value() for m in got[p]] == [f"v{p}-{i}".encode() for i in range(100)], p
    from helpers import consumer
    from confluent_kafka import TopicPartition
    c = consumer(cluster.nodes[2].bootstrap, **{"group.id": "billing"})
    try:
        committed = cluster.wait_for("the old committed offsets", lambda: c.committed(
            [TopicPartition(t, p) for (t, p) in test_upgrade.COMMITTED], timeout=10))
    finally:
        c.close()
    assert {(x.topic, x.partition): x.offset for x in committed} == test_upgrade.COMMITTED
    for b in cluster.nodes.values():
        assert f"cluster.id={old['cluster_id']}" in (b.data_dir / "meta.properties").read_text()
