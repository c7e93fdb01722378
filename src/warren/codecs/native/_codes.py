"""The native protocol's error codes (docs/protocol.md, "Error codes").

One table for every frame that carries a code: ERROR, DISCONNECT, RESULT and NACK.
The hundreds say who or what is at fault; 0 means success (a RESULT) or a normal
close (a DISCONNECT). :class:`RemoteProtocolError` and :class:`LocalProtocolError`
raised by this codec carry one of these as ``reason_code``.
"""

from __future__ import annotations

import enum


class ErrorCode(enum.IntEnum):
    """Error codes of the native protocol, version 1 (uint16 on the wire)."""

    OK = 0
    """Success (RESULT) or a normal close (DISCONNECT)."""

    # 1xx: the protocol itself. Codes 100-106 always close the connection.
    PROTOCOL_ERROR = 100
    """A valid frame that is not allowed now or from this side."""
    MALFORMED_FRAME = 101
    """A bad preamble, unknown frame type or flag, or a body that does not decode."""
    FRAME_TOO_LARGE = 102
    """A frame header announces more bytes than the receiver accepts."""
    UNSUPPORTED_VERSION = 103
    """The preamble asks for a protocol version the server does not speak."""
    CREDIT_EXCEEDED = 104
    """More messages were delivered than the receiver granted credit for."""
    KEEPALIVE_TIMEOUT = 105
    """Nothing arrived within the keepalive period."""
    NOT_SUPPORTED = 106
    """A feature that was not negotiated, or that this server does not offer."""

    # 2xx: connecting and permissions.
    NOT_AUTHORIZED = 200
    """The ACL denies this connect, publish or subscribe."""
    BAD_CREDENTIALS = 201
    """Unknown username or wrong password."""
    UNKNOWN_VPN = 202
    """The VPN named in CONNECT does not exist."""
    CLIENT_NAME_IN_USE = 203
    """Another connection of the VPN uses this client name."""
    INVALID_CLIENT_NAME = 204
    """The client name is empty, too long or otherwise unusable."""

    # 3xx: topics, subscriptions and messages.
    INVALID_FILTER = 300
    """A SUBSCRIBE filter is not valid native filter syntax."""
    INVALID_TOPIC = 301
    """A message topic is not a valid topic name."""
    MESSAGE_TOO_LARGE = 302
    """A message exceeds the VPN's message size limit."""
    UNKNOWN_SUBSCRIPTION = 303
    """UNSUBSCRIBE names a subscription id or filter that is not subscribed."""
    LIMIT_EXCEEDED = 304
    """A configured limit was hit (subscriptions, connections, rate, queue depth)."""
    UNKNOWN_QUEUE = 305
    """BIND names a queue that does not exist (and does not ask to create it)."""
    QUEUE_IN_USE = 306
    """BIND to another connection's non-durable queue, or to a queue held exclusively."""

    # 4xx: the server's state.
    SERVER_SHUTTING_DOWN = 400
    """The server is stopping; reconnect elsewhere or later."""
    SESSION_TAKEN_OVER = 401
    """A new connection with the same client name replaced this one."""
    ADMIN_DISCONNECT = 402
    """An administrator closed the connection."""
    SERVER_BUSY = 403
    """The server is overloaded; retry later."""
    INTERNAL_ERROR = 499
    """A bug or an unexpected failure in the server."""
