"""Partition reassignment on real `ringtail serve` processes, driven by kafka-python's admin
client (AlterPartitionReassignments, ListPartitionReassignments): a fourth broker joins, a
partition moves onto it (listed while the new replica catches up), a second move is cancelled
mid-way, and afterwards every acknowledged message is there once and every replica holds the
same batches."""

import os
import signal

from kafka import KafkaAdminClient
from kafka import TopicPartition as KPTopicPartition

from helpers import consume_all, topic_name
from test_replication import assert_replicas_identical, create, partitions_of, produce_idempotent, wait_isr


def reassign(bootstrap: str, moves: dict) -> dict:
    """kafka-python's alter_partition_reassignments: {(topic, partition): replicas or None}."""
    client = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return client.alter_partition_reassignments({KPTopicPartition(t, p): r for (t, p), r in moves.items()})
    finally:
        client.close()


def listed(bootstrap: str) -> dict:
    """kafka-python's list_partition_reassignments: {(topic, partition): {replicas, adding, removing}}."""
    client = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return {(tp.topic, tp.partition): r for tp, r in client.list_partition_reassignments().items()}
    finally:
        client.close()


def test_a_partition_moves_onto_a_new_broker_and_a_cancelled_move_goes_back(cluster_factory):
    cluster = cluster_factory(voters=3)
    topic = topic_name("moved")
    create(cluster.bootstrap, topic, 2, 3, {"min.insync.replicas": "2"})
    wait_isr(cluster, topic, [1, 2, 3])
    acked, errors = produce_idempotent(cluster.bootstrap, topic, 0, 3000, 2)
    assert not errors and len(acked) == 3000

    # A fourth broker joins: nothing moves to it by itself (Kafka's behaviour).
    new = cluster.add(4)
    new.start()
    cluster.wait_brokers({1, 2, 3, 4})
    assert all(4 not in replicas for _, replicas, _ in partitions_of(cluster.bootstrap, topic).values())

    # Held while broker 4 is paused, so that the moves are seen under way (clients bootstrap
    # from the others meanwhile).
    os.kill(new.pid, signal.SIGSTOP)
    bootstrap = ",".join(cluster.nodes[n].bootstrap for n in (1, 2, 3))
    try:
        # Fenced once its session ends: clients no longer learn of it (nor send it admin requests).
        cluster.wait_for("broker 4 fenced", lambda: cluster.brokers_seen(cluster.nodes[1]) == {1, 2, 3})
        first = (topic, 0)
        source = partitions_of(bootstrap, topic)[0][1]
        gone = source[0]
        target = [4] + [n for n in source if n != gone]
        assert reassign(bootstrap, {first: target}) == {KPTopicPartition(*first): None}
        second = (topic, 1)
        assert reassign(bootstrap, {second: [4, 1, 2]}) == {KPTopicPartition(*second): None}
        ongoing = cluster.wait_for("both moves listed", lambda: (lambda l: l if len(l) == 2 else None)(
            listed(bootstrap)))
        assert ongoing[first]["adding_replicas"] == [4] and ongoing[first]["removing_replicas"] == [gone]
        assert sorted(ongoing[first]["replicas"]) == sorted(source + [4])
        # The second is cancelled mid-move: it goes back to its original replicas.
        assert reassign(bootstrap, {second: None}) == {KPTopicPartition(*second): None}
        assert list(listed(bootstrap)) == [first]
        # Cancelling a partition that is not moving: Kafka's NO_REASSIGNMENT_IN_PROGRESS.
        refused = reassign(bootstrap, {second: None})
        assert refused[KPTopicPartition(*second)].errno == 85, refused
        # Bad targets: Kafka's INVALID_REPLICA_ASSIGNMENT.
        refused = reassign(bootstrap, {second: [1, 1]})
        assert refused[KPTopicPartition(*second)].errno == 39, refused
    finally:
        os.kill(new.pid, signal.SIGCONT)

    # Broker 4 catches up, joins the ISR, and the move completes; the removed replica's files go.
    cluster.wait_for("the move complete", lambda: not listed(cluster.bootstrap), timeout_s=60)
    leader, replicas, isr = partitions_of(cluster.bootstrap, topic)[0]
    assert replicas == sorted(target) and isr == sorted(target) and leader in target, (leader, replicas, isr)
    # The cancelled one is back on the brokers it was created on (1-3, before broker 4 existed).
    assert partitions_of(cluster.bootstrap, topic)[1][1] == [1, 2, 3]
    cluster.wait_for("the moved replica's files deleted",
                     lambda: not (cluster.nodes[gone].data_dir / f"{topic}-0").exists(), timeout_s=30)
    assert (new.data_dir / f"{topic}-0").exists() and not (new.data_dir / f"{topic}-1").exists()

    got = consume_all(cluster.bootstrap, topic, 2)
    values = [m.value() for p in got.values() for m in p]
    assert len(values) == len(set(values)) and set(values) == acked
    assert_replicas_identical(cluster, topic, 2)



def preferred_and_leader(bootstrap: str, topic: str) -> dict[int, tuple[int, int]]:
    """Partition -> (preferred replica: the first of its replicas, leader)."""
    from helpers import admin
    md = admin(bootstrap).list_topics(topic, timeout=10)
    return {p.id: (p.replicas[0], p.leader) for p in md.topics[topic].partitions.values()}


