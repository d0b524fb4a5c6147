"""Hostile and malformed input over raw sockets: the broker must refuse what it cannot read
(closing that connection or answering with Kafka's error code), never crash, and keep serving
every other client."""

import gzip
import os
import random
import shutil
import socket
import struct
import subprocess
import time

import pytest

import helpers
import kwire
from kwire import i8, i16, i32, i64, string

ANSWER_TIMEOUT_S = 10.0


def assert_alive(broker):
    """The process is still running and a new connection gets ApiVersions answered."""
    assert broker.is_running(), f"broker exited with code {broker.proc.returncode}"
    os.kill(broker.pid, 0)  # raises if the pid is gone
    assert kwire.broker_answers(broker.bootstrap), "broker no longer answers ApiVersions on a new connection"


def response_or_close(sock: socket.socket) -> bytes | None:
    """The next response frame, or None if the broker closed the connection. Fails if neither
    happens within ANSWER_TIMEOUT_S: a broker must not sit on an unreadable request."""
    sock.settimeout(ANSWER_TIMEOUT_S)
    try:
        return kwire.recv_frame(sock)
    except socket.timeout:
        raise AssertionError(f"no answer and no close within {ANSWER_TIMEOUT_S} s")


@pytest.mark.parametrize("size", [2**31 - 1, 100 * 2**20 + 1, -1, -(2**31), 0, 7],
                         ids=["i32max", "over-default-limit", "minus1", "i32min", "zero", "seven"])
def test_bad_frame_size_closes_connection(broker, size):
    with kwire.connect(broker.bootstrap) as bystander, kwire.connect(broker.bootstrap) as s:
        s.sendall(struct.pack(">i", size) + b"\x00" * 16)
        assert kwire.closed_by_peer(s, ANSWER_TIMEOUT_S), f"frame size {size}: connection left open"
        # Another client, connected before and after, is unaffected.
        error, _ = kwire.api_versions(bystander)
        assert error == kwire.NONE
    assert_alive(broker)


def test_request_bytes_max_flag(broker_factory):
    broker = broker_factory("--request-bytes-max", "1024")
    with kwire.connect(broker.bootstrap) as s:
        error, _ = kwire.api_versions(s)
        assert error == kwire.NONE
        # 1025 bytes: one over the limit; the broker must refuse it from the size alone.
        s.sendall(struct.pack(">i", 1025) + kwire.header(kwire.API_METADATA, 1, 2) + b"\x00" * 100)
        assert kwire.closed_by_peer(s, ANSWER_TIMEOUT_S)
    with kwire.connect(broker.bootstrap) as s:
        # Exactly at the limit is allowed: a Metadata v1 request padded with a long client id.
        client_id = "x" * (1024 - 8 - 2 - 4)
        payload = (i16(kwire.API_METADATA) + i16(1) + i32(3) + string(client_id) + i32(0))
        assert len(payload) == 1024
        s.sendall(kwire.frame(payload))
        resp = kwire.recv_frame(s)
        assert resp is not None and struct.unpack(">i", resp[:4])[0] == 3
    assert_alive(broker)


@pytest.mark.parametrize("api_key", [-1, 9999, 32767], ids=["minus1", "9999", "i16max"])
def test_unknown_api_key_closes_connection(broker, api_key):
    with kwire.connect(broker.bootstrap) as s:
        s.sendall(kwire.request(api_key, 0, b"\x00" * 32))
        answer = response_or_close(s)
        assert answer is None, f"API key {api_key}: expected the connection closed, got {answer!r}"
    assert_alive(broker)


def test_api_versions_unsupported_version(broker):
    with kwire.connect(broker.bootstrap) as s:
        # A v99 request body is unknown; it is read as v0 and answered in v0 with error 35.
        s.sendall(kwire.request(kwire.API_API_VERSIONS, 99, b"\x07future-bytes\x00\x00", correlation_id=99))
        resp = kwire.recv_frame(s)
        assert resp is not None, "connection closed instead of an UNSUPPORTED_VERSION answer"
        r = kwire.Reader(resp)
        assert r.i32() == 99, "correlation id"
        assert r.i16() == kwire.UNSUPPORTED_VERSION
        keys = {}
        for _ in range(r.i32()):
            key, lo, hi = r.i16(), r.i16(), r.i16()
            assert lo <= hi
            keys[key] = (lo, hi)
        assert r.remaining() == 0, f"{r.remaining()} bytes beyond the v0 response body"
        assert keys, "the api_keys list must say which versions to use"
        assert kwire.API_API_VERSIONS in keys and keys[kwire.API_API_VERSIONS][0] == 0
        # As with Kafka, the client retries on the same connection with a version from the list.
        error, again = kwire.api_versions(s, version=0, correlation_id=100)
        assert error == kwire.NONE
        assert again[kwire.API_API_VERSIONS] == keys[kwire.API_API_VERSIONS]
        for key in (kwire.API_PRODUCE, kwire.API_FETCH, kwire.API_LIST_OFFSETS, kwire.API_METADATA,
                    kwire.API_API_VERSIONS, kwire.API_CREATE_TOPICS):
            assert key in again, f"API {key} missing from {sorted(again)}"
    assert_alive(broker)


