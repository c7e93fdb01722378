"""Every frame type from both sides: encode then decode gives the event back, however
the bytes are split, with trailing bytes, and every strict prefix needs more data."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from native_support import (
    CONNECT,
    CONNECTED,
    FEEDERS,
    closes,
    connected_pair,
    connecteds,
    connects,
    events_from,
    receiver_for,
    sender_for,
)

from warren.codecs.native import (
    Connect,
    Deliver,
    Error,
    Event,
    FrameType,
    Message,
    NativeConnection,
    Ping,
    Pong,
    Publish,
    Role,
    Subscribe,
)

FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ROLES = (Role.CLIENT, Role.SERVER)
PING = bytes.fromhex("0b0000000000")
PONG = bytes.fromhex("0c0000000000")


def _check_feeding(
    make_receiver: Callable[[], NativeConnection],
    data: bytes,
    event: Event,
    follow: tuple[bytes, Event | None],
) -> None:
    """Whole, byte by byte, with trailing data; every strict prefix needs more data.

    ``follow`` is a frame that may come next and its bytes; ``None`` as its event
    means the stream ends after ``event`` (its bytes then stay trailing data).
    """
    for name, feed in FEEDERS.items():
        receiver = make_receiver()
        assert feed(receiver, data) == [event], name
        assert receiver.trailing_data == b"", name
    for cut in range(len(data)):
        receiver = make_receiver()
        receiver.receive_data(data[:cut])
        assert receiver.next_event() is None
        receiver = make_receiver()
        assert receiver.receive(data[:cut]) == []
    follow_data, follow_event = follow
    for cut in (1, len(follow_data) // 2, len(follow_data) - 1):
        receiver = make_receiver()
        assert receiver.receive(data + follow_data[:cut]) == [event]
        assert receiver.trailing_data == follow_data[:cut]
        if follow_event is None:
            assert receiver.receive(follow_data[cut:]) == []
            assert receiver.trailing_data == follow_data
        else:
            assert receiver.receive(follow_data[cut:]) == [follow_event]
            assert receiver.trailing_data == b""
    receiver = make_receiver()
    receiver.receive_data(data + follow_data)
    assert receiver.next_event() == event
    assert receiver.next_event() == follow_event
    assert receiver.trailing_data == (follow_data if follow_event is None else b"")


@pytest.mark.parametrize("sender", ROLES, ids=lambda r: r.value)
@FAST
@given(data=st.data())
def test_frames_round_trip(sender: Role, data: st.DataObject) -> None:
    event = data.draw(events_from(sender))
    wire = sender_for(sender).send(event)
    follow = (PING, None if closes(event) else Ping())
    _check_feeding(lambda: receiver_for(sender), wire, event, follow)


@FAST
@given(connect=connects)
def test_connect_round_trip(connect: Connect) -> None:
    wire = NativeConnection(Role.CLIENT).send(connect)
    assert wire[:4] == b"WRN\x01"  # the preamble, then the CONNECT frame
    assert wire[4] == FrameType.CONNECT

    def server() -> NativeConnection:
        return NativeConnection(Role.SERVER)

    _check_feeding(server, wire, connect, (PING, Ping()))
    receiver = server()
    receiver.receive(wire)
    assert receiver.protocol_version == 1
    assert receiver.credit == connect.initial_credit
    assert receiver.peer_max_frame_size == connect.max_frame_size


@FAST
@given(connected=connecteds)
def test_connected_round_trip(connected: object) -> None:
    server = NativeConnection(Role.SERVER)
    server.receive(NativeConnection(Role.CLIENT).send(CONNECT))
    wire = server.send(connected)  # type: ignore[arg-type]

    def client() -> NativeConnection:
        conn = NativeConnection(Role.CLIENT)
        conn.send(CONNECT)
        return conn

    _check_feeding(client, wire, connected, (PONG, Pong()))  # type: ignore[arg-type]


@pytest.mark.parametrize("sender", ROLES, ids=lambda r: r.value)
@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_many_frames_in_one_chunk(sender: Role, data: st.DataObject) -> None:
    events = data.draw(st.lists(events_from(sender), min_size=1, max_size=10))
    for i, event in enumerate(events):  # a closing frame ends the stream
        if closes(event):
            events = events[: i + 1]
            break
    out = sender_for(sender)
    wire = b"".join(out.send(event) for event in events)
    assert receiver_for(sender).receive(wire) == events
    receiver = receiver_for(sender)
    receiver.receive_data(wire)
    got: list[Event] = []
    while (next_one := receiver.next_event()) is not None:
        got.append(next_one)
    assert got == events
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=6)))
    receiver = receiver_for(sender)
    got, previous = [], 0
    for cut in [*cuts, len(wire)]:
        got += receiver.receive(wire[previous:cut])
        previous = cut
    assert got == events
    assert receiver.trailing_data == b""


def test_connect_and_pipelined_frames_in_one_chunk() -> None:
    """A client's first write often holds CONNECT and more; the phase changes mid-chunk."""
    client = NativeConnection(Role.CLIENT)
    events: list[Event] = [
        CONNECT,
        Subscribe(1, 1, "a/>"),
        Publish((Message("a/b", b"x"),)),
        Ping(),
    ]
    wire = b"".join(client.send(event) for event in events)
    assert NativeConnection(Role.SERVER).receive(wire) == events
    server = NativeConnection(Role.SERVER)
    server.receive_data(wire)
    assert [server.next_event() for _ in events] == events
    assert server.next_event() is None


