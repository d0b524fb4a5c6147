"""Cluster flags and cluster identity on the real binary: bad combinations are refused at
start-up with a message naming the flag, `--cluster-id` is adopted by a fresh data directory and
checked against an existing one, and a node without cluster flags is a single node as before."""

import subprocess

from conftest import free_port, ringtail_bin
from helpers import produce_numbered, topic_name


def serve(tmp_path, *args, timeout=30):
    return subprocess.run(
        [str(ringtail_bin()), "serve", "--listen", f"127.0.0.1:{free_port()}", "--admin-listen", "none",
         "--data-dir", str(tmp_path / "data"), "--shards", "1", *args],
        capture_output=True, text=True, timeout=timeout)


def test_cluster_flags_that_do_not_agree_are_refused_by_name(tmp_path):
    voters = "1@127.0.0.1:19093,2@127.0.0.1:19094,3@127.0.0.1:19095"
    cases = [
        (["--controller-quorum-voters", voters], "--node-id"),
        (["--node-id", "4", "--controller-quorum-voters", voters], "not among the voters"),
        (["--node-id", "1", "--process-roles", "broker", "--controller-quorum-voters", voters],
         "needs the controller role"),
        (["--process-roles", "broker"], "needs a quorum"),
        (["--process-roles", "leader"], "process-roles"),
        (["--node-id", "1", "--controller-quorum-voters", "1@127.0.0.1:19093,1@127.0.0.1:19094"], "twice"),
        (["--node-id", "1", "--controller-quorum-voters", voters, "--controller-listen", "127.0.0.1:nope"],
         "controller-listen"),
        (["--controller-quorum-election-timeout-ms", "200", "--controller-quorum-heartbeat-interval-ms", "150"],
         "half the election timeout"),
        (["--broker-session-timeout-ms", "1000", "--broker-heartbeat-interval-ms", "900"], "fenced"),
        (["--cluster-id", "not a cluster id"], "cluster-id"),
    ]
    for args, expected in cases:
        result = serve(tmp_path, *args)
        assert result.returncode == 2, (args, result.returncode, result.stderr)
        assert expected in result.stderr, (args, result.stderr)


def test_a_controller_only_node_refuses_a_data_directory_with_topics(broker_factory, tmp_path):
    broker = broker_factory(shards=1)
    assert len(produce_numbered(broker.bootstrap, topic_name("kept"), 10, 1)) == 10
    broker.stop_cleanly()
    result = subprocess.run(
        [str(ringtail_bin()), "serve", "--listen", f"127.0.0.1:{free_port()}", "--admin-listen", "none",
         "--data-dir", str(broker.data_dir), "--shards", "1", "--node-id", "1", "--process-roles", "controller",
         "--controller-quorum-voters", "1@127.0.0.1:19093,2@127.0.0.1:19094,3@127.0.0.1:19095"],
        capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "controller-only node" in result.stderr and "leads no partitions" in result.stderr, result.stderr


def test_a_fresh_directory_takes_the_cluster_id_and_a_recorded_one_is_checked(broker_factory, tmp_path):
    broker = broker_factory("--cluster-id", "ringtail-test-cluster", shards=1)
    topic = topic_name("id")
    assert len(produce_numbered(broker.bootstrap, topic, 10, 1)) == 10
    text = (broker.data_dir / "meta.properties").read_text()
    assert "cluster.id=ringtail-test-cluster" in text, text
    broker.stop_cleanly()
    result = subprocess.run(
        [str(ringtail_bin()), "serve", "--listen", f"127.0.0.1:{free_port()}", "--admin-listen", "none",
         "--data-dir", str(broker.data_dir), "--shards", "1", "--cluster-id", "another-cluster"],
        capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "belongs to cluster ringtail-test-cluster" in result.stderr, result.stderr
    # The same id, or none, starts it again with its data.
    broker.restart()
    assert len(produce_numbered(broker.bootstrap, topic, 5, 1)) == 5
