"""The public API: exported names, the method table, connection state (header, tune,
close-ok), what may be sent when, and the send_deliver fast path."""

from __future__ import annotations

import dataclasses

import pytest
from amqp_codec_support import HEADER, new_client, new_server, pair_for, tuned_pair
from hypothesis import given, settings
from hypothesis import strategies as st

import warren.codecs.amqp as amqp
from warren.codecs.amqp import (
    FRAME_MAX_UNLIMITED,
    FRAME_MIN_SIZE,
    HEARTBEAT,
    METHODS,
    NO_PROPERTIES,
    AMQPConnection,
    BasicAck,
    BasicDeliver,
    BasicGetOk,
    BasicNack,
    BasicProperties,
    BasicPublish,
    BasicQos,
    BasicReturn,
    ChannelOpen,
    ConfirmSelect,
    ConnectionBlocked,
    ConnectionClose,
    ConnectionCloseOk,
    ConnectionStart,
    ConnectionTune,
    ConnectionTuneOk,
    ConnectionUnblocked,
    ConnectionUpdateSecret,
    ContentMethod,
    ExchangeBind,
    ExchangeUnbind,
    Method,
    ProtocolHeader,
    QueueDeclare,
    Role,
    encode_properties,
    negotiate_frame_max,
)
from warren.errors import LocalProtocolError


def test_exported_names() -> None:
    for name in amqp.__all__:
        assert hasattr(amqp, name), name
    assert len(set(amqp.__all__)) == len(amqp.__all__)
    for cls in METHODS:
        assert cls.__name__ in amqp.__all__


def test_the_method_table() -> None:
    """All methods of connection, channel, exchange, queue, basic, confirm and tx,
    RabbitMQ's extensions included (ids from its amqp-rabbitmq-0.9.1.json)."""
    ids = {(m.CLASS_ID, m.METHOD_ID): m for m in METHODS}
    assert len(ids) == len(METHODS) == 66
    assert ids[60, 120] is BasicNack
    assert ids[85, 10] is ConfirmSelect
    assert ids[40, 30] is ExchangeBind
    assert ids[40, 40] is ExchangeUnbind
    assert ids[40, 51].NAME == "exchange.unbind-ok"  # 51, not 41: RabbitMQ's number
    assert ids[10, 60] is ConnectionBlocked
    assert ids[10, 61] is ConnectionUnblocked
    assert ids[10, 70] is ConnectionUpdateSecret
    assert {m.CLASS_ID for m in METHODS} == {10, 20, 30, 40, 50, 60, 85, 90}
    assert {m for m in METHODS if m.CONTENT} == {
        BasicPublish,
        BasicReturn,
        BasicDeliver,
        BasicGetOk,
    }
    assert all(issubclass(m, ContentMethod) == m.CONTENT for m in METHODS)
    assert BasicAck.FROM_CLIENT and BasicAck.FROM_SERVER  # publisher confirms
    assert BasicDeliver.FROM_SERVER and not BasicDeliver.FROM_CLIENT
    assert BasicQos.ARGUMENTS == (
        ("prefetch_size", "long"),
        ("prefetch_count", "short"),
        ("global_", "bit"),
    )


