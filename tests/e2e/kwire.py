"""Kafka wire protocol by hand, for tests that need exact bytes: request frames (header v1),
a few requests and response parsers, record batches (magic 2, CRC-32C), the classic consumer
group requests and the consumer protocol's subscription and assignment.

Only the non-flexible versions are encoded here; that is all the hostile tests need.
"""

import socket
import struct
import time

API_PRODUCE = 0
API_FETCH = 1
API_LIST_OFFSETS = 2
API_METADATA = 3
API_OFFSET_COMMIT = 8
API_OFFSET_FETCH = 9
API_FIND_COORDINATOR = 10
API_JOIN_GROUP = 11
API_HEARTBEAT = 12
API_LEAVE_GROUP = 13
API_SYNC_GROUP = 14
API_DESCRIBE_GROUPS = 15
API_LIST_GROUPS = 16
API_API_VERSIONS = 18
API_CREATE_TOPICS = 19
API_DELETE_TOPICS = 20
API_INIT_PRODUCER_ID = 22
API_OFFSET_FOR_LEADER_EPOCH = 23
API_DESCRIBE_CONFIGS = 32
API_DELETE_GROUPS = 42
API_INCREMENTAL_ALTER_CONFIGS = 44
API_OFFSET_DELETE = 47

NONE = 0
CORRUPT_MESSAGE = 2
UNKNOWN_TOPIC_OR_PARTITION = 3
OFFSET_METADATA_TOO_LARGE = 12
INVALID_TOPIC_EXCEPTION = 17
ILLEGAL_GENERATION = 22
INCONSISTENT_GROUP_PROTOCOL = 23
INVALID_GROUP_ID = 24
UNKNOWN_MEMBER_ID = 25
INVALID_SESSION_TIMEOUT = 26
UNSUPPORTED_VERSION = 35
NON_EMPTY_GROUP = 68
GROUP_ID_NOT_FOUND = 69
MEMBER_ID_REQUIRED = 79
FENCED_INSTANCE_ID = 82
GROUP_SUBSCRIBED_TO_TOPIC = 86

CONSUMER_OFFSETS_TOPIC = "__consumer_offsets"

CODEC_NAMES = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}


# ---- primitives ---------------------------------------------------------------------------

def i8(v): return struct.pack(">b", v)
def i16(v): return struct.pack(">h", v)
def i32(v): return struct.pack(">i", v)
def i64(v): return struct.pack(">q", v)


def string(s: str | None) -> bytes:
    if s is None:
        return i16(-1)
    b = s.encode()
    return i16(len(b)) + b


def bytes_field(b: bytes | None) -> bytes:
    if b is None:
        return i32(-1)
    return i32(len(b)) + b


def array(items: list[bytes]) -> bytes:
    return i32(len(items)) + b"".join(items)


