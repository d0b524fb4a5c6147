"""Budgets and caps: what a greedy or slow client can make a broker hold is bounded, and a
storage error takes one partition offline, not the broker. Each test drives the real binary
with raw sockets or a real client and reads /metrics; none of them times the broker."""

import os
import re
import socket
import struct
import subprocess
import threading
import time
import urllib.request
import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition

import kwire
from conftest import free_port, ringtail_bin
from helpers import (RDKAFKA_LOGGER, consume_all, create_topic, flip_middle_byte, producer, produce_numbered, topic_name,
                     wait_for)
from kwire import array, i8, i32, i64, string

KAFKA_STORAGE_ERROR = 56
INVALID_REQUEST = 42
POLICY_VIOLATION = 44
INVALID_COMMIT_OFFSET_SIZE = 28
MIB = 1 << 20


# ---- helpers ------------------------------------------------------------------------------

def scrape(broker) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{broker.admin_port}/metrics", timeout=5) as r:
        return r.read().decode()


def samples(text: str, name: str) -> list[tuple[dict, float]]:
    """Every sample of metric `name` as (labels, value)."""
    out = []
    for m in re.finditer(rf"^{re.escape(name)}\{{([^}}]*)\}} (\S+)$", text, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        out.append((labels, float(m.group(2))))
    return out


def metric_sum(text: str, name: str, **want) -> float:
    return sum(v for labels, v in samples(text, name) if all(labels.get(k) == w for k, w in want.items()))


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def produce_request_header(size: int) -> bytes:
    """The 4-byte size and the start of a Produce v3 request of `size` bytes: a well-formed
    request whose records never finish arriving."""
    return struct.pack(">i", size) + kwire.header(kwire.API_PRODUCE, 3, 1) + string(None) + struct.pack(">hi", -1, 10000)


def send_some(sock: socket.socket, data: bytes, seconds: float) -> int:
    """Sends as much of `data` as the socket takes within `seconds`; returns the bytes sent."""
    sock.settimeout(0.2)
    sent, deadline = 0, time.monotonic() + seconds
    while sent < len(data) and time.monotonic() < deadline:
        try:
            sent += sock.send(data[sent:sent + MIB])
        except (socket.timeout, BlockingIOError):
            continue
        except OSError:
            break
    return sent


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the broker closes the connection (EOF or reset) within `seconds`."""
    sock.settimeout(seconds)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except socket.timeout:
        return False
    except OSError:
        return True


def assert_alive(broker):
    assert broker.is_running(), f"broker exited with code {broker.proc.returncode}"
    assert kwire.broker_answers(broker.bootstrap)


# ---- fetch size ---------------------------------------------------------------------------

def test_librdkafka_consumer_with_a_small_fetch_max_bytes_consumes_everything(broker_factory):
    """librdkafka with fetch.max.bytes 1 MB, max.partition.fetch.bytes 20 MB and
    receive.message.max.bytes 1000512 on a partition holding ~20 MB: the broker used to send a
    19 MB response, which librdkafka refused ("Invalid response size") and fetched again for ever."""
    broker = broker_factory("--default-partitions", "1")
    topic = topic_name("bigfetch")
    create_topic(broker.bootstrap, topic, 1)
    count, value_bytes = 20_000, 1024
    p = producer(broker.bootstrap, **{"linger.ms": 50, "batch.size": 100_000})
    for i in range(count):
        p.produce(topic, value=b"%08d" % i + b"x" * (value_bytes - 8), partition=0)
        if i % 1000 == 0:
            p.poll(0)
    assert p.flush(60) == 0
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused", "enable.auto.commit": False,
                  "fetch.max.bytes": 1_000_000, "max.partition.fetch.bytes": 20_000_000,
                  "receive.message.max.bytes": 1_000_512, "logger": RDKAFKA_LOGGER})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        got, deadline = 0, time.monotonic() + 60
        while got < count and time.monotonic() < deadline:
            m = c.poll(1.0)
            if m is None or m.error():
                continue
            assert int(m.value()[:8]) == got, f"message {m.value()[:8]!r} where {got} was next"
            got += 1
        assert got == count, f"consumed {got} of {count}"
    finally:
        c.close()
    # The same by hand: the response stays within max_bytes plus one batch (~100 KB here).
    with kwire.connect(broker.bootstrap) as s:
        body = (i32(-1) + i32(0) + i32(1) + i32(1_000_000) + i8(0)
                + array([string(topic) + array([i32(0) + i64(0) + i32(20_000_000)])]))
        s.sendall(kwire.request(kwire.API_FETCH, 4, body))
        response = kwire.recv_frame(s)
        assert response is not None
        assert 1_000 < len(response) < 1_000_000 + 200_000, f"fetch response of {len(response)} bytes"


# ---- request memory ----------------------------------------------------------------------

def test_partial_frame_flood_stays_within_the_budget_and_others_are_served(broker_factory):
    read_timeout_s = 3.0
    broker = broker_factory("--queued-max-request-bytes", str(256 * MIB), "--request-bytes-max", str(16 * MIB),
                            "--request-read-timeout-ms", str(int(read_timeout_s * 1000)))
    topic = topic_name("flood")
    create_topic(broker.bootstrap, topic, 2)
    time.sleep(0.5)
    baseline = rss_bytes(broker.pid)
    attackers, frame = 24, 16 * MIB - 64
    body = produce_request_header(frame)[4:] + bytes(12 * MIB)
    socks = [kwire.connect(broker.bootstrap) for _ in range(attackers)]
    for s in socks:
        s.sendall(struct.pack(">i", frame))
    stop = threading.Event()
    worst = {"over": [], "rss": 0}

    def watch():
        while not stop.is_set():
            text = scrape(broker)
            limits = {l["shard"]: v for l, v in samples(text, "ringtail_budget_limit_bytes") if l["budget"] == "request"}
            for labels, used in samples(text, "ringtail_budget_used_bytes"):
                if labels["budget"] == "request" and used > limits[labels["shard"]]:
                    worst["over"].append((labels, used))
            worst["rss"] = max(worst["rss"], rss_bytes(broker.pid))
            time.sleep(0.1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        senders = [threading.Thread(target=send_some, args=(s, body, 2.0)) for s in socks]
        for t in senders:
            t.start()
        for t in senders:
            t.join()
        # While stalled connections hold (or wait for) the budget, a real client is served.
        started = time.monotonic()
        sent = produce_numbered(broker.bootstrap, topic, 300, 2)
        got = consume_all(broker.bootstrap, topic, 2, timeout_s=30)
        assert sum(len(v) for v in got.values()) == len(sent)
        assert time.monotonic() - started < 30
        # Every stalled connection is closed: those reading their frame after the read timeout,
        # those that waited for the budget once they read and stalled in turn.
        closed = [closed_within(s, 5 * read_timeout_s + 10) for s in socks]
        assert all(closed), f"{closed.count(False)} stalled connections left open"
    finally:
        stop.set()
        watcher.join()
        for s in socks:
            s.close()
    assert worst["over"] == [], f"request budget overdrawn: {worst['over'][:3]}"
    # Resident memory: what was resident at start, plus the request budget (256 MiB), plus 96
    # MiB for what the broker allocates beside requests under this load (batch caches of the
    # topic's partitions, consumers' responses, the allocator's slack). Without the budget the
    # 24 connections would make it hold 24 x 16 MiB = 384 MiB of frames.
    bound = baseline + 256 * MIB + 96 * MIB
    assert worst["rss"] < bound, f"resident {worst['rss'] >> 20} MiB, bound {bound >> 20} MiB"
    text = scrape(broker)
    assert metric_sum(text, "ringtail_connections_closed_total", reason="read_timeout") >= attackers
    assert_alive(broker)


def test_a_few_greedy_connections_do_not_hold_up_others(broker_factory):
    """Fairness: a connection holds at most 1/8 of its shard's budget, so four connections
    stalled mid-frame leave room: another client's produce completes well before they time out."""
    broker = broker_factory("--queued-max-request-bytes", str(256 * MIB), "--request-bytes-max", str(16 * MIB),
                            "--request-read-timeout-ms", "20000")
    topic = topic_name("fair")
    create_topic(broker.bootstrap, topic, 2)
    frame = 16 * MIB - 64
    socks = [kwire.connect(broker.bootstrap) for _ in range(4)]
    try:
        for s in socks:
            send_some(s, produce_request_header(frame) + bytes(8 * MIB), 1.0)
        started = time.monotonic()
        sent = produce_numbered(broker.bootstrap, topic, 200, 2)
        assert len(sent) == 200
        assert time.monotonic() - started < 10, "produce waited for the stalled connections"
        held = metric_sum(scrape(broker), "ringtail_budget_used_bytes", budget="request")
        assert held >= 4 * frame, f"the stalled frames should be charged ({held} bytes)"
    finally:
        for s in socks:
            s.close()


def test_an_idle_connection_is_closed_and_a_busy_one_is_not(broker_factory):
    broker = broker_factory("--connections-max-idle-ms", "1500")
    with kwire.connect(broker.bootstrap) as idle, kwire.connect(broker.bootstrap) as busy:
        started = time.monotonic()
        while time.monotonic() - started < 4.0:
            error, _ = kwire.api_versions(busy)
            assert error == kwire.NONE
            time.sleep(0.5)
        assert closed_within(idle, 2.0), "an idle connection was left open past connections-max-idle-ms"
        error, _ = kwire.api_versions(busy)
        assert error == kwire.NONE, "a connection with a request every 500 ms was closed"
    assert metric_sum(scrape(broker), "ringtail_connections_closed_total", reason="idle") >= 1


# ---- connection caps ----------------------------------------------------------------------

def open_answering(bootstrap: str, n: int) -> list[socket.socket]:
    socks = [kwire.connect(bootstrap) for _ in range(n)]
    for s in socks:
        error, _ = kwire.api_versions(s)
        assert error == kwire.NONE
    return socks


@pytest.mark.parametrize("flags,allowed,reason", [
    (["--max-connections-per-ip", "3"], 3, "max_connections_per_ip"),
    (["--max-connections", "3"], 3, "max_connections"),
    (["--max-connections-per-ip", "2", "--max-connections-per-ip-overrides", "127.0.0.1:5"], 5,
     "max_connections_per_ip"),
], ids=["per-ip", "total", "override"])
def test_the_newest_connection_over_a_cap_is_closed(broker_factory, flags, allowed, reason):
    broker = broker_factory(*flags)
    time.sleep(0.5)  # the start-up probes' connections are gone
    held = open_answering(broker.bootstrap, allowed)
    try:
        with kwire.connect(broker.bootstrap) as extra:
            assert closed_within(extra, 5.0), "a connection over the cap was served"
        for s in held:
            error, _ = kwire.api_versions(s)
            assert error == kwire.NONE, "a connection within the cap was disturbed"
        held.pop().close()
        time.sleep(0.3)
        held.extend(open_answering(broker.bootstrap, 1))
    finally:
        for s in held:
            s.close()
    assert metric_sum(scrape(broker), "ringtail_connections_refused_total", reason=reason) >= 1


def test_start_up_refuses_a_request_budget_smaller_than_a_request(tmp_path):
    result = subprocess.run(
        [str(ringtail_bin()), "serve", "--listen", f"127.0.0.1:{free_port()}", "--admin-listen", "none",
         "--data-dir", str(tmp_path / "data"), "--shards", "2",
         "--queued-max-request-bytes", str(MIB), "--request-bytes-max", str(MIB)],
        capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "queued-max-request-bytes" in result.stderr, result.stderr


# ---- caps on state a client can grow -----------------------------------------------------

def test_partitions_per_shard_cap_is_a_policy_violation(broker_factory):
    # __consumer_offsets puts 8 partitions on each of the 2 shards already.
    broker = broker_factory("--partitions-per-shard-max", "12")
    big, small = topic_name("big"), topic_name("small")
    with kwire.connect(broker.bootstrap) as s:
        result = kwire.create_topics_v1(s, [(big, 10)])
        error, message = result[big]
        assert error == POLICY_VIOLATION, result
        assert "partitions-per-shard-max" in message, message
        assert kwire.create_topics_v1(s, [(small, 4)])[small][0] == kwire.NONE
    sent = produce_numbered(broker.bootstrap, small, 100, 4)
    assert len(sent) == 100


def test_too_many_topics_in_one_request_is_invalid_request(broker):
    names = [f"many-{uuid.uuid4().hex[:6]}-{i}" for i in range(1001)]
    with kwire.connect(broker.bootstrap) as s:
        result = kwire.create_topics_v1(s, [(n, 1) for n in names])
        assert {e for e, _ in result.values()} == {INVALID_REQUEST}, set(result.values())
        # None of them was created: the first can still be created on its own.
        assert kwire.create_topics_v1(s, [(names[0], 1)])[names[0]][0] == kwire.NONE


def test_committed_offsets_per_group_are_capped(broker_factory):
    """A group holds offsets for at most --offsets-per-group-max partitions: the commit past it
    gets INVALID_COMMIT_OFFSET_SIZE, offsets the group has can still move, and other groups
    are not affected."""
    cap, partitions = 40, 64
    broker = broker_factory("--offsets-per-group-max", str(cap))
    group, other, topic = topic_name("g"), topic_name("g"), topic_name("offsets")
    create_topic(broker.bootstrap, topic, partitions)
    with kwire.connect(broker.bootstrap) as s:
        result = kwire.offset_commit_v7(s, group, -1, "", {(topic, p): (p, None) for p in range(partitions)})
        errors = [result[(topic, p)] for p in range(partitions)]
        assert errors.count(kwire.NONE) == cap, errors
        assert errors.count(INVALID_COMMIT_OFFSET_SIZE) == partitions - cap, errors
        assert kwire.offset_commit_v7(s, group, -1, "", {(topic, 7): (70, None)})[(topic, 7)] == kwire.NONE
        assert kwire.offset_commit_v7(s, group, -1, "", {(topic, 63): (1, None)})[(topic, 63)] == \
            INVALID_COMMIT_OFFSET_SIZE
        result = kwire.offset_commit_v7(s, other, -1, "", {(topic, p): (p, None) for p in range(cap)})
        assert set(result.values()) == {kwire.NONE}
        _, committed = kwire.offset_fetch_v5(s, group, {topic: [7, 63]})
        assert committed[(topic, 7)][0] == 70
        assert committed[(topic, 63)][0] == -1
    text = scrape(broker)
    series = [l for l, _ in samples(text, "ringtail_consumer_group_committed_offset") if l["group"] == group]
    assert len(series) == cap


def test_idempotent_producers_past_the_cap_evict_the_least_recent(broker_factory):
    broker = broker_factory("--durability", "async")
    topic = topic_name("producers")
    create_topic(broker.bootstrap, topic, 1)
    producers = 10_001
    with kwire.connect(broker.bootstrap) as s:
        # Pipelined: InitProducerId then one idempotent batch per producer.
        for chunk in range(0, producers, 500):
            n = min(500, producers - chunk)
            s.sendall(b"".join(kwire.request(kwire.API_INIT_PRODUCER_ID, 1, string(None) + i32(60000), 10 + i)
                               for i in range(n)))
            ids = []
            for _ in range(n):
                r = kwire.Reader(kwire.recv_frame(s)[4:])
                r.i32()
                error, pid, epoch = r.i16(), r.i64(), r.i16()
                assert error == kwire.NONE
                ids.append((pid, epoch))
            batches = [kwire.record_batch([b"v"], producer=(pid, epoch, 0)) for pid, epoch in ids]
            for pid_batch in batches:
                error, _ = kwire.produce_v3(s, topic, 0, pid_batch)
                assert error == kwire.NONE
    text = scrape(broker)
    assert metric_sum(text, "ringtail_producers_evicted_total") >= 1
    assert metric_sum(text, "ringtail_partition_idempotent_producers", topic=topic) == 10_000


def produce_multi_v3(sock: socket.socket, topic: str, batches: dict[int, bytes]) -> dict[int, int]:
    """One Produce v3 request (acks=1) with a batch for each of several partitions. Returns
    {partition: error_code}."""
    body = (string(None) + struct.pack(">hi", 1, 10000)
            + array([string(topic) + array([i32(p) + kwire.bytes_field(b) for p, b in batches.items()])]))
    r = kwire.roundtrip(sock, kwire.API_PRODUCE, 3, body)
    topics = r.array(lambda r: (r.string(), r.array(lambda r: (r.i32(), r.i16(), r.i64(), r.i64()))))
    return {p: error for _, parts in topics for p, error, _, _ in parts}


def test_cache_of_quiet_partitions_stays_within_the_shard_budget(broker_factory):
    """Multi-partition produce requests, then silence: the batch caches of all partitions of a
    shard hold at most the shard's cache budget, and each small batch was copied out of its
    large request frame rather than pinning it."""
    budget = 16 * MIB
    broker = broker_factory("--cache-budget-bytes", str(budget), "--durability", "async")
    topic = topic_name("quiet")
    partitions, requests = 32, 40
    create_topic(broker.bootstrap, topic, partitions)
    batch = kwire.record_batch([b"q" * 1000] * 50)  # ~50 KB, a 32nd of each ~1.6 MB frame
    with kwire.connect(broker.bootstrap) as s:
        for _ in range(requests):  # ~64 MB over 32 partitions: 4x each shard's budget
            errors = produce_multi_v3(s, topic, {p: batch for p in range(partitions)})
            assert set(errors.values()) == {kwire.NONE}, errors
    time.sleep(1.0)
    text = scrape(broker)
    cached = {l["shard"]: v for l, v in samples(text, "ringtail_budget_used_bytes") if l["budget"] == "cache"}
    assert len(cached) == 2
    for shard, used in cached.items():
        assert used <= budget, f"shard {shard} caches {used} bytes, budget {budget}"
    assert sum(cached.values()) > budget // 2, "the caches should be in use"
    assert metric_sum(text, "ringtail_produce_pinning_copies_total") == partitions * requests
    got = consume_all(broker.bootstrap, topic, partitions, timeout_s=60)
    assert sum(len(v) for v in got.values()) == partitions * requests * 50


def test_batches_kept_in_their_topics_codec_are_copied_out_of_the_frame_too(broker):
    """A topic with a compression.type takes the recompression path; a batch already in its codec
    is kept as received, and a small one of a large multi-partition request is still copied out
    of the frame rather than pinning the whole frame in the cache."""
    topic = topic_name("pinned-codec")
    partitions = 16
    create_topic(broker.bootstrap, topic, partitions, {"compression.type": "uncompressed"})
    batch = kwire.record_batch([b"p" * 1000] * 20)  # ~20 KB, uncompressed already: a 16th of the frame
    with kwire.connect(broker.bootstrap) as s:
        errors = produce_multi_v3(s, topic, {p: batch for p in range(partitions)})
        assert set(errors.values()) == {kwire.NONE}, errors
    text = scrape(broker)
    assert metric_sum(text, "ringtail_produce_pinning_copies_total") == partitions


# ---- storage errors ----------------------------------------------------------------------

def fetch_until_error(bootstrap: str, topic: str, end: int) -> int:
    """Fetches a partition from offset 0 until an error or the end; returns the error code."""
    offset = 0
    with kwire.connect(bootstrap) as s:
        while offset < end:
            r = kwire.fetch_v4(s, topic, 0, offset)
            if r["error_code"] != kwire.NONE:
                return r["error_code"]
            headers = kwire.parse_batch_headers(r["records"])
            if not headers:
                return kwire.NONE
            offset = headers[-1]["base_offset"] + headers[-1]["last_offset_delta"] + 1
    return kwire.NONE


def two_topics_with_sealed_segments(broker) -> tuple[str, str, int]:
    """Two one-partition topics of 3 MB each in 1 MiB segments of ~16 KB batches: the middle of
    a sealed segment is read only when a consumer reaches it (start-up checks segment tails)."""
    a, b = topic_name("damaged"), topic_name("healthy")
    count = 3000
    for t in (a, b):
        create_topic(broker.bootstrap, t, 1, {"segment.bytes": str(MIB)})
        p = producer(broker.bootstrap, **{"batch.size": 16384})
        for i in range(count):
            p.produce(t, value=b"%08d" % i + b"v" * 1016, partition=0)
            if i % 500 == 0:
                p.poll(0)
        assert p.flush(60) == 0
    return a, b, count


def assert_only_that_partition_is_offline(broker, damaged: str, healthy: str, count: int):
    assert fetch_until_error(broker.bootstrap, damaged, count) == KAFKA_STORAGE_ERROR
    with kwire.connect(broker.bootstrap) as s:
        error, _ = kwire.produce_v3(s, damaged, 0, kwire.record_batch([b"after"]))
        assert error == KAFKA_STORAGE_ERROR
        error, _ = kwire.produce_v3(s, healthy, 0, kwire.record_batch([b"after"]))
        assert error == kwire.NONE
    got = consume_all(broker.bootstrap, healthy, 1, timeout_s=30)
    assert len(got[0]) == count + 1
    fresh = topic_name("fresh")
    assert len(produce_numbered(broker.bootstrap, fresh, 100, 2)) == 100
    assert_alive(broker)
    text = scrape(broker)
    assert metric_sum(text, "ringtail_partition_offline", topic=damaged) == 1
    assert metric_sum(text, "ringtail_partition_offline", topic=healthy) == 0
    assert f"{damaged}-0" in broker.log_text()


def test_a_corrupt_sealed_batch_takes_one_partition_offline(broker_factory):
    broker = broker_factory()
    damaged, healthy, count = two_topics_with_sealed_segments(broker)
    broker.stop_cleanly()
    segment = broker.data_dir / f"{damaged}-0" / ("0" * 20 + ".log")
    assert segment.stat().st_size > 512 * 1024, "the first segment should be sealed and nearly full"
    flip_middle_byte(segment)
    broker.start()
    assert_only_that_partition_is_offline(broker, damaged, healthy, count)


def test_the_scrubber_finds_a_flipped_byte_before_any_read_and_takes_that_partition_offline(broker_factory):
    """No client reads the damaged topic: the background scrubber verifies every sealed segment
    after the restart, finds the flipped byte, and takes only that partition offline; the
    healthy topic's sealed segments are verified whole. With the scrubber off, nothing is found
    until a read reaches the damage."""
    broker = broker_factory("--scrub-bytes-per-second", "0")
    damaged, healthy, count = two_topics_with_sealed_segments(broker)
    broker.stop_cleanly()
    flip_middle_byte(broker.data_dir / f"{damaged}-0" / ("0" * 20 + ".log"))
    broker.start()
    time.sleep(1.0)
    text = scrape(broker)
    assert metric_sum(text, "ringtail_scrub_bytes_total") == 0
    assert metric_sum(text, "ringtail_partition_offline", topic=damaged) == 0
    broker.stop_cleanly()
    broker.args = [a for a in broker.args if a not in ("--scrub-bytes-per-second", "0")]
    broker.start()

    def found():
        text = scrape(broker)
        return metric_sum(text, "ringtail_scrub_damage_found_total") == 1 and \
            metric_sum(text, "ringtail_scrub_segments_verified_total") >= 2 and text
    text = wait_for(found, timeout_s=30, what=lambda: "the scrubber: " + " ".join(l for l in scrape(broker).splitlines() if "scrub" in l and not l.startswith("#")))
    assert metric_sum(text, "ringtail_partition_offline", topic=damaged) == 1
    assert metric_sum(text, "ringtail_partition_offline", topic=healthy) == 0
    assert metric_sum(text, "ringtail_scrub_bytes_total") >= 2 * MIB
    assert "partition offline after a storage error" in broker.log_text()
    assert_only_that_partition_is_offline(broker, damaged, healthy, count)


def test_a_read_error_takes_one_partition_offline(broker_factory):
    broker = broker_factory()
    damaged, healthy, count = two_topics_with_sealed_segments(broker)
    broker.stop_cleanly()
    broker.extra_env = {"RINGTAIL_FAULT_READ_EIO": f"/{damaged}-0/"}
    broker.start()
    assert_only_that_partition_is_offline(broker, damaged, healthy, count)
