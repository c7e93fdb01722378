"""The memory alarm's count: watermarks with hysteresis, and the queues feeding it."""

from __future__ import annotations

import pytest

from warren.core.acl import AccessControl
from warren.core.message import Message
from warren.core.queues import QueueRegistry
from warren.core.router import Router
from warren.core.stats import BrokerStats
from warren.core.watermark import MemoryWatermark


def test_watermark_hysteresis_and_clear_callbacks() -> None:
    memory = MemoryWatermark(high=100, low=50)
    cleared: list[str] = []
    memory.add(100)
    assert not memory.alarmed  # above, not at, the high watermark
    memory.add(1)
    assert memory.alarmed
    memory.on_clear("a", lambda: cleared.append("a"))
    memory.on_clear("b", lambda: cleared.append("b"))
    memory.forget("b")
    memory.add(-51)  # 50: at the low watermark, the alarm clears
    assert not memory.alarmed and cleared == ["a"]
    memory.add(-50)
    assert memory.used == 0 and cleared == ["a"]  # callbacks run once
    off = MemoryWatermark(high=0, low=0)
    off.add(10**9)
    assert not off.alarmed
    with pytest.raises(ValueError, match="low watermark"):
        MemoryWatermark(high=1, low=2)


def test_queues_account_ready_bytes() -> None:
    router = Router(AccessControl(), BrokerStats())
    registry = QueueRegistry(router)
    memory = registry.memory = MemoryWatermark(high=1 << 20, low=0)
    a = registry.declare("a")
    b = registry.declare("b")
    for _ in range(3):
        a.publish(Message("t", b"x" * 10, 0))
    b.publish(Message("t", b"y" * 7, 0))
    assert memory.used == 37
    entry = a.get()
    assert entry is not None and memory.used == 27
    a.took(entry, None)
    a.reject(entry, None, True)  # requeued: counted again
    assert memory.used == 37
    assert a.purge() == 3 and memory.used == 7
    registry.delete(b)
    assert memory.used == 0
