"""The native protocol's frames, as plain data: one event class per frame type.

Every event is a frozen msgspec Struct (slotted, compared by value) whose fields are
the frame's body: the Struct *is* the wire schema. Field names are the Python
names; ``rename`` gives the MessagePack map key where it is shorter (the hot path:
messages, PUBLISH, DELIVER, CREDIT, ACK, NACK). Fields equal to their default are
left out of the map, and a missing key means the default (docs/protocol.md,
"Bodies"). Value constraints (``Meta``) are checked when a frame is decoded.

Field order and defaults are part of the public contract.
"""

from __future__ import annotations

import enum
from typing import Annotated, ClassVar, Final

from msgspec import Meta, Struct

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "MAX_ID",
    "MIN_FRAME_SIZE",
    "Ack",
    "Bind",
    "Connect",
    "Connected",
    "Credit",
    "Deliver",
    "Disconnect",
    "Error",
    "Event",
    "FrameType",
    "Message",
    "Nack",
    "Ping",
    "Pong",
    "Publish",
    "Result",
    "Subscribe",
    "Unbind",
    "Unsubscribe",
    "make_reply",
]

MAX_ID: Final = 2**53 - 1
"""The largest publish, delivery or message id: every JavaScript Number holds it."""

MIN_FRAME_SIZE: Final = 1024
"""The smallest frame size limit a peer may announce (header included)."""

DEFAULT_MAX_FRAME_SIZE: Final = 16 * 1024 * 1024
"""The frame size limit a CONNECT announces when it names none (16 MiB), and the
limit a connection enforces unless told otherwise."""

U8 = Annotated[int, Meta(ge=0, le=0xFF)]
U16 = Annotated[int, Meta(ge=0, le=0xFFFF)]
U32 = Annotated[int, Meta(ge=0, le=0xFFFF_FFFF)]
Id = Annotated[int, Meta(ge=0, le=MAX_ID)]
Name = Annotated[str, Meta(min_length=1)]
FrameLimit = Annotated[int, Meta(ge=MIN_FRAME_SIZE, le=0xFFFF_FFFF)]
IdRange = tuple[Id, Id]


class FrameType(enum.IntEnum):
    """Frame type codes: the first byte of every frame header."""

    CONNECT = 0x01
    CONNECTED = 0x02
    PUBLISH = 0x03
    DELIVER = 0x04
    SUBSCRIBE = 0x05
    UNSUBSCRIBE = 0x06
    RESULT = 0x07
    CREDIT = 0x08
    ACK = 0x09
    NACK = 0x0A
    PING = 0x0B
    PONG = 0x0C
    ERROR = 0x0D
    DISCONNECT = 0x0E
    BIND = 0x0F
    UNBIND = 0x10


class Message(
    Struct,
    frozen=True,
    omit_defaults=True,
    gc=False,  # holds only str/bytes/ints and tuples of them: never in a cycle
    rename={
        "topic": "t",
        "payload": "p",
        "qos": "q",
        "retain": "r",
        "content_type": "ct",
        "correlation_data": "cd",
        "response_topic": "rt",
        "user_properties": "up",
        "payload_format_utf8": "u8",
        "ttl_ms": "ttl",
        "priority": "pr",
        "message_id": "mid",
        "sender_id": "sid",
    },
):
    """One message, in PUBLISH and DELIVER: the fields of ``warren.core.Message``.

    The one difference is expiry: ``ttl_ms`` is the time to live left, in
    milliseconds, where the core keeps a monotonic deadline (``expires_at``); a wire
    cannot carry a local clock. ``qos`` is 0 for direct (at most once) messages and
    1 for persistent ones; 2 passes on an MQTT exactly-once publisher's request.
    """

    topic: Name
    payload: bytes = b""
    qos: Annotated[int, Meta(ge=0, le=2)] = 0
    retain: bool = False
    content_type: str | None = None
    correlation_data: bytes | None = None
    response_topic: str | None = None
    user_properties: tuple[tuple[str, str], ...] = ()
    payload_format_utf8: bool = False
    ttl_ms: Id | None = None
    priority: U8 | None = None
    message_id: str | None = None
    sender_id: str | None = None


class Event(Struct, frozen=True, omit_defaults=True, gc=False):
    """Base class of the frame events; ``frame_type`` says which frame it is."""

    frame_type: ClassVar[FrameType]


