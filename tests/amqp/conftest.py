"""Fixtures for the AMQP 0-9-1 tests: the shared broker's AMQP port, real clients."""

from __future__ import annotations

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

from amqp_support import WAIT, amqp_port_of
from mqtt_peers import Peers

from warren.messaging import MessagingService


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents and not item.get_closest_marker(
            "timeout"
        ):
            item.add_marker(pytest.mark.timeout(60))


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
def native(broker: Any) -> Iterator[Callable[[], MessagingService]]:
    """``native()``: a connected warren.messaging service (threaded), disconnected at teardown."""
    made: list[MessagingService] = []

    def make() -> MessagingService:
        service = MessagingService.builder().from_properties({
            "solace.messaging.transport.host": f"tcp://{broker.host}:{broker.native_port}",
            "solace.messaging.service.vpn-name": "default",
            "solace.messaging.authentication.scheme.basic.username": "tester",
            "solace.messaging.authentication.scheme.basic.password": "secret",
        }).build()
        made.append(service)
        service.connect()
        return service

    yield make
    for service in made:
        service.disconnect()


@pytest.fixture
def peers(broker: Any, uid: str) -> Iterator[Peers]:
    """MQTT clients (paho) on the shared broker; closed at teardown."""
    registry = Peers(broker, uid)
    yield registry
    registry.close_all()
