"""The frame layer: preamble, frame header, and MessagePack bodies <-> events.

Wire layout (docs/protocol.md, "Framing")::

    preamble (client, once, before CONNECT)   'W' 'R' 'N' version
    every frame                               type:u8  flags:u8  length:u32be  body

A body is one MessagePack map (an empty body means the empty map) decoded straight
into the event Struct of its frame type by a msgspec Decoder made once per type.
Only the connection layer calls into this module; it never raises anything but
:class:`RemoteProtocolError` while decoding.
"""

from __future__ import annotations

import struct
from typing import Final

import msgspec

from warren.errors import RemoteProtocolError

from ._codes import ErrorCode
from ._events import (
    MAX_ID,
    Ack,
    Bind,
    Connect,
    Connected,
    Credit,
    Deliver,
    Disconnect,
    Error,
    Event,
    FrameType,
    Message,
    Nack,
    Ping,
    Pong,
    Publish,
    Result,
    Subscribe,
    Unbind,
    Unsubscribe,
)

MAGIC: Final = b"WRN"
PREAMBLE_SIZE: Final = 4
SUPPORTED_VERSIONS: Final = (1,)
"""Protocol versions this codec speaks, oldest first."""

HEADER: Final = struct.Struct(">BBI")
HEADER_SIZE: Final = HEADER.size  # 6
MAX_FRAME_SIZE: Final = HEADER_SIZE + 0xFFFF_FFFF
"""The largest frame the 32-bit length can describe."""

_EMPTY_MAP: Final = b"\x80"

EVENT_CLASSES: Final[dict[FrameType, type[Event]]] = {
    FrameType.CONNECT: Connect,
    FrameType.CONNECTED: Connected,
    FrameType.PUBLISH: Publish,
    FrameType.DELIVER: Deliver,
    FrameType.SUBSCRIBE: Subscribe,
    FrameType.UNSUBSCRIBE: Unsubscribe,
    FrameType.RESULT: Result,
    FrameType.CREDIT: Credit,
    FrameType.ACK: Ack,
    FrameType.NACK: Nack,
    FrameType.PING: Ping,
    FrameType.PONG: Pong,
    FrameType.ERROR: Error,
    FrameType.DISCONNECT: Disconnect,
    FrameType.BIND: Bind,
    FrameType.UNBIND: Unbind,
}

# One Decoder per frame type, made once: msgspec compiles the Struct's schema into
# the Decoder, so reusing it is what makes a PUBLISH batch cheap to decode.
_DECODERS: Final[dict[int, msgspec.msgpack.Decoder[Event]]] = {
    int(frame_type): msgspec.msgpack.Decoder(cls) for frame_type, cls in EVENT_CLASSES.items()
}
_ENCODER: Final = msgspec.msgpack.Encoder()


def malformed(text: str) -> RemoteProtocolError:
    return RemoteProtocolError(text, ErrorCode.MALFORMED_FRAME)


def preamble(version: int) -> bytes:
    """The four bytes a client sends before its CONNECT frame."""
    return MAGIC + bytes((version,))


def check_magic(src: bytes | bytearray | memoryview, off: int, n: int) -> None:
    """Raise MALFORMED_FRAME as soon as the received part of the magic is wrong."""
    got = bytes(src[off : min(n, off + len(MAGIC))])
    if not MAGIC.startswith(got):
        raise malformed(
            f"not the Warren native protocol: the connection starts with {got!r}, "
            f"not the preamble {MAGIC!r} + version"
        )


# -- checks beyond what the Struct types say ----------------------------------------
# Each returns what is wrong, or None; the caller raises the Local or Remote error.


def _ranges_problem(ranges: tuple[tuple[int, int], ...]) -> str | None:
    for first, last in ranges:
        if first > last:
            return f"id range [{first}, {last}] ends before it starts"
    return None


def _batch_problem(first_id: int | None, count: int) -> str | None:
    if not count:
        return "a batch needs at least one message"
    if first_id is not None and first_id + count - 1 > MAX_ID:
        return f"ids {first_id}..{first_id + count - 1} go beyond the largest id {MAX_ID}"
    return None


