"""The memory alarm: bytes of queued messages, broker-wide, against two watermarks.

RabbitMQ raises a memory alarm when the node passes its high watermark and blocks
publishing connections (``connection.blocked``) until it is cleared. Warren measures
what it holds on behalf of slow consumers: the payload bytes of every ready message
in every queue of every VPN. Queues report each change with :meth:`MemoryWatermark.add`
(one addition and one comparison: cheap enough for the publish path); the alarm is
raised above ``high`` and cleared at or below ``low`` (hysteresis, so a publisher is
not blocked and unblocked on every message near the line).

The core only keeps the count and the state. Protocol adapters decide what being
alarmed means for their publishers (AMQP: stop reading them after
``connection.blocked``), and register a callback with :meth:`on_clear` to hear when
they may resume.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["MemoryWatermark"]


class MemoryWatermark:
    """Queued message bytes against a high and a low watermark (see module docstring).

    ``high`` 0 switches the alarm off (the bytes are still counted).
    """

    def __init__(self, high: int, low: int) -> None:
        if low > high:
            raise ValueError(f"low watermark {low} is above the high watermark {high}")
        self.high = high
        self.low = low
        self.used = 0
        self.alarmed = False
        self._on_clear: dict[object, Callable[[], None]] = {}

    def __repr__(self) -> str:
        state = "ALARM" if self.alarmed else "ok"
        return f"<MemoryWatermark {self.used}/{self.high} bytes {state}>"

    def add(self, delta: int) -> None:
        """``delta`` bytes were queued (positive) or left their queue (negative)."""
        used = self.used = self.used + delta
        if self.alarmed:
            if used <= self.low:
                self.alarmed = False
                waiters, self._on_clear = self._on_clear, {}
                for callback in waiters.values():
                    callback()
        elif self.high and used > self.high:
            self.alarmed = True

    def on_clear(self, key: object, callback: Callable[[], None]) -> None:
        """Call ``callback`` once, when the alarm is next cleared (one per ``key``)."""
        self._on_clear[key] = callback

    def forget(self, key: object) -> None:
        """Drop ``key``'s pending :meth:`on_clear` callback (its connection closed)."""
        self._on_clear.pop(key, None)
