"""Exact bytes, checked against pika, a real AMQP 0-9-1 peer (its ``spec`` and
``frame`` modules are an independent encoder and decoder).

Every method of the table: what we send is byte for byte what pika sends, what pika
sends decodes to the same event, and pika decodes what we send. A few frames are
also spelled out in hex, so that a reader sees the wire format.
"""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

import pika.data
import pika.frame
import pika.spec
import pytest
from amqp_codec_support import (
    FRAME_MAX,
    HEADER,
    SENT_BY,
    method_events,
    pair_for,
    pika_frames,
    pika_method,
    pika_properties,
    pika_tables,
    properties,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from warren.codecs.amqp import (
    HEARTBEAT,
    AMQPConnection,
    BasicAck,
    BasicDeliver,
    BasicProperties,
    BasicPublish,
    ConnectionTune,
    Method,
    ProtocolHeader,
    Role,
    encode_properties,
    encode_table,
)
from warren.codecs.amqp._fields import read_table

FAST = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize(("cls", "sender_role"), SENT_BY)
@FAST
@given(data=st.data())
def test_every_method_is_what_pika_sends(
    cls: type[Method], sender_role: Role, data: st.DataObject
) -> None:
    event = data.draw(method_events(cls, pika_compatible=True, max_body=40_000))
    sender, receiver = pair_for(sender_role)
    reference = pika_frames(event, FRAME_MAX)
    assert sender.send(event) == reference
    assert receiver.receive(reference) == [event]


# pika is a client: it cannot decode connection.update-secret, which only servers
# receive. That method's bytes are still compared with pika's encoding above.
PIKA_DECODABLE = [p for p in SENT_BY if p.values[0].NAME != "connection.update-secret"]


@pytest.mark.parametrize(("cls", "sender_role"), PIKA_DECODABLE)
@FAST
@given(data=st.data())
def test_pika_decodes_every_method_we_send(
    cls: type[Method], sender_role: Role, data: st.DataObject
) -> None:
    event = data.draw(method_events(cls, pika_compatible=True))
    sender, _ = pair_for(sender_role)
    wire = sender.send(event)
    used, frame = pika.frame.decode_frame(wire)
    assert isinstance(frame, pika.frame.Method)
    assert frame.channel_number == event.channel
    expected = pika_method(event)
    for name, _ in event.ARGUMENTS:
        pika_name = "global_qos" if name == "global_" else name
        assert getattr(frame.method, pika_name) == getattr(expected, pika_name), name
    if event.CONTENT:
        used_header, header = pika.frame.decode_frame(wire[used:])
        assert isinstance(header, pika.frame.Header)
        body: bytes = event.body  # type: ignore[attr-defined]
        assert header.body_size == len(body)
        props: BasicProperties = event.properties  # type: ignore[attr-defined]
        for name in BasicProperties.__slots__:
            assert getattr(header.properties, name) == getattr(props, name), name
        used += used_header
        received = b""
        while used < len(wire):
            size, piece = pika.frame.decode_frame(wire[used:])
            assert isinstance(piece, pika.frame.Body)
            received += piece.fragment
            used += size
        assert received == body
    assert used == len(wire)


@settings(max_examples=100, deadline=None)
@given(pika_tables)
def test_field_tables_are_what_pika_writes(table: dict[str, Any]) -> None:
    pieces: list[bytes] = []
    pika.data.encode_table(pieces, table)
    reference = b"".join(pieces)
    assert encode_table(table) == reference
    assert read_table(reference, 0, len(reference)) == (table, len(reference))
    assert pika.data.decode_table(reference, 0) == (table, len(reference))


@settings(max_examples=100, deadline=None)
@given(properties(pika_compatible=True))
def test_properties_are_what_pika_writes(props: BasicProperties) -> None:
    reference = pika.frame.Header(1, 0, pika_properties(props)).marshal()
    assert encode_properties(props) == reference[19:-1]  # after class, weight, body size


def test_body_frames_are_cut_like_pika_cuts_them() -> None:
    """frame-max 4096: 4088 body bytes per frame, the last one shorter."""
    server, client = pair_for(Role.SERVER, 4096)
    event = BasicDeliver("ctag", 7, channel=3, body=bytes(range(256)) * 40)  # 10240 bytes
    wire = server.send(event)
    assert wire == pika_frames(event, 4096)
    sizes = []
    off = 0
    while off < len(wire):
        size = int.from_bytes(wire[off + 3 : off + 7], "big")
        sizes.append((wire[off], size))
        off += size + 8
    assert sizes == [(1, 20), (2, 14), (3, 4088), (3, 4088), (3, 2064)]
    assert client.receive(wire) == [event]


# -- a few frames in hex -------------------------------------------------------------------


def test_protocol_header_and_heartbeat() -> None:
    client = AMQPConnection(Role.CLIENT)
    assert client.send(ProtocolHeader()) == HEADER == pika.frame.ProtocolHeader().marshal()
    assert client.send(HEARTBEAT) == bytes.fromhex("08 0000 00000000 ce")
    assert client.send(HEARTBEAT) == pika.frame.Heartbeat().marshal()


def test_basic_publish_with_properties_in_hex() -> None:
    client, _ = pair_for(Role.CLIENT)
    event = BasicPublish(
        exchange="amq.topic",
        routing_key="a.b",
        mandatory=True,
        channel=1,
        properties=BasicProperties(content_type="text/plain", delivery_mode=2),
        body=b"hi",
    )
    expected = bytes.fromhex(
        # method frame, channel 1, 21 bytes: class 60 method 40, ticket 0,
        # "amq.topic", "a.b", bits 0b01 (mandatory)
        "01 0001 00000015 003c 0028 0000 09 616d712e746f706963 03 612e62 01 ce"
        # header frame, 26 bytes: class 60, weight 0, body size 2,
        # flags 0x9000 (content-type, delivery-mode), "text/plain", 2
        "02 0001 0000001a 003c 0000 0000000000000002 9000 0a 746578742f706c61696e 02 ce"
        # body frame, 2 bytes
        "03 0001 00000002 6869 ce"
    )
    assert client.send(event) == expected == pika_frames(event)


def test_basic_ack_and_connection_tune_in_hex() -> None:
    client, server = pair_for(Role.CLIENT)
    ack = BasicAck(delivery_tag=5, multiple=True, channel=2)
    assert client.send(ack) == bytes.fromhex("01 0002 0000000d 003c 0050 0000000000000005 01 ce")
    assert client.send(ack) == pika_frames(ack)
    tune = ConnectionTune(channel_max=2047, frame_max=131072, heartbeat=60)
    assert server.send(tune) == bytes.fromhex("01 0000 0000000c 000a 001e 07ff 00020000 003c ce")
    assert server.send(tune) == pika_frames(tune)


def test_typed_table_values_decode_from_pika() -> None:
    """pika writes dates as T, big ints as l and decimals as D; we read them back."""
    table = {
        "when": datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
        "big": 2**40,
        "price": Decimal("12.34"),
        "nested": {"list": [1, "two", b"three", None, True]},
    }
    pieces: list[bytes] = []
    pika.data.encode_table(pieces, table)
    reference = b"".join(pieces)
    decoded, _ = read_table(reference, 0, len(reference))
    assert decoded == {
        "when": 1704164645,
        "big": 2**40,
        "price": Decimal("12.34"),
        "nested": {"list": [1, "two", b"three", None, True]},
    }
    assert encode_table(decoded) == reference  # Timestamp, Int64 keep their letters
