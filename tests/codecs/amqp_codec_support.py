"""Helpers and hypothesis strategies shared by the AMQP 0-9-1 codec tests.

Method strategies are generated from each class's ``ARGUMENTS`` (the method table),
with value ranges written from the spec's domain types (4.2.5), so every method of
the table is covered without a list to keep up to date. pika (its ``spec`` and
``frame`` modules) is the independent reference encoder: a real peer's bytes.
Only the exact-bytes tests import it.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import strategies as st

from warren.codecs.amqp import METHODS as ALL_METHODS
from warren.codecs.amqp import (
    NO_PROPERTIES,
    AMQPConnection,
    BasicProperties,
    ConnectionTune,
    ConnectionTuneOk,
    Event,
    Float32,
    Int8,
    Int16,
    Int64,
    Method,
    ProtocolHeader,
    Role,
    Timestamp,
    UInt8,
    UInt16,
    UInt32,
)

HEADER = b"AMQP\x00\x00\x09\x01"
FRAME_MAX = 131_072  # what pika asks for and RabbitMQ offers

CLIENT_METHODS = tuple(m for m in ALL_METHODS if m.FROM_CLIENT)
SERVER_METHODS = tuple(m for m in ALL_METHODS if m.FROM_SERVER)


# (method, role that sends it) for pytest.mark.parametrize: methods either peer
# sends appear twice.
SENT_BY = [
    pytest.param(m, role, id=f"{m.NAME}-from-{role.value}")
    for m in ALL_METHODS
    for role in (Role.CLIENT, Role.SERVER)
    if (m.FROM_CLIENT if role is Role.CLIENT else m.FROM_SERVER)
]


def methods_from(role: Role) -> tuple[type[Method], ...]:
    return CLIENT_METHODS if role is Role.CLIENT else SERVER_METHODS


# -- connections ------------------------------------------------------------------


def new_server(**kwargs: Any) -> AMQPConnection:
    """A server that has received the protocol header (and nothing else)."""
    server = AMQPConnection(Role.SERVER, **kwargs)
    assert server.receive(HEADER) == [ProtocolHeader()]
    return server


def new_client() -> AMQPConnection:
    """A client that has sent the protocol header (and nothing else)."""
    client = AMQPConnection(Role.CLIENT)
    assert client.send(ProtocolHeader()) == HEADER
    return client


def tuned_pair(frame_max: int = FRAME_MAX) -> tuple[AMQPConnection, AMQPConnection]:
    """A client and a server that have agreed on ``frame_max`` (tune, tune-ok)."""
    client = AMQPConnection(Role.CLIENT)
    server = AMQPConnection(Role.SERVER)
    server.receive(client.send(ProtocolHeader()))
    client.receive(server.send(ConnectionTune(2047, frame_max, 60)))
    server.receive(client.send(ConnectionTuneOk(2047, frame_max, 60)))
    assert client.frame_max == server.frame_max == max(frame_max, 4096)
    return client, server


def pair_for(sender: Role, frame_max: int = FRAME_MAX) -> tuple[AMQPConnection, AMQPConnection]:
    """(sending end, receiving end), tuned, for events sent by ``sender``."""
    client, server = tuned_pair(frame_max)
    return (client, server) if sender is Role.CLIENT else (server, client)


def receiver_factory(sender: Role, frame_max: int = FRAME_MAX) -> Callable[[], AMQPConnection]:
    return lambda: pair_for(sender, frame_max)[1]


# -- ways of feeding bytes ---------------------------------------------------------


def feed_whole(conn: AMQPConnection, data: bytes) -> list[Event]:
    return conn.receive(data)


def feed_bytewise(conn: AMQPConnection, data: bytes) -> list[Event]:
    out: list[Event] = []
    for i in range(len(data)):
        out += conn.receive(data[i : i + 1])
    return out


def feed_next_event(conn: AMQPConnection, data: bytes) -> list[Event]:
    conn.receive_data(data)
    out: list[Event] = []
    while (event := conn.next_event()) is not None:
        out.append(event)
    return out


def feed_next_event_bytewise(conn: AMQPConnection, data: bytes) -> list[Event]:
    out: list[Event] = []
    for i in range(len(data)):
        conn.receive_data(data[i : i + 1])
        while (event := conn.next_event()) is not None:
            out.append(event)
    return out


FEEDERS: dict[str, Callable[[AMQPConnection, bytes], list[Event]]] = {
    "whole": feed_whole,
    "bytewise": feed_bytewise,
    "next_event": feed_next_event,
    "next_event_bytewise": feed_next_event_bytewise,
}


# -- strategies: values ------------------------------------------------------------

# Text a shortstr method field can hold: UTF-8 without surrogates, at most 255 bytes.
short_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=16)
long_bytes = st.binary(max_size=40)

INTEGER_RANGES = {
    "octet": 0xFF,
    "short": 0xFFFF,
    "long": 0xFFFF_FFFF,
    "longlong": 0xFFFF_FFFF_FFFF_FFFF,
    "timestamp": 0xFFFF_FFFF_FFFF_FFFF,
}

decimals = st.builds(
    lambda raw, scale: Decimal(raw).scaleb(-scale),
    st.integers(-(2**31), 2**31 - 1),
    st.integers(0, 255),
)

# Every field value type, with the Python type that keeps its letter (see _fields).
scalar_values: st.SearchStrategy[Any] = st.one_of(
    st.booleans(),
    st.integers(-(2**31), 2**31 - 1),  # I
    st.builds(Int8, st.integers(-128, 127)),
    st.builds(UInt8, st.integers(0, 255)),
    st.builds(Int16, st.integers(-(2**15), 2**15 - 1)),
    st.builds(UInt16, st.integers(0, 0xFFFF)),
    st.builds(UInt32, st.integers(0, 0xFFFF_FFFF)),
    st.builds(Int64, st.integers(-(2**63), 2**63 - 1)),
    st.builds(Timestamp, st.integers(0, 2**64 - 1)),
    st.floats(allow_nan=False),
    st.builds(Float32, st.floats(width=32, allow_nan=False)),
    decimals,
    short_text,
    st.binary(max_size=12),
    st.none(),
)
field_values: st.SearchStrategy[Any] = st.recursive(
    scalar_values,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(short_text, children, max_size=4),
    ),
    max_leaves=12,
)
tables: st.SearchStrategy[dict[str, Any]] = st.dictionaries(short_text, field_values, max_size=5)

# Values pika encodes with the same letters as we do: pika has no float writer, and
# it normalises decimals (so these have no trailing zero digits).
pika_decimals = st.builds(
    lambda raw, scale: Decimal(raw).scaleb(-scale),
    st.integers(-(2**31), 2**31 - 1).filter(lambda raw: raw % 10 != 0),
    st.integers(0, 255),
)
pika_scalar_values: st.SearchStrategy[Any] = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    pika_decimals,
    short_text,
    st.binary(max_size=12),
    st.none(),
)
pika_tables: st.SearchStrategy[dict[str, Any]] = st.dictionaries(
    short_text,
    st.recursive(
        pika_scalar_values,
        lambda children: st.one_of(
            st.lists(children, max_size=3), st.dictionaries(short_text, children, max_size=3)
        ),
        max_leaves=8,
    ),
    max_size=4,
)

_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "bit": st.booleans(),
    "shortstr": short_text,
    "longstr": long_bytes,
    "table": tables,
}


def argument_values(amqp_type: str, *, pika_compatible: bool = False) -> st.SearchStrategy[Any]:
    if amqp_type in INTEGER_RANGES:
        return st.integers(0, INTEGER_RANGES[amqp_type])
    if amqp_type == "table" and pika_compatible:
        return pika_tables
    return _VALUES[amqp_type]


# Properties, one strategy per property of the spec's basic class.
content_strings = st.text(st.characters(blacklist_categories=("Cs",)), max_size=10)
_PROPERTY_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "content_type": content_strings,
    "content_encoding": content_strings,
    "headers": tables,
    "delivery_mode": st.integers(0, 255),
    "priority": st.integers(0, 255),
    "correlation_id": content_strings,
    "reply_to": content_strings,
    "expiration": content_strings,
    "message_id": content_strings,
    "timestamp": st.integers(0, 2**64 - 1),
    "type": content_strings,
    "user_id": content_strings,
    "app_id": content_strings,
    "cluster_id": content_strings,
}


@st.composite
def properties(draw: st.DrawFn, *, pika_compatible: bool = False) -> BasicProperties:
    if draw(st.booleans()):
        return NO_PROPERTIES
    values = {}
    for name, strategy in _PROPERTY_VALUES.items():
        if name == "headers" and pika_compatible:
            strategy = pika_tables
        if draw(st.booleans()):
            values[name] = draw(strategy)
    return BasicProperties(**values)


@st.composite
def method_events(
    draw: st.DrawFn,
    cls: type[Method],
    *,
    channel: int | None = None,
    pika_compatible: bool = False,
    max_body: int = 300,
) -> Method:
    """An instance of ``cls`` with arbitrary valid arguments (from cls.ARGUMENTS)."""
    kwargs = {
        name: draw(argument_values(amqp_type, pika_compatible=pika_compatible))
        for name, amqp_type in cls.ARGUMENTS
    }
    if cls.CLASS_ID == 10:
        kwargs["channel"] = 0
    else:
        kwargs["channel"] = channel if channel is not None else draw(st.integers(1, 0xFFFF))
    if cls.CONTENT:
        kwargs["properties"] = draw(properties(pika_compatible=pika_compatible))
        kwargs["body"] = draw(st.binary(max_size=max_body))
    return cls(**kwargs)  # type: ignore[call-arg]


def events_from(role: Role, **kwargs: Any) -> st.SearchStrategy[Method]:
    """Any method event ``role`` may send, that does not end the connection."""
    return st.sampled_from(
        [m for m in methods_from(role) if m.NAME != "connection.close-ok"]
    ).flatmap(lambda cls: method_events(cls, **kwargs))


# -- comparing values by type too ---------------------------------------------------


def typed(value: Any) -> Any:
    """``value`` with every type made part of it: Int8(1) and 1 and True differ."""
    if isinstance(value, dict):
        return (dict, tuple((k, typed(v)) for k, v in value.items()))
    if isinstance(value, list):
        return (list, tuple(typed(v) for v in value))
    if isinstance(value, Decimal):
        return (Decimal, value.as_tuple())
    if isinstance(value, Method):
        return (type(value), tuple(typed(getattr(value, f)) for f in value.__slots__))
    if isinstance(value, BasicProperties):
        return (BasicProperties, tuple(typed(getattr(value, f)) for f in value.__slots__))
    return (type(value), value)


# -- pika, the reference peer ---------------------------------------------------------


def pika_method(event: Method) -> Any:
    """The pika.spec method object equal to ``event``."""
    import pika.spec  # only the exact-bytes tests need pika

    class_name, method_name = event.NAME.split(".")
    pika_class = getattr(pika.spec, class_name.capitalize())
    pika_cls = getattr(pika_class, "".join(w.capitalize() for w in method_name.split("-")))
    return pika_cls(*(getattr(event, name) for name, _ in event.ARGUMENTS))


def pika_properties(properties: BasicProperties) -> Any:
    import pika.spec

    return pika.spec.BasicProperties(
        **{name: getattr(properties, name) for name in BasicProperties.__slots__}
    )


def pika_frames(event: Method, frame_max: int = FRAME_MAX) -> bytes:
    """The bytes pika writes for ``event``, content cut to ``frame_max`` as pika cuts it."""
    import pika.frame

    out = [pika.frame.Method(event.channel, pika_method(event)).marshal()]
    if event.CONTENT:
        body: bytes = event.body  # type: ignore[attr-defined]
        props = pika_properties(event.properties)  # type: ignore[attr-defined]
        out.append(pika.frame.Header(event.channel, len(body), props).marshal())
        piece = frame_max - 8  # pika: frame_max - FRAME_HEADER_SIZE - FRAME_END_SIZE
        for at in range(0, len(body), piece):
            out.append(pika.frame.Body(event.channel, body[at : at + piece]).marshal())
    return b"".join(out)