class Connect(Event, frozen=True):
    """CONNECT: the client's first frame, right after the protocol preamble.

    The protocol version travels in the preamble, not here (see
    ``NativeConnection.protocol_version``). ``vpn`` None means the listener's VPN;
    ``client_name`` None asks the server to assign one. ``initial_credit`` None
    turns flow control off (the server may deliver without limit); a number makes
    deliveries credit-based from the start. ``max_frame_size`` is the largest frame
    the client accepts.
    """

    frame_type: ClassVar[FrameType] = FrameType.CONNECT
    vpn: str | None = None
    username: str | None = None
    password: str | None = None
    client_name: Name | None = None
    capabilities: tuple[str, ...] = ()
    keepalive: U16 = 60
    initial_credit: U32 | None = None
    max_frame_size: FrameLimit = DEFAULT_MAX_FRAME_SIZE


class Connected(Event, frozen=True):
    """CONNECTED: the server accepts the connection (a refusal is an ERROR frame).

    ``client_name`` is the name the client asked for or the one assigned;
    ``inbox_prefix`` starts every topic of this client's reply inbox, delivered to
    it with subscription id 0 without a SUBSCRIBE; ``keepalive`` is the period the
    server enforces (seconds, 0 = none); ``max_frame_size`` the largest frame it
    accepts; ``capabilities`` the ones it offers among those the client asked for.
    """

    frame_type: ClassVar[FrameType] = FrameType.CONNECTED
    session_id: Name
    client_name: Name
    inbox_prefix: Name
    max_frame_size: FrameLimit
    keepalive: U16
    capabilities: tuple[str, ...] = ()


class Publish(Event, frozen=True, rename={"messages": "m", "first_id": "id"}):
    """PUBLISH: one or more messages from the client.

    ``first_id`` None: direct messages, never acknowledged. A number: persistent
    publishing, the messages get the publish ids ``first_id``, ``first_id + 1``...
    in order, and the server answers with ACK or NACK for each.
    """

    frame_type: ClassVar[FrameType] = FrameType.PUBLISH
    messages: Annotated[tuple[Message, ...], Meta(min_length=1)]
    first_id: Id | None = None


class Deliver(
    Event,
    frozen=True,
    rename={"subscription_ids": "s", "messages": "m", "first_id": "id", "redelivered": "rd"},
):
    """DELIVER: one or more messages to the client, each matching the same subscriptions.

    ``subscription_ids`` are the client's ids of the subscriptions the messages
    matched (0 is the reply inbox). ``first_id`` None: direct delivery. A number:
    guaranteed delivery, the messages get delivery ids ``first_id``... in order,
    which the client settles with ACK or NACK. ``redelivered``: the messages were
    delivered before (to this or another client) and not accepted.
    """

    frame_type: ClassVar[FrameType] = FrameType.DELIVER
    subscription_ids: Annotated[tuple[U32, ...], Meta(min_length=1)]
    messages: Annotated[tuple[Message, ...], Meta(min_length=1)]
    first_id: Id | None = None
    redelivered: bool = False


class Subscribe(Event, frozen=True):
    """SUBSCRIBE: add ``filter`` (native syntax) to subscription ``subscription_id``.

    The client chooses the ids. Several filters may share one subscription id (a
    receiver with several topic subscriptions); id 0 is the reply inbox and cannot
    be subscribed. The server answers with a RESULT carrying ``request_id``.
    """

    frame_type: ClassVar[FrameType] = FrameType.SUBSCRIBE
    request_id: U32
    subscription_id: Annotated[int, Meta(ge=1, le=0xFFFF_FFFF)]
    filter: Name


class Unsubscribe(Event, frozen=True):
    """UNSUBSCRIBE: remove ``filter`` from a subscription, or every filter if None."""

    frame_type: ClassVar[FrameType] = FrameType.UNSUBSCRIBE
    request_id: U32
    subscription_id: Annotated[int, Meta(ge=1, le=0xFFFF_FFFF)]
    filter: Name | None = None


class Result(Event, frozen=True):
    """RESULT: the server's answer to the request frame with ``request_id``."""

    frame_type: ClassVar[FrameType] = FrameType.RESULT
    request_id: U32
    code: U16 = 0
    text: str = ""


