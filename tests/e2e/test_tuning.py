"""`ringtail tune` and `ringtail iotune` on this machine, and `ringtail serve` using what iotune
measured."""

import json
import subprocess

import helpers
from conftest import ringtail_bin


def test_tune_json_reports_every_check(tmp_path):
    out = subprocess.run([str(ringtail_bin()), "tune", "--json", "--data-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=60)
    # Exit 0 (no warnings) or 1 (warnings remain); anything else is a failure of the tool.
    assert out.returncode in (0, 1), out.stderr
    report = json.loads(out.stdout)
    findings = report["findings"] if isinstance(report, dict) else report
    ids = {f["id"] for f in findings}
    for expected in ("filesystem", "filesystem.o_direct", "io_uring", "limits.memlock", "vm.swappiness", "clocksource"):
        assert expected in ids, f"{expected} missing from {sorted(ids)}"
    assert all(f["status"] in ("ok", "warn", "info", "unknown") for f in findings), findings
    assert (out.returncode == 1) == any(f["status"] == "warn" for f in findings)


def test_serve_uses_the_disk_shape_iotune_measured(broker):
    broker.stop_cleanly()
    out = subprocess.run([str(ringtail_bin()), "iotune", "--data-dir", str(broker.data_dir), "--seconds", "2"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert (broker.data_dir / "io-properties.toml").is_file()
    broker.start()
    assert "flush shape from io-properties.toml" in broker.log_text()
    topic = helpers.topic_name("shaped")
    helpers.create_topic(broker.bootstrap, topic, 2)
    p = helpers.producer(broker.bootstrap)
    for i in range(5000):
        p.produce(topic, value=b"%d" % i + b"x" * 900, partition=i % 2)
        p.poll(0)
    assert p.flush(30) == 0
    got = helpers.consume_all(broker.bootstrap, topic, 2)
    values = sorted(int(m.value().split(b"x", 1)[0]) for msgs in got.values() for m in msgs)
    assert values == list(range(5000))


def test_tune_reports_free_space_and_the_watermarks(tmp_path):
    out = subprocess.run([str(ringtail_bin()), "tune", "--data-dir", str(tmp_path / "data"),
                          "--disk-free-low-bytes", str(3 << 30), "--disk-free-low-percent", "0",
                          "--disk-free-high-bytes", str(5 << 30), "--disk-free-high-percent", "0"],
                         capture_output=True, text=True, timeout=60)
    line = next((l for l in out.stdout.splitlines() if "filesystem.free_space" in l), None)
    assert line is not None, out.stdout
    assert "low watermark 3.00 GiB, high watermark 5.00 GiB" in line, line
    assert " GiB free of " in line, line
