"""The admin listener's configuration: loopback and port 8080 unless the file says."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from warren.admin.http import warn_if_exposed
from warren.config import ListenerConfig, load_config


def test_admin_listener_defaults_to_loopback_8080() -> None:
    listener = ListenerConfig.model_validate({"protocol": "admin"})
    assert (listener.host, listener.port) == ("127.0.0.1", 8080)
    other = ListenerConfig.model_validate({"protocol": "mqtt", "port": 1})
    assert other.host == "127.0.0.1"  # every listener is loopback unless asked


def test_admin_listener_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "warren.toml"
    path.write_text('[[listener]]\nprotocol = "admin"\nhost = "::1"\nport = 9090\n')
    config = load_config(path)
    assert [(li.protocol, li.host, li.port) for li in config.listener] == [
        ("admin", "::1", 9090)
    ]


def test_admin_listener_beyond_loopback_is_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="warren.admin"):
        assert not warn_if_exposed("127.0.0.1", 8080)
        assert not warn_if_exposed("::1", 8080)
        assert caplog.records == []
        assert warn_if_exposed("0.0.0.0", 8080)
    (record,) = caplog.records
    assert "0.0.0.0:8080 HAS NO AUTHENTICATION" in record.getMessage()
    assert "127.0.0.1" in record.getMessage()
