"""The connection state machine: packet order and direction, both ways."""

from __future__ import annotations

from typing import Any

import pytest
from mqtt_support import LEVELS, connect_bytes, connected_client, connected_pair, connected_server

from warren.codecs.mqtt import (
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    MQTTConnection,
    Packet,
    PingReq,
    PingResp,
    Properties,
    PubAck,
    Publish,
    Role,
    SubAck,
    Subscribe,
    SubscriptionRequest,
    UnsubAck,
    Unsubscribe,
    Will,
    encode_properties,
    encode_publish,
)
from warren.errors import LocalProtocolError, RemoteProtocolError

# A valid packet of each type that only one side may send (3.1.1 encodings).
CLIENT_ONLY = {
    "CONNECT": "100d00044d5154540402003c000163",
    "SUBSCRIBE": "82 06 0001 0001 61 00",
    "UNSUBSCRIBE": "a2 05 0001 0001 61",
    "PINGREQ": "c000",
}
SERVER_ONLY = {
    "CONNACK": "20020000",
    "SUBACK": "9003000100",
    "UNSUBACK": "b0020001",
    "PINGRESP": "d000",
}


def _short_id(value: object) -> str:
    return hex(value) if isinstance(value, int) else type(value).__name__


def _hex(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def _raises(conn: MQTTConnection, data: bytes, code: int) -> RemoteProtocolError:
    with pytest.raises(RemoteProtocolError) as info:
        conn.receive(data)
    assert info.value.reason_code == code, info.value
    return info.value


# -- receiving: server ------------------------------------------------------------


@pytest.mark.parametrize("wire", ["c000", "30 03 0001 61", "e000", "20020000"])
def test_server_first_packet_must_be_connect(wire: str) -> None:
    error = _raises(MQTTConnection(Role.SERVER), _hex(wire), 0x82)
    assert "CONNECT" in str(error)


@pytest.mark.parametrize("level", LEVELS)
def test_second_connect_is_a_protocol_error(level: int) -> None:
    server = connected_server(level)
    _raises(server, connect_bytes(level), 0x82)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("name", sorted(SERVER_ONLY))
def test_server_refuses_server_only_packets(level: int, name: str) -> None:
    wire = _hex(SERVER_ONLY[name])
    if level == 5 and name in ("CONNACK", "SUBACK"):
        wire = wire[:1] + bytes([wire[1] + 1]) + wire[2:4] + b"\x00" + wire[4:]
    _raises(connected_server(level), wire, 0x82)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("name", sorted(CLIENT_ONLY))
def test_client_refuses_client_only_packets(level: int, name: str) -> None:
    _raises(connected_client(level), _hex(CLIENT_ONLY[name]), 0x82)


def test_client_refuses_anything_before_sending_connect() -> None:
    _raises(MQTTConnection(Role.CLIENT), _hex("20020000"), 0x82)


@pytest.mark.parametrize("wire", ["30 03 0001 61", "d000", "e000"])
def test_client_first_packet_must_be_connack(wire: str) -> None:
    client = MQTTConnection(Role.CLIENT)
    client.send(Connect("c"))
    _raises(client, _hex(wire), 0x82)


def test_client_accepts_auth_before_connack_on_v5() -> None:
    client = MQTTConnection(Role.CLIENT)
    client.send(Connect("c", protocol_level=5, properties=Properties(authentication_method="m")))
    assert client.receive(_hex("f0 06 18 04 15 0001 6d 20 03 00 00 00")) == [
        Auth(0x18, Properties(authentication_method="m")),
        ConnAck(),
    ]
    _raises(client, _hex("20 03 00 00 00"), 0x82)  # a second CONNACK


@pytest.mark.parametrize("level", LEVELS)
def test_nothing_is_parsed_after_disconnect(level: int) -> None:
    server = connected_server(level)
    assert server.receive(_hex("e000 c000 00")) == [Disconnect()]
    assert server.trailing_data == _hex("c000 00")
    assert server.receive(_hex("c000")) == []
    assert server.next_event() is None
    assert server.trailing_data == _hex("c000 00 c000")


def test_nothing_is_parsed_after_a_refusing_connack() -> None:
    client = MQTTConnection(Role.CLIENT)
    client.send(Connect("c"))
    assert client.receive(_hex("20020005 d000")) == [ConnAck(False, 5)]
    assert client.trailing_data == _hex("d000")


@pytest.mark.parametrize("level", LEVELS)
def test_protocol_level_follows_the_connect(level: int) -> None:
    client = MQTTConnection(Role.CLIENT)
    assert client.protocol_level is None
    wire = client.send(Connect("c", protocol_level=level))
    assert client.protocol_level == level
    server = MQTTConnection(Role.SERVER)
    assert server.protocol_level is None
    server.receive(wire)
    assert server.protocol_level == level


def test_failed_connect_stops_parsing() -> None:
    server = MQTTConnection(Role.SERVER)
    data = _hex("10 0d 0004 4d515454 03 02 003c 0001 63") + connect_bytes(4)
    _raises(server, data, 0x84)
    assert server.protocol_level is None
    with pytest.raises(RemoteProtocolError) as info:
        server.receive(connect_bytes(4))
    assert info.value.reason_code == 0x84
    # The refusal goes out as a 3.1.1 CONNACK, return code 1 (unacceptable version).
    assert server.send(ConnAck(reason_code=1)) == _hex("20 02 00 01")


def test_failed_v5_connect_keeps_the_level_for_the_refusal() -> None:
    server = MQTTConnection(Role.SERVER)
    _raises(server, _hex("10 11 0004 4d515454 05 02 003c 03 21 0000 0001 63"), 0x82)
    assert server.protocol_level == 5
    assert server.send(ConnAck(reason_code=0x82)) == _hex("20 03 00 82 00")


# -- sending -------------------------------------------------------------------------


def _local(conn: MQTTConnection, packet: Packet, code: int | None = None) -> None:
    with pytest.raises(LocalProtocolError) as info:
        conn.send(packet)
    if code is not None:
        assert info.value.reason_code == code, info.value


@pytest.mark.parametrize(
    "packet", [Publish("a"), PingReq(), Disconnect(), Subscribe(1, (SubscriptionRequest("a"),))]
)
def test_client_must_send_connect_first(packet: Packet) -> None:
    _local(MQTTConnection(Role.CLIENT), packet, 0x82)


@pytest.mark.parametrize("packet", [Publish("a"), PingResp(), Disconnect(), PubAck(1)])
def test_server_must_send_connack_first(packet: Packet) -> None:
    server = MQTTConnection(Role.SERVER)
    server.receive(connect_bytes(4))
    _local(server, packet, 0x82)


@pytest.mark.parametrize("level", LEVELS)
def test_direction_is_enforced_on_send(level: int) -> None:
    client, server = connected_pair(level)
    for packet in (ConnAck(), SubAck(1, (0,)), UnsubAck(1), PingResp(), Connect("x")):
        _local(client, packet, 0x82)
    for packet in (
        Connect("x"),
        ConnAck(),
        Subscribe(1, (SubscriptionRequest("a"),)),
        Unsubscribe(1, ("a",)),
        PingReq(),
    ):
        _local(server, packet, 0x82)


@pytest.mark.parametrize("level", LEVELS)
def test_nothing_is_sent_after_disconnect(level: int) -> None:
    client, server = connected_pair(level)
    client.send(Disconnect())
    _local(client, PingReq(), 0x82)
    server.send(Disconnect())
    _local(server, PingResp(), 0x82)


def test_nothing_is_sent_after_a_refusing_connack() -> None:
    server = MQTTConnection(Role.SERVER)
    server.receive(connect_bytes(5))
    server.send(ConnAck(reason_code=0x87))
    _local(server, Disconnect(), 0x82)


def test_local_error_changes_nothing() -> None:
    client, server = connected_pair(4)
    _local(client, Publish("a", qos=1))  # no packet id
    assert server.receive(client.send(Publish("a", qos=1, packet_id=1))) == [
        Publish("a", qos=1, packet_id=1)
    ]


def test_auth_cannot_be_sent_on_3_1_1() -> None:
    client, server = connected_pair(4)
    _local(client, Auth())
    _local(server, Auth())


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize(
    ("packet", "code"),
    [
        (Publish("a", qos=3, packet_id=1), 0x81),
        (Publish("a", qos=-1), 0x81),
        (Publish("a", qos=1), 0x82),
        (Publish("a", qos=2, packet_id=0), 0x82),
        (Publish("a", qos=1, packet_id=65536), 0x82),
        (Publish("a", qos=0, packet_id=5), 0x82),
        (Publish("a", dup=True), 0x81),
        (Publish("a/+"), 0x90),
        (Publish("#"), 0x90),
        (Publish("a\x00b"), 0x81),
        (Publish("\ud800"), 0x81),
        (Publish("x" * 65536), 0x81),
        (Publish(""), 0x82),
        (PubAck(0), 0x82),
        (PubAck(70000), 0x82),
        (Subscribe(1, ()), 0x82),
        (Subscribe(0, (SubscriptionRequest("a"),)), 0x82),
        (Subscribe(1, (SubscriptionRequest("a", qos=3),)), 0x81),
        (Subscribe(1, (SubscriptionRequest("a\x00"),)), 0x81),
        (Subscribe(1, (SubscriptionRequest("x" * 65536),)), 0x81),
        (Unsubscribe(1, ("\udfff",)), 0x81),
        (Unsubscribe(1, ()), 0x82),
    ],
    ids=_short_id,
)
def test_invalid_client_packets_are_refused(level: int, packet: Packet, code: int) -> None:
    client, _ = connected_pair(level)
    _local(client, packet, code)


@pytest.mark.parametrize(
    ("packet", "code"),
    [
        (Publish("a", properties=Properties(subscription_identifiers=(1,))), 0x82),
        (Publish("a", properties=Properties(topic_alias=0)), 0x94),
        (Publish("a", properties=Properties(session_expiry_interval=1)), 0x81),
        (Publish("a", properties=Properties(payload_format_indicator=2)), 0x82),
        (Publish("a", properties=Properties(response_topic="r/#")), 0x82),
        (Publish("a", properties=Properties(message_expiry_interval=2**32)), 0x81),
        (Publish("a", properties=Properties(correlation_data=bytes(65536))), 0x81),
        (Publish("a", properties=Properties(user_properties=(("k", "\x00"),))), 0x81),
        (PubAck(1, 0x05), 0x82),
        (Subscribe(1, (SubscriptionRequest("a", retain_handling=3),)), 0x81),
        (Subscribe(1, (SubscriptionRequest("$share/g/a", no_local=True),)), 0x82),
        (
            Subscribe(
                1,
                (SubscriptionRequest("a"),),
                Properties(subscription_identifiers=(1, 2)),
            ),
            0x82,
        ),
        (
            Subscribe(1, (SubscriptionRequest("a"),), Properties(subscription_identifiers=(0,))),
            0x82,
        ),
        (Disconnect(0x05), 0x82),
        (Disconnect(properties=Properties(maximum_qos=1)), 0x81),
        (Auth(0x18, Properties(authentication_data=b"x")), 0x82),
    ],
    ids=_short_id,
)
def test_invalid_v5_client_packets_are_refused(packet: Packet, code: int) -> None:
    client, _ = connected_pair(5)
    _local(client, packet, code)


@pytest.mark.parametrize(
    ("packet", "code"),
    [
        (Disconnect(properties=Properties(session_expiry_interval=5)), 0x82),
        (SubAck(1, ()), 0x82),
        (SubAck(1, (3,)), 0x82),
        (UnsubAck(1), 0x82),
        (UnsubAck(1, (0x01,)), 0x82),
        (Publish("", properties=Properties(topic_alias=1)), None),
        (Publish("a", properties=Properties(subscription_identifiers=(268_435_455,))), None),
        (Publish("a", properties=Properties(subscription_identifiers=(268_435_456,))), 0x81),
        (Publish("a", properties=Properties(subscription_identifiers=(0,))), 0x82),
    ],
    ids=_short_id,
)
def test_v5_server_packets(packet: Packet, code: int | None) -> None:
    _, server = connected_pair(5)
    if code is None:
        assert server.send(packet)
    else:
        _local(server, packet, code)


@pytest.mark.parametrize(
    ("packet", "code"),
    [
        (Connect("c", protocol_level=3), 0x84),
        (Connect("c", protocol_name="MQIsdp"), 0x84),
        (Connect("c", keep_alive=65536), 0x81),
        (Connect("c", password=b"p"), 0x81),
        (Connect("c", will=Will("a/#", b"")), 0x90),
        (Connect("c", will=Will("", b"")), 0x90),
        (Connect("c", will=Will("w", b"", qos=3)), 0x81),
        (Connect("c\x00"), 0x81),
        (Connect("\ud800"), 0x81),
        (Connect("c", username="u", password=bytes(65536)), 0x81),
        (Connect("c", protocol_level=5, properties=Properties(receive_maximum=0)), 0x82),
        (Connect("c", protocol_level=5, properties=Properties(topic_alias=1)), 0x81),
        (
            Connect(
                "c",
                protocol_level=5,
                will=Will("w", b"", properties=Properties(session_expiry_interval=1)),
            ),
            0x81,
        ),
    ],
    ids=_short_id,
)
def test_invalid_connect_is_refused(packet: Connect, code: int) -> None:
    client = MQTTConnection(Role.CLIENT)
    _local(client, packet, code)
    assert client.protocol_level is None
    client.send(Connect("c"))  # still possible


@pytest.mark.parametrize(
    ("level", "packet", "code"),
    [
        (4, ConnAck(reason_code=6), 0x82),
        (4, ConnAck(True, 1), 0x82),
        (5, ConnAck(reason_code=0x01), 0x82),
        (5, ConnAck(True, 0x80), 0x82),
        (5, ConnAck(properties=Properties(topic_alias=2)), 0x81),
        (5, ConnAck(properties=Properties(maximum_qos=2)), 0x82),
        (5, ConnAck(properties=Properties(server_keep_alive=65536)), 0x81),
        (5, ConnAck(properties=Properties(server_keep_alive=-1)), 0x81),
    ],
    ids=_short_id,
)
def test_invalid_connack_is_refused(level: int, packet: ConnAck, code: int) -> None:
    server = MQTTConnection(Role.SERVER)
    server.receive(connect_bytes(level))
    _local(server, packet, code)


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ((b"a", b"", 0, False, False, None, None, 3), 0x84),
        ((b"a", b"", 0, False, False, None, None, 6), 0x84),
        ((b"", b"", 0, False, False, None, None, 4), 0x82),
        ((b"a", b"", 1, False, False, None, None, 4), 0x82),
        ((b"a", b"", 0, False, False, 1, None, 5), 0x82),
        ((b"a", b"", 0, False, True, None, None, 5), 0x81),
        ((b"a", b"", 3, False, False, 1, None, 5), 0x81),
        ((b"x" * 65536, b"", 0, False, False, None, None, 4), 0x81),
    ],
    ids=_short_id,
)
def test_encode_publish_refuses(args: tuple[Any, ...], code: int) -> None:
    with pytest.raises(LocalProtocolError) as info:
        encode_publish(*args)
    assert info.value.reason_code == code


def test_encode_publish_v5_allows_empty_topic() -> None:
    block = encode_properties(Properties(topic_alias=1))
    assert encode_publish(b"", b"", 0, False, False, None, block, 5) == bytes.fromhex(
        "3006000003230001"
    )
