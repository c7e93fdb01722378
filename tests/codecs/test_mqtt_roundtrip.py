"""Every packet type, both versions, with and without properties: encode then decode
gives the packet back, however the bytes are split, and with trailing bytes."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mqtt_support import (
    FEEDERS,
    LEVELS,
    connacks,
    connected_pair,
    connects,
    packets_from,
    receiver_for,
    sender_for,
)

from warren.codecs.mqtt import (
    NO_PROPERTIES,
    Connect,
    Disconnect,
    MQTTConnection,
    Packet,
    PacketType,
    PingReq,
    PingResp,
    Properties,
    Publish,
    Role,
    Subscribe,
    SubscriptionRequest,
)

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ROLES = (Role.CLIENT, Role.SERVER)


def _check_feeding(
    make_receiver: Callable[[], MQTTConnection],
    data: bytes,
    packet: Packet,
    follow: tuple[bytes, Packet | None],
) -> None:
    """Whole, byte by byte, with trailing data; every strict prefix needs more data.

    ``follow`` is a packet that may come next and its bytes; ``None`` as the packet
    means the stream ends after ``packet`` (its bytes then stay trailing data).
    """
    for name, feed in FEEDERS.items():
        receiver = make_receiver()
        assert feed(receiver, data) == [packet], name
        assert receiver.trailing_data == b"", name
    # Every strict prefix is "need more data", nothing is consumed.
    for cut in range(len(data)):
        receiver = make_receiver()
        receiver.receive_data(data[:cut])
        assert receiver.next_event() is None
        assert receiver.trailing_data == data[:cut]
        receiver = make_receiver()
        assert receiver.receive(data[:cut]) == []
        assert receiver.trailing_data == data[:cut]
    # Trailing bytes of the next packet stay buffered, then complete it.
    follow_data, follow_packet = follow
    for cut in range(1, len(follow_data)):
        receiver = make_receiver()
        assert receiver.receive(data + follow_data[:cut]) == [packet]
        assert receiver.trailing_data == follow_data[:cut]
        if follow_packet is None:
            assert receiver.receive(follow_data[cut:]) == []
            assert receiver.trailing_data == follow_data
        else:
            assert receiver.receive(follow_data[cut:]) == [follow_packet]
            assert receiver.trailing_data == b""
    receiver = make_receiver()
    receiver.receive_data(data + follow_data)
    assert receiver.next_event() == packet
    assert receiver.next_event() == follow_packet
    assert receiver.trailing_data == (follow_data if follow_packet is None else b"")


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("sender", ROLES, ids=lambda r: r.value)
@FAST
@given(data=st.data())
def test_packets_round_trip(level: int, sender: Role, data: st.DataObject) -> None:
    packet = data.draw(packets_from(sender, level))
    wire = sender_for(sender, level).send(packet)
    follow = (wire, None if isinstance(packet, Disconnect) else packet)
    _check_feeding(lambda: receiver_for(sender, level), wire, packet, follow)


@pytest.mark.parametrize("level", LEVELS)
@FAST
@given(data=st.data())
def test_connect_round_trip(level: int, data: st.DataObject) -> None:
    packet = data.draw(connects(level))
    wire = MQTTConnection(Role.CLIENT).send(packet)

    def server() -> MQTTConnection:
        return MQTTConnection(Role.SERVER)

    _check_feeding(server, wire, packet, (b"\xc0\x00", PingReq()))
    receiver = server()
    receiver.receive(wire)
    assert receiver.protocol_level == level


@pytest.mark.parametrize("level", LEVELS)
@FAST
@given(data=st.data())
def test_connack_round_trip(level: int, data: st.DataObject) -> None:
    packet = data.draw(connacks(level))
    server = MQTTConnection(Role.SERVER)
    server.receive(MQTTConnection(Role.CLIENT).send(Connect("x", protocol_level=level)))
    wire = server.send(packet)

    def client() -> MQTTConnection:
        conn = MQTTConnection(Role.CLIENT)
        conn.send(Connect("x", protocol_level=level))
        return conn

    refused = packet.reason_code >= (1 if level == 4 else 0x80)
    _check_feeding(client, wire, packet, (b"\xd0\x00", None if refused else PingResp()))


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("sender", ROLES, ids=lambda r: r.value)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_many_packets_in_one_chunk(level: int, sender: Role, data: st.DataObject) -> None:
    packets = data.draw(st.lists(packets_from(sender, level), min_size=1, max_size=12))
    # A DISCONNECT ends the stream: keep only what precedes the first one.
    for i, packet in enumerate(packets):
        if isinstance(packet, Disconnect):
            packets = packets[: i + 1]
            break
    out = sender_for(sender, level)
    wire = b"".join(out.send(packet) for packet in packets)
    assert receiver_for(sender, level).receive(wire) == packets
    receiver = receiver_for(sender, level)
    receiver.receive_data(wire)
    got = []
    while (packet := receiver.next_event()) is not None:
        got.append(packet)
    assert got == packets
    # Arbitrary splits of the stream give the same packets.
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=6)))
    receiver = receiver_for(sender, level)
    got, previous = [], 0
    for cut in [*cuts, len(wire)]:
        got += receiver.receive(wire[previous:cut])
        previous = cut
    assert got == packets
    assert receiver.trailing_data == b""


@pytest.mark.parametrize("level", LEVELS)
def test_connect_then_packets_in_one_chunk(level: int) -> None:
    """A client's first write often holds CONNECT and more; the phase changes mid-chunk."""
    client = MQTTConnection(Role.CLIENT)
    packets: list[Packet] = [
        Connect("c", protocol_level=level),
        Subscribe(1, (SubscriptionRequest("a/#", 1),)),
        Publish("a/b", b"x", qos=1, packet_id=2),
        PingReq(),
    ]
    wire = b"".join(client.send(packet) for packet in packets)
    server = MQTTConnection(Role.SERVER)
    assert server.receive(wire) == packets
    assert server.protocol_level == level


