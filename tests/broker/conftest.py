"""Fixtures for the black-box broker tests: real clients bound to one test."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The helper modules beside this file (mqtt_wire, mqtt_peers) are imported by
# name, whatever pytest's import mode.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from mqtt_peers import Peers


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Bound every broker test well below the global timeout: a hang is a failure.
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents and not item.get_closest_marker(
            "timeout"
        ):
            item.add_marker(pytest.mark.timeout(60))


@pytest.fixture
def peers(broker, uid: str) -> Iterator[Peers]:  # type: ignore[no-untyped-def]
    """Client factory on the shared broker; every client is closed at teardown."""
    registry = Peers(broker, uid)
    yield registry
    registry.close_all()
