"""Controller voters changed online (KIP-853's AddRaftVoter and RemoveRaftVoter through
`ringtail cluster voters`) on real `ringtail serve` processes, with an idempotent producer and a
consumer group running: a fourth node joins the voters, a third leaves, the quorum keeps a
majority of its new voters (so it survives losing one of the old ones), and the removed voter
restarted with its old flags does not come back."""

import json
import time

from conftest import free_port
from helpers import topic_name
from test_cluster_ops import Traffic, cli
from test_replication import create, partitions_of, wait_isr


def voters(bootstrap: str) -> dict:
    return json.loads(cli("voters", "--bootstrap", bootstrap, "--json").stdout)


def voter_ids(bootstrap: str) -> list[int]:
    return sorted(v["node_id"] for v in voters(bootstrap)["voters"])


def test_a_voter_is_added_and_another_removed_with_the_cluster_serving(cluster_factory):
    cluster = cluster_factory(voters=3)
    topic = topic_name("quorum")
    create(cluster.bootstrap, topic, 3, 3, {"min.insync.replicas": "2"})
    wait_isr(cluster, topic, [1, 2, 3])
    assert voter_ids(cluster.bootstrap) == [1, 2, 3]

    # Node 4 starts outside the voters, at a controller listener of its own.
    port = free_port()
    joiner = cluster.add(4, roles="broker,controller", extra=["--controller-listen", f"127.0.0.1:{port}"])
    joiner.start()
    cluster.wait_brokers({1, 2, 3, 4})
    assert voter_ids(cluster.bootstrap) == [1, 2, 3]

    traffic = Traffic(",".join(cluster.nodes[n].bootstrap for n in (1, 2, 3)), topic, 3)
    try:
        time.sleep(1)
        cli("voters", "add", "4", "--controller", f"127.0.0.1:{port}", "--bootstrap", cluster.bootstrap)
        assert voter_ids(cluster.bootstrap) == [1, 2, 3, 4]
        again = cli("voters", "add", "4", "--controller", f"127.0.0.1:{port}", "--bootstrap", cluster.bootstrap,
                    check=False)
        assert again.returncode != 0 and "error 126" in again.stderr, again.stderr  # DUPLICATE_VOTER

        cli("voters", "remove", "3", "--bootstrap", cluster.bootstrap)
        assert voter_ids(cluster.bootstrap) == [1, 2, 4]
        gone = cli("voters", "remove", "3", "--bootstrap", cluster.bootstrap, check=False)
        assert gone.returncode != 0 and "error 127" in gone.stderr, gone.stderr  # VOTER_NOT_FOUND

        # The removed voter, killed and restarted with its old flags (which still list it as a
        # voter), stays out: the voters are the quorum's log's, not the flags'.
        cluster.nodes[3].kill9()
        cluster.nodes[3].start()
        cluster.wait_brokers({1, 2, 3, 4}, timeout_s=60)
        time.sleep(3)  # several election timeouts
        assert voter_ids(cluster.bootstrap) == [1, 2, 4]

        # With voter 1 down, voters 2 and 4 are a majority of {1, 2, 4}: metadata still changes
        # (they would not be of {1, 2, 3} with 3 out, nor of {1, 2} alone).
        cluster.nodes[1].kill9()
        rest = ",".join(cluster.nodes[n].bootstrap for n in (2, 3, 4))
        later = topic_name("after")

        def created():
            try:
                create(rest, later, 1, 1)
            except Exception as e:  # noqa: BLE001 - an earlier attempt may have made it
                if "already exists" not in str(e):
                    raise
            return True
        cluster.wait_for("a topic created with voter 1 down", created, timeout_s=60)
        assert partitions_of(rest, later)[0][0] in (2, 3, 4)
        cluster.nodes[1].start()
        cluster.wait_brokers({1, 2, 3, 4}, timeout_s=60)
        assert voter_ids(cluster.bootstrap) == [1, 2, 4]
        time.sleep(1)
    finally:
        traffic.stop()
    wait_isr(cluster, topic, [1, 2, 3], timeout_s=60)
    traffic.check(cluster, cluster.bootstrap)
