"""Packet decoders: the bytes of one packet -> one packet object.

Every decoder has the signature ``decode(src, start, end, first_byte) -> Packet``:
``src[start:end]`` is the packet's variable header and payload (``src`` may hold
more bytes on either side; nothing outside ``start:end`` is read), and
``first_byte`` is its fixed-header byte. The connection has already checked the
fixed header (type, reserved flags [MQTT-2.1.3-1], PUBLISH qos/dup
[MQTT-3.3.1-2, -4]) and the packet length, and has chosen the decoder for the
connection's protocol version; decoders check everything inside the packet.

A decoder raises :class:`RemoteProtocolError` and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, TypeAlias

from warren.errors import RemoteProtocolError

from . import _properties as ctx
from . import _reason as rc
from ._datatypes import (
    has_wildcard,
    malformed,
    read_binary,
    read_utf8,
)
from ._packets import (
    NO_PROPERTIES,
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    Packet,
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
    SubscriptionRequest,
    UnsubAck,
    Unsubscribe,
    Will,
)
from ._properties import decode_properties

Decoder: TypeAlias = Callable[[bytes, int, int, int], Packet]

_PINGREQ: Final = PingReq()
_PINGRESP: Final = PingResp()
_DISCONNECT: Final = Disconnect()
_AUTH: Final = Auth()


def _protocol_error(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(message, rc.PROTOCOL_ERROR)


def _packet_id(src: bytes, pos: int, end: int, what: str) -> int:
    if pos + 2 > end:
        raise malformed(f"{what} packet identifier overruns the packet")
    packet_id = (src[pos] << 8) | src[pos + 1]
    if not packet_id:
        raise _protocol_error(f"{what} packet identifier 0")  # [MQTT-2.2.1-3]
    return packet_id


def _expect_end(pos: int, end: int, what: str) -> None:
    if pos != end:
        raise malformed(f"{end - pos} unexpected bytes at the end of {what}")


def _expect_empty(start: int, end: int, what: str) -> None:
    if start != end:
        raise malformed(f"{what} must have remaining length 0")


# -- CONNECT -----------------------------------------------------------------


def decode_connect(src: bytes, start: int, end: int, first_byte: int) -> Connect:
    """CONNECT, either version (the packet says which)."""
    name, pos = read_utf8(src, start, end)
    if name != "MQTT":
        # MQTT 3.1 ("MQIsdp", level 3) and anything else: we do not speak it.
        # [MQTT-3.1.2-1] allows closing; we report 0x84 so the broker can answer
        # with a 3.1.1 CONNACK return code 1.
        raise RemoteProtocolError(
            f"unsupported protocol name {name!r}", rc.UNSUPPORTED_PROTOCOL_VERSION
        )
    if pos >= end:
        raise malformed("CONNECT protocol level is missing")
    level = src[pos]
    if level != 4 and level != 5:
        # [MQTT-3.1.2-2]
        raise RemoteProtocolError(
            f"unsupported protocol level {level}", rc.UNSUPPORTED_PROTOCOL_VERSION
        )
    if pos + 4 > end:
        raise malformed("CONNECT variable header overruns the packet")
    flags = src[pos + 1]
    keep_alive = (src[pos + 2] << 8) | src[pos + 3]
    pos += 4
    if flags & 0x01:
        raise malformed("CONNECT reserved flag is set")  # [MQTT-3.1.2-3]
    will_flag = flags & 0x04
    will_qos = (flags >> 3) & 0x03
    will_retain = flags & 0x20
    if not will_flag and (will_qos or will_retain):
        # 3.1.1 [MQTT-3.1.2-11, -13, -15]; 5.0 [MQTT-3.1.2-11, -13]
        raise malformed("will QoS or will retain set without the will flag")
    if will_qos == 3:
        raise malformed("will QoS 3")  # 3.1.1 [MQTT-3.1.2-14]; 5.0 [MQTT-3.1.2-12]
    has_username = flags & 0x80
    has_password = flags & 0x40
    if level == 4 and has_password and not has_username:
        raise malformed("password without user name")  # 3.1.1 [MQTT-3.1.2-22]
    properties = NO_PROPERTIES
    if level == 5:
        properties, pos = decode_properties(src, pos, end, ctx.CONNECT)
    # The Client Identifier must be a UTF-8 string [MQTT-3.1.3-4]; whether an empty
    # or unusual one is accepted is the broker's decision (CONNACK 0x85 / 2).
    client_id, pos = read_utf8(src, pos, end)
    will = None
    if will_flag:
        will_properties = NO_PROPERTIES
        if level == 5:
            will_properties, pos = decode_properties(src, pos, end, ctx.WILL)
        will_topic, pos = read_utf8(src, pos, end)
        if not will_topic or has_wildcard(will_topic):
            # A Will Topic is a Topic Name [MQTT-3.1.3-11]: at least one character
            # [MQTT-4.7.3-1] and no wildcards [MQTT-3.3.2-2] -> Topic Name invalid.
            raise RemoteProtocolError(f"invalid will topic {will_topic!r}", rc.TOPIC_NAME_INVALID)
        will_payload, pos = read_binary(src, pos, end)
        will = Will(will_topic, will_payload, will_qos, will_retain != 0, will_properties)
    username = None
    if has_username:
        username, pos = read_utf8(src, pos, end)
    password = None
    if has_password:
        password, pos = read_binary(src, pos, end)
    _expect_end(pos, end, "CONNECT")
    return Connect(
        client_id,
        level,
        (flags & 0x02) != 0,
        keep_alive,
        username,
        password,
        will,
        properties,
        name,
    )


def peek_connect_level(src: bytes | bytearray, off: int) -> int | None:
    """The protocol level of the CONNECT at ``off``, if it names MQTT 3.1.1 or 5.0.

    Used after a CONNECT failed to decode, so the broker can still answer in the
    client's version. Never raises.
    """
    n = len(src)
    if off >= n or src[off] != 0x10:
        return None
    pos = off + 1
    while pos < n and src[pos] & 0x80 and pos < off + 4:
        pos += 1
    pos += 1
    if pos + 7 > n or src[pos : pos + 6] != b"\x00\x04MQTT":
        return None
    level = src[pos + 6]
    return level if level == 4 or level == 5 else None


# -- CONNACK -----------------------------------------------------------------


def _connack_flags(src: bytes, start: int, end: int, valid: frozenset[int]) -> tuple[bool, int]:
    if start + 2 > end:
        raise malformed("CONNACK is shorter than 2 bytes")
    flags = src[start]
    code = src[start + 1]
    if flags & 0xFE:
        raise malformed("CONNACK reserved acknowledge flags are set")  # [MQTT-3.2.2-1]
    if code not in valid:
        raise _protocol_error(f"CONNACK reason code {code:#04x} is not defined")
    if flags and code:
        # A refusing CONNACK must not claim a session: 3.1.1 [MQTT-3.2.2-4],
        # 5.0 [MQTT-3.2.2-6].
        raise _protocol_error("CONNACK refuses the connection with session present")
    return flags == 1, code


def decode_connack_v4(src: bytes, start: int, end: int, first_byte: int) -> ConnAck:
    """CONNACK, 3.1.1: flags and return code, nothing else."""
    session_present, code = _connack_flags(src, start, end, rc.CONNACK_V4)
    _expect_end(start + 2, end, "CONNACK")
    return ConnAck(session_present, code)


def decode_connack_v5(src: bytes, start: int, end: int, first_byte: int) -> ConnAck:
    """CONNACK, 5.0: flags, reason code and properties."""
    session_present, code = _connack_flags(src, start, end, rc.CONNACK_V5)
    properties, pos = decode_properties(src, start + 2, end, ctx.CONNACK)
    _expect_end(pos, end, "CONNACK")
    return ConnAck(session_present, code, properties)


# -- PUBLISH (the hot path: keep these lean) ---------------------------------


def _bad_topic(topic: str) -> RemoteProtocolError:
    if "\x00" in topic:
        return malformed("topic name contains U+0000")  # [MQTT-1.5.4-2]
    if has_wildcard(topic):
        return RemoteProtocolError(
            f"wildcard in topic name {topic!r}", rc.TOPIC_NAME_INVALID
        )  # [MQTT-3.3.2-2]
    # 3.1.1 has no topic aliases: an empty Topic Name is never valid [MQTT-4.7.3-1].
    return _protocol_error("empty topic name")


def decode_publish_v4(src: bytes, start: int, end: int, first_byte: int) -> Publish:
    """PUBLISH, 3.1.1."""
    pos = start + 2
    if pos > end:
        raise malformed("PUBLISH topic length overruns the packet")
    stop = pos + ((src[start] << 8) | src[start + 1])
    if stop > end:
        raise malformed("PUBLISH topic overruns the packet")
    try:
        topic = src[pos:stop].decode()
    except UnicodeDecodeError as exc:
        raise malformed("topic name is not well-formed UTF-8") from exc  # [MQTT-1.5.4-1]
    if "+" in topic or "#" in topic or "\x00" in topic or not topic:
        raise _bad_topic(topic)
    if first_byte & 0x06:
        if stop + 2 > end:
            raise malformed("PUBLISH packet identifier overruns the packet")
        packet_id = (src[stop] << 8) | src[stop + 1]
        if not packet_id:
            raise _protocol_error("PUBLISH packet identifier 0")  # [MQTT-2.2.1-3]
        return Publish(
            topic,
            src[stop + 2 : end],
            (first_byte >> 1) & 0x03,
            (first_byte & 0x01) != 0,
            (first_byte & 0x08) != 0,
            packet_id,
        )
    # QoS 0: the fixed header check already refused DUP here [MQTT-3.3.1-2].
    return Publish(topic, src[stop:end], 0, (first_byte & 0x01) != 0)


def _make_publish_v5(from_client: bool) -> Decoder:
    def decode_publish_v5(src: bytes, start: int, end: int, first_byte: int) -> Publish:
        """PUBLISH, 5.0."""
        pos = start + 2
        if pos > end:
            raise malformed("PUBLISH topic length overruns the packet")
        stop = pos + ((src[start] << 8) | src[start + 1])
        if stop > end:
            raise malformed("PUBLISH topic overruns the packet")
        try:
            topic = src[pos:stop].decode()
        except UnicodeDecodeError as exc:
            raise malformed("topic name is not well-formed UTF-8") from exc  # [MQTT-1.5.4-1]
        if "+" in topic or "#" in topic or "\x00" in topic:
            raise _bad_topic(topic)
        packet_id = None
        if first_byte & 0x06:
            if stop + 2 > end:
                raise malformed("PUBLISH packet identifier overruns the packet")
            packet_id = (src[stop] << 8) | src[stop + 1]
            if not packet_id:
                raise _protocol_error("PUBLISH packet identifier 0")  # [MQTT-2.2.1-3]
            stop += 2
        if stop >= end:
            raise malformed("PUBLISH property length is missing")
        if src[stop] == 0:
            properties = NO_PROPERTIES
            stop += 1
        else:
            properties, stop = decode_properties(src, stop, end, ctx.PUBLISH)
            if from_client and properties.subscription_identifiers:
                raise _protocol_error(
                    "PUBLISH from a client carries a subscription identifier"
                )  # [MQTT-3.3.4-6]
        if not topic and properties.topic_alias is None:
            # Section 3.3.2.1: a zero-length Topic Name needs a Topic Alias.
            raise _protocol_error("empty topic name without a topic alias")
        return Publish(
            topic,
            src[stop:end],
            (first_byte >> 1) & 0x03,
            (first_byte & 0x01) != 0,
            (first_byte & 0x08) != 0,
            packet_id,
            properties,
        )

    return decode_publish_v5


decode_publish_v5_from_client: Final = _make_publish_v5(from_client=True)
decode_publish_v5_from_server: Final = _make_publish_v5(from_client=False)


# -- PUBACK, PUBREC, PUBREL, PUBCOMP ----------------------------------------

_Ack: TypeAlias = PubAck | PubRec | PubRel | PubComp


def _make_ack_v4(cls: type[_Ack]) -> Decoder:
    what = cls.packet_type.name

    def decode_ack_v4(src: bytes, start: int, end: int, first_byte: int) -> _Ack:
        if end - start != 2:
            raise malformed(f"{what} must have remaining length 2")
        return cls(_packet_id(src, start, end, what))

    return decode_ack_v4


def _make_ack_v5(cls: type[_Ack], valid: frozenset[int], context: ctx.PropertyContext) -> Decoder:
    what = cls.packet_type.name

    def decode_ack_v5(src: bytes, start: int, end: int, first_byte: int) -> _Ack:
        packet_id = _packet_id(src, start, end, what)
        # The reason code and then the properties may be omitted (section 3.4.2.1).
        if end - start == 2:
            return cls(packet_id)
        code = src[start + 2]
        if code not in valid:
            raise _protocol_error(f"{what} reason code {code:#04x} is not defined")
        if end - start == 3:
            return cls(packet_id, code)
        properties, pos = decode_properties(src, start + 3, end, context)
        _expect_end(pos, end, what)
        return cls(packet_id, code, properties)

    return decode_ack_v5


# -- SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK ------------------------------


def _make_subscribe(level: int) -> Decoder:
    def decode_subscribe(src: bytes, start: int, end: int, first_byte: int) -> Subscribe:
        packet_id = _packet_id(src, start, end, "SUBSCRIBE")
        pos = start + 2
        properties = NO_PROPERTIES
        if level == 5:
            properties, pos = decode_properties(src, pos, end, ctx.SUBSCRIBE)
        subscriptions: list[SubscriptionRequest] = []
        while pos < end:
            # Topic filter syntax is the broker's to judge (a SUBACK failure code).
            topic_filter, pos = read_utf8(src, pos, end)
            if pos >= end:
                raise malformed("SUBSCRIBE subscription options are missing")
            options = src[pos]
            pos += 1
            qos = options & 0x03
            if qos == 3:
                # 3.1.1 [MQTT-3-8.3-4]; 5.0 section 3.8.3.1 calls it a Protocol Error,
                # our contract reports it as malformed, like the reserved bits.
                raise malformed("SUBSCRIBE requests QoS 3")
            if level == 4:
                if options & 0xFC:
                    raise malformed("SUBSCRIBE reserved option bits are set")  # [MQTT-3-8.3-4]
                subscriptions.append(SubscriptionRequest(topic_filter, qos))
                continue
            if options & 0xC0:
                raise malformed("SUBSCRIBE reserved option bits are set")  # [MQTT-3.8.3-5]
            retain_handling = (options >> 4) & 0x03
            if retain_handling == 3:
                raise malformed("SUBSCRIBE retain handling 3")  # section 3.8.3.1
            no_local = (options & 0x04) != 0
            if no_local and topic_filter.startswith("$share/"):
                raise _protocol_error("no local on a shared subscription")  # [MQTT-3.8.3-4]
            subscriptions.append(
                SubscriptionRequest(
                    topic_filter, qos, no_local, (options & 0x08) != 0, retain_handling
                )
            )
        if not subscriptions:
            # 3.1.1 [MQTT-3.8.3-3]; 5.0 [MQTT-3.8.3-2]
            raise _protocol_error("SUBSCRIBE without a topic filter")
        return Subscribe(packet_id, tuple(subscriptions), properties)

    return decode_subscribe


def _reason_codes(
    src: bytes, pos: int, end: int, valid: frozenset[int], what: str
) -> tuple[int, ...]:
    codes = tuple(src[pos:end])
    if not codes:
        # One code per filter of the request, which had at least one.
        raise _protocol_error(f"{what} without reason codes")
    if not valid.issuperset(codes):
        bad = next(code for code in codes if code not in valid)
        raise _protocol_error(f"{what} reason code {bad:#04x} is not defined")
    return codes


def decode_suback_v4(src: bytes, start: int, end: int, first_byte: int) -> SubAck:
    """SUBACK, 3.1.1."""
    packet_id = _packet_id(src, start, end, "SUBACK")
    return SubAck(packet_id, _reason_codes(src, start + 2, end, rc.SUBACK_V4, "SUBACK"))


def decode_suback_v5(src: bytes, start: int, end: int, first_byte: int) -> SubAck:
    """SUBACK, 5.0."""
    packet_id = _packet_id(src, start, end, "SUBACK")
    properties, pos = decode_properties(src, start + 2, end, ctx.SUBACK)
    codes = _reason_codes(src, pos, end, rc.SUBACK_V5, "SUBACK")
    return SubAck(packet_id, codes, properties)


def _make_unsubscribe(level: int) -> Decoder:
    def decode_unsubscribe(src: bytes, start: int, end: int, first_byte: int) -> Unsubscribe:
        packet_id = _packet_id(src, start, end, "UNSUBSCRIBE")
        pos = start + 2
        properties = NO_PROPERTIES
        if level == 5:
            properties, pos = decode_properties(src, pos, end, ctx.UNSUBSCRIBE)
        topic_filters: list[str] = []
        while pos < end:
            topic_filter, pos = read_utf8(src, pos, end)
            topic_filters.append(topic_filter)
        if not topic_filters:
            # 3.1.1 [MQTT-3.10.3-2]; 5.0 section 3.10.3
            raise _protocol_error("UNSUBSCRIBE without a topic filter")
        return Unsubscribe(packet_id, tuple(topic_filters), properties)

    return decode_unsubscribe


def decode_unsuback_v4(src: bytes, start: int, end: int, first_byte: int) -> UnsubAck:
    """UNSUBACK, 3.1.1: a packet identifier only."""
    if end - start != 2:
        raise malformed("UNSUBACK must have remaining length 2")
    return UnsubAck(_packet_id(src, start, end, "UNSUBACK"))


def decode_unsuback_v5(src: bytes, start: int, end: int, first_byte: int) -> UnsubAck:
    """UNSUBACK, 5.0."""
    packet_id = _packet_id(src, start, end, "UNSUBACK")
    properties, pos = decode_properties(src, start + 2, end, ctx.UNSUBACK)
    codes = _reason_codes(src, pos, end, rc.UNSUBACK_V5, "UNSUBACK")
    return UnsubAck(packet_id, codes, properties)


# -- PINGREQ, PINGRESP, DISCONNECT, AUTH --------------------------------------


def decode_pingreq(src: bytes, start: int, end: int, first_byte: int) -> PingReq:
    """PINGREQ, either version."""
    _expect_empty(start, end, "PINGREQ")
    return _PINGREQ


def decode_pingresp(src: bytes, start: int, end: int, first_byte: int) -> PingResp:
    """PINGRESP, either version."""
    _expect_empty(start, end, "PINGRESP")
    return _PINGRESP


def decode_disconnect_v4(src: bytes, start: int, end: int, first_byte: int) -> Disconnect:
    """DISCONNECT, 3.1.1: no variable header."""
    _expect_empty(start, end, "DISCONNECT")
    return _DISCONNECT


def _code_and_properties(
    src: bytes,
    start: int,
    end: int,
    valid: frozenset[int],
    context: ctx.PropertyContext,
) -> tuple[int, Properties]:
    code = src[start]
    if code not in valid:
        raise _protocol_error(f"{context.name} reason code {code:#04x} is not defined")
    if end - start == 1:
        return code, NO_PROPERTIES
    properties, pos = decode_properties(src, start + 1, end, context)
    _expect_end(pos, end, context.name)
    return code, properties


def _make_disconnect_v5(from_client: bool) -> Decoder:
    def decode_disconnect_v5(src: bytes, start: int, end: int, first_byte: int) -> Disconnect:
        """DISCONNECT, 5.0: reason code and properties may be omitted (3.14.2.1)."""
        if start == end:
            return _DISCONNECT
        code, properties = _code_and_properties(src, start, end, rc.DISCONNECT_V5, ctx.DISCONNECT)
        if not from_client and properties.session_expiry_interval is not None:
            raise _protocol_error(
                "DISCONNECT from the server carries a session expiry interval"
            )  # [MQTT-3.14.2-2]
        return Disconnect(code, properties)

    return decode_disconnect_v5


def decode_auth(src: bytes, start: int, end: int, first_byte: int) -> Auth:
    """AUTH (5.0 only). Only a remaining length of 0 may omit the properties (3.15.2.1)."""
    if start == end:
        return _AUTH
    if end - start == 1:
        raise malformed("AUTH property length is missing")
    code, properties = _code_and_properties(src, start, end, rc.AUTH_V5, ctx.AUTH)
    return Auth(code, properties)


# -- tables --------------------------------------------------------------------

_V4: Final[dict[PacketType, Decoder]] = {
    PacketType.CONNECT: decode_connect,
    PacketType.CONNACK: decode_connack_v4,
    PacketType.PUBLISH: decode_publish_v4,
    PacketType.PUBACK: _make_ack_v4(PubAck),
    PacketType.PUBREC: _make_ack_v4(PubRec),
    PacketType.PUBREL: _make_ack_v4(PubRel),
    PacketType.PUBCOMP: _make_ack_v4(PubComp),
    PacketType.SUBSCRIBE: _make_subscribe(4),
    PacketType.SUBACK: decode_suback_v4,
    PacketType.UNSUBSCRIBE: _make_unsubscribe(4),
    PacketType.UNSUBACK: decode_unsuback_v4,
    PacketType.PINGREQ: decode_pingreq,
    PacketType.PINGRESP: decode_pingresp,
    PacketType.DISCONNECT: decode_disconnect_v4,
}

_V5_COMMON: Final[dict[PacketType, Decoder]] = {
    PacketType.CONNECT: decode_connect,
    PacketType.CONNACK: decode_connack_v5,
    PacketType.PUBACK: _make_ack_v5(PubAck, rc.PUBACK_V5, ctx.PUBACK),
    PacketType.PUBREC: _make_ack_v5(PubRec, rc.PUBREC_V5, ctx.PUBREC),
    PacketType.PUBREL: _make_ack_v5(PubRel, rc.PUBREL_V5, ctx.PUBREL),
    PacketType.PUBCOMP: _make_ack_v5(PubComp, rc.PUBCOMP_V5, ctx.PUBCOMP),
    PacketType.SUBSCRIBE: _make_subscribe(5),
    PacketType.SUBACK: decode_suback_v5,
    PacketType.UNSUBSCRIBE: _make_unsubscribe(5),
    PacketType.UNSUBACK: decode_unsuback_v5,
    PacketType.PINGREQ: decode_pingreq,
    PacketType.PINGRESP: decode_pingresp,
    PacketType.AUTH: decode_auth,
}

_V5_FROM_CLIENT: Final[dict[PacketType, Decoder]] = {
    **_V5_COMMON,
    PacketType.PUBLISH: decode_publish_v5_from_client,
    PacketType.DISCONNECT: _make_disconnect_v5(from_client=True),
}

_V5_FROM_SERVER: Final[dict[PacketType, Decoder]] = {
    **_V5_COMMON,
    PacketType.PUBLISH: decode_publish_v5_from_server,
    PacketType.DISCONNECT: _make_disconnect_v5(from_client=False),
}


def decoders(level: int, from_client: bool) -> dict[PacketType, Decoder]:
    """The decoder for each packet type of protocol ``level``, sent by a client or not."""
    if level == 4:
        return _V4
    return _V5_FROM_CLIENT if from_client else _V5_FROM_SERVER