def test_elect_leaders_returns_leadership_to_preferred_replicas(cluster_factory):
    """After a broker restarts, the partitions it prefers are led elsewhere; ElectLeaders
    (confluent-kafka's and kafka-python's elect_leaders) gives them back."""
    from confluent_kafka import ElectionType, TopicPartition

    from helpers import admin

    cluster = cluster_factory(voters=3)
    topic = topic_name("elect")
    create(cluster.bootstrap, topic, 3, 3, {"min.insync.replicas": "2"})
    wait_isr(cluster, topic, [1, 2, 3])
    layout = preferred_and_leader(cluster.bootstrap, topic)
    assert all(pref == leader for pref, leader in layout.values()), layout
    by_preferred = {pref: p for p, (pref, _) in layout.items()}
    assert sorted(by_preferred) == [1, 2, 3], layout

    def restart(node: int):
        """Restarts a broker: the partition it prefers is led by another meanwhile, and stays so
        (one at a time: stopping broker 2 while broker 1 is back in sync would hand broker 1's
        partition straight back to it). Asked of a broker that stayed up: a restarted one
        describes its metadata as it was until it caught up."""
        stayed = cluster.nodes[3 if node != 3 else 1].bootstrap
        cluster.nodes[node].stop_cleanly()
        cluster.wait_for(f"broker {node}'s preferred partition led by another", lambda: partitions_of(
            stayed, topic)[by_preferred[node]][0] not in (node, -1))
        cluster.nodes[node].start()
        wait_isr(cluster, topic, [1, 2, 3], timeout_s=60, via=3 if node != 3 else 1)
        layout = preferred_and_leader(stayed, topic)
        assert layout[by_preferred[node]][1] != node, layout

    restart(1)

    # confluent-kafka: a preferred election for broker 1's partition.
    first = TopicPartition(topic, by_preferred[1])
    confluent = admin(cluster.bootstrap)  # must outlive its futures
    result = confluent.elect_leaders(ElectionType.PREFERRED, [first]).result(timeout=30)
    assert result == {first: None}, result
    cluster.wait_for("broker 1 leading its preferred partition",
                     lambda: preferred_and_leader(cluster.bootstrap, topic)[by_preferred[1]][1] == 1)
    # Again: Kafka's ELECTION_NOT_NEEDED.
    again = confluent.elect_leaders(ElectionType.PREFERRED, [first]).result(timeout=30)
    assert again[first] is not None and again[first].code() == 84, again

    # kafka-python: every partition (broker 2's is the one away from its preferred replica).
    restart(2)
    client = KafkaAdminClient(bootstrap_servers=cluster.bootstrap)
    try:
        client.elect_leaders(0, None)
    finally:
        client.close()
    cluster.wait_for("every partition led by its preferred replica", lambda: all(
        pref == leader for pref, leader in preferred_and_leader(cluster.bootstrap, topic).values()))


def test_preferred_leaders_return_automatically_after_a_restart(cluster_factory):
    """auto.leader.rebalance.enable (on by default) with the check interval shortened: a broker
    restarted cleanly gets its preferred partitions back without anyone asking; with balancing
    off they stay led elsewhere."""
    cluster = cluster_factory(voters=3, extra=["--leader-imbalance-check-interval-seconds", "1"])
    topic = topic_name("balanced")
    create(cluster.bootstrap, topic, 3, 3, {"min.insync.replicas": "2"})
    wait_isr(cluster, topic, [1, 2, 3])
    layout = preferred_and_leader(cluster.bootstrap, topic)
    mine = [p for p, (pref, _) in layout.items() if pref == 1]
    assert mine, layout

    cluster.nodes[1].stop_cleanly()
    # Led elsewhere while broker 1 is away (its controlled shutdown moved them).
    cluster.wait_for("broker 1's partitions led elsewhere", lambda: all(
        preferred_and_leader(cluster.bootstrap, topic)[p][1] not in (1, -1) for p in mine))
    cluster.nodes[1].start()
    cluster.wait_for("broker 1 leading its preferred partitions again", lambda: all(
        preferred_and_leader(cluster.bootstrap, topic)[p][1] == 1 for p in mine), timeout_s=60)


def test_without_balancing_preferred_leaders_stay_away(cluster_factory):
    cluster = cluster_factory(voters=3, extra=["--leader-imbalance-check-interval-seconds", "1",
                                               "--auto-leader-rebalance-enable", "false"])
    topic = topic_name("unbalanced")
    create(cluster.bootstrap, topic, 3, 3, {"min.insync.replicas": "2"})
    wait_isr(cluster, topic, [1, 2, 3])
    mine = [p for p, (pref, _) in preferred_and_leader(cluster.bootstrap, topic).items() if pref == 1]
    cluster.nodes[1].stop_cleanly()
    cluster.nodes[1].start()
    wait_isr(cluster, topic, [1, 2, 3], timeout_s=60, via=2)
    import time
    time.sleep(4)  # several check intervals
    layout = preferred_and_leader(cluster.bootstrap, topic)
    assert all(layout[p][1] != 1 for p in mine), layout
