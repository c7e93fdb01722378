"""A memory store whose commits happen when the test says so (durable-ack tests)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from warren.store import MemoryStore, StorageError
from warren.store.base import Done
from warren.store.records import Mutation


class GatedStore(MemoryStore):
    """Holds every submission until :meth:`release` (or fails them with an error)."""

    def __init__(self) -> None:
        super().__init__()
        self.held: list[tuple[list[Mutation], Done | None]] = []
        self.submitted: list[Mutation] = []

    def submit(
        self,
        mutations: Sequence[Mutation],
        done: Done | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.submitted.extend(mutations)
        self.held.append((list(mutations), done))

    def release(self, error: StorageError | None = None) -> None:
        held, self.held = self.held, []
        for mutations, done in held:
            if error is None:
                super().submit(mutations, done)
            elif done is not None:
                done(error)
