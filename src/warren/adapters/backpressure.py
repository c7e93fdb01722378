"""Publisher backpressure shared by every adapter.

When a publish makes a connected subscriber's queue pass half full, the session sets
``router.congested``. The publishing connection then asks its :class:`Throttle` to
stop reading from its client until that session has drained to a quarter — or for
at most ``MAX_PAUSE_SECONDS`` (an adapter may choose another bound). A subscriber
that drains nothing in that time is marked *stalled*: it no longer slows anyone
down, and its excess messages are dropped by its bounded queue (or the
slow-consumer policy disconnects it). So a slow consumer slows publishers to its
pace, and a dead one cannot stop them.

Every adapter's connection holds one :class:`Throttle`
(:class:`~warren.adapters.connection.Connection`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from warren.core.sessions import Session

__all__ = ["MAX_PAUSE_SECONDS", "Throttle"]

log = logging.getLogger("warren.backpressure")

MAX_PAUSE_SECONDS = 1.0


class Throttle:
    """Pauses reading from one publishing connection while a subscriber drains."""

    __slots__ = ("_by", "_loop", "_max_pause", "_pause", "_resume", "_timer", "paused")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        pause: Callable[[], None],
        resume: Callable[[], None],
        max_pause: float | None = None,
    ) -> None:
        self._loop = loop
        self._pause = pause
        self._resume = resume
        self._max_pause = max_pause  # None: MAX_PAUSE_SECONDS
        self._by: Session | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.paused = False

    def engage(self, congested: Session, own: Session | None) -> None:
        """Stop reading until ``congested`` drains (never for one's own session:
        pausing a client's reads would also stop its acknowledgements)."""
        congested.vpn.router.congested = None
        if congested is own or self.paused:
            return
        self.paused = True
        self._pause()
        self._by = congested
        congested.add_waiter(self.release)
        limit = MAX_PAUSE_SECONDS if self._max_pause is None else self._max_pause
        self._timer = self._loop.call_later(limit, self._expired)

    def release(self) -> None:
        """The congested session drained (or went away): read again."""
        if not self.paused:
            return
        self._forget()
        self._resume()

    def cancel(self) -> None:
        """The connection is closing: drop the pause without resuming."""
        if self._by is not None:
            self._by.remove_waiter(self.release)
        self._forget()

    def _forget(self) -> None:
        self.paused = False
        self._by = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        congested = self._by
        if congested is not None:
            log.info(
                "client %r is not draining its queue: dropping its messages instead of "
                "slowing publishers down",
                congested.client_id,
            )
            congested.stalled = True
            congested.remove_waiter(self.release)
        self.release()