class Credit(Event, frozen=True, rename={"credit": "n"}):
    """CREDIT: the client may now be delivered ``credit`` more messages."""

    frame_type: ClassVar[FrameType] = FrameType.CREDIT
    credit: Annotated[int, Meta(ge=1, le=0xFFFF_FFFF)]


class Ack(Event, frozen=True, rename={"ranges": "r"}):
    """ACK: the publish ids (from the server) or delivery ids (from the client) in
    the inclusive ``(first, last)`` ranges were settled successfully."""

    frame_type: ClassVar[FrameType] = FrameType.ACK
    ranges: Annotated[tuple[IdRange, ...], Meta(min_length=1)]


class Nack(
    Event, frozen=True, rename={"ranges": "r", "code": "c", "text": "x", "reject": "rj"}
):
    """NACK: the ids in ``ranges`` failed; ``code`` and ``text`` say why.

    From a client settling guaranteed deliveries, ``reject`` False means FAILED (the
    server redelivers) and True means REJECTED (to the dead-message queue).
    """

    frame_type: ClassVar[FrameType] = FrameType.NACK
    ranges: Annotated[tuple[IdRange, ...], Meta(min_length=1)]
    code: U16 = 0
    text: str = ""
    reject: bool = False


ACCESS_EXCLUSIVE: Final = "exclusive"
ACCESS_NON_EXCLUSIVE: Final = "non-exclusive"


class Bind(Event, frozen=True):
    """BIND: consume (or browse) queue ``queue`` as flow ``subscription_id``.

    The flow's guaranteed deliveries carry ``subscription_id`` in DELIVER ``s``.
    ``create`` creates a missing queue with ``durable``, ``access``
    (``"exclusive"`` or ``"non-exclusive"``) and ``max_redelivery`` (None: no limit;
    0: never redelivered); a non-durable queue belongs to this connection and goes
    with it. ``topics`` are native filters added to the queue's topic subscriptions.
    ``browse`` delivers copies of the queue's messages without taking them. The
    server answers with a RESULT carrying ``request_id``.
    """

    frame_type: ClassVar[FrameType] = FrameType.BIND
    request_id: U32
    subscription_id: Annotated[int, Meta(ge=1, le=0xFFFF_FFFF)]
    queue: Name
    access: Annotated[str, Meta(pattern="^(exclusive|non-exclusive)$")] = ACCESS_EXCLUSIVE
    durable: bool = True
    create: bool = False
    topics: tuple[Name, ...] = ()
    browse: bool = False
    max_redelivery: U32 | None = None


class Unbind(Event, frozen=True):
    """UNBIND: end flow ``subscription_id``; its unsettled messages go back to the queue."""

    frame_type: ClassVar[FrameType] = FrameType.UNBIND
    request_id: U32
    subscription_id: Annotated[int, Meta(ge=1, le=0xFFFF_FFFF)]


class Ping(Event, frozen=True):
    """PING: either side asks for a PONG (keepalive, liveness)."""

    frame_type: ClassVar[FrameType] = FrameType.PING


class Pong(Event, frozen=True):
    """PONG: the answer to a PING."""

    frame_type: ClassVar[FrameType] = FrameType.PONG


class Error(Event, frozen=True):
    """ERROR: something went wrong; after one with ``close`` the sender closes.

    Before CONNECTED an ERROR is the server's refusal and always closes. ``topic``
    names the topic of a failed direct publish, when that is what failed.
    """

    frame_type: ClassVar[FrameType] = FrameType.ERROR
    code: U16
    text: str = ""
    close: bool = True
    topic: str | None = None


class Disconnect(Event, frozen=True):
    """DISCONNECT: the sender closes the connection and sends nothing more."""

    frame_type: ClassVar[FrameType] = FrameType.DISCONNECT
    code: U16 = 0
    text: str = ""


def make_reply(
    request: Message,
    payload: bytes,
    *,
    content_type: str | None = None,
    user_properties: tuple[tuple[str, str], ...] = (),
    payload_format_utf8: bool = False,
) -> Message:
    """The reply to ``request``: sent to its ``response_topic``, same correlation data.

    Raises :class:`ValueError` when the request has no response topic.
    """
    if request.response_topic is None:
        raise ValueError(f"message to {request.topic!r} is not a request: it has no reply-to")
    return Message(
        request.response_topic,
        payload,
        content_type=content_type,
        correlation_data=request.correlation_data,
        user_properties=user_properties,
        payload_format_utf8=payload_format_utf8,
    )
