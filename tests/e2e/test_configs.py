"""Config APIs against the real broker: AlterConfigs and IncrementalAlterConfigs (set, delete,
append, subtract) for topics and brokers from confluent-kafka and kafka-python, DescribeConfigs
with sources and synonyms, changes that take effect at once and survive a restart, and the
README's table of topic configs walked key by key."""

import re
import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource, ResourceType
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource as KConfigResource, ConfigResourceType

import helpers
import kwire

TIMEOUT_S = 30
README = Path(__file__).resolve().parents[2] / "README.md"


def readme_topic_configs() -> list[tuple[str, str, str, str]]:
    """(config, what Ringtail does, example accepted, example refused) from the README's table."""
    text = README.read_text()
    table = text[text.index("| config | Kafka 4.1 default | Ringtail |"):]
    rows = []
    for line in table.splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows.append((cells[0].strip("`"), cells[2], cells[3].strip("`"), cells[4].strip("`")))
    return rows


def incremental(admin, topic, name, value, op=AlterConfigOpType.SET):
    resource = ConfigResource(ResourceType.TOPIC, topic,
                              incremental_configs=[ConfigEntry(name, value, incremental_operation=op)])
    return admin.incremental_alter_configs([resource])[resource].result(timeout=TIMEOUT_S)


def describe(admin, resource_type, name) -> dict:
    resource = ConfigResource(resource_type, name)
    return admin.describe_configs([resource])[resource].result(timeout=TIMEOUT_S)


def test_readme_topic_config_table(broker):
    """Every key of the table is what DescribeConfigs lists; each example value is accepted and
    each refused value gets INVALID_CONFIG."""
    rows = readme_topic_configs()
    topic = helpers.topic_name("table")
    helpers.create_topic(broker.bootstrap, topic, 1)
    admin = helpers.admin(broker.bootstrap)
    assert sorted(r[0] for r in rows) == sorted(describe(admin, ResourceType.TOPIC, topic))
    for name, treatment, accepted, refused in rows:
        incremental(admin, topic, name, accepted)
        assert describe(admin, ResourceType.TOPIC, topic)[name].value == accepted, name
        with pytest.raises(KafkaException) as raised:
            incremental(admin, topic, name, refused)
        assert raised.value.args[0].code() == KafkaError.INVALID_CONFIG, (name, refused, raised.value)
        incremental(admin, topic, name, None, AlterConfigOpType.DELETE)
    # An unknown key is refused too.
    with pytest.raises(KafkaException) as raised:
        incremental(admin, topic, "colour", "red")
    assert "unknown topic config" in str(raised.value)
    # CreateTopics checks the same table (compression.type was refused before this issue).
    with pytest.raises(KafkaException):
        helpers.create_topic(broker.bootstrap, helpers.topic_name("compact"), 1, {"cleanup.policy": "compact"})
    helpers.create_topic(broker.bootstrap, helpers.topic_name("codec"), 1,
                         {"compression.type": "producer", "flush.ms": "1000"})


