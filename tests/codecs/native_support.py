"""Helpers and hypothesis strategies shared by the native codec tests (no tests here).

The value ranges below are written from docs/protocol.md (the key tables), not from
the codec's Struct annotations, so the tests check the codec against the spec.
"""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import strategies as st

from warren.codecs.native import (
    Ack,
    Bind,
    Connect,
    Connected,
    Credit,
    Deliver,
    Disconnect,
    Error,
    Event,
    Message,
    Nack,
    NativeConnection,
    Ping,
    Pong,
    Publish,
    Result,
    Role,
    Subscribe,
    Unbind,
    Unsubscribe,
)

U16 = 0xFFFF
U32 = 0xFFFF_FFFF
MAX_ID = 2**53 - 1
CREDIT = 1_000_000  # initial credit of the connected pairs: flow control on, never short

CONNECT = Connect(client_name="pair", initial_credit=CREDIT)
CONNECTED = Connected("session-1", "pair", "#inbox/pair/", 1 << 20, 60)


# -- connections ---------------------------------------------------------------------


def connected_pair(
    connect: Connect = CONNECT, connected: Connected = CONNECTED
) -> tuple[NativeConnection, NativeConnection]:
    """A client and a server that have exchanged CONNECT and CONNECTED."""
    client = NativeConnection(Role.CLIENT)
    server = NativeConnection(Role.SERVER)
    assert server.receive(client.send(connect)) == [connect]
    assert client.receive(server.send(connected)) == [connected]
    return client, server


def connected_server(connect: Connect = CONNECT) -> NativeConnection:
    """A server that has received CONNECT and sent CONNECTED."""
    return connected_pair(connect)[1]


def connected_client(connect: Connect = CONNECT) -> NativeConnection:
    """A client that has sent CONNECT and received CONNECTED."""
    return connected_pair(connect)[0]


def sender_for(role: Role) -> NativeConnection:
    """A connected connection in ``role``, ready to send."""
    client, server = connected_pair()
    return client if role is Role.CLIENT else server


def receiver_for(sender_role: Role) -> NativeConnection:
    """A fresh connected receiver for frames sent by ``sender_role``."""
    client, server = connected_pair()
    return server if sender_role is Role.CLIENT else client


def closes(event: Event) -> bool:
    """Whether the sender of ``event`` sends nothing after it."""
    return isinstance(event, Disconnect) or (isinstance(event, Error) and event.close)


Feeder = Callable[[NativeConnection, bytes], list[Event]]


def feed_whole(conn: NativeConnection, data: bytes) -> list[Event]:
    return conn.receive(data)


def feed_bytewise(conn: NativeConnection, data: bytes) -> list[Event]:
    out: list[Event] = []
    for i in range(len(data)):
        out += conn.receive(data[i : i + 1])
    return out


def feed_next_event(conn: NativeConnection, data: bytes) -> list[Event]:
    out: list[Event] = []
    for i in range(len(data)):
        conn.receive_data(data[i : i + 1])
        while (event := conn.next_event()) is not None:
            out.append(event)
    return out


FEEDERS: dict[str, Feeder] = {
    "whole": feed_whole,
    "bytewise": feed_bytewise,
    "next_event": feed_next_event,
}


# -- values --------------------------------------------------------------------------

u16 = st.integers(0, U16)
u32 = st.integers(0, U32)
ids = st.integers(0, MAX_ID)
codes = st.one_of(st.sampled_from([0, 100, 101, 102, 104, 200, 300, 499]), u16)
short_text = st.text(max_size=12)
names = st.text(min_size=1, max_size=12)


def _opt(strategy: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.none() | strategy


messages = st.builds(
    Message,
    topic=names,
    payload=st.binary(max_size=40),
    qos=st.integers(0, 2),
    retain=st.booleans(),
    content_type=_opt(short_text),
    correlation_data=_opt(st.binary(max_size=8)),
    response_topic=_opt(names),
    user_properties=st.lists(st.tuples(short_text, short_text), max_size=3).map(tuple),
    payload_format_utf8=st.booleans(),
    ttl_ms=_opt(ids),
    priority=_opt(st.integers(0, 255)),
    message_id=_opt(short_text),
    sender_id=_opt(short_text),
)
message_batches = st.lists(messages, min_size=1, max_size=5).map(tuple)


@st.composite
def _first_ids(draw: st.DrawFn, count: int) -> int | None:
    return draw(st.none() | st.integers(0, MAX_ID - count + 1))


@st.composite
def publishes(draw: st.DrawFn) -> Publish:
    batch = draw(message_batches)
    return Publish(batch, draw(_first_ids(len(batch))))


@st.composite
def delivers(draw: st.DrawFn) -> Deliver:
    batch = draw(message_batches)
    subscription_ids = draw(st.lists(u32, min_size=1, max_size=3).map(tuple))
    first_id = draw(_first_ids(len(batch)))
    redelivered = first_id is not None and draw(st.booleans())
    return Deliver(subscription_ids, batch, first_id, redelivered)


@st.composite
def _ranges(draw: st.DrawFn) -> tuple[tuple[int, int], ...]:
    pairs = draw(st.lists(st.tuples(ids, ids), min_size=1, max_size=4))
    return tuple((min(a, b), max(a, b)) for a, b in pairs)


sub_ids = st.integers(1, U32)
acks = st.builds(Ack, _ranges())
nacks = st.builds(Nack, _ranges(), codes, short_text, st.booleans())
errors = st.builds(Error, codes, short_text, st.booleans(), _opt(names))
disconnects = st.builds(Disconnect, codes, short_text)
subscribes = st.builds(Subscribe, u32, sub_ids, names)
unsubscribes = st.builds(Unsubscribe, u32, sub_ids, _opt(names))
results = st.builds(Result, u32, codes, short_text)
credits = st.builds(Credit, st.integers(1, U32))
binds = st.builds(
    Bind,
    u32,
    sub_ids,
    names,
    st.sampled_from(["exclusive", "non-exclusive"]),
    st.booleans(),
    st.booleans(),
    st.lists(names, max_size=3).map(tuple),
    st.booleans(),
    st.none() | u32,
)
unbinds = st.builds(Unbind, u32, sub_ids)
common = st.one_of(acks, nacks, st.just(Ping()), st.just(Pong()), errors, disconnects)

connects = st.builds(
    Connect,
    vpn=_opt(short_text),
    username=_opt(short_text),
    password=_opt(short_text),
    client_name=_opt(names),
    capabilities=st.lists(short_text, max_size=3).map(tuple),
    keepalive=u16,
    initial_credit=_opt(u32),
    max_frame_size=st.integers(1024, U32),
)
connecteds = st.builds(
    Connected,
    session_id=names,
    client_name=names,
    inbox_prefix=names,
    max_frame_size=st.integers(1024, U32),
    keepalive=u16,
    capabilities=st.lists(short_text, max_size=3).map(tuple),
)


def events_from(role: Role) -> st.SearchStrategy[Event]:
    """Any frame ``role`` may send once connected (with flow control on)."""
    if role is Role.CLIENT:
        own = st.one_of(publishes(), subscribes, unsubscribes, credits, binds, unbinds)
    else:
        own = st.one_of(delivers(), results)
    return st.one_of(own, own, common)  # own frames twice as often
