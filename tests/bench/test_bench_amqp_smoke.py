"""Smoke test of ``warren bench amqp-persistent``: one second against a Warren started here.

Checks the ``--json`` shape and that every confirmed persistent message is consumed.
No RabbitMQ here; nothing asserts on speed.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

READY_TIMEOUT = 30.0
RUN_TIMEOUT = 120.0


@pytest.fixture
def warren_amqp(tmp_path: Path) -> Iterator[Path]:
    """A `warren serve` with one AMQP listener on an ephemeral loopback port."""
    ready = tmp_path / "ready.json"
    log_path = tmp_path / "warren.log"
    config = tmp_path / "warren.toml"
    config.write_text(
        f'[server]\ndata_dir = "{tmp_path / "data"}"\n\n'
        '[[listener]]\nprotocol = "amqp"\nhost = "127.0.0.1"\nport = 0\n'
    )
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "warren.cli.main", "serve", "--config", str(config),
                "--ready-file", str(ready),
            ],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while not ready.exists():  # bounded poll for the ready file
            if proc.poll() is not None:
                pytest.fail(f"warren exited with {proc.returncode}:\n{log_path.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no ready file after {READY_TIMEOUT} s:\n{log_path.read_text()}")
            time.sleep(0.01)
        time.sleep(0.05)  # the file is complete once it exists, but be gentle
        yield ready
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_amqp_persistent_one_second(warren_amqp: Path) -> None:
    done = subprocess.run(
        [
            sys.executable, "-m", "warren.cli.bench", "amqp-persistent",
            "--ready-file", str(warren_amqp), "-d", "1", "--warmup", "0.2", "--json",
        ],
        capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)

    assert result["scenario"] == "amqp-persistent"
    assert result["params"]["window"] == 256
    messages = result["messages"]
    assert messages["published"] > 0
    assert messages["confirmed"] == messages["published"]
    assert messages["nacked"] == 0
    assert messages["consumed"] == messages["confirmed"]
    assert messages["lost"] == 0
    assert result["notes"] == []
    assert result["delivered_per_s"] > 0
    assert result["confirmed_per_s"] > 0

    ready = json.loads(warren_amqp.read_text())
    assert result["port"] == ready["listeners"][0]["port"]
    broker = result["broker"]
    assert broker["pid"] == ready["pid"]
    assert broker["cpu_s"] >= 0
    assert broker["rss_kib"] > 0

    for key in ("latency_ms", "confirm_latency_ms"):
        latency = result[key]
        assert latency["samples"] > 0
        assert 0 <= latency["p50"] <= latency["p99"]
    assert result["generator"]["publisher_cpu_percent"] >= 0
    assert result["generator"]["consumer_cpu_percent"] >= 0
