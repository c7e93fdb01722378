"""Field tables and content properties: every field type letter, with RabbitMQ's
letters where the spec's table differs, and lossless strings."""

from __future__ import annotations

import datetime
import struct
from decimal import Decimal
from typing import Any

import pytest
from amqp_codec_support import field_values, new_server, properties, tables, typed
from hypothesis import given, settings

from warren.codecs.amqp import (
    BasicProperties,
    BasicPublish,
    Float32,
    Int8,
    Int16,
    Int64,
    Role,
    Timestamp,
    UInt8,
    UInt16,
    UInt32,
    decode_properties,
    encode_properties,
    encode_table,
)
from warren.codecs.amqp._fields import read_table
from warren.errors import LocalProtocolError


def decode(table_bytes: bytes) -> dict[str, Any]:
    data = struct.pack(">I", len(table_bytes)) + table_bytes
    table, end = read_table(data, 0, len(data))
    assert end == len(data)
    return table


@settings(max_examples=150, deadline=None)
@given(tables)
def test_tables_round_trip_with_their_types(table: dict[str, Any]) -> None:
    data = encode_table(table)
    decoded, end = read_table(data, 0, len(data))
    assert end == len(data)
    assert typed(decoded) == typed(table)
    assert encode_table(decoded) == data


@settings(max_examples=200, deadline=None)
@given(field_values)
def test_arrays_round_trip(value: Any) -> None:
    assert typed(decode(encode_table({"v": [value]})[4:])) == typed({"v": [value]})


@pytest.mark.parametrize(
    ("wire", "value"),
    [
        (b"t\x01", True),
        (b"t\x00", False),
        (b"t\x07", True),  # any non-zero octet is true, as RabbitMQ reads it
        (b"b\xff", Int8(-1)),
        (b"B\xff", UInt8(255)),
        (b"s\xff\xfe", Int16(-2)),  # RabbitMQ/Qpid: s is int16 (the spec: a shortstr)
        (b"u\xff\xfe", UInt16(65534)),
        (b"U\xff\xfe", Int16(-2)),  # the spec's int16 letter, read as pika reads it
        (b"I\xff\xff\xff\xfe", -2),
        (b"i\xff\xff\xff\xfe", UInt32(2**32 - 2)),
        (b"l\xff\xff\xff\xff\xff\xff\xff\xfe", Int64(-2)),  # signed (errata; spec: u64)
        (b"L\xff\xff\xff\xff\xff\xff\xff\xfe", Int64(-2)),  # signed, as RabbitMQ reads it
        (b"f\x3f\xc0\x00\x00", Float32(1.5)),
        (b"d\x3f\xf8\x00\x00\x00\x00\x00\x00", 1.5),
        (b"D\x02\xff\xff\xff\x85", Decimal("-1.23")),  # signed, as pika writes it
        (b"S\x00\x00\x00\x02hi", "hi"),
        (b"x\x00\x00\x00\x02\x00\xff", b"\x00\xff"),
        (b"A\x00\x00\x00\x03t\x01V", ...),
        (b"T\x00\x00\x00\x00\x65\x93\x7e\x25", Timestamp(1704164901)),
        (b"F\x00\x00\x00\x03\x01kV", ...),
        (b"V", None),
    ],
)
def test_each_field_type(wire: bytes, value: Any) -> None:
    if value is ...:
        value = [True, None] if wire[:1] == b"A" else {"k": None}
    decoded = decode(b"\x01v" + wire)
    assert typed(decoded) == typed({"v": value})
    if wire[:1] not in (b"U", b"L") and wire != b"t\x07":
        assert encode_table(decoded) == struct.pack(">I", len(wire) + 2) + b"\x01v" + wire


