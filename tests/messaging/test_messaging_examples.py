"""The examples run, briefly, against a real broker (each is one command)."""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
JS = ROOT / "tests" / "js"


def _run(*args: str, timeout: float = 60) -> str:
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          timeout=timeout, check=False, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _addresses(broker) -> list[str]:  # type: ignore[no-untyped-def]
    return [
        "--native", f"tcp://{broker.host}:{broker.native_port}",
        "--mqtt-host", broker.host, "--mqtt-port", str(broker.mqtt_port),
        "--mqtt-ws", broker.ws_url,
        "--native-ws", f"ws://{broker.host}:{broker.native_ws_port}/",
    ]


def test_example_1_mqtt_conf42(broker) -> None:  # type: ignore[no-untyped-def]
    out = _run(str(EXAMPLES / "mqtt_conf42.py"), *_addresses(broker))
    assert "received conf42/go: go 10" in out and "all 10 messages received" in out


def test_example_3_stock_ticker(broker) -> None:  # type: ignore[no-untyped-def]
    out = _run(str(EXAMPLES / "stock_ticker.py"), *_addresses(broker),
               "--rounds", "2", "--interval", "0")
    assert "all of NASDAQ: 6 quotes" in out
    assert "AAPL everywhere: 4 quotes" in out
    assert "symbols with M: 4 quotes" in out  # MSFT and MA
    assert "MQTT dashboard: 16 quotes" in out


def test_example_4_order_fanout(broker) -> None:  # type: ignore[no-untyped-def]
    out = _run(str(EXAMPLES / "order_fanout.py"), *_addresses(broker), "--orders", "2")
    for service in ("inventory", "payment", "shipping", "loyalty", "customer-data"):
        assert f"{service}: 2 of 2 orders" in out
    assert "shipping got order A-0001 (MQTT 5, correlation data A-0001)" in out
    assert "loyalty got order A-0002 (MQTT 3.1.1 over WebSocket)" in out


def test_example_2_conf42_native_to_mqttjs_and_the_page(make_broker) -> None:  # type: ignore[no-untyped-def]
    # The example's own configuration (VPN "public" everywhere), on free ports.
    config = (EXAMPLES / "conf42" / "warren.toml").read_text()
    broker = make_broker(re.sub(r"(?m)^port = \d+$", "port = 0", config))
    node = subprocess.Popen(
        ["node", str(JS / "native_conf42_subscriber.mjs"), broker.ws_url, "--count", "3"],
        cwd=JS, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert node.stdout is not None
        first = node.stdout.readline()  # printed once the SUBACK is in
        assert first.startswith("subscribed to conf42/#"), first + (node.stderr.read() if
                                                                   node.stderr else "")
        out = _run(str(EXAMPLES / "conf42" / "publisher.py"),
                   "--native", f"tcp://{broker.host}:{broker.native_port}",
                   "--count", "3", "--interval", "0")
        assert out.splitlines() == [f"published hello from conf42 {n}" for n in (1, 2, 3)]
        rest, errors = node.communicate(timeout=20)
        assert node.returncode == 0, errors
        assert rest.splitlines() == [
            f"conf42/warren/python/{n}: hello from conf42 {n}" for n in (1, 2, 3)
        ]
    finally:
        if node.poll() is None:
            node.kill()
            node.wait()

    page = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "conf42" / "serve_page.py"), "--port", "0",
         "--broker", broker.ws_url],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert page.stdout is not None
        url = page.stdout.readline().split()[-1]  # "open http://127.0.0.1:N/?broker=..."
        base = url.split("?", 1)[0]
        with urllib.request.urlopen(url, timeout=5) as response:
            html = response.read().decode()
        assert "conf42/#" in html and '<script src="/mqtt.min.js">' in html
        with urllib.request.urlopen(base + "mqtt.min.js", timeout=5) as response:
            assert b"var mqtt=" in response.read(4096)
    finally:
        page.terminate()
        page.wait(10)
