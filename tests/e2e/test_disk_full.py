"""A full disk degrades the broker, it does not stop it. Each test makes a small ext4 file system
of its own (a loop device, as root, unmounted at the end), puts the broker's data directory on
it, and fills it with a real client: produce is refused with a retriable error below the low
watermark, everything acknowledged reads back, other partitions keep being read, offset commits
go on, and writes resume by themselves once space is freed (a topic deleted, a file removed).
"""

import errno
import os
import re
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition

from helpers import (ADMIN_TIMEOUT_S, RDKAFKA_LOGGER, admin, consume_all, create_topic, committed_offsets,
                     is_ok, produce_numbered, producer, topic_name, wait_for)

MIB = 1 << 20
FS_BYTES = 160 * MIB
WATERMARKS = ["--disk-free-low-bytes", str(40 * MIB), "--disk-free-low-percent", "0",
              "--disk-free-high-bytes", str(60 * MIB), "--disk-free-high-percent", "0"]
NO_WATERMARKS = ["--disk-free-low-bytes", "0", "--disk-free-low-percent", "0",
                 "--disk-free-high-bytes", "0", "--disk-free-high-percent", "0"]
VALUE_BYTES = 8192
KAFKA_STORAGE_ERROR = KafkaError.KAFKA_STORAGE_ERROR


@pytest.fixture
def small_fs(tmp_path):
    """A 160 MiB ext4 file system with no root reserve, mounted under tmp_path."""
    if os.geteuid() != 0:
        pytest.skip("mounting a loop file system needs root")
    image = tmp_path / "fs.img"
    mount = tmp_path / "mnt"
    mount.mkdir()
    with open(image, "wb") as f:
        f.truncate(FS_BYTES)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(image)], check=True, capture_output=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True, capture_output=True)
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)
        image.unlink(missing_ok=True)


def scrape(broker) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{broker.admin_port}/metrics", timeout=5) as r:
        return r.read().decode()


def metric_sum(broker, name: str) -> float:
    """Sum over shards; counters may carry OpenMetrics' `_total` suffix."""
    pattern = rf"^{re.escape(name)}(?:_total)?(?:\{{[^}}]*\}})? (\S+)$"
    return sum(float(v) for v in re.findall(pattern, scrape(broker), re.M))


def refusing(broker) -> bool:
    return metric_sum(broker, "ringtail_disk_writes_refused") > 0