def test_confluent_incremental_and_legacy_alter_configs(broker):
    topic = helpers.topic_name("cfg")
    helpers.create_topic(broker.bootstrap, topic, 1)
    admin = helpers.admin(broker.bootstrap)
    incremental(admin, topic, "retention.ms", "3600000")
    entry = describe(admin, ResourceType.TOPIC, topic)["retention.ms"]
    assert (entry.value, entry.source) == ("3600000", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    assert [s.name for s in entry.synonyms.values()][:2] == ["retention.ms", "log.retention.ms"]
    # APPEND and SUBTRACT work on list configs, from the default; not on others.
    incremental(admin, topic, "leader.replication.throttled.replicas", "0:0", AlterConfigOpType.APPEND)
    incremental(admin, topic, "leader.replication.throttled.replicas", "1:0", AlterConfigOpType.APPEND)
    assert describe(admin, ResourceType.TOPIC, topic)["leader.replication.throttled.replicas"].value == "0:0,1:0"
    incremental(admin, topic, "leader.replication.throttled.replicas", "0:0", AlterConfigOpType.SUBTRACT)
    assert describe(admin, ResourceType.TOPIC, topic)["leader.replication.throttled.replicas"].value == "1:0"
    with pytest.raises(KafkaException) as raised:
        incremental(admin, topic, "retention.ms", "5", AlterConfigOpType.APPEND)
    assert raised.value.args[0].code() == KafkaError.INVALID_CONFIG
    # DELETE goes back to the broker's default.
    incremental(admin, topic, "retention.ms", None, AlterConfigOpType.DELETE)
    entry = describe(admin, ResourceType.TOPIC, topic)["retention.ms"]
    assert (entry.value, entry.source) == ("1209600000", ConfigSource.DEFAULT_CONFIG.value)
    # Legacy AlterConfigs replaces the whole set: keys not given go back to their defaults.
    incremental(admin, topic, "segment.ms", "7200000")
    resource = ConfigResource(ResourceType.TOPIC, topic, set_config={"retention.bytes": "1073741824"})
    admin.alter_configs([resource])[resource].result(timeout=TIMEOUT_S)
    configs = describe(admin, ResourceType.TOPIC, topic)
    assert configs["retention.bytes"].value == "1073741824"
    assert configs["segment.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    # validate_only changes nothing.
    resource = ConfigResource(ResourceType.TOPIC, topic,
                              incremental_configs=[ConfigEntry("retention.bytes", "5",
                                                               incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([resource], validate_only=True)[resource].result(timeout=TIMEOUT_S)
    assert describe(admin, ResourceType.TOPIC, topic)["retention.bytes"].value == "1073741824"
    # A topic that does not exist.
    with pytest.raises(KafkaException) as raised:
        incremental(admin, helpers.topic_name("missing"), "retention.ms", "1")
    assert raised.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_broker_configs_describe_and_alter(broker):
    admin = helpers.admin(broker.bootstrap)
    configs = describe(admin, ResourceType.BROKER, "0")
    assert configs["advertised.listeners"].value == f"PLAINTEXT://{broker.bootstrap}"
    assert configs["advertised.listeners"].is_read_only
    assert configs["log.dirs"].value.endswith("data")
    assert configs["log.retention.ms"].value == "1209600000" and not configs["log.retention.ms"].is_read_only
    topic = helpers.topic_name("brokerdefault")
    helpers.create_topic(broker.bootstrap, topic, 1)

    # The cluster-wide default, then this node's, then the topic's own: most specific wins.
    def set_broker(name, key, value):
        resource = ConfigResource(ResourceType.BROKER, name,
                                  incremental_configs=[ConfigEntry(key, value,
                                                                   incremental_operation=AlterConfigOpType.SET)])
        admin.incremental_alter_configs([resource])[resource].result(timeout=TIMEOUT_S)

    # The cluster-wide default (broker name ""), as Kafka's kafka-configs --entity-default sends
    # it; confluent-kafka and kafka-python refuse that name themselves.
    sock = kwire.connect(broker.bootstrap)
    try:
        assert kwire.incremental_alter_configs_v0(sock, kwire.RESOURCE_BROKER, "",
                                                  [("log.retention.ms", 0, "7200000")]) == (0, None)
        error, configs = kwire.describe_configs_v1(sock, kwire.RESOURCE_BROKER, "")
        assert error == 0 and configs == {"log.retention.ms": ("7200000", 3, [("log.retention.ms", "7200000", 3)])}
    finally:
        sock.close()
    entry = describe(admin, ResourceType.TOPIC, topic)["retention.ms"]
    assert (entry.value, entry.source) == ("7200000", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value)
    set_broker("0", "log.retention.ms", "3600000")
    entry = describe(admin, ResourceType.TOPIC, topic)["retention.ms"]
    assert (entry.value, entry.source) == ("3600000", ConfigSource.DYNAMIC_BROKER_CONFIG.value)
    # Read-only and unknown broker configs are refused; another broker's id too.
    with pytest.raises(KafkaException) as raised:
        set_broker("0", "num.partitions", "9")
    assert raised.value.args[0].code() == KafkaError.INVALID_REQUEST
    with pytest.raises(KafkaException):
        set_broker("0", "log.retention.ms", "soon")
    # Another broker's configs are that broker's to answer (clients send them there).
    sock = kwire.connect(broker.bootstrap)
    try:
        assert kwire.describe_configs_v1(sock, kwire.RESOURCE_BROKER, "7") == (42, {})
    finally:
        sock.close()
    broker.restart()
    admin = helpers.admin(broker.bootstrap)
    entry = describe(admin, ResourceType.TOPIC, topic)["retention.ms"]
    assert (entry.value, entry.source) == ("3600000", ConfigSource.DYNAMIC_BROKER_CONFIG.value)


def test_kafka_python_alter_and_describe(broker):
    topic = helpers.topic_name("kpcfg")
    helpers.create_topic(broker.bootstrap, topic, 1)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=TIMEOUT_S * 1000)
    try:
        for incremental_api in (True, False):
            value = "3600000" if incremental_api else "7200000"
            result = admin.alter_configs([KConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": value})],
                                         incremental=incremental_api)
            assert "Error" not in repr(result) or "NoError" in repr(result), result
            described = admin.describe_configs([KConfigResource(ConfigResourceType.TOPIC, topic)])
            assert described["topic"][topic]["retention.ms"]["value"] == value
        described = admin.describe_configs([KConfigResource(ConfigResourceType.BROKER, "0")], config_filter="all")
        assert described["broker"]["0"]["advertised.listeners"]["value"] == f"PLAINTEXT://{broker.bootstrap}"
        result = admin.alter_configs([KConfigResource(ConfigResourceType.BROKER, "0", configs={"log.segment.bytes": "536870912"})])
        described = admin.describe_configs([KConfigResource(ConfigResourceType.BROKER, "0")])
        assert described["broker"]["0"]["log.segment.bytes"]["value"] == "536870912"
    finally:
        admin.close()


def test_changes_take_effect_at_once_and_survive_a_restart(broker):
    topic = helpers.topic_name("effect")
    helpers.create_topic(broker.bootstrap, topic, 1, {"segment.bytes": "1048576"})
    p = helpers.producer(broker.bootstrap, **{"linger.ms": 5})
    for i in range(400):
        p.produce(topic, value=b"x" * 10_000, partition=0)
    p.flush(TIMEOUT_S)
    assert helpers.high_watermarks(broker.bootstrap, topic, 1)[0] == (0, 400)
    admin = helpers.admin(broker.bootstrap)
    # A retention change deletes segments without waiting for the next minute's pass.
    incremental(admin, topic, "retention.bytes", "1048576")
    helpers.wait_for(lambda: helpers.high_watermarks(broker.bootstrap, topic, 1)[0][0] > 0, 10,
                     "retention.bytes to delete old segments")
    low = helpers.high_watermarks(broker.bootstrap, topic, 1)[0][0]
    # A smaller max.message.bytes refuses a larger batch at once.
    incremental(admin, topic, "max.message.bytes", "2000")

    def produce_big():
        errors = []
        p = helpers.producer(broker.bootstrap, **{"linger.ms": 0, "message.max.bytes": 100_000})
        p.produce(topic, value=b"y" * 5000, partition=0, on_delivery=lambda err, msg: errors.append(err))
        p.flush(TIMEOUT_S)
        return errors

    [err] = produce_big()
    assert err is not None and err.code() == KafkaError.MSG_SIZE_TOO_LARGE, err
    broker.restart()
    admin = helpers.admin(broker.bootstrap)
    configs = describe(admin, ResourceType.TOPIC, topic)
    assert (configs["retention.bytes"].value, configs["max.message.bytes"].value) == ("1048576", "2000")
    [err] = produce_big()
    assert err is not None and err.code() == KafkaError.MSG_SIZE_TOO_LARGE, err
    assert helpers.high_watermarks(broker.bootstrap, topic, 1)[0][0] >= low


def test_timestamps_outside_the_topic_bounds_are_refused(broker):
    topic = helpers.topic_name("ts")
    helpers.create_topic(broker.bootstrap, topic, 1, {"message.timestamp.before.max.ms": "60000"})
    now = int(time.time() * 1000)
    results = []
    p = helpers.producer(broker.bootstrap, **{"linger.ms": 0})
    for ts in (now - 3_600_000, now + 2 * 3_600_000, now):
        p.produce(topic, value=b"v", partition=0, timestamp=ts, on_delivery=lambda err, msg: results.append(err))
        p.flush(TIMEOUT_S)
    # An hour late (over the topic's minute), two hours early (over Kafka 4's default hour), on time.
    assert [e.code() if e else None for e in results] == [KafkaError.INVALID_TIMESTAMP] * 2 + [None]


@pytest.mark.parametrize("producer_codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_compression_type_zstd_stores_zstd_and_keeps_exactly_once(broker, producer_codec):
    """A topic with compression.type=zstd stores zstd batches whatever codec the producer used;
    idempotent producers keep exactly-once through the rewrite (their sequences are kept)."""
    topic = helpers.topic_name(f"zstd-{producer_codec}")
    helpers.create_topic(broker.bootstrap, topic, 2, {"compression.type": "zstd", "compression.zstd.level": "5"})
    p = helpers.producer(broker.bootstrap, **{"enable.idempotence": True, "compression.codec": producer_codec,
                                               "linger.ms": 5})
    sent = {f"{producer_codec}-{i}".encode() for i in range(2000)}
    errors = []
    for v in sorted(sent):
        p.produce(topic, value=v, key=v[-2:], on_delivery=lambda err, msg: err and errors.append(err))
    p.flush(TIMEOUT_S)
    assert errors == []
    for partition in range(2):
        batches = kwire.stored_batches(broker.bootstrap, topic, partition)
        assert batches and all(b["codec"] == 4 and b["crc_ok"] for b in batches), batches[:3]
    got = helpers.consume_all(broker.bootstrap, topic, 2)
    values = [m.value() for msgs in got.values() for m in msgs]
    assert len(values) == len(sent) and set(values) == sent, "lost or duplicated records"
    # A retried idempotent batch (same producer id, epoch and sequence) is a duplicate after the
    # rewrite too: answered with its first offset, stored once.
    sock = kwire.connect(broker.bootstrap)
    try:
        producer_id, epoch = kwire.init_producer_id_v1(sock)[1:]
        retry = kwire.record_batch([b"once", b"only"], producer=(producer_id, epoch, 0))
        first = kwire.produce_v8(sock, topic, 0, retry)
        again = kwire.produce_v8(sock, topic, 0, retry)
        assert first[0] == 0 and again == first, (first, again)
    finally:
        sock.close()
    got = helpers.consume_all(broker.bootstrap, topic, 2)
    values = [m.value() for msgs in got.values() for m in msgs]
    assert values.count(b"once") == 1 and len(values) == len(sent) + 2


def test_log_append_time_topics_return_broker_timestamps(broker):
    topic = helpers.topic_name("lat")
    helpers.create_topic(broker.bootstrap, topic, 1, {"message.timestamp.type": "LogAppendTime"})
    p = helpers.producer(broker.bootstrap, **{"linger.ms": 0})
    before = int(time.time() * 1000)
    for i in range(20):
        # Producer timestamps far in the past: replaced, not refused.
        p.produce(topic, value=f"m{i}".encode(), partition=0, timestamp=1_000_000 + i)
    p.flush(TIMEOUT_S)
    after = int(time.time() * 1000)
    got = helpers.consume_all(broker.bootstrap, topic, 1)[0]
    assert len(got) == 20
    for m in got:
        kind, ts = m.timestamp()
        assert kind == 2, "TIMESTAMP_LOG_APPEND_TIME"
        assert before - 1000 <= ts <= after + 1000, (ts, before, after)
    # Stored batches carry the LogAppendTime bit and a valid CRC.
    assert all(b["crc_ok"] for b in kwire.stored_batches(broker.bootstrap, topic, 0))
