"""The admin endpoint: /metrics counters move by exactly what clients did, /ready is false while
the broker recovers its logs after a crash and true after, /health answers throughout, and
consumer group lag is exported."""

import re
import time
import urllib.error
import urllib.request

import helpers
from confluent_kafka import TopicPartition


def get(broker, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{broker.admin_port}{path}", timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


SAMPLE = re.compile(r'^([a-z_]+)\{([^}]*)\} (\S+)$')


def samples(text: str, name: str, **labels: str) -> float:
    """The sum of every sample of `name` whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if not m or m.group(1) != name:
            continue
        have = dict(kv.split("=", 1) for kv in re.findall(r'[a-z_]+="[^"]*"', m.group(2)))
        if all(have.get(k) == f'"{v}"' for k, v in labels.items()):
            total += float(m.group(3))
    return total


def scrape(broker) -> str:
    status, text = get(broker, "/metrics")
    assert status == 200, text
    assert text.endswith("# EOF\n")
    return text


def test_metrics_count_exactly_what_was_produced_and_fetched(broker):
    topic, partitions, count = helpers.topic_name("metrics"), 3, 2_500
    helpers.create_topic(broker.bootstrap, topic, partitions)
    before = scrape(broker)
    assert samples(before, "ringtail_topic_records_in_total", topic=topic) == 0
    produce_requests_before = samples(before, "ringtail_requests_total", api="Produce")
    reports = helpers.produce_numbered(broker.bootstrap, topic, count, partitions)
    assert len(reports) == count
    after = scrape(broker)
    assert samples(after, "ringtail_topic_records_in_total", topic=topic) == count
    value_bytes = sum(len(v) for v in reports.values())
    assert samples(after, "ringtail_topic_bytes_in_total", topic=topic) > value_bytes
    assert samples(after, "ringtail_requests_total", api="Produce") > produce_requests_before
    assert samples(after, "ringtail_request_latency_seconds_count", api="Produce") == \
        samples(after, "ringtail_requests_total", api="Produce")
    assert samples(after, "ringtail_partition_high_watermark", topic=topic) == count
    assert samples(after, "ringtail_partition_segments", topic=topic) >= partitions
    assert samples(after, "ringtail_flush_latency_seconds_count") > 0
    assert samples(after, "ringtail_fdatasync_latency_seconds_count") > 0
    # Reading everything back moves the out counters by the same number of records.
    got = helpers.consume_all(broker.bootstrap, topic, partitions)
    assert sum(len(m) for m in got.values()) == count
    fetched = scrape(broker)
    assert samples(fetched, "ringtail_topic_records_out_total", topic=topic) == count
    assert samples(fetched, "ringtail_topic_bytes_out_total", topic=topic) == \
        samples(after, "ringtail_topic_bytes_in_total", topic=topic)
    assert samples(fetched, "ringtail_batch_cache_hits_total") > 0
    # Every response (these are small: they fit a socket buffer) went out in one vectored send:
    # size, headers and batches together, not a write per chunk.
    written = samples(fetched, "ringtail_responses_written_total")
    assert written > samples(after, "ringtail_requests_total", api="Produce")
    assert samples(fetched, "ringtail_response_sends_total") == written


def test_refused_requests_are_counted_and_logged(broker):
    import kwire
    topic = helpers.topic_name("metrics-refused")
    helpers.create_topic(broker.bootstrap, topic, 1)
    before = samples(scrape(broker), "ringtail_request_errors_total", api="Produce")
    with kwire.connect(broker.bootstrap) as sock:
        error, _ = kwire.produce_v3(sock, topic, 0, kwire.corrupt_crc(kwire.record_batch([b"x"])))
        assert error == 2  # CORRUPT_MESSAGE
    assert samples(scrape(broker), "ringtail_request_errors_total", api="Produce") == before + 1
    helpers.wait_for(lambda: "produce refused" in broker.log_text() and "CRC-32C mismatch" in broker.log_text(),
                     5, "a log line with the reason")


def test_ready_is_false_while_recovering_and_true_after(broker_factory):
    broker = broker_factory("--default-partitions", "1")
    assert get(broker, "/ready") == (200, "ready\n")
    assert get(broker, "/health")[0] == 200
    # Many partitions with unsynced tails make recovery after kill -9 take a while.
    topic, partitions = helpers.topic_name("recover"), 300
    helpers.create_topic(broker.bootstrap, topic, partitions, {"ringtail.durability": "async"})
    p = helpers.producer(broker.bootstrap, **{"acks": 1})
    for i in range(partitions * 20):
        p.produce(topic, value=b"x" * 200, partition=i % partitions)
        p.poll(0)
    assert p.flush(60) == 0
    broker.kill9()
    broker.start(wait=False)
    seen = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            status, body = get(broker, "/ready")
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.002)
            continue  # the admin listener is not bound yet
        seen.append(status)
        if status == 200:
            break
        assert status == 503 and body.startswith("not ready: recovering"), (status, body)
        assert get(broker, "/health")[0] == 200
        time.sleep(0.002)
    assert seen and seen[-1] == 200, f"never ready: {seen[-5:]}"
    assert 503 in seen, "never saw /ready false during recovery"
    # Ready means clients are served.
    assert helpers.partition_count(broker.bootstrap, topic) == partitions


def test_consumer_group_lag(broker):
    topic, group = helpers.topic_name("lag"), helpers.topic_name("lag-group")
    helpers.create_topic(broker.bootstrap, topic, 1)
    helpers.produce_numbered(broker.bootstrap, topic, 100, 1)
    c = helpers.consumer(broker.bootstrap, **{"group.id": group})
    try:
        c.commit(offsets=[TopicPartition(topic, 0, 40)], asynchronous=False)
    finally:
        c.close()
    text = scrape(broker)
    assert samples(text, "ringtail_consumer_group_committed_offset", group=group, topic=topic, partition="0") == 40
    assert samples(text, "ringtail_consumer_group_lag", group=group, topic=topic, partition="0") == 60


def test_admin_endpoint_answers_bad_requests_and_unknown_paths(broker):
    import socket
    assert get(broker, "/nope")[0] == 404
    with socket.create_connection(("127.0.0.1", broker.admin_port), timeout=10) as s:
        s.sendall(b"garbage\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 400")
    with socket.create_connection(("127.0.0.1", broker.admin_port), timeout=10) as s:
        s.sendall(b"POST /metrics HTTP/1.1\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 405")
    assert get(broker, "/ready")[0] == 200