def varint(v: int) -> bytes:
    """Zig-zag varint (Kafka's signed varint and varlong)."""
    z = (v << 1) ^ (v >> 63)
    out = bytearray()
    while True:
        byte = z & 0x7F
        z >>= 7
        if z:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class Reader:
    """Reads big-endian fields; raises on reading past the end."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError(f"read of {n} bytes at {self.pos} runs past the end ({len(self.data)})")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def i8(self): return struct.unpack(">b", self.take(1))[0]
    def i16(self): return struct.unpack(">h", self.take(2))[0]
    def i32(self): return struct.unpack(">i", self.take(4))[0]
    def u32(self): return struct.unpack(">I", self.take(4))[0]
    def i64(self): return struct.unpack(">q", self.take(8))[0]

    def string(self) -> str | None:
        n = self.i16()
        return None if n < 0 else self.take(n).decode()

    def bytes(self) -> bytes | None:
        n = self.i32()
        return None if n < 0 else self.take(n)

    def array(self, item) -> list:
        n = self.i32()
        return [] if n < 0 else [item(self) for _ in range(n)]

    def remaining(self) -> int:
        return len(self.data) - self.pos


# ---- CRC-32C (Castagnoli), table driven ------------------------------------------------------

def _crc32c_table():
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC32C[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283, "CRC-32C check value"


# ---- record batches -----------------------------------------------------------------------

def record_batch(values: list[bytes], base_timestamp_ms: int | None = None,
                 producer: tuple[int, int, int] = (-1, -1, -1)) -> bytes:
    """An uncompressed magic-2 record batch of keyless records, base offset 0; `producer` is
    (producer id, epoch, base sequence), none by default."""
    ts = int(time.time() * 1000) if base_timestamp_ms is None else base_timestamp_ms
    records = b""
    for i, v in enumerate(values):
        body = i8(0) + varint(0) + varint(i) + varint(-1) + varint(len(v)) + v + varint(0)
        records += varint(len(body)) + body
    producer_id, epoch, sequence = producer
    after_crc = (i16(0) + i32(len(values) - 1) + i64(ts) + i64(ts) + i64(producer_id) + i16(epoch)
                 + i32(sequence) + i32(len(values)) + records)
    crc = crc32c(after_crc)
    after_length = i32(0) + i8(2) + struct.pack(">I", crc) + after_crc
    return i64(0) + i32(len(after_length)) + after_length


def corrupt_crc(batch: bytes) -> bytes:
    """The same batch with its CRC field inverted (bytes 17..21)."""
    crc = struct.unpack(">I", batch[17:21])[0]
    return batch[:17] + struct.pack(">I", crc ^ 0xFFFFFFFF) + batch[21:]


def parse_batch_headers(records: bytes) -> list[dict]:
    """Headers of the whole batches in a fetched records field (a trailing partial batch is skipped)."""
    out = []
    r = Reader(records)
    while r.remaining() >= 61:
        start = r.pos
        base_offset = r.i64()
        length = r.i32()
        if r.remaining() < length:
            break
        r.i32()  # partition leader epoch
        magic = r.i8()
        crc = r.u32()
        body = r.data[r.pos:start + 12 + length]
        attributes = r.i16()
        last_offset_delta = r.i32()
        r.pos = start + 12 + length
        out.append({"base_offset": base_offset, "magic": magic, "codec": attributes & 7,
                    "last_offset_delta": last_offset_delta, "crc_ok": crc32c(body) == crc})
    return out


# ---- connections and frames ---------------------------------------------------------------

def header(api_key: int, version: int, correlation_id: int, client_id: str | None = "e2e-raw") -> bytes:
    """Request header v1."""
    return i16(api_key) + i16(version) + i32(correlation_id) + string(client_id)


def frame(payload: bytes) -> bytes:
    return i32(len(payload)) + payload


def request(api_key: int, version: int, body: bytes, correlation_id: int = 1) -> bytes:
    return frame(header(api_key, version, correlation_id) + body)


def connect(bootstrap: str, timeout: float = 10.0) -> socket.socket:
    host, port = bootstrap.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exact(sock: socket.socket, n: int) -> bytes | None:
    """n bytes, or None if the peer closed the connection first."""
    buf = bytearray()
    while len(buf) < n:
        try:
            chunk = sock.recv(n - len(buf))
        except ConnectionResetError:
            return None
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def recv_frame(sock: socket.socket) -> bytes | None:
    """One response frame (without its size), or None if the connection was closed."""
    size = recv_exact(sock, 4)
    if size is None:
        return None
    (n,) = struct.unpack(">i", size)
    assert 0 <= n < 1 << 30, f"response frame size {n}"
    return recv_exact(sock, n)


def roundtrip(sock: socket.socket, api_key: int, version: int, body: bytes,
              correlation_id: int = 1) -> Reader:
    """Sends a request and returns a reader positioned after the response header v0."""
    sock.sendall(request(api_key, version, body, correlation_id))
    resp = recv_frame(sock)
    assert resp is not None, f"connection closed instead of answering API {api_key} v{version}"
    r = Reader(resp)
    got = r.i32()
    assert got == correlation_id, f"correlation id {got}, expected {correlation_id}"
    return r


def closed_by_peer(sock: socket.socket, timeout: float = 10.0) -> bool:
    """True if the peer closes the connection (EOF or reset) within `timeout`, reading and
    discarding anything it sends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True
        if not chunk:
            return True
    return False


# ---- requests -----------------------------------------------------------------------------