def huge_array_requests():
    """Requests whose first array claims 0x7fffffff elements with only 4 bytes following."""
    huge = i32(0x7FFFFFFF) + b"\x00\x00\x00\x01"
    return {
        "metadata-v1": (kwire.API_METADATA, 1, huge),
        "produce-v3": (kwire.API_PRODUCE, 3, string(None) + i16(-1) + i32(1000) + huge),
        "fetch-v4": (kwire.API_FETCH, 4, i32(-1) + i32(100) + i32(1) + i32(1 << 20) + i8(0) + huge),
        "list-offsets-v1": (kwire.API_LIST_OFFSETS, 1, i32(-1) + huge),
        "create-topics-v1": (kwire.API_CREATE_TOPICS, 1, huge),
    }


@pytest.mark.parametrize("name", list(huge_array_requests()))
def test_huge_array_count_is_refused(broker, name):
    api_key, version, body = huge_array_requests()[name]
    with kwire.connect(broker.bootstrap) as s:
        s.sendall(kwire.request(api_key, version, body, correlation_id=5))
        answer = response_or_close(s)
        if answer is not None:
            assert struct.unpack(">i", answer[:4])[0] == 5, "an answer must carry the request's correlation id"
            assert len(answer) < 1 << 16, f"{len(answer)}-byte answer to a 20-byte request"
    assert_alive(broker)


def test_produce_with_bad_crc_is_corrupt_message(broker):
    topic = "hostile-crc"
    with kwire.connect(broker.bootstrap) as s:
        assert kwire.create_topics_v1(s, [(topic, 1)]) == {topic: (kwire.NONE, None)}
        good = kwire.record_batch([b"first", b"second"])
        assert kwire.produce_v3(s, topic, 0, good) == (kwire.NONE, 0)

        error, base_offset = kwire.produce_v3(s, topic, 0, kwire.corrupt_crc(kwire.record_batch([b"bad"])))
        assert error == kwire.CORRUPT_MESSAGE, f"bad CRC answered with error {error}"
        assert base_offset == -1

        # Nothing of the refused batch was stored: the next batch follows the first.
        assert kwire.produce_v3(s, topic, 0, kwire.record_batch([b"third"])) == (kwire.NONE, 2)
        fetched = kwire.fetch_v4(s, topic, 0, 0)
        assert fetched["error_code"] == kwire.NONE and fetched["high_watermark"] == 3
        batches = kwire.parse_batch_headers(fetched["records"])
        assert [(b["base_offset"], b["last_offset_delta"], b["crc_ok"]) for b in batches] == [
            (0, 1, True), (2, 0, True)]
    assert_alive(broker)


def test_invalid_topic_name(broker):
    with kwire.connect(broker.bootstrap) as s:
        md = kwire.metadata_v1(s, ["a b"])  # Metadata v1 asks for auto-creation; the name must be refused
        assert md["topics"] == {"a b": (kwire.INVALID_TOPIC_EXCEPTION, 0)}
        created = kwire.create_topics_v1(s, [("a b", 1)])
        assert created["a b"][0] == kwire.INVALID_TOPIC_EXCEPTION
        assert created["a b"][1], "the error message should say what is wrong with the name"
        assert "a b" not in kwire.metadata_v1(s, None)["topics"]
        error, _ = kwire.produce_v3(s, "a b", 0, kwire.record_batch([b"x"]))
        assert error == kwire.INVALID_TOPIC_EXCEPTION, f"produce to an invalid name answered {error}"


def test_fetch_of_an_unknown_partition_is_answered_at_once(broker):
    with kwire.connect(broker.bootstrap) as s:
        started = time.monotonic()
        fetched = kwire.fetch_v4(s, "no-such-topic", 0, 0, max_wait_ms=5000)
        assert fetched["error_code"] == kwire.UNKNOWN_TOPIC_OR_PARTITION
        assert time.monotonic() - started < 2, "an unknown partition should not long-poll"
    assert_alive(broker)
    assert not list(broker.data_dir.glob("a b*")), "a directory was made for an invalid topic"
    assert_alive(broker)


def valid_bodies() -> list[tuple[int, int, bytes]]:
    """Well-formed requests to mutate: flipping bytes in them reaches deep into the decoders."""
    topic = "garbage-target"
    return [
        (kwire.API_METADATA, 1, kwire.array([string(topic)])),
        (kwire.API_PRODUCE, 3, string(None) + i16(1) + i32(1000)
         + kwire.array([string(topic) + kwire.array([i32(0) + kwire.bytes_field(kwire.record_batch([b"v"] * 3))])])),
        (kwire.API_FETCH, 4, i32(-1) + i32(0) + i32(1) + i32(1 << 16) + i8(0)
         + kwire.array([string(topic) + kwire.array([i32(0) + i64(0) + i32(1 << 16)])])),
        (kwire.API_LIST_OFFSETS, 1, i32(-1) + kwire.array([string(topic) + kwire.array([i32(0) + i64(-1)])])),
        (kwire.API_CREATE_TOPICS, 1, kwire.array([string("garbage-made") + i32(1) + i16(1)
                                                  + kwire.array([]) + kwire.array([])]) + i32(1000) + i8(0)),
        (kwire.API_API_VERSIONS, 0, b""),
    ]


