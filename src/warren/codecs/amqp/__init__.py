"""Sans-I/O AMQP 0-9-1 codec: bytes in, events out; events in, bytes out.

Usage, on the broker side::

    conn = AMQPConnection(Role.SERVER)
    try:
        for event in conn.receive(data):
            match event:
                case ProtocolHeader():
                    transport.write(conn.send(ConnectionStart(server_properties=...)))
                case BasicPublish(channel=channel, routing_key=key, body=body): ...
                case Heartbeat(): ...
    except ProtocolHeaderMismatch as exc:   # 4.2.2: answer with our header, close
        transport.write(exc.response)
        transport.close()
    except AMQPRemoteError as exc:          # any other fault: a connection exception
        transport.write(conn.send(exc.close_method()))
    transport.write(conn.send(BasicDeliver("ctag", 1, channel=1, body=b"...")))

Events are the generated method dataclasses (one per method of the classes
connection, channel, access, exchange, queue, basic, confirm and tx, RabbitMQ's
extensions included; see :class:`Method`), :class:`ProtocolHeader` and
:class:`Heartbeat`. Content (basic.publish, return, deliver, get-ok) is one event
with its ``properties`` and ``body``. Errors come from :mod:`warren.errors` and
carry the AMQP reply code as ``reason_code``.
"""

from . import _methods
from ._connection import DEFAULT_MAX_BODY_SIZE, AMQPConnection, Event, Role, negotiate_frame_max
from ._constants import (
    FRAME_MAX_UNLIMITED,
    FRAME_MIN_SIZE,
    HARD_ERRORS,
    PROTOCOL_HEADER,
    ReplyCode,
)
from ._errors import AMQPRemoteError, ProtocolHeaderMismatch
from ._events import AMQP_0_9_1, HEARTBEAT, ContentMethod, Heartbeat, Method, ProtocolHeader
from ._fields import (
    FieldTable,
    FieldValue,
    Float32,
    Int8,
    Int16,
    Int64,
    Timestamp,
    UInt8,
    UInt16,
    UInt32,
    decode_table,
    encode_table,
)
from ._methods import *  # noqa: F403 (the method classes, listed in _methods.__all__)
from ._methods import METHODS
from ._properties import NO_PROPERTIES, BasicProperties, decode_properties, encode_properties

__all__ = [
    "AMQP_0_9_1",
    "DEFAULT_MAX_BODY_SIZE",
    "FRAME_MAX_UNLIMITED",
    "FRAME_MIN_SIZE",
    "HARD_ERRORS",
    "HEARTBEAT",
    "METHODS",
    "NO_PROPERTIES",
    "PROTOCOL_HEADER",
    "AMQPConnection",
    "AMQPRemoteError",
    "BasicProperties",
    "ContentMethod",
    "Event",
    "FieldTable",
    "FieldValue",
    "Float32",
    "Heartbeat",
    "Int8",
    "Int16",
    "Int64",
    "Method",
    "ProtocolHeader",
    "ProtocolHeaderMismatch",
    "ReplyCode",
    "Role",
    "Timestamp",
    "UInt8",
    "UInt16",
    "UInt32",
    "decode_properties",
    "decode_table",
    "encode_properties",
    "encode_table",
    "negotiate_frame_max",
]
__all__ += _methods.__all__
