"""The native adapter in process: exact bytes out for bytes in, with a fake transport.

The broker core is real (VPN, router, sessions); only the socket is replaced, so
these tests see what the adapter writes and when, without a network.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

import warren.adapters.native as native_adapter
from warren.adapters.native import NativeConnection, NativeSettings, from_native, to_native
from warren.codecs.native import (
    Connect,
    Connected,
    Deliver,
    Disconnect,
    ErrorCode,
    Event,
    Message,
    Publish,
    Result,
    Role,
    Subscribe,
)
from warren.codecs.native import NativeConnection as Codec
from warren.core.message import Message as CoreMessage
from warren.core.stats import BrokerStats
from warren.core.vpn import Vpn


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False
        self.reading = True

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True


class Client:
    """A client codec wired to one adapter connection."""

    def __init__(self, harness: Harness, **connect: Any) -> None:
        self.harness = harness
        self.codec = Codec(Role.CLIENT, max_frame_size=connect.get("max_frame_size", 1 << 24))
        self.transport = FakeTransport()
        self.conn = NativeConnection(harness.vpns, "default", harness.settings)
        self.conn.connection_made(self.transport)  # type: ignore[arg-type]
        self.send(Connect(**connect))
        [connected] = self.frames()
        assert isinstance(connected, Connected)
        self.connected = connected

    def send(self, *events: Event) -> None:
        self.conn.data_received(b"".join(self.codec.send(e) for e in events))

    def frames(self) -> list[Event]:
        """What the adapter wrote in the loop iteration(s) so far, decoded."""
        self.harness.turn()
        data = b"".join(self.transport.written)
        self.transport.written.clear()
        return self.codec.receive(data)

    def raw(self) -> list[bytes]:
        self.harness.turn()
        out = list(self.transport.written)
        self.transport.written.clear()
        return out


class Harness:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.settings = NativeSettings()
        stats = BrokerStats()
        self.vpns = {"default": Vpn("default", stats), "public": Vpn("public", stats)}

    def turn(self) -> None:
        """Run the callbacks scheduled so far (one flush per loop iteration)."""
        self.loop.run_until_complete(asyncio.sleep(0))

    def client(self, **connect: Any) -> Client:
        return Client(self, **connect)


@pytest.fixture
def harness() -> Iterator[Harness]:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        yield Harness(loop)
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def test_fan_out_encodes_a_message_once(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = native_adapter.encode_message

    def counting(message: Message) -> bytes:
        calls.append(message.topic)
        return real(message)

    monkeypatch.setattr(native_adapter, "encode_message", counting)
    subs = [harness.client(client_name=f"s{i}") for i in range(3)]
    for s in subs:
        s.send(Subscribe(1, 1, "fan/>"))
        assert s.frames() == [Result(1)]
    pub = harness.client(client_name="p")
    pub.send(Publish((Message("fan/out", b"x"),)))
    wires = [s.raw() for s in subs]
    assert calls == ["fan/out"]
    expected = Codec(Role.SERVER)
    assert all(w == wires[0] for w in wires)
    assert subs[0].codec.receive(wires[0][0]) == [Deliver((1,), (Message("fan/out", b"x"),))]
    del expected


def test_one_deliver_per_wake_up_and_per_subscription_set(harness: Harness) -> None:
    sub = harness.client(client_name="s")
    sub.send(Subscribe(1, 1, "a/>"), Subscribe(2, 2, "b/>"))
    assert sub.frames() == [Result(1), Result(2)]
    pub = harness.client(client_name="p")
    pub.send(Publish((
        Message("a/1", b"1"), Message("a/2", b"2"), Message("b/1", b"3"), Message("a/3", b"4"),
    )))
    assert sub.frames() == [
        Deliver((1,), (Message("a/1", b"1"), Message("a/2", b"2"))),
        Deliver((2,), (Message("b/1", b"3"),)),
        Deliver((1,), (Message("a/3", b"4"),)),
    ]
    assert len(sub.raw()) == 0


def test_batches_respect_the_clients_frame_limit(harness: Harness) -> None:
    sub = harness.client(client_name="s", max_frame_size=1024)
    sub.send(Subscribe(1, 1, "big/>"))
    sub.frames()
    pub = harness.client(client_name="p")
    pub.send(Publish((
        Message("big/1", b"a" * 600), Message("big/2", b"b" * 600), Message("big/3", b"c" * 2000),
    )))
    frames = sub.frames()
    assert [[m.topic for m in f.messages] for f in frames if isinstance(f, Deliver)] == [
        ["big/1"], ["big/2"],  # two frames: both together would exceed 1024 bytes
    ]  # big/3 can never fit: dropped for this client
    assert harness.vpns["default"].stats.dropped == 1


def test_the_result_comes_before_retained_messages(harness: Harness) -> None:
    pub = harness.client(client_name="p")
    pub.send(Publish((Message("r/1", b"kept", retain=True),)))
    sub = harness.client(client_name="s")
    sub.send(Subscribe(9, 3, "r/*"))
    assert sub.frames() == [Result(9), Deliver((3,), (Message("r/1", b"kept", retain=True),))]


def test_vpns_are_isolated(harness: Harness) -> None:
    public = harness.client(client_name="s", vpn="public")
    default = harness.client(client_name="s")  # the same name in another VPN
    for c in (public, default):
        c.send(Subscribe(1, 1, "v/>"))
        c.frames()
    pub = harness.client(client_name="p", vpn="public")
    pub.send(Publish((Message("v/1", b"x"),)))
    assert len(public.frames()) == 1
    assert default.frames() == []


def test_shutdown_says_so(harness: Harness) -> None:
    c = harness.client(client_name="c")
    c.conn.close_for_shutdown()
    assert c.frames() == [Disconnect(ErrorCode.SERVER_SHUTTING_DOWN, "the server is shutting down")]
    assert c.transport.closed


def test_credit_holds_deliveries_in_the_session_queue(harness: Harness) -> None:
    sub = harness.client(client_name="s", initial_credit=1)
    sub.send(Subscribe(1, 1, "c"))
    sub.frames()
    pub = harness.client(client_name="p")
    pub.send(Publish((Message("c", b"1"), Message("c", b"2"))))
    assert sub.frames() == [Deliver((1,), (Message("c", b"1"),))]
    assert len(sub.conn.session.pending) == 1  # type: ignore[union-attr]
    from warren.codecs.native import Credit

    sub.send(Credit(5))
    assert sub.frames() == [Deliver((1,), (Message("c", b"2"),))]


def test_message_mapping_round_trip() -> None:
    wire = Message(
        "t", b"p", 1, True, "text/plain", b"cd", "rt", (("a", "1"), ("a", "2")), True, 5000, 9,
        "mid", "sid",
    )
    now = time.monotonic()
    core = from_native(wire, now)
    assert core == core  # identity equality only; check the fields instead
    assert (core.topic, core.payload, core.qos, core.retain, core.content_type,
            core.correlation_data, core.response_topic, core.user_properties,
            core.payload_format_utf8, core.priority, core.message_id, core.sender_id) == (
        "t", b"p", 1, True, "text/plain", b"cd", "rt", (("a", "1"), ("a", "2")), True, 9,
        "mid", "sid",
    )
    assert core.expires_at == pytest.approx(now + 5.0)
    assert to_native(core, True, 5000) == wire
    plain = CoreMessage("t", b"p")
    assert to_native(plain, False, None) == Message("t", b"p")


def test_a_congested_subscriber_slows_the_publisher_down(harness: Harness) -> None:
    # A queue of 10: past half full the publisher is paused (not read from) and the
    # rest of its batch waits; once the subscriber drains, everything goes through.
    from warren.codecs.native import Credit

    harness.settings = NativeSettings(max_queued_messages=10)
    sub = harness.client(client_name="s", initial_credit=0)
    sub.send(Subscribe(1, 1, "bp"))
    sub.frames()
    pub = harness.client(client_name="p")
    pub.send(Publish(tuple(Message("bp", bytes([i])) for i in range(20))))
    assert pub.transport.reading is False  # throttled
    assert len(sub.conn.session.pending) == 6  # type: ignore[union-attr]
    sub.send(Credit(100))
    payloads = []
    for _ in range(5):  # each loop turn drains, wakes the publisher, routes more
        payloads += [m.payload for f in sub.frames() if isinstance(f, Deliver)
                     for m in f.messages]
    assert payloads == [bytes([i]) for i in range(20)]
    assert pub.transport.reading is True
    assert harness.vpns["default"].stats.dropped == 0
