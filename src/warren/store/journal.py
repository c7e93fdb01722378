"""The journal: mutations the core emits during one event-loop turn, submitted together.

The core is synchronous and emits mutations at its ``# STORE:`` points while it
routes (a delivery owed to a persistent session, a retained message, an ack). They
are appended here, in order, and go to the store as **one submission per loop
turn**, handed over at the end of the turn:

- :meth:`Journal.commit` registers a completion (the PUBACK / confirm / receipt to
  send) that runs once everything journalled before it is durable; every commit of
  the turn rides the same submission, its completions called in commit order;
- state changes nobody waits for (a consumer's ack, a session's subscription) ride
  it too, so they cost nothing extra.

One submission per turn, not one per publish, keeps the per-message cost of
persistence down: one queue hand-off, one frame, one completion per turn.
Submission order is commit order, so a completion means everything journalled
before it is durable too.
"""

from __future__ import annotations

import asyncio
import logging

from warren.store.base import Done, Store
from warren.store.errors import StorageError
from warren.store.records import Mutation

__all__ = ["Journal"]

log = logging.getLogger(__name__)


class Journal:
    """Buffers mutations for one store on one event loop (see module docstring)."""

    __slots__ = ("_callbacks", "_loop", "_scheduled", "pending", "store")

    def __init__(self, store: Store, loop: asyncio.AbstractEventLoop) -> None:
        self.store = store
        self.pending: list[Mutation] = []
        self._callbacks: list[Done] = []
        self._loop = loop
        self._scheduled = False

    def append(self, mutation: Mutation) -> None:
        """Journal one mutation; it is submitted at the end of this loop turn."""
        self.pending.append(mutation)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def commit(self, done: Done | None = None) -> None:
        """``done`` is called once everything journalled so far is committed (with the
        error if the store refused it), even when nothing was journalled."""
        if done is not None:
            self._callbacks.append(done)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def flush(self) -> None:
        """Submit what is journalled now (end of turn, shutdown, tests)."""
        pending, callbacks = self.pending, self._callbacks
        if not (pending or callbacks):
            return
        self.pending, self._callbacks = [], []
        done: Done | None = None
        if len(callbacks) == 1:
            done = callbacks[0]
        elif callbacks:
            done = _All(callbacks)
        self.store.submit(pending, done, self._loop)
        self.store.flush()

    def _flush(self) -> None:
        self._scheduled = False
        self.flush()


class _All:
    """One completion that calls several, in order (a failing one does not stop the rest)."""

    __slots__ = ("callbacks",)

    def __init__(self, callbacks: list[Done]) -> None:
        self.callbacks = callbacks

    def __call__(self, error: StorageError | None) -> None:
        for done in self.callbacks:
            try:
                done(error)
            except Exception:
                log.exception("a storage completion failed")
