"""Fixtures for the warren.messaging tests: services connected to the shared broker."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from warren.messaging import MessagingService, RetryStrategy

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "broker"))  # mqtt_peers: paho and MQTT.js clients


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents and not item.get_closest_marker(
            "timeout"
        ):
            item.add_marker(pytest.mark.timeout(60))


def props_for(broker: Any, *, ws: bool = False) -> dict[str, Any]:
    """Solace-style properties to reach ``broker``'s native listener."""
    if ws:
        host = f"ws://{broker.host}:{broker.native_ws_port}/"
    else:
        host = f"tcp://{broker.host}:{broker.native_port}"
    return {
        "solace.messaging.transport.host": host,
        "solace.messaging.service.vpn-name": "default",
        "solace.messaging.authentication.scheme.basic.username": "tester",
        "solace.messaging.authentication.scheme.basic.password": "secret",
    }


@pytest.fixture
def props(broker) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return props_for(broker)


ServiceFactory = Callable[..., MessagingService]


@pytest.fixture
def service(broker) -> Iterator[ServiceFactory]:  # type: ignore[no-untyped-def]
    """Factory of connected threaded services (disconnected at teardown)."""
    made: list[MessagingService] = []

    def make(*, target: Any = None, ws: bool = False, connect: bool = True,
             reconnect: RetryStrategy | None = None, extra: dict[str, Any] | None = None,
             application_id: str | None = None) -> MessagingService:
        builder = MessagingService.builder().from_properties(
            {**props_for(target or broker, ws=ws), **(extra or {})}
        )
        if reconnect is not None:
            builder = builder.with_reconnection_retry_strategy(reconnect)
        svc = builder.build(application_id)
        made.append(svc)
        if connect:
            svc.connect()
        return svc

    yield make
    for svc in made:
        svc.disconnect()


@pytest.fixture
def peers(broker, uid: str):  # type: ignore[no-untyped-def]
    from mqtt_peers import Peers

    registry = Peers(broker, uid)
    yield registry
    registry.close_all()
