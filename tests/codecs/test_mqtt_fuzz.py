"""Fuzzing: any input either parses or raises RemoteProtocolError, nothing else.

No IndexError, UnicodeDecodeError, struct.error, ValueError, ... may escape the
decoder, whatever the bytes and however they are split.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mqtt_support import (
    LEVELS,
    connect_bytes,
    connected_client,
    connected_server,
    connects,
    packets_from,
    receiver_for,
    sender_for,
)

from warren.codecs.mqtt import Connect, Disconnect, MQTTConnection, Packet, Role
from warren.errors import RemoteProtocolError

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Bytes that look like packets often enough to get past the fixed header.
_first_bytes = st.sampled_from(
    [0x10, 0x20, 0x30, 0x32, 0x34, 0x3B, 0x40, 0x50, 0x62, 0x70, 0x82, 0x90, 0xA2, 0xB0,
     0xC0, 0xD0, 0xE0, 0xF0]
)  # fmt: skip


@st.composite
def packet_shaped(draw: st.DrawFn) -> bytes:
    """A valid fixed header with a correct length around arbitrary content."""
    body = draw(st.binary(max_size=60))
    return bytes([draw(_first_bytes), len(body)]) + body


junk = st.one_of(
    st.binary(max_size=200),
    st.lists(packet_shaped(), min_size=1, max_size=5).map(b"".join),
)


def _each_way(factory: Callable[[], MQTTConnection], data: bytes, cuts: list[int]) -> None:
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
        for cut in sorted({*cuts, len(data)}):
            conn.receive(data[previous:cut])
            previous = cut


def _new_server() -> MQTTConnection:
    return MQTTConnection(Role.SERVER)


def _waiting_client(level: int) -> MQTTConnection:
    client = MQTTConnection(Role.CLIENT)
    client.send(Connect("c", protocol_level=level))
    return client


@FUZZ
@given(junk, st.lists(st.integers(0, 200), max_size=4))
def test_arbitrary_bytes_as_first_packet(data: bytes, cuts: list[int]) -> None:
    _each_way(_new_server, data, cuts)
    _each_way(lambda: _waiting_client(4), data, cuts)
    _each_way(lambda: _waiting_client(5), data, cuts)


@FUZZ
@given(st.sampled_from(LEVELS), junk, st.lists(st.integers(0, 200), max_size=4))
def test_arbitrary_bytes_after_connect(level: int, data: bytes, cuts: list[int]) -> None:
    _each_way(lambda: connected_server(level), data, cuts)
    _each_way(lambda: connected_client(level), data, cuts)


@FUZZ
@given(st.sampled_from(LEVELS), st.binary(max_size=80), st.lists(st.integers(0, 100)))
def test_connect_header_then_arbitrary_bytes(level: int, tail: bytes, cuts: list[int]) -> None:
    """A CONNECT that starts right, then goes anywhere."""
    head = connect_bytes(level)[:10]  # up to and including the protocol level
    body = head[2:] + tail
    data = bytes([0x10, len(body)]) + body if len(body) < 128 else head + tail
    _each_way(_new_server, data, cuts)


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with a few bytes flipped, inserted or deleted."""
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
def test_mutated_valid_packets(data: st.DataObject) -> None:
    level = data.draw(st.sampled_from(LEVELS))
    sender = data.draw(st.sampled_from([Role.CLIENT, Role.SERVER]))
    packets: list[Packet] = data.draw(st.lists(packets_from(sender, level), min_size=1, max_size=3))
    for i, packet in enumerate(packets):
        if isinstance(packet, Disconnect):  # nothing may be sent after it
            packets = packets[: i + 1]
            break
    out = sender_for(sender, level)
    wire = b"".join(out.send(packet) for packet in packets)
    broken = data.draw(mutated(wire))
    cuts = data.draw(st.lists(st.integers(0, len(broken)), max_size=3))
    _each_way(lambda: receiver_for(sender, level), broken, cuts)


@FUZZ
@given(st.data())
def test_mutated_valid_connects(data: st.DataObject) -> None:
    level = data.draw(st.sampled_from(LEVELS))
    wire = MQTTConnection(Role.CLIENT).send(data.draw(connects(level)))
    broken = data.draw(mutated(wire))
    _each_way(_new_server, broken, data.draw(st.lists(st.integers(0, len(broken)), max_size=3)))


def test_the_fuzz_harness_can_fail() -> None:
    """The harness lets anything but RemoteProtocolError through."""

    class Broken(MQTTConnection):
        def receive(self, data: bytes) -> list[Packet]:
            raise IndexError("boom")

    try:
        _each_way(lambda: Broken(Role.SERVER), b"\x00", [])
    except IndexError:
        return
    raise AssertionError("IndexError was swallowed")
