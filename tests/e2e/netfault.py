"""Network partitions between real nodes on 127.0.0.1, made with proxies: every directed link
between two nodes' controller traffic (node A's Raft calls and broker calls to node B's
controller listener) goes through its own proxy, because each node is given its own voter
list naming, for every other voter, the proxy of that link. Cutting a link blackholes it as a
real partition does: bytes in flight stop, no FIN or RST reaches either end, new connections
are accepted and then hear nothing. Healing closes every connection that lived through the
cut (its bytes are gone, so its stream cannot go on), after which the ends reconnect.

Kafka clients reach every node directly: a cut node is cut off from the quorum, not from its
clients (the case where a stale broker could mislead them).
"""

import socket
import threading


class _Conn:
    def __init__(self, client: socket.socket, upstream: socket.socket | None, doomed: bool):
        self.client = client
        self.upstream = upstream
        self.doomed = doomed
        self.closed = False
        self.lock = threading.Lock()

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
        for s in (self.client, self.upstream):
            if s is not None:
                try:
                    s.close()
                except OSError:
                    pass


class Link:
    """One directed link: listens on 127.0.0.1 at `port` and forwards to `upstream_port`."""

    def __init__(self, name: str, upstream_port: int):
        self.name = name
        self.upstream_port = upstream_port
        self.cut = False
        self.conns: set[_Conn] = set()
        self.lock = threading.Lock()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.stopped = False
        threading.Thread(target=self._accept, name=f"link-{name}", daemon=True).start()

    def set_cut(self, cut: bool) -> None:
        with self.lock:
            self.cut = cut
            conns = list(self.conns)
            if cut:
                for c in conns:
                    c.doomed = True
        if not cut:
            for c in conns:
                if c.doomed:
                    self._drop(c)

    def close(self) -> None:
        self.stopped = True
        try:
            self.listener.close()
        except OSError:
            pass
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            self._drop(c)

    def _drop(self, c: _Conn) -> None:
        c.close()
        with self.lock:
            self.conns.discard(c)

    def _accept(self) -> None:
        while not self.stopped:
            try:
                client, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                cut = self.cut
            upstream = None
            if not cut:
                try:
                    upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=1)
                except OSError:
                    client.close()  # the node is down: refused, as a direct connection would be
                    continue
            c = _Conn(client, upstream, doomed=cut)
            with self.lock:
                self.conns.add(c)
            if upstream is not None:
                for src, dst in ((client, upstream), (upstream, client)):
                    threading.Thread(target=self._pump, args=(c, src, dst), daemon=True).start()

    def _pump(self, c: _Conn, src: socket.socket, dst: socket.socket) -> None:
        src.settimeout(0.1)
        while not c.closed:
            if c.doomed:
                # Cut: nothing moves until the heal closes this connection.
                threading.Event().wait(0.05)
                continue
            try:
                data = src.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not data:
                break
            if c.doomed:
                continue  # read as the cut came: dropped, as the network would
            try:
                dst.sendall(data)
            except OSError:
                break
        self._drop(c)


class Links:
    """The links of a cluster's nodes: `port(a, b)` is where node `a` reaches node `b`'s
    controller listener (listening at `listen_ports[b]`)."""

    def __init__(self, listen_ports: dict[int, int]):
        self.listen_ports = dict(listen_ports)
        self.links: dict[tuple[int, int], Link] = {}

    def port(self, a: int, b: int) -> int:
        if a == b:
            return self.listen_ports[b]
        if (a, b) not in self.links:
            self.links[(a, b)] = Link(f"{a}->{b}", self.listen_ports[b])
        return self.links[(a, b)].port

    def isolate(self, node: int) -> None:
        """Cuts every link to and from `node`."""
        for (a, b), link in self.links.items():
            if node in (a, b):
                link.set_cut(True)

    def cut(self, a: int, b: int) -> None:
        """Cuts the links between `a` and `b`, both ways."""
        for key in ((a, b), (b, a)):
            if key in self.links:
                self.links[key].set_cut(True)

    def heal(self) -> None:
        for link in self.links.values():
            link.set_cut(False)

    def close(self) -> None:
        for link in self.links.values():
            link.close()
