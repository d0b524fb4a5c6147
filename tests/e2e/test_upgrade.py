"""A data directory written by the previous release (topics in `topics.toml`, before the
metadata records) opens under this one with every topic, config, record, producer state and
committed offset, and keeps working after the migration.

The fixture was written by that release's own binary: fixtures/make_data_dir_v0.py says how
and what it holds."""

import struct
import tarfile
import tomllib
from pathlib import Path

from confluent_kafka import TopicPartition
from confluent_kafka.admin import ConfigResource, ResourceType

import helpers

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "data-dir-v0.tar.gz"
RECORDS = {"orders": 100, "metrics-async": 40}
PARTITIONS = {"orders": 3, "metrics-async": 1}
COMMITTED = {("orders", 0): 10, ("orders", 1): 20, ("orders", 2): 100}


def old_metadata() -> dict:
    with tarfile.open(FIXTURE) as tar:
        return tomllib.load(tar.extractfile("data/topics.toml"))


def check_everything(broker) -> None:
    old = old_metadata()
    md = broker.metadata()
    assert md["cluster_id"] == old["cluster_id"], "the cluster id is kept"
    for topic, partitions in PARTITIONS.items():
        assert helpers.partition_count(broker.bootstrap, topic) == partitions
        assert md["topics"][topic]["id"] == old["topics"][topic]["id"], "topic ids are kept"
        assert broker.shards_of(topic) == old["topics"][topic]["shards"], "so is the shard placement"
        got = helpers.consume_all(broker.bootstrap, topic, partitions)
        for p in range(partitions):
            values = [(m.key(), m.value()) for m in got[p]]
            assert values == [(f"k{p}-{i}".encode(), f"v{p}-{i}".encode()) for i in range(RECORDS[topic])], (topic, p)
    a = helpers.admin(broker.bootstrap)
    resource = ConfigResource(ResourceType.TOPIC, "orders")
    configs = a.describe_configs([resource])[resource].result(timeout=15)
    assert configs["retention.ms"].value == "604800000" and not configs["retention.ms"].is_default
    resource = ConfigResource(ResourceType.TOPIC, "metrics-async")
    configs = a.describe_configs([resource])[resource].result(timeout=15)
    assert configs["ringtail.durability"].value == "async"
    consumer = helpers.consumer(broker.bootstrap, **{"group.id": "billing"})
    try:
        committed = consumer.committed([TopicPartition(t, p) for (t, p) in COMMITTED], timeout=15)
    finally:
        consumer.close()
    assert {(c.topic, c.partition): c.offset for c in committed} == COMMITTED


def test_previous_release_data_directory_opens_with_everything(broker_factory):
    broker = broker_factory(data_from=FIXTURE)
    data = broker.data_dir
    assert not (data / "topics.toml").exists(), "the old file is migrated once"
    assert (data / "topics.toml.migrated").exists(), "and kept beside the new metadata"
    assert (data / "meta.properties").exists() and (data / "cluster-metadata" / "checkpoint").exists()
    check_everything(broker)

    # It keeps working: new records after the old ones, a new topic, a restart.
    p = helpers.producer(broker.bootstrap)
    p.produce("orders", key=b"new", value=b"after-upgrade", partition=0)
    assert p.flush(15) == 0
    helpers.create_topic(broker.bootstrap, "after-upgrade", 2)
    broker.restart()
    orders = helpers.consume_all(broker.bootstrap, "orders", 3)
    assert [m.value() for m in orders[0]][-1] == b"after-upgrade"
    assert helpers.partition_count(broker.bootstrap, "after-upgrade") == 2
    assert "migrated" not in broker.log_text().rsplit("===== e2e: start #2", 1)[1]
    # Logs written before leader epochs were recorded read as epoch 0 from their start; the
    # epoch cache is written at the first flush (or the clean shutdown) after the upgrade.
    broker.stop_cleanly()
    for p in range(3):
        raw = (data / f"orders-{p}" / "leader-epochs").read_bytes()
        magic, _version, kind, length = struct.unpack(">4sHHI", raw[:12])
        assert (magic, kind) == (b"RTCK", 5)
        payload = raw[12:12 + length]
        (count,) = struct.unpack(">I", payload[:4])
        entries = [struct.unpack(">iQ", payload[4 + 12 * i:16 + 12 * i]) for i in range(count)]
        assert entries == [(0, 0)], (p, entries)


def test_previous_release_data_directory_opens_on_fewer_shards(broker_factory):
    """Started with one shard where the old release had two: the partitions of the missing
    shard move, nothing is lost, and idempotent producers write after the old records."""
    broker = broker_factory(data_from=FIXTURE, shards=1)
    assert broker.shards_of("orders") == [0, 0, 0], "partitions of a shard that is gone move"
    p = helpers.producer(broker.bootstrap, **{"enable.idempotence": True})
    for i in range(10):
        p.produce("orders", value=f"idem-{i}".encode(), partition=1)
    assert p.flush(15) == 0
    assert helpers.high_watermarks(broker.bootstrap, "orders", 3)[1] == (0, RECORDS["orders"] + 10)
    check_everything_on_one_shard = helpers.consume_all(broker.bootstrap, "metrics-async", 1)
    assert len(check_everything_on_one_shard[0]) == RECORDS["metrics-async"]
