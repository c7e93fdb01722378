"""Every method of the table, from each peer that may send it: encode then decode gives
the event back — fed whole, a byte at a time, through next_event, with trailing
bytes — and every strict prefix of its bytes only asks for more data."""

from __future__ import annotations

from collections.abc import Callable
from random import Random

import pytest
from amqp_codec_support import (
    FEEDERS,
    HEADER,
    SENT_BY,
    events_from,
    method_events,
    new_client,
    new_server,
    pair_for,
    receiver_factory,
    typed,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from warren.codecs.amqp import (
    HEARTBEAT,
    AMQPConnection,
    BasicAck,
    BasicDeliver,
    BasicProperties,
    BasicPublish,
    ChannelOpen,
    ConnectionCloseOk,
    Event,
    Heartbeat,
    Method,
    Role,
)

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def untuned_receiver(sender: Role) -> Callable[[], AMQPConnection]:
    """A receiver right after the protocol header: frame-max is still 4096."""
    return new_server if sender is Role.CLIENT else new_client


def check_feeding(
    make_receiver: Callable[[], AMQPConnection], data: bytes, events: list[Event]
) -> None:
    """``data`` gives ``events`` however it is fed; every strict prefix needs more data."""
    expected = [typed(e) for e in events]
    for name, feed in FEEDERS.items():
        receiver = make_receiver()
        assert [typed(e) for e in feed(receiver, data)] == expected, name
        assert receiver.trailing_data == b"", name
    for cut in range(len(data)):
        receiver = make_receiver()
        assert receiver.receive(data[:cut]) == []
        receiver = make_receiver()
        receiver.receive_data(data[:cut])
        assert receiver.next_event() is None


def check_trailing(make_receiver: Callable[[], AMQPConnection], data: bytes, event: Event) -> None:
    """Bytes of a next frame stay buffered until it is complete, then complete it."""
    follow = b"\x08\x00\x00\x00\x00\x00\x00\xce"  # a heartbeat
    if isinstance(event, ConnectionCloseOk):  # nothing is parsed after it
        receiver = make_receiver()
        assert receiver.receive(data + follow) == [event]
        assert receiver.trailing_data == follow
        return
    for cut in range(1, len(follow)):
        receiver = make_receiver()
        assert [typed(e) for e in receiver.receive(data + follow[:cut])] == [typed(event)]
        assert receiver.trailing_data == follow[:cut]
        assert receiver.receive(follow[cut:]) == [HEARTBEAT]
        assert receiver.trailing_data == b""
    receiver = make_receiver()
    receiver.receive_data(data + follow)
    assert typed(receiver.next_event()) == typed(event)
    assert receiver.next_event() == HEARTBEAT
    assert receiver.next_event() is None


@pytest.mark.parametrize(("cls", "sender_role"), SENT_BY)
@FAST
@given(data=st.data())
def test_every_method_round_trips(
    cls: type[Method], sender_role: Role, data: st.DataObject
) -> None:
    event = data.draw(method_events(cls, max_body=60))
    sender, _ = pair_for(sender_role)
    wire = sender.send(event)
    check_feeding(untuned_receiver(sender_role), wire, [event])
    check_trailing(untuned_receiver(sender_role), wire, event)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([Role.CLIENT, Role.SERVER]), st.data())
def test_streams_of_events(sender_role: Role, data: st.DataObject) -> None:
    """Several events, heartbeats among them, on several channels, in one stream."""
    events: list[Event] = data.draw(
        st.lists(st.one_of(st.just(HEARTBEAT), events_from(sender_role)), min_size=1, max_size=6)
    )
    sender, _ = pair_for(sender_role)
    wire = b"".join(sender.send(e) for e in events)
    for name, feed in FEEDERS.items():
        receiver = receiver_factory(sender_role)()
        assert [typed(e) for e in feed(receiver, wire)] == [typed(e) for e in events], name


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(events_from(Role.SERVER, max_body=20_000), min_size=1, max_size=4),
    st.sampled_from([4096, 5000, 131_072]),
)
def test_large_content_is_cut_to_frame_max(events: list[Method], frame_max: int) -> None:
    sender, _ = pair_for(Role.SERVER, frame_max)
    wire = b"".join(sender.send(e) for e in events)
    # Every frame fits frame-max.
    off = 0
    while off < len(wire):
        size = int.from_bytes(wire[off + 3 : off + 7], "big")
        assert size + 8 <= max(frame_max, 4096)
        off += size + 8
    assert off == len(wire)
    for name in ("whole", "next_event"):
        receiver = receiver_factory(Role.SERVER, frame_max)()
        assert [typed(e) for e in FEEDERS[name](receiver, wire)] == [typed(e) for e in events]


