"""Each property in each packet: allowed ones round-trip, the others are refused.

The allowed sets are MQTT 5.0 table 2-4 (``ALLOWED_PROPERTIES`` in mqtt_support).
A property the packet may not carry is a Malformed Packet (0x81) when received
(section 2.2.2.2) and a LocalProtocolError when sent.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from mqtt_support import ALLOWED_PROPERTIES, connected_client, connected_pair, connected_server

from warren.codecs.mqtt import (
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    MQTTConnection,
    Packet,
    Properties,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    Role,
    SubAck,
    Subscribe,
    SubscriptionRequest,
    UnsubAck,
    Unsubscribe,
    Will,
    encode_properties,
)
from warren.errors import LocalProtocolError, RemoteProtocolError

SAMPLES: dict[str, Properties] = {
    "payload_format_indicator": Properties(payload_format_indicator=1),
    "message_expiry_interval": Properties(message_expiry_interval=7),
    "content_type": Properties(content_type="t"),
    "response_topic": Properties(response_topic="r"),
    "correlation_data": Properties(correlation_data=b"c"),
    "subscription_identifiers": Properties(subscription_identifiers=(300,)),
    "session_expiry_interval": Properties(session_expiry_interval=9),
    "assigned_client_identifier": Properties(assigned_client_identifier="id"),
    "server_keep_alive": Properties(server_keep_alive=5),
    "authentication_method": Properties(authentication_method="m"),
    "authentication_data": Properties(authentication_method="m", authentication_data=b"d"),
    "request_problem_information": Properties(request_problem_information=0),
    "will_delay_interval": Properties(will_delay_interval=4),
    "request_response_information": Properties(request_response_information=1),
    "response_information": Properties(response_information="ri"),
    "server_reference": Properties(server_reference="sr"),
    "reason_string": Properties(reason_string="rs"),
    "receive_maximum": Properties(receive_maximum=10),
    "topic_alias_maximum": Properties(topic_alias_maximum=3),
    "topic_alias": Properties(topic_alias=2),
    "maximum_qos": Properties(maximum_qos=1),
    "retain_available": Properties(retain_available=0),
    "user_properties": Properties(user_properties=(("k", "v"), ("k", "w"))),
    "maximum_packet_size": Properties(maximum_packet_size=1000),
    "wildcard_subscription_available": Properties(wildcard_subscription_available=1),
    "subscription_identifier_available": Properties(subscription_identifier_available=0),
    "shared_subscription_available": Properties(shared_subscription_available=1),
}

ALLOWED = {**ALLOWED_PROPERTIES}
for _ack in ("PUBREC", "PUBREL", "PUBCOMP"):
    ALLOWED[_ack] = ALLOWED["PUBACK"]


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _frame(first_byte: int, body: bytes) -> bytes:
    return bytes([first_byte]) + _varint(len(body)) + body


_H = bytes.fromhex
_CONNECT_HEAD = _H("00044d515454 05")

# context -> (receiver factory, bytes around the property block, how to get the properties)
Template = tuple[
    Callable[[], MQTTConnection], Callable[[bytes], bytes], Callable[[Packet], Properties]
]


def _props(packet: Packet) -> Properties:
    return packet.properties  # type: ignore[union-attr]


def _will_props(packet: Packet) -> Properties:
    assert isinstance(packet, Connect) and packet.will is not None
    return packet.will.properties


def _await_client() -> MQTTConnection:
    client = MQTTConnection(Role.CLIENT)
    client.send(Connect("c", protocol_level=5))
    return client


TEMPLATES: dict[str, Template] = {
    "CONNECT": (lambda: MQTTConnection(Role.SERVER),
                lambda b: _frame(0x10, _CONNECT_HEAD + _H("02 003c") + b + _H("0001 63")), _props),
    "WILL": (lambda: MQTTConnection(Role.SERVER),
             lambda b: _frame(0x10, _CONNECT_HEAD + _H("06 003c 00 0001 63") + b
                              + _H("0001 77 0000")), _will_props),
    "CONNACK": (_await_client, lambda b: _frame(0x20, _H("00 00") + b), _props),
    # Server to client: a client may not send Subscription Identifiers [MQTT-3.3.4-6].
    "PUBLISH": (lambda: connected_client(5), lambda b: _frame(0x30, _H("0001 61") + b + b"p"),
                _props),
    "PUBACK": (lambda: connected_server(5), lambda b: _frame(0x40, _H("0001 10") + b), _props),
    "PUBREC": (lambda: connected_client(5), lambda b: _frame(0x50, _H("0001 10") + b), _props),
    "PUBREL": (lambda: connected_server(5), lambda b: _frame(0x62, _H("0001 92") + b), _props),
    "PUBCOMP": (lambda: connected_client(5), lambda b: _frame(0x70, _H("0001 00") + b), _props),
    "SUBSCRIBE": (lambda: connected_server(5),
                  lambda b: _frame(0x82, _H("0001") + b + _H("0001 61 00")), _props),
    "SUBACK": (lambda: connected_client(5), lambda b: _frame(0x90, _H("0001") + b + _H("00")),
               _props),
    "UNSUBSCRIBE": (lambda: connected_server(5),
                    lambda b: _frame(0xA2, _H("0001") + b + _H("0001 61")), _props),
    "UNSUBACK": (lambda: connected_client(5), lambda b: _frame(0xB0, _H("0001") + b + _H("00")),
                 _props),
    # Client to server: a server may not send Session Expiry Interval [MQTT-3.14.2-2].
    "DISCONNECT": (lambda: connected_server(5), lambda b: _frame(0xE0, _H("00") + b), _props),
    "AUTH": (lambda: connected_server(5), lambda b: _frame(0xF0, _H("18") + b), _props),
}  # fmt: skip

CASES = [(context, name) for context in TEMPLATES for name in SAMPLES]


@pytest.mark.parametrize(("context", "name"), CASES)
def test_property_in_packet_received(context: str, name: str) -> None:
    make, wrap, extract = TEMPLATES[context]
    props = SAMPLES[name]
    data = wrap(encode_properties(props))
    receiver = make()
    if name in ALLOWED[context] or name == "user_properties":
        (packet,) = receiver.receive(data)
        assert extract(packet) == props
    else:
        with pytest.raises(RemoteProtocolError) as info:
            receiver.receive(data)
        assert info.value.reason_code == 0x81


def _sent(context: str, props: Properties) -> Callable[[], bytes]:
    client, server = connected_pair(5)
    fresh_server = MQTTConnection(Role.SERVER)
    fresh_server.receive(MQTTConnection(Role.CLIENT).send(Connect("c", protocol_level=5)))
    senders: dict[str, Callable[[], bytes]] = {
        "CONNECT": lambda: MQTTConnection(Role.CLIENT).send(
            Connect("c", protocol_level=5, properties=props)
        ),
        "WILL": lambda: MQTTConnection(Role.CLIENT).send(
            Connect("c", protocol_level=5, will=Will("w", b"", properties=props))
        ),
        "CONNACK": lambda: fresh_server.send(ConnAck(properties=props)),
        "PUBLISH": lambda: server.send(Publish("a", b"p", properties=props)),
        "PUBACK": lambda: client.send(PubAck(1, 0x10, props)),
        "PUBREC": lambda: server.send(PubRec(1, 0x10, props)),
        "PUBREL": lambda: client.send(PubRel(1, 0x92, props)),
        "PUBCOMP": lambda: server.send(PubComp(1, 0, props)),
        "SUBSCRIBE": lambda: client.send(Subscribe(1, (SubscriptionRequest("a"),), props)),
        "SUBACK": lambda: server.send(SubAck(1, (0,), props)),
        "UNSUBSCRIBE": lambda: client.send(Unsubscribe(1, ("a",), props)),
        "UNSUBACK": lambda: server.send(UnsubAck(1, (0,), props)),
        "DISCONNECT": lambda: client.send(Disconnect(0, props)),
        "AUTH": lambda: client.send(Auth(0x18, props)),
    }
    return senders[context]


@pytest.mark.parametrize(("context", "name"), CASES)
def test_property_in_packet_sent(context: str, name: str) -> None:
    props = SAMPLES[name]
    send = _sent(context, props)
    _, wrap, _ = TEMPLATES[context]
    if name in ALLOWED[context] or name == "user_properties":
        assert send() == wrap(encode_properties(props))
    else:
        with pytest.raises(LocalProtocolError) as info:
            send()
        assert info.value.reason_code == 0x81


def test_samples_cover_every_property() -> None:
    assert set(SAMPLES) == {f.name for f in dataclasses.fields(Properties)}
    for name, props in SAMPLES.items():
        assert getattr(props, name) not in (None, ())


@pytest.mark.parametrize(
    ("props", "wire"),
    [
        (Properties(payload_format_indicator=1), "02 01 01"),
        (Properties(message_expiry_interval=0x01020304), "05 02 01020304"),
        (Properties(content_type="ab"), "05 03 0002 6162"),
        (Properties(correlation_data=b"\x00\xff"), "05 09 0002 00ff"),
        (Properties(subscription_identifiers=(268_435_455,)), "05 0b ffffff7f"),
        (Properties(subscription_identifiers=(128, 1)), "05 0b 8001 0b 01"),
        (Properties(server_keep_alive=0x0102), "03 13 0102"),
        (Properties(user_properties=(("a", ""),)), "06 26 0001 61 0000"),
    ],
)
def test_property_wire_layout(props: Properties, wire: str) -> None:
    assert encode_properties(props) == bytes.fromhex(wire.replace(" ", ""))


def test_long_property_block_length_is_a_variable_byte_integer() -> None:
    props = Properties(reason_string="x" * 200)
    block = encode_properties(props)
    assert block[:4] == bytes.fromhex("cb01 1f 00")  # 203 = cb 01
    server = connected_server(5)
    (packet,) = server.receive(_frame(0x40, bytes.fromhex("0001 10") + block))
    assert packet == PubAck(1, 0x10, props)
