"""AMQP 0-9-1 data types (4.2.5): strings, field tables and field arrays.

Field values, by type octet, as RabbitMQ and pika read and write them — which is
not what the 0-9-1 specification's own table says (see RabbitMQ's "AMQP 0-9-1
errata"; every broker and client in use follows the RabbitMQ/Qpid letters):

====  ======================  ===========================  ==========================
type  wire                    decoded as                   spec 0-9-1 text says
====  ======================  ===========================  ==========================
t     octet, 0 = false        bool
b     int8                    :class:`Int8`
B     uint8                   :class:`UInt8`
s     int16                   :class:`Int16`               s = short string (unused)
u     uint16                  :class:`UInt16`
U     int16                   :class:`Int16` (sent as s)   U = int16 (RabbitMQ: none)
I     int32                   int
i     uint32                  :class:`UInt32`
l     int64                   :class:`Int64`               l = uint64
L     int64                   :class:`Int64` (sent as l)   L = int64
f     float32                 :class:`Float32`
d     float64                 float
D     scale octet, int32      decimal.Decimal              unsigned in the grammar
S     uint32 length, octets   str (see below)
x     uint32 length, octets   bytes                        not in the spec
A     uint32 length, values   list
T     uint64 seconds          :class:`Timestamp`
F     uint32 length, table    dict
V     nothing                 None                         not in the spec
====  ======================  ===========================  ==========================

* ``l`` and ``L`` are both signed 64-bit, as RabbitMQ decodes them (and pika
  sends ``l`` for ints beyond 32 bits); ``U`` is read as the spec's signed 16-bit
  (pika reads it so; RabbitMQ would refuse it). Neither ``U`` nor ``L`` is ever
  sent: they come back as ``s`` and ``l``, as RabbitMQ re-encodes them.
* ``D``'s value is signed, as the spec's prose and pika have it (the grammar says
  long-uint); RabbitMQ copies the 32 bits either way.
* ``S`` is a long string, which the spec allows to hold any octets: it decodes to
  ``str`` with undecodable bytes kept as lone surrogates (PEP 383
  ``surrogateescape``), and encodes back to the same octets. Field names and
  property strings are read the same way, so whatever a publisher sent is passed on
  unchanged, as RabbitMQ does. Method fields (names, routing keys, tags) are text
  and must be valid UTF-8.
* Encoding picks the letter pika and RabbitMQ use for plain Python values: str
  ``S``, bytes ``x``, bool ``t``, int ``I`` (``l`` beyond 32 bits), float ``d``,
  Decimal ``D``, datetime ``T``, None ``V``, mappings ``F``, lists and tuples ``A``;
  the wrapper classes keep the other letters, so a decoded table re-encodes to the
  same bytes (``U``, ``L`` and non-0/1 booleans aside).
"""

from __future__ import annotations

import calendar
import struct
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from struct import Struct
from typing import Final, TypeAlias

from warren.errors import LocalProtocolError

from ._constants import ReplyCode

U8: Final = Struct(">B")
U16: Final = Struct(">H")
U32: Final = Struct(">I")
U64: Final = Struct(">Q")

MAX_DEPTH: Final = 32
"""How deeply tables and arrays may nest in what we receive (real ones nest 2 or 3
deep: x-death is an array of tables of arrays); deeper is refused rather than risk
the interpreter's recursion limit."""


class _TypedInt(int):
    """An int that keeps the field value type it was received as."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({int(self)})"


class Int8(_TypedInt):
    """A field value sent as ``b`` (signed 8-bit)."""

    __slots__ = ()


class UInt8(_TypedInt):
    """A field value sent as ``B`` (unsigned 8-bit)."""

    __slots__ = ()


class Int16(_TypedInt):
    """A field value sent as ``s`` (signed 16-bit)."""

    __slots__ = ()


class UInt16(_TypedInt):
    """A field value sent as ``u`` (unsigned 16-bit)."""

    __slots__ = ()


class UInt32(_TypedInt):
    """A field value sent as ``i`` (unsigned 32-bit)."""

    __slots__ = ()


class Int64(_TypedInt):
    """A field value sent as ``l`` (signed 64-bit)."""

    __slots__ = ()


class Timestamp(_TypedInt):
    """A field value sent as ``T``: seconds since the Unix epoch, unsigned 64-bit."""

    __slots__ = ()


class Float32(float):
    """A field value sent as ``f`` (IEEE 754 single precision)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Float32({float(self)!r})"