def api_versions(sock: socket.socket, version: int = 0, correlation_id: int = 7) -> tuple[int, dict]:
    """ApiVersions at `version`, read as v0 (error code, api keys). Asserts the whole
    response is consumed when the response is v0 shaped. Returns (error_code, {key: (min, max)})."""
    r = roundtrip(sock, API_API_VERSIONS, version, b"", correlation_id)
    error = r.i16()
    keys = {}
    for _ in range(r.i32()):
        k, lo, hi = r.i16(), r.i16(), r.i16()
        keys[k] = (lo, hi)
    if version == 0 or error == UNSUPPORTED_VERSION:
        assert r.remaining() == 0, f"{r.remaining()} bytes after a v0 ApiVersions response"
    return error, keys


def broker_answers(bootstrap: str) -> bool:
    """A new connection gets a well-formed ApiVersions v0 answer with error 0."""
    try:
        with connect(bootstrap, timeout=10) as s:
            error, keys = api_versions(s)
            return error == NONE and API_API_VERSIONS in keys
    except (OSError, AssertionError):
        return False


def metadata_v1(sock: socket.socket, topics: list[str] | None) -> dict:
    """Metadata v1. Returns {"brokers": [...], "topics": {name: (error_code, partition_count)}}."""
    body = i32(-1) if topics is None else array([string(t) for t in topics])
    r = roundtrip(sock, API_METADATA, 1, body)
    brokers = r.array(lambda r: (r.i32(), r.string(), r.i32(), r.string()))
    r.i32()  # controller id
    out = {}
    for _ in range(r.i32()):
        error, name = r.i16(), r.string()
        r.i8()  # is_internal
        partitions = r.array(lambda r: (r.i16(), r.i32(), r.i32(), r.array(Reader.i32), r.array(Reader.i32)))
        out[name] = (error, len(partitions))
    assert r.remaining() == 0
    return {"brokers": brokers, "topics": out}


def create_topics_v1(sock: socket.socket, topics: list[tuple[str, int]], timeout_ms: int = 10000) -> dict:
    """CreateTopics v1. Returns {name: (error_code, error_message)}."""
    body = array([string(name) + i32(partitions) + i16(1) + array([]) + array([])
                  for name, partitions in topics]) + i32(timeout_ms) + i8(0)
    r = roundtrip(sock, API_CREATE_TOPICS, 1, body)
    out = {}
    for _ in range(r.i32()):
        name, error, message = r.string(), r.i16(), r.string()
        out[name] = (error, message)
    assert r.remaining() == 0
    return out


def list_offsets_v1(sock: socket.socket, topic: str, partitions: list[int], timestamp: int = -1) -> dict:
    """ListOffsets v1 (-1: latest, -2: earliest). Returns {partition: (error_code, offset)}."""
    body = i32(-1) + array([string(topic) + array([i32(p) + i64(timestamp) for p in partitions])])
    r = roundtrip(sock, API_LIST_OFFSETS, 1, body)
    out = {}
    for _ in range(r.i32()):
        r.string()
        for _ in range(r.i32()):
            p, error = r.i32(), r.i16()
            r.i64()  # timestamp
            offset = r.i64()
            out[p] = (error, offset)
    assert r.remaining() == 0
    return out


def list_offsets_v4(sock: socket.socket, topic: str, partition: int, timestamp: int = -1,
                    current_leader_epoch: int = -1) -> tuple[int, int, int]:
    """ListOffsets v4, which carries the client's current leader epoch (KIP-320) and answers the
    offset's leader epoch. Returns (error_code, offset, leader_epoch)."""
    body = i32(-1) + i8(0) + array([string(topic) + array([i32(partition) + i32(current_leader_epoch)
                                                           + i64(timestamp)])])
    r = roundtrip(sock, API_LIST_OFFSETS, 4, body)
    r.i32()  # throttle
    (topic_result,) = r.array(lambda r: (r.string(), r.array(
        lambda r: (r.i32(), r.i16(), r.i64(), r.i64(), r.i32()))))
    ((_, error, _, offset, epoch),) = topic_result[1]
    assert r.remaining() == 0
    return error, offset, epoch


