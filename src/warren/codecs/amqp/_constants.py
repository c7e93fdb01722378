"""AMQP 0-9-1 wire constants: the protocol header, frame types and reply codes.

Section numbers refer to the AMQP 0-9-1 specification (amqp0-9-1.pdf); the
reply codes are its "constants" table, with RabbitMQ's use noted where it
differs.
"""

from __future__ import annotations

import enum
from typing import Final

PROTOCOL_HEADER: Final = b"AMQP\x00\x00\x09\x01"
"""The protocol header a client sends first and a server writes back when it
refuses another version (4.2.2)."""

FRAME_METHOD: Final = 1
FRAME_HEADER: Final = 2
FRAME_BODY: Final = 3
FRAME_HEARTBEAT: Final = 8
FRAME_END: Final = 0xCE  # every frame ends with this octet (4.2.3)

FRAME_HEADER_SIZE: Final = 7  # type octet, channel short, size long
FRAME_OVERHEAD: Final = 8  # header plus the frame-end octet

FRAME_MIN_SIZE: Final = 4096
"""The frame size both peers accept before connection.tune-ok, and the smallest
frame-max that may be negotiated (connection.tune, rule "minimum")."""

FRAME_MAX_UNLIMITED: Final = FRAME_OVERHEAD + 0xFFFF_FFFF
"""The largest frame the size field can describe: what frame-max 0 ("no limit") means."""

MAX_CHANNEL: Final = 0xFFFF

BASIC_CLASS_ID: Final = 60  # the only class with content in 0-9-1


class ReplyCode(enum.IntEnum):
    """Reply codes of connection.close, channel.close and basic.return (spec section 1.1)."""

    REPLY_SUCCESS = 200
    CONTENT_TOO_LARGE = 311  # soft: basic.return
    NO_ROUTE = 312  # soft: basic.return (mandatory)
    NO_CONSUMERS = 313  # soft: basic.return (immediate)
    CONNECTION_FORCED = 320  # hard
    INVALID_PATH = 402  # hard: unknown virtual host
    ACCESS_REFUSED = 403  # soft
    NOT_FOUND = 404  # soft
    RESOURCE_LOCKED = 405  # soft
    PRECONDITION_FAILED = 406  # soft
    FRAME_ERROR = 501  # hard: a frame that cannot be decoded
    SYNTAX_ERROR = 502  # hard: a frame with illegal field values
    COMMAND_INVALID = 503  # hard: a method that is not valid here
    CHANNEL_ERROR = 504  # hard: a channel that is not open, or channel 0 misused
    UNEXPECTED_FRAME = 505  # hard: a frame out of order (content frames)
    RESOURCE_ERROR = 506  # hard
    NOT_ALLOWED = 530  # hard
    NOT_IMPLEMENTED = 540  # hard
    INTERNAL_ERROR = 541  # hard


HARD_ERRORS: Final = frozenset({320, 402, 501, 502, 503, 504, 505, 506, 530, 540, 541})
"""Reply codes that close the connection (connection.close); the others close a
channel (channel.close) or are reported by basic.return."""
