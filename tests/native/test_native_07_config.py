"""Configuration of native listeners: defaults, --native-port, native-ws paths."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from warren.cli.main import cli
from warren.config import load_config
from warren.server import BoundListener


def test_default_native_listener_and_port_override() -> None:
    config = load_config(None)
    assert [(li.protocol, li.port) for li in config.listener if li.protocol == "native"] == [
        ("native", 55555)
    ]
    config = load_config(None, {"native_port": 0, "mqtt_port": 1})
    ports = {li.protocol: li.port for li in config.listener}
    assert ports["native"] == 0 and ports["mqtt"] == 1


def test_native_ws_listener_in_a_file(tmp_path: Path) -> None:
    path = tmp_path / "w.toml"
    path.write_text(
        '[[listener]]\nprotocol = "native-ws"\nport = 8008\n'
        '[[listener]]\nprotocol = "native-ws"\nport = 8009\npath = "/native"\n'
    )
    a, b = load_config(path).listener
    assert "path" not in a.model_fields_set  # any request path is served
    assert b.path == "/native"


def test_listener_urls() -> None:
    assert BoundListener("native", "127.0.0.1", 5).url() == "tcp://127.0.0.1:5"
    assert BoundListener("native-ws", "::1", 6).url() == "ws://[::1]:6"


def test_serve_help_mentions_the_native_port() -> None:
    result = CliRunner().invoke(cli, ["serve", "--help"])
    assert result.exit_code == 0
    assert "--native-port" in result.output and "native-ws" in result.output
