"""Packet encoders: one packet object -> its bytes, for protocol level 4 or 5.

Every encoder has the signature ``encode(packet, level) -> bytes`` and raises
:class:`LocalProtocolError` (with the reason code the peer would report) for a
packet the protocol cannot carry. On 3.1.1 the 5.0-only fields (properties,
acknowledgement reason codes, subscription options other than qos) are not written.

Which packets a role may send when is the connection's business (``_connection``).
"""

from __future__ import annotations

from collections.abc import Callable
from struct import Struct
from typing import Any, Final

from warren.errors import LocalProtocolError

from . import _properties as ctx
from . import _reason as rc
from ._datatypes import MAX_VARINT, U16, binary, has_wildcard, u16, utf8, varint
from ._packets import (
    NO_PROPERTIES,
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    PacketType,
    PingReq,
    PingResp,
    Properties,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    SubAck,
    Subscribe,
    UnsubAck,
    Unsubscribe,
)
from ._properties import encode_properties_for

Encoder = Callable[[Any, int], bytes]

_HEAD3: Final = Struct(">BBH")  # first byte, one-byte remaining length, topic length
_EMPTY_PROPERTIES: Final = b"\x00"


def _protocol_error(message: str) -> LocalProtocolError:
    return LocalProtocolError(message, rc.PROTOCOL_ERROR)


def _malformed(message: str) -> LocalProtocolError:
    return LocalProtocolError(message, rc.MALFORMED)


def _frame(first_byte: int, body: bytes) -> bytes:
    """Prefix ``body`` with its fixed header."""
    length = len(body)
    if length < 0x80:
        return bytes((first_byte, length)) + body
    if length > MAX_VARINT:
        raise LocalProtocolError(
            f"packet body of {length} bytes exceeds {MAX_VARINT}", rc.PACKET_TOO_LARGE
        )
    return bytes((first_byte,)) + varint(length) + body


def _packet_id(packet_id: int | None, what: str) -> bytes:
    if packet_id is None or not 0 < packet_id <= 0xFFFF:
        # [MQTT-2.2.1-3]: a non-zero 16-bit packet identifier.
        raise _protocol_error(f"{what} packet identifier {packet_id!r} is not in 1..65535")
    return U16.pack(packet_id)


def _check_level(level: int) -> None:
    if level != 4 and level != 5:
        raise LocalProtocolError(
            f"protocol level {level} is not 4 or 5", rc.UNSUPPORTED_PROTOCOL_VERSION
        )


# -- PUBLISH (the hot path) --------------------------------------------------


def encode_publish(
    topic: bytes,
    payload: bytes,
    qos: int,
    retain: bool,
    dup: bool,
    packet_id: int | None,
    properties: bytes | None,
    protocol_level: int,
) -> bytes:
    """Encode a PUBLISH from pre-encoded parts: the broker's fan-out fast path.

    ``topic`` is the UTF-8 topic name, already validated (no wildcard, no U+0000);
    ``properties`` is a complete 5.0 property block with its length prefix (see
    :func:`encode_properties`), or ``None`` for none; it is ignored on 3.1.1.
    ``packet_id`` must be given exactly when ``qos`` is 1 or 2.
    Raises :class:`LocalProtocolError` for an invalid qos, packet identifier or
    topic length, DUP on QoS 0, or an empty topic on 3.1.1.
    """
    if protocol_level == 5:
        block = _EMPTY_PROPERTIES if properties is None else properties
    elif protocol_level == 4:
        block = b""
        if not topic:
            raise _protocol_error("empty topic name")  # [MQTT-4.7.3-1]
    else:
        raise LocalProtocolError(
            f"protocol level {protocol_level} is not 4 or 5", rc.UNSUPPORTED_PROTOCOL_VERSION
        )
    topic_length = len(topic)
    if topic_length > 0xFFFF:
        raise _malformed("topic name is longer than 65535 bytes")
    if qos == 0:
        if packet_id is not None:
            raise _protocol_error("QoS 0 PUBLISH with a packet identifier")  # [MQTT-2.2.1-2]
        if dup:
            raise _malformed("QoS 0 PUBLISH with DUP set")  # [MQTT-3.3.1-2]
        first_byte = 0x31 if retain else 0x30
        pid = b""
        length = 2 + topic_length + len(block) + len(payload)
    elif qos == 1 or qos == 2:
        if packet_id is None or not 0 < packet_id <= 0xFFFF:
            raise _protocol_error(f"QoS {qos} PUBLISH needs a packet identifier in 1..65535")
        first_byte = 0x30 | (qos << 1) | (0x01 if retain else 0) | (0x08 if dup else 0)
        pid = U16.pack(packet_id)
        length = 4 + topic_length + len(block) + len(payload)
    else:
        raise _malformed(f"QoS {qos} is not 0, 1 or 2")  # [MQTT-3.3.1-4]
    if length < 0x80:
        head = _HEAD3.pack(first_byte, length, topic_length)
    elif length <= MAX_VARINT:
        head = bytes((first_byte,)) + varint(length) + U16.pack(topic_length)
    else:
        raise LocalProtocolError(
            f"PUBLISH body of {length} bytes exceeds {MAX_VARINT}", rc.PACKET_TOO_LARGE
        )
    return b"".join((head, topic, pid, block, payload))