def test_large_publish_in_small_chunks() -> None:
    client, server = connected_pair(5)
    packet = Publish("big", bytes(range(256)) * 4000, qos=1, packet_id=9)
    wire = client.send(packet)
    assert len(wire) > 1_000_000
    got: list[Packet] = []
    for i in range(0, len(wire), 65536):
        got += server.receive(wire[i : i + 65536])
    assert got == [packet]


def test_receive_accepts_bytearray_and_memoryview() -> None:
    client, server = connected_pair(4)
    wire = client.send(Publish("a", b"payload"))
    assert server.receive(bytearray(wire)) == [Publish("a", b"payload")]
    result = server.receive(memoryview(wire))  # type: ignore[arg-type]
    assert result == [Publish("a", b"payload")]
    assert type(result[0].payload) is bytes  # type: ignore[union-attr]


def test_decoded_packets_share_no_properties() -> None:
    client, server = connected_pair(5)
    (packet,) = server.receive(client.send(Publish("a", b"x")))
    assert isinstance(packet, Publish)
    assert packet.properties is NO_PROPERTIES


def test_v4_decodes_with_no_properties() -> None:
    client, server = connected_pair(4)
    sent = Publish("a", b"x", properties=Properties(content_type="t"))
    (packet,) = server.receive(client.send(sent))
    assert isinstance(packet, Publish)
    assert packet.properties is NO_PROPERTIES


@pytest.mark.parametrize("level", LEVELS)
def test_every_packet_type_is_covered(level: int) -> None:
    """The strategies reach every packet type (so the round trips above cover them)."""
    seen: set[PacketType] = {PacketType.CONNECT, PacketType.CONNACK}

    @settings(max_examples=250, deadline=None, database=None)
    @given(st.sampled_from(ROLES).flatmap(lambda role: packets_from(role, level)))
    def collect(packet: Packet) -> None:
        seen.add(packet.packet_type)

    collect()
    expected = set(PacketType) - ({PacketType.AUTH} if level == 4 else set())
    assert seen == expected
