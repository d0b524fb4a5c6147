"""Zero-copy cold reads: verified sealed segment data goes from the file to the socket on the
shard's splice ring. The same requests against the same data directory, served with
--zero-copy-reads true and false, get byte-identical responses (every codec, offsets at and
inside batches and around segment boundaries, limits that stop mid-segment and at a segment's
end, many requests pipelined on one connection); a real client reads everything back; a
range the scrubber has not verified is never sent from the file, so damage there still gets
KAFKA_STORAGE_ERROR. Nothing here is timed."""

import os
import random
import re
import struct
import urllib.request

import kwire
from helpers import consume_all, create_topic, flip_middle_byte, producer, topic_name, wait_for
from kwire import array, i8, i32, i64, string

KAFKA_STORAGE_ERROR = 56
SEGMENT_BYTES = 1 << 20  # the smallest segment.bytes
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
# Verify everything at once after a restart: only verified ranges are sent from the file.
FAST_SCRUB = ["--scrub-bytes-per-second", "1000000000"]


def metric(broker, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{broker.admin_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    pattern = rf"^{re.escape(name)}(?:_total)?(?:\{{[^}}]*\}})? (\S+)$"
    return sum(float(v) for v in re.findall(pattern, text, re.M))


def fill(bootstrap: str) -> dict[str, list[bytes]]:
    """A one-partition topic per codec, ~4 MB in 1 MiB segments, batches of varying sizes."""
    rng = random.Random(21)
    topics = {}
    for codec in CODECS:
        t = topic_name(f"zc-{codec}")
        create_topic(bootstrap, t, 1, {"segment.bytes": str(SEGMENT_BYTES)})
        p = producer(bootstrap, **{"compression.type": codec, "linger.ms": 2, "batch.size": 16384})
        values = []
        for i in range(6000):
            # Mostly random (so compressed batches stay large), partly repetitive.
            v = b"%s-%06d-" % (codec.encode(), i) + rng.randbytes(rng.randrange(200, 1200)) + b"x" * rng.randrange(0, 400)
            values.append(v)
            p.produce(t, value=v, partition=0)
            if rng.random() < 0.02:
                p.flush()  # a small batch now and then
        assert p.flush(60) == 0
        topics[t] = values
    return topics


def segment_bases(broker, topic: str) -> list[int]:
    names = os.listdir(broker.data_dir / f"{topic}-0")
    return sorted(int(n[:-4]) for n in names if n.endswith(".log"))


def fetch_v4_request(topic: str, offset: int, max_bytes: int, correlation_id: int) -> bytes:
    body = (i32(-1) + i32(0) + i32(1) + i32(max_bytes) + i8(0)
            + array([string(topic) + array([i32(0) + i64(offset) + i32(max_bytes)])]))
    return kwire.request(kwire.API_FETCH, 4, body, correlation_id)


def plan(broker, topic: str, batches: list[dict]) -> list[tuple[int, int]]:
    """(offset, max_bytes) of the fetches: the first offset of every fifth batch and one inside
    it, the offsets around each segment boundary, with limits of one byte (one batch whatever
    its size), a few KB, more than a segment (a read stops at its segment's end), and less."""
    offsets = set()
    for b in batches[::5]:
        offsets.add(b["base_offset"])
        if b["last_offset_delta"] > 0:
            offsets.add(b["base_offset"] + 1 + b["last_offset_delta"] // 2)
    for base in segment_bases(broker, topic)[1:]:
        offsets.update({base - 1, base, base + 1})
    limits = [1, 5000, SEGMENT_BYTES + 1000, 256 << 10]
    return [(o, limits[i % len(limits)]) for i, o in enumerate(sorted(offsets))]


def pipelined(broker, topic: str, fetches: list[tuple[int, int]]) -> list[bytes]:
    """Every fetch sent on one connection before any response is read; the responses, whole."""
    with kwire.connect(broker.bootstrap, timeout=30) as s:
        requests = b"".join(fetch_v4_request(topic, o, m, i + 1) for i, (o, m) in enumerate(fetches))
        s.sendall(requests)
        out = []
        for i in range(len(fetches)):
            frame = kwire.recv_frame(s)
            assert frame is not None, f"connection closed after {i} of {len(fetches)} responses"
            assert struct.unpack(">i", frame[:4])[0] == i + 1, "responses out of order"
            out.append(frame)
        return out


def records_of(frame: bytes) -> tuple[int, bytes]:
    r = kwire.Reader(frame)
    r.i32()  # correlation id
    r.i32()  # throttle
    topics = r.array(lambda r: (r.string(), r.array(lambda r: {
        "partition": r.i32(), "error_code": r.i16(), "high_watermark": r.i64(),
        "last_stable_offset": r.i64(), "aborted": r.array(lambda r: (r.i64(), r.i64())),
        "records": r.bytes() or b""})))
    p = topics[0][1][0]
    return p["error_code"], p["records"]


def wait_verified(broker, topics: list[str]):
    """Until the scrubber has verified every sealed segment of the topics (and any others)."""
    sealed = sum(len(segment_bases(broker, t)) - 1 for t in topics)
    assert sealed >= 2 * len(topics), "each topic should have sealed segments"
    wait_for(lambda: metric(broker, "ringtail_scrub_segments_verified") >= sealed, timeout_s=60,
             what=lambda: f"{sealed} segments verified, {metric(broker, 'ringtail_scrub_segments_verified')} so far")


def test_cold_reads_from_the_file_are_byte_identical_to_copied_ones(broker_factory):
    broker = broker_factory(*FAST_SCRUB)
    topics = fill(broker.bootstrap)
    names = sorted(topics)
    plans = {}
    for t in names:
        batches = kwire.stored_batches(broker.bootstrap, t, 0)
        assert sum(b["last_offset_delta"] + 1 for b in batches) == len(topics[t])
        plans[t] = plan(broker, t, batches)

    def serve_all(zero_copy: bool) -> dict[str, list[bytes]]:
        broker.stop_cleanly()
        broker.args = [*FAST_SCRUB, "--zero-copy-reads", "true" if zero_copy else "false"]
        broker.start()  # the batch cache starts empty: every read is cold
        wait_verified(broker, names)
        return {t: pipelined(broker, t, plans[t]) for t in names}

    from_file = serve_all(True)
    sent_from_file = metric(broker, "ringtail_zero_copy_send_bytes")
    assert metric(broker, "ringtail_zero_copy_reads") > 0
    assert sent_from_file > 0
    assert metric(broker, "ringtail_zero_copy_send_failures") == 0
    # A real client reads every codec back whole, in order, through the same path.
    for t in names:
        got = consume_all(broker.bootstrap, t, 1, timeout_s=60)
        assert [m.value() for m in got[0]] == topics[t], f"{t}: consumed records differ"
    assert metric(broker, "ringtail_zero_copy_send_bytes") > sent_from_file

    copied = serve_all(False)
    assert metric(broker, "ringtail_zero_copy_reads") == 0

    for t in names:
        assert len(from_file[t]) == len(copied[t]) == len(plans[t])
        for (offset, max_bytes), a, b in zip(plans[t], from_file[t], copied[t]):
            error, records = records_of(b)
            assert error == 0 and records, f"{t} offset {offset}: error {error}, {len(records)} bytes"
            assert a == b, f"{t} offset {offset} max_bytes {max_bytes}: the responses differ"
            assert all(h["crc_ok"] for h in kwire.parse_batch_headers(records))


def test_a_damaged_range_not_yet_verified_is_never_sent_from_the_file(broker_factory):
    broker = broker_factory("--scrub-bytes-per-second", "0")
    t = topic_name("zc-damaged")
    create_topic(broker.bootstrap, t, 1, {"segment.bytes": str(SEGMENT_BYTES)})
    p = producer(broker.bootstrap, **{"batch.size": 16384})
    for i in range(1000):
        p.produce(t, value=b"%06d" % i + b"v" * 500, partition=0)
    assert p.flush(60) == 0
    broker.stop_cleanly()
    flip_middle_byte(broker.data_dir / f"{t}-0" / ("0" * 20 + ".log"))
    broker.start()
    with kwire.connect(broker.bootstrap) as s:
        r = kwire.fetch_v4(s, t, 0, 0, max_bytes=1 << 20)
    assert r["error_code"] == KAFKA_STORAGE_ERROR
    assert metric(broker, "ringtail_zero_copy_reads") == 0


def test_a_client_that_stops_reading_a_response_sent_from_the_file_is_disconnected(broker_factory):
    """The splice ring writes to the socket from a kernel worker: a reader that stalls makes
    the send fail after the write timeout and the connection close; the broker serves others."""
    broker = broker_factory(*FAST_SCRUB, "--request-read-timeout-ms", "2000")
    t = topic_name("zc-stall")
    create_topic(broker.bootstrap, t, 1, {"segment.bytes": str(1 << 20)})
    p = producer(broker.bootstrap, **{"batch.size": 65536})
    for i in range(20000):
        p.produce(t, value=b"%06d" % i + os.urandom(1000), partition=0)
        if i % 1000 == 0:
            p.poll(0)
    assert p.flush(60) == 0
    broker.stop_cleanly()
    broker.start()
    wait_verified(broker, [t])
    stalled = kwire.connect(broker.bootstrap)
    # Forty 1 MiB reads of verified data, pipelined, never read: far more than socket buffers hold.
    stalled.sendall(b"".join(fetch_v4_request(t, o * 500, 1 << 20, o + 1) for o in range(40)))
    wait_for(lambda: metric(broker, "ringtail_zero_copy_send_failures") >= 1, timeout_s=30,
             what="the stalled send to fail")
    assert kwire.closed_by_peer(stalled, timeout=20)
    stalled.close()
    got = consume_all(broker.bootstrap, t, 1, timeout_s=60)
    assert len(got[0]) == 20000
