"""Helpers and hypothesis strategies shared by the MQTT codec tests.

The valid values below are written from the MQTT 3.1.1 and 5.0 specifications
(table 2-4 for properties, the reason-code tables of chapter 3), independently of
the codec's own tables, so the tests check the codec against the spec.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from warren.codecs.mqtt import (
    NO_PROPERTIES,
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
)

LEVELS = (4, 5)
MAX_VARINT = 268_435_455


# -- connections ---------------------------------------------------------------


def connected_pair(level: int) -> tuple[MQTTConnection, MQTTConnection]:
    """A client and a server that have exchanged CONNECT and CONNACK."""
    client = MQTTConnection(Role.CLIENT)
    server = MQTTConnection(Role.SERVER)
    assert server.receive(client.send(Connect("pair", protocol_level=level))) != []
    assert client.receive(server.send(ConnAck())) == [ConnAck()]
    return client, server


def connected_server(level: int, **kwargs: Any) -> MQTTConnection:
    """A server that has received a CONNECT and sent its CONNACK."""
    server = MQTTConnection(Role.SERVER, **kwargs)
    server.receive(connect_bytes(level))
    server.send(ConnAck())
    return server


def connected_client(level: int) -> MQTTConnection:
    """A client that has sent CONNECT and received CONNACK."""
    client = MQTTConnection(Role.CLIENT)
    client.send(Connect("c", protocol_level=level))
    client.receive(b"\x20\x02\x00\x00" if level == 4 else b"\x20\x03\x00\x00\x00")
    return client


def connect_bytes(level: int) -> bytes:
    """A minimal CONNECT (client id "c", clean start, keep alive 60)."""
    if level == 4:
        return bytes.fromhex("100d00044d5154540402003c000163")
    return bytes.fromhex("100e00044d5154540502003c00000163")


def receiver_for(sender_role: Role, level: int) -> MQTTConnection:
    """A fresh connected receiver for packets sent by ``sender_role``."""
    client, server = connected_pair(level)
    return server if sender_role is Role.CLIENT else client


def sender_for(sender_role: Role, level: int) -> MQTTConnection:
    """A fresh connected sender in ``sender_role``."""
    client, server = connected_pair(level)
    return client if sender_role is Role.CLIENT else server


# -- strategies: values ----------------------------------------------------------

# Any character MQTT allows in a UTF-8 string: no surrogates, no U+0000.
mqtt_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=12,
)
topic_names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00+#"),
    min_size=1,
    max_size=12,
)
small_binary = st.binary(max_size=24)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFF_FFFF)
packet_ids = st.integers(1, 0xFFFF)
zero_or_one = st.sampled_from([0, 1])

_PROPERTY_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "payload_format_indicator": zero_or_one,
    "message_expiry_interval": u32,
    "content_type": mqtt_text,
    "response_topic": topic_names,
    "correlation_data": small_binary,
    "session_expiry_interval": u32,
    "assigned_client_identifier": mqtt_text,
    "server_keep_alive": u16,
    "authentication_method": mqtt_text,
    "authentication_data": small_binary,
    "request_problem_information": zero_or_one,
    "will_delay_interval": u32,
    "request_response_information": zero_or_one,
    "response_information": mqtt_text,
    "server_reference": mqtt_text,
    "reason_string": mqtt_text,
    "receive_maximum": st.integers(1, 0xFFFF),
    "topic_alias_maximum": u16,
    "topic_alias": st.integers(1, 0xFFFF),
    "maximum_qos": zero_or_one,
    "retain_available": zero_or_one,
    "maximum_packet_size": st.integers(1, 0xFFFF_FFFF),
    "wildcard_subscription_available": zero_or_one,
    "subscription_identifier_available": zero_or_one,
    "shared_subscription_available": zero_or_one,
    "user_properties": st.lists(st.tuples(mqtt_text, mqtt_text), max_size=3).map(tuple),
}

# MQTT 5.0 table 2-4, by packet (user_properties is allowed everywhere).
ALLOWED_PROPERTIES: dict[str, tuple[str, ...]] = {
    "CONNECT": (
        "session_expiry_interval", "authentication_method", "authentication_data",
        "request_problem_information", "request_response_information", "receive_maximum",
        "topic_alias_maximum", "maximum_packet_size",
    ),
    "CONNACK": (
        "session_expiry_interval", "assigned_client_identifier", "server_keep_alive",
        "authentication_method", "authentication_data", "response_information",
        "server_reference", "reason_string", "receive_maximum", "topic_alias_maximum",
        "maximum_qos", "retain_available", "maximum_packet_size",
        "wildcard_subscription_available", "subscription_identifier_available",
        "shared_subscription_available",
    ),
    "PUBLISH": (
        "payload_format_indicator", "message_expiry_interval", "content_type",
        "response_topic", "correlation_data", "subscription_identifiers", "topic_alias",
    ),
    "WILL": (
        "payload_format_indicator", "message_expiry_interval", "content_type",
        "response_topic", "correlation_data", "will_delay_interval",
    ),
    "PUBACK": ("reason_string",),
    "SUBSCRIBE": ("subscription_identifiers",),
    "SUBACK": ("reason_string",),
    "UNSUBSCRIBE": (),
    "UNSUBACK": ("reason_string",),
    "DISCONNECT": ("session_expiry_interval", "server_reference", "reason_string"),
    "AUTH": ("authentication_method", "authentication_data", "reason_string"),
}  # fmt: skip


def _fix_auth(fields: dict[str, Any]) -> Properties:
    # Authentication Data needs an Authentication Method (section 3.1.2.11.10).
    if "authentication_data" in fields and "authentication_method" not in fields:
        fields["authentication_method"] = "m"
    return Properties(**fields)


def properties(context: str, *, max_subscription_ids: int = 3) -> st.SearchStrategy[Properties]:
    """Valid properties for a packet (``context`` is a key of ALLOWED_PROPERTIES)."""
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for name in (*ALLOWED_PROPERTIES[context], "user_properties"):
        if name == "subscription_identifiers":
            optional[name] = st.lists(
                st.integers(1, MAX_VARINT), min_size=1, max_size=max_subscription_ids
            ).map(tuple)
        else:
            optional[name] = _PROPERTY_VALUES[name]
    return st.one_of(
        st.just(NO_PROPERTIES),
        st.fixed_dictionaries({}, optional=optional).map(_fix_auth),  # type: ignore[arg-type]
    )


# -- strategies: reason codes (chapter 3 tables) -----------------------------------

CONNACK_CODES_V4 = (0, 1, 2, 3, 4, 5)
CONNACK_CODES_V5 = (
    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90,
    0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
)  # fmt: skip
PUBACK_CODES = (0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99)
PUBREL_CODES = (0x00, 0x92)
SUBACK_CODES_V4 = (0x00, 0x01, 0x02, 0x80)
SUBACK_CODES_V5 = (0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2)
UNSUBACK_CODES = (0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91)
DISCONNECT_CODES = (
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93,
    0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
)  # fmt: skip
AUTH_CODES = (0x00, 0x18, 0x19)


# -- strategies: packets ---------------------------------------------------------


@st.composite
def wills(draw: st.DrawFn, level: int) -> Will:
    return Will(
        draw(topic_names),
        draw(small_binary),
        draw(st.integers(0, 2)),
        draw(st.booleans()),
        draw(properties("WILL")) if level == 5 else NO_PROPERTIES,
    )


@st.composite
def connects(draw: st.DrawFn, level: int) -> Connect:
    username = draw(st.none() | mqtt_text)
    password = draw(st.none() | small_binary)
    if level == 4 and username is None:
        password = None  # [MQTT-3.1.2-22]
    return Connect(
        draw(mqtt_text),
        level,
        draw(st.booleans()),
        draw(u16),
        username,
        password,
        draw(st.none() | wills(level)),
        draw(properties("CONNECT")) if level == 5 else NO_PROPERTIES,
    )


@st.composite
def connacks(draw: st.DrawFn, level: int) -> ConnAck:
    code = draw(st.sampled_from(CONNACK_CODES_V4 if level == 4 else CONNACK_CODES_V5))
    session_present = draw(st.booleans()) if code == 0 else False
    props = draw(properties("CONNACK")) if level == 5 else NO_PROPERTIES
    return ConnAck(session_present, code, props)


@st.composite
def publishes(draw: st.DrawFn, level: int, sender: Role) -> Publish:
    qos = draw(st.integers(0, 2))
    props = NO_PROPERTIES
    if level == 5:
        # A client never sends a Subscription Identifier [MQTT-3.3.4-6].
        props = draw(properties("PUBLISH"))
        if sender is Role.CLIENT and props.subscription_identifiers:
            props = Properties(topic_alias=props.topic_alias)
    topic = draw(topic_names)
    if level == 5 and props.topic_alias is not None and draw(st.booleans()):
        topic = ""  # allowed with a topic alias
    return Publish(
        topic,
        draw(st.binary(max_size=300)),
        qos,
        draw(st.booleans()),
        draw(st.booleans()) if qos else False,
        draw(packet_ids) if qos else None,
        props,
    )


def _acks(cls: type[PubAck | PubRec | PubRel | PubComp], level: int) -> st.SearchStrategy[Packet]:
    if level == 4:
        return st.builds(cls, packet_ids)
    codes = PUBREL_CODES if cls in (PubRel, PubComp) else PUBACK_CODES
    return st.builds(cls, packet_ids, st.sampled_from(codes), properties("PUBACK"))


@st.composite
def subscription_requests(draw: st.DrawFn, level: int) -> SubscriptionRequest:
    topic_filter = draw(mqtt_text)
    qos = draw(st.integers(0, 2))
    if level == 4:
        return SubscriptionRequest(topic_filter, qos)
    no_local = draw(st.booleans()) and not topic_filter.startswith("$share/")
    return SubscriptionRequest(
        topic_filter, qos, no_local, draw(st.booleans()), draw(st.integers(0, 2))
    )


def subscribes(level: int) -> st.SearchStrategy[Packet]:
    return st.builds(
        Subscribe,
        packet_ids,
        st.lists(subscription_requests(level), min_size=1, max_size=4).map(tuple),
        properties("SUBSCRIBE", max_subscription_ids=1) if level == 5 else st.just(NO_PROPERTIES),
    )


def subacks(level: int) -> st.SearchStrategy[Packet]:
    codes = SUBACK_CODES_V4 if level == 4 else SUBACK_CODES_V5
    return st.builds(
        SubAck,
        packet_ids,
        st.lists(st.sampled_from(codes), min_size=1, max_size=5).map(tuple),
        properties("SUBACK") if level == 5 else st.just(NO_PROPERTIES),
    )


def unsubscribes(level: int) -> st.SearchStrategy[Packet]:
    return st.builds(
        Unsubscribe,
        packet_ids,
        st.lists(mqtt_text, min_size=1, max_size=4).map(tuple),
        properties("UNSUBSCRIBE") if level == 5 else st.just(NO_PROPERTIES),
    )


def unsubacks(level: int) -> st.SearchStrategy[Packet]:
    if level == 4:
        return st.builds(UnsubAck, packet_ids)
    return st.builds(
        UnsubAck,
        packet_ids,
        st.lists(st.sampled_from(UNSUBACK_CODES), min_size=1, max_size=5).map(tuple),
        properties("UNSUBACK"),
    )


@st.composite
def disconnects(draw: st.DrawFn, level: int, sender: Role) -> Disconnect:
    if level == 4:
        return Disconnect()
    props = draw(properties("DISCONNECT"))
    if sender is Role.SERVER and props.session_expiry_interval is not None:
        props = NO_PROPERTIES  # [MQTT-3.14.2-2]
    return Disconnect(draw(st.sampled_from(DISCONNECT_CODES)), props)


def auths() -> st.SearchStrategy[Packet]:
    return st.builds(Auth, st.sampled_from(AUTH_CODES), properties("AUTH"))


def packets_from(sender: Role, level: int) -> st.SearchStrategy[Packet]:
    """Any packet ``sender`` may send once connected, valid for ``level``."""
    choices: list[st.SearchStrategy[Packet]] = [
        publishes(level, sender),
        _acks(PubAck, level),
        _acks(PubRec, level),
        _acks(PubRel, level),
        _acks(PubComp, level),
        disconnects(level, sender),
    ]
    if sender is Role.CLIENT:
        choices += [subscribes(level), unsubscribes(level), st.just(PingReq())]
    else:
        choices += [subacks(level), unsubacks(level), st.just(PingResp())]
    if level == 5:
        choices.append(auths())
    return st.one_of(choices)


# -- feeding -----------------------------------------------------------------------


def feed_bytewise(conn: MQTTConnection, data: bytes) -> list[Packet]:
    """Feed ``data`` one byte at a time through receive_data/next_event.

    Checks that no packet appears before its last byte has arrived.
    """
    out: list[Packet] = []
    for i in range(len(data)):
        conn.receive_data(data[i : i + 1])
        while (packet := conn.next_event()) is not None:
            out.append(packet)
    return out


Feeder = Callable[[MQTTConnection, bytes], list[Packet]]


def feed_whole(conn: MQTTConnection, data: bytes) -> list[Packet]:
    return conn.receive(data)


def feed_receive_bytewise(conn: MQTTConnection, data: bytes) -> list[Packet]:
    out: list[Packet] = []
    for i in range(len(data)):
        out += conn.receive(data[i : i + 1])
    return out


def feed_next_event(conn: MQTTConnection, data: bytes) -> list[Packet]:
    conn.receive_data(data)
    out: list[Packet] = []
    while (packet := conn.next_event()) is not None:
        out.append(packet)
    return out


FEEDERS: dict[str, Feeder] = {
    "receive-whole": feed_whole,
    "receive-bytewise": feed_receive_bytewise,
    "next_event-whole": feed_next_event,
    "next_event-bytewise": feed_bytewise,
}