def _topic_name(topic: str) -> bytes:
    if "+" in topic or "#" in topic or "\x00" in topic:
        if "\x00" in topic:
            raise _malformed("topic name contains U+0000")  # [MQTT-1.5.4-2]
        raise LocalProtocolError(
            f"wildcard in topic name {topic!r}", rc.TOPIC_NAME_INVALID
        )  # [MQTT-3.3.2-2]
    try:
        return topic.encode()
    except UnicodeEncodeError as exc:
        raise _malformed("topic name is not encodable as UTF-8") from exc  # [MQTT-1.5.4-1]


def encode_publish_packet(packet: Publish, level: int) -> bytes:
    """PUBLISH: validates the topic and properties, then :func:`encode_publish`."""
    topic = _topic_name(packet.topic)
    block = None
    if level == 5:
        properties = packet.properties
        if properties is not NO_PROPERTIES:
            block = encode_properties_for(properties, ctx.PUBLISH)
        if not topic and properties.topic_alias is None:
            # Section 3.3.2.1: a zero-length Topic Name needs a Topic Alias.
            raise _protocol_error("empty topic name without a topic alias")
    return encode_publish(
        topic,
        packet.payload,
        packet.qos,
        packet.retain,
        packet.dup,
        packet.packet_id,
        block,
        level,
    )


# -- CONNECT, CONNACK ------------------------------------------------------


def encode_connect(packet: Connect, level: int) -> bytes:
    """CONNECT, at ``packet.protocol_level`` (``level`` is ignored)."""
    level = packet.protocol_level
    if packet.protocol_name != "MQTT":
        raise LocalProtocolError(
            f"protocol name {packet.protocol_name!r} is not 'MQTT'",
            rc.UNSUPPORTED_PROTOCOL_VERSION,
        )
    _check_level(level)
    flags = 0x02 if packet.clean_start else 0
    will = packet.will
    if will is not None:
        if will.qos not in (0, 1, 2):
            raise _malformed(f"will QoS {will.qos} is not 0, 1 or 2")  # [MQTT-3.1.2-14]
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
    if packet.username is not None:
        flags |= 0x80
    if packet.password is not None:
        if level == 4 and packet.username is None:
            raise _malformed("3.1.1 password without user name")  # [MQTT-3.1.2-22]
        flags |= 0x40
    parts = [
        b"\x00\x04MQTT",
        bytes((level, flags)),
        u16(packet.keep_alive, "keep alive"),
    ]
    if level == 5:
        parts.append(encode_properties_for(packet.properties, ctx.CONNECT))
    parts.append(utf8(packet.client_id, "client identifier"))
    if will is not None:
        if level == 5:
            parts.append(encode_properties_for(will.properties, ctx.WILL))
        if not will.topic or has_wildcard(will.topic):
            raise LocalProtocolError(
                f"invalid will topic {will.topic!r}", rc.TOPIC_NAME_INVALID
            )  # [MQTT-3.1.3-11], [MQTT-4.7.3-1]
        parts.append(utf8(will.topic, "will topic"))
        parts.append(binary(will.payload, "will payload"))
    if packet.username is not None:
        parts.append(utf8(packet.username, "user name"))
    if packet.password is not None:
        parts.append(binary(packet.password, "password"))
    return _frame(0x10, b"".join(parts))


