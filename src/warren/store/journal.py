"""The journal: mutations the core emits during one event-loop turn, submitted together.

The core is synchronous and emits mutations at its ``# STORE:`` points while it
routes (a delivery owed to a persistent session, a retained message, an ack). They
are appended here, in order, and go to the store as **one submission**:

- explicitly, when a publisher must be acknowledged after the commit:
  :meth:`Journal.commit` submits everything appended so far with the completion
  that sends the PUBACK / confirm;
- otherwise at the end of the loop turn (one ``call_soon`` per turn), so state
  changes nobody waits for (a consumer's ack, a session's subscription) still
  reach the store in order and cost one submission per turn, not one per change.

Submission order is commit order, so a completion means everything journalled
before it is durable too.
"""

from __future__ import annotations

import asyncio

from warren.store.base import Done, Store
from warren.store.records import Mutation

__all__ = ["Journal"]


class Journal:
    """Buffers mutations for one store on one event loop (see module docstring)."""

    __slots__ = ("_loop", "_scheduled", "pending", "store")

    def __init__(self, store: Store, loop: asyncio.AbstractEventLoop) -> None:
        self.store = store
        self.pending: list[Mutation] = []
        self._loop = loop
        self._scheduled = False

    def append(self, mutation: Mutation) -> None:
        """Journal one mutation; it is submitted by the next :meth:`commit` or at the
        end of this loop turn, whichever comes first."""
        self.pending.append(mutation)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def commit(self, done: Done | None = None) -> None:
        """Submit everything journalled so far; ``done`` is called after its commit
        (and so after every earlier one), even when nothing was journalled."""
        pending = self.pending
        self.pending = []
        self.store.submit(pending, done, self._loop)

    def flush(self) -> None:
        """Submit what is journalled, if anything (shutdown, tests)."""
        if self.pending:
            self.commit()

    def _flush(self) -> None:
        self._scheduled = False
        self.flush()