FieldValue: TypeAlias = (
    bool
    | int
    | float
    | str
    | bytes
    | Decimal
    | datetime
    | Mapping[str, "FieldValue"]
    | Sequence["FieldValue"]
    | None
)
"""A value in a field table or array (see the module docstring for the wire types)."""

FieldTable: TypeAlias = Mapping[str, FieldValue]
"""A field table: decoded tables are plain dicts, in wire order."""


class MalformedError(ValueError):
    """Bytes that cannot be decoded; the connection reports it as a frame error."""


def arguments_end(pos: int, end: int) -> MalformedError:
    """The error for method arguments that do not end where their frame does."""
    if pos > end:
        return MalformedError("the arguments overrun the frame")
    return MalformedError(f"{end - pos} bytes after the arguments")


# -- strings ---------------------------------------------------------------------


def encode_shortstr(value: str) -> bytes:
    """A shortstr method field: a length octet and UTF-8 text (4.2.5.3)."""
    raw = value.encode()
    if len(raw) > 255:
        raise LocalProtocolError(
            f"short string of {len(raw)} bytes exceeds 255: {value[:40]!r}...",
            ReplyCode.SYNTAX_ERROR,
        )
    return U8.pack(len(raw)) + raw


def encode_content_shortstr(value: str, what: str) -> bytes:
    """A shortstr property or field name: kept octets come back (surrogateescape)."""
    try:
        raw = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as exc:
        raise LocalProtocolError(f"{what} is not encodable: {exc}", ReplyCode.SYNTAX_ERROR) from exc
    if len(raw) > 255:
        raise LocalProtocolError(
            f"{what} of {len(raw)} bytes exceeds 255 (a short string)", ReplyCode.SYNTAX_ERROR
        )
    return U8.pack(len(raw)) + raw


# -- field values: reading ----------------------------------------------------------

_Reader: TypeAlias = Callable[[bytes, int, int, int], tuple[FieldValue, int]]


def _fixed(layout: str, wrap: Callable[[int], FieldValue] | None) -> _Reader:
    unpack = Struct(layout).unpack_from
    size = Struct(layout).size

    if wrap is None:

        def read_plain(src: bytes, pos: int, end: int, depth: int) -> tuple[FieldValue, int]:
            value: FieldValue = unpack(src, pos)[0]
            return value, pos + size

        return read_plain

    def read(src: bytes, pos: int, end: int, depth: int) -> tuple[FieldValue, int]:
        return wrap(unpack(src, pos)[0]), pos + size

    return read


def _read_float32(src: bytes, pos: int, end: int, depth: int) -> tuple[FieldValue, int]:
    return Float32(_F32.unpack_from(src, pos)[0]), pos + 4


def _read_bool(src: bytes, pos: int, end: int, depth: int) -> tuple[FieldValue, int]:
    return src[pos] != 0, pos + 1


def _read_decimal(src: bytes, pos: int, end: int, depth: int) -> tuple[FieldValue, int]:
    scale, raw = _DECIMAL.unpack_from(src, pos)
    return Decimal(raw).scaleb(-scale), pos + 5


def _read_void(src: bytes, pos: int, end: int, depth: int) -> tuple[FieldValue, int]:
    return None, pos


def _span(src: bytes, pos: int, end: int, what: str) -> tuple[int, int]:
    """The (start, stop) of a uint32-length-prefixed value at ``pos``, within ``end``."""
    (length,) = U32.unpack_from(src, pos)
    start = pos + 4
    stop = start + length
    if stop > end:
        raise MalformedError(f"{what} of {length} bytes overruns its frame")
    return start, stop


def _read_longstr(src: bytes, pos: int, end: int, depth: int) -> tuple[FieldValue, int]:
    start, stop = _span(src, pos, end, "a long string")
    return src[start:stop].decode("utf-8", "surrogateescape"), stop


def _read_bytes(src: bytes, pos: int, end: int, depth: int) -> tuple[FieldValue, int]:
    start, stop = _span(src, pos, end, "a byte array")
    return src[start:stop], stop


def _read_table(src: bytes, pos: int, end: int, depth: int) -> tuple[FieldValue, int]:
    return read_table(src, pos, end, depth + 1)


