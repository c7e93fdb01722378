"""MQTT data representation (section 1.5 of both specs): readers and writers.

Readers take ``(src, pos, end)``: ``src`` is an immutable ``bytes`` that may hold
more than the packet being read, so every read is bounded by ``end`` (the end of
the packet or field), never by ``len(src)``. They return ``(value, new_pos)`` and
raise :class:`RemoteProtocolError` (0x81) when a field overruns ``end`` or is invalid.

Writers return ``bytes`` and raise :class:`LocalProtocolError` for values the
protocol cannot carry.
"""

from __future__ import annotations

from struct import Struct
from typing import Final

from warren.errors import LocalProtocolError, RemoteProtocolError

from ._reason import MALFORMED

U16: Final = Struct(">H")
U32: Final = Struct(">I")

MAX_VARINT: Final = 268_435_455  # four 7-bit groups [MQTT-1.5.5]


def malformed(message: str) -> RemoteProtocolError:
    """A RemoteProtocolError with reason code 0x81 (Malformed Packet)."""
    return RemoteProtocolError(message, MALFORMED)


# -- readers ---------------------------------------------------------------


def read_u32(src: bytes, pos: int, end: int) -> tuple[int, int]:
    """A Four Byte Integer, big-endian [MQTT-1.5.3]."""
    if pos + 4 > end:
        raise malformed("four-byte integer overruns the packet")
    return int.from_bytes(src[pos : pos + 4], "big"), pos + 4


def read_varint(src: bytes, pos: int, end: int) -> tuple[int, int]:
    """A Variable Byte Integer of at most four bytes [MQTT-1.5.5].

    A non-minimal encoding (e.g. ``80 00`` for 0) is accepted: the minimal-length
    rule [MQTT-1.5.5-1] binds the sender, and the value is unambiguous.
    """
    value = 0
    for shift in (0, 7, 14, 21):
        if pos >= end:
            raise malformed("variable byte integer overruns the packet")
        byte = src[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
    raise malformed("variable byte integer longer than four bytes")


def read_binary(src: bytes, pos: int, end: int) -> tuple[bytes, int]:
    """Binary Data: a two-byte length then that many bytes [MQTT-1.5.6]."""
    start = pos + 2
    if start > end:
        raise malformed("binary data length overruns the packet")
    stop = start + ((src[pos] << 8) | src[pos + 1])
    if stop > end:
        raise malformed("binary data overruns the packet")
    return src[start:stop], stop


def read_utf8(src: bytes, pos: int, end: int) -> tuple[str, int]:
    """A UTF-8 Encoded String [MQTT-1.5.4].

    Ill-formed UTF-8 and encoded UTF-16 surrogates [MQTT-1.5.4-1] (Python's strict
    decoder rejects both) and U+0000 [MQTT-1.5.4-2] make the packet malformed.
    """
    start = pos + 2
    if start > end:
        raise malformed("string length overruns the packet")
    stop = start + ((src[pos] << 8) | src[pos + 1])
    if stop > end:
        raise malformed("string overruns the packet")
    try:
        text = src[start:stop].decode()
    except UnicodeDecodeError as exc:
        raise malformed("string is not well-formed UTF-8") from exc
    if "\x00" in text:
        raise malformed("string contains U+0000")
    return text, stop


# -- writers ---------------------------------------------------------------


def varint(value: int) -> bytes:
    """Encode a Variable Byte Integer (0..MAX_VARINT) in the fewest bytes [MQTT-1.5.5-1].

    Callers check the range: what is out of range depends on what is encoded.
    """
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def utf8(text: str, what: str) -> bytes:
    """Encode ``text`` as a UTF-8 Encoded String, with its two-byte length."""
    try:
        raw = text.encode()
    except UnicodeEncodeError as exc:
        # Lone surrogates cannot be encoded [MQTT-1.5.4-1].
        raise LocalProtocolError(f"{what} is not encodable as UTF-8", MALFORMED) from exc
    if len(raw) > 0xFFFF:
        raise LocalProtocolError(f"{what} is longer than 65535 bytes", MALFORMED)
    if b"\x00" in raw:
        raise LocalProtocolError(f"{what} contains U+0000", MALFORMED)  # [MQTT-1.5.4-2]
    return U16.pack(len(raw)) + raw


def binary(data: bytes, what: str) -> bytes:
    """Encode ``data`` as Binary Data, with its two-byte length."""
    if len(data) > 0xFFFF:
        raise LocalProtocolError(f"{what} is longer than 65535 bytes", MALFORMED)
    return U16.pack(len(data)) + bytes(data)


def u16(value: int, what: str) -> bytes:
    """Encode a Two Byte Integer, checking its range."""
    if not 0 <= value <= 0xFFFF:
        raise LocalProtocolError(f"{what} {value} is not in 0..65535", MALFORMED)
    return U16.pack(value)


def has_wildcard(topic: str) -> bool:
    """Whether a topic name contains a wildcard character [MQTT-3.3.2-2]."""
    return "+" in topic or "#" in topic
