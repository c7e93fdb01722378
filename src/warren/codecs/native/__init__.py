"""Sans-I/O codec of Warren's native protocol: bytes in, events out; events in, bytes out.

The byte format is specified in docs/protocol.md. Usage, on the broker side::

    conn = NativeConnection(Role.SERVER)
    for event in conn.receive(data):       # raises RemoteProtocolError(reason_code)
        match event:
            case Connect(): ...
            case Publish(messages=messages): ...
    transport.write(conn.send(Connected(...)))   # raises LocalProtocolError

and on the client side::

    conn = NativeConnection(Role.CLIENT)
    transport.write(conn.send(Connect(vpn="default", username="u", password="p")))

A server fanning one message out to many subscribers encodes it once with
:func:`encode_message` and frames it per subscriber with
:meth:`NativeConnection.send_deliver`.

Events are frozen msgspec Structs, one per frame type; :class:`Message` is one
message in a PUBLISH or DELIVER batch. Errors come from :mod:`warren.errors` and
carry an :class:`ErrorCode` as ``reason_code``: send it back in an :class:`Error`
frame before closing.
"""

from ._codes import ErrorCode
from ._connection import MAX_CREDIT, NativeConnection
from ._events import (
    ACCESS_EXCLUSIVE,
    ACCESS_NON_EXCLUSIVE,
    DEFAULT_MAX_FRAME_SIZE,
    MAX_ID,
    MIN_FRAME_SIZE,
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
    make_reply,
)
from ._frames import (
    MAGIC,
    MAX_FRAME_SIZE,
    SUPPORTED_VERSIONS,
    deliver_size_bound,
    encode_message,
)
from ._state import Role

__all__ = [
    "ACCESS_EXCLUSIVE",
    "ACCESS_NON_EXCLUSIVE",
    "DEFAULT_MAX_FRAME_SIZE",
    "MAGIC",
    "MAX_CREDIT",
    "MAX_FRAME_SIZE",
    "MAX_ID",
    "MIN_FRAME_SIZE",
    "SUPPORTED_VERSIONS",
    "Ack",
    "Bind",
    "Connect",
    "Connected",
    "Credit",
    "Deliver",
    "Disconnect",
    "Error",
    "ErrorCode",
    "Event",
    "FrameType",
    "Message",
    "Nack",
    "NativeConnection",
    "Ping",
    "Pong",
    "Publish",
    "Result",
    "Role",
    "Subscribe",
    "Unbind",
    "Unsubscribe",
    "deliver_size_bound",
    "encode_message",
    "make_reply",
]
