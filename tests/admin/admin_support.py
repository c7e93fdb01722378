"""Helpers of the management API tests."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conftest import Broker

WAIT = 20.0  # seconds: an upper bound, never a delay


def admin_url(broker: Broker) -> str:
    assert broker.admin_port is not None, "the broker has no admin listener"
    return f"http://{broker.host}:{broker.admin_port}"


def amqp_port(broker: Broker) -> int:
    info: dict[str, Any] = json.loads((broker.workdir / "ready.json").read_text())
    return next(int(li["port"]) for li in info["listeners"] if li["protocol"] == "amqp")