def _frames(data: bytes) -> list[bytes]:
    out = []
    off = 0
    while off < len(data):
        end = off + 8 + int.from_bytes(data[off + 3 : off + 7], "big")
        out.append(data[off:end])
        off = end
    return out


@given(st.randoms(use_true_random=False), st.integers(1, 3))
@settings(max_examples=30, deadline=None)
def test_contents_of_several_channels_interleave(random: Random, count: int) -> None:
    """4.2.6: the frames of one content are in order, but other channels' frames may
    come between them; each channel's content is assembled on its own."""
    client, _ = pair_for(Role.CLIENT, 4096)
    events = [
        BasicPublish(
            routing_key=f"k{channel}",
            channel=channel,
            properties=BasicProperties(message_id=str(channel)),
            body=bytes([channel]) * (5000 * count),
        )
        for channel in (1, 2, 3)
    ]
    queues = [_frames(client.send(e)) for e in events]
    queues.append([client.send(HEARTBEAT)] * 3)
    queues.append([client.send(BasicAck(9, channel=4))])
    wire = []
    while any(queues):
        queue = random.choice([q for q in queues if q])
        wire.append(queue.pop(0))
    received = receiver_factory(Role.CLIENT, 4096)()
    got = received.receive(b"".join(wire))
    assert sorted(e.channel for e in got if isinstance(e, BasicPublish)) == [1, 2, 3]
    assert {e.channel: e for e in got if isinstance(e, BasicPublish)} == {
        e.channel: e for e in events
    }
    assert got.count(HEARTBEAT) == 3


def test_empty_body_has_no_body_frame() -> None:
    server, client = pair_for(Role.SERVER)
    wire = server.send(BasicDeliver("c", 1, channel=1))
    assert [f[0] for f in _frames(wire)] == [1, 2]  # method, header; no body frame
    assert client.receive(wire) == [BasicDeliver("c", 1, channel=1)]


def test_zero_length_body_frames_are_accepted() -> None:
    """Empty body frames add nothing; the content completes at its declared size."""
    server, client = pair_for(Role.SERVER)
    frames = _frames(server.send(BasicDeliver("c", 1, channel=1, body=b"abc")))
    empty = b"\x03\x00\x01\x00\x00\x00\x00\xce"
    wire = frames[0] + frames[1] + empty + frames[2]
    assert client.receive(wire) == [BasicDeliver("c", 1, channel=1, body=b"abc")]


def test_header_then_trailing_data_after_close_ok() -> None:
    """Nothing is parsed after connection.close-ok: later bytes stay trailing data."""
    server = new_server()
    client = new_client()
    wire = client.send(ChannelOpen(channel=1)) + client.send(ConnectionCloseOk())
    junk = b"\x01garbage"
    assert server.receive(wire + junk) == [ChannelOpen(channel=1), ConnectionCloseOk()]
    assert server.trailing_data == junk
    assert server.receive(b"more") == []
    assert server.trailing_data == junk + b"more"


def test_the_protocol_header_arrives_with_frames() -> None:
    client = new_client()
    wire = HEADER + client.send(ChannelOpen(channel=1)) + client.send(HEARTBEAT)
    for name, feed in FEEDERS.items():
        server = AMQPConnection(Role.SERVER)
        got = feed(server, wire)
        assert got[1:] == [ChannelOpen(channel=1), Heartbeat()], name
