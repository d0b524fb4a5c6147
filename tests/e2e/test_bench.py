"""`ringtail-bench` against the real broker: its counts agree with what the broker stored,
workload files and flags work, compare mode prints ratios, and bad input gets a clear error.
Nothing here asserts a speed."""

import json
import os
import subprocess
import urllib.request
from pathlib import Path

import pytest

import helpers
from conftest import REPO_ROOT


def bench_bin() -> Path:
    path = Path(os.environ.get("RINGTAIL_BENCH_BIN", "target/release/ringtail-bench"))
    path = path if path.is_absolute() else REPO_ROOT / path
    if not path.is_file():
        pytest.exit(f"{path} not found; build it with `cargo build --release -p ringtail-bench`", returncode=2)
    return path


def bench(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(bench_bin()), *args], capture_output=True, text=True, timeout=timeout_s)


def stored_messages(bootstrap: str, topic: str, partitions: int) -> list[int]:
    return [hw - low for _, (low, hw) in sorted(helpers.high_watermarks(bootstrap, topic, partitions).items())]


def test_counts_agree_with_the_broker(broker, tmp_path):
    out = tmp_path / "smoke"
    run = bench("run", "--bootstrap", broker.bootstrap, "--preset", "smoke", "--out", str(out), "--print-every-s", "1")
    assert run.returncode == 0, run.stderr + run.stdout
    assert "pub" in run.stdout and "summary" in run.stdout
    [result] = json.loads((out / "result.json").read_text())
    s = result["summary"]
    assert s["publish_errors"] == 0
    assert s["published"] > 0 and s["published"] == s["consumed"], s
    # The broker holds exactly what the harness says it published.
    [topic] = result["topics"]
    assert sum(stored_messages(broker.bootstrap, topic, 4)) == s["published"]
    # A fixed-rate run sends at about its rate (2,000 msg/s for 3 s after 1 s of warm-up).
    assert 1000 < s["publish_rate"] < 3000, s["publish_rate"]
    for key in ("p50", "p99", "p99_9", "max"):
        assert s["publish_latency"][key] > 0 and s["end_to_end_latency"][key] > 0
    assert s["publish_latency"]["p50"] <= s["publish_latency"]["p99"] <= s["publish_latency"]["max"]
    assert len(result["intervals"]) >= 4
    html = (out / "report.html").read_text()
    assert html.count("<svg") == 5 and "polyline" in html and "stolen by the hypervisor" in html


def test_workload_file_keys_acks_and_two_cores(broker, tmp_path):
    workload = tmp_path / "w.toml"
    workload.write_text('name = "keyed"\npartitions-per-topic = 3\ntopics = 2\nkeys = "random"\nacks = 1\n'
                        'producers = 2\nconsumers = 2\nproducer-rate = 3000\nduration-s = 2\nwarmup-s = 1\n'
                        'message-size = 200\n')
    out = tmp_path / "keyed"
    run = bench("run", "--bootstrap", broker.bootstrap, "--workload", str(workload), "--cores", "0,1",
                "--out", str(out))
    assert run.returncode == 0, run.stderr + run.stdout
    [result] = json.loads((out / "result.json").read_text())
    s = result["summary"]
    assert s["published"] == s["consumed"] > 0 and s["publish_errors"] == 0
    assert result["workload"]["keys"] == "random" and result["cores"] == [0, 1]
    counts = [n for topic in result["topics"] for n in stored_messages(broker.bootstrap, topic, 3)]
    assert sum(counts) == s["published"]
    assert all(n > 0 for n in counts), f"random keys left a partition empty: {counts}"


def test_compare_mode_prints_ratios(broker_factory, tmp_path):
    a, b = broker_factory(), broker_factory("--durability", "async")
    out = tmp_path / "cmp"
    run = bench("run", "--target", f"sync={a.bootstrap}", "--target", f"async={b.bootstrap}", "--preset", "smoke",
                "--duration-s", "2", "--out", str(out))
    assert run.returncode == 0, run.stderr + run.stdout
    assert "comparison (ratio to sync)" in run.stdout
    assert "x)" in run.stdout
    results = json.loads((out / "result.json").read_text())
    assert [r["target"]["name"] for r in results] == ["sync", "async"]
    assert all(r["summary"]["published"] == r["summary"]["consumed"] > 0 for r in results)
    html = (out / "report.html").read_text()
    assert "sync" in html and "async" in html


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compressed_batches_are_read_back_by_librdkafka(broker, tmp_path, codec):
    """The harness's compressed batches are valid Kafka batches: the broker takes them as they
    are (its bytes-in counter moves by the compressed size), and librdkafka (confluent-kafka)
    decompresses every message, each carrying the harness's header and log-line payload."""
    out = tmp_path / codec
    run = bench("run", "--bootstrap", broker.bootstrap, "--preset", "smoke", "--duration-s", "2",
                "--compression", codec, "--out", str(out))
    assert run.returncode == 0, run.stderr + run.stdout
    assert f"{codec} batches on the wire" in run.stdout
    [result] = json.loads((out / "result.json").read_text())
    s = result["summary"]
    assert result["workload"]["compression"] == codec and result["workload"]["payload"] == "text"
    assert s["publish_errors"] == 0 and s["published"] == s["consumed"] > 0, s
    # Log lines shrink; each message is a different stretch of text, so not absurdly.
    assert 1.5 < s["publish_mbps"] / s["publish_wire_mbps"] < 12, s
    [topic] = result["topics"]
    got = helpers.consume_all(broker.bootstrap, topic, 4)
    messages = [m for p in sorted(got) for m in got[p]]
    assert len(messages) == s["published"]
    sequences = []
    for m in messages:
        value = m.value()
        assert len(value) == 1024
        assert int.from_bytes(value[8:12], "big") == 0  # the one producer
        sequences.append(int.from_bytes(value[16:24], "big"))
        text = value[24:].decode("ascii")
        assert "latency_ms=" in text or "trace=" in text or "path=" in text, text[:80]
    assert sorted(sequences) == list(range(len(messages)))
    # Stored as sent: what the broker counted in is the compressed size.
    with urllib.request.urlopen(f"http://127.0.0.1:{broker.admin_port}/metrics", timeout=10) as r:
        metrics = r.read().decode()
    bytes_in = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                   if line.startswith("ringtail_topic_bytes_in_total{") and f'topic="{topic}"' in line)
    assert 0 < bytes_in < s["published"] * 1024 / 1.5, (bytes_in, s["published"])


def test_bad_input_gets_a_clear_error(tmp_path):
    run = bench("run", "--bootstrap", "127.0.0.1:1", "--preset", "nope")
    assert run.returncode != 0 and "no preset `nope`" in run.stderr
    run = bench("run", "--bootstrap", "127.0.0.1:1", "--preset", "smoke", "--out", str(tmp_path / "x"))
    assert run.returncode != 0 and "cannot connect to 127.0.0.1:1" in run.stderr, run.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("acks = 7\n")
    run = bench("run", "--bootstrap", "127.0.0.1:1", "--workload", str(bad))
    assert run.returncode != 0 and "acks" in run.stderr
    run = bench("run", "--bootstrap", "127.0.0.1:1", "--message-size", "10")
    assert run.returncode != 0 and "message-size" in run.stderr
    run = bench("run", "--bootstrap", "127.0.0.1:1", "--compression", "brotli")
    assert run.returncode != 0 and "use none, gzip, snappy, lz4 or zstd" in run.stderr
    assert bench("presets").stdout.count("\n") > 5