def offset_for_leader_epoch_v3(sock: socket.socket, topic: str, partition: int, leader_epoch: int,
                               current_leader_epoch: int = -1, replica_id: int = -1) -> tuple[int, int, int]:
    """OffsetForLeaderEpoch v3: where `leader_epoch` ends on the leader. Returns
    (error_code, leader_epoch, end_offset)."""
    body = i32(replica_id) + array([string(topic) + array([i32(partition) + i32(current_leader_epoch)
                                                           + i32(leader_epoch)])])
    r = roundtrip(sock, API_OFFSET_FOR_LEADER_EPOCH, 3, body)
    r.i32()  # throttle
    (topic_result,) = r.array(lambda r: (r.string(), r.array(lambda r: (r.i16(), r.i32(), r.i32(), r.i64()))))
    ((error, _, epoch, end_offset),) = topic_result[1]
    assert r.remaining() == 0
    return error, epoch, end_offset


def produce_v3(sock: socket.socket, topic: str, partition: int, batch: bytes, acks: int = -1,
               correlation_id: int = 1, timeout_ms: int = 10000) -> tuple[int, int]:
    """Produce v3 of one batch to one partition. Returns (error_code, base_offset)."""
    body = (string(None) + i16(acks) + i32(timeout_ms)
            + array([string(topic) + array([i32(partition) + bytes_field(batch)])]))
    r = roundtrip(sock, API_PRODUCE, 3, body, correlation_id)
    topics = r.array(lambda r: (r.string(), r.array(lambda r: (r.i32(), r.i16(), r.i64(), r.i64()))))
    r.i32()  # throttle
    assert r.remaining() == 0
    assert len(topics) == 1 and topics[0][0] == topic and len(topics[0][1]) == 1, topics
    index, error, base_offset, _append_time = topics[0][1][0]
    assert index == partition
    return error, base_offset


def produce_v8(sock: socket.socket, topic: str, partition: int, batch: bytes, acks: int = -1,
               correlation_id: int = 1) -> tuple[int, int, str | None]:
    """Produce v8 of one batch to one partition. Returns (error_code, base_offset, error_message)."""
    body = (string(None) + i16(acks) + i32(10000)
            + array([string(topic) + array([i32(partition) + bytes_field(batch)])]))
    r = roundtrip(sock, API_PRODUCE, 8, body, correlation_id)

    def partition_response(r):
        index, error, base_offset, _append_time, _log_start = r.i32(), r.i16(), r.i64(), r.i64(), r.i64()
        r.array(lambda r: (r.i32(), r.string()))  # record errors
        return index, error, base_offset, r.string()

    topics = r.array(lambda r: (r.string(), r.array(partition_response)))
    r.i32()  # throttle
    assert r.remaining() == 0
    index, error, base_offset, message = topics[0][1][0]
    assert index == partition
    return error, base_offset, message


def init_producer_id_v1(sock: socket.socket, transactional_id: str | None = None) -> tuple[int, int, int]:
    """InitProducerId v1. Returns (error_code, producer_id, producer_epoch)."""
    r = roundtrip(sock, API_INIT_PRODUCER_ID, 1, string(transactional_id) + i32(60000))
    r.i32()  # throttle
    out = (r.i16(), r.i64(), r.i16())
    assert r.remaining() == 0
    return out


def fetch_v4(sock: socket.socket, topic: str, partition: int, offset: int,
             max_bytes: int = 1 << 20, max_wait_ms: int = 0, replica_id: int = -1) -> dict:
    """Fetch v4 of one partition (as a consumer, or as `replica_id`: -2 is Kafka's debugging id,
    served by any replica up to its log end). Returns error_code, high_watermark and records."""
    body = (i32(replica_id) + i32(max_wait_ms) + i32(1) + i32(max_bytes) + i8(0)
            + array([string(topic) + array([i32(partition) + i64(offset) + i32(max_bytes)])]))
    r = roundtrip(sock, API_FETCH, 4, body)
    r.i32()  # throttle
    topics = r.array(lambda r: (r.string(), r.array(lambda r: {
        "partition": r.i32(), "error_code": r.i16(), "high_watermark": r.i64(),
        "last_stable_offset": r.i64(),
        "aborted": r.array(lambda r: (r.i64(), r.i64())),
        "records": r.bytes() or b""})))
    assert r.remaining() == 0
    assert len(topics) == 1 and len(topics[0][1]) == 1, topics
    return topics[0][1][0]