def encode_connack(packet: ConnAck, level: int) -> bytes:
    """CONNACK. On 3.1.1 ``reason_code`` is the return code (0..5)."""
    code = packet.reason_code
    valid = rc.CONNACK_V5 if level == 5 else rc.CONNACK_V4
    if code not in valid:
        raise _protocol_error(f"CONNACK reason code {code!r} is not valid on level {level}")
    if packet.session_present and code:
        # 3.1.1 [MQTT-3.2.2-4], 5.0 [MQTT-3.2.2-6]
        raise _protocol_error("a refusing CONNACK must not set session present")
    body = bytes((1 if packet.session_present else 0, code))
    if level == 5:
        body += encode_properties_for(packet.properties, ctx.CONNACK)
    return _frame(0x20, body)


# -- acknowledgements --------------------------------------------------------


def _make_ack(first_byte: int, valid: frozenset[int], context: ctx.PropertyContext) -> Encoder:
    what = context.name

    def encode_ack(packet: PubAck | PubRec | PubRel | PubComp, level: int) -> bytes:
        pid = _packet_id(packet.packet_id, what)
        if level == 4:
            return bytes((first_byte, 2)) + pid
        code = packet.reason_code
        if code not in valid:
            raise _protocol_error(f"{what} reason code {code!r} is not valid")
        block = encode_properties_for(packet.properties, context)
        # Omit what the receiver may infer (section 3.4.2.1).
        if block == _EMPTY_PROPERTIES:
            if code == 0:
                return bytes((first_byte, 2)) + pid
            return bytes((first_byte, 3)) + pid + bytes((code,))
        return _frame(first_byte, pid + bytes((code,)) + block)

    return encode_ack


# -- SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK ------------------------------


def encode_subscribe(packet: Subscribe, level: int) -> bytes:
    """SUBSCRIBE. On 3.1.1 only each request's qos is written."""
    parts = [_packet_id(packet.packet_id, "SUBSCRIBE")]
    if level == 5:
        parts.append(encode_properties_for(packet.properties, ctx.SUBSCRIBE))
    if not packet.subscriptions:
        raise _protocol_error("SUBSCRIBE needs at least one topic filter")  # [MQTT-3.8.3-3]
    for request in packet.subscriptions:
        qos = request.qos
        if qos not in (0, 1, 2):
            raise _malformed(f"requested QoS {qos!r} is not 0, 1 or 2")
        options = qos
        if level == 5:
            if request.retain_handling not in (0, 1, 2):
                raise _malformed(f"retain handling {request.retain_handling!r} is not 0, 1 or 2")
            if request.no_local and request.topic_filter.startswith("$share/"):
                raise _protocol_error("no local on a shared subscription")  # [MQTT-3.8.3-4]
            options |= (
                (0x04 if request.no_local else 0)
                | (0x08 if request.retain_as_published else 0)
                | (request.retain_handling << 4)
            )
        parts.append(utf8(request.topic_filter, "topic filter"))
        parts.append(bytes((options,)))
    return _frame(0x82, b"".join(parts))


def _codes(codes: tuple[int, ...], valid: frozenset[int], what: str) -> bytes:
    if not codes:
        raise _protocol_error(f"{what} needs one reason code per topic filter")
    for code in codes:
        if code not in valid:
            raise _protocol_error(f"{what} reason code {code!r} is not valid")
    return bytes(codes)


def encode_suback(packet: SubAck, level: int) -> bytes:
    """SUBACK. On 3.1.1 the codes are granted qos 0..2 or 0x80."""
    pid = _packet_id(packet.packet_id, "SUBACK")
    if level == 4:
        return _frame(0x90, pid + _codes(packet.reason_codes, rc.SUBACK_V4, "SUBACK"))
    block = encode_properties_for(packet.properties, ctx.SUBACK)
    return _frame(0x90, pid + block + _codes(packet.reason_codes, rc.SUBACK_V5, "SUBACK"))


