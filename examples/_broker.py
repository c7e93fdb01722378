"""What the examples share: where the broker is, or starting one for them.

Every example takes the broker's addresses as options (defaults: a ``warren serve``
on this machine with its default ports) or ``--start-broker`` to run its own
``warren serve`` on free ports for as long as the example runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Addresses:
    native: str  # tcp://host:port
    mqtt_host: str
    mqtt_port: int
    mqtt_ws: str  # ws://host:port/mqtt
    native_ws: str | None = None


def add_broker_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("broker")
    group.add_argument("--native", default="tcp://localhost:55555",
                       help="native protocol address (default %(default)s)")
    group.add_argument("--mqtt-host", default="localhost")
    group.add_argument("--mqtt-port", type=int, default=1883)
    group.add_argument("--mqtt-ws", default="ws://localhost:8000/mqtt",
                       help="MQTT over WebSocket URL (default %(default)s)")
    group.add_argument("--native-ws", default=None,
                       help="native protocol over WebSocket URL (needs a native-ws listener)")
    group.add_argument("--start-broker", action="store_true",
                       help="run a warren broker on free ports while the example runs")


@contextlib.contextmanager
def broker_addresses(args: argparse.Namespace, config: Path | None = None) -> Iterator[Addresses]:
    """The addresses from the options, or those of a broker started for the example."""
    if not args.start_broker:
        yield Addresses(args.native, args.mqtt_host, args.mqtt_port, args.mqtt_ws,
                        args.native_ws)
        return
    with tempfile.TemporaryDirectory(prefix="warren-example-") as tmp:
        ready = Path(tmp) / "ready.json"
        command = [sys.executable, "-m", "warren.cli.main", "serve", "--host", "127.0.0.1",
                   "--mqtt-port", "0", "--ws-port", "0", "--native-port", "0",
                   "--data-dir", str(Path(tmp) / "data"), "--ready-file", str(ready)]
        if config is None:
            # Every listener kind, on free loopback ports.
            config = Path(tmp) / "warren.toml"
            config.write_text("".join(
                f'[[listener]]\nprotocol = "{kind}"\nhost = "127.0.0.1"\nport = 0\n'
                for kind in ("mqtt", "mqtt-ws", "native", "native-ws")
            ))
        command += ["--config", str(config)]
        broker = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 30
            while not ready.exists():  # the broker writes it once every listener is bound
                if broker.poll() is not None or time.monotonic() > deadline:
                    error = broker.stderr.read().decode() if broker.stderr else ""
                    raise SystemExit(f"the broker did not start:\n{error}")
                time.sleep(0.02)
            listeners = {li["protocol"]: li for li in json.loads(ready.read_text())["listeners"]}
            mqtt, ws, native = listeners["mqtt"], listeners["mqtt-ws"], listeners["native"]
            native_ws = listeners.get("native-ws")
            yield Addresses(
                f"tcp://{native['host']}:{native['port']}",
                mqtt["host"], mqtt["port"], f"ws://{ws['host']}:{ws['port']}{ws['path']}",
                f"ws://{native_ws['host']}:{native_ws['port']}/" if native_ws else None,
            )
        finally:
            broker.send_signal(signal.SIGTERM)
            try:
                broker.wait(10)
            except subprocess.TimeoutExpired:
                broker.kill()
