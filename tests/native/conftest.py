"""Fixtures for the native protocol tests: raw native connections on the shared broker."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Helper modules beside this file, and the MQTT peers of tests/broker.
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "broker"))

from native_wire import Wire  # noqa: E402

WireFactory = Callable[..., Wire]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents and not item.get_closest_marker(
            "timeout"
        ):
            item.add_marker(pytest.mark.timeout(60))


@pytest.fixture
def wire(broker, uid: str) -> Iterator[WireFactory]:  # type: ignore[no-untyped-def]
    """Factory of raw native connections to the shared broker (closed at teardown)."""
    made: list[Wire] = []
    counter = itertools.count(1)

    def make(*, target=None, connect: bool = True, **fields) -> Wire:  # type: ignore[no-untyped-def]
        b = target or broker
        assert b.native_port, "the broker has no native listener in its ready file"
        w = Wire(b.host, b.native_port, name=f"{uid}n{next(counter)}")
        made.append(w)
        if connect:
            fields.setdefault("client_name", w.name)
            w.connect(**fields)
        return w

    yield make
    for w in made:
        w.close()


@pytest.fixture
def peers(broker, uid: str):  # type: ignore[no-untyped-def]
    """MQTT clients (paho, MQTT.js) on the shared broker, from tests/broker."""
    from mqtt_peers import Peers

    registry = Peers(broker, uid)
    yield registry
    registry.close_all()