def garbage_frame(rng: random.Random) -> bytes:
    kind = rng.random()
    if kind < 0.3:  # random bytes behind an honest size
        return kwire.frame(rng.randbytes(rng.randint(0, 4096)))
    if kind < 0.6:  # a real header, then random bytes
        api_key, version, _ = rng.choice(valid_bodies())
        return kwire.frame(kwire.header(api_key, version, rng.randint(0, 1 << 30))
                           + rng.randbytes(rng.randint(0, 2048)))
    if kind < 0.95:  # a real request with a few bytes changed or cut short
        api_key, version, body = rng.choice(valid_bodies())
        payload = bytearray(kwire.header(api_key, version, rng.randint(0, 1 << 30)) + body)
        for _ in range(rng.randint(1, 4)):
            payload[rng.randrange(len(payload))] = rng.randrange(256)
        if rng.random() < 0.3:
            payload = payload[:rng.randint(0, len(payload))]
        return kwire.frame(bytes(payload))
    # A size that promises more than is ever sent.
    return struct.pack(">i", rng.randint(8, 1 << 20)) + rng.randbytes(rng.randint(0, 64))


def test_random_garbage_frames(broker):
    seed = int(os.environ.get("E2E_SEED", time.time_ns() % 2**32))
    print(f"garbage seed: {seed} (rerun with E2E_SEED={seed})")
    rng = random.Random(seed)
    frames, connections = 1000, 50
    with kwire.connect(broker.bootstrap) as s:
        kwire.create_topics_v1(s, [("garbage-target", 2)])

    socks = [kwire.connect(broker.bootstrap) for _ in range(connections)]
    sent = 0
    try:
        for _ in range(frames):
            i = rng.randrange(connections)
            data = garbage_frame(rng)
            try:
                socks[i].sendall(data)
            except OSError:
                # The broker closed this one after an earlier frame: use a fresh connection.
                socks[i].close()
                socks[i] = kwire.connect(broker.bootstrap)
                try:
                    socks[i].sendall(data)
                except OSError:
                    pass
            sent += 1
    finally:
        for s in socks:
            s.close()
    assert sent == frames
    assert_alive(broker)
    with kwire.connect(broker.bootstrap) as s:
        md = kwire.metadata_v1(s, None)
        assert md["brokers"] == [(0, "127.0.0.1", broker.port, None)]
        assert md["topics"]["garbage-target"] == (kwire.NONE, 2)
    if shutil.which("kcat"):
        out = subprocess.run(["kcat", "-L", "-b", broker.bootstrap], capture_output=True, timeout=60)
        assert out.returncode == 0, out.stderr.decode(errors="replace")
        assert f"broker 0 at {broker.bootstrap}" in out.stdout.decode()


def gzip_batch(value: bytes) -> bytes:
    """A magic-2 batch of one keyless record whose records are gzip-compressed (codec 1)."""
    ts = int(time.time() * 1000)
    body = i8(0) + kwire.varint(0) + kwire.varint(0) + kwire.varint(-1) + kwire.varint(len(value)) + value \
        + kwire.varint(0)
    records = gzip.compress(kwire.varint(len(body)) + body)
    after_crc = i16(1) + i32(0) + i64(ts) + i64(ts) + i64(-1) + i16(-1) + i32(-1) + i32(1) + records
    after_length = i32(0) + i8(2) + struct.pack(">I", kwire.crc32c(after_crc)) + after_crc
    return i64(0) + i32(len(after_length)) + after_length


def test_small_compressed_batches_cannot_decompress_without_bound(broker):
    """A topic that stores its batches uncompressed rewrites compressed ones. Many small batches,
    each within max.message.bytes once decompressed, would make one small request take hundreds
    of megabytes: the request is refused by the limit on what it may be rewritten to, named in
    the answer, and the broker goes on. One such batch alone is stored."""
    topic = "hostile-recompress"
    helpers.create_topic(broker.bootstrap, topic, 1, {"compression.type": "uncompressed"})
    bomb = gzip_batch(b"\0" * 900_000)
    assert len(bomb) < 2000, len(bomb)
    with kwire.connect(broker.bootstrap) as s:
        error, base_offset, message = kwire.produce_v8(s, topic, 0, bomb * 300)
        assert error == kwire.CORRUPT_MESSAGE, f"answered with error {error}, base offset {base_offset}"
        assert message is not None and "the most the broker rewrites for one request" in message, message
        error, base_offset, _ = kwire.produce_v8(s, topic, 0, bomb)
        assert (error, base_offset) == (kwire.NONE, 0)
        fetched = kwire.fetch_v4(s, topic, 0, 0)
        batches = kwire.parse_batch_headers(fetched["records"])
        assert [(b["base_offset"], b["codec"], b["crc_ok"]) for b in batches] == [(0, 0, True)]
    assert_alive(broker)