def test_large_batch_in_small_chunks() -> None:
    client, server = connected_pair()
    event = Publish(tuple(Message(f"t/{i}", bytes(range(256)) * 40) for i in range(100)))
    wire = client.send(event)
    assert len(wire) > 1_000_000
    got: list[Event] = []
    for i in range(0, len(wire), 65536):
        got += server.receive(wire[i : i + 65536])
    assert got == [event]


def test_receive_accepts_bytearray_and_memoryview() -> None:
    client, server = connected_pair()
    wire = client.send(Publish((Message("a", b"payload"),)))
    assert server.receive(bytearray(wire)) == [Publish((Message("a", b"payload"),))]
    (event,) = server.receive(memoryview(wire))
    assert isinstance(event, Publish)
    assert type(event.messages[0].payload) is bytes


def test_deliver_of_a_received_publish_keeps_every_field() -> None:
    """A message read from PUBLISH and written in DELIVER comes out unchanged."""
    message = Message(
        "orders/eu/42",
        b"\x00\x01",
        qos=1,
        retain=True,
        content_type="application/json",
        correlation_data=b"c-1",
        response_topic="#inbox/c/7",
        user_properties=(("k", "v"), ("k", "w")),
        payload_format_utf8=True,
        ttl_ms=1500,
        priority=9,
        message_id="m-1",
        sender_id="pair",
    )
    client, server = connected_pair()
    (publish,) = server.receive(client.send(Publish((message,), first_id=7)))
    assert isinstance(publish, Publish)
    (deliver,) = client.receive(server.send(Deliver((3, 4), publish.messages, first_id=1)))
    assert deliver == Deliver((3, 4), (message,), first_id=1)


def test_connected_pair_surfaces() -> None:
    client, server = connected_pair()
    assert client.peer_max_frame_size == CONNECTED.max_frame_size
    assert server.max_frame_size == CONNECTED.max_frame_size
    assert client.credit == server.credit == CONNECT.initial_credit
    assert client.protocol_version == server.protocol_version == 1


def test_error_without_close_keeps_the_stream_open() -> None:
    client, server = connected_pair()
    wire = server.send(Error(200, "publish denied", close=False, topic="a")) + PING
    assert client.receive(wire) == [Error(200, "publish denied", close=False, topic="a"), Ping()]