def fetch_v11(sock: socket.socket, topic: str, partition: int, offset: int, rack: str = "",
              max_bytes: int = 1 << 20, max_wait_ms: int = 0) -> dict:
    """Fetch v11 of one partition as a consumer in `rack` (KIP-392's client.rack). Returns
    error_code, high_watermark, log_start_offset, preferred_read_replica and records."""
    body = (i32(-1) + i32(max_wait_ms) + i32(1) + i32(max_bytes) + i8(0) + i32(0) + i32(-1)
            + array([string(topic) + array([i32(partition) + i32(-1) + i64(offset) + i64(-1) + i32(max_bytes)])])
            + array([]) + string(rack))
    r = roundtrip(sock, API_FETCH, 11, body)
    r.i32()  # throttle
    assert r.i16() == 0  # top-level error
    r.i32()  # session id
    topics = r.array(lambda r: (r.string(), r.array(lambda r: {
        "partition": r.i32(), "error_code": r.i16(), "high_watermark": r.i64(),
        "last_stable_offset": r.i64(), "log_start_offset": r.i64(),
        "aborted": r.array(lambda r: (r.i64(), r.i64())),
        "preferred_read_replica": r.i32(),
        "records": r.bytes() or b""})))
    assert r.remaining() == 0
    assert len(topics) == 1 and len(topics[0][1]) == 1, topics
    return topics[0][1][0]


def stored_batches(bootstrap: str, topic: str, partition: int) -> list[dict]:
    """Headers of every batch of a partition, fetched from offset 0 with raw Fetch v4."""
    out = []
    with connect(bootstrap) as s:
        offset = 0
        while True:
            p = fetch_v4(s, topic, partition, offset)
            assert p["error_code"] == NONE, p
            batches = parse_batch_headers(p["records"])
            batches = [b for b in batches if b["base_offset"] + b["last_offset_delta"] >= offset]
            if not batches:
                assert offset >= p["high_watermark"], f"no batch at offset {offset} below {p}"
                return out
            out += batches
            offset = batches[-1]["base_offset"] + batches[-1]["last_offset_delta"] + 1


def replica_records(bootstrap: str, topic: str, partition: int) -> list[tuple[int, bytes]]:
    """Every batch a broker's own replica of a partition holds, as (base offset, batch bytes),
    read with the debugging replica id up to the replica's log end."""
    out = []
    with connect(bootstrap) as s:
        offset = 0
        while True:
            p = fetch_v4(s, topic, partition, offset, replica_id=-2)
            assert p["error_code"] == NONE, p
            records = p["records"]
            at, got = 0, []
            while len(records) - at >= 12:
                base, length = struct.unpack(">qi", records[at:at + 12])
                if at + 12 + length > len(records):
                    break
                got.append((base, records[at:at + 12 + length]))
                at += 12 + length
            got = [(b, r) for b, r in got if b >= offset or b + parse_batch_headers(r)[0]["last_offset_delta"] >= offset]
            if not got:
                return out
            out += got
            last = parse_batch_headers(got[-1][1])[0]
            offset = last["base_offset"] + last["last_offset_delta"] + 1


def topics_v1(sock: socket.socket, topics: list[str] | None = None) -> dict:
    """Metadata v1, topics only. Returns {name: {"error", "is_internal", "partitions"}}."""
    body = i32(-1) if topics is None else array([string(t) for t in topics])
    r = roundtrip(sock, API_METADATA, 1, body)
    r.array(lambda r: (r.i32(), r.string(), r.i32(), r.string()))  # brokers
    r.i32()  # controller id
    out = {}
    for _ in range(r.i32()):
        error, name, is_internal = r.i16(), r.string(), r.i8()
        partitions = r.array(lambda r: (r.i16(), r.i32(), r.i32(), r.array(Reader.i32), r.array(Reader.i32)))
        out[name] = {"error": error, "is_internal": bool(is_internal), "partitions": len(partitions)}
    assert r.remaining() == 0
    return out


def delete_topics_v1(sock: socket.socket, topics: list[str], timeout_ms: int = 10000) -> dict:
    """DeleteTopics v1. Returns {name: error_code}."""
    r = roundtrip(sock, API_DELETE_TOPICS, 1, array([string(t) for t in topics]) + i32(timeout_ms))
    r.i32()  # throttle
    out = dict(r.array(lambda r: (r.string(), r.i16())))
    assert r.remaining() == 0
    return out


