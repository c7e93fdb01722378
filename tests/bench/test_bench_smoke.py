"""Smoke test of ``warren bench``: one-second runs against a Warren started here.

Checks the ``--json`` shape and that a closed-loop run delivers every message to every
subscriber. Nothing here asserts on speed.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

READY_TIMEOUT = 30.0  # seconds for the broker to bind and write its ready file
RUN_TIMEOUT = 120.0  # seconds for one bench run, connecting and draining included


@pytest.fixture
def warren(tmp_path: Path) -> Iterator[Path]:
    """A `warren serve` on an ephemeral loopback port; yields its ready file."""
    ready = tmp_path / "ready.json"
    log_path = tmp_path / "warren.log"
    config = tmp_path / "warren.toml"
    # One MQTT listener on an ephemeral port: nothing else to collide with.
    config.write_text('[[listener]]\nprotocol = "mqtt"\nhost = "127.0.0.1"\nport = 0\n')
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "warren.cli.main", "serve", "--config", str(config),
                "--ready-file", str(ready), "--data-dir", str(tmp_path / "data"),
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
        yield ready
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _bench(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "warren.cli.bench", *args, "--json"],
        capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.mark.parametrize(
    ("scenario", "options", "subscribers"),
    [
        ("fanin", ["-P", "3"], 1),
        ("fanout", ["-S", "3"], 3),
        ("qos1", [], 1),
        ("latency", ["--rate", "2000"], 1),
    ],
)
def test_closed_loop_run_delivers_everything(
    warren: Path, scenario: str, options: list[str], subscribers: int
) -> None:
    result = _bench(scenario, "--ready-file", str(warren), "-d", "1", "--warmup", "0.2",
                    *options)

    assert result["scenario"] == scenario
    assert result["params"]["closed_loop"] is True
    messages = result["messages"]
    assert messages["published"] > 0
    assert messages["lost"] == 0
    assert messages["per_subscriber"] == [messages["published"]] * subscribers
    assert messages["delivered"] == messages["published"] * subscribers
    assert result["delivered_per_s"] > 0
    assert result["msgs_per_broker_cpu_s"] > 0

    ready = json.loads(warren.read_text())
    assert result["target"]["port"] == ready["listeners"][0]["port"]
    assert result["broker"]["pid"] == ready["pid"]
    assert result["broker"]["cpu_s"] >= 0
    assert result["broker"]["rss_kib_after"] > 0

    processes = result["generator"]["processes"]
    assert {p["role"] for p in processes} == {"publisher", "subscriber"}
    assert sum(p["connections"] for p in processes if p["role"] == "subscriber") == subscribers
    for process in processes:
        assert process["cpu_s"] >= 0
        assert process["wall_s"] > 0
        assert process["cpu_percent"] >= 0

    latency = result["latency_us"]
    if scenario == "latency":
        assert latency["count"] > 0
        assert 0 <= latency["p50"] <= latency["p99"] <= latency["p99_9"] <= latency["max"]
    else:
        assert latency is None


def test_connections(warren: Path) -> None:
    result = _bench("connections", "--ready-file", str(warren), "-c", "50", "--hold", "0.5")

    figures = result["connections"]
    assert figures["requested"] == figures["connected"] == 50
    assert figures["failed"] == 0
    assert figures["connects_per_s"] > 0
    assert figures["rss_kib_before"] > 0
    assert figures["rss_mib_per_1000"] is not None
    assert result["messages"] is None