def encode_unsubscribe(packet: Unsubscribe, level: int) -> bytes:
    """UNSUBSCRIBE."""
    parts = [_packet_id(packet.packet_id, "UNSUBSCRIBE")]
    if level == 5:
        parts.append(encode_properties_for(packet.properties, ctx.UNSUBSCRIBE))
    if not packet.topic_filters:
        raise _protocol_error("UNSUBSCRIBE needs at least one topic filter")  # [MQTT-3.10.3-2]
    for topic_filter in packet.topic_filters:
        parts.append(utf8(topic_filter, "topic filter"))
    return _frame(0xA2, b"".join(parts))


def encode_unsuback(packet: UnsubAck, level: int) -> bytes:
    """UNSUBACK. On 3.1.1 only the packet identifier is written."""
    pid = _packet_id(packet.packet_id, "UNSUBACK")
    if level == 4:
        return b"\xb0\x02" + pid
    block = encode_properties_for(packet.properties, ctx.UNSUBACK)
    return _frame(0xB0, pid + block + _codes(packet.reason_codes, rc.UNSUBACK_V5, "UNSUBACK"))


# -- PINGREQ, PINGRESP, DISCONNECT, AUTH --------------------------------------


def encode_pingreq(packet: PingReq, level: int) -> bytes:
    """PINGREQ."""
    return b"\xc0\x00"


def encode_pingresp(packet: PingResp, level: int) -> bytes:
    """PINGRESP."""
    return b"\xd0\x00"


def _code_and_properties(
    code: int, properties: Properties, valid: frozenset[int], context: ctx.PropertyContext
) -> bytes:
    if code not in valid:
        raise _protocol_error(f"{context.name} reason code {code!r} is not valid")
    return bytes((code,)) + encode_properties_for(properties, context)


def encode_disconnect(packet: Disconnect, level: int) -> bytes:
    """DISCONNECT. On 5.0 the reason code and properties are omitted when default."""
    if level == 4:
        return b"\xe0\x00"
    body = _code_and_properties(
        packet.reason_code, packet.properties, rc.DISCONNECT_V5, ctx.DISCONNECT
    )
    if body == b"\x00\x00":
        return b"\xe0\x00"  # section 3.14.2.1: remaining length 0 means 0x00
    if body[1:] == _EMPTY_PROPERTIES:
        body = body[:1]  # section 3.14.2.2.1: no property length means none
    return _frame(0xE0, body)


def encode_auth(packet: Auth, level: int) -> bytes:
    """AUTH (5.0 only)."""
    if level != 5:
        raise _malformed("AUTH does not exist in MQTT 3.1.1")
    body = _code_and_properties(packet.reason_code, packet.properties, rc.AUTH_V5, ctx.AUTH)
    if body == b"\x00\x00":
        return b"\xf0\x00"  # section 3.15.2.1
    return _frame(0xF0, body)


ENCODERS: Final[dict[PacketType, Encoder]] = {
    PacketType.CONNECT: encode_connect,
    PacketType.CONNACK: encode_connack,
    PacketType.PUBLISH: encode_publish_packet,
    PacketType.PUBACK: _make_ack(0x40, rc.PUBACK_V5, ctx.PUBACK),
    PacketType.PUBREC: _make_ack(0x50, rc.PUBREC_V5, ctx.PUBREC),
    PacketType.PUBREL: _make_ack(0x62, rc.PUBREL_V5, ctx.PUBREL),  # [MQTT-3.6.1-1]
    PacketType.PUBCOMP: _make_ack(0x70, rc.PUBCOMP_V5, ctx.PUBCOMP),
    PacketType.SUBSCRIBE: encode_subscribe,
    PacketType.SUBACK: encode_suback,
    PacketType.UNSUBSCRIBE: encode_unsubscribe,
    PacketType.UNSUBACK: encode_unsuback,
    PacketType.PINGREQ: encode_pingreq,
    PacketType.PINGRESP: encode_pingresp,
    PacketType.DISCONNECT: encode_disconnect,
    PacketType.AUTH: encode_auth,
}
"""The encoder for each packet type."""