# ---- configs ---------------------------------------------------------------------------------

RESOURCE_TOPIC = 2
RESOURCE_BROKER = 4


def incremental_alter_configs_v0(sock: socket.socket, resource_type: int, name: str,
                                 ops: list[tuple[str, int, str | None]]) -> tuple[int, str | None]:
    """IncrementalAlterConfigs v0 on one resource: ops are (key, operation, value). Returns
    (error code, error message). Unlike the clients, sends any broker name (`""`: every broker)."""
    configs = array([string(k) + i8(op) + string(v) for k, op, v in ops])
    body = array([i8(resource_type) + string(name) + configs]) + i8(0)
    r = roundtrip(sock, API_INCREMENTAL_ALTER_CONFIGS, 0, body)
    r.i32()  # throttle
    [(error, message)] = r.array(lambda r: (r.i16(), r.string(), r.i8(), r.string())[:2])
    assert r.remaining() == 0
    return error, message


def describe_configs_v1(sock: socket.socket, resource_type: int, name: str) -> tuple[int, dict]:
    """DescribeConfigs v1 of one resource, every key, with synonyms. Returns (error code,
    {key: (value, source, [(synonym, value, source)])})."""
    body = array([i8(resource_type) + string(name) + i32(-1)]) + i8(1)
    r = roundtrip(sock, API_DESCRIBE_CONFIGS, 1, body)
    r.i32()  # throttle

    def config(r):
        key, value, _read_only, source, _sensitive = r.string(), r.string(), r.i8(), r.i8(), r.i8()
        synonyms = r.array(lambda r: (r.string(), r.string(), r.i8()))
        return key, (value, source, synonyms)

    [(error, configs)] = r.array(lambda r: (r.i16(), r.string(), r.i8(), r.string(), dict(r.array(config)))[::4])
    assert r.remaining() == 0
    return error, configs


# ---- consumer groups (classic protocol) -----------------------------------------------------

def consumer_subscription(topics: list[str]) -> bytes:
    """ConsumerProtocolSubscription v0: the JoinGroup metadata of a consumer."""
    return i16(0) + array([string(t) for t in topics]) + bytes_field(None)


def consumer_assignment(partitions: dict[str, list[int]]) -> bytes:
    """ConsumerProtocolAssignment v0: what SyncGroup hands a consumer."""
    return (i16(0) + array([string(t) + array([i32(p) for p in ps]) for t, ps in partitions.items()])
            + bytes_field(None))


def find_coordinator_v1(sock: socket.socket, key: str, key_type: int = 0) -> dict:
    """FindCoordinator v1 (key_type 0: a group)."""
    r = roundtrip(sock, API_FIND_COORDINATOR, 1, string(key) + i8(key_type))
    out = {"throttle_ms": r.i32(), "error": r.i16(), "message": r.string(),
           "node_id": r.i32(), "host": r.string(), "port": r.i32()}
    assert r.remaining() == 0
    return out


def join_group_v5(sock: socket.socket, group: str, member_id: str = "", instance_id: str | None = None,
                  session_timeout_ms: int = 30000, rebalance_timeout_ms: int = 30000,
                  protocol_type: str = "consumer", protocols: list[tuple[str, bytes]] | None = None) -> dict:
    """JoinGroup v5. The broker answers when the rebalance completes (or at once with an error)."""
    if protocols is None:
        protocols = [("range", consumer_subscription(["e2e-raw-topic"]))]
    body = (string(group) + i32(session_timeout_ms) + i32(rebalance_timeout_ms) + string(member_id)
            + string(instance_id) + string(protocol_type)
            + array([string(name) + bytes_field(meta) for name, meta in protocols]))
    r = roundtrip(sock, API_JOIN_GROUP, 5, body)
    out = {"throttle_ms": r.i32(), "error": r.i16(), "generation": r.i32(), "protocol": r.string(),
           "leader": r.string(), "member_id": r.string(),
           "members": r.array(lambda r: (r.string(), r.string(), r.bytes()))}
    assert r.remaining() == 0
    return out


