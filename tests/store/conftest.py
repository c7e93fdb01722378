"""Fixtures: every contract test runs against the memory and the SQLite store.

``open_store()`` opens a store over the same backing each time (the SQLite file, or
the memory image), closing the previous one: a second call is a restart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from warren.store import MemoryImage, MemoryStore, SqliteStore, Store

OpenStore = Callable[[], Store]


@pytest.fixture(params=["memory", "sqlite"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenStore]:
    opened: list[Store] = []
    image = MemoryImage()

    def open_() -> Store:
        if opened:
            opened[-1].close()
        store: Store
        if request.param == "memory":
            store = MemoryStore(image)
        else:
            store = SqliteStore(tmp_path / "warren.db", synchronous="normal")
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()
