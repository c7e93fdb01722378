"""Fixtures for the AMQP 0-9-1 tests: the shared broker's AMQP port, real clients."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pika
import pytest

# The helper modules beside this file (amqp_support) and the MQTT peers of the
# broker tests are imported by name, whatever pytest's import mode.
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent / "broker"))

from amqp_support import WAIT
from mqtt_peers import Peers


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents and not item.get_closest_marker(
            "timeout"
        ):
            item.add_marker(pytest.mark.timeout(60))


def amqp_port_of(broker: Any) -> int:
    """The AMQP listener's port, from the broker's ready file."""
    info = json.loads((broker.workdir / "ready.json").read_text())
    for listener in info["listeners"]:
        if listener["protocol"] == "amqp":
            return int(listener["port"])
    pytest.fail(f"the broker has no amqp listener: {info}", pytrace=False)


@pytest.fixture(scope="session")
def amqp_port(broker: Any) -> int:
    return amqp_port_of(broker)


@pytest.fixture
def amqp_url(broker: Any, amqp_port: int) -> str:
    return f"amqp://guest:guest@{broker.host}:{amqp_port}/%2F"


@pytest.fixture
def connect(broker: Any, amqp_port: int) -> Iterator[Callable[..., pika.BlockingConnection]]:
    """``connect(**params)``: a pika BlockingConnection, closed at teardown."""
    opened: list[pika.BlockingConnection] = []

    def make(**params: Any) -> pika.BlockingConnection:
        params.setdefault("blocked_connection_timeout", WAIT)
        conn = pika.BlockingConnection(
            pika.ConnectionParameters(
                host=broker.host, port=amqp_port, socket_timeout=WAIT,
                stack_timeout=WAIT, **params,
            )
        )
        opened.append(conn)
        return conn

    yield make
    for conn in opened:
        if conn.is_open:
            conn.close()



@pytest.fixture
def peers(broker: Any, uid: str) -> Iterator[Peers]:
    """MQTT clients (paho) on the shared broker; closed at teardown."""
    registry = Peers(broker, uid)
    yield registry
    registry.close_all()
