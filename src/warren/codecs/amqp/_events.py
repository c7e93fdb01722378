"""The events that are not methods: the protocol header and heartbeats, and the
:class:`Method` base of the generated method classes (:mod:`._methods`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ._constants import PROTOCOL_HEADER
from ._properties import BasicProperties


class Method:
    """Base of every AMQP method event; the subclasses are generated from the spec.

    Each subclass is a frozen dataclass whose fields are the method's arguments in
    wire order, plus ``channel`` (keyword-only; connection methods default to 0)
    and, for content-carrying methods, ``properties`` and ``body``. The class
    attributes describe the method as the spec does.
    """

    __slots__ = ()

    CLASS_ID: ClassVar[int]
    METHOD_ID: ClassVar[int]
    NAME: ClassVar[str]
    """``class.method`` as the spec spells it, e.g. ``basic.get-ok``."""
    SYNCHRONOUS: ClassVar[bool]
    """Whether the method expects a reply."""
    CONTENT: ClassVar[bool]
    """Whether the method carries content (a content header and body frames follow)."""
    FROM_CLIENT: ClassVar[bool]
    FROM_SERVER: ClassVar[bool]
    ARGUMENTS: ClassVar[tuple[tuple[str, str], ...]]
    """(field name, AMQP type) of each argument in wire order; types are octet,
    short, long, longlong, timestamp, bit, shortstr, longstr and table."""

    channel: int


class ContentMethod(Method):
    """Base of the four methods that carry content: basic.publish, return, deliver
    and get-ok. Their content is assembled from the content header and body frames
    that follow the method frame, and cut into them again when sent."""

    __slots__ = ()

    properties: BasicProperties
    body: bytes


@dataclass(frozen=True, slots=True)
class ProtocolHeader:
    """The protocol header (4.2.2): a client sends it first; a server receives it.

    The server answers a valid one with connection.start; an invalid one raises
    :class:`ProtocolHeaderMismatch` instead of producing this event.
    """

    major: int = 0
    minor: int = 9
    revision: int = 1

    def to_bytes(self) -> bytes:
        """The eight octets on the wire."""
        return b"AMQP\x00" + bytes((self.major, self.minor, self.revision))


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """A heartbeat frame (4.2.7), always on channel 0."""

    channel: ClassVar[int] = 0


HEARTBEAT = Heartbeat()
AMQP_0_9_1 = ProtocolHeader()
assert AMQP_0_9_1.to_bytes() == PROTOCOL_HEADER
