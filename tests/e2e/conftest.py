"""Fixtures that run the real `ringtail` binary for the end-to-end tests.

`broker` starts one broker per test (2 shards, fresh data directory, free port);
`broker_factory` starts brokers with extra flags. At teardown every broker still running is
stopped with SIGTERM by process id and must exit 0: a clean shutdown is a feature under test.
The broker's stderr goes to a file that is attached to the report of a failing test.
"""

import json
import os
import signal
import socket
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BIN = "target/release/ringtail"
START_TIMEOUT_S = 10.0
# Free-space watermarks of test brokers unless a test sets its own: small, so that a CI machine
# with little free disk does not refuse writes (the defaults, 1 GiB and 2%, are unit-tested).
DISK_FREE_FLAGS = ["--disk-free-low-bytes", str(64 << 20), "--disk-free-low-percent", "0",
                   "--disk-free-high-bytes", str(128 << 20), "--disk-free-high-percent", "0"]
STOP_TIMEOUT_S = 10.0
# Lines of the broker log attached to a failing test's report.
LOG_LINES_SHOWN_MAX = 300
# Lines of the broker log quoted in a start or stop failure message.
LOG_LINES_QUOTED_MAX = 40


def ringtail_bin() -> Path:
    path = Path(os.environ.get("RINGTAIL_BIN", DEFAULT_BIN))
    if not path.is_absolute():
        path = REPO_ROOT / path
    if not path.is_file():
        pytest.exit(f"ringtail binary {path} not found; build it with "
                    f"`cargo build --release -p ringtail-core` or set RINGTAIL_BIN", returncode=2)
    return path


_PORTS_GIVEN: set[int] = set()


def free_port() -> int:
    """A port nothing listens on now and that this test run has not handed out before (the
    kernel may offer the same free port twice in a row, e.g. a broker's Kafka and admin port)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _PORTS_GIVEN:
            _PORTS_GIVEN.add(port)
            return port


def port_accepts(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def listening(port: int) -> bool:
    """Whether any socket listens on `port` (from /proc/net/tcp: state 0A is LISTEN)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        return True
        except FileNotFoundError:
            continue
    return False


