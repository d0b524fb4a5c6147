"""Network partitions with network namespaces the tests create themselves (root and
iproute2 needed; `available()` says whether this machine allows them).

Each node runs in a namespace of its own, joined to the root namespace by a veth pair: the node
has 10.X.N.2 (X per run), the root side 10.X.N.1, and the root namespace routes between the
nodes. Clients run in the root namespace and reach every node directly. Cutting node N off
from the others adds policy rules in the root namespace that blackhole whatever N sends to
another node and whatever another node sends to N (`ip rule ... blackhole`): packets in flight
vanish, no RST or FIN is sent, and TCP connections resume when the rules go, as on a real
network. The cut is symmetric and covers every kind of traffic between brokers: controller
RPCs, heartbeats, metadata fetches and replica fetches; clients still reach the cut node (the
case where a stale leader could mislead them).

Every address exists only inside those namespaces and on their veth pairs; `close()` deletes
the namespaces (their veths go with them) and restores the root namespace's forwarding setting.
"""

import os
import subprocess

RULE_PRIORITY = 2000


def _ip(*args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    cmd = ["ip", *(["netns", "exec", netns, "ip"] if netns else []), *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=10)


def available() -> bool:
    """True when this process may create network namespaces and veth pairs."""
    if os.geteuid() != 0:
        return False
    probe = f"rtprobe{os.getpid() % 100000}"
    try:
        _ip("netns", "add", probe)
    except (OSError, subprocess.SubprocessError):
        return False
    try:
        ok = _ip("link", "add", f"{probe}a", "type", "veth", "peer", "name", f"{probe}b", check=False).returncode == 0
        _ip("link", "del", f"{probe}a", check=False)
        return ok
    finally:
        _ip("netns", "del", probe, check=False)


class Namespaces:
    """One namespace per node id; `host(n)` is node n's address, `exec_prefix(n)` the command
    prefix that runs a process in its namespace."""

    def __init__(self, nodes: list[int]):
        self.tag = f"rt{os.getpid() % 10000}"
        # A /16 of its own per run, from the pid: two runs at once do not share addresses.
        self.net = 100 + os.getpid() % 100
        self.nodes: list[int] = []
        self.rules: list[tuple[str, str]] = []
        with open("/proc/sys/net/ipv4/ip_forward") as f:
            self.forward_was = f.read().strip()
        self._sysctl("net/ipv4/ip_forward", "1")
        try:
            for n in nodes:
                self._add(n)
        except BaseException:
            self.close()
            raise

    def _sysctl(self, key: str, value: str) -> None:
        with open(f"/proc/sys/{key}", "w") as f:
            f.write(value)

    def name(self, n: int) -> str:
        return f"{self.tag}n{n}"

    def host(self, n: int) -> str:
        return f"10.{self.net}.{n}.2"

    def _gateway(self, n: int) -> str:
        return f"10.{self.net}.{n}.1"

    def _add(self, n: int) -> None:
        ns, outside, inside = self.name(n), f"{self.tag}h{n}", f"{self.tag}v{n}"
        _ip("netns", "add", ns)
        self.nodes.append(n)
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        _ip("link", "set", inside, "netns", ns)
        _ip("addr", "add", f"{self._gateway(n)}/24", "dev", outside)
        _ip("link", "set", outside, "up")
        _ip("addr", "add", f"{self.host(n)}/24", "dev", inside, netns=ns)
        _ip("link", "set", inside, "up", netns=ns)
        _ip("link", "set", "lo", "up", netns=ns)
        _ip("route", "add", "default", "via", self._gateway(n), netns=ns)

    def exec_prefix(self, n: int) -> list[str]:
        return ["ip", "netns", "exec", self.name(n)]

    def isolate(self, n: int) -> None:
        """Cuts node n off from every other node, both ways (clients still reach it)."""
        for m in self.nodes:
            if m == n:
                continue
            for src, dst in ((self.host(n), self.host(m)), (self.host(m), self.host(n))):
                _ip("rule", "add", "from", src, "to", dst, "blackhole", "priority", str(RULE_PRIORITY))
                self.rules.append((src, dst))

    def heal(self) -> None:
        for src, dst in self.rules:
            _ip("rule", "del", "from", src, "to", dst, "blackhole", "priority", str(RULE_PRIORITY), check=False)
        self.rules.clear()

    def close(self) -> None:
        self.heal()
        for n in self.nodes:
            _ip("netns", "del", self.name(n), check=False)
        self.nodes.clear()
        try:
            self._sysctl("net/ipv4/ip_forward", self.forward_was)
        except OSError:
            pass
