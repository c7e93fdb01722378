"""Helpers for the AMQP tests (imported by name: see conftest.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

WAIT = 10.0  # seconds: every wait in these tests is bounded by this


def receive(channel: Any, queue: str, count: int = 1, *, auto_ack: bool = False) -> list[Any]:
    """The next ``count`` deliveries from ``queue`` as (method, properties, body); bounded."""
    got: list[Any] = []
    for method, props, body in channel.consume(queue, auto_ack=auto_ack, inactivity_timeout=WAIT):
        if method is None:
            channel.cancel()
            pytest.fail(
                f"queue {queue!r}: {len(got)} of {count} messages within {WAIT}s: "
                f"{[b for _, _, b in got]}",
                pytrace=False,
            )
        got.append((method, props, body))
        if len(got) == count:
            break
    channel.cancel()
    return got


def amqp_port_of(broker: Any) -> int:
    """The AMQP listener's port, from the broker's ready file."""
    info = json.loads((broker.workdir / "ready.json").read_text())
    for listener in info["listeners"]:
        if listener["protocol"] == "amqp":
            return int(listener["port"])
    pytest.fail(f"the broker has no amqp listener: {info}", pytrace=False)
