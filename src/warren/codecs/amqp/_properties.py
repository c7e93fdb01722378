"""The basic class's content properties and the content header's property list (4.2.6.1).

The property flags word has one bit per property, from bit 15 for the first
(content-type) down to bit 2 for the fourteenth (cluster-id); bit 0 says another
flags word follows. Only the properties whose bit is set are on the wire, in order.
Decoding is unrolled, and a header without properties (flags 0) costs one compare.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from warren.errors import LocalProtocolError

from ._constants import ReplyCode
from ._errors import AMQPRemoteError
from ._fields import U16, U64, FieldTable, MalformedError, encode_content_shortstr, encode_table
from ._fields import read_table as _read_table


@dataclass(frozen=True, slots=True)
class BasicProperties:
    """The 14 properties of a basic content; ``None`` means absent.

    Strings are short strings: up to 255 bytes. They are decoded losslessly (bytes
    that are not UTF-8 survive as lone surrogates, see :mod:`._fields`), because
    clients put binary ids in them and RabbitMQ passes them on unchanged.
    """

    content_type: str | None = None  # bit 15
    content_encoding: str | None = None  # bit 14
    headers: FieldTable | None = None  # bit 13
    delivery_mode: int | None = None  # bit 12: 1 transient, 2 persistent
    priority: int | None = None  # bit 11: 0..9 by the spec, 0..255 on the wire
    correlation_id: str | None = None  # bit 10
    reply_to: str | None = None  # bit 9
    expiration: str | None = None  # bit 8: a TTL in milliseconds, as text (RabbitMQ)
    message_id: str | None = None  # bit 7
    timestamp: int | None = None  # bit 6: seconds since the epoch, unsigned 64-bit
    type: str | None = None  # bit 5
    user_id: str | None = None  # bit 4
    app_id: str | None = None  # bit 3
    cluster_id: str | None = None  # bit 2: deprecated, still carried


NO_PROPERTIES: Final = BasicProperties()
"""The shared empty property set (every content's default)."""

PROPERTY_NAMES: Final = tuple(BasicProperties.__dataclass_fields__)

# A frozen dataclass's __init__ sets each field through object.__setattr__; calling
# the slot descriptors directly builds the same object in less than half the time.
# Decoding does so once per message; the dataclass has no checks to skip.
_new: Final = object.__new__
_SETTERS: Final = tuple(BasicProperties.__dict__[name].__set__ for name in PROPERTY_NAMES)


def _shortstr(src: bytes, pos: int) -> tuple[str, int]:
    stop = pos + 1 + src[pos]
    return src[pos + 1 : stop].decode("utf-8", "surrogateescape"), stop


def decode_properties(src: bytes, pos: int, end: int) -> BasicProperties:
    """The property flags and list of basic content at ``pos``, which must end at ``end``.

    Raises :class:`MalformedError` (or ``struct.error``/``IndexError`` when the
    bytes run out); flags for properties basic does not have raise
    :class:`AMQPRemoteError` (502).
    """
    (flags,) = U16.unpack_from(src, pos)
    pos += 2
    if flags == 0:
        if pos != end:
            raise MalformedError(f"{end - pos} bytes after an empty property list")
        return NO_PROPERTIES
    if flags & 0x0003:
        pos = _more_flags(src, pos, flags)
    content_type: str | None = None
    content_encoding: str | None = None
    headers: FieldTable | None = None
    delivery_mode: int | None = None
    priority: int | None = None
    correlation_id: str | None = None
    reply_to: str | None = None
    expiration: str | None = None
    message_id: str | None = None
    timestamp: int | None = None
    type_: str | None = None
    user_id: str | None = None
    app_id: str | None = None
    cluster_id: str | None = None
    if flags & 0x8000:
        content_type, pos = _shortstr(src, pos)
    if flags & 0x4000:
        content_encoding, pos = _shortstr(src, pos)
    if flags & 0x2000:
        headers, pos = _read_table(src, pos, end)
    if flags & 0x1000:
        delivery_mode = src[pos]
        pos += 1
    if flags & 0x0800:
        priority = src[pos]
        pos += 1
    if flags & 0x0400:
        correlation_id, pos = _shortstr(src, pos)
    if flags & 0x0200:
        reply_to, pos = _shortstr(src, pos)
    if flags & 0x0100:
        expiration, pos = _shortstr(src, pos)
    if flags & 0x0080:
        message_id, pos = _shortstr(src, pos)
    if flags & 0x0040:
        (timestamp,) = U64.unpack_from(src, pos)
        pos += 8
    if flags & 0x0020:
        type_, pos = _shortstr(src, pos)
    if flags & 0x0010:
        user_id, pos = _shortstr(src, pos)
    if flags & 0x0008:
        app_id, pos = _shortstr(src, pos)
    if flags & 0x0004:
        cluster_id, pos = _shortstr(src, pos)
    if pos != end:
        if pos > end:
            raise MalformedError("the property list overruns its frame")
        raise MalformedError(f"{end - pos} bytes after the property list")
    # BasicProperties(...) without the frozen __init__ (see _new_properties).
    properties = _new(BasicProperties)
    (
        set_content_type,
        set_content_encoding,
        set_headers,
        set_delivery_mode,
        set_priority,
        set_correlation_id,
        set_reply_to,
        set_expiration,
        set_message_id,
        set_timestamp,
        set_type,
        set_user_id,
        set_app_id,
        set_cluster_id,
    ) = _SETTERS
    set_content_type(properties, content_type)
    set_content_encoding(properties, content_encoding)
    set_headers(properties, headers)
    set_delivery_mode(properties, delivery_mode)
    set_priority(properties, priority)
    set_correlation_id(properties, correlation_id)
    set_reply_to(properties, reply_to)
    set_expiration(properties, expiration)
    set_message_id(properties, message_id)
    set_timestamp(properties, timestamp)
    set_type(properties, type_)
    set_user_id(properties, user_id)
    set_app_id(properties, app_id)
    set_cluster_id(properties, cluster_id)
    return properties


def _more_flags(src: bytes, pos: int, flags: int) -> int:
    """Skip continuation flag words; they may only say "no more properties"."""
    if flags & 0x0002:
        raise AMQPRemoteError(
            "property flag bit 1 is set, but basic has no fifteenth property",
            ReplyCode.SYNTAX_ERROR,
        )
    while flags & 0x0001:  # another flags word follows (4.2.6.1)
        (flags,) = U16.unpack_from(src, pos)
        pos += 2
        if flags & 0xFFFE:
            raise AMQPRemoteError(
                "a continuation property flags word names properties basic does not have",
                ReplyCode.SYNTAX_ERROR,
            )
    return pos


_EMPTY: Final = b"\x00\x00"


def encode_properties(properties: BasicProperties) -> bytes:
    """The property flags and list for ``properties`` (the content header's tail)."""
    if properties is NO_PROPERTIES:
        return _EMPTY
    flags = 0
    parts = [_EMPTY]
    p = properties
    if p.content_type is not None:
        flags |= 0x8000
        parts.append(encode_content_shortstr(p.content_type, "content_type"))
    if p.content_encoding is not None:
        flags |= 0x4000
        parts.append(encode_content_shortstr(p.content_encoding, "content_encoding"))
    if p.headers is not None:
        flags |= 0x2000
        parts.append(encode_table(p.headers))
    if p.delivery_mode is not None:
        flags |= 0x1000
        parts.append(_octet(p.delivery_mode, "delivery_mode"))
    if p.priority is not None:
        flags |= 0x0800
        parts.append(_octet(p.priority, "priority"))
    if p.correlation_id is not None:
        flags |= 0x0400
        parts.append(encode_content_shortstr(p.correlation_id, "correlation_id"))
    if p.reply_to is not None:
        flags |= 0x0200
        parts.append(encode_content_shortstr(p.reply_to, "reply_to"))
    if p.expiration is not None:
        flags |= 0x0100
        parts.append(encode_content_shortstr(p.expiration, "expiration"))
    if p.message_id is not None:
        flags |= 0x0080
        parts.append(encode_content_shortstr(p.message_id, "message_id"))
    if p.timestamp is not None:
        flags |= 0x0040
        if not 0 <= p.timestamp <= 0xFFFF_FFFF_FFFF_FFFF:
            raise _out_of_range("timestamp", p.timestamp)
        parts.append(U64.pack(p.timestamp))
    if p.type is not None:
        flags |= 0x0020
        parts.append(encode_content_shortstr(p.type, "type"))
    if p.user_id is not None:
        flags |= 0x0010
        parts.append(encode_content_shortstr(p.user_id, "user_id"))
    if p.app_id is not None:
        flags |= 0x0008
        parts.append(encode_content_shortstr(p.app_id, "app_id"))
    if p.cluster_id is not None:
        flags |= 0x0004
        parts.append(encode_content_shortstr(p.cluster_id, "cluster_id"))
    parts[0] = U16.pack(flags)
    return b"".join(parts)


def _octet(value: int, what: str) -> bytes:
    if not 0 <= value <= 255:
        raise _out_of_range(what, value)
    return bytes((value,))


def _out_of_range(what: str, value: int) -> LocalProtocolError:
    return LocalProtocolError(f"property {what} {value} is out of range", ReplyCode.SYNTAX_ERROR)