def _read_array(src: bytes, pos: int, end: int, depth: int) -> tuple[FieldValue, int]:
    start, stop = _span(src, pos, end, "a field array")
    if depth >= MAX_DEPTH:
        raise MalformedError(f"field tables and arrays nest deeper than {MAX_DEPTH}")
    items: list[FieldValue] = []
    readers = _READERS
    pos = start
    while pos < stop:
        reader = readers.get(src[pos])
        if reader is None:
            raise MalformedError(f"unknown field value type {chr(src[pos])!r}")
        value, pos = reader(src, pos + 1, stop, depth + 1)
        items.append(value)
    if pos != stop:
        raise MalformedError("a field array ends inside a value")
    return items, stop


_F32: Final = Struct(">f")
_DECIMAL: Final = Struct(">Bi")

_READERS: Final[dict[int, _Reader]] = {
    ord("S"): _read_longstr,
    ord("I"): _fixed(">i", None),
    ord("t"): _read_bool,
    ord("l"): _fixed(">q", Int64),
    ord("F"): _read_table,
    ord("A"): _read_array,
    ord("T"): _fixed(">Q", Timestamp),
    ord("V"): _read_void,
    ord("x"): _read_bytes,
    ord("b"): _fixed(">b", Int8),
    ord("B"): _fixed(">B", UInt8),
    ord("s"): _fixed(">h", Int16),
    ord("u"): _fixed(">H", UInt16),
    ord("U"): _fixed(">h", Int16),  # the spec's int16 letter; pika reads it too
    ord("i"): _fixed(">I", UInt32),
    ord("L"): _fixed(">q", Int64),  # signed, as RabbitMQ reads it (errata)
    ord("f"): _read_float32,
    ord("d"): _fixed(">d", None),
    ord("D"): _read_decimal,
}


def read_table(src: bytes, pos: int, end: int, depth: int = 0) -> tuple[dict[str, FieldValue], int]:
    """The field table at ``pos`` (a uint32 length, then name/value pairs), within ``end``.

    Raises :class:`MalformedError` (or ``struct.error``/``IndexError`` when the
    bytes run out); a name that repeats keeps its last value.
    """
    start, stop = _span(src, pos, end, "a field table")
    table: dict[str, FieldValue] = {}
    if start == stop:
        return table, stop
    if depth >= MAX_DEPTH:
        raise MalformedError(f"field tables and arrays nest deeper than {MAX_DEPTH}")
    readers = _READERS
    pos = start
    while pos < stop:
        type_at = pos + 1 + src[pos]
        if type_at >= stop:
            raise MalformedError("a field table ends inside a field name")
        reader = readers.get(src[type_at])
        if reader is None:
            raise MalformedError(f"unknown field value type {chr(src[type_at])!r}")
        name = src[pos + 1 : type_at].decode("utf-8", "surrogateescape")
        table[name], pos = reader(src, type_at + 1, stop, depth)
    if pos != stop:
        raise MalformedError("a field table ends inside a value")
    return table, stop


# -- field values: writing ------------------------------------------------------------

_Writer: TypeAlias = Callable[[FieldValue, list[bytes]], None]

_I32_MIN: Final = -(2**31)
_I32_MAX: Final = 2**31 - 1


def _writer(type_octet: str, layout: str) -> _Writer:
    pack = Struct(">c" + layout).pack
    tag = type_octet.encode()

    def write(value: FieldValue, out: list[bytes]) -> None:
        out.append(pack(tag, value))

    return write


def _write_int(value: FieldValue, out: list[bytes]) -> None:
    assert isinstance(value, int)
    if _I32_MIN <= value <= _I32_MAX:
        out.append(_TAG_I.pack(b"I", value))
    else:
        out.append(_TAG_L.pack(b"l", value))  # as pika does beyond 32 bits


def _write_bool(value: FieldValue, out: list[bytes]) -> None:
    out.append(b"t\x01" if value else b"t\x00")


def _write_str(value: FieldValue, out: list[bytes]) -> None:
    assert isinstance(value, str)
    raw = value.encode("utf-8", "surrogateescape")
    out.append(_TAG_LEN.pack(b"S", len(raw)))
    out.append(raw)


def _write_bytes(value: FieldValue, out: list[bytes]) -> None:
    assert isinstance(value, bytes | bytearray | memoryview)
    raw = bytes(value)
    out.append(_TAG_LEN.pack(b"x", len(raw)))
    out.append(raw)


