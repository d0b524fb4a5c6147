"""A TCP proxy for tests, between Kafka clients and the broker, that loses Produce responses:
it forwards every request, and for some Produce requests, once the broker has answered (so the
batch is appended), it closes the client's connection instead of forwarding the answer. The
client cannot tell whether its batch was written and sends it again.

It also reads the record batches of every Produce request it forwards, so a test can see that
batches really were sent twice: `sent[(topic, partition, producer_id, epoch, base_sequence)]`
counts them.
"""

import socket
import struct
import threading
from collections import Counter

import kwire

API_PRODUCE = 0


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError("short")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def i16(self): return struct.unpack(">h", self.take(2))[0]
    def i32(self): return struct.unpack(">i", self.take(4))[0]

    def uvarint(self) -> int:
        shift = value = 0
        while True:
            b = self.take(1)[0]
            value |= (b & 0x7F) << shift
            if b < 0x80:
                return value
            shift += 7

    def string(self, flexible: bool) -> str | None:
        n = self.uvarint() - 1 if flexible else self.i16()
        return None if n < 0 else self.take(n).decode()

    def bytes(self, flexible: bool) -> bytes | None:
        n = self.uvarint() - 1 if flexible else self.i32()
        return None if n < 0 else self.take(n)

    def count(self, flexible: bool) -> int:
        return self.uvarint() - 1 if flexible else self.i32()

    def tagged(self, flexible: bool) -> None:
        if flexible:
            for _ in range(self.uvarint()):
                self.uvarint()
                self.take(self.uvarint())


def produce_batches(payload: bytes) -> list[tuple[str, int, int, int, int]]:
    """(topic, partition, producer id, epoch, base sequence) of each batch in a Produce request."""
    r = _Reader(payload)
    r.i16()
    version = r.i16()
    r.i32()
    r.string(False)  # client id: a plain nullable string in header v1 and v2
    flexible = version >= 9
    r.tagged(flexible)
    if version >= 3:
        r.string(flexible)  # transactional id
    r.i16()
    r.i32()
    out = []
    for _ in range(r.count(flexible)):
        topic = r.string(flexible)
        for _ in range(r.count(flexible)):
            partition = r.i32()
            records = r.bytes(flexible) or b""
            at = 0
            while at + 61 <= len(records):
                length = struct.unpack(">i", records[at + 8:at + 12])[0]
                producer_id, epoch, sequence = struct.unpack(">qhi", records[at + 43:at + 57])
                out.append((topic, partition, producer_id, epoch, sequence))
                at += 12 + length
            r.tagged(flexible)
        r.tagged(flexible)
    return out


def _recv_frame(sock: socket.socket) -> bytes | None:
    """One frame, or None once either side closed (another thread may close the socket)."""
    try:
        return kwire.recv_frame(sock)
    except OSError:
        return None


class ResponseDroppingProxy:
    """Listens on 127.0.0.1:`port` and forwards to `upstream` (host, port). Of the Produce
    responses, every `every`-th is lost (its connection closed), at most `drops_max` times."""

    def __init__(self, port: int, upstream: tuple[str, int], every: int, drops_max: int):
        self.upstream = upstream
        self.every, self.drops_max = every, drops_max
        self.lock = threading.Lock()
        self.produce_responses = 0
        self.drops = 0
        self.sent: Counter = Counter()
        self.sockets: list[socket.socket] = []
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen(64)
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def retried_batches(self) -> int:
        with self.lock:
            return sum(1 for n in self.sent.values() if n > 1)

    def _accept(self):
        while not self.stopped:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=10)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets += [client, server]
            pending: dict[int, int] = {}
            threading.Thread(target=self._requests, args=(client, server, pending), daemon=True).start()
            threading.Thread(target=self._responses, args=(client, server, pending), daemon=True).start()

    def _requests(self, client, server, pending):
        while True:
            frame = _recv_frame(client)
            if frame is None:
                break
            api_key, _version, correlation_id = struct.unpack(">hhi", frame[:8])
            pending[correlation_id] = api_key
            if api_key == API_PRODUCE:
                batches = produce_batches(frame)
                with self.lock:
                    self.sent.update(b for b in batches if b[2] >= 0)
            try:
                server.sendall(struct.pack(">i", len(frame)) + frame)
            except OSError:
                break
        self._close(client, server)

    def _responses(self, client, server, pending):
        while True:
            frame = _recv_frame(server)
            if frame is None:
                break
            correlation_id = struct.unpack(">i", frame[:4])[0]
            if pending.pop(correlation_id, None) == API_PRODUCE:
                with self.lock:
                    self.produce_responses += 1
                    drop = self.drops < self.drops_max and self.produce_responses % self.every == 0
                    if drop:
                        self.drops += 1
                if drop:
                    break
            try:
                client.sendall(struct.pack(">i", len(frame)) + frame)
            except OSError:
                break
        self._close(client, server)

    @staticmethod
    def _close(*socks):
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def stop(self):
        self.stopped = True
        self.listener.close()
        with self.lock:
            socks = list(self.sockets)
        self._close(*socks)