def read_metadata(data_dir: Path) -> dict:
    """`ringtail metadata --data-dir DATA_DIR`, parsed."""
    out = subprocess.run([str(ringtail_bin()), "metadata", "--data-dir", str(data_dir)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, f"ringtail metadata failed ({out.returncode}): {out.stderr}"
    return json.loads(out.stdout)


class BrokerError(AssertionError):
    pass


class Broker:
    """One `ringtail serve` process; restart() and kill9() keep its port and data directory."""

    def __init__(self, workdir: Path, args: list[str], shards: int = 2, cpus: str | None = None):
        self.workdir = workdir
        # `taskset -c CPUS` for the process: a broker pins its shards to the first CPUs of its
        # affinity mask, so several brokers on one machine are spread by hand.
        self.cpus = cpus
        self.data_dir = workdir / "data"
        self.log_path = workdir / "broker.log"
        self.port = free_port()
        # Every broker gets its own admin endpoint (/metrics, /health, /ready).
        self.admin_port = free_port()
        self.host = "127.0.0.1"
        self.args = list(args)
        self.shards = shards
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.last_start_s = 0.0
        # Set when the test stopped or killed the process on purpose; cleared by start().
        self.ended_on_purpose = False
        # Environment variables for the next start (e.g. a fault point), beside RINGTAIL_LOG.
        self.extra_env: dict[str, str] = {}
        # A controller-only node serves no Kafka clients: its start is seen at this port.
        self.serves_clients = True
        self.ready_port: int | None = None
        # A network namespace's command prefix (netns.py), when the node runs in one.
        self.netns_prefix: list[str] = []

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "the broker is not running"
        return self.proc.pid

    def command(self) -> list[str]:
        pin = ["taskset", "-c", self.cpus] if self.cpus is not None else []
        return [*self.netns_prefix, *pin, str(ringtail_bin()), "serve",
                "--listen", self.bootstrap,
                "--data-dir", str(self.data_dir),
                "--shards", str(self.shards),
                *([] if "--admin-listen" in self.args else ["--admin-listen", f"{self.host}:{self.admin_port}"]),
                *([] if any(a.startswith("--disk-free") for a in self.args) else DISK_FREE_FLAGS),
                *self.args]

    def metadata(self) -> dict:
        """The data directory's metadata as `ringtail metadata` prints it: identity, topics
        with ids, configs and partitions (replicas, leader, epoch, ISR, owner shard)."""
        return read_metadata(self.data_dir)

    def shards_of(self, topic: str) -> list[int]:
        """Owner shard of each partition of `topic`, as the broker recorded it."""
        topics = self.metadata()["topics"]
        assert topic in topics, f"{topic} not in the metadata: {sorted(topics)}"
        return [p["shard"] for p in topics[topic]["partitions"]]

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no broker log)"

    def log_tail(self, lines: int = LOG_LINES_SHOWN_MAX) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def start(self, wait: bool = True, timeout_s: float = START_TIMEOUT_S) -> "Broker":
        """Starts the process; unless `wait` is false, returns once it accepts Kafka clients
        (and /ready says every shard has opened its logs), failing after `timeout_s`."""
        assert self.proc is None or self.proc.poll() is not None, "broker already running"
        self.starts += 1
        self.ended_on_purpose = False
        # Only the command line configures the broker: drop RINGTAIL_* settings of the caller.
        env = {k: v for k, v in os.environ.items() if not k.startswith("RINGTAIL_") or k == "RINGTAIL_LOG"}
        env["NO_COLOR"] = "1"
        env.update(self.extra_env)
        env.setdefault("RINGTAIL_LOG", "info")
        with open(self.log_path, "a") as log:
            log.write(f"===== e2e: start #{self.starts}: {' '.join(self.command())}\n")
            log.flush()
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log, env=env, cwd=self.workdir)
        if not wait:
            return self
        return self.wait_started(timeout_s)

    def wait_started(self, timeout_s: float = START_TIMEOUT_S) -> "Broker":
        """Waits until a started process accepts Kafka clients and /ready answers 200."""
        started = time.monotonic()
        deadline = started + timeout_s
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                raise BrokerError(
                    f"broker exited with code {code} while starting:\n{self.log_tail(LOG_LINES_QUOTED_MAX)}")
            if port_accepts(self.ready_port or self.port, self.host) and self.is_ready():
                self.last_start_s = time.monotonic() - started
                return self
            time.sleep(0.05)
        self.kill9()
        raise BrokerError(f"broker did not accept connections on {self.bootstrap} within "
                          f"{timeout_s} s:\n{self.log_tail(LOG_LINES_QUOTED_MAX)}")

    def is_ready(self) -> bool:
        """/ready answers 200: every shard recovered its logs (a shard accepting on the shared
        port does not mean the others have). True when the admin endpoint is off."""
        if "--admin-listen" in self.args:
            return True
        try:
            with urllib.request.urlopen(f"http://{self.host}:{self.admin_port}/ready", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM by pid, wait up to timeout_s, then SIGKILL. Returns the exit code (negative:
        the signal that ended it)."""
        assert self.proc is not None, "the broker was never started"
        proc = self.proc
        self.ended_on_purpose = True
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                self._note(f"did not stop within {timeout_s} s of SIGTERM; sent SIGKILL")
                return -signal.SIGKILL
        return proc.returncode

    def stop_cleanly(self) -> None:
        """Stops the broker and asserts it exited 0 after SIGTERM."""
        running_before = self.is_running()
        code = self.stop()
        if not running_before:
            raise BrokerError(f"broker (pid {self.proc.pid}) had already exited with code {code} "
                              f"before it was asked to stop:\n{self.log_tail(LOG_LINES_QUOTED_MAX)}")
        if code != 0:
            raise BrokerError(f"broker (pid {self.proc.pid}) exited with code {code} after SIGTERM "
                              f"(expected 0: clean shutdown):\n{self.log_tail(LOG_LINES_QUOTED_MAX)}")

    def kill9(self) -> None:
        """SIGKILL by pid: a crash, with no chance to flush."""
        assert self.is_running(), f"broker is not running:\n{self.log_tail(LOG_LINES_QUOTED_MAX)}"
        self.ended_on_purpose = True
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._note(f"SIGKILL sent to pid {self.proc.pid}")
        # The kernel tears a dead process's io_uring rings down asynchronously; until then its
        # SO_REUSEPORT listeners linger and take (then reset) connections meant for a restart.
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while listening(self.port) and time.monotonic() < deadline:
            time.sleep(0.02)

    def restart(self, clean: bool = True) -> "Broker":
        """Stops (cleanly, asserting exit 0, unless already dead) and starts on the same port and data."""
        if self.is_running():
            if clean:
                self.stop_cleanly()
            else:
                self.kill9()
        return self.start()

    def _note(self, text: str) -> None:
        with open(self.log_path, "a") as log:
            log.write(f"===== e2e: {text}\n")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for broker in getattr(item, "_ringtail_brokers", []):
            report.sections.append((f"ringtail broker log ({broker.log_path})", broker.log_tail()))


def pytest_runtest_logreport(report):
    """A failure is printed when it happens, not only in the summary: a run stopped by its
    overall time limit (scripts/e2e) still shows why the tests before it failed."""
    if report.failed:
        import sys
        print(f"\n===== FAILED {report.nodeid} ({report.when}, {report.duration:.0f} s)\n"
              f"{report.longreprtext[-6000:]}", file=sys.__stderr__, flush=True)


@pytest.fixture
def broker_factory(request, tmp_path):
    """Starts brokers: broker_factory("--durability", "async", shards=2)."""
    brokers: list[Broker] = []
    request.node._ringtail_brokers = brokers

    def start(*args: str, shards: int = 2, data_from: Path | None = None, data_dir: Path | None = None) -> Broker:
        """`data_from`: a .tar.gz holding `data/`, unpacked as the broker's data directory;
        `data_dir`: where the data directory goes (e.g. on a file system the test made)."""
        workdir = tmp_path / f"broker{len(brokers)}"
        workdir.mkdir()
        if data_from is not None:
            with tarfile.open(data_from) as tar:
                tar.extractall(workdir, filter="data")
        b = Broker(workdir, list(args), shards=shards)
        if data_dir is not None:
            b.data_dir = data_dir
        brokers.append(b)
        return b.start()

    yield start
    errors = []
    for b in brokers:
        if b.proc is None or b.ended_on_purpose and not b.is_running():
            continue  # never started, or stopped or killed by the test itself
        if not b.is_running():
            errors.append(f"broker {b.bootstrap} (pid {b.proc.pid}) exited on its own with code "
                          f"{b.proc.returncode} during the test:\n{b.log_tail(LOG_LINES_QUOTED_MAX)}")
            continue
        try:
            b.stop_cleanly()
        except BrokerError as e:
            errors.append(str(e))
    if errors:
        pytest.fail("\n\n".join(errors), pytrace=False)


@pytest.fixture
def broker(broker_factory) -> Broker:
    return broker_factory()


# Timings of test clusters: short enough that failovers and fencing fit in a test, long enough
# for a loaded 2-core machine running three brokers and the clients.
CLUSTER_TIMING_FLAGS = ["--controller-quorum-election-timeout-ms", "1500",
                        "--controller-quorum-heartbeat-interval-ms", "150",
                        "--broker-session-timeout-ms", "3000",
                        "--broker-heartbeat-interval-ms", "500"]


class Cluster:
    """Several `ringtail serve` processes forming one cluster on 127.0.0.1: voters 1..n (broker
    and controller), and broker-only nodes added later; each pinned to one CPU, in turn."""

    def __init__(self, tmp_path: Path, brokers: list[Broker], voters: int, extra: list[str], links: bool = False,
                 controllers_only: tuple[int, ...] = (), netns=None):
        self.tmp_path = tmp_path
        self.brokers = brokers
        self.extra = list(extra)
        # With network namespaces (netns.Namespaces), node i runs in its own at netns.host(i).
        self.netns = netns
        self.controller_ports = {i: free_port() for i in range(1, voters + 1)}
        self.voters_flag = ",".join(f"{i}@{self.host(i)}:{p}" for i, p in self.controller_ports.items())
        # With links, each node reaches every other voter through a proxy of its own
        # (netfault.Links), so that tests can cut nodes off from each other.
        self.links = None
        if links:
            from netfault import Links
            self.links = Links(self.controller_ports)
        self.nodes: dict[int, Broker] = {}
        cpus = os.sched_getaffinity(0)
        self.cpus = sorted(cpus) if cpus else [0]
        for i in self.controller_ports:
            self.add(i, roles="controller" if i in controllers_only else "broker,controller")

    def host(self, node_id: int) -> str:
        return self.netns.host(node_id) if self.netns is not None else "127.0.0.1"

    def add(self, node_id: int, roles: str = "broker", extra: list[str] | None = None) -> Broker:
        workdir = self.tmp_path / f"node{node_id}"
        workdir.mkdir(exist_ok=True)
        voters = self.voters_flag
        if self.links is not None:
            voters = ",".join(f"{i}@127.0.0.1:{self.links.port(node_id, i)}" for i in self.controller_ports)
        args = ["--node-id", str(node_id), "--process-roles", roles,
                "--controller-quorum-voters", voters, *CLUSTER_TIMING_FLAGS, *self.extra, *(extra or [])]
        b = Broker(workdir, args, shards=1, cpus=str(self.cpus[(node_id - 1) % len(self.cpus)]))
        if self.netns is not None:
            b.host = self.netns.host(node_id)
            b.netns_prefix = self.netns.exec_prefix(node_id)
        b.extra_env["RINGTAIL_LOG"] = "info,openraft=error"
        if "broker" not in roles.split(","):
            b.serves_clients = False
            b.ready_port = self.controller_ports[node_id]
        self.nodes[node_id] = b
        self.brokers.append(b)
        return b

    def start(self, *node_ids: int) -> None:
        """Starts the nodes at once (a quorum needs a majority up to form), then waits for each."""
        ids = node_ids or tuple(self.nodes)
        for i in ids:
            self.nodes[i].start(wait=False)
        for i in ids:
            self.nodes[i].wait_started()

    def live(self) -> list[Broker]:
        """Running nodes that serve Kafka clients."""
        return [b for b in self.nodes.values() if b.is_running() and b.serves_clients]

    def broker_ids(self) -> set[int]:
        return {i for i, b in self.nodes.items() if b.serves_clients}

    @property
    def bootstrap(self) -> str:
        return ",".join(b.bootstrap for b in self.live())

    def wait_for(self, what: str, check, timeout_s: float = 30.0, interval_s: float = 0.2):
        """Polls `check()` until it returns something true; fails after `timeout_s` with `what`."""
        deadline = time.monotonic() + timeout_s
        last = None
        while time.monotonic() < deadline:
            try:
                last = check()
                if last:
                    return last
            except Exception as e:  # noqa: BLE001 - a node restarting answers nothing
                last = e
            time.sleep(interval_s)
        raise AssertionError(f"{what} within {timeout_s} s; last: {last!r}")

    def brokers_seen(self, via: Broker) -> set[int]:
        """Unfenced brokers in the Metadata that `via` answers."""
        from confluent_kafka.admin import AdminClient
        md = AdminClient({"bootstrap.servers": via.bootstrap}).list_topics(timeout=5)
        return set(md.brokers)

    def wait_brokers(self, expected: set[int], timeout_s: float = 30.0) -> None:
        for b in self.live():
            self.wait_for(f"{b.bootstrap} to describe brokers {sorted(expected)}",
                          lambda b=b: self.brokers_seen(b) == expected, timeout_s)

    def quorum(self) -> dict:
        """DescribeQuorum from the first live node."""
        import kwire
        return kwire.describe_quorum_v0(self.live()[0].bootstrap)

    def active_controller(self, timeout_s: float = 30.0) -> int:
        return self.wait_for("an active controller", lambda: max(self.quorum()["leader"], 0), timeout_s)


@pytest.fixture
def _cluster_links():
    """Proxies of clusters' links, closed after every process is stopped (broker_factory's
    teardown runs first)."""
    made = []
    yield made
    for links in made:
        links.close()


@pytest.fixture
def cluster_factory(request, _cluster_links, broker_factory, tmp_path):
    """Builds clusters: cluster_factory(voters=3) returns a started Cluster whose brokers all
    registered. Every process is stopped by pid at teardown (broker_factory's)."""
    brokers = request.node._ringtail_brokers

    def make(voters: int = 3, start: bool = True, extra: list[str] | None = None, links: bool = False,
             controllers_only: tuple[int, ...] = ()) -> Cluster:
        cluster = Cluster(tmp_path, brokers, voters, extra or [], links=links, controllers_only=controllers_only)
        if cluster.links is not None:
            _cluster_links.append(cluster.links)
        if start:
            cluster.start()
            cluster.wait_brokers(cluster.broker_ids())
        return cluster

    yield make
    # Healed, so that every node's controlled shutdown reaches the controller.
    for links in _cluster_links:
        links.heal()