class Filler:
    """Produces 8 KiB values to a topic with acks=all until told to stop; keeps what was
    acknowledged ({(partition, offset): value}) and every delivery error."""

    def __init__(self, bootstrap: str, topic: str, partitions: int):
        self.topic, self.partitions = topic, partitions
        self.acked: dict[tuple[int, int], bytes] = {}
        self.errors: list[KafkaError] = []
        self.producer = producer(bootstrap, **{"message.timeout.ms": 4000, "linger.ms": 5,
                                               "queue.buffering.max.messages": 2000})
        self.sent = 0

    def delivered(self, err, msg):
        if is_ok(err):
            self.acked[(msg.partition(), msg.offset())] = msg.value()
        else:
            self.errors.append(err)

    def send(self, count: int):
        for _ in range(count):
            value = (b"%08d" % self.sent) * (VALUE_BYTES // 8)
            while True:
                try:
                    self.producer.produce(self.topic, value=value, partition=self.sent % self.partitions,
                                          on_delivery=self.delivered)
                    break
                except BufferError:
                    self.producer.poll(0.05)
            self.sent += 1
        self.producer.poll(0)

    def fill_until_refused(self, broker, timeout_s: float = 120.0):
        deadline = time.monotonic() + timeout_s
        while not self.errors:
            assert time.monotonic() < deadline, f"no produce was refused after {self.sent} sends"
            assert broker.is_running(), f"the broker exited:\n{broker.log_tail(60)}"
            self.send(200)
        assert self.producer.flush(30) == 0

    def check_errors_retriable(self):
        # librdkafka retries KAFKA_STORAGE_ERROR until message.timeout.ms, then reports the timeout.
        codes = {e.code() for e in self.errors}
        assert codes <= {KAFKA_STORAGE_ERROR, KafkaError._MSG_TIMED_OUT}, f"unexpected errors: {self.errors[:5]}"

    def check_read_back(self, bootstrap: str):
        got = consume_all(bootstrap, self.topic, self.partitions, timeout_s=120)
        stored = {(p, m.offset()): m.value() for p, msgs in got.items() for m in msgs}
        lost = [k for k in self.acked if stored.get(k) != self.acked[k]]
        assert not lost, f"{len(lost)} of {len(self.acked)} acknowledged records lost or changed, first {lost[:5]}"


class Reader(threading.Thread):
    """Reads a whole topic again and again while the disk fills: every round must see it all."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, expected: int):
        super().__init__(daemon=True)
        self.args = (bootstrap, topic, partitions)
        self.expected = expected
        self.rounds = 0
        self.failures: list[str] = []
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            try:
                got = consume_all(*self.args, timeout_s=30)
                count = sum(len(v) for v in got.values())
                if count != self.expected:
                    self.failures.append(f"read {count} records, expected {self.expected}")
                self.rounds += 1
            except Exception as e:  # noqa: BLE001 - every failure is reported by the test
                self.failures.append(repr(e))

    def finish(self):
        self.stopping.set()
        self.join(60)
        assert not self.failures, f"reading another topic failed while the disk filled: {self.failures[:3]}"


def commit(bootstrap: str, group: str, topic: str, offset: int):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                  "logger": RDKAFKA_LOGGER})
    try:
        c.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
    finally:
        c.close()


def delete_topic(bootstrap: str, name: str):
    client = admin(bootstrap)
    client.delete_topics([name], operation_timeout=10, request_timeout=ADMIN_TIMEOUT_S)[name].result(
        timeout=ADMIN_TIMEOUT_S)


def fill_file_system(mount: Path) -> Path:
    """Writes a file until the file system has no free block left."""
    filler = mount / "filler"
    with open(filler, "wb") as f:
        for chunk in (MIB, 4096):
            while True:
                try:
                    f.write(b"\0" * chunk)
                    f.flush()
                    os.fsync(f.fileno())
                except OSError as e:
                    assert e.errno == errno.ENOSPC, e
                    break
    st = os.statvfs(mount)
    assert st.f_bavail * st.f_frsize < 64 * 1024, f"still {st.f_bavail * st.f_frsize} bytes free"
    return filler


def test_full_disk_refuses_produce_and_keeps_reads_commits_and_the_broker(small_fs, broker_factory):
    broker = broker_factory(*WATERMARKS, data_dir=small_fs / "data")
    other = topic_name("other")
    create_topic(broker.bootstrap, other, 1)
    produce_numbered(broker.bootstrap, other, 2000, 1)
    reader = Reader(broker.bootstrap, other, 1, 2000)
    reader.start()

    filler = Filler(broker.bootstrap, topic_name("filler"), 4)
    create_topic(broker.bootstrap, filler.topic, 4)
    filler.fill_until_refused(broker)
    assert broker.is_running(), broker.log_tail(60)
    filler.check_errors_retriable()
    assert any(e.code() == KAFKA_STORAGE_ERROR for e in filler.errors) or metric_sum(
        broker, "ringtail_disk_appends_refused") > 0
    assert refusing(broker), "/metrics does not show writes refused"
    log = broker.log_text()
    # Refused at the watermark, the file system is near it; refused by ENOSPC on a write, the
    # batches and preallocated space taken back can leave more free than that.
    free = metric_sum(broker, "ringtail_disk_free_bytes")
    assert free < 40 * MIB * 2 or "ran out of space while writing" in log, f"{free} bytes free"
    assert ("is below the low watermark: produce to user topics is refused" in log
            or "ran out of space while writing" in log), "no warning says why writes are refused"
    assert len(filler.acked) > 1000, f"only {len(filler.acked)} records acknowledged before the refusal"

    # No new partitions while refusing writes: they would have no room.
    with pytest.raises(Exception, match="KAFKA_STORAGE_ERROR|low watermark"):
        create_topic(broker.bootstrap, topic_name("refused"), 1)

    # Offsets commits go to __consumer_offsets, which keeps a reserve.
    commit(broker.bootstrap, "disk-full-group", other, 1234)
    assert committed_offsets(broker.bootstrap, "disk-full-group")[(other, 0)][0] == 1234

    filler.check_read_back(broker.bootstrap)
    time.sleep(1)
    reader.finish()
    assert reader.rounds >= 2, f"the reader finished only {reader.rounds} rounds"

    # Deleting the topic frees space: writes resume without a restart.
    delete_topic(broker.bootstrap, filler.topic)
    wait_for(lambda: not refusing(broker), 30, "writes accepted again after the topic was deleted")
    again = topic_name("again")
    create_topic(broker.bootstrap, again, 2)
    produce_numbered(broker.bootstrap, again, 500, 2)
    assert "free space is back: produce is accepted again" in broker.log_text()


def test_broker_starts_on_a_full_file_system_and_resumes_writes_when_space_returns(small_fs, broker_factory):
    broker = broker_factory(*WATERMARKS, data_dir=small_fs / "data")
    kept = topic_name("kept")
    create_topic(broker.bootstrap, kept, 2)
    acked = produce_numbered(broker.bootstrap, kept, 3000, 2)
    broker.stop_cleanly()

    filler_file = fill_file_system(small_fs)
    broker.start()
    got = consume_all(broker.bootstrap, kept, 2, timeout_s=60)
    stored = {(p, m.offset()): m.value() for p, msgs in got.items() for m in msgs}
    assert stored == acked, "the acknowledged records do not read back after a start on a full file system"
    assert refusing(broker)
    refused = Filler(broker.bootstrap, kept, 2)
    refused.send(5)
    assert refused.producer.flush(30) == 0
    assert refused.errors and not refused.acked, "a write was accepted on a full file system"
    refused.check_errors_retriable()

    filler_file.unlink()
    wait_for(lambda: not refusing(broker), 30, "writes accepted again after space was freed")
    more = produce_numbered(broker.bootstrap, kept, 200, 2, first=3000)
    got = consume_all(broker.bootstrap, kept, 2, timeout_s=60)
    stored = {(p, m.offset()): m.value() for p, msgs in got.items() for m in msgs}
    assert stored == {**acked, **more}


def test_enospc_without_watermarks_fails_only_unacknowledged_writes(small_fs, broker_factory):
    """Watermarks off: the file system really runs out (ENOSPC from the preallocation or the
    write). The broker stays up, the failed writes are answered with the retriable error, nothing
    acknowledged is lost, and writes resume once a topic is deleted."""
    broker = broker_factory(*NO_WATERMARKS, data_dir=small_fs / "data")
    other = topic_name("other")
    create_topic(broker.bootstrap, other, 1)
    produce_numbered(broker.bootstrap, other, 1000, 1)
    filler = Filler(broker.bootstrap, topic_name("filler"), 4)
    create_topic(broker.bootstrap, filler.topic, 4)
    filler.fill_until_refused(broker)
    # More tries while full: each must fail cleanly, none may stop the broker.
    filler.send(400)
    assert filler.producer.flush(30) == 0
    assert broker.is_running(), broker.log_tail(60)
    filler.check_errors_retriable()
    assert metric_sum(broker, "ringtail_disk_flushes_out_of_space") > 0
    filler.check_read_back(broker.bootstrap)
    assert sum(len(v) for v in consume_all(broker.bootstrap, other, 1).values()) == 1000
    assert metric_sum(broker, "ringtail_partitions_offline") == 0 if "ringtail_partitions_offline" in scrape(
        broker) else True

    delete_topic(broker.bootstrap, filler.topic)
    again = topic_name("again")
    wait_for(lambda: _create_quietly(broker.bootstrap, again), 30, "a topic created after the deletion")
    produce_numbered(broker.bootstrap, again, 500, 2)


def _create_quietly(bootstrap: str, name: str) -> bool:
    try:
        create_topic(bootstrap, name, 2)
        return True
    except Exception:  # noqa: BLE001 - retried until the deadline
        time.sleep(0.5)
        return False