def test_spec_only_letters_are_sent_as_rabbitmq_letters() -> None:
    """U and L are read, but written back as s and l, as RabbitMQ writes them."""
    assert encode_table(decode(b"\x01vU\x00\x01"))[4:] == b"\x01vs\x00\x01"
    assert (
        encode_table(decode(b"\x01vL" + bytes(7) + b"\x01"))[4:] == b"\x01vl" + bytes(7) + b"\x01"
    )


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (2**31 - 1, b"I\x7f\xff\xff\xff"),  # plain ints: I while they fit, as pika does
        (2**31, b"l\x00\x00\x00\x00\x80\x00\x00\x00"),
        (-(2**31) - 1, b"l\xff\xff\xff\xff\x7f\xff\xff\xff"),
        (Decimal("1E+2"), b"D\x00\x00\x00\x00\x64"),  # no negative scale on the wire
        (Decimal("0.00"), b"D\x02\x00\x00\x00\x00"),  # the scale is kept
        (
            datetime.datetime(2024, 1, 2, 3, 8, 21, tzinfo=datetime.UTC),
            b"T" + bytes((0, 0, 0, 0, 0x65, 0x93, 0x7E, 0x25)),
        ),
        (
            datetime.datetime(2024, 1, 2, 3, 8, 21),
            b"T" + bytes((0, 0, 0, 0, 0x65, 0x93, 0x7E, 0x25)),
        ),
        ((1, "a"), b"A\x00\x00\x00\x0bI\x00\x00\x00\x01S\x00\x00\x00\x01a"),
        (bytearray(b"ab"), b"x\x00\x00\x00\x02ab"),
        ("\udcff", b"S\x00\x00\x00\x01\xff"),  # a kept octet (surrogateescape)
    ],
)
def test_python_values_are_written_as(value: Any, wire: bytes) -> None:
    assert encode_table({"v": value})[4:] == b"\x01v" + wire


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ({1, 2}, "cannot hold a set"),
        (2**63, "out of range"),
        (Int8(128), "out of range"),
        (UInt32(-1), "out of range"),
        (Timestamp(2**64), "out of range"),
        (Float32(1e300), "out of range"),
        (Decimal("NaN"), "not finite"),
        (Decimal("1E+20"), "does not fit"),
        (Decimal(2**31), "does not fit"),
        (Decimal("1E-256"), "does not fit"),
        ("\ud800", "out of range"),  # a lone surrogate no octet stands for
    ],
)
def test_values_that_cannot_be_written(value: Any, match: str) -> None:
    with pytest.raises(LocalProtocolError, match=match):
        encode_table({"v": value})


def test_field_names_are_short_strings() -> None:
    with pytest.raises(LocalProtocolError, match="exceeds 255"):
        encode_table({"k" * 256: 1})
    with pytest.raises(LocalProtocolError, match="names are strings"):
        encode_table({1: 1})  # type: ignore[dict-item]


def test_int_subclasses_and_mappings_are_written_by_kind() -> None:
    import enum
    from collections import OrderedDict

    class Color(enum.IntEnum):
        RED = 1

    class Tag(Int8):
        pass

    assert encode_table({"v": Color.RED})[4:] == b"\x01vI\x00\x00\x00\x01"
    assert encode_table({"v": Tag(1)})[4:] == b"\x01vb\x01"
    assert encode_table({"v": OrderedDict(a=True)}) == encode_table({"v": {"a": True}})


def test_non_utf8_long_strings_pass_through_unchanged() -> None:
    """A longstr may hold any octets (4.2.5.3): they come back as they went."""
    wire = b"\x01vS\x00\x00\x00\x03a\xffb"
    decoded = decode(wire)
    assert decoded == {"v": "a\udcffb"}
    assert encode_table(decoded)[4:] == wire
    assert decode(b"\x02\xff\xfeV") == {"\udcff\udcfe": None}


# -- properties -----------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(properties())
def test_properties_round_trip(props: BasicProperties) -> None:
    data = encode_properties(props)
    assert typed(decode_properties(data, 0, len(data))) == typed(props)


def test_all_fourteen_properties_in_flag_order() -> None:
    props = BasicProperties(
        content_type="a",
        content_encoding="b",
        headers={},
        delivery_mode=2,
        priority=9,
        correlation_id="c",
        reply_to="d",
        expiration="60000",
        message_id="e",
        timestamp=7,
        type="f",
        user_id="g",
        app_id="h",
        cluster_id="i",
    )
    data = encode_properties(props)
    assert data == (
        b"\xff\xfc\x01a\x01b\x00\x00\x00\x00\x02\x09\x01c\x01d\x0560000\x01e"
        b"\x00\x00\x00\x00\x00\x00\x00\x07\x01f\x01g\x01h\x01i"
    )
    assert decode_properties(data, 0, len(data)) == props


def test_binary_property_strings_pass_through() -> None:
    """Clients put binary ids in correlation_id; RabbitMQ passes them on unchanged."""
    raw = bytes(range(0x80, 0x90))
    data = b"\x04\x00" + bytes((len(raw),)) + raw
    props = decode_properties(data, 0, len(data))
    assert props.correlation_id == raw.decode("utf-8", "surrogateescape")
    assert encode_properties(props) == data
    server = new_server()
    frames = (
        b"\x01\x00\x01\x00\x00\x00\x0a\x00\x3c\x00\x28\x00\x00\x00\x01q\x00\xce"
        + b"\x02\x00\x01"
        + struct.pack(">I", 12 + len(data))
        + struct.pack(">HHQ", 60, 0, 0)
        + data
        + b"\xce"
    )
    (event,) = server.receive(frames)
    assert isinstance(event, BasicPublish)
    assert event.properties == props
    assert Role.SERVER is server.role
