"""kcat (librdkafka's command-line client) against the real broker: metadata, 100,000 messages
through the producer and the simple consumer, and every compression codec."""

import collections
import json
import shutil
import subprocess

import pytest

import helpers
import kwire

KCAT_TIMEOUT_S = 120

pytestmark = pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed (scripts/e2e installs it)")


def kcat(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(["kcat", *args], input=stdin, capture_output=True, timeout=KCAT_TIMEOUT_S)
    assert proc.returncode == 0, (
        f"kcat {' '.join(args)} exited {proc.returncode}\nstderr:\n{proc.stderr.decode(errors='replace')}")
    return proc


def kcat_metadata(bootstrap: str, topic: str | None = None) -> dict:
    args = ["-L", "-J", "-b", bootstrap] + (["-t", topic] if topic else [])
    return json.loads(kcat(*args).stdout)


def kcat_produce(bootstrap: str, topic: str, lines: list[str], *extra: str) -> None:
    proc = kcat("-P", "-b", bootstrap, "-t", topic, *extra, stdin="".join(f"{l}\n" for l in lines).encode())
    errors = [l for l in proc.stderr.decode(errors="replace").splitlines() if "ERROR" in l or "fail" in l.lower()]
    assert not errors, "kcat -P reported errors:\n" + "\n".join(errors[:20])


def kcat_consume(bootstrap: str, topic: str) -> list[tuple[int, int, str]]:
    """Every message of the topic from the beginning as (partition, offset, value); kcat -e exits
    once it has reached the end of every partition."""
    proc = kcat("-C", "-e", "-q", "-o", "beginning", "-b", bootstrap, "-t", topic, "-f", "%p %o %s\\n")
    out = []
    for line in proc.stdout.decode().splitlines():
        p, o, v = line.split(" ", 2)
        out.append((int(p), int(o), v))
    return out


def assert_offsets_contiguous(messages: list[tuple[int, int, str]]) -> dict[int, list[str]]:
    """Checks offsets 0, 1, 2, ... in each partition; returns the values per partition in order."""
    per_partition = collections.defaultdict(list)
    for p, o, v in messages:
        per_partition[p].append((o, v))
    for p, rows in per_partition.items():
        offsets = [o for o, _ in rows]
        assert offsets == list(range(len(offsets))), f"partition {p}: offsets not contiguous from 0"
    return {p: [v for _, v in rows] for p, rows in per_partition.items()}


def test_metadata_lists_broker_and_topics(broker):
    empty = kcat_metadata(broker.bootstrap)
    assert [(b["id"], b["name"]) for b in empty["brokers"]] == [(0, broker.bootstrap)]
    assert empty["controllerid"] == 0
    # Only the internal topic that stores consumer groups' offsets exists at first.
    assert [t["topic"] for t in empty["topics"]] == ["__consumer_offsets"]

    a, b = helpers.topic_name("kcat-meta-a"), helpers.topic_name("kcat-meta-b")
    helpers.create_topic(broker.bootstrap, a, 3)
    helpers.create_topic(broker.bootstrap, b, 1)
    md = kcat_metadata(broker.bootstrap)
    topics = {t["topic"]: t for t in md["topics"] if t["topic"] != "__consumer_offsets"}
    assert set(topics) == {a, b}
    for name, count in ((a, 3), (b, 1)):
        parts = sorted(topics[name]["partitions"], key=lambda p: p["partition"])
        assert [p["partition"] for p in parts] == list(range(count))
        for p in parts:
            assert p["leader"] == 0
            assert [r["id"] for r in p["replicas"]] == [0]
            assert [r["id"] for r in p["isrs"]] == [0]
            assert "error" not in p, p
    # The plain text listing, as a person would run it.
    text = kcat("-L", "-b", broker.bootstrap).stdout.decode()
    assert f"broker 0 at {broker.bootstrap}" in text
    assert f'topic "{a}" with 3 partitions' in text


def test_produce_and_consume_100k(broker):
    topic = helpers.topic_name("kcat-100k")
    helpers.create_topic(broker.bootstrap, topic, 4)
    count = 100_000
    sent = [str(i) for i in range(1, count + 1)]
    # Without sticky partitioning every keyless message picks a random partition.
    kcat_produce(broker.bootstrap, topic, sent, "-X", "sticky.partitioning.linger.ms=0")

    got = kcat_consume(broker.bootstrap, topic)
    values = [v for _, _, v in got]
    assert len(values) == count, f"consumed {len(values)} messages, produced {count}"
    duplicates = [v for v, n in collections.Counter(values).items() if n > 1]
    assert not duplicates, f"{len(duplicates)} values consumed more than once, e.g. {duplicates[:5]}"
    assert set(values) == set(sent)
    per_partition = assert_offsets_contiguous(got)
    assert set(per_partition) == {0, 1, 2, 3}, "the random partitioner should reach all 4 partitions"
    # One producer, so each partition holds its values in the order they were sent.
    for p, vals in per_partition.items():
        nums = [int(v) for v in vals]
        assert nums == sorted(nums), f"partition {p}: values out of send order"


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compressed_roundtrip(broker, codec):
    topic = helpers.topic_name(f"kcat-{codec}")  # auto-created by the producer's metadata request
    sent = [f"{i:06d}-" + "ringtail-compresses-well-" * 4 for i in range(10_000)]
    kcat_produce(broker.bootstrap, topic, sent, "-z", codec)

    md = kcat_metadata(broker.bootstrap, topic)
    (t,) = md["topics"]
    assert len(t["partitions"]) == 4, "auto-created topics get --default-partitions (4)"

    got = kcat_consume(broker.bootstrap, topic)
    values = [v for _, _, v in got]
    assert len(values) == len(sent)
    assert collections.Counter(values) == collections.Counter(sent)
    per_partition = assert_offsets_contiguous(got)
    for p, vals in per_partition.items():
        assert vals == sorted(vals), f"partition {p}: values out of send order"
        # The broker stores batches as the producer compressed them.
        batches = kwire.stored_batches(broker.bootstrap, topic, p)
        assert batches, f"partition {p} has messages but no stored batch"
        assert {kwire.CODEC_NAMES[b["codec"]] for b in batches} == {codec}
        assert all(b["magic"] == 2 and b["crc_ok"] for b in batches)
