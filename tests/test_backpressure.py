"""Publisher backpressure: a filling subscriber queue pauses its publisher.

Deterministic: a real event loop, sessions from the core, and a throttle whose
pause/resume are recorded instead of touching a socket.
"""

from __future__ import annotations

import asyncio

import pytest

from warren.adapters import backpressure
from warren.adapters.backpressure import Throttle
from warren.core.message import Message
from warren.core.sessions import Session, Subscription
from warren.core.stats import BrokerStats
from warren.core.topics import parse_mqtt_filter
from warren.core.vpn import Vpn


class SlowSink:
    """A connection whose socket is full until `open` is set."""

    def __init__(self) -> None:
        self.open = False
        self.sent = 0

    def can_send(self) -> bool:
        return self.open

    def send_publish(self, *args: object) -> None:
        self.sent += 1

    def send_release(self, packet_id: int) -> None:
        pass

    def queue_full(self) -> None:
        pass


def setup(max_queued: int = 8) -> tuple[Vpn, Session, SlowSink, Session]:
    vpn = Vpn("default", BrokerStats())
    subscriber = Session("slow", vpn, max_queued=max_queued)
    vpn.add_session(subscriber)
    sink = SlowSink()
    subscriber.attach(sink)
    vpn.router.add(Subscription(subscriber, "t", parse_mqtt_filter("t")))
    publisher = Session("pub", vpn)
    return vpn, subscriber, sink, publisher


def publish_until_congested(vpn: Vpn, publisher: Session) -> int:
    for n in range(1, 100):
        vpn.router.publish(Message("t", b"x"), publisher)
        if vpn.router.congested is not None:
            return n
    raise AssertionError("the queue never signalled congestion")


def test_half_full_queue_signals_congestion_and_draining_resumes() -> None:
    async def scenario() -> None:
        vpn, subscriber, sink, publisher = setup(max_queued=8)
        events: list[str] = []
        throttle = Throttle(
            asyncio.get_running_loop(),
            lambda: events.append("pause"),
            lambda: events.append("resume"),
        )
        assert publish_until_congested(vpn, publisher) == 5  # 4 queued = half of 8
        throttle.engage(subscriber, publisher)
        assert events == ["pause"] and throttle.paused
        assert vpn.router.congested is None  # consumed by the throttle
        sink.open = True
        subscriber.drain()
        assert events == ["pause", "resume"] and not throttle.paused
        assert sink.sent == 5  # nothing was dropped

    asyncio.run(scenario())


def test_a_session_that_drains_nothing_is_marked_stalled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backpressure, "MAX_PAUSE_SECONDS", 0.01)

    async def scenario() -> None:
        vpn, subscriber, _sink, publisher = setup()
        resumed = asyncio.Event()
        throttle = Throttle(asyncio.get_running_loop(), lambda: None, resumed.set)
        publish_until_congested(vpn, publisher)
        throttle.engage(subscriber, publisher)
        await asyncio.wait_for(resumed.wait(), timeout=5)
        assert subscriber.stalled
        # A stalled subscriber no longer slows publishers: its queue fills and drops.
        for _ in range(20):
            vpn.router.publish(Message("t", b"x"), publisher)
            assert vpn.router.congested is None
        assert subscriber.dropped > 0

    asyncio.run(scenario())


def test_subscriber_leaving_releases_the_publisher() -> None:
    async def scenario() -> None:
        vpn, subscriber, _sink, publisher = setup()
        events: list[str] = []
        throttle = Throttle(
            asyncio.get_running_loop(),
            lambda: events.append("pause"),
            lambda: events.append("resume"),
        )
        publish_until_congested(vpn, publisher)
        throttle.engage(subscriber, publisher)
        subscriber.detach()
        assert events == ["pause", "resume"]

    asyncio.run(scenario())


def test_a_publisher_is_never_paused_for_its_own_session() -> None:
    async def scenario() -> None:
        vpn, subscriber, _sink, _publisher = setup()
        events: list[str] = []
        throttle = Throttle(asyncio.get_running_loop(), lambda: events.append("pause"), list)
        publish_until_congested(vpn, subscriber)
        throttle.engage(subscriber, subscriber)
        assert events == [] and not throttle.paused

    asyncio.run(scenario())