def sync_group_v3(sock: socket.socket, group: str, generation: int, member_id: str,
                  assignments: dict[str, bytes] | None = None, instance_id: str | None = None) -> tuple[int, bytes]:
    """SyncGroup v3 (the leader sends `assignments`, {member_id: bytes}). Returns (error, assignment)."""
    body = (string(group) + i32(generation) + string(member_id) + string(instance_id)
            + array([string(m) + bytes_field(a) for m, a in (assignments or {}).items()]))
    r = roundtrip(sock, API_SYNC_GROUP, 3, body)
    r.i32()  # throttle
    error, assignment = r.i16(), r.bytes()
    assert r.remaining() == 0
    return error, assignment or b""


def heartbeat_v3(sock: socket.socket, group: str, generation: int, member_id: str,
                 instance_id: str | None = None) -> int:
    """Heartbeat v3. Returns the error code."""
    r = roundtrip(sock, API_HEARTBEAT, 3, string(group) + i32(generation) + string(member_id) + string(instance_id))
    r.i32()  # throttle
    error = r.i16()
    assert r.remaining() == 0
    return error


def leave_group_v3(sock: socket.socket, group: str, members: list[tuple[str, str | None]]) -> tuple[int, list]:
    """LeaveGroup v3 of [(member_id, instance_id)]. Returns (error, [(member_id, instance_id, error)])."""
    body = string(group) + array([string(m) + string(i) for m, i in members])
    r = roundtrip(sock, API_LEAVE_GROUP, 3, body)
    r.i32()  # throttle
    error = r.i16()
    results = r.array(lambda r: (r.string(), r.string(), r.i16()))
    assert r.remaining() == 0
    return error, results


def offset_commit_v7(sock: socket.socket, group: str, generation: int, member_id: str,
                     offsets: dict[tuple[str, int], tuple[int, str | None]],
                     instance_id: str | None = None) -> dict[tuple[str, int], int]:
    """OffsetCommit v7 of {(topic, partition): (offset, metadata)}. Returns {(topic, partition): error}."""
    by_topic: dict[str, list[bytes]] = {}
    for (topic, p), (offset, metadata) in offsets.items():
        by_topic.setdefault(topic, []).append(i32(p) + i64(offset) + i32(-1) + string(metadata))
    body = (string(group) + i32(generation) + string(member_id) + string(instance_id)
            + array([string(t) + array(ps) for t, ps in by_topic.items()]))
    r = roundtrip(sock, API_OFFSET_COMMIT, 7, body)
    r.i32()  # throttle
    out = {}
    for topic, partitions in r.array(lambda r: (r.string(), r.array(lambda r: (r.i32(), r.i16())))):
        for p, error in partitions:
            out[(topic, p)] = error
    assert r.remaining() == 0
    return out


def offset_fetch_v5(sock: socket.socket, group: str,
                    partitions: dict[str, list[int]] | None = None) -> tuple[int, dict]:
    """OffsetFetch v5 of the given partitions, or of every committed one (None). Returns
    (error, {(topic, partition): (offset, metadata, error)})."""
    body = string(group) + (i32(-1) if partitions is None else
                            array([string(t) + array([i32(p) for p in ps]) for t, ps in partitions.items()]))
    r = roundtrip(sock, API_OFFSET_FETCH, 5, body)
    r.i32()  # throttle
    out = {}
    for topic, parts in r.array(lambda r: (r.string(), r.array(
            lambda r: (r.i32(), r.i64(), r.i32(), r.string(), r.i16())))):
        for p, offset, _leader_epoch, metadata, error in parts:
            out[(topic, p)] = (offset, metadata, error)
    error = r.i16()
    assert r.remaining() == 0
    return error, out


def describe_groups_v4(sock: socket.socket, groups: list[str]) -> dict[str, dict]:
    """DescribeGroups v4. Returns {group: {"error", "state", "protocol_type", "protocol", "members"}},
    each member a dict of member_id, instance_id, client_id, client_host, metadata, assignment."""
    r = roundtrip(sock, API_DESCRIBE_GROUPS, 4, array([string(g) for g in groups]) + i8(0))
    r.i32()  # throttle
    out = {}
    for _ in range(r.i32()):
        error, group, state, protocol_type, protocol = r.i16(), r.string(), r.string(), r.string(), r.string()
        members = r.array(lambda r: {"member_id": r.string(), "instance_id": r.string(), "client_id": r.string(),
                                     "client_host": r.string(), "metadata": r.bytes(), "assignment": r.bytes()})
        r.i32()  # authorized operations
        out[group] = {"error": error, "state": state, "protocol_type": protocol_type, "protocol": protocol,
                      "members": members}
    assert r.remaining() == 0
    return out