def _write_decimal(value: FieldValue, out: list[bytes]) -> None:
    assert isinstance(value, Decimal)
    sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        raise LocalProtocolError(f"decimal {value} is not finite", ReplyCode.SYNTAX_ERROR)
    raw = int("".join(map(str, digits)) or "0")
    if exponent > 0:  # no negative scale on the wire: fold it into the integer
        if raw and exponent > 10:
            raw = _I32_MAX + 1  # out of range whatever the digits
        else:
            raw *= 10**exponent
        exponent = 0
    if sign:
        raw = -raw
    if not (_I32_MIN <= raw <= _I32_MAX and -exponent <= 255):
        raise LocalProtocolError(
            f"decimal {value} does not fit a scale octet and a signed 32-bit integer",
            ReplyCode.SYNTAX_ERROR,
        )
    out.append(_TAG_DECIMAL.pack(b"D", -exponent, raw))


def _write_datetime(value: FieldValue, out: list[bytes]) -> None:
    assert isinstance(value, datetime)
    # Whole seconds in UTC; a naive datetime is taken as UTC, as pika does.
    out.append(_TAG_Q.pack(b"T", calendar.timegm(value.utctimetuple())))


def _write_none(value: FieldValue, out: list[bytes]) -> None:
    out.append(b"V")


def _write_table(value: FieldValue, out: list[bytes]) -> None:
    assert isinstance(value, Mapping)
    out.append(b"F")
    out.append(encode_table(value))


def _write_array(value: FieldValue, out: list[bytes]) -> None:
    assert isinstance(value, list | tuple)
    parts: list[bytes] = []
    for item in value:
        _write_value(item, parts)
    body = b"".join(parts)
    out.append(_TAG_LEN.pack(b"A", len(body)))
    out.append(body)


_TAG_I: Final = Struct(">ci")
_TAG_L: Final = Struct(">cq")
_TAG_Q: Final = Struct(">cQ")
_TAG_LEN: Final = Struct(">cI")
_TAG_DECIMAL: Final = Struct(">cBi")

# By exact class: the common case is one dict lookup.
_WRITERS: Final[dict[type, _Writer]] = {
    str: _write_str,
    int: _write_int,
    bool: _write_bool,
    bytes: _write_bytes,
    dict: _write_table,
    list: _write_array,
    type(None): _write_none,
    float: _writer("d", "d"),
    Decimal: _write_decimal,
    datetime: _write_datetime,
    tuple: _write_array,
    bytearray: _write_bytes,
    memoryview: _write_bytes,
    Int8: _writer("b", "b"),
    UInt8: _writer("B", "B"),
    Int16: _writer("s", "h"),
    UInt16: _writer("u", "H"),
    UInt32: _writer("i", "I"),
    Int64: _writer("l", "q"),
    Timestamp: _writer("T", "Q"),
    Float32: _writer("f", "f"),
}


def _writer_by_kind(value: object) -> _Writer:
    """The writer for a subclass of a supported type (an IntEnum, an OrderedDict...)."""
    # Most specific first: the typed wrappers and bool are subclasses of int.
    for cls in (*(c for c in _WRITERS if issubclass(c, _TypedInt | Float32)), bool):
        if isinstance(value, cls):
            return _WRITERS[cls]
    for cls, writer in _WRITERS.items():
        if isinstance(value, cls):
            return writer
    if isinstance(value, Mapping):
        return _write_table
    raise LocalProtocolError(
        f"a field table cannot hold a {type(value).__name__} value", ReplyCode.SYNTAX_ERROR
    )


def _write_value(value: FieldValue, out: list[bytes]) -> None:
    writer = _WRITERS.get(value.__class__)
    if writer is None:
        writer = _writer_by_kind(value)
    try:
        writer(value, out)
    except (struct.error, ArithmeticError, ValueError) as exc:
        raise LocalProtocolError(
            f"field value {value!r} is out of range for its type: {exc}", ReplyCode.SYNTAX_ERROR
        ) from exc


def decode_table(data: bytes) -> dict[str, FieldValue]:
    """The field table :func:`encode_table` wrote (e.g. kept in a data file)."""
    return read_table(data, 0, len(data))[0]


def encode_table(table: Mapping[str, FieldValue] | None) -> bytes:
    """A field table: a uint32 length, then each name (shortstr) and typed value."""
    if not table:
        return b"\x00\x00\x00\x00"
    parts: list[bytes] = []
    for name, value in table.items():
        if not isinstance(name, str):
            raise LocalProtocolError(
                f"field table names are strings, not {type(name).__name__}",
                ReplyCode.SYNTAX_ERROR,
            )
        parts.append(encode_content_shortstr(name, f"field name {name[:40]!r}"))
        _write_value(value, parts)
    body = b"".join(parts)
    return U32.pack(len(body)) + body