def problem(event: Event) -> str | None:
    """What is wrong with ``event`` that its Struct types cannot express, or None."""
    if isinstance(event, Publish):
        return _batch_problem(event.first_id, len(event.messages))
    if isinstance(event, Deliver):
        if not event.subscription_ids:
            return "a delivery needs at least one subscription id"
        return _batch_problem(event.first_id, len(event.messages))
    if isinstance(event, Ack | Nack):
        return _ranges_problem(event.ranges)
    return None


_CHECKED: Final = frozenset(
    {int(FrameType.PUBLISH), int(FrameType.DELIVER), int(FrameType.ACK), int(FrameType.NACK)}
)


def decode_body(frame_type: int, body: bytes | bytearray | memoryview) -> Event:
    """Decode the body of one frame whose type the caller has already accepted."""
    try:
        event = _DECODERS[frame_type].decode(body if len(body) else _EMPTY_MAP)
    except UnicodeDecodeError:
        raise malformed(f"{FrameType(frame_type).name} body: a string is not valid UTF-8") from None
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError too
        raise malformed(f"{FrameType(frame_type).name} body: {exc}") from None
    except RecursionError:
        # msgspec skips unknown keys' values recursively; absurd nesting ends here.
        raise malformed(f"{FrameType(frame_type).name} body nests too deeply") from None
    if frame_type in _CHECKED:
        text = problem(event)
        if text is not None:
            raise malformed(f"{FrameType(frame_type).name}: {text}")
    return event


def encode_frame(event: Event) -> bytes:
    """Header and body of ``event``; raises TypeError/ValueError for unencodable fields."""
    body = _ENCODER.encode(event)
    if body == _EMPTY_MAP:
        body = b""  # an empty body is the empty map: PING is six bytes
    return HEADER.pack(event.frame_type, 0, len(body)) + body


# -- the fan-out path: DELIVER built from messages encoded once -----------------------
# A message delivered to many subscribers is encoded once (encode_message) and its
# bytes are spliced into each subscriber's DELIVER frame: the body is then exactly what
# encoding a Deliver event would give (the tests compare), without re-encoding.

_S_KEY: Final = b"\xa1s"  # fixstr "s"
_M_KEY: Final = b"\xa1m"  # fixstr "m"
_ID_KEY: Final = b"\xa2id"  # fixstr "id"
_RD_TRUE: Final = b"\xa2rd\xc3"  # "rd": true


def encode_message(message: Message) -> bytes:
    """The MessagePack map of one message, as it appears in a PUBLISH or DELIVER batch."""
    return _ENCODER.encode(message)


def _array_header(count: int) -> bytes:
    if count < 16:
        return bytes((0x90 | count,))
    if count <= 0xFFFF:
        return b"\xdc" + count.to_bytes(2, "big")
    return b"\xdd" + count.to_bytes(4, "big")


def encode_deliver(
    subscription_ids: tuple[int, ...],
    encoded: list[bytes],
    first_id: int | None,
    redelivered: bool = False,
) -> bytes:
    """A whole DELIVER frame from pre-encoded messages (see :func:`encode_message`)."""
    parts = [
        bytes((0x82 + (first_id is not None) + redelivered,)),
        _S_KEY,
        _ENCODER.encode(subscription_ids),
        _M_KEY,
        _array_header(len(encoded)),
        *encoded,
    ]
    if first_id is not None:
        parts += (_ID_KEY, _ENCODER.encode(first_id))
    if redelivered:
        parts.append(_RD_TRUE)
    body = b"".join(parts)
    return HEADER.pack(FrameType.DELIVER, 0, len(body)) + body


def deliver_size_bound(id_count: int, encoded_bytes: int) -> int:
    """An upper bound of the size of a DELIVER frame (header included) carrying
    ``id_count`` subscription ids and messages of ``encoded_bytes`` in all."""
    # header 6, map 1, keys 2 + 2 + 3, two array headers <= 5 each, first id <= 9,
    # redelivered 4, each id <= 5 bytes (uint32).
    return 6 + 1 + 7 + 10 + 9 + 4 + 5 * id_count + encoded_bytes