def list_groups_v2(sock: socket.socket) -> tuple[int, dict[str, str]]:
    """ListGroups v2. Returns (error, {group: protocol_type})."""
    r = roundtrip(sock, API_LIST_GROUPS, 2, b"")
    r.i32()  # throttle
    error = r.i16()
    groups = dict(r.array(lambda r: (r.string(), r.string())))
    assert r.remaining() == 0
    return error, groups


def delete_groups_v1(sock: socket.socket, groups: list[str]) -> dict[str, int]:
    """DeleteGroups v1. Returns {group: error}."""
    r = roundtrip(sock, API_DELETE_GROUPS, 1, array([string(g) for g in groups]))
    r.i32()  # throttle
    out = dict(r.array(lambda r: (r.string(), r.i16())))
    assert r.remaining() == 0
    return out


def offset_delete_v0(sock: socket.socket, group: str, partitions: dict[str, list[int]]) -> tuple[int, dict]:
    """OffsetDelete v0. Returns (error, {(topic, partition): error})."""
    body = string(group) + array([string(t) + array([i32(p) for p in ps]) for t, ps in partitions.items()])
    r = roundtrip(sock, API_OFFSET_DELETE, 0, body)
    error = r.i16()
    r.i32()  # throttle
    out = {}
    for topic, parts in r.array(lambda r: (r.string(), r.array(lambda r: (r.i32(), r.i16())))):
        for p, e in parts:
            out[(topic, p)] = e
    assert r.remaining() == 0
    return error, out


# ---- flexible versions (compact fields, tagged fields) -------------------------------------

API_DESCRIBE_QUORUM = 55


def uvarint(v: int) -> bytes:
    out = bytearray()
    while True:
        byte = v & 0x7F
        v >>= 7
        if v:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def read_uvarint(r: Reader) -> int:
    shift = value = 0
    while True:
        b = r.take(1)[0]
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value
        shift += 7


def compact_string(s: str) -> bytes:
    b = s.encode()
    return uvarint(len(b) + 1) + b


def skip_tagged(r: Reader) -> None:
    for _ in range(read_uvarint(r)):
        read_uvarint(r)
        r.take(read_uvarint(r))


def compact_array(r: Reader, item) -> list:
    n = read_uvarint(r) - 1
    return [] if n < 0 else [item(r) for _ in range(n)]


def describe_quorum_v0(bootstrap: str) -> dict:
    """DescribeQuorum v0 (flexible; request header v2): leader, epoch, high watermark and each
    voter's and observer's log end, as the broker at `bootstrap` answers."""
    body = uvarint(2) + compact_string("__cluster_metadata") + uvarint(2) + i32(0) + b"\0" + b"\0" + b"\0"
    head = i16(API_DESCRIBE_QUORUM) + i16(0) + i32(9) + string("e2e-raw") + b"\0"
    with connect(bootstrap) as sock:
        sock.sendall(frame(head + body))
        resp = recv_frame(sock)
    assert resp is not None, "connection closed instead of answering DescribeQuorum"
    r = Reader(resp)
    assert r.i32() == 9
    skip_tagged(r)
    error_code = r.i16()

    def replica(r):
        out = {"id": r.i32(), "log_end": r.i64()}
        skip_tagged(r)
        return out

    def partition(r):
        p = {"partition": r.i32(), "error_code": r.i16(), "leader": r.i32(), "epoch": r.i32(),
             "high_watermark": r.i64(), "voters": compact_array(r, replica), "observers": compact_array(r, replica)}
        skip_tagged(r)
        return p

    def topic(r):
        name = r.take(read_uvarint(r) - 1).decode()
        parts = compact_array(r, partition)
        skip_tagged(r)
        return name, parts

    topics = compact_array(r, topic)
    skip_tagged(r)
    assert r.remaining() == 0
    assert error_code == 0 and len(topics) == 1, (error_code, topics)
    return topics[0][1][0]
