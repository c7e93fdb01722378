"""MQTT 5 properties (section 2.2.2): identifiers, where each may appear, encode/decode.

Choices made here where the spec leaves room:

* A property identifier that is unknown, or known but not allowed in the packet
  it appears in, is a Malformed Packet (0x81), as section 2.2.2.2 says ("A Control
  Packet which contains an Identifier which is not valid for its packet type ... is
  a Malformed Packet"), even where a later clause calls it a Protocol Error.
* A property that may appear once appearing twice, and the out-of-range values the
  spec names (0/1 flags, Receive Maximum 0, Maximum Packet Size 0, Subscription
  Identifier 0, a wildcard in Response Topic, Authentication Data without a Method)
  are Protocol Errors (0x82). Topic Alias 0 is Topic Alias invalid (0x94)
  [MQTT-3.3.2-8].
* Sending applies the same rules and raises :class:`LocalProtocolError` with the
  code the peer would have reported.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from warren.errors import LocalProtocolError, RemoteProtocolError

from ._datatypes import (
    MAX_VARINT,
    U16,
    U32,
    binary,
    has_wildcard,
    malformed,
    read_binary,
    read_u32,
    read_utf8,
    read_varint,
    utf8,
    varint,
)
from ._packets import NO_PROPERTIES, Properties
from ._reason import MALFORMED, PACKET_TOO_LARGE, PROTOCOL_ERROR, TOPIC_ALIAS_INVALID


class _Kind(enum.Enum):
    BYTE = enum.auto()
    U16 = enum.auto()
    U32 = enum.auto()
    VARINT = enum.auto()
    UTF8 = enum.auto()
    BINARY = enum.auto()
    PAIR = enum.auto()


class _Check(enum.Enum):
    NONE = enum.auto()
    ZERO_OR_ONE = enum.auto()  # 0x82 otherwise
    NON_ZERO = enum.auto()  # 0x82 otherwise
    TOPIC_ALIAS = enum.auto()  # 0 -> 0x94 [MQTT-3.3.2-8]
    NO_WILDCARD = enum.auto()  # Response Topic [MQTT-3.3.2-14] -> 0x82


@dataclass(frozen=True, slots=True)
class _Spec:
    identifier: int
    name: str
    kind: _Kind
    check: _Check


# In identifier order, which is also the field order of ``Properties``.
_SPECS: Final = (
    _Spec(0x01, "payload_format_indicator", _Kind.BYTE, _Check.ZERO_OR_ONE),
    _Spec(0x02, "message_expiry_interval", _Kind.U32, _Check.NONE),
    _Spec(0x03, "content_type", _Kind.UTF8, _Check.NONE),
    _Spec(0x08, "response_topic", _Kind.UTF8, _Check.NO_WILDCARD),
    _Spec(0x09, "correlation_data", _Kind.BINARY, _Check.NONE),
    _Spec(0x0B, "subscription_identifiers", _Kind.VARINT, _Check.NON_ZERO),
    _Spec(0x11, "session_expiry_interval", _Kind.U32, _Check.NONE),
    _Spec(0x12, "assigned_client_identifier", _Kind.UTF8, _Check.NONE),
    _Spec(0x13, "server_keep_alive", _Kind.U16, _Check.NONE),
    _Spec(0x15, "authentication_method", _Kind.UTF8, _Check.NONE),
    _Spec(0x16, "authentication_data", _Kind.BINARY, _Check.NONE),
    _Spec(0x17, "request_problem_information", _Kind.BYTE, _Check.ZERO_OR_ONE),
    _Spec(0x18, "will_delay_interval", _Kind.U32, _Check.NONE),
    _Spec(0x19, "request_response_information", _Kind.BYTE, _Check.ZERO_OR_ONE),
    _Spec(0x1A, "response_information", _Kind.UTF8, _Check.NONE),
    _Spec(0x1C, "server_reference", _Kind.UTF8, _Check.NONE),
    _Spec(0x1F, "reason_string", _Kind.UTF8, _Check.NONE),
    _Spec(0x21, "receive_maximum", _Kind.U16, _Check.NON_ZERO),
    _Spec(0x22, "topic_alias_maximum", _Kind.U16, _Check.NONE),
    _Spec(0x23, "topic_alias", _Kind.U16, _Check.TOPIC_ALIAS),
    _Spec(0x24, "maximum_qos", _Kind.BYTE, _Check.ZERO_OR_ONE),
    _Spec(0x25, "retain_available", _Kind.BYTE, _Check.ZERO_OR_ONE),
    _Spec(0x26, "user_properties", _Kind.PAIR, _Check.NONE),
    _Spec(0x27, "maximum_packet_size", _Kind.U32, _Check.NON_ZERO),
    _Spec(0x28, "wildcard_subscription_available", _Kind.BYTE, _Check.ZERO_OR_ONE),
    _Spec(0x29, "subscription_identifier_available", _Kind.BYTE, _Check.ZERO_OR_ONE),
    _Spec(0x2A, "shared_subscription_available", _Kind.BYTE, _Check.ZERO_OR_ONE),
)

_BY_ID: Final[list[_Spec | None]] = [None] * 256
for _spec in _SPECS:
    _BY_ID[_spec.identifier] = _spec
del _spec

_SUBSCRIPTION_IDENTIFIER: Final = 0x0B
_AUTHENTICATION_DATA: Final = 0x16
_USER_PROPERTY: Final = 0x26


@dataclass(frozen=True, slots=True)
class PropertyContext:
    """Where a property block sits: which identifiers it allows, which may repeat."""

    name: str
    allowed: int  # bit n set: identifier n allowed
    repeatable: int  # bit n set: identifier n may appear more than once


def _context(name: str, *identifiers: int, repeatable: tuple[int, ...] = ()) -> PropertyContext:
    allowed = 1 << _USER_PROPERTY  # User Property is allowed everywhere (table 2-4)
    for identifier in identifiers:
        allowed |= 1 << identifier
    repeat = 1 << _USER_PROPERTY
    for identifier in repeatable:
        repeat |= 1 << identifier
    return PropertyContext(name, allowed, repeat)


# MQTT 5.0 table 2-4 (section 2.2.2.2), read by packet.
CONNECT: Final = _context("CONNECT", 0x11, 0x15, 0x16, 0x17, 0x19, 0x21, 0x22, 0x27)
CONNACK: Final = _context(
    "CONNACK",
    0x11, 0x12, 0x13, 0x15, 0x16, 0x1A, 0x1C, 0x1F, 0x21, 0x22, 0x24, 0x25, 0x27, 0x28,
    0x29, 0x2A,
)  # fmt: skip
# Several Subscription Identifiers when a message matched several subscriptions
# (section 3.3.2.3.8).
PUBLISH: Final = _context("PUBLISH", 0x01, 0x02, 0x03, 0x08, 0x09, 0x0B, 0x23, repeatable=(0x0B,))
WILL: Final = _context("Will", 0x01, 0x02, 0x03, 0x08, 0x09, 0x18)
PUBACK: Final = _context("PUBACK", 0x1F)
PUBREC: Final = _context("PUBREC", 0x1F)
PUBREL: Final = _context("PUBREL", 0x1F)
PUBCOMP: Final = _context("PUBCOMP", 0x1F)
SUBSCRIBE: Final = _context("SUBSCRIBE", 0x0B)  # once only (section 3.8.2.1.2)
SUBACK: Final = _context("SUBACK", 0x1F)
UNSUBSCRIBE: Final = _context("UNSUBSCRIBE")
UNSUBACK: Final = _context("UNSUBACK", 0x1F)
DISCONNECT: Final = _context("DISCONNECT", 0x11, 0x1C, 0x1F)
AUTH: Final = _context("AUTH", 0x15, 0x16, 0x1F)


def _value_error(spec: _Spec, value: int | str) -> tuple[int, str] | None:
    """The (reason code, message) if ``value`` breaks a rule of its property."""
    check = spec.check
    if check is _Check.NONE:
        return None
    if check is _Check.ZERO_OR_ONE:
        if value == 0 or value == 1:
            return None
        return PROTOCOL_ERROR, f"{spec.name} must be 0 or 1, not {value}"
    if check is _Check.NON_ZERO:
        if value != 0:
            return None
        return PROTOCOL_ERROR, f"{spec.name} must not be 0"
    if check is _Check.TOPIC_ALIAS:
        if value != 0:
            return None
        return TOPIC_ALIAS_INVALID, "topic alias 0 is not permitted"  # [MQTT-3.3.2-8]
    assert isinstance(value, str)
    if has_wildcard(value):
        # [MQTT-3.3.2-14] The Response Topic MUST NOT contain wildcard characters.
        return PROTOCOL_ERROR, "response topic contains a wildcard"
    return None


def _name(identifier: int) -> str:
    spec = _BY_ID[identifier]
    return spec.name if spec is not None else hex(identifier)


# -- decoding --------------------------------------------------------------


def decode_properties(
    src: bytes, pos: int, end: int, context: PropertyContext
) -> tuple[Properties, int]:
    """Read a property block (its length, then the properties) at ``pos``.

    Returns the properties (``NO_PROPERTIES`` when the block is empty) and the
    position after the block.
    """
    if pos < end and src[pos] == 0:
        return NO_PROPERTIES, pos + 1
    length, pos = read_varint(src, pos, end)
    stop = pos + length
    if stop > end:
        raise malformed(f"{context.name} property length overruns the packet")
    fields: dict[str, object] = {}
    subscription_identifiers: list[int] = []
    user_properties: list[tuple[str, str]] = []
    seen = 0
    value: int | str | bytes
    while pos < stop:
        identifier = src[pos]
        pos += 1
        spec = _BY_ID[identifier]
        if spec is None:
            # Identifiers are Variable Byte Integers, but none defined needs two bytes,
            # so any byte that is not a known identifier is unknown.
            raise malformed(f"unknown property identifier {identifier:#04x}")
        bit = 1 << identifier
        if not context.allowed & bit:
            raise malformed(f"property {spec.name} is not allowed in {context.name}")
        if seen & bit and not context.repeatable & bit:
            raise RemoteProtocolError(
                f"property {spec.name} appears more than once in {context.name}",
                PROTOCOL_ERROR,
            )
        seen |= bit
        kind = spec.kind
        if kind is _Kind.BYTE:
            if pos >= stop:
                raise malformed(f"property {spec.name} overruns the property block")
            value = src[pos]
            pos += 1
        elif kind is _Kind.U16:
            if pos + 2 > stop:
                raise malformed(f"property {spec.name} overruns the property block")
            value = (src[pos] << 8) | src[pos + 1]
            pos += 2
        elif kind is _Kind.U32:
            value, pos = read_u32(src, pos, stop)
        elif kind is _Kind.VARINT:
            value, pos = read_varint(src, pos, stop)
        elif kind is _Kind.UTF8:
            value, pos = read_utf8(src, pos, stop)
        elif kind is _Kind.BINARY:
            value, pos = read_binary(src, pos, stop)
        else:
            key, pos = read_utf8(src, pos, stop)
            pair_value, pos = read_utf8(src, pos, stop)
            user_properties.append((key, pair_value))
            continue
        if not isinstance(value, bytes):
            problem = _value_error(spec, value)
            if problem is not None:
                raise RemoteProtocolError(problem[1], problem[0])
        if identifier == _SUBSCRIPTION_IDENTIFIER:
            assert isinstance(value, int)
            subscription_identifiers.append(value)
        else:
            fields[spec.name] = value
    if seen & (1 << _AUTHENTICATION_DATA) and "authentication_method" not in fields:
        # Section 3.1.2.11.10 / 3.2.2.3.18 / 3.15.2.2.3: a Protocol Error.
        raise RemoteProtocolError(
            f"authentication data without authentication method in {context.name}",
            PROTOCOL_ERROR,
        )
    if subscription_identifiers:
        fields["subscription_identifiers"] = tuple(subscription_identifiers)
    if user_properties:
        fields["user_properties"] = tuple(user_properties)
    return Properties(**fields), pos  # type: ignore[arg-type]


# -- encoding --------------------------------------------------------------


def _local(problem: tuple[int, str]) -> LocalProtocolError:
    return LocalProtocolError(problem[1], problem[0])


def _encode_body(props: Properties) -> tuple[bytes, int]:
    """The properties without their length prefix, and the mask of identifiers used."""
    parts: list[bytes] = []
    mask = 0
    for spec in _SPECS:
        value = getattr(props, spec.name)
        if value is None or value == ():
            continue
        identifier = spec.identifier
        mask |= 1 << identifier
        tag = bytes((identifier,))
        kind = spec.kind
        if kind is _Kind.PAIR:
            for key, pair_value in value:
                parts.append(tag)
                parts.append(utf8(key, "user property name"))
                parts.append(utf8(pair_value, "user property value"))
            continue
        if kind is _Kind.VARINT:
            for number in value:
                if not 0 <= number <= MAX_VARINT:
                    raise LocalProtocolError(
                        f"{spec.name} {number} is not in 1..{MAX_VARINT}", MALFORMED
                    )
                problem = _value_error(spec, number)
                if problem is not None:
                    raise _local(problem)
                parts.append(tag)
                parts.append(varint(number))
            continue
        if kind is not _Kind.BINARY:
            problem = _value_error(spec, value)
            if problem is not None:
                raise _local(problem)
        parts.append(tag)
        if kind is _Kind.BYTE:
            parts.append(bytes((value,)))  # every Byte property is 0 or 1 (checked above)
        elif kind is _Kind.U16:
            if not 0 <= value <= 0xFFFF:
                raise LocalProtocolError(f"{spec.name} {value} is not in 0..65535", MALFORMED)
            parts.append(U16.pack(value))
        elif kind is _Kind.U32:
            if not 0 <= value <= 0xFFFFFFFF:
                raise LocalProtocolError(f"{spec.name} {value} is not in 0..4294967295", MALFORMED)
            parts.append(U32.pack(value))
        elif kind is _Kind.UTF8:
            parts.append(utf8(value, spec.name))
        else:
            parts.append(binary(value, spec.name))
    if mask & (1 << _AUTHENTICATION_DATA) and props.authentication_method is None:
        raise LocalProtocolError(
            "authentication data without authentication method", PROTOCOL_ERROR
        )
    body = b"".join(parts)
    if len(body) > MAX_VARINT:
        raise LocalProtocolError("properties longer than a packet can be", PACKET_TOO_LARGE)
    return body, mask


def encode_properties(props: Properties) -> bytes:
    """Encode a v5 property block, including its variable-byte-integer length prefix.

    Checks each value (ranges and the rules of section 2.2.2.2) but not which packet
    the block is for; ``MQTTConnection.send`` checks that too. Empty properties
    encode as the single byte ``00``.
    """
    if props is NO_PROPERTIES:
        return b"\x00"
    body, _ = _encode_body(props)
    return varint(len(body)) + body


def encode_properties_for(props: Properties, context: PropertyContext) -> bytes:
    """Like :func:`encode_properties`, also checking the properties fit ``context``."""
    if props is NO_PROPERTIES:
        return b"\x00"
    body, mask = _encode_body(props)
    stray = mask & ~context.allowed
    if stray:
        identifier = (stray & -stray).bit_length() - 1
        raise LocalProtocolError(
            f"property {_name(identifier)} is not allowed in {context.name}", MALFORMED
        )
    if len(props.subscription_identifiers) > 1 and not context.repeatable & (
        1 << _SUBSCRIPTION_IDENTIFIER
    ):
        raise LocalProtocolError(
            f"only one subscription identifier is allowed in {context.name}", PROTOCOL_ERROR
        )
    return varint(len(body)) + body
