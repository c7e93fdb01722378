"""Configuration: errors name the file, the key and the fix; precedence holds."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from warren.cli.main import cli
from warren.config import load_config
from warren.core.acl import Operation
from warren.errors import ConfigError


def write(tmp_path: Path, text: str, name: str = "warren.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_a_file() -> None:
    config = load_config(None)
    assert [(li.protocol, li.port) for li in config.listener] == [
        ("mqtt", 1883), ("mqtt-ws", 8000), ("native", 55555), ("amqp", 5672)
    ]
    assert config.listener[1].path == "/mqtt"
    assert config.server.data_dir == Path("./warren-data")
    assert list(config.vpn) == ["default"]


def test_unknown_key_names_file_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, "[mqtt]\nmax_packet_sise = 10\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert str(path) in text
    assert "mqtt.max_packet_sise" in text
    assert "unknown key" in text


def test_bad_value_says_what_would_be_valid(tmp_path: Path) -> None:
    path = write(tmp_path, '[[listener]]\nprotocol = "mqqt"\nport = 1883\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "listener.0.protocol" in str(info.value)
    assert "'mqtt'" in str(info.value) and "'mqtt-ws'" in str(info.value)


def test_invalid_toml_is_reported_with_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[server\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


def test_listener_must_name_a_defined_vpn(tmp_path: Path) -> None:
    path = write(tmp_path, '[[listener]]\nprotocol = "mqtt"\nport = 1\nvpn = "sales"\n')
    with pytest.raises(ConfigError, match=r"add a \[vpn.sales\] table"):
        load_config(path)


def test_listeners_bind_loopback_unless_told_otherwise() -> None:
    assert {li.host for li in load_config(None).listener} == {"127.0.0.1"}
    exposed = load_config(None, {"host": "0.0.0.0"})
    assert {li.host for li in exposed.listener} == {"0.0.0.0"}


def test_flags_override_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[[listener]]\nprotocol = "mqtt"\nport = 1999\nhost = "0.0.0.0"\n')
    config = load_config(path, {"mqtt_port": 0, "host": "127.0.0.1", "ws_port": None})
    assert [(li.host, li.port) for li in config.listener] == [("127.0.0.1", 0)]


def test_acl_rules_inline_first_then_file_relative_to_config(tmp_path: Path) -> None:
    write(tmp_path, '[[acl]]\naction = "allow"\noperation = "publish"\ntopic = "x/#"\n',
          "acl.toml")
    path = write(
        tmp_path,
        '[vpn.default]\nacl_file = "acl.toml"\n'
        '[[vpn.default.acl]]\naction = "deny"\noperation = "subscribe"\ntopic = "a/+"\n'
        'user = "bob"\n',
    )
    rules = load_config(path).acl_rules("default")
    assert [(r.allow, r.operation, r.user) for r in rules] == [
        (False, Operation.SUBSCRIBE, "bob"),
        (True, Operation.PUBLISH, "*"),
    ]
    assert "acl.toml" in rules[1].source


def test_acl_rule_with_invalid_filter_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, '[[vpn.default.acl]]\naction = "deny"\ntopic = "a/#/b"\n')
    with pytest.raises(ConfigError, match="not a valid MQTT topic filter"):
        load_config(path)


def test_serve_reports_config_errors_without_a_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, "[mqtt]\nbogus = 1\n")
    result = CliRunner().invoke(cli, ["serve", "--config", str(path)])
    assert result.exit_code == 1
    assert "mqtt.bogus: unknown key" in result.output
    assert "Traceback" not in result.output


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[mqtt]\nbogus = 1\n")
    result = CliRunner().invoke(cli, ["serve"], env={"WARREN_CONFIG": str(path)})
    assert "mqtt.bogus" in result.output


def test_serve_help_teaches_the_file_format() -> None:
    result = CliRunner().invoke(cli, ["serve", "--help"])
    assert result.exit_code == 0
    for needle in ("[[listener]]", "max_packet_size", "WARREN_", "--ready-file"):
        assert needle in result.output


def test_storage_defaults_to_sqlite_with_full_sync(tmp_path: Path) -> None:
    config = load_config(None)
    assert (config.server.storage, config.server.synchronous) == ("sqlite", "full")
    path = write(tmp_path, '[server]\nstorage = "memory"\nsynchronous = "normal"\n')
    config = load_config(path)
    assert (config.server.storage, config.server.synchronous) == ("memory", "normal")
    path = write(tmp_path, '[server]\nstorage = "postgres"\n')
    with pytest.raises(ConfigError, match=r"server\.storage"):
        load_config(path)


def test_serve_stops_with_a_clear_message_when_storage_cannot_open(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "warren.db").write_bytes(b"this is not a database, it is a shopping list\n" * 50)
    path = write(tmp_path, '[[listener]]\nprotocol = "mqtt"\nhost = "127.0.0.1"\nport = 0\n')
    result = CliRunner().invoke(cli, ["serve", "--config", str(path), "--data-dir", str(data)])
    assert result.exit_code != 0
    assert "cannot start: storage" in result.output
    assert "warren.db" in result.output
    assert "Traceback" not in result.output