@pytest.mark.parametrize("cls", METHODS, ids=lambda m: m.NAME)
def test_method_classes_are_frozen_slotted_dataclasses(cls: type[Method]) -> None:
    fields = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    extra = ["properties", "body"] if cls.CONTENT else []
    assert fields == ["channel", *(name for name, _ in cls.ARGUMENTS), *extra]
    assert not hasattr(cls, "__dict__") or "__dict__" not in cls.__dict__
    channel = 0 if cls.CLASS_ID == 10 else 1
    required = {
        f.name: {"int": 0, "bool": False, "str": "", "bytes": b""}.get(str(f.type), {})
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    required["channel"] = channel
    event = cls(**required)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.channel = 2  # type: ignore[misc]
    assert event.channel == channel


# -- the connection's state ------------------------------------------------------------


def test_server_handshake_and_tune() -> None:
    client = AMQPConnection(Role.CLIENT)
    server = AMQPConnection(Role.SERVER)
    assert server.role is Role.SERVER
    with pytest.raises(LocalProtocolError, match="before the protocol header was received"):
        server.send(ConnectionStart())
    with pytest.raises(LocalProtocolError, match="before the protocol header was sent"):
        client.send(ConnectionStart)  # type: ignore[arg-type]
    assert server.receive(client.send(ProtocolHeader())) == [ProtocolHeader()]
    with pytest.raises(LocalProtocolError, match="already sent"):
        client.send(ProtocolHeader())
    with pytest.raises(LocalProtocolError, match="only to refuse"):
        server.send(ProtocolHeader())
    assert client.receive(server.send(ConnectionStart())) == [ConnectionStart()]
    assert server.frame_max == client.frame_max == FRAME_MIN_SIZE
    assert client.receive(server.send(ConnectionTune(0, 65536, 30))) == [
        ConnectionTune(0, 65536, 30)
    ]
    assert client.frame_max == FRAME_MIN_SIZE  # until tune-ok
    assert server.receive(client.send(ConnectionTuneOk(0, 32768, 30))) == [
        ConnectionTuneOk(0, 32768, 30)
    ]
    assert server.frame_max == client.frame_max == 32768


@pytest.mark.parametrize(
    ("offered", "accepted", "result"),
    [
        (131072, 131072, 131072),
        (131072, 65536, 65536),
        (131072, 0, 131072),  # 0: no limit from the client; the server's stands
        (0, 65536, 65536),
        (0, 0, FRAME_MAX_UNLIMITED),
        (131072, 100, FRAME_MIN_SIZE),  # never below frame-min-size
        (None, 8192, 8192),
    ],
)
def test_frame_max_negotiation(offered: int | None, accepted: int, result: int) -> None:
    assert negotiate_frame_max(offered, accepted) == result


def test_tune_ok_applies_to_the_frames_that_follow_it_at_once() -> None:
    client, server = AMQPConnection(Role.CLIENT), AMQPConnection(Role.SERVER)
    server.receive(client.send(ProtocolHeader()))
    client.receive(server.send(ConnectionTune(0, 65536, 0)))
    big = BasicPublish(routing_key="q", channel=1, body=b"x" * 10_000)
    wire = client.send(ConnectionTuneOk(0, 65536, 0)) + client.send(big)
    assert server.receive(wire) == [ConnectionTuneOk(0, 65536, 0), big]


def test_after_close_ok_nothing_more_is_sent_or_parsed() -> None:
    client, server = tuned_pair()
    assert client.receive(server.send(ConnectionClose(320, "shutdown"))) == [
        ConnectionClose(320, "shutdown")
    ]
    assert server.receive(client.send(ConnectionCloseOk())) == [ConnectionCloseOk()]
    with pytest.raises(LocalProtocolError, match=r"after connection.close-ok"):
        client.send(HEARTBEAT)
    assert server.receive(b"\x08\x00\x00") == []
    assert server.trailing_data == b"\x08\x00\x00"
    server.receive_data(b"\x00")
    assert server.next_event() is None


def test_what_each_role_may_not_send() -> None:
    client, server = tuned_pair()
    with pytest.raises(LocalProtocolError, match=r"a client does not send basic.deliver"):
        client.send(BasicDeliver("t", 1, channel=1))
    with pytest.raises(LocalProtocolError, match=r"a server does not send basic.publish"):
        server.send(BasicPublish(channel=1))
    with pytest.raises(LocalProtocolError, match="not an AMQP event"):
        server.send("hello")  # type: ignore[arg-type]


def test_channel_rules_on_send() -> None:
    client, _ = tuned_pair()
    with pytest.raises(LocalProtocolError, match="cannot be sent on channel 0") as exc:
        client.send(ChannelOpen(channel=0))
    assert exc.value.reason_code == 504
    with pytest.raises(LocalProtocolError, match="belongs on channel 0"):
        client.send(ConnectionCloseOk(channel=3))
    with pytest.raises(LocalProtocolError, match="not a number"):
        client.send(ChannelOpen(channel=65536))
    assert client.send(ChannelOpen(channel=65535))[1:3] == b"\xff\xff"


def test_values_that_do_not_fit_name_the_field() -> None:
    client, server = tuned_pair()
    with pytest.raises(LocalProtocolError, match=r"basic.publish routing_key=.* exceeds 255"):
        client.send(BasicPublish(routing_key="k" * 256, channel=1))
    with pytest.raises(LocalProtocolError, match=r"basic.ack delivery_tag=-1 is not an integer"):
        client.send(BasicAck(-1, channel=1))
    with pytest.raises(LocalProtocolError, match=r"basic.qos prefetch_count=65536"):
        client.send(BasicQos(prefetch_count=65536, channel=1))
    with pytest.raises(LocalProtocolError, match=r"queue=.*not a string of UTF-8"):
        client.send(QueueDeclare(queue="\udc80", channel=1))
    with pytest.raises(LocalProtocolError, match="cannot hold a set"):
        client.send(QueueDeclare(queue="q", arguments={"x": {1}}, channel=1))  # type: ignore[dict-item]
    with pytest.raises(LocalProtocolError, match="delivery_mode 256 is out of range"):
        client.send(BasicPublish(channel=1, properties=BasicProperties(delivery_mode=256)))
    # Nothing was sent: the connection goes on.
    assert server.receive(client.send(BasicAck(1, channel=1))) == [BasicAck(1, channel=1)]


def test_frames_larger_than_frame_max_are_not_sent() -> None:
    client, _ = pair_for(Role.CLIENT, 4096)
    big_table = {"k": "v" * 5000}
    with pytest.raises(LocalProtocolError, match="exceeds frame-max 4096"):
        client.send(QueueDeclare(queue="q", arguments=big_table, channel=1))
    with pytest.raises(LocalProtocolError, match=r"content header .* exceeds frame-max"):
        client.send(BasicPublish(channel=1, properties=BasicProperties(headers=big_table)))


# -- send_deliver ---------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(
    st.integers(1, 0xFFFF),
    st.text(max_size=20),
    st.integers(0, 2**64 - 1),
    st.booleans(),
    st.binary(max_size=9000),
    st.sampled_from(
        [NO_PROPERTIES, BasicProperties(content_type="a/b", delivery_mode=2, headers={"x": 1})]
    ),
)
def test_send_deliver_is_send_of_basic_deliver(
    channel: int,
    tag: str,
    delivery_tag: int,
    redelivered: bool,
    body: bytes,
    properties: BasicProperties,
) -> None:
    client, server = pair_for(Role.SERVER, 4096)[1], pair_for(Role.SERVER, 4096)[0]
    event = BasicDeliver(
        tag,
        delivery_tag,
        redelivered,
        "amq.topic",
        "a.b",
        channel=channel,
        properties=properties,
        body=body,
    )
    expected = server.send(event)
    args = (channel, tag, delivery_tag, "amq.topic", "a.b", body)
    assert server.send_deliver(*args, properties, redelivered=redelivered) == expected
    packed = encode_properties(properties)
    assert server.send_deliver(*args, packed, redelivered=redelivered) == expected
    assert client.receive(expected) == [event]


