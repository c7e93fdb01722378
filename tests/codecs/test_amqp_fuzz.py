"""Fuzzing: any input either parses or raises RemoteProtocolError, nothing else.

No IndexError, struct.error, UnicodeDecodeError, RecursionError, KeyError... may
escape the decoder, whatever the bytes and however they are split.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Callable

from amqp_codec_support import HEADER, events_from, new_client, new_server, pair_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from warren.codecs.amqp import HEARTBEAT, METHODS, AMQPConnection, Event, Role
from warren.errors import RemoteProtocolError

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def method_payloads(draw: st.DrawFn) -> bytes:
    """A known class and method id, then arbitrary arguments."""
    cls = draw(st.sampled_from(METHODS))
    return struct.pack(">HH", cls.CLASS_ID, cls.METHOD_ID) + draw(st.binary(max_size=40))


@st.composite
def header_payloads(draw: st.DrawFn) -> bytes:
    """A content header for basic with a small body size, then arbitrary properties."""
    size = draw(st.integers(0, 8))
    flags = draw(st.integers(0, 0xFFFF))
    return struct.pack(">HHQH", 60, 0, size, flags) + draw(st.binary(max_size=40))


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    """A frame header with a right size around a payload, usually a right frame end."""
    ftype = draw(st.sampled_from([1, 1, 1, 2, 2, 3, 3, 8, 0, 4, 0xCE]))
    channel = draw(st.sampled_from([0, 1, 1, 2, 0xFFFF]))
    if ftype == 1:
        payload = draw(st.one_of(method_payloads(), st.binary(max_size=8)))
    elif ftype == 2:
        payload = draw(st.one_of(header_payloads(), st.binary(max_size=8)))
    else:
        payload = draw(st.binary(max_size=12))
    end = draw(st.sampled_from([0xCE] * 15 + [0x00]))
    return struct.pack(">BHI", ftype, channel, len(payload)) + payload + bytes((end,))


junk = st.one_of(
    st.binary(max_size=200),
    st.lists(frames(), min_size=1, max_size=6).map(b"".join),
)
cuts = st.lists(st.integers(0, 300), max_size=4)


def each_way(factory: Callable[[], AMQPConnection], data: bytes, cut_at: list[int]) -> None:
    """Feed ``data`` to fresh receivers three ways; only RemoteProtocolError may escape."""
    with contextlib.suppress(RemoteProtocolError):  # whole, through receive()
        factory().receive(data)
    conn = factory()  # whole, through next_event()
    conn.receive_data(data)
    with contextlib.suppress(RemoteProtocolError):
        while conn.next_event() is not None:
            pass
    conn = factory()  # split at the given points, through receive()
    with contextlib.suppress(RemoteProtocolError):
        previous = 0
        for cut in sorted({*cut_at, len(data)}):
            conn.receive(data[previous:cut])
            previous = cut


@FUZZ
@given(junk, cuts)
def test_arbitrary_bytes_after_the_protocol_header(data: bytes, cut_at: list[int]) -> None:
    each_way(new_server, data, cut_at)
    each_way(new_client, data, cut_at)


@FUZZ
@given(junk, cuts)
def test_arbitrary_bytes_instead_of_the_protocol_header(data: bytes, cut_at: list[int]) -> None:
    each_way(lambda: AMQPConnection(Role.SERVER), data, cut_at)
    each_way(lambda: AMQPConnection(Role.SERVER), HEADER[: len(data) % 9] + data, cut_at)
    each_way(lambda: AMQPConnection(Role.CLIENT), b"AMQP"[: len(data) % 5] + data, cut_at)


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with a few bytes flipped, set, inserted or deleted."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["flip", "set", "insert", "delete"]))
        if not out and action in ("flip", "set", "delete"):
            action = "insert"
        position = draw(st.integers(0, max(len(out) - 1, 0)))
        if action == "flip":
            out[position] ^= 1 << draw(st.integers(0, 7))
        elif action == "set":
            out[position] = draw(st.integers(0, 255))
        elif action == "insert":
            out.insert(position, draw(st.integers(0, 255)))
        else:
            del out[position]
    return bytes(out)


@FUZZ
@given(st.data())
def test_mutated_valid_frames(data: st.DataObject) -> None:
    sender_role = data.draw(st.sampled_from([Role.CLIENT, Role.SERVER]))
    events: list[Event] = data.draw(
        st.lists(
            st.one_of(st.just(HEARTBEAT), events_from(sender_role, max_body=50)),
            min_size=1,
            max_size=3,
        )
    )
    sender, _ = pair_for(sender_role, 4096)
    wire = b"".join(sender.send(e) for e in events)
    broken = data.draw(mutated(wire))
    cut_at = data.draw(st.lists(st.integers(0, len(broken)), max_size=3))
    each_way(lambda: pair_for(sender_role, 4096)[1], broken, cut_at)


def test_the_fuzz_harness_can_fail() -> None:
    """The harness lets anything but RemoteProtocolError through."""

    class Broken(AMQPConnection):
        def receive(self, data: bytes | bytearray | memoryview) -> list[Event]:
            raise IndexError("boom")

    try:
        each_way(lambda: Broken(Role.SERVER), b"\x00", [])
    except IndexError:
        return
    raise AssertionError("IndexError was swallowed")