def test_send_deliver_checks_like_send() -> None:
    client, server = tuned_pair()
    with pytest.raises(LocalProtocolError, match=r"a client does not send basic.deliver"):
        client.send_deliver(1, "t", 1, "", "q", b"")
    with pytest.raises(LocalProtocolError, match="cannot be sent on channel 0"):
        server.send_deliver(0, "t", 1, "", "q", b"")
    with pytest.raises(LocalProtocolError, match=r"consumer_tag=.* exceeds 255"):
        server.send_deliver(1, "t" * 300, 1, "", "q", b"")
    with pytest.raises(LocalProtocolError, match="before the protocol header"):
        AMQPConnection(Role.SERVER).send_deliver(1, "t", 1, "", "q", b"")


def test_receive_accepts_bytearray_and_memoryview() -> None:
    client = new_client()
    wire = client.send(BasicAck(3, channel=1))
    assert new_server().receive(bytearray(wire)) == [BasicAck(3, channel=1)]
    assert new_server().receive(memoryview(wire)) == [BasicAck(3, channel=1)]
    server = AMQPConnection(Role.SERVER)
    server.receive_data(memoryview(HEADER + wire))
    assert server.next_event() == ProtocolHeader()
    assert server.next_event() == BasicAck(3, channel=1)


def test_max_body_size_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        AMQPConnection(Role.SERVER, max_body_size=-1)


def test_heartbeats_both_ways() -> None:
    client, server = tuned_pair()
    assert server.receive(client.send(HEARTBEAT)) == [HEARTBEAT]
    assert client.receive(server.send(HEARTBEAT)) == [HEARTBEAT]
